"""Each sandbox workspace's own REST API (clouds/databricks/sandbox/workspace_api.py), served at workspace_host(emulator, deployment)
and driven by the real databricks-sdk WorkspaceClient; the workspaces themselves are created through
the Account API with the real AccountClient, on AWS objects made with boto3 in moto's in-process
backends (the same ones the emulator reads)."""

from __future__ import annotations

import json
import time

import boto3
import pytest
import requests
from databricks.sdk import AccountClient, WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    InvalidParameterValue,
    InvalidState,
    NotFound,
    ResourceDoesNotExist,
    TemporarilyUnavailable,
    Unauthenticated,
)
from databricks.sdk.service.provisioning import (
    CreateCredentialAwsCredentials,
    CreateCredentialStsRole,
    PricingTier,
    RootBucketInfo,
    Workspace,
    WorkspaceStatus,
)
from sandbox_helpers import databricks_role, databricks_vpc, make_bucket, settled

from provision.clouds.databricks import sandbox as emulator
from provision.clouds.databricks.sandbox import store, workspace_host
from provision.sandbox.settings import SandboxSettings

REGION = "us-east-1"
PROVISIONING = 0.3  # the emulator_under_moto fixture (conftest.py) sets it before each test

pytestmark = pytest.mark.usefixtures("emulator_under_moto")


def workspace_client(dbx_url: str, deployment: str, token: str, retry_timeout_seconds: int = 10) -> WorkspaceClient:
    config = Config(
        host=workspace_host(dbx_url, deployment),
        token=token,
        auth_type="pat",
        retry_timeout_seconds=retry_timeout_seconds,
        http_timeout_seconds=5,
    )
    return WorkspaceClient(config=config)


# --- helpers (boto3 against moto, then the Account API) -------------------------------------------------


def make_workspace(acc: AccountClient, settings: SandboxSettings, dns_hostnames: bool = True, **kwargs) -> Workspace:
    """A workspace on a fresh role, bucket and VPC; PROVISIONING when returned."""
    role = databricks_role(boto3.client("iam"), settings.account_id)
    bucket = make_bucket(boto3.client("s3", region_name=REGION))
    vpc = databricks_vpc(boto3.client("ec2", region_name=REGION), dns_hostnames=dns_hostnames)

    creds = acc.credentials.create(
        credentials_name="creds",
        aws_credentials=CreateCredentialAwsCredentials(sts_role=CreateCredentialStsRole(role_arn=role)),
    )
    storage = acc.storage.create(storage_configuration_name="root", root_bucket_info=RootBucketInfo(bucket))
    network = acc.networks.create(
        network_name="net", vpc_id=vpc["vpc"], subnet_ids=vpc["subnets"], security_group_ids=[vpc["sg"]]
    )
    return acc.workspaces.create(
        workspace_name="Analytics Prod",
        aws_region=REGION,
        credentials_id=creds.credentials_id,
        storage_configuration_id=storage.storage_configuration_id,
        network_id=network.network_id,
        pricing_tier=PricingTier.PREMIUM,
        **kwargs,
    ).response


@pytest.fixture
def running(acc: AccountClient, settings: SandboxSettings) -> Workspace:
    ws = make_workspace(acc, settings)
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.RUNNING
    return ws


# --- tests ------------------------------------------------------------------------------------------


def test_workspace_host_and_metadata(dbx_url: str, settings: SandboxSettings, running: Workspace) -> None:
    host = workspace_host(dbx_url + "/", running.deployment_name)
    assert host == f"{dbx_url}/workspaces/{running.deployment_name}"
    meta = requests.get(f"{host}/.well-known/databricks-config", timeout=5)  # no auth, like a real host
    assert meta.status_code == 200 and meta.json() == {
        "oidc_endpoint": f"{host}/oidc",
        "account_id": settings.account_id,
        "workspace_id": str(running.workspace_id),
        "cloud": "AWS",
    }
    # The SDK's own probe fills these in and sees a workspace host, not an account one.
    config = Config(host=host, token=settings.token, auth_type="pat", retry_timeout_seconds=10)
    assert config.workspace_id == str(running.workspace_id) and config.account_id == settings.account_id
    assert not config.is_account_client and config.token_audience is None


def test_tokens_create_list_delete(dbx_url: str, settings: SandboxSettings, running: Workspace) -> None:
    w = workspace_client(dbx_url, running.deployment_name, settings.token)
    before = int(time.time() * 1000)
    created = w.tokens.create(comment="provision", lifetime_seconds=3600)
    value, info = created.token_value, created.token_info
    assert value.startswith("dapi") and len(value) == 36 and int(value[4:], 16) >= 0
    assert info.comment == "provision" and len(info.token_id) == 64
    assert before <= info.creation_time and info.expiry_time == info.creation_time + 3600 * 1000
    default = w.tokens.create().token_info  # no lifetime: two years, as the SDK documents
    assert default.expiry_time - default.creation_time == 2 * 365 * 24 * 3600 * 1000 and default.comment is None

    assert {t.token_id for t in w.tokens.list()} == {info.token_id, default.token_id}
    listed = requests.get(
        f"{workspace_host(dbx_url, running.deployment_name)}/api/2.0/token/list",
        headers={"Authorization": f"Bearer {settings.token}"},
        timeout=5,
    )
    assert listed.headers["X-Databricks-Org-Id"] == str(running.workspace_id)
    assert value not in listed.text and all("token_value" not in t for t in listed.json()["token_infos"])

    # The new token is a credential for this workspace (and the identity is the same user).
    as_pat = workspace_client(dbx_url, running.deployment_name, value)
    assert as_pat.current_user.me().user_name == w.current_user.me().user_name == "sandbox-admin@example.com"
    assert w.get_workspace_id() == running.workspace_id

    w.tokens.delete(info.token_id)
    assert [t.token_id for t in w.tokens.list()] == [default.token_id]
    with pytest.raises(Unauthenticated):
        as_pat.tokens.list()
    with pytest.raises(ResourceDoesNotExist) as err:
        w.tokens.delete(info.token_id)
    assert err.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(InvalidParameterValue):
        w.tokens.create(lifetime_seconds=0)


def test_expired_tokens_vanish(
    dbx_url: str, settings: SandboxSettings, running: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = workspace_client(dbx_url, running.deployment_name, settings.token)
    value = w.tokens.create(comment="short", lifetime_seconds=60).token_value
    later = time.time() * 1000 + 61_000
    monkeypatch.setattr(store, "now_ms", lambda: int(later))  # the server thread reads the module global
    assert w.tokens.list() == []
    with pytest.raises(Unauthenticated):
        workspace_client(dbx_url, running.deployment_name, value).tokens.list()


def test_auth_required(dbx_url: str, settings: SandboxSettings, acc: AccountClient, running: Workspace) -> None:
    with pytest.raises(Unauthenticated):
        workspace_client(dbx_url, running.deployment_name, "dapi-wrong").tokens.list()
    host = workspace_host(dbx_url, running.deployment_name)
    resp = requests.get(f"{host}/api/2.0/token/list", timeout=5)
    assert resp.status_code == 401 and resp.json()["error_code"] == "UNAUTHENTICATED"
    # A token of one workspace opens that workspace only.
    other = make_workspace(acc, settings, deployment_name="other-ws")
    settled(acc, other.workspace_id)
    value = workspace_client(dbx_url, "other-ws", settings.token).tokens.create().token_value
    with pytest.raises(Unauthenticated):
        workspace_client(dbx_url, running.deployment_name, value).tokens.list()
    # The workspace id the SDK sends back must be this host's.
    resp = requests.get(
        f"{host}/api/2.0/token/list",
        headers={"Authorization": f"Bearer {settings.token}", "X-Databricks-Workspace-Id": str(other.workspace_id)},
        timeout=5,
    )
    assert resp.status_code == 400 and resp.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_unknown_deployment_and_endpoint_are_404(dbx_url: str, settings: SandboxSettings, running: Workspace) -> None:
    with pytest.raises(ResourceDoesNotExist) as err:
        workspace_client(dbx_url, "no-such-workspace", settings.token).tokens.list()
    assert "no-such-workspace" in str(err.value)
    host = workspace_host(dbx_url, running.deployment_name)
    headers = {"Authorization": f"Bearer {settings.token}"}
    for method, path in (("GET", "api/2.0/clusters/list"), ("GET", "api/2.0/token/create")):
        resp = requests.request(method, f"{host}/{path}", headers=headers, timeout=5)
        assert resp.status_code == 404 and resp.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    with pytest.raises(NotFound):  # the workspace API is not the account API
        WorkspaceClient(config=Config(host=host, token=settings.token, auth_type="pat")).api_client.do(
            "GET", f"/api/2.0/accounts/{settings.account_id}/workspaces"
        )


def test_provisioning_workspace_unavailable_then_served(
    dbx_url: str, settings: SandboxSettings, acc: AccountClient
) -> None:
    settings.workspace_provisioning_seconds = 60
    ws = make_workspace(acc, settings)
    created = time.monotonic()
    host = workspace_host(dbx_url, ws.deployment_name)
    for path in (".well-known/databricks-config", "api/2.0/token/list"):
        resp = requests.get(f"{host}/{path}", headers={"Authorization": f"Bearer {settings.token}"}, timeout=5)
        assert resp.status_code == 503 and resp.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        assert resp.headers["Retry-After"] == "1"
    # The SDK retries a 503 like an unresolvable host, and gives up at its retry timeout.
    with pytest.raises(TimeoutError) as err:
        workspace_client(dbx_url, ws.deployment_name, settings.token, retry_timeout_seconds=1).tokens.list()
    assert isinstance(err.value.__cause__, TemporarilyUnavailable)
    assert emulator.inventory(settings)[settings.account_id]["tokens"] == []

    # A client that outlasts provisioning gets through: its first probe meets a 503, its retry RUNNING.
    settings.workspace_provisioning_seconds = time.monotonic() - created + 2.0  # (room for a loaded machine)
    assert requests.get(f"{host}/.well-known/databricks-config", timeout=5).status_code == 503
    w = workspace_client(dbx_url, ws.deployment_name, settings.token)
    assert w.config.workspace_id == str(ws.workspace_id)
    assert w.tokens.create(comment="after provisioning").token_info.comment == "after provisioning"


def test_failed_workspace_refused(dbx_url: str, settings: SandboxSettings, acc: AccountClient) -> None:
    ws = make_workspace(acc, settings, dns_hostnames=False)
    assert settled(acc, ws.workspace_id).workspace_status == WorkspaceStatus.FAILED
    with pytest.raises(InvalidState) as err:
        workspace_client(dbx_url, ws.deployment_name, settings.token).tokens.create(comment="x")
    assert err.value.error_code == "INVALID_STATE" and "FAILED" in str(err.value)


def test_running_workspace_serves_through_update(dbx_url: str, settings: SandboxSettings, acc: AccountClient) -> None:
    ws = make_workspace(acc, settings)
    settled(acc, ws.workspace_id)
    settings.workspace_provisioning_seconds = 60
    role_arn = acc.credentials.get(ws.credentials_id).aws_credentials.sts_role.role_arn
    other = acc.credentials.create(
        credentials_name="creds-2",
        aws_credentials=CreateCredentialAwsCredentials(sts_role=CreateCredentialStsRole(role_arn=role_arn)),
    )
    updated = acc.workspaces.update(
        ws.workspace_id, Workspace(credentials_id=other.credentials_id), update_mask="credentials_id"
    ).response
    assert updated.workspace_status == WorkspaceStatus.PROVISIONING  # redeploying, yet still served
    assert workspace_client(dbx_url, ws.deployment_name, settings.token).tokens.list() == []


def test_deleted_workspace_forgets_tokens(dbx_url: str, settings: SandboxSettings, acc: AccountClient) -> None:
    ws = make_workspace(acc, settings, deployment_name="acme-prod")
    settled(acc, ws.workspace_id)
    w = workspace_client(dbx_url, "acme-prod", settings.token)
    created = w.tokens.create(comment="ci", lifetime_seconds=600)

    inv = emulator.inventory(settings)
    [token] = inv[settings.account_id]["tokens"]
    assert token == {**created.token_info.as_dict(), "workspace_id": ws.workspace_id}
    assert created.token_value not in json.dumps(inv)  # secrets never leave the store

    acc.workspaces.delete(ws.workspace_id)
    with pytest.raises(ResourceDoesNotExist):
        w.tokens.list()
    with pytest.raises(ResourceDoesNotExist):
        workspace_client(dbx_url, "acme-prod", created.token_value).current_user.me()
    assert emulator.inventory(settings)[settings.account_id]["tokens"] == []

    # A new workspace under the same name starts without tokens; the old client still names the old
    # workspace in X-Databricks-Workspace-Id (learnt from host metadata), so it is refused.
    again = make_workspace(acc, settings, deployment_name="acme-prod")
    settled(acc, again.workspace_id)
    assert workspace_client(dbx_url, "acme-prod", settings.token).tokens.list() == []
    with pytest.raises(InvalidParameterValue, match="X-Databricks-Workspace-Id"):
        w.tokens.list()
