"""Network security in the sandbox (clouds/aws/sandbox/flowlogs.py, rules 30-35, and endpoints.py rule 36), over
HTTP with real boto3 clients, and the [network_security] steps driven by the engine against it: create, rerun
(nothing new), drift converged back, teardown (nothing left).

Each fidelity test fails on plain moto 5.2.5, which accepts any flow-log role, ignores ClientTokens, stores any
retention and any KMS key id, lacks AssociateKmsKey, lists no final rule in a new ACL, keeps protocol names,
answers an unknown ACL with a route table's error and ignores ResetPolicy.
"""

from __future__ import annotations

import copy
import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from sandbox_helpers import aws_client, client_error, delays, error_code
from structlog.contextvars import merge_contextvars
from structlog.testing import CapturingLogger

import provision.clouds.aws.sandbox.listing as listing  # noqa: PLR0402
from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws.clients import AwsClients
from provision.clouds.aws.context import Zones
from provision.clouds.aws.endpoint_policies import (
    FULL_ACCESS,
    S3GatewayPolicy,
    StsPolicy,
    s3_gateway_policy,
    same,
    sts_policy,
)
from provision.clouds.aws.steps.endpoints import GatewayEndpoint, InterfaceEndpoint
from provision.clouds.aws.steps.flowlogs import (
    FlowLog,
    FlowLogRole,
    LogGroup,
    log_group_name,
    trust_policy,
)
from provision.clouds.aws.steps.nacl import NetworkAcl, databricks_entries, live_entries
from provision.clouds.aws.steps.network import SecurityGroup, Subnet, Vpc
from provision.clouds.aws.steps.routes import RouteTable
from provision.orchestrator.clients import SANDBOX, CallStats, Clients, Target
from provision.orchestrator.engine import Engine
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Outputs, Ref, Step
from provision.orchestrator.wait import PollPolicy
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings
from provision.state.store import StateFile

REGION = "us-east-1"
ACCOUNT = SANDBOX_AWS_ACCOUNT_ID
BASIC = tomllib.loads((Path(__file__).resolve().parents[2] / "examples" / "basic.toml").read_text())


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(vpc_endpoint_pending_seconds=0.05, eni_release_seconds=0.05, iam_propagation_seconds=0.0)


@pytest.fixture(scope="module")
def iam(aws_url: str) -> Any:
    return aws_client("iam", aws_url)


@pytest.fixture(scope="module")
def logs(aws_url: str) -> Any:
    return aws_client("logs", aws_url)


@pytest.fixture(scope="module")
def kms(aws_url: str) -> Any:
    return aws_client("kms", aws_url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def vpc_id(ec2: Any) -> str:
    return ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]


def flow_log_role(iam: Any, policy: dict[str, Any] | None = None) -> str:
    document = policy or trust_policy(ACCOUNT, REGION)
    return iam.create_role(RoleName=unique("flowlogs"), AssumeRolePolicyDocument=json.dumps(document))["Role"]["Arn"]


def create_flow_log(ec2: Any, vpc: str, role_arn: str, group: str = "/test/flow", **extra: Any) -> dict[str, Any]:
    return ec2.create_flow_logs(
        ResourceType="VPC", ResourceIds=[vpc], TrafficType="ALL", LogDestinationType="cloud-watch-logs",
        LogGroupName=group, DeliverLogsPermissionArn=role_arn, **extra,
    )


def logs_key(kms: Any, statement: dict[str, Any] | None = None, enabled: bool = True) -> str:
    statements: list[dict[str, Any]] = [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*", "Resource": "*"}]
    if statement is not None:
        statements.append(statement)
    key = kms.create_key(Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))["KeyMetadata"]
    if not enabled:
        kms.disable_key(KeyId=key["KeyId"])
    return key["Arn"]


def logs_statement(group_pattern: str = "arn:aws:logs:us-east-1:123456789012:log-group:*") -> dict[str, Any]:
    return {
        "Effect": "Allow", "Principal": {"Service": f"logs.{REGION}.amazonaws.com"},
        "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"], "Resource": "*",
        "Condition": {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": group_pattern}},
    }


# --- rule 30: the flow-logs service must be able to assume the role ----------------------------------------


def test_create_flow_logs_refuses_a_role_the_service_cannot_assume(ec2: Any, iam: Any) -> None:
    vpc = vpc_id(ec2)
    missing = f"arn:aws:iam::{ACCOUNT}:role/{unique('nope')}"
    ec2_role = flow_log_role(iam, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]})
    other_account = flow_log_role(iam, trust_policy("111122223333", REGION))
    other_region = flow_log_role(iam, trust_policy(ACCOUNT, "eu-west-1"))
    for role in (missing, ec2_role, other_account, other_region):
        found = client_error(create_flow_log, ec2=ec2, vpc=vpc, role_arn=role)
        assert found == {"Code": "InvalidParameter", "Message": f"Unable to assume given IAM role: '{role}'"}
    assert ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"] == []
    assert create_flow_log(ec2, vpc, flow_log_role(iam))["FlowLogIds"]


def test_a_new_role_is_refused_until_it_has_propagated(ec2: Any, iam: Any, settings: SandboxSettings) -> None:
    vpc = vpc_id(ec2)
    role = flow_log_role(iam)
    with delays(settings, iam_propagation_seconds=60):
        assert error_code(create_flow_log, ec2=ec2, vpc=vpc, role_arn=role) == "InvalidParameter"
    assert create_flow_log(ec2, vpc, role)["FlowLogIds"]


# --- rule 31: ClientToken ------------------------------------------------------------------------------------


def test_create_flow_logs_honours_its_client_token(ec2: Any, iam: Any) -> None:
    vpc, role, token = vpc_id(ec2), flow_log_role(iam), unique("token")
    first = create_flow_log(ec2, vpc, role, ClientToken=token)
    again = create_flow_log(ec2, vpc, role, ClientToken=token)  # moto: FlowLogAlreadyExists
    assert again["FlowLogIds"] == first["FlowLogIds"] and again["ClientToken"] == token
    assert len(ec2.describe_flow_logs(Filters=[{"Name": "resource-id", "Values": [vpc]}])["FlowLogs"]) == 1
    assert error_code(create_flow_log, ec2=ec2, vpc=vpc, role_arn=role, group="/test/other", ClientToken=token) == "IdempotentParameterMismatch"


# --- rules 32 and 33: log groups ---------------------------------------------------------------------------


def test_retention_must_be_a_cloudwatch_value(logs: Any) -> None:
    name = f"/test/{unique('group')}"
    logs.create_log_group(logGroupName=name)
    error = client_error(logs.put_retention_policy, logGroupName=name, retentionInDays=45)
    assert error["Code"] == "InvalidParameterException" and "Member must satisfy enum value set" in error["Message"]
    logs.put_retention_policy(logGroupName=name, retentionInDays=30)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["retentionInDays"] == 30


def test_a_log_group_key_must_let_cloudwatch_logs_use_it(logs: Any, kms: Any) -> None:
    name = f"/test/{unique('group')}"
    arn = f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}"
    refused = {
        "no logs statement": logs_key(kms),
        "another group only": logs_key(kms, logs_statement("arn:aws:logs:us-east-1:123456789012:log-group:/other/*")),
        "disabled": logs_key(kms, logs_statement(), enabled=False),
        "unknown": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{uuid.uuid4()}",
    }
    for why, key in refused.items():
        error = client_error(logs.create_log_group, logGroupName=name, kmsKeyId=key)
        assert error == {"Code": "AccessDeniedException", "Message": f"The specified KMS key does not exist or is not allowed to be used with Arn '{arn}'"}, why
    good = logs_key(kms, logs_statement())
    logs.create_log_group(logGroupName=name, kmsKeyId=good)
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["kmsKeyId"] == good


def test_associate_and_disassociate_kms_key(logs: Any, kms: Any) -> None:
    name = f"/test/{unique('group')}"
    logs.create_log_group(logGroupName=name)
    assert error_code(logs.associate_kms_key, logGroupName=name, kmsKeyId=logs_key(kms)) == "AccessDeniedException"
    key = logs_key(kms, logs_statement())
    logs.associate_kms_key(logGroupName=name, kmsKeyId=key)  # moto: not implemented
    assert logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]["kmsKeyId"] == key
    logs.disassociate_kms_key(logGroupName=name)
    assert "kmsKeyId" not in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    assert error_code(logs.disassociate_kms_key, logGroupName="/test/none") == "ResourceNotFoundException"


# --- rule 34: network ACLs -----------------------------------------------------------------------------------


def test_network_acls_look_as_ec2_shows_them(ec2: Any) -> None:
    vpc = vpc_id(ec2)
    token = unique("token")
    acl = ec2.create_network_acl(VpcId=vpc, ClientToken=token)["NetworkAcl"]
    assert ec2.create_network_acl(VpcId=vpc, ClientToken=token)["NetworkAcl"]["NetworkAclId"] == acl["NetworkAclId"]
    assert sorted((e["RuleNumber"], e["Egress"], e["RuleAction"]) for e in acl["Entries"]) == [(32767, False, "deny"), (32767, True, "deny")]
    ec2.create_network_acl_entry(NetworkAclId=acl["NetworkAclId"], RuleNumber=110, Protocol="tcp", RuleAction="allow", Egress=True,
                                 CidrBlock="0.0.0.0/0", PortRange={"From": 443, "To": 443})
    entries = ec2.describe_network_acls(NetworkAclIds=[acl["NetworkAclId"]])["NetworkAcls"][0]["Entries"]
    assert {e["RuleNumber"]: e["Protocol"] for e in entries if e["Egress"]} == {32767: "-1", 110: "6"}
    assert error_code(ec2.describe_network_acls, NetworkAclIds=["acl-0123456789abcdef0"]) == "InvalidNetworkAclID.NotFound"
    missing = {"NetworkAclId": acl["NetworkAclId"], "RuleNumber": 120, "Egress": True}
    assert error_code(ec2.delete_network_acl_entry, **missing) == "InvalidNetworkAclEntry.NotFound"  # moto: a 500
    assert error_code(ec2.replace_network_acl_entry, **missing, Protocol="-1", RuleAction="allow", CidrBlock="0.0.0.0/0") == "InvalidNetworkAclEntry.NotFound"
    assert len(ec2.describe_network_acls(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["NetworkAcls"]) == 2  # the default and ours


def test_an_acl_in_use_cannot_be_deleted(ec2: Any) -> None:
    # moto already refuses this (DependencyViolation), as AWS does: kept so teardown order stays tested.
    vpc = vpc_id(ec2)
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.1.0/24", AvailabilityZone=f"{REGION}a")["Subnet"]["SubnetId"]
    acl = ec2.create_network_acl(VpcId=vpc)["NetworkAcl"]["NetworkAclId"]
    holder = ec2.describe_network_acls(Filters=[{"Name": "association.subnet-id", "Values": [subnet]}])["NetworkAcls"][0]
    association = next(a for a in holder["Associations"] if a["SubnetId"] == subnet)["NetworkAclAssociationId"]
    ec2.replace_network_acl_association(AssociationId=association, NetworkAclId=acl)
    assert error_code(ec2.delete_network_acl, NetworkAclId=acl) == "DependencyViolation"


# --- rule 36: endpoint policies ------------------------------------------------------------------------------


def test_endpoint_policies_are_stored_as_given_and_reset_to_full_access(ec2: Any) -> None:
    vpc = vpc_id(ec2)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    given = json.dumps(sts_policy(ACCOUNT), indent=1)
    endpoint = ec2.create_vpc_endpoint(VpcEndpointType="Gateway", VpcId=vpc, ServiceName=f"com.amazonaws.{REGION}.s3", RouteTableIds=[table], PolicyDocument=given)["VpcEndpoint"]
    endpoint_id = endpoint["VpcEndpointId"]

    def policy() -> str:
        return ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]["PolicyDocument"]

    assert policy() == given
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, PolicyDocument=json.dumps(FULL_ACCESS))
    assert json.loads(policy()) == FULL_ACCESS
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, PolicyDocument=given)
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, ResetPolicy=True)  # moto: ignored
    assert json.loads(policy()) == FULL_ACCESS


# --- rule 35: inventory --------------------------------------------------------------------------------------


def test_inventory_lists_flow_logs_log_groups_and_custom_acls(aws_url: str, ec2: Any, iam: Any, logs: Any) -> None:
    clients = listing.sandbox_clients(aws_url)
    vpc = vpc_id(ec2)
    custom = ec2.create_network_acl(VpcId=vpc, TagSpecifications=[{"ResourceType": "network-acl", "Tags": [{"Key": TAG_DEPLOYMENT, "Value": "inv"}]}])
    name = f"/test/{unique('inventory')}"
    logs.create_log_group(logGroupName=name, tags={TAG_DEPLOYMENT: "inv"})
    flow = create_flow_log(ec2, vpc, flow_log_role(iam), group=name)["FlowLogIds"][0]
    acls = listing.KINDS["network_acl"].listing(clients)
    assert custom["NetworkAcl"]["NetworkAclId"] in {a["NetworkAclId"] for a in acls} and not any(a["IsDefault"] for a in acls)
    group = next(g for g in listing.KINDS["log_group"].listing(clients) if g["logGroupName"] == name)
    assert group["tags"] == {TAG_DEPLOYMENT: "inv"}
    assert flow in {f["FlowLogId"] for f in listing.KINDS["flow_log"].listing(clients)}
    assert all(listing.KINDS[kind].owned for kind in ("flow_log", "log_group", "network_acl"))


# --- the steps, driven by the engine ---------------------------------------------------------------------------


class FixedBucket(Step):
    """Stands in for the root bucket step: the S3 policy only needs its name."""

    kind = "s3.bucket"
    produces = ("bucket", "arn")

    def __init__(self, step_id: str, bucket: str) -> None:
        super().__init__(step_id)
        self.bucket = bucket

    def find(self, ctx: Context) -> Outputs | None:
        return {"bucket": self.bucket, "arn": f"arn:aws:s3:::{self.bucket}"}

    def create(self, ctx: Context) -> Outputs:
        raise AssertionError("never created")

    def delete(self, ctx: Context, out: Outputs) -> None:
        return None


class FixedKey(FixedBucket):
    kind = "kms.key"
    produces = ("key_arn",)

    def find(self, ctx: Context) -> Outputs | None:
        return {"key_arn": self.bucket}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        self.events.append((step_id, phase))

    def final(self) -> dict[str, str]:
        return dict(self.events)


class Run:
    def __init__(self, aws_url: str, tmp_path: Path, key_arn: str) -> None:
        data = copy.deepcopy(BASIC)
        data["name"] = unique("nsec")[:20]
        self.spec = topologies.from_dict(data)
        self.aws_url, self.path, self.key_arn = aws_url, tmp_path / "state.json", key_arn
        self.logger = CapturingLogger()
        self.target = Target(SANDBOX, {"aws": aws_url})
        # One client set for every run of the test (boto3 clients are slow to make); each run counts afresh.
        self.aws = AwsClients(region=REGION, target=self.target, stats=CallStats())
        self.listed = listing.sandbox_clients(aws_url)

    def steps(self, traffic: str = "ALL", *, network: bool = True, sts: bool = True) -> list[Step]:
        """The [network_security] steps on a small VPC; without `network` only the VPC and its flow log."""
        azs = Zones(2, (f"{REGION}a", f"{REGION}b"))
        private = ["subnet.private.0", "subnet.private.1"]
        flow_logs: list[Step] = [
            FixedKey("kms.logs", self.key_arn),
            Vpc("vpc", "10.70.0.0/16"),
            LogGroup("logs.flowlogs", retention_days=30, kms_key="kms.logs"),
            FlowLogRole("iam.flowlogs", log_group="logs.flowlogs"),
            FlowLog("flowlogs.vpc", vpc="vpc", log_group="logs.flowlogs", role="iam.flowlogs", traffic_type=traffic),
        ]
        if not network:
            return flow_logs
        return [
            *flow_logs,
            FixedBucket("s3.root", "acme-root"),
            Subnet("subnet.private.0", vpc="vpc", cidr="10.70.0.0/24", zones=azs, zone_index=0),
            Subnet("subnet.private.1", vpc="vpc", cidr="10.70.1.0/24", zones=azs, zone_index=1),
            RouteTable("rt.private.0", vpc="vpc", subnets=private),
            GatewayEndpoint("vpce.s3", vpc="vpc", service="s3", route_tables=["rt.private.0"], policy=S3GatewayPolicy(Ref("s3.root", "bucket"), ("a-data",))),
            *([
                SecurityGroup("sg.workspace", vpc="vpc", description="workspace", rules=()),
                InterfaceEndpoint("vpce.sts", vpc="vpc", service="sts", subnets=private, security_group="sg.workspace", policy=StsPolicy()),
            ] if sts else []),
            NetworkAcl("nacl.private", vpc="vpc", subnets=private),
        ]

    def engine(self, steps: list[Step]) -> tuple[Engine, Recorder, CallStats]:
        stats = self.aws.stats = CallStats()
        clients = Clients(self.target, {"aws": self.aws}, stats)
        ctx = Context(
            spec=self.spec, clients=clients,
            retry=RetryPolicy(deadline_seconds=20, initial_seconds=0.05, max_seconds=0.2, errors=error_rules(("aws",))),
            poll=PollPolicy(initial_seconds=0.02, factor=1.5, max_seconds=0.1, timeout_seconds=20, visibility_seconds=0.1),
            log=structlog.wrap_logger(self.logger, processors=[merge_contextvars]),
        )
        state = StateFile.load(self.path) if self.path.exists() else StateFile.new(
            self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None,
        )
        recorder = Recorder()
        return Engine(steps, state, ctx, reporter=recorder, parallelism=4), recorder, stats

    def ours(self, kind: str) -> list[dict[str, Any]]:
        found = listing.KINDS[kind].listing(self.listed)
        tags = lambda item: item.get("tags") or {t["Key"]: t["Value"] for t in item.get("Tags", [])}
        return [item for item in found if tags(item).get(TAG_DEPLOYMENT) == self.spec.name]


MINE = ("vpce.s3", "vpce.sts", "logs.flowlogs", "iam.flowlogs", "flowlogs.vpc", "nacl.private")


def writes(stats: CallStats) -> dict[str, int]:
    return {service: counts["writes"] for service, counts in stats.summary().items() if counts["writes"]}


@pytest.fixture
def run(aws_url: str, tmp_path: Path, kms: Any) -> Run:
    return Run(aws_url, tmp_path, logs_key(kms, logs_statement()))


def test_create_rerun_converge_teardown(run: Run, ec2: Any, iam: Any, logs: Any) -> None:
    """Create; a rerun creates nothing new (no write at all); drift and a spec change converge back on the
    next run; teardown leaves nothing."""
    engine, _, _ = run.engine(run.steps())
    out = engine.up()
    assert {kind: len(run.ours(kind)) for kind in ("flow_log", "log_group", "network_acl", "vpc_endpoint")} == {
        "flow_log": 1, "log_group": 1, "network_acl": 1, "vpc_endpoint": 2,
    }
    acl_id, endpoint_id = out["nacl.private"]["network_acl_id"], out["vpce.s3"]["vpc_endpoint_id"]
    (acl,) = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"]
    assert live_entries(acl) == tuple(sorted(databricks_entries("10.70.0.0/16")))
    assert sorted(a["SubnetId"] for a in acl["Associations"]) == sorted(out[s]["subnet_id"] for s in ("subnet.private.0", "subnet.private.1"))
    (group,) = logs.describe_log_groups(logGroupNamePrefix=log_group_name(run.spec.name))["logGroups"]
    assert (group["retentionInDays"], group["kmsKeyId"]) == (30, run.key_arn)
    (flow,) = ec2.describe_flow_logs(FlowLogIds=[out["flowlogs.vpc"]["flow_log_id"]])["FlowLogs"]
    assert (flow["ResourceId"], flow["TrafficType"], flow["DeliverLogsPermissionArn"]) == (out["vpc"]["vpc_id"], "ALL", out["iam.flowlogs"]["role_arn"])
    endpoints = {e["VpcEndpointId"]: e for e in run.ours("vpc_endpoint")}
    assert same(endpoints[endpoint_id]["PolicyDocument"], s3_gateway_policy(REGION, "acme-root", ("a-data",), ACCOUNT))
    assert same(endpoints[out["vpce.sts"]["vpc_endpoint_id"]]["PolicyDocument"], sts_policy(ACCOUNT))

    engine, recorder, stats = run.engine(run.steps())
    again = engine.up()
    assert {s: again[s] for s in MINE} == {s: out[s] for s in MINE}
    assert set(recorder.final().values()) == {"kept"} and writes(stats) == {}

    # Someone opens port 80 and everything else, resets the S3 endpoint's policy and shortens the retention;
    # the spec now logs rejected traffic only.
    ec2.replace_network_acl_entry(NetworkAclId=acl_id, RuleNumber=110, Protocol="6", RuleAction="allow", Egress=True, CidrBlock="0.0.0.0/0", PortRange={"From": 80, "To": 80})
    ec2.create_network_acl_entry(NetworkAclId=acl_id, RuleNumber=500, Protocol="-1", RuleAction="allow", Egress=True, CidrBlock="0.0.0.0/0")
    ec2.modify_vpc_endpoint(VpcEndpointId=endpoint_id, ResetPolicy=True)
    logs.put_retention_policy(logGroupName=out["logs.flowlogs"]["log_group_name"], retentionInDays=7)
    engine, recorder, _ = run.engine(run.steps(traffic="REJECT"))
    again = engine.up()
    phases = recorder.final()
    assert {s: phases[s] for s in ("nacl.private", "vpce.s3", "logs.flowlogs", "flowlogs.vpc")} == dict.fromkeys(
        ("nacl.private", "vpce.s3", "logs.flowlogs", "flowlogs.vpc"), "converged",
    )
    (acl,) = ec2.describe_network_acls(NetworkAclIds=[acl_id])["NetworkAcls"]
    assert live_entries(acl) == tuple(sorted(databricks_entries("10.70.0.0/16")))
    policy = ec2.describe_vpc_endpoints(VpcEndpointIds=[endpoint_id])["VpcEndpoints"][0]["PolicyDocument"]
    assert same(policy, s3_gateway_policy(REGION, "acme-root", ("a-data",), ACCOUNT))
    assert logs.describe_log_groups(logGroupNamePrefix=out["logs.flowlogs"]["log_group_name"])["logGroups"][0]["retentionInDays"] == 30
    (flow,) = run.ours("flow_log")  # replaced: a flow log's traffic type cannot be modified
    assert flow["TrafficType"] == "REJECT" and flow["FlowLogId"] == again["flowlogs.vpc"]["flow_log_id"] != out["flowlogs.vpc"]["flow_log_id"]

    engine, _, _ = run.engine(run.steps(traffic="REJECT"))
    engine.teardown()
    kinds = ("flow_log", "log_group", "network_acl", "vpc_endpoint", "vpc", "subnet")
    assert {kind: run.ours(kind) for kind in kinds} == {kind: [] for kind in kinds}
    assert error_code(iam.get_role, RoleName=out["iam.flowlogs"]["role_name"]) == "NoSuchEntity"


def test_the_flow_log_waits_for_its_new_role_to_propagate(run: Run, settings: SandboxSettings) -> None:
    with delays(settings, iam_propagation_seconds=0.4):
        engine, recorder, _ = run.engine(run.steps(network=False))
        engine.up()
    assert recorder.final()["flowlogs.vpc"] == "created"
    assert any(c.kwargs.get("event") == "retrying" and c.kwargs.get("reason") == "iam-propagation" for c in run.logger.calls)
    run.engine(run.steps(network=False))[0].teardown()
