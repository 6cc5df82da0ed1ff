"""The secure defaults of every AWS topology (issue #12, E1 item 1), as pure functions and graph wiring:
the scoped cross-account policy, the security group ports, the restrictive root bucket policy, the
PrivateLink service names.

Where the published reference facts are on disk (`../shared/reference/databricks-aws`, JSON extracted from
SRA and terraform-provider-databricks; never copied into the repo), the tests also compare with them
statement by statement; elsewhere those tests are skipped and the facts pinned here still hold.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import specs

from provision import topologies
from provision.clouds.aws.spec import DATABRICKS_AWS_REGIONS
from provision.clouds.aws.steps.iam import (
    DATABRICKS_AMI_OWNER,
    INLINE_POLICY_LIMIT,
    CrossAccountPolicy,
    cross_account_policy,
    policy_json,
)
from provision.clouds.aws.steps.network import (
    RULE_PURPOSES,
    WORKSPACE_SG_RULES,
    privatelink_rules,
)
from provision.clouds.aws.steps.storage import (
    ROOT_BUCKET_REGION_NAMES,
    RootBucket,
    RootBucketPolicy,
    restrictive_root_bucket_policy,
)
from provision.clouds.databricks.steps.account import Credentials
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.regions import PRIVATELINK_SERVICES

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "databricks-aws"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="the published reference facts are not on this machine")

REGION, ACCOUNT = "us-west-2", "123456789012"
VPC, SG = "vpc-abcdefg12345", "sg-12345678"
DBX_ACCOUNT = "5a4db0c5-0000-4000-8000-00000000000a"


def reference(name: str) -> dict[str, Any]:
    return json.loads((REFERENCE / name).read_text())


def policy(vpcs: list[str] = [VPC], groups: list[str] = [SG]) -> dict[str, Any]:  # noqa: B006  (read only)
    return cross_account_policy(region=REGION, account_id=ACCOUNT, vpc_ids=vpcs, security_group_ids=groups)


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def normalized(condition: dict[str, Any] | None) -> dict[str, dict[str, list[str]]]:
    """A Condition block with every value as a sorted list (IAM reads "x" and ["x"] alike)."""
    return {op: {key: sorted(as_list(v)) for key, v in keys.items()} for op, keys in (condition or {}).items()}


def actions(statement: dict[str, Any]) -> set[str]:
    return set(as_list(statement["Action"]))


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def is_read(action: str) -> bool:
    return action.split(":", 1)[1].startswith(("Describe", "Get", "List"))


# --- the cross-account policy -----------------------------------------------------------------------------


def test_no_ec2_write_is_granted_on_every_resource() -> None:
    for statement in policy()["Statement"]:
        assert "NotResource" not in statement and "NotAction" not in statement
        if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
            assert all(is_read(a) for a in actions(statement)), statement["Sid"]


def test_every_ec2_write_is_scoped_by_tag_vpc_group_or_image_owner() -> None:
    for statement in policy()["Statement"]:
        writes = {a for a in actions(statement) if a.startswith("ec2:") and not is_read(a)}
        if statement["Effect"] != "Allow" or not writes:
            continue
        keys = {key for keys in statement.get("Condition", {}).values() for key in keys}
        assert keys & {"aws:RequestTag/Vendor", "ec2:ResourceTag/Vendor", "ec2:vpc", "ec2:Owner"}, statement["Sid"]


def test_creation_needs_the_vendor_request_tag_and_changes_the_vendor_resource_tag() -> None:
    statements = by_sid(policy())
    create = statements["CreateEC2ResourcesWithRequestTag"]
    assert {"ec2:RunInstances", "ec2:CreateVolume", "ec2:CreateFleet", "ec2:RequestSpotInstances"} <= actions(create)
    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/Vendor": "Databricks"}}
    tag_on_create = statements["AllowDatabricksTagOnCreate"]["Condition"]["StringEquals"]
    assert tag_on_create["aws:RequestTag/Vendor"] == "Databricks" and "RunInstances" in tag_on_create["ec2:CreateAction"]
    for sid in ("ModifyEC2ResourcesByResourceTags", "DeleteEC2ResourcesByTag", "AllowEC2TaggingOnDatabricksResources", "GetEC2LaunchTemplateDataByTag"):
        assert statements[sid]["Condition"] == {"StringEquals": {"ec2:ResourceTag/Vendor": "Databricks"}}, sid
    assert {"ec2:TerminateInstances", "ec2:DeleteVolume"} <= actions(statements["DeleteEC2ResourcesByTag"])


def test_images_are_pinned_to_databricks_ami_owner() -> None:
    statements = by_sid(policy())
    assert DATABRICKS_AMI_OWNER == "601306020600"
    deny, allow = statements["RestrictAMIUsageToDatabricksDeny"], statements["RestrictAMIUsageToDatabricksAllow"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"StringNotEquals": {"ec2:Owner": "601306020600"}}
    assert allow["Condition"] == {"StringEquals": {"ec2:Owner": "601306020600"}}
    for statement in (deny, allow):
        assert actions(statement) == {"ec2:RunInstances", "ec2:CreateFleet", "ec2:RequestSpotInstances"}
        assert statement["Resource"] == "arn:aws:ec2:*:*:image/*"


def test_run_instances_and_rule_edits_are_limited_to_the_workspace_vpcs_and_groups() -> None:
    statements = by_sid(policy(vpcs=["vpc-0a", "vpc-0b"], groups=["sg-0b", "sg-0a"]))
    vpcs = [f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-0a", f"arn:aws:ec2:{REGION}:{ACCOUNT}:vpc/vpc-0b"]
    run = statements["AllowRunInstancesWithScopedResources"]
    assert run["Condition"] == {"StringEqualsIfExists": {"ec2:vpc": vpcs}}
    rules = statements["VpcNonresourceSpecificActions"]
    assert rules["Resource"] == [f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0a", f"arn:aws:ec2:{REGION}:{ACCOUNT}:security-group/sg-0b"]
    assert rules["Condition"] == {"StringEquals": {"ec2:vpc": vpcs}}
    assert actions(rules) == {f"ec2:{v}SecurityGroup{d}" for v in ("Authorize", "Revoke") for d in ("Ingress", "Egress")}
    # No other statement grants a security group rule edit.
    assert [s["Sid"] for s in policy()["Statement"] if actions(s) & actions(rules)] == ["VpcNonresourceSpecificActions"]


def test_spot_service_linked_role_only() -> None:
    spot = by_sid(policy())["IAMRoleForEC2Spot"]
    assert actions(spot) == {"iam:CreateServiceLinkedRole"}
    assert spot["Resource"] == "arn:aws:iam::*:role/aws-service-role/spot.amazonaws.com/AWSServiceRoleForEC2Spot"
    assert spot["Condition"] == {"StringLike": {"iam:AWSServiceName": "spot.amazonaws.com"}}
    assert {a for s in policy()["Statement"] for a in actions(s) if a.startswith("iam:")} == {"iam:CreateServiceLinkedRole"}


def test_the_policy_is_deterministic_whatever_the_order_of_spokes() -> None:
    assert policy(vpcs=["vpc-2", "vpc-1"], groups=["sg-1", "sg-2"]) == policy(vpcs=["vpc-1", "vpc-2", "vpc-1"], groups=["sg-2", "sg-1"])


def test_six_spokes_fit_the_inline_policy_quota() -> None:
    spokes = [(f"vpc-0{n:016x}", f"sg-0{n:016x}") for n in range(6)]  # the longest ids EC2 gives
    document = cross_account_policy(region="ap-southeast-2", account_id=ACCOUNT, vpc_ids=[v for v, _ in spokes], security_group_ids=[g for _, g in spokes])
    body = policy_json(document)
    assert len("".join(body.split())) == len(body) < INLINE_POLICY_LIMIT == 10_240
    # Headroom: each further spoke adds two ARNs.
    assert INLINE_POLICY_LIMIT - len(body) > 1_000, len(body)


def test_past_the_quota_a_fleet_is_scoped_by_its_ownership_tag_at_a_size_that_does_not_grow() -> None:
    def fleet(n: int, deployment: str | None = "acme-hub") -> dict:
        spokes = [(f"vpc-0{i:016x}", f"sg-0{i:016x}") for i in range(n)]
        return cross_account_policy(region="us-east-1", account_id=ACCOUNT, vpc_ids=[v for v, _ in spokes],
                                    security_group_ids=[g for _, g in spokes], deployment=deployment)

    assert fleet(8) == fleet(8, deployment=None)  # while the lists fit, they are the policy
    with_lists = policy_json(fleet(32, deployment=None))
    assert len(with_lists) > INLINE_POLICY_LIMIT  # what IAM would refuse for a 32-spoke hub
    sizes = {n: len(policy_json(fleet(n))) for n in (32, 64, 128)}
    assert len(set(sizes.values())) == 1 and sizes[32] < INLINE_POLICY_LIMIT, sizes
    statements = by_sid(fleet(32))
    owned = {"StringEquals": {"ec2:ResourceTag/provision:deployment": "acme-hub"}}
    run = statements["AllowRunInstancesWithScopedResources"]
    assert run["Condition"] == owned and run["Resource"] == [
        f"arn:aws:ec2:us-east-1:{ACCOUNT}:subnet/*", f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/*"]
    rules = statements["VpcNonresourceSpecificActions"]
    assert rules["Condition"] == owned and rules["Resource"] == [f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/*"]
    # Every other statement is the listed policy's own.
    listed = by_sid(fleet(32, deployment=None))
    assert {k: v for k, v in statements.items() if k not in ("AllowRunInstancesWithScopedResources", "VpcNonresourceSpecificActions")} == {
        k: v for k, v in listed.items() if k not in ("AllowRunInstancesWithScopedResources", "VpcNonresourceSpecificActions")}


@needs_reference
def test_every_sra_statement_is_present_with_its_actions_resources_and_conditions() -> None:
    sra = reference("sra_crossaccount_policy.json")["policy"]
    filled = json.loads(
        json.dumps(sra).replace("{region}", REGION).replace("{aws_account_id}", ACCOUNT).replace("{vpc_id}", VPC).replace("{security_group_id}", SG)
    )
    ours = by_sid(policy())
    assert [s["Sid"] for s in filled["Statement"]] == list(ours)
    for theirs in filled["Statement"]:
        mine = ours[theirs["Sid"]]
        assert mine["Effect"] == theirs["Effect"], theirs["Sid"]
        assert actions(mine) >= actions(theirs), theirs["Sid"]
        assert sorted(as_list(mine["Resource"])) == sorted(as_list(theirs["Resource"])), theirs["Sid"]
        assert normalized(mine.get("Condition")) == normalized(theirs.get("Condition")), theirs["Sid"]
    # The one action added to SRA's: the provider's restricted policy grants it for instance pools.
    added = {a for s in ours.values() for a in actions(s)} - {a for s in filled["Statement"] for a in actions(s)}
    assert added == {"ec2:ReplaceIamInstanceProfileAssociation"}


@needs_reference
def test_the_providers_restricted_actions_are_all_granted_but_put_role_policy() -> None:
    restricted = reference("crossaccount_restricted.json")["policy"]
    theirs = {a for s in restricted["Statement"] for a in actions(s)}
    ours = {a for s in policy()["Statement"] for a in actions(s)}
    # iam:PutRolePolicy on the spot service-linked role is left out, as SRA does (AWS lets no one edit a
    # service-linked role's policies, and the condition it carries never matches that action).
    assert theirs - ours == {"iam:PutRolePolicy"}


# --- security groups --------------------------------------------------------------------------------------

EC2_DESCRIPTION = re.compile(r"^[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{1,255}$")


def egress_tcp_ports(rules: tuple[Any, ...], peer: str) -> set[int]:
    return {p for d, proto, low, high, to in rules if d == "egress" and proto == "tcp" and to == peer for p in range(low, high + 1)}


def test_workspace_group_opens_the_docs_ports_and_lakebase() -> None:
    assert egress_tcp_ports(WORKSPACE_SG_RULES, "0.0.0.0/0") == {443, 2443, 3306, 5432, 6666, *range(8443, 8452)}
    assert {r for r in WORKSPACE_SG_RULES if r[4] == "self"} == {
        (d, p, 0, 65535, "self") for d in ("ingress", "egress") for p in ("tcp", "udp")
    }


def test_privatelink_group_takes_lakebase_in_from_every_workspace_subnet() -> None:
    rules = privatelink_rules(["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/28"])
    for cidr in ("10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/28"):
        inbound = {p for d, _, low, high, peer in rules if d == "ingress" and peer == cidr for p in range(low, high + 1)}
        assert inbound == {443, 2443, 5432, 6666, *range(8443, 8452)}
        assert 5432 not in egress_tcp_ports(rules, cidr)  # SRA's endpoint group has no egress at all


def test_every_rule_has_a_description_ec2_accepts() -> None:
    for rule in (*WORKSPACE_SG_RULES, *privatelink_rules(["10.0.0.0/24"])):
        assert EC2_DESCRIPTION.match(RULE_PURPOSES[rule[1:4]]), rule
    assert all(EC2_DESCRIPTION.match(text) for text in RULE_PURPOSES.values())


@needs_reference
def test_ports_cover_sra_and_the_docs() -> None:
    facts = reference("sg_ports.json")
    sra, docs = facts["workspace_sg"]["sra"]["egress_tcp_ports"], facts["workspace_sg"]["docs_examples"]["egress_tcp_ports"]
    assert egress_tcp_ports(WORKSPACE_SG_RULES, "0.0.0.0/0") == set(sra) | set(docs)
    rules = privatelink_rules(["10.0.0.0/24"])
    inbound = {p for d, _, low, high, _ in rules if d == "ingress" for p in range(low, high + 1)}
    assert inbound == {p for rule in facts["privatelink_sg"]["sra"]["ingress"] for p in range(rule["from"], rule["to"] + 1)}


# --- the restrictive root bucket policy -------------------------------------------------------------------


def test_restrictive_bucket_policy_writes_only_under_the_workspace_prefixes() -> None:
    document = restrictive_root_bucket_policy("acme-root", DBX_ACCOUNT, "us-east-1", 1234567890123456)
    read, write, tls = document["Statement"]
    root = f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"
    tagged = {"StringEquals": {"aws:PrincipalTag/DatabricksAccountId": DBX_ACCOUNT}}
    assert read["Principal"] == write["Principal"] == {"AWS": root} and read["Condition"] == write["Condition"] == tagged
    assert set(read["Action"]) == {"s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket", "s3:GetBucketLocation"}
    assert set(write["Action"]) == {"s3:PutObject", "s3:DeleteObject"}
    assert write["Resource"] == [
        "arn:aws:s3:::acme-root/nvirginia-prod/0_databricks_dev",
        "arn:aws:s3:::acme-root/ephemeral/nvirginia-prod/1234567890123456/*",
        "arn:aws:s3:::acme-root/nvirginia-prod/1234567890123456.*/*",
        "arn:aws:s3:::acme-root/nvirginia-prod/1234567890123456/*",
    ]
    assert tls["Effect"] == "Deny" and tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert set(tls["Resource"]) == {"arn:aws:s3:::acme-root", "arn:aws:s3:::acme-root/*"}


@pytest.mark.parametrize(("region", "name"), [("us-west-1", "oregon"), ("us-west-2", "oregon"), ("ap-southeast-3", "jakarta"), ("ca-central-1", "canada")])
def test_region_names_of_root_bucket_paths(region: str, name: str) -> None:
    write = restrictive_root_bucket_policy("b", DBX_ACCOUNT, region, 7)["Statement"][1]
    assert write["Resource"][-1] == f"arn:aws:s3:::b/{name}-prod/7/*"


def test_every_region_with_privatelink_services_has_a_root_bucket_region_name() -> None:
    assert set(PRIVATELINK_SERVICES) <= set(ROOT_BUCKET_REGION_NAMES) <= DATABRICKS_AWS_REGIONS


@needs_reference
def test_restrictive_bucket_policy_is_sras() -> None:
    sra = reference("sra_root_bucket_restrictive.json")["policy"]
    filled = json.loads(
        json.dumps(sra).replace("{bucket}", "b").replace("{databricks_account_id}", DBX_ACCOUNT).replace("{region_name}", "oregon").replace("{workspace_id}", "42")
    )
    ours = restrictive_root_bucket_policy("b", DBX_ACCOUNT, "us-west-2", 42)
    # The same statements; only the Sids are ours (IAM-style, no spaces).
    for mine, theirs in zip(ours["Statement"], filled["Statement"], strict=True):
        assert {k: v for k, v in mine.items() if k != "Sid"} == {**{k: v for k, v in theirs.items() if k != "Sid"}, "Action": mine["Action"]}
        assert set(as_list(mine["Action"])) == set(as_list(theirs["Action"]))


# --- PrivateLink service names ----------------------------------------------------------------------------


def test_service_names_of_the_regions_added() -> None:
    assert PRIVATELINK_SERVICES["us-west-1"].workspace == "com.amazonaws.vpce.us-west-1.vpce-svc-09bb6ca26208063f2"
    assert PRIVATELINK_SERVICES["us-west-1"].relay == "com.amazonaws.vpce.us-west-1.vpce-svc-04cb91f9372b792fe"
    assert PRIVATELINK_SERVICES["ap-southeast-3"].workspace == "com.amazonaws.vpce.ap-southeast-3.vpce-svc-0fec4092997affd53"
    assert PRIVATELINK_SERVICES["ap-southeast-3"].relay == "com.amazonaws.vpce.ap-southeast-3.vpce-svc-025ca447c232c6a1b"


@needs_reference
def test_service_names_agree_with_sra_but_the_documented_difference() -> None:
    sra = reference("sra_service_names.json")["regions"]
    differ = {
        (region, kind)
        for region, services in PRIVATELINK_SERVICES.items()
        for kind in ("workspace", "relay")
        if getattr(services, kind) != sra[region][kind]
    }
    assert differ == {("ap-southeast-3", "workspace")}


# --- graph wiring -----------------------------------------------------------------------------------------


def steps_of(data: dict[str, Any]) -> dict[str, Any]:
    return {s.id: s for s in topologies.build(topologies.from_dict(data))}


@pytest.mark.parametrize("example", ["basic", "privatelink"])
def test_credentials_wait_for_the_scoped_policy_and_the_bucket_policy_for_the_workspace(example: str) -> None:
    steps = steps_of(specs.example(example))
    policy_step = steps["iam.crossaccount.policy"]
    assert isinstance(policy_step, CrossAccountPolicy) and set(policy_step.needs) == {"iam.crossaccount", "vpc", "sg.workspace"}
    credentials = steps["dbx.credentials"]
    assert isinstance(credentials, Credentials) and credentials.needs == ("iam.crossaccount.policy",)
    bucket_policy = steps["s3.root.policy"]
    assert isinstance(bucket_policy, RootBucketPolicy) and set(bucket_policy.needs) == {"s3.root", "dbx.workspace"}
    assert isinstance(steps["s3.root"], RootBucket) and steps["s3.root"].key_arn is None


def test_the_users_role_and_bucket_get_no_policy_of_ours() -> None:
    data = specs.merged(specs.example("basic"), existing={
        "cross_account_role_arn": "arn:aws:iam::123456789012:role/theirs", "bucket_name": "their-root-bucket",
    })
    steps = steps_of(data)
    assert "iam.crossaccount.policy" not in steps and "s3.root.policy" not in steps
    assert steps["dbx.credentials"].needs == ("iam.crossaccount",)


def test_the_root_bucket_takes_the_layouts_bucket_key() -> None:
    from provision.spec import Spec  # noqa: F401  (the type the fragments take)
    from provision.topologies import aws_common

    layout = aws_common.Layout()
    layout.bucket_key = "kms.workspace"
    aws_common.storage(topologies.from_dict(specs.example("basic")), layout)
    (bucket,) = layout.steps
    assert bucket.needs == ("kms.workspace",) and bucket.key_arn.step == "kms.workspace" and bucket.key_arn.key == "key_arn"
