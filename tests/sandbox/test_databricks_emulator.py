"""The Databricks Account API emulator, driven by the real databricks-sdk over HTTP, with AWS objects
created through boto3 in moto's in-process backends (the same ones the emulator reads)."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import boto3
import pytest
import requests
import sandbox_helpers as helpers
from databricks.sdk import AccountClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    InvalidState,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    Unauthenticated,
)
from databricks.sdk.service.provisioning import (
    CreateCredentialAwsCredentials,
    CreateCredentialStsRole,
    ErrorType,
    PricingTier,
    RootBucketInfo,
    VpcStatus,
    Workspace,
    WorkspaceStatus,
)
from sandbox_helpers import account_client, settled, trust_policy

from provision.clouds.databricks import sandbox as emulator
from provision.sandbox.settings import (
    DATABRICKS_AWS_ACCOUNT_ID,
    SANDBOX_AWS_ACCOUNT_ID,
    SandboxSettings,
)

REGION = "us-east-1"
PROVISIONING = 0.3  # the emulator_under_moto fixture (conftest.py) sets it before each test

pytestmark = pytest.mark.usefixtures("emulator_under_moto")


# --- AWS helpers (boto3 against moto) ---------------------------------------------------------------


def make_role(policy: str) -> str:
    return helpers.make_role(boto3.client("iam"), policy)


def good_role(settings: SandboxSettings) -> str:
    return helpers.databricks_role(boto3.client("iam"), settings.account_id)


def make_bucket() -> str:
    return helpers.make_bucket(boto3.client("s3", region_name=REGION))


def make_vpc(
    region: str = REGION, dns_hostnames: bool = True, prefix: int = 24, zones: tuple[str, str] = ("a", "b")
) -> tuple[str, list[str], str]:
    ec2 = boto3.client("ec2", region_name=region)
    made = helpers.databricks_vpc(ec2, region, dns_hostnames, prefix, zones, spacing=64)
    return made["vpc"], made["subnets"], made["sg"]


# --- Databricks helpers ---------------------------------------------------------------------------------


def create_credentials(acc: AccountClient, role_arn: str, name: str = "creds"):
    return acc.credentials.create(
        credentials_name=name,
        aws_credentials=CreateCredentialAwsCredentials(sts_role=CreateCredentialStsRole(role_arn=role_arn)),
    )


def create_network(acc: AccountClient, vpc: tuple[str, list[str], str], name: str = "net"):
    vpc_id, subnets, sg = vpc
    return acc.networks.create(network_name=name, vpc_id=vpc_id, subnet_ids=subnets, security_group_ids=[sg])


def create_stack(acc: AccountClient, settings: SandboxSettings, vpc: tuple[str, list[str], str] | None = None):
    creds = create_credentials(acc, good_role(settings))
    storage = acc.storage.create(storage_configuration_name="root", root_bucket_info=RootBucketInfo(make_bucket()))
    network = create_network(acc, vpc or make_vpc())
    return creds, storage, network


def create_workspace(acc: AccountClient, creds, storage, network, region: str = REGION, **kwargs) -> Workspace:
    return acc.workspaces.create(
        workspace_name="Analytics Prod",
        aws_region=region,
        credentials_id=creds.credentials_id,
        storage_configuration_id=storage.storage_configuration_id,
        network_id=network.network_id,
        pricing_tier=PricingTier.PREMIUM,
        **kwargs,
    ).response


# --- tests ------------------------------------------------------------------------------------------


def test_host_metadata_probe_fills_account_id(dbx_url: str, settings: SandboxSettings) -> None:
    meta = requests.get(f"{dbx_url}/.well-known/databricks-config", timeout=5).json()
    assert meta["account_id"] == settings.account_id and meta["cloud"] == "AWS" and "workspace_id" not in meta
    config = Config(host=dbx_url, token=settings.token, auth_type="pat", retry_timeout_seconds=10)
    assert config.account_id == settings.account_id


def test_happy_path_reaches_running(acc: AccountClient, settings: SandboxSettings) -> None:
    creds, storage, network = create_stack(acc, settings)
    assert creds.aws_credentials.sts_role.role_arn.startswith(f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/")
    # SDK 0.156's StsRole drops external_id, but the wire shape carries it like the real API.
    [raw] = emulator.inventory(settings)[settings.account_id]["credentials"]
    assert raw["aws_credentials"]["sts_role"]["external_id"] == settings.account_id
    assert creds.account_id == settings.account_id and creds.creation_time
    assert storage.root_bucket_info.bucket_name.startswith("root-")
    assert network.vpc_status == VpcStatus.UNATTACHED and not network.error_messages

    waiter = acc.workspaces.create(
        workspace_name="Analytics Prod",
        aws_region=REGION,
        credentials_id=creds.credentials_id,
        storage_configuration_id=storage.storage_configuration_id,
        network_id=network.network_id,
        pricing_tier=PricingTier.PREMIUM,
    )
    ws = waiter.response
    assert isinstance(ws.workspace_id, int) and ws.workspace_status == WorkspaceStatus.PROVISIONING
    assert ws.deployment_name == "analytics-prod" and ws.workspace_status_message

    running = waiter.result(timeout=timedelta(seconds=10))  # the SDK's own poller
    assert running.workspace_status == WorkspaceStatus.RUNNING
    # Databricks wrote into the (unversioned) root bucket, all under this workspace's prefixes.
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=storage.root_bucket_info.bucket_name)
    assert listed["KeyCount"] >= 2 and all(str(ws.workspace_id) in o["Key"] for o in listed["Contents"])
    net = acc.networks.get(network.network_id)
    assert net.vpc_status == VpcStatus.VALID and net.workspace_id == ws.workspace_id
    assert [w.workspace_id for w in acc.workspaces.list()] == [ws.workspace_id]


def test_lists_are_bare_arrays(acc: AccountClient, dbx_url: str, settings: SandboxSettings) -> None:
    create_stack(acc, settings)
    headers = {"Authorization": f"Bearer {settings.token}"}
    for segment in ("credentials", "storage-configurations", "networks", "workspaces"):
        resp = requests.get(f"{dbx_url}/api/2.0/accounts/{settings.account_id}/{segment}", headers=headers, timeout=5)
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
        assert isinstance(resp.json(), list)
        assert len(resp.json()) == (0 if segment == "workspaces" else 1)
    assert len(acc.credentials.list()) == 1 and acc.workspaces.list() == []


def test_iam_propagation_refused_then_accepted(acc: AccountClient, settings: SandboxSettings) -> None:
    settings.iam_propagation_seconds = 0.4
    role = good_role(settings)
    with pytest.raises(BadRequest) as err:
        create_credentials(acc, role)
    assert err.value.error_code == "MALFORMED_REQUEST"
    assert str(err.value).startswith("Failed credentials validation checks:")
    time.sleep(0.45)
    assert create_credentials(acc, role).credentials_id


@pytest.mark.parametrize(
    "principal, external_id",
    [
        ("arn:aws:iam::999999999999:root", None),  # wrong principal, no external id
        ("arn:aws:iam::999999999999:root", "ACCOUNT"),  # wrong principal, right external id
        (f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root", None),  # missing external id
        (DATABRICKS_AWS_ACCOUNT_ID, "someone-else"),  # wrong external id
    ],
)
def test_bad_trust_policy_always_refused(
    acc: AccountClient, settings: SandboxSettings, principal: str, external_id: str | None
) -> None:
    role = make_role(trust_policy(principal, settings.account_id if external_id == "ACCOUNT" else external_id))
    with pytest.raises(BadRequest) as err:
        create_credentials(acc, role)
    assert err.value.error_code == "MALFORMED_REQUEST" and "trust policy" in str(err.value)


def test_trust_policy_accepts_bare_account_principal(acc: AccountClient, settings: SandboxSettings) -> None:
    assert create_credentials(acc, make_role(trust_policy(DATABRICKS_AWS_ACCOUNT_ID, settings.account_id)))


def test_missing_role_refused(acc: AccountClient) -> None:
    with pytest.raises(BadRequest, match="Verify that the role exists") as err:
        create_credentials(acc, f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/nope")
    assert err.value.error_code == "MALFORMED_REQUEST"


def test_storage_requires_existing_bucket(acc: AccountClient) -> None:
    with pytest.raises(InvalidParameterValue, match="Root bucket missing-bucket does not exist"):
        acc.storage.create(storage_configuration_name="root", root_bucket_info=RootBucketInfo("missing-bucket"))


def test_in_use_deletes_refused_until_workspace_deleted(acc: AccountClient, settings: SandboxSettings) -> None:
    creds, storage, network = create_stack(acc, settings)
    ws = create_workspace(acc, creds, storage, network)
    for delete in (
        lambda: acc.credentials.delete(creds.credentials_id),
        lambda: acc.storage.delete(storage.storage_configuration_id),
        lambda: acc.networks.delete(network.network_id),
    ):
        with pytest.raises(InvalidState) as err:
            delete()
        assert err.value.error_code == "INVALID_STATE" and str(ws.workspace_id) in str(err.value)

    assert acc.workspaces.delete(ws.workspace_id).workspace_id == ws.workspace_id
    with pytest.raises(ResourceDoesNotExist):
        acc.workspaces.get(ws.workspace_id)
    acc.networks.delete(network.network_id)
    acc.storage.delete(storage.storage_configuration_id)
    acc.credentials.delete(creds.credentials_id)
    assert acc.credentials.list() == [] and acc.networks.list() == []


def test_unknown_ids_are_404(acc: AccountClient, dbx_url: str, settings: SandboxSettings) -> None:
    missing = str(uuid.uuid4())
    for call in (
        lambda: acc.credentials.get(missing),
        lambda: acc.credentials.delete(missing),
        lambda: acc.storage.get(missing),
        lambda: acc.networks.delete(missing),
        lambda: acc.workspaces.get(1234),
        lambda: acc.workspaces.delete(1234),
    ):
        with pytest.raises(ResourceDoesNotExist) as err:
            call()
        assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    resp = requests.get(
        f"{dbx_url}/api/2.0/accounts/{settings.account_id}/workspaces/1234",
        headers={"Authorization": f"Bearer {settings.token}"},
        timeout=5,
    )
    assert resp.status_code == 404 and resp.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_workspace_references_must_exist(acc: AccountClient, settings: SandboxSettings) -> None:
    creds, storage, network = create_stack(acc, settings)
    with pytest.raises(InvalidParameterValue, match="credentials_id"):
        acc.workspaces.create(
            workspace_name="w", aws_region=REGION, credentials_id="nope", storage_configuration_id="x"
        )
    create_workspace(acc, creds, storage, network)
    with pytest.raises(InvalidParameterValue, match="already used"):  # one network per workspace
        create_workspace(acc, creds, storage, network)


def test_auth_refused(dbx_url: str, settings: SandboxSettings) -> None:
    with pytest.raises(Unauthenticated):
        account_client(dbx_url, settings.account_id, "dapi-wrong").credentials.list()
    resp = requests.get(f"{dbx_url}/api/2.0/accounts/{settings.account_id}/credentials", timeout=5)
    assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"


def _vpc_variant(case: str) -> tuple[tuple[str, list[str], str], str]:
    vpc_id, subnets, sg = make_vpc()
    other_id, other_subnets, other_sg = make_vpc()
    return {
        "missing vpc": ((f"vpc-{uuid.uuid4().hex[:17]}", subnets, sg), "VPC vpc-"),
        "foreign subnet": ((vpc_id, [subnets[0], other_subnets[1]], sg), f"does not belong to VPC {vpc_id}"),
        "missing subnet": ((vpc_id, [subnets[0], "subnet-0000000000000000"], sg), "subnet-0000000000000000"),
        "foreign sg": ((vpc_id, subnets, other_sg), f"{other_sg} does not belong"),
        "missing sg": ((vpc_id, subnets, "sg-0000000000000000"), "sg-0000000000000000 does not exist"),
    }[case]


@pytest.mark.parametrize("case", ["missing vpc", "foreign subnet", "missing subnet", "foreign sg", "missing sg"])
def test_network_validation(acc: AccountClient, case: str) -> None:
    vpc, message = _vpc_variant(case)
    with pytest.raises(InvalidParameterValue, match=message) as err:
        create_network(acc, vpc)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_network_needs_two_zones(acc: AccountClient) -> None:
    with pytest.raises(InvalidParameterValue, match="two availability zones"):
        create_network(acc, make_vpc(zones=("a", "a")))


def test_network_found_in_other_region(acc: AccountClient, settings: SandboxSettings) -> None:
    network = create_network(acc, make_vpc(region="eu-west-1"))
    creds, storage, _ = create_stack(acc, settings)
    ws = create_workspace(acc, creds, storage, network, region="eu-west-1")
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING


@pytest.mark.parametrize(
    "vpc_kwargs, message",
    [({"dns_hostnames": False}, "DNS hostnames"), ({"prefix": 27}, "netmask /27")],
)
def test_workspace_fails_on_bad_network_then_recovers(
    acc: AccountClient, settings: SandboxSettings, vpc_kwargs: dict, message: str
) -> None:
    vpc = make_vpc(**vpc_kwargs)
    creds, storage, network = create_stack(acc, settings, vpc)
    ws = create_workspace(acc, creds, storage, network)
    failed = settled(acc, ws.workspace_id)
    assert failed.workspace_status == WorkspaceStatus.FAILED and message in failed.workspace_status_message
    broken = acc.networks.get(network.network_id)
    assert broken.vpc_status == VpcStatus.BROKEN
    assert broken.error_messages[0].error_type in (ErrorType.VPC, ErrorType.SUBNET)
    assert message in broken.error_messages[0].error_message

    # Fix the cause in AWS, point the workspace at a new network: a FAILED workspace re-provisions.
    good = create_network(acc, make_vpc(), name="net-fixed")
    patched = acc.workspaces.update(
        ws.workspace_id, Workspace(network_id=good.network_id), update_mask="network_id"
    ).response
    assert patched.workspace_status == WorkspaceStatus.PROVISIONING and patched.network_id == good.network_id
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING
    assert acc.networks.get(network.network_id).vpc_status == VpcStatus.UNATTACHED


def test_duplicate_names_allowed_but_not_deployment_names(acc: AccountClient, settings: SandboxSettings) -> None:
    role = good_role(settings)
    assert create_credentials(acc, role).credentials_id != create_credentials(acc, role).credentials_id
    assert len(acc.credentials.list()) == 2
    creds, storage, network = create_stack(acc, settings)
    create_workspace(acc, creds, storage, network, deployment_name="acme-prod")
    other = create_network(acc, make_vpc())
    with pytest.raises(ResourceAlreadyExists):
        create_workspace(acc, creds, storage, other, deployment_name="acme-prod")
    # A derived deployment name avoids ones already taken.
    assert create_workspace(acc, creds, storage, other).deployment_name == "analytics-prod"


def test_running_workspace_writes_its_root_bucket(acc: AccountClient, settings: SandboxSettings) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    creds, storage, network = create_stack(acc, settings)
    bucket = storage.root_bucket_info.bucket_name
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    ws = create_workspace(acc, creds, storage, network)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0  # nothing before RUNNING
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING

    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    prefix = f"{REGION}-prod/{ws.workspace_id}/"
    assert any(k.startswith(prefix) for k in keys) and any(k.startswith(f"ephemeral/{prefix}") for k in keys)
    versions = s3.list_object_versions(Bucket=bucket)["Versions"]
    assert len(versions) > len(keys)  # a versioned bucket also holds older versions
    with pytest.raises(s3.exceptions.ClientError) as err:
        s3.delete_bucket(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "BucketNotEmpty"


def test_accounts_are_separate_and_inventory(acc: AccountClient, dbx_url: str, settings: SandboxSettings) -> None:
    other_account = str(uuid.uuid4())
    other = account_client(dbx_url, other_account, settings.token)
    role = make_role(trust_policy(DATABRICKS_AWS_ACCOUNT_ID, other_account))
    assert create_credentials(other, role).account_id == other_account
    with pytest.raises(BadRequest, match="trust policy"):  # the role trusts the other account only
        create_credentials(acc, role)
    assert acc.credentials.list() == [] and len(other.credentials.list()) == 1

    creds, storage, network = create_stack(acc, settings)
    ws = create_workspace(acc, creds, storage, network)
    time.sleep(PROVISIONING)
    inv = emulator.inventory(settings)
    assert set(inv) == {settings.account_id, other_account}
    assert len(inv[other_account]["credentials"]) == 1 and inv[other_account]["workspaces"] == []
    [dumped] = inv[settings.account_id]["workspaces"]
    assert dumped["workspace_id"] == ws.workspace_id and dumped["workspace_status"] == "RUNNING"
    assert not any(k.startswith("_") for k in dumped)
    emulator.reset()
    assert emulator.inventory() == {}
