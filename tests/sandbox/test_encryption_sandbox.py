"""[encryption] in the sandbox, over HTTP with real boto3 clients and the real databricks-sdk: KMS's refusals
that moto lacks (clouds/aws/sandbox/kms.py), the emulator's customer-managed keys
(clouds/databricks/sandbox/keys.py), and the KMS and key-configuration steps driven by the engine.

Each fidelity test asserts a refusal: against plain moto or an emulator without the rule the call would
succeed and the test fail.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import structlog
from databricks.sdk import AccountClient
from databricks.sdk.errors import BadRequest, InvalidParameterValue, InvalidState
from databricks.sdk.service.provisioning import (
    CreateAwsKeyInfo,
    CreateCredentialAwsCredentials,
    CreateCredentialStsRole,
    KeyUseCase,
    PricingTier,
    RootBucketInfo,
    WorkspaceStatus,
)
from sandbox_helpers import (
    aws_client,
    client_error,
    databricks_role,
    databricks_vpc,
    delays,
    make_bucket,
    settled,
    trust_policy,
)
from structlog.testing import CapturingLogger

import provision.clouds.aws.sandbox.listing as aws_listing
import provision.clouds.databricks.sandbox.listing as dbx_listing
from provision import topologies
from provision.clouds import error_rules
from provision.clouds.aws import preflight_kms
from provision.clouds.aws.clients import AwsClients
from provision.clouds.aws.steps.flowlogs import log_group_name
from provision.clouds.aws.steps.iam import CrossAccountRole
from provision.clouds.aws.steps.kms import ExistingKey, KmsKey, key_policy
from provision.clouds.databricks.clients import DatabricksClients
from provision.clouds.databricks.steps.keys import CustomerManagedKey
from provision.orchestrator.clients import SANDBOX, CallStats, Clients, Target
from provision.orchestrator.engine import Engine
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, Context
from provision.orchestrator.wait import PollPolicy
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings
from provision.state.store import StateFile

REGION = "us-east-1"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "basic.toml"
BOTH = ("MANAGED_SERVICES", "STORAGE")


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(iam_propagation_seconds=0.0, workspace_provisioning_seconds=0.2)


@pytest.fixture(scope="module")
def kms(aws_url: str) -> Any:
    return aws_client("kms", aws_url)


@pytest.fixture(scope="module")
def iam(aws_url: str) -> Any:
    return aws_client("iam", aws_url)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def policy(dbx_account: str, use_cases: tuple[str, ...] = ("MANAGED_SERVICES",), role_arn: str | None = None, region: str = REGION) -> str:
    return json.dumps(key_policy(account=SANDBOX_AWS_ACCOUNT_ID, region=region, databricks_account_id=dbx_account, use_cases=use_cases,
                                 role_arn=role_arn))


def make_key(kms: Any, document: str | None) -> dict[str, Any]:
    return kms.create_key(**({"Policy": document} if document else {}))["KeyMetadata"]


# --- the steps, through the engine (first: they search every key of the sandbox) -------------------------


@pytest.fixture(scope="module")
def clients(aws_url: str, dbx_url: str, settings: SandboxSettings) -> Clients:
    """One client set for every run of the module (making boto3 and SDK clients is most of a small run)."""
    target = Target(SANDBOX, {"aws": aws_url, "databricks": dbx_url}, {"databricks": settings.token})
    stats = CallStats()
    return Clients(target, {
        "aws": AwsClients(region=REGION, target=target, stats=stats),
        "databricks": DatabricksClients(account_id=settings.account_id, host=None, profile=None, target=target, stats=stats),
    }, stats)


class Run:
    """A deployment of the cross-account role, one key for both use cases and its registration."""

    def __init__(self, clients: Clients, tmp_path: Path, existing_key: str | None = None) -> None:
        import tomllib

        data = tomllib.loads(EXAMPLE.read_text())
        data["name"] = unique("enc")
        data["databricks"]["pricing_tier"] = "ENTERPRISE"
        data["encryption"] = {"deletion_window_days": 9} if existing_key is None else {
            "existing": {"managed_services_key_arn": existing_key, "workspace_storage_key_arn": existing_key},
        }
        self.spec = topologies.from_dict(data)
        self.clients, self.stats = clients, clients.stats
        self.key = ExistingKey("kms.workspace", existing_key) if existing_key else KmsKey(
            "kms.workspace", use="workspace", use_cases=BOTH, role="iam.crossaccount", logs=True, deletion_window_days=9,
        )
        self.steps = [CrossAccountRole("iam.crossaccount"), self.key, CustomerManagedKey("dbx.key", key="kms.workspace", use_cases=BOTH)]
        self.path = tmp_path / "state.json"
        StateFile.new(self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None).save()

    def engine(self) -> Engine:
        ctx = Context(
            spec=self.spec, clients=self.clients, log=structlog.wrap_logger(CapturingLogger(), processors=[]),
            retry=RetryPolicy(errors=error_rules(), deadline_seconds=10, initial_seconds=0.05, max_seconds=0.2),
            poll=PollPolicy(initial_seconds=0.02, max_seconds=0.1, timeout_seconds=10, visibility_seconds=0.2),
        )
        return Engine(self.steps, StateFile.load(self.path), ctx, parallelism=1)

    def writes(self) -> int:
        return sum(v["writes"] for v in self.stats.summary().values())


def our_keys(aws_url: str, deployment: str) -> list[dict]:
    keys = aws_listing.KINDS["kms_key"].listing(aws_listing.sandbox_clients(aws_url))
    return [k for k in keys if {"Key": TAG_DEPLOYMENT, "Value": deployment} in k["Tags"]]


def test_a_key_is_created_kept_converged_and_left_pending_deletion(
    clients: Clients, aws_url: str, settings: SandboxSettings, kms: Any, acc: AccountClient, tmp_path: Path,
) -> None:
    run = Run(clients, tmp_path)
    out = run.engine().up()
    key = out["kms.workspace"]
    alias = f"alias/{run.spec.name}-workspace"
    assert key["alias"] == alias and key["key_state"] == "Enabled" and key["rotation_enabled"] is True
    assert kms.get_key_rotation_status(KeyId=key["key_id"])["KeyRotationEnabled"] is True
    assert kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"] == key["key_id"]
    document = json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"])
    assert out["iam.crossaccount"]["role_arn"] in json.dumps(document)
    config = acc.encryption_keys.get(out["dbx.key"]["customer_managed_key_id"])
    assert config.aws_key_info.key_arn == key["key_arn"] and config.aws_key_info.key_alias == alias
    assert out["dbx.key"]["adopted"] is False  # registered by this step: deleted on teardown (below)
    # CloudWatch Logs may use the key for this deployment's flow-log group, and for no other log group.
    logs = aws_client("logs", aws_url)
    other = f"/someone/{unique('else')}"
    assert client_error(logs.create_log_group, logGroupName=other, kmsKeyId=key["key_arn"])["Code"] == "AccessDeniedException"
    logs.create_log_group(logGroupName=log_group_name(run.spec.name), kmsKeyId=key["key_arn"])
    logs.delete_log_group(logGroupName=log_group_name(run.spec.name))

    before = run.writes()
    assert run.engine().up() == out and run.writes() == before  # a rerun adopts everything, changes nothing
    assert [k["KeyId"] for k in our_keys(aws_url, run.spec.name)] == [key["key_id"]]

    kms.disable_key_rotation(KeyId=key["key_id"])
    kms.put_key_policy(KeyId=key["key_id"], PolicyName="default", Policy=policy(settings.account_id))
    run.engine().up()  # converges in place: the same key
    assert kms.get_key_rotation_status(KeyId=key["key_id"])["KeyRotationEnabled"] is True
    assert json.loads(kms.get_key_policy(KeyId=key["key_id"], PolicyName="default")["Policy"]) == document

    run.engine().teardown()
    meta = kms.describe_key(KeyId=key["key_id"])["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion"
    assert our_keys(aws_url, run.spec.name) == []
    assert alias not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert config.customer_managed_key_id not in [c.customer_managed_key_id for c in acc.encryption_keys.list()]
    state = StateFile.load(run.path).to_json()
    assert state["facts"]["pending_deletion:kms.workspace"] == {
        "kind": "kms.key", "key_id": key["key_id"], "key_arn": key["key_arn"], "key_state": "PendingDeletion",
        "deletion_date": meta["DeletionDate"].isoformat(), "window_days": 9,
    }
    assert {s["id"]: s["status"] for s in state["steps"]}["kms.workspace"] == "deleted"


def test_a_crash_between_the_key_and_its_alias_does_not_leak_the_key(
    clients: Clients, aws_url: str, kms: Any, tmp_path: Path,
) -> None:
    run = Run(clients, tmp_path)
    client = run.clients["aws"].client("kms")

    def crash(**_: Any) -> None:
        raise RuntimeError("killed between CreateKey and CreateAlias")

    client.meta.events.register("before-call.kms.CreateAlias", crash, unique_id="crash")
    with pytest.raises(Exception, match="killed between"):
        run.engine().up()
    client.meta.events.unregister("before-call.kms.CreateAlias", unique_id="crash")
    [orphan] = our_keys(aws_url, run.spec.name)  # made, tagged, without its alias
    assert StateFile.load(run.path).to_json()["steps"][1]["create_attempted"] is True

    out = run.engine().up()
    assert out["kms.workspace"]["key_id"] == orphan["KeyId"]
    assert [k["KeyId"] for k in our_keys(aws_url, run.spec.name)] == [orphan["KeyId"]]
    assert kms.describe_key(KeyId=f"alias/{run.spec.name}-workspace")["KeyMetadata"]["KeyId"] == orphan["KeyId"]
    run.engine().teardown()
    assert our_keys(aws_url, run.spec.name) == []


def ebs_for_roles_like(document: str, pattern: str) -> str:
    """The key policy with its EBS statement for any principal whose ARN matches `pattern`: how a key
    grants a role that does not exist yet (a key policy naming it would be refused)."""
    parsed = json.loads(document)
    for statement in parsed["Statement"]:
        if statement["Sid"] == "Allow Databricks to use KMS key for EBS":
            statement["Principal"] = "*"
            statement["Condition"]["ArnLike"] = {"aws:PrincipalArn": pattern}
    return json.dumps(parsed)


def test_an_existing_key_is_checked_used_and_left_alone(
    clients: Clients, aws_url: str, settings: SandboxSettings, kms: Any, acc: AccountClient, tmp_path: Path,
) -> None:
    root = f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:root"
    bare = make_key(kms, None)["Arn"]
    spec = Run(clients, tmp_path, existing_key=bare).spec
    aws = aws_listing.sandbox_clients(aws_url)
    found = preflight_kms.problems(spec, aws, lambda fn, what: fn())
    assert {p.field for p in found} == {"encryption.existing.managed_services_key_arn", "encryption.existing.workspace_storage_key_arn"}
    assert all("does not let Databricks" in p.reason for p in found if p.field.startswith("encryption.existing.managed"))

    # The account root alone does not let the role this deployment creates (its name is known) use the key.
    documented = policy(settings.account_id, BOTH, role_arn=root)
    rooted = make_key(kms, documented)
    rooted_spec = Run(clients, tmp_path, existing_key=rooted["Arn"]).spec
    [found] = preflight_kms.problems(rooted_spec, aws, lambda fn, what: fn())
    assert found.field == "encryption.existing.workspace_storage_key_arn"
    assert f"creates (arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/{rooted_spec.name}-crossaccount)" in found.reason

    good = make_key(kms, ebs_for_roles_like(documented, f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/enc-*-crossaccount"))
    kms.create_alias(AliasName=f"alias/{unique('mine')}", TargetKeyId=good["KeyId"])
    # The user registered the key with Databricks already: that registration is theirs.
    theirs = register(acc, good["Arn"], BOTH).customer_managed_key_id
    run = Run(clients, tmp_path, existing_key=good["Arn"])
    assert preflight_kms.problems(run.spec, aws, lambda fn, what: fn()) == []
    out = run.engine().up()
    assert out["kms.workspace"]["key_arn"] == good["Arn"] and out["kms.workspace"]["alias"].startswith("alias/mine-")
    assert out["dbx.key"]["customer_managed_key_id"] == theirs and out["dbx.key"]["adopted"] is True
    run.engine().teardown()
    meta = kms.describe_key(KeyId=good["KeyId"])["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"  # the user's key: never scheduled for deletion
    assert "pending_deletion:kms.workspace" not in StateFile.load(run.path).to_json()["facts"]
    assert acc.encryption_keys.get(theirs).aws_key_info.key_arn == good["Arn"]  # adopted: released, not deleted
    acc.encryption_keys.delete(theirs)


# --- KMS: what moto accepts and AWS refuses --------------------------------------------------------------


def test_a_key_policy_naming_a_missing_or_new_role_is_refused(kms: Any, iam: Any, settings: SandboxSettings) -> None:
    ghost = f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/{unique('ghost')}"
    error = client_error(kms.create_key, Policy=policy(settings.account_id, ("STORAGE",), ghost))
    assert error["Code"] == "MalformedPolicyDocumentException" and "invalid principals" in error["Message"]
    key = make_key(kms, policy(settings.account_id))
    assert client_error(kms.put_key_policy, KeyId=key["KeyId"], PolicyName="default",
                        Policy=policy(settings.account_id, ("STORAGE",), ghost))["Code"] == "MalformedPolicyDocumentException"
    with delays(settings, iam_propagation_seconds=60):  # IAM has not propagated the new role to KMS yet
        role = iam.create_role(RoleName=unique("young"), AssumeRolePolicyDocument=trust_policy("*", None))["Role"]["Arn"]
        assert client_error(kms.create_key, Policy=policy(settings.account_id, ("STORAGE",), role))["Code"] == "MalformedPolicyDocumentException"
    assert make_key(kms, policy(settings.account_id, ("STORAGE",), role))["KeyState"] == "Enabled"


def test_deletion_takes_a_7_to_30_day_window_once(kms: Any) -> None:
    key_id = make_key(kms, None)["KeyId"]
    for days in (6, 31):
        error = client_error(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=days)
        assert error["Code"] == "ValidationException" and "pendingWindowInDays" in error["Message"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    scheduled = kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "PendingDeletion" and meta["DeletionDate"] == scheduled["DeletionDate"]
    error = client_error(kms.schedule_key_deletion, KeyId=key_id, PendingWindowInDays=30)
    assert error["Code"] == "KMSInvalidStateException" and error["Message"] == f"{meta['Arn']} is pending deletion."
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["DeletionDate"] == scheduled["DeletionDate"]  # not moved


def test_rotation_needs_an_enabled_key(kms: Any) -> None:
    key_id = make_key(kms, None)["KeyId"]
    kms.disable_key(KeyId=key_id)
    assert client_error(kms.enable_key_rotation, KeyId=key_id)["Code"] == "DisabledException"
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert client_error(kms.enable_key_rotation, KeyId=key_id)["Code"] == "KMSInvalidStateException"
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_inventory_lists_customer_keys_not_pending_deletion(kms: Any, aws_url: str) -> None:
    tag = unique("inv")
    key_id = kms.create_key(Tags=[{"TagKey": TAG_DEPLOYMENT, "TagValue": tag}])["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{tag}", TargetKeyId=key_id)
    kms.describe_key(KeyId="alias/aws/s3")  # moto makes its stand-in for the AWS-managed S3 key

    def listed() -> tuple[list[dict], list[dict]]:
        clients = aws_listing.sandbox_clients(aws_url)
        return aws_listing.KINDS["kms_key"].listing(clients), aws_listing.KINDS["kms_alias"].listing(clients)

    keys, aliases = listed()
    [mine] = [k for k in keys if k["KeyId"] == key_id]
    assert {"Key": TAG_DEPLOYMENT, "Value": tag} in mine["Tags"]
    assert f"alias/{tag}" in [a["AliasName"] for a in aliases]
    assert not any(a["AliasName"].startswith("alias/aws/") for a in aliases)
    assert aws_listing.KINDS["kms_key"].owned and not aws_listing.KINDS["kms_alias"].owned
    kms.delete_alias(AliasName=f"alias/{tag}")
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    keys, aliases = listed()
    assert key_id not in [k["KeyId"] for k in keys] and f"alias/{tag}" not in [a["AliasName"] for a in aliases]


# --- the emulator's customer-managed keys ----------------------------------------------------------------


def register(acc: AccountClient, key_arn: str, use_cases: tuple[str, ...] = ("MANAGED_SERVICES",)) -> Any:
    return acc.encryption_keys.create(use_cases=[KeyUseCase(u) for u in use_cases], aws_key_info=CreateAwsKeyInfo(key_arn=key_arn))


@pytest.mark.parametrize(
    ("document", "use_cases", "missing"),
    [
        (None, ("MANAGED_SERVICES",), "kms:Encrypt"),  # KMS's default policy: the account only
        ("other-account", ("MANAGED_SERVICES",), "kms:Encrypt"),  # Databricks' principal tag of another account
        ("managed", ("STORAGE",), "kms:GenerateDataKey"),  # a managed-services key used for storage
    ],
)
def test_a_key_whose_policy_does_not_grant_databricks_is_refused(
    acc: AccountClient, kms: Any, settings: SandboxSettings, document: str | None, use_cases: tuple[str, ...], missing: str,
) -> None:
    text = {None: None, "other-account": policy(str(uuid.uuid4())), "managed": policy(settings.account_id)}[document]
    key = make_key(kms, text)
    with pytest.raises(BadRequest, match=f"does not allow .*{missing}") as info:
        register(acc, key["Arn"], use_cases)
    assert info.value.error_code == "MALFORMED_REQUEST"
    assert not [c for c in acc.encryption_keys.list() if c.aws_key_info.key_arn == key["Arn"]]


def test_a_disabled_or_missing_key_is_refused(acc: AccountClient, kms: Any, settings: SandboxSettings) -> None:
    key = make_key(kms, policy(settings.account_id))
    kms.disable_key(KeyId=key["KeyId"])
    with pytest.raises(BadRequest, match="Disabled"):
        register(acc, key["Arn"])
    with pytest.raises(BadRequest, match="does not exist"):
        register(acc, key["Arn"].replace(key["KeyId"], str(uuid.uuid4())))


def test_registration_has_the_api_shape(acc: AccountClient, kms: Any, settings: SandboxSettings, dbx_url: str) -> None:
    key = make_key(kms, policy(settings.account_id, BOTH, role_arn=f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:root"))
    config = acc.encryption_keys.create(
        use_cases=[KeyUseCase.MANAGED_SERVICES, KeyUseCase.STORAGE], aws_key_info=CreateAwsKeyInfo(key_arn=key["Arn"], key_alias="alias/x"),
    )
    assert config.account_id == settings.account_id and config.creation_time
    assert config.aws_key_info.key_region == REGION and config.aws_key_info.key_alias == "alias/x"
    assert config.aws_key_info.reuse_key_for_cluster_volumes is True
    assert set(config.use_cases) == {KeyUseCase.MANAGED_SERVICES, KeyUseCase.STORAGE}
    assert acc.encryption_keys.get(config.customer_managed_key_id).aws_key_info.key_arn == key["Arn"]
    listed = dbx_listing.list_account(dbx_url, settings.token, settings.account_id)["databricks_customer-managed-keys"]
    assert config.customer_managed_key_id in [c["customer_managed_key_id"] for c in listed]
    acc.encryption_keys.delete(config.customer_managed_key_id)


def workspace_stack(acc: AccountClient, aws_url: str, settings: SandboxSettings) -> dict[str, str]:
    creds = acc.credentials.create(
        credentials_name=unique("creds"),
        aws_credentials=CreateCredentialAwsCredentials(sts_role=CreateCredentialStsRole(databricks_role(aws_client("iam", aws_url), settings.account_id))),
    )
    storage = acc.storage.create(storage_configuration_name=unique("root"), root_bucket_info=RootBucketInfo(make_bucket(aws_client("s3", aws_url))))
    made = databricks_vpc(aws_client("ec2", aws_url))
    network = acc.networks.create(network_name=unique("net"), vpc_id=made["vpc"], subnet_ids=made["subnets"], security_group_ids=[made["sg"]])
    return {"credentials_id": creds.credentials_id, "storage_configuration_id": storage.storage_configuration_id, "network_id": network.network_id}


def create_workspace(acc: AccountClient, stack: dict[str, str], **keys: str) -> Any:
    return acc.workspaces.create(workspace_name=unique("ws"), aws_region=REGION, pricing_tier=PricingTier.ENTERPRISE, **stack, **keys).response


def test_workspace_keys_must_be_in_its_region_and_for_their_use_case(acc: AccountClient, aws_url: str, settings: SandboxSettings) -> None:
    stack = workspace_stack(acc, aws_url, settings)
    far = make_key(aws_client("kms", aws_url, "eu-west-1"), policy(settings.account_id, region="eu-west-1"))
    assert far["Arn"].startswith("arn:aws:kms:eu-west-1:")
    far_config = register(acc, far["Arn"])
    assert far_config.aws_key_info.key_region == "eu-west-1"
    with pytest.raises(InvalidParameterValue, match="region eu-west-1, not the workspace's region us-east-1"):
        create_workspace(acc, stack, managed_services_customer_managed_key_id=far_config.customer_managed_key_id)
    near = register(acc, make_key(aws_client("kms", aws_url), policy(settings.account_id))["Arn"])
    with pytest.raises(InvalidParameterValue, match="not STORAGE"):
        create_workspace(acc, stack, storage_customer_managed_key_id=near.customer_managed_key_id)
    assert [w for w in acc.workspaces.list() if w.network_id == stack["network_id"]] == []


def test_a_key_configuration_in_use_cannot_be_deleted(acc: AccountClient, aws_url: str, kms: Any, settings: SandboxSettings) -> None:
    stack = workspace_stack(acc, aws_url, settings)
    key = make_key(kms, policy(settings.account_id, BOTH, role_arn=f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:root"))
    config = register(acc, key["Arn"], BOTH).customer_managed_key_id
    ws = create_workspace(acc, stack, managed_services_customer_managed_key_id=config, storage_customer_managed_key_id=config)
    got = acc.workspaces.get(ws.workspace_id)
    assert got.managed_services_customer_managed_key_id == got.storage_customer_managed_key_id == config
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING
    with pytest.raises(InvalidState, match=str(ws.workspace_id)):
        acc.encryption_keys.delete(config)
    acc.workspaces.delete(ws.workspace_id)
    acc.encryption_keys.delete(config)
    assert config not in [c.customer_managed_key_id for c in acc.encryption_keys.list()]


def test_a_workspace_whose_key_is_disabled_fails_to_deploy(acc: AccountClient, aws_url: str, kms: Any, settings: SandboxSettings) -> None:
    stack = workspace_stack(acc, aws_url, settings)
    key = make_key(kms, policy(settings.account_id))
    ws = create_workspace(acc, stack, managed_services_customer_managed_key_id=register(acc, key["Arn"]).customer_managed_key_id)
    kms.disable_key(KeyId=key["KeyId"])
    failed = settled(acc, ws.workspace_id)
    assert failed.workspace_status == WorkspaceStatus.FAILED and "Disabled" in failed.workspace_status_message
    acc.workspaces.delete(ws.workspace_id)
