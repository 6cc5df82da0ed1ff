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


def spec_data(encryption: Any = None, tier: str = "ENTERPRISE") -> dict[str, Any]:
    data = tomllib.loads(EXAMPLE.read_text())
    data["databricks"]["pricing_tier"] = tier
    if encryption is not None:
        data["encryption"] = copy.deepcopy(encryption)
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


def steps_of(encryption: Any) -> dict[str, Any]:
    return {s.id: s for s in topologies.build(parse(encryption))}


def test_one_key_serves_both_use_cases_the_bucket_and_the_workspace() -> None:
    steps = steps_of({})
    key, config, ws = steps["kms.workspace"], steps["dbx.key"], steps["dbx.workspace"]
    assert isinstance(key, KmsKey) and key.use_cases == ("MANAGED_SERVICES", "STORAGE") and key.logs
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
    assert storage.use_cases == ("STORAGE",) and storage.logs and storage.deletion_window_days == 30
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
    assert layout.steps[0].logs


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
                        use_cases=("MANAGED_SERVICES", "STORAGE"), role_arn=ROLE, logs=True)
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
    assert logs["Condition"] == {"ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*"}}
    assert all(s["Resource"] == "*" and s["Effect"] == "Allow" for s in policy["Statement"])
    # What the preflight and the emulator ask of an existing key, the generated one grants.
    for use_case in ("MANAGED_SERVICES", "STORAGE"):
        assert preflight_kms.missing_actions(policy, {DATABRICKS_ROOT}, preflight_kms.NEEDED[use_case], dbx_account) == []
    assert preflight_kms.missing_actions(policy, {ROLE}, preflight_kms.EBS_NEEDED, dbx_account) == []


def test_a_managed_services_key_grants_nothing_for_storage() -> None:
    policy = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id="a", use_cases=("MANAGED_SERVICES",), role_arn=None, logs=False)
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


def preflight(kms: Any, spec: Any) -> list[tuple[str, str]]:
    with pytest.raises(PreflightError) as info:
        preflight_kms.check(spec, lambda service: kms, "spec.toml", lambda fn, what: fn())
    return [(p.field, p.reason) for p in info.value.problems]


def test_preflight_names_each_field_of_an_unusable_key(kms: Any) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": OTHER_ARN}})
    managed_only = key_policy(account=ACCOUNT, region="us-east-1", databricks_account_id=spec.databricks.account_id,
                              use_cases=("MANAGED_SERVICES",), role_arn=None, logs=False)
    with Stubber(kms) as stub:
        stub.add_response("describe_key", {"KeyMetadata": {**metadata("Disabled")["KeyMetadata"], "KeyUsage": "ENCRYPT_DECRYPT"}}, {"KeyId": KEY_ARN})
        stub.add_response("get_key_policy", {"Policy": json.dumps(managed_only)}, {"KeyId": KEY_ARN, "PolicyName": "default"})
        stub.add_response("describe_key", {"KeyMetadata": {"KeyId": "x", "Arn": OTHER_ARN, "KeyState": "Enabled", "KeyUsage": "ENCRYPT_DECRYPT"}}, {"KeyId": OTHER_ARN})
        stub.add_response("get_key_policy", {"Policy": json.dumps(managed_only)}, {"KeyId": OTHER_ARN, "PolicyName": "default"})
        found = preflight(kms, spec)
    assert ("encryption.existing.managed_services_key_arn", f"KMS key {KEY_ARN} is Disabled; Databricks needs an enabled key") in found
    storage = [reason for field, reason in found if field == "encryption.existing.workspace_storage_key_arn"]
    assert len(storage) == 1 and "does not let Databricks" in storage[0] and "STORAGE" in storage[0]
    assert len(found) == 2


def test_preflight_of_a_missing_key(kms: Any) -> None:
    spec = parse({"existing": {"managed_services_key_arn": KEY_ARN, "workspace_storage_key_arn": KEY_ARN}})
    with Stubber(kms) as stub:
        stub.add_client_error("describe_key", "NotFoundException", "not found", expected_params={"KeyId": KEY_ARN})
        found = preflight(kms, spec)
    assert [f for f, _ in found] == ["encryption.existing.managed_services_key_arn", "encryption.existing.workspace_storage_key_arn"]
