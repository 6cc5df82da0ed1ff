"""[encryption] without a cloud: the spec's errors name their field, the graph the fragment builds, the
documented key policy, the KMS requests (botocore's Stubber, nothing on the wire) and the preflight's
reading of a key policy."""

from __future__ import annotations

import copy
import json
import random
import tomllib
from pathlib import Path
from typing import Any

import boto3
import pytest
import structlog
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws import preflight_kms
from provision.clouds.aws.spec_encryption import EncryptionSpec, ExistingKeys
from provision.clouds.aws.steps.flowlogs import log_group_name
from provision.clouds.aws.steps.iam import CrossAccountRole
from provision.clouds.aws.steps.kms import (
    ExistingKey,
    KmsKey,
    key_policy,
    policy_digest,
)
from provision.clouds.databricks.steps.keys import CustomerManagedKey
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import OwnershipConflict, PreflightError, SpecError
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import IAM_PROPAGATION, RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, TAG_STEP, Context
from provision.orchestrator.wait import PollPolicy

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic.toml"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/acme-basic-crossaccount"
KEY_ID = "0b0d6a58-96a4-4c5b-9a37-2f1a3e0c9c11"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{KEY_ID}"
OTHER_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1c1e7b69-a7b5-4d6c-8b48-3f2b4f1dad22"
DATABRICKS_ROOT = f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"

pytestmark = pytest.mark.usefixtures("no_real_sleep")


def spec_data(encryption: Any = None, tier: str = "ENTERPRISE", network_security: Any = None) -> dict[str, Any]:
    data = tomllib.loads(EXAMPLE.read_text())
    data["databricks"]["pricing_tier"] = tier
    if encryption is not None:
        data["encryption"] = copy.deepcopy(encryption)
    if network_security is not None:
        data["network_security"] = copy.deepcopy(network_security)
    return data


def parse(encryption: Any = None, **kwargs: Any) -> Any:
    return topologies.from_dict(spec_data(encryption, **kwargs))


def problems(encryption: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        parse(encryption, **kwargs)
    return {p.field: p.reason for p in info.value.problems}


# --- the spec ------------------------------------------------------------------------------------


def test_defaults_are_one_key_for_both_use_cases() -> None:
    assert parse({}).encryption == EncryptionSpec(True, True, False, 7, None)
    assert parse().encryption is None


@pytest.mark.parametrize(
    ("encryption", "field", "reason"),
    [
        ({"managed_services": "yes"}, "encryption.managed_services", "true or false"),
        ({"workspace_storage": 1}, "encryption.workspace_storage", "true or false"),
        ({"separate_keys": "no"}, "encryption.separate_keys", "true or false"),
        ({"deletion_window_days": 6}, "encryption.deletion_window_days", "between 7 and 30"),
        ({"deletion_window_days": 31}, "encryption.deletion_window_days", "between 7 and 30"),
        ({"deletion_window_days": 7.5}, "encryption.deletion_window_days", "integer"),
        ({"deletion_window_days": True}, "encryption.deletion_window_days", "integer"),
        ({"managed_services": False, "workspace_storage": False}, "encryption", "both use cases off"),
        ({"separate_keys": True, "managed_services": False}, "encryption.separate_keys", "needs both"),
        ({"rotation": True}, "encryption.rotation", "unknown field"),
        ({"existing": {"key_arn": KEY_ARN}}, "encryption.existing.key_arn", "unknown field"),
        ({"existing": {}}, "encryption.existing", "names no key"),
        ({"existing": "arn"}, "encryption.existing", "must be a table"),
        ({"existing": {"managed_services_key_arn": "nope", "workspace_storage_key_arn": KEY_ARN}},
         "encryption.existing.managed_services_key_arn", "not a KMS key ARN"),
        ({"existing": {"managed_services_key_arn": KEY_ARN.replace(f"key/{KEY_ID}", "alias/mine"), "workspace_storage_key_arn": KEY_ARN}},
         "encryption.existing.managed_services_key_arn", "alias ARN"),
        ({"existing": {"managed_services_key_arn": KEY_ARN.replace("us-east-1", "eu-west-1"), "workspace_storage_key_arn": KEY_ARN}},
         "encryption.existing.managed_services_key_arn", "in eu-west-1, not us-east-1"),
        ({"existing": {"managed_services_key_arn": KEY_ARN}}, "encryption.existing.workspace_storage_key_arn", "is required"),
        ({"workspace_storage": False, "existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": OTHER_ARN}},
         "encryption.existing.workspace_storage_key_arn", "use case that is off"),
        ({"separate_keys": True, "existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": OTHER_ARN}},
         "encryption.separate_keys", "cannot be combined with encryption.existing"),
        ({"deletion_window_days": 10, "existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": KEY_ARN}},
         "encryption.deletion_window_days", "never deleted"),
        ("on", "encryption", "must be a table"),
    ],
)
def test_bad_values_name_their_field(encryption: Any, field: str, reason: str) -> None:
    found = problems(encryption)
    assert field in found, found
    assert reason in found[field]


def test_customer_managed_keys_need_the_enterprise_tier() -> None:
    assert "ENTERPRISE" in problems({}, tier="PREMIUM")["encryption"]


def test_a_bad_encryption_value_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from provision.cli import main

    data = spec_data({"deletion_window_days": 3})
    path = tmp_path / "spec.toml"
    lines = [f'name = "{data["name"]}"', f'region = "{data["region"]}"', 'topology = "basic"', "[network]", 'vpc_cidr = "10.40.0.0/16"',
             "[databricks]", f'account_id = "{data["databricks"]["account_id"]}"', 'pricing_tier = "ENTERPRISE"',
             "[encryption]", "deletion_window_days = 3"]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(path)])
    assert exited.value.code == 2
    assert "encryption.deletion_window_days" in capsys.readouterr().err


# --- the graph -------------------------------------------------------------------------------------


def steps_of(encryption: Any, **kwargs: Any) -> dict[str, Any]:
    return {s.id: s for s in topologies.build(parse(encryption, **kwargs))}


def test_one_key_serves_both_use_cases_the_bucket_and_the_workspace() -> None:
    steps = steps_of({})
    key, config, ws = steps["kms.workspace"], steps["dbx.key"], steps["dbx.workspace"]
    assert isinstance(key, KmsKey) and key.use_cases == ("MANAGED_SERVICES", "STORAGE") and not key.logs  # no flow logs
    assert key.needs == ("iam.crossaccount",) and key.deletion_window_days == 7
    assert isinstance(config, CustomerManagedKey) and config.needs == ("kms.workspace",)
    assert "dbx.key" in ws.needs
    assert ws.managed_services_key_id.step == ws.storage_key_id.step == "dbx.key"
    assert "kms.workspace" in steps["s3.root"].needs
    assert not any(s.startswith(("kms.managed", "kms.storage")) for s in steps)


def test_separate_keys_each_have_their_registration() -> None:
    steps = steps_of({"separate_keys": True, "deletion_window_days": 30})
    managed, storage = steps["kms.managed_services"], steps["kms.storage"]
    assert managed.use_cases == ("MANAGED_SERVICES",) and managed.needs == () and not managed.logs
    assert storage.use_cases == ("STORAGE",) and storage.deletion_window_days == 30
    assert steps["dbx.key.managed_services"].use_cases == ("MANAGED_SERVICES",)
    assert steps["dbx.key.storage"].use_cases == ("STORAGE",)
    ws = steps["dbx.workspace"]
    assert (ws.managed_services_key_id.step, ws.storage_key_id.step) == ("dbx.key.managed_services", "dbx.key.storage")
    assert "kms.storage" in steps["s3.root"].needs and "kms.managed_services" not in steps["s3.root"].needs


def test_managed_services_only_leaves_the_bucket_on_sse_s3_and_logs_on_its_key() -> None:
    from provision.topologies.aws_common import Layout
    from provision.topologies.aws_encryption import keys

    layout = Layout()
    keys(parse({"workspace_storage": False}), layout)
    assert [s.id for s in layout.steps] == ["kms.managed_services", "dbx.key.managed_services"]
    assert layout.bucket_key is None and layout.storage_key is None
    assert layout.logs_key == "kms.managed_services" and layout.managed_services_key == "dbx.key.managed_services"



@pytest.mark.parametrize(
    ("encryption", "network_security", "logs_key"),
    [
        ({}, None, None),  # no [network_security]: no log group
        ({}, {"flow_logs": False}, None),
        ({}, {}, "kms.workspace"),  # flow logs default on
        ({"separate_keys": True}, {}, "kms.storage"),
        ({"workspace_storage": False}, {}, "kms.managed_services"),
    ],
)
def test_only_the_key_of_the_flow_log_group_lets_cloudwatch_logs_use_it(encryption: Any, network_security: Any, logs_key: str | None) -> None:
    steps = steps_of(encryption, network_security=network_security)
    assert {s for s, step in steps.items() if isinstance(step, KmsKey) and step.logs} == ({logs_key} if logs_key else set())
    if logs_key:
        assert steps["logs.flowlogs"].kms_key.step == logs_key


@pytest.mark.parametrize(("storage_arn", "expected"), [(KEY_ARN, ["kms.workspace"]), (OTHER_ARN, ["kms.managed_services", "kms.storage"])])
def test_existing_keys_are_read_not_made(storage_arn: str, expected: list[str]) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": storage_arn}})
    assert spec.encryption.existing == ExistingKeys(KEY_ARN, storage_arn)
    steps = {s.id: s for s in topologies.build(spec)}
    kms = [s for s in steps if s.startswith("kms.")]
    assert kms == expected and all(isinstance(steps[s], ExistingKey) and steps[s].external for s in kms)
    assert steps[expected[-1]].key_arn == storage_arn


def test_keys_cannot_change_under_a_live_deployment_but_the_window_can() -> None:
    before = parse({})
    assert topologies.changed_fields(before, parse({"deletion_window_days": 30})) == []
    assert topologies.changed_fields(before, parse({"separate_keys": True})) == ["encryption.separate_keys"]
    assert "encryption.managed_services" in topologies.changed_fields(parse(), before)


# --- the key policy ---------------------------------------------------------------------------------


def statements(policy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in policy["Statement"]}


def test_the_key_policy_is_the_documented_one() -> None:
    dbx_account = "5a4db0c5-0000-4000-8000-00000000000a"
    policy = key_policy(account=ACCOUNT, region="eu-west-1", databricks_account_id=dbx_account,
                        use_cases=("MANAGED_SERVICES", "STORAGE"), role_arn=ROLE, logs_for="acme-basic")
    found = statements(policy)
    tag = {"aws:PrincipalTag/DatabricksAccountId": [dbx_account]}
    root = found["Enable IAM User Permissions"]
    assert root["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"} and root["Action"] == "kms:*"
    managed = found["Allow Databricks to use KMS key for managed services in the control plane"]
    assert managed["Principal"] == {"AWS": DATABRICKS_ROOT} and managed["Action"] == ["kms:Encrypt", "kms:Decrypt"]
    assert managed["Condition"] == {"StringEquals": tag}
    dbfs = found["Allow Databricks to use KMS key for DBFS"]
    assert dbfs["Principal"] == {"AWS": DATABRICKS_ROOT} and dbfs["Condition"] == {"StringEquals": tag}
    assert dbfs["Action"] == ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    grants = found["Allow Databricks to use KMS key for DBFS (Grants)"]
    assert grants["Action"] == ["kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant"]
    assert grants["Condition"] == {"StringEquals": tag, "Bool": {"kms:GrantIsForAWSResource": "true"}}
    ebs = found["Allow Databricks to use KMS key for EBS"]
    assert ebs["Principal"] == {"AWS": ROLE}
    assert ebs["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"]
    assert ebs["Condition"] == {"ForAnyValue:StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}}
    logs = found["Allow CloudWatch Logs of this account to use the key"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    # The deployment's flow-log group alone, not every log group of the account.
    group = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/provision/acme-basic/vpc-flow-logs"
    assert group == f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{log_group_name('acme-basic')}"
    assert logs["Condition"] == {"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": group}}
    assert all(s["Resource"] == "*" and s["Effect"] == "Allow" for s in policy["Statement"])
    # What the preflight and the emulator ask of an existing key, the generated one grants.
    for use_case in ("MANAGED_SERVICES", "STORAGE"):
        assert preflight_kms.missing_actions(policy, {DATABRICKS_ROOT}, preflight_kms.NEEDED[use_case], dbx_account) == []
    assert preflight_kms.missing_actions(policy, {ROLE}, preflight_kms.EBS_NEEDED, dbx_account) == []
    logs_context = {"kms:encryptioncontext:aws:logs:arn": group}
    assert preflight_kms.missing_actions(policy, {"logs.eu-west-1.amazonaws.com"}, preflight_kms.LOGS_NEEDED, dbx_account, logs_context) == []
    other = {"kms:encryptioncontext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/someone/else"}
    assert preflight_kms.missing_actions(policy, {"logs.eu-west-1.amazonaws.com"}, preflight_kms.LOGS_NEEDED, dbx_account, other) != []


def test_a_managed_services_key_grants_nothing_for_storage() -> None:
    policy = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id="a", use_cases=("MANAGED_SERVICES",), role_arn=None)
    assert [s["Sid"] for s in policy["Statement"]] == [
        "Enable IAM User Permissions", "Allow Databricks to use KMS key for managed services in the control plane",
    ]
    assert preflight_kms.missing_actions(policy, {DATABRICKS_ROOT}, preflight_kms.NEEDED["STORAGE"], "a") == [
        "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey",
    ]


@pytest.mark.parametrize(
    ("statement", "missing"),
    [
        ({"Principal": {"AWS": DATABRICKS_AWS_ACCOUNT_ID}, "Action": "kms:*"}, []),
        ({"Principal": "*", "Action": ["kms:Encrypt", "kms:Decrypt"]}, []),
        ({"Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "kms:*"}, ["kms:Encrypt", "kms:Decrypt"]),
        ({"Principal": {"AWS": DATABRICKS_ROOT}, "Action": "kms:Encrypt"}, ["kms:Decrypt"]),
        ({"Principal": {"AWS": DATABRICKS_ROOT}, "Action": "kms:*", "Condition": {"StringEquals": {"aws:PrincipalTag/DatabricksAccountId": "other"}}},
         ["kms:Encrypt", "kms:Decrypt"]),
        ({"Principal": {"AWS": DATABRICKS_ROOT}, "Action": "kms:*", "Condition": {"StringLike": {"aws:principaltag/databricksaccountid": "acc*"}}}, []),
        ({"Principal": {"AWS": DATABRICKS_ROOT}, "NotAction": "kms:Sign"}, ["kms:Encrypt", "kms:Decrypt"]),
    ],
)
def test_preflight_reads_a_key_policy_as_kms_would(statement: dict[str, Any], missing: list[str]) -> None:
    policy = {"Statement": [{"Effect": "Allow", "Resource": "*", **statement}]}
    assert preflight_kms.missing_actions(policy, preflight_kms._DATABRICKS, preflight_kms.NEEDED["MANAGED_SERVICES"], "account") == missing


def test_a_deny_takes_away_what_an_allow_grants() -> None:
    policy = {"Statement": [
        {"Effect": "Allow", "Principal": {"AWS": DATABRICKS_ROOT}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:Decrypt", "Resource": "*"},
    ]}
    assert preflight_kms.missing_actions(policy, {DATABRICKS_ROOT}, ("kms:Encrypt", "kms:Decrypt"), "a") == ["kms:Decrypt"]


def test_kms_refusing_a_new_role_as_principal_is_retried_as_iam_propagation() -> None:
    # Needs ("MalformedPolicyDocumentException", "invalid principals") in clouds/aws/errors.py _PROPAGATION.
    error = ClientError(
        {"Error": {"Code": "MalformedPolicyDocumentException", "Message": "Policy contains a statement with one or more invalid principals."},
         "ResponseMetadata": {"HTTPStatusCode": 400}},
        "CreateKey",
    )
    assert error_rules().classify(error) == IAM_PROPAGATION


# --- KMS requests (Stubber) ---------------------------------------------------------------------------


class StubAws:
    def __init__(self, clients: dict[str, Any]) -> None:
        self.clients, self.stats = clients, CallStats()

    def __getitem__(self, cloud: str) -> Any:
        assert cloud == "aws"
        return self

    def client(self, service: str) -> Any:
        return self.clients[service]


@pytest.fixture(scope="module")
def kms() -> Any:
    # One client for the module (making one costs a fifth of a second); each test stubs it afresh.
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return session.client("kms")


def context(kms: Any, spec: Any, **kwargs: Any) -> Context:
    clock = FakeClock(start=0.0)
    ctx = Context(
        spec=spec, clients=StubAws({"kms": kms}),  # type: ignore[arg-type]
        retry=RetryPolicy(deadline_seconds=30, initial_seconds=1, max_seconds=2, clock=clock, sleep=clock.sleep, rng=random.Random(3), errors=error_rules()),
        poll=PollPolicy(initial_seconds=1, max_seconds=4, timeout_seconds=60, clock=clock, sleep=clock.sleep),
        log=structlog.wrap_logger(CapturingLogger(), processors=[]), facts={"aws_account_id": ACCOUNT}, **kwargs,
    )
    ctx.outputs["iam.crossaccount"] = {"role_arn": ROLE, "role_name": "acme-basic-crossaccount"}
    return ctx


def workspace_key(window: int = 7) -> KmsKey:
    return KmsKey("kms.workspace", use="workspace", use_cases=("MANAGED_SERVICES", "STORAGE"), role="iam.crossaccount", logs=True, deletion_window_days=window)


def metadata(state: str = "Enabled") -> dict[str, Any]:
    return {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN, "KeyState": state}}


def ours(step_id: str = "kms.workspace", deployment: str = "acme-basic") -> dict[str, Any]:
    return {"Tags": [{"TagKey": TAG_DEPLOYMENT, "TagValue": deployment}, {"TagKey": TAG_STEP, "TagValue": step_id}]}


def test_create_sends_the_policy_tags_and_alias(kms: Any) -> None:
    spec, step = parse({}), workspace_key()
    ctx = context(kms, spec)
    wanted = step.policy(ctx, ROLE)
    with Stubber(kms) as stub:
        stub.add_response("create_key", metadata(), {
            "Policy": ANY, "Description": "Databricks workspace key of deployment acme-basic", "KeyUsage": "ENCRYPT_DECRYPT",
            "KeySpec": "SYMMETRIC_DEFAULT", "Tags": ANY,
        })
        stub.add_response("create_alias", {}, {"AliasName": "alias/acme-basic-workspace", "TargetKeyId": KEY_ID})
        stub.add_response("enable_key_rotation", {}, {"KeyId": KEY_ID})
        recorded: list[dict[str, Any]] = []
        kms.meta.events.register("before-parameter-build.kms.CreateKey", lambda params, **_: recorded.append(copy.deepcopy(params)), unique_id="recorder")
        try:
            out = step.create(ctx)
            out = step.wait_ready(ctx, out)  # the policy went in the create call: no put_key_policy
        finally:
            kms.meta.events.unregister("before-parameter-build.kms.CreateKey", unique_id="recorder")
        stub.assert_no_pending_responses()
    (params,) = recorded
    assert json.loads(params["Policy"]) == wanted
    tags = {t["TagKey"]: t["TagValue"] for t in params["Tags"]}
    assert tags[TAG_DEPLOYMENT] == "acme-basic" and tags[TAG_STEP] == "kms.workspace" and tags["Owner"] == "platform-team"
    assert out == {"key_id": KEY_ID, "key_arn": KEY_ARN, "alias": "alias/acme-basic-workspace", "key_state": "Enabled",
                   "rotation_enabled": True, "policy_sha256": policy_digest(wanted)}


def test_find_refuses_an_alias_that_names_someone_elses_key(kms: Any) -> None:
    ctx = context(kms, parse({}))
    with Stubber(kms) as stub:
        stub.add_response("describe_key", metadata(), {"KeyId": "alias/acme-basic-workspace"})
        stub.add_response("list_resource_tags", ours(deployment="someone-else"), {"KeyId": KEY_ID})
        with pytest.raises(OwnershipConflict, match="alias/acme-basic-workspace"):
            workspace_key().find(ctx)


def test_find_without_an_alias_looks_for_the_tagged_key_only_after_a_create(kms: Any) -> None:
    spec, step = parse({}), workspace_key()
    missing = {"KeyId": "alias/acme-basic-workspace"}
    with Stubber(kms) as stub:
        stub.add_client_error("describe_key", "NotFoundException", "Alias is not found.", expected_params=missing)
        assert step.find(context(kms, spec)) is None  # never created: no search
        stub.add_client_error("describe_key", "NotFoundException", "Alias is not found.", expected_params=missing)
        stub.add_response("list_keys", {"Keys": [{"KeyId": "aws-managed"}, {"KeyId": KEY_ID}], "Truncated": False})
        stub.add_client_error("list_resource_tags", "AccessDeniedException", "AWS managed key", expected_params={"KeyId": "aws-managed"})
        stub.add_response("list_resource_tags", ours(), {"KeyId": KEY_ID})
        stub.add_response("describe_key", metadata(), {"KeyId": KEY_ID})
        stub.add_response("get_key_rotation_status", {"KeyRotationEnabled": False}, {"KeyId": KEY_ID})
        stub.add_response("get_key_policy", {"Policy": json.dumps({"Statement": []})}, {"KeyId": KEY_ID, "PolicyName": "default"})
        found = step.find(context(kms, spec, claimed={"kms.workspace"}))
        stub.assert_no_pending_responses()
    assert found is not None and found["key_id"] == KEY_ID and found["alias"] is None


def test_rerun_converges_a_changed_policy_and_rotation(kms: Any) -> None:
    spec, step = parse({}), workspace_key()
    ctx = context(kms, spec)
    drifted = {"key_id": KEY_ID, "key_arn": KEY_ARN, "alias": "alias/acme-basic-workspace", "key_state": "Enabled",
               "rotation_enabled": False, "policy_sha256": "0"}
    assert step.needs_converge(ctx, drifted)
    assert not step.needs_converge(ctx, {**drifted, "rotation_enabled": True, "policy_sha256": policy_digest(step.policy(ctx, ROLE))})
    with Stubber(kms) as stub:
        stub.add_response("put_key_policy", {}, {"KeyId": KEY_ID, "PolicyName": "default", "Policy": json.dumps(step.policy(ctx, ROLE))})
        stub.add_response("enable_key_rotation", {}, {"KeyId": KEY_ID})
        step.wait_ready(ctx, drifted)
        stub.assert_no_pending_responses()


def test_a_disabled_key_is_reported_not_reenabled(kms: Any) -> None:
    from provision.errors import ResourceFailed

    ctx = context(kms, parse({}))
    out = {"key_id": KEY_ID, "key_arn": KEY_ARN, "alias": "alias/acme-basic-workspace", "key_state": "Disabled"}
    with Stubber(kms) as stub:
        stub.add_response("describe_key", metadata("Disabled"), {"KeyId": KEY_ID})
        with pytest.raises(ResourceFailed, match="enable-key"):
            workspace_key().wait_ready(ctx, out)


def test_teardown_deletes_the_alias_and_schedules_deletion_with_the_window(kms: Any) -> None:
    step = workspace_key(window=21)
    ctx = context(kms, parse({}))
    remembered: dict[str, Any] = {}
    ctx.remember = remembered.__setitem__  # the engine's is the state file's
    out = {"key_id": KEY_ID, "key_arn": KEY_ARN}
    with Stubber(kms) as stub:
        stub.add_response("list_aliases", {"Aliases": [{"AliasName": "alias/acme-basic-workspace", "TargetKeyId": KEY_ID}]}, {"KeyId": KEY_ID})
        stub.add_response("delete_alias", {}, {"AliasName": "alias/acme-basic-workspace"})
        stub.add_response("schedule_key_deletion", {"KeyId": KEY_ID, "KeyState": "PendingDeletion"}, {"KeyId": KEY_ID, "PendingWindowInDays": 21})
        step.delete(ctx, out)
        # A retried teardown: the alias is gone and the key already scheduled.
        stub.add_response("list_aliases", {"Aliases": []}, {"KeyId": KEY_ID})
        stub.add_client_error("schedule_key_deletion", "KMSInvalidStateException", f"{KEY_ARN} is pending deletion.")
        stub.add_response("describe_key", metadata("PendingDeletion"), {"KeyId": KEY_ID})
        step.delete(ctx, out)
        stub.add_response("describe_key", {"KeyMetadata": {**metadata("PendingDeletion")["KeyMetadata"], "DeletionDate": "2030-01-08T00:00:00Z"}}, {"KeyId": KEY_ID})
        step.wait_deleted(ctx, out)
        stub.assert_no_pending_responses()
    record = remembered["pending_deletion:kms.workspace"]
    assert record["key_arn"] == KEY_ARN and record["key_state"] == "PendingDeletion" and record["window_days"] == 21
    assert record["deletion_date"].startswith("2030-01-08")


# --- preflight of existing keys ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sts() -> Any:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
    return session.client("sts")


def preflight(kms: Any, spec: Any, sts: Any = None) -> list[tuple[str, str]]:
    with pytest.raises(PreflightError) as info:
        preflight_kms.check(spec, {"kms": kms, "sts": sts}.__getitem__, "spec.toml", lambda fn, what: fn())
    return [(p.field, p.reason) for p in info.value.problems]


def test_preflight_names_each_field_of_an_unusable_key(kms: Any, sts: Any) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": OTHER_ARN}})
    managed_only = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id=spec.databricks.account_id,
                              use_cases=("MANAGED_SERVICES",), role_arn=None)
    with Stubber(kms) as stub, Stubber(sts) as sts_stub:
        sts_stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "me"})
        stub.add_response("describe_key", {"KeyMetadata": {**metadata("Disabled")["KeyMetadata"], "KeyUsage": "ENCRYPT_DECRYPT"}}, {"KeyId": KEY_ARN})
        stub.add_response("get_key_policy", {"Policy": json.dumps(managed_only)}, {"KeyId": KEY_ARN, "PolicyName": "default"})
        stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "x", "Arn": OTHER_ARN, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT"}}, {"KeyId": OTHER_ARN})
        stub.add_response("get_key_policy", {"Policy": json.dumps(managed_only)}, {"KeyId": OTHER_ARN, "PolicyName": "default"})
        found = preflight(kms, spec, sts)
    assert ("encryption.existing.managed_services_key_arn", f"KMS key {KEY_ARN} is Disabled; Databricks needs an enabled key") in found
    storage = [reason for field, reason in found if field == "encryption.existing.workspace_storage_key_arn"]
    assert len(storage) == 2 and "does not let Databricks" in storage[0] and "STORAGE" in storage[0]
    assert "cross-account role this deployment creates" in storage[1]
    assert len(found) == 3


def test_preflight_of_a_missing_key(kms: Any) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": KEY_ARN}})
    with Stubber(kms) as stub:
        stub.add_client_error("describe_key", "NotFoundException", "not found", expected_params={"KeyId": KEY_ARN})
        found = preflight(kms, spec)
    assert [f for f, _ in found] == ["encryption.existing.managed_services_key_arn", "encryption.existing.workspace_storage_key_arn"]


# --- preflight: the cross-account role's EBS grant and CloudWatch Logs' use of an existing key --------------

BOTH = ("MANAGED_SERVICES", "STORAGE")
GROUP = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/provision/acme-basic/vpc-flow-logs"
EBS_SID = "Allow Databricks to use KMS key for EBS"
VIA_EC2 = {"ForAnyValue:StringLike": {"kms:ViaService": "ec2.*.amazonaws.com"}}


def existing_policy(ebs: dict[str, Any] | None = None, logs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The documented key policy of an existing key for both use cases; `ebs` replaces its EBS statement
    (empty: none), `logs` is CloudWatch Logs' statement (None: none)."""
    policy = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id=parse().databricks.account_id, use_cases=BOTH, role_arn=ROLE)
    statements = [s for s in policy["Statement"] if s["Sid"] != EBS_SID or ebs is None]
    if ebs:
        statements.append({"Sid": EBS_SID, "Effect": "Allow", "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey"],
                           "Resource": "*", **ebs})
    if logs is not None:
        statements.append(logs)
    return {**policy, "Statement": statements}


def logs_grant(condition: dict[str, Any]) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"Service": "logs.us-east-1.amazonaws.com"}, "Resource": "*",
            "Action": ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"], "Condition": condition}


def preflight_problems(kms: Any, sts: Any, spec: Any, policy: dict[str, Any]) -> dict[str, list[str]]:
    with Stubber(kms) as stub, Stubber(sts) as sts_stub:
        sts_stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "me"})
        stub.add_response("describe_key", {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT"}})
        stub.add_response("get_key_policy", {"Policy": json.dumps(policy)}, {"KeyId": KEY_ARN, "PolicyName": "default"})
        found = preflight_kms.problems(spec, {"kms": kms, "sts": sts}.__getitem__, lambda fn, what: fn())
        stub.assert_no_pending_responses()
    by_field: dict[str, list[str]] = {}
    for p in found:
        by_field.setdefault(p.field, []).append(p.reason)
    return by_field


def test_preflight_knows_the_arn_of_the_role_this_tool_creates(kms: Any) -> None:
    spec = parse()
    role = CrossAccountRole("iam.crossaccount")
    assert preflight_kms.created_role_arn(spec, ACCOUNT) == f"arn:aws:iam::{ACCOUNT}:role/{role.role_name(context(kms, spec))}" == ROLE


@pytest.mark.parametrize(
    ("ebs", "granted"),
    [
        ({"Principal": {"AWS": ROLE}, "Condition": VIA_EC2}, True),  # the role by name (it exists on a rerun)
        ({"Principal": "*", "Condition": {**VIA_EC2, "ArnEquals": {"aws:PrincipalArn": ROLE}}}, True),
        ({"Principal": {"AWS": "*"}, "Condition": {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/*-crossaccount"}}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}}, True),
        # The account root only defers to IAM, and the role's own policy grants no KMS actions.
        ({"Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Condition": VIA_EC2}, False),
        ({"Principal": "*", "Condition": {"ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/someone-else"}}}, False),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "111122223333"}}}, False),
        ({}, False),  # no EBS statement at all
    ],
)
def test_preflight_checks_the_ebs_grant_for_the_role_this_tool_creates(kms: Any, sts: Any, ebs: dict[str, Any], granted: bool) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": KEY_ARN}})
    assert spec.existing.cross_account_role_arn is None
    found = preflight_problems(kms, sts, spec, existing_policy(ebs=ebs))
    if granted:
        assert found == {}
        return
    [reason] = found.pop("encryption.existing.workspace_storage_key_arn")
    assert found == {}  # the managed-services use of the same key needs no EBS grant
    assert f"cross-account role this deployment creates ({ROLE})" in reason and "EBS" in reason
    assert "missing kms:Decrypt, kms:GenerateDataKey, kms:CreateGrant, kms:DescribeKey" in reason
    assert f"aws:PrincipalArn = {ROLE}" in reason


@pytest.mark.parametrize(
    ("encryption", "network_security", "logs", "field"),
    [
        ({}, {}, None, "workspace_storage"),  # flow logs on, no statement for CloudWatch Logs
        ({}, {}, logs_grant({"ArnEquals": {"kms:EncryptionContext:aws:logs:arn": GROUP}}), None),
        ({}, {}, logs_grant({"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:*"}}), None),
        ({}, {}, logs_grant({"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:/other/*"}}), "workspace_storage"),
        ({}, {"flow_logs": False}, None, None),  # no log group uses the key
        ({"workspace_storage": False}, {}, None, "managed_services"),  # the only key encrypts the group
    ],
)
def test_preflight_checks_that_cloudwatch_logs_may_use_the_key_of_the_flow_log_group(
    kms: Any, sts: Any, encryption: dict[str, Any], network_security: dict[str, Any], logs: dict[str, Any] | None, field: str | None,
) -> None:
    uses = ("managed_services",) if encryption.get("workspace_storage") is False else ("managed_services", "workspace_storage")
    spec = parse({**encryption, "existing": {f"{use}_key_arn": KEY_ARN for use in uses}}, network_security=network_security)
    policy = existing_policy(logs=logs)
    if len(uses) == 1:
        policy = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id=spec.databricks.account_id, use_cases=("MANAGED_SERVICES",), role_arn=None)
    found = preflight_problems(kms, sts, spec, policy)
    if field is None:
        assert found == {}
        return
    assert list(found) == [f"encryption.existing.{field}_key_arn"]
    [reason] = found[f"encryption.existing.{field}_key_arn"]
    assert f"does not let CloudWatch Logs (logs.us-east-1.amazonaws.com) use it for the flow-log group {GROUP}" in reason
    assert "missing kms:Encrypt, kms:Decrypt, kms:ReEncryptFrom, kms:ReEncryptTo, kms:GenerateDataKey, kms:DescribeKey" in reason


def test_preflight_fails_before_anything_exists_when_cloudwatch_logs_may_not_use_the_key(kms: Any, sts: Any) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": KEY_ARN}}, network_security={})
    with Stubber(kms) as stub, Stubber(sts) as sts_stub:
        sts_stub.add_response("get_caller_identity", {"Account": ACCOUNT, "Arn": f"arn:aws:iam::{ACCOUNT}:user/me", "UserId": "me"})
        stub.add_response("describe_key", {"KeyMetadata": {"KeyId": KEY_ID, "Arn": KEY_ARN, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT"}})
        stub.add_response("get_key_policy", {"Policy": json.dumps(existing_policy())}, {"KeyId": KEY_ARN, "PolicyName": "default"})
        found = preflight(kms, spec, sts)
    assert [f for f, _ in found] == ["encryption.existing.workspace_storage_key_arn"] and "CloudWatch Logs" in found[0][1]


# --- the key policy converges to the narrowed CloudWatch Logs statement ----------------------------------


def test_a_key_made_with_the_account_wide_logs_statement_converges_in_place(kms: Any) -> None:
    ctx = context(kms, parse({}, network_security={}))
    step = workspace_key()  # its flow-log group uses it
    wanted = step.policy(ctx, ROLE)
    earlier = copy.deepcopy(wanted)
    [logs] = [s for s in earlier["Statement"] if s["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}]
    logs["Condition"] = {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:*"}}
    found = {"key_id": KEY_ID, "key_arn": KEY_ARN, "alias": "alias/acme-basic-workspace", "key_state": "Enabled", "rotation_enabled": True}
    assert step.needs_converge(ctx, {**found, "policy_sha256": policy_digest(earlier)})
    assert not step.needs_converge(ctx, {**found, "policy_sha256": policy_digest(wanted)})
    # A key no log group uses loses the statement it was given before.
    unused = KmsKey("kms.workspace", use="workspace", use_cases=BOTH, role="iam.crossaccount", logs=False)
    assert unused.needs_converge(ctx, {**found, "policy_sha256": policy_digest(wanted)})
    assert not any("Service" in s["Principal"] for s in unused.policy(ctx, ROLE)["Statement"])
    with Stubber(kms) as stub:
        stub.add_response("put_key_policy", {}, {"KeyId": KEY_ID, "PolicyName": "default", "Policy": json.dumps(wanted)})
        step.wait_ready(ctx, {**found, "policy_sha256": policy_digest(earlier)})
        stub.assert_no_pending_responses()


# --- key configurations: only what this step created is deleted ----------------------------------------


class FakeAccount:
    """The Account API's encryption_keys and workspaces, as CustomerManagedKey uses them."""

    def __init__(self, configs: list[Any]) -> None:
        from types import SimpleNamespace

        self.configs, self.deleted = configs, []
        self.encryption_keys, self.workspaces = self, SimpleNamespace(list=lambda: [])  # no workspace uses it

    def list(self) -> list[Any]:
        return [c for c in self.configs if c.customer_managed_key_id not in self.deleted]

    def delete(self, customer_managed_key_id: str) -> None:
        self.deleted.append(customer_managed_key_id)

    def get(self, customer_managed_key_id: str) -> None:
        return None  # gone


class DbxClients(dict):
    stats = CallStats()


def dbx_context(account: FakeAccount, claimed: set[str]) -> Context:
    from types import SimpleNamespace

    clock = FakeClock(start=0.0)
    ctx = Context(
        spec=parse({}), clients=DbxClients(databricks=SimpleNamespace(account=account)),  # type: ignore[arg-type]
        retry=RetryPolicy(deadline_seconds=5, clock=clock, sleep=clock.sleep, rng=random.Random(1), errors=error_rules()),
        poll=PollPolicy(initial_seconds=1, max_seconds=1, timeout_seconds=5, clock=clock, sleep=clock.sleep),
        log=structlog.wrap_logger(CapturingLogger(), processors=[]), claimed=claimed,
    )
    ctx.outputs["kms.workspace"] = {"key_arn": KEY_ARN, "alias": None}
    return ctx


@pytest.mark.parametrize(("claimed", "adopted"), [(set(), True), ({"dbx.key"}, False)])
def test_a_key_configuration_this_step_did_not_create_is_adopted_and_never_deleted(claimed: set[str], adopted: bool) -> None:
    from types import SimpleNamespace

    config = SimpleNamespace(customer_managed_key_id="cmk-1", aws_key_info=SimpleNamespace(key_arn=KEY_ARN), use_cases=list(BOTH))
    account = FakeAccount([config])
    ctx, step = dbx_context(account, claimed), CustomerManagedKey("dbx.key", key="kms.workspace", use_cases=BOTH)
    found = step.find(ctx)
    assert found == {"customer_managed_key_id": "cmk-1", "key_arn": KEY_ARN, "use_cases": sorted(BOTH), "adopted": adopted}
    assert set(found) == set(step.produces)
    step.delete(ctx, found)
    step.wait_deleted(ctx, found)
    assert account.deleted == ([] if adopted else ["cmk-1"])
    # A record from before the mark existed: the same rule decides.
    account.deleted.clear()
    step.delete(ctx, {k: v for k, v in found.items() if k != "adopted"})
    assert account.deleted == ([] if adopted else ["cmk-1"])
