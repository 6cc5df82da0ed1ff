"""The Databricks emulator's workspace side of a governed workspace (issue #13): W1 warm-up, W3 (no metastore),
W4 storage credential validation, catalogs' storage roots and W7, grants, cluster policies, the default
namespace setting, and W8 (IAM refuses trust policies naming roles that do not exist).

Fixtures are made directly in the emulator's store (a RUNNING workspace, a metastore and its assignment in the
shapes unity_account.py writes) and in moto's in-process backends (IAM roles, S3 buckets, read by aws_bridge);
requests go through werkzeug's test Client, a few through the real databricks-sdk over HTTP.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import NotFound
from databricks.sdk.service.catalog import (
    AwsIamRoleRequest,
    CatalogInfo,
    GetPermissionsResponse,
    MetastoreAssignment,
    PermissionsChange,
    Privilege,
    SchemaInfo,
    StorageCredentialInfo,
    ValidateStorageCredentialResponse,
)
from databricks.sdk.service.compute import Policy
from databricks.sdk.service.settings import DefaultNamespaceSetting, StringMessage
from moto import mock_aws
from werkzeug.serving import make_server
from werkzeug.test import Client

from provision.clouds.aws.sandbox import patching
from provision.clouds.databricks import sandbox as emulator
from provision.clouds.databricks.sandbox import STORE, workspace_host
from provision.clouds.databricks.sandbox.unity_common import UC_MASTER_ROLE_ARN
from provision.sandbox.settings import SANDBOX_AWS_ACCOUNT_ID, SandboxSettings

ACCT = SandboxSettings().account_id
UC = "api/2.1/unity-catalog"
NOT_CONFIGURED = ("Failed to get credentials: AWS IAM role in the storage credential is not configured correctly. "
                  "Please contact your account admin to update the configuration.")
NOT_SELF_ASSUMING = "The IAM role for this storage credential is not self-assuming."
S3_ALL = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]


@pytest.fixture(scope="module")
def settings() -> SandboxSettings:
    return SandboxSettings(workspace_warmup_seconds=0.5, iam_propagation_seconds=0.0)


@pytest.fixture(scope="module")
def mocked() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(scope="module")
def client(settings: SandboxSettings) -> Client:
    return Client(emulator.make_databricks_app(settings))


@pytest.fixture
def iam(mocked: None) -> Any:
    return boto3.client("iam", region_name="us-east-1")


@pytest.fixture
def s3(mocked: None) -> Any:
    return boto3.client("s3", region_name="us-east-1")


def make_workspace(compute_mode: str | None = None, warm: bool = True) -> dict:
    workspace_id = int(str(uuid.uuid4().int)[:16])
    record = {
        "workspace_id": workspace_id, "workspace_name": "gov", "deployment_name": f"gov-{uuid.uuid4().hex[:8]}",
        "aws_region": "us-east-1", "account_id": ACCT, "pricing_tier": "PREMIUM", "workspace_status": "RUNNING",
        "workspace_status_message": "Workspace is running.", "creation_time": 0, "_served": True,
        "_running_since": time.monotonic() - (60 if warm else 0),
    }
    if compute_mode:
        record["compute_mode"] = compute_mode
    STORE.kind(ACCT, "workspaces")[workspace_id] = record
    return record


def assign(ws: dict, metastore_id: str) -> None:
    STORE.kind(ACCT, "metastore_assignments")[ws["workspace_id"]] = {
        "workspace_id": ws["workspace_id"], "metastore_id": metastore_id, "default_catalog_name": "main",
        "_assigned_at": time.monotonic(),
    }


@pytest.fixture
def ws(mocked: None, settings: SandboxSettings) -> dict:
    """A warm RUNNING classic workspace assigned to a metastore without a storage root."""
    emulator.reset()
    settings.iam_propagation_seconds = 0.0
    metastore_id = str(uuid.uuid4())
    STORE.kind(ACCT, "metastores")[metastore_id] = {
        "metastore_id": metastore_id, "name": "primary-us-east-1", "region": "us-east-1", "owner": "admin",
        "created_at": 0,
    }
    record = make_workspace()
    assign(record, metastore_id)
    return record


def call(client: Client, ws: dict, method: str, path: str, body: Any = None, query: dict | None = None,
         token: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {token or SandboxSettings().token}"}
    resp = client.open(f"/workspaces/{ws['deployment_name']}/{path}", method=method, headers=headers,
                       data=None if body is None else json.dumps(body), query_string=query,
                       content_type="application/json")
    return resp.status_code, json.loads(resp.get_data() or b"{}")


def error(status: int, code: str, message: str) -> tuple[int, dict]:
    return status, {"error_code": code, "message": message}


def uc_trust(role_arn: str, external_id: str, self_assume: bool = True, master: bool = True) -> str:
    statements = []
    if master:
        statements.append({"Effect": "Allow", "Principal": {"AWS": UC_MASTER_ROLE_ARN}, "Action": "sts:AssumeRole",
                           "Condition": {"StringEquals": {"sts:ExternalId": external_id}}})
    if self_assume:
        statements.append({"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:root"},
                           "Action": "sts:AssumeRole",
                           "Condition": {"ArnLike": {"aws:PrincipalArn": role_arn}, "StringEquals": {"sts:ExternalId": external_id}}})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def s3_policy(bucket: str, object_actions: list[str], list_bucket: bool = True) -> str:
    statements = [{"Effect": "Allow", "Action": object_actions, "Resource": f"arn:aws:s3:::{bucket}/*"}]
    if list_bucket:
        statements.append({"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": f"arn:aws:s3:::{bucket}"})
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def credential(client: Client, ws: dict, role_name: str, name: str = "cred") -> dict:
    arn = f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/{role_name}"
    status, body = call(client, ws, "POST", f"{UC}/storage-credentials",
                        {"name": name, "aws_iam_role": {"role_arn": arn}, "skip_validation": True})
    assert status == 200, body
    return body


def uc_role(iam: Any, s3: Any, client: Client, ws: dict, actions: list[str] = S3_ALL, **trust: bool) -> tuple[dict, str]:
    """A storage credential and its role (the trust as asked), whose inline policy grants `actions` on a new bucket."""
    name, bucket = f"uc-{uuid.uuid4().hex[:8]}", f"cat-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    cred = credential(client, ws, name, name=f"cred-{name}")
    arn = cred["aws_iam_role"]["role_arn"]
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=uc_trust(arn, cred["aws_iam_role"]["external_id"], **trust))
    iam.put_role_policy(RoleName=name, PolicyName="uc", PolicyDocument=s3_policy(bucket, actions))
    return cred, bucket


def validate(client: Client, ws: dict, cred: dict, url: str, **extra: Any) -> dict[str, tuple[str, str | None]]:
    status, body = call(client, ws, "POST", f"{UC}/validate-storage-credentials",
                        {"storage_credential_name": cred["name"], "url": url, **extra})
    assert status == 200, body
    parsed = ValidateStorageCredentialResponse.from_dict(body)
    assert parsed.is_dir is True
    return {r.operation.value: (r.result.value, r.message) for r in parsed.results}


def location(client: Client, ws: dict, cred: dict, url: str, name: str = "loc", **extra: Any) -> tuple[int, dict]:
    return call(client, ws, "POST", f"{UC}/external-locations", {"name": name, "url": url, "credential_name": cred["name"], **extra})


# --- W1, W3 -----------------------------------------------------------------------------------------


def test_w1_a_new_workspace_has_no_worker_environments_yet(client: Client, ws: dict) -> None:
    ws["_running_since"] = time.monotonic()
    warming = error(400, "INVALID_PARAMETER_VALUE",
                    f"Current organization {ws['workspace_id']} does not have any associated worker environments")
    for method, path in (("GET", "api/2.0/token/list"), ("GET", "api/2.0/preview/scim/v2/Me"),
                         ("GET", "api/2.0/settings/types/shield_esm_enablement_ws_db/names/default"),
                         ("GET", f"{UC}/catalogs"), ("GET", "api/2.0/policies/clusters/list"),
                         ("DELETE", "api/2.0/settings/types/default_namespace_ws/names/default")):
        assert call(client, ws, method, path) == warming, path
    meta = client.get(f"/workspaces/{ws['deployment_name']}/.well-known/databricks-config")
    assert meta.status_code == 200  # host metadata is exempt
    assert call(client, ws, "GET", "api/2.0/clusters/list")[1]["error_code"] == "ENDPOINT_NOT_FOUND"
    assert call(client, ws, "GET", "api/2.0/token/list", token="wrong")[0] == 401  # auth comes first
    ws["_running_since"] = time.monotonic() - 0.6
    assert call(client, ws, "GET", "api/2.0/token/list") == (200, {"token_infos": []})


def test_w3_no_metastore_assigned(client: Client, ws: dict) -> None:
    status, body = call(client, ws, "GET", f"{UC}/current-metastore-assignment")
    assert status == 200
    assert MetastoreAssignment.from_dict(body).workspace_id == ws["workspace_id"]
    del STORE.kind(ACCT, "metastore_assignments")[ws["workspace_id"]]
    missing = error(404, "METASTORE_DOES_NOT_EXIST", "No metastore assigned for the current workspace.")
    for method, path, body in (("GET", f"{UC}/current-metastore-assignment", None), ("GET", f"{UC}/catalogs", None),
                               ("POST", f"{UC}/storage-credentials", {"name": "x"}), ("GET", f"{UC}/schemas", None),
                               ("GET", f"{UC}/permissions/catalog/main", None),
                               ("POST", f"{UC}/validate-storage-credentials", {}), ("DELETE", f"{UC}/catalogs/x", None)):
        assert call(client, ws, method, path, body) == missing, path


# --- storage credentials and W4 ---------------------------------------------------------------------------


def test_storage_credential_gets_its_own_external_id(client: Client, ws: dict) -> None:
    status, body = call(client, ws, "POST", f"{UC}/storage-credentials", {"name": "c", "aws_iam_role": {}})
    assert status == 400 and "aws_iam_role.role_arn" in body["message"]
    first, second = credential(client, ws, "r1", "one"), credential(client, ws, "r2", "two")
    info = StorageCredentialInfo.from_dict(first)
    assert info.aws_iam_role.unity_catalog_iam_arn == UC_MASTER_ROLE_ARN and info.metastore_id
    ids = {first["aws_iam_role"]["external_id"], second["aws_iam_role"]["external_id"]}
    assert len(ids) == 2 and ACCT not in ids and all(uuid.UUID(i) for i in ids)
    assert call(client, ws, "POST", f"{UC}/storage-credentials",
                {"name": "ONE", "aws_iam_role": {"role_arn": first["aws_iam_role"]["role_arn"]}})[1]["error_code"] == "STORAGE_CREDENTIAL_ALREADY_EXISTS"
    listed = call(client, ws, "GET", f"{UC}/storage-credentials")[1]["storage_credentials"]
    assert [c["name"] for c in listed] == ["one", "two"]
    assert call(client, ws, "GET", f"{UC}/storage-credentials/nope")[0] == 404


def test_w4_role_missing_or_without_the_external_id(client: Client, ws: dict, iam: Any, s3: Any) -> None:
    cred = credential(client, ws, "not-created-yet")
    assert set(validate(client, ws, cred, "s3://some-bucket/").values()) == {("FAIL", NOT_CONFIGURED)}
    other, bucket = uc_role(iam, s3, client, ws)
    wrong = uc_trust(other["aws_iam_role"]["role_arn"], ACCT)  # the account id is not this credential's external id
    iam.update_assume_role_policy(RoleName=other["aws_iam_role"]["role_arn"].split("/")[-1], PolicyDocument=wrong)
    assert set(validate(client, ws, other, f"s3://{bucket}/").values()) == {("FAIL", NOT_CONFIGURED)}


def test_w4_a_new_role_has_not_propagated(client: Client, ws: dict, iam: Any, s3: Any, settings: SandboxSettings) -> None:
    cred, bucket = uc_role(iam, s3, client, ws)
    settings.iam_propagation_seconds = 60
    assert set(validate(client, ws, cred, f"s3://{bucket}/").values()) == {("FAIL", NOT_CONFIGURED)}
    status, body = location(client, ws, cred, f"s3://{bucket}/")
    assert (status, body["error_code"], body["message"]) == (403, "PERMISSION_DENIED", NOT_CONFIGURED)
    settings.iam_propagation_seconds = 0.0
    assert set(validate(client, ws, cred, f"s3://{bucket}/").values()) == {("PASS", None)}
    assert location(client, ws, cred, f"s3://{bucket}/")[0] == 200


def test_w4_a_changed_trust_or_policy_has_not_propagated(client: Client, ws: dict, iam: Any, s3: Any, settings: SandboxSettings) -> None:
    from moto.iam.models import iam_backends

    from provision.clouds.aws.sandbox.iam import CHANGED_AT

    cred, bucket = uc_role(iam, s3, client, ws)
    name, url = cred["aws_iam_role"]["role_arn"].split("/")[-1], f"s3://{bucket}/"
    moto_role = iam_backends[SANDBOX_AWS_ACCOUNT_ID]["aws"].get_role(name)

    def settle() -> None:  # as if the propagation delay had passed since every change so far
        moto_role.create_date -= timedelta(seconds=120)
        if hasattr(moto_role, CHANGED_AT):
            setattr(moto_role, CHANGED_AT, getattr(moto_role, CHANGED_AT) - timedelta(seconds=120))

    settings.iam_propagation_seconds = 60
    settle()
    assert set(validate(client, ws, cred, url).values()) == {("PASS", None)}
    # The trust rewritten (as UnityCatalogRole.wait_ready does for a new external id): not in force yet.
    with sandbox_requests():
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=uc_trust(cred["aws_iam_role"]["role_arn"], cred["aws_iam_role"]["external_id"]))
    assert set(validate(client, ws, cred, url).values()) == {("FAIL", NOT_CONFIGURED)}
    assert location(client, ws, cred, url)[1]["message"] == NOT_CONFIGURED
    settle()
    assert set(validate(client, ws, cred, url).values()) == {("PASS", None)}
    # The same for a changed inline policy.
    with sandbox_requests():
        iam.put_role_policy(RoleName=name, PolicyName="uc", PolicyDocument=s3_policy(bucket, S3_ALL))
    assert set(validate(client, ws, cred, url).values()) == {("FAIL", NOT_CONFIGURED)}
    settle()
    assert location(client, ws, cred, url)[0] == 200


def test_w4_the_role_must_assume_itself(client: Client, ws: dict, iam: Any, s3: Any) -> None:
    cred, bucket = uc_role(iam, s3, client, ws, self_assume=False)
    assert set(validate(client, ws, cred, f"s3://{bucket}/").values()) == {("FAIL", NOT_SELF_ASSUMING)}
    # Its own ARN as principal also makes it self-assuming (allowed now that the role exists, W8).
    arn, external_id = cred["aws_iam_role"]["role_arn"], cred["aws_iam_role"]["external_id"]
    doc = json.loads(uc_trust(arn, external_id, self_assume=False))
    doc["Statement"][0]["Principal"]["AWS"] = [UC_MASTER_ROLE_ARN, arn]
    with sandbox_requests():
        iam.update_assume_role_policy(RoleName=arn.split("/")[-1], PolicyDocument=json.dumps(doc))
    assert set(validate(client, ws, cred, f"s3://{bucket}/").values()) == {("PASS", None)}


def test_w4_each_missing_s3_permission_fails_its_operation(client: Client, ws: dict, iam: Any, s3: Any) -> None:
    cred, bucket = uc_role(iam, s3, client, ws, actions=["s3:GetObject"])
    url = f"s3://{bucket}/catalogs"
    results = validate(client, ws, cred, url)
    assert results == {
        "READ": ("PASS", None), "LIST": ("PASS", None), "PATH_EXISTS": ("PASS", None),
        "WRITE": ("FAIL", f"AWS IAM role does not have WRITE permissions on url {url}."),
        "DELETE": ("FAIL", f"AWS IAM role does not have DELETE permissions on url {url}."),
    }
    assert validate(client, ws, cred, url, read_only=True)["WRITE"] == ("SKIP", None)
    other = f"s3://another-{bucket}/"  # the policy is for one bucket only
    assert validate(client, ws, cred, other)["READ"] == ("FAIL", f"AWS IAM role does not have READ permissions on url {other}.")
    status, body = location(client, ws, cred, url)
    assert (status, body["message"]) == (403, f"AWS IAM role does not have WRITE permissions on url {url}.")
    assert location(client, ws, cred, url, skip_validation=True)[0] == 200


# --- external locations, catalogs, schemas ------------------------------------------------------------------


def test_external_locations_and_their_dependents(client: Client, ws: dict, iam: Any, s3: Any) -> None:
    cred, bucket = uc_role(iam, s3, client, ws)
    assert call(client, ws, "POST", f"{UC}/external-locations", {"name": "x", "url": "https://b/", "credential_name": cred["name"]})[0] == 400
    assert location(client, ws, cred, f"s3://{bucket}/")[0] == 200
    status, body = location(client, ws, cred, f"s3://{bucket}/deeper", name="inner")
    assert status == 400 and "overlaps with an existing external location 'loc'" in body["message"]
    assert location(client, ws, cred, f"s3://{bucket}-other/", name="inner", skip_validation=True)[0] == 200  # a prefix of names is no overlap
    status, body = call(client, ws, "DELETE", f"{UC}/storage-credentials/{cred['name']}")
    assert status == 400 and "2 dependent storage location(s)" in body["message"]
    root = f"s3://{bucket}/catalogs/sales"
    assert call(client, ws, "POST", f"{UC}/catalogs", {"name": "sales", "storage_root": root})[0] == 200
    status, body = call(client, ws, "DELETE", f"{UC}/external-locations/loc")
    assert status == 400 and "1 dependent catalogs" in body["message"]
    assert call(client, ws, "DELETE", f"{UC}/external-locations/loc", query={"force": "true"})[0] == 200
    assert call(client, ws, "DELETE", f"{UC}/storage-credentials/{cred['name']}", query={"force": "true"})[0] == 200


def test_catalog_storage_root_rules(client: Client, ws: dict, iam: Any, s3: Any) -> None:
    status, body = call(client, ws, "POST", f"{UC}/catalogs", {"name": "analytics"})
    assert (status, body["error_code"]) == (400, "INVALID_STATE")
    assert body["message"].startswith("Metastore storage root URL does not exist. Please provide a storage location for the catalog")
    cred, bucket = uc_role(iam, s3, client, ws)
    status, body = call(client, ws, "POST", f"{UC}/catalogs", {"name": "analytics", "storage_root": f"s3://{bucket}/x"})
    assert status == 400 and "not covered by any external location" in body["message"]
    assert location(client, ws, cred, f"s3://{bucket}/")[0] == 200
    root = f"s3://{bucket}/catalogs/analytics"
    status, body = call(client, ws, "POST", f"{UC}/catalogs",
                        {"name": "Analytics", "storage_root": root, "properties": {"provision:deployment": "gov"}})
    assert status == 200, body
    info = CatalogInfo.from_dict(body)
    assert info.name == "analytics" and info.storage_root == root and info.properties == {"provision:deployment": "gov"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert info.storage_location.startswith(f"{root}/__unitystorage/catalogs/")
    assert keys == [f"{info.storage_location.removeprefix(f's3://{bucket}/')}/_marker"]  # the bucket is no longer empty
    assert call(client, ws, "POST", f"{UC}/catalogs", {"name": "analytics"})[1]["error_code"] == "CATALOG_ALREADY_EXISTS"
    schemas = call(client, ws, "GET", f"{UC}/schemas", query={"catalog_name": "analytics"})[1]["schemas"]
    assert [SchemaInfo.from_dict(s).full_name for s in schemas] == ["analytics.information_schema"]
    # A serverless workspace on the same metastore may use default storage.
    serverless = make_workspace("SERVERLESS")
    assign(serverless, STORE.kind(ACCT, "metastore_assignments")[ws["workspace_id"]]["metastore_id"])
    status, body = call(client, serverless, "POST", f"{UC}/catalogs", {"name": "lake"})
    assert status == 200 and "storage_root" not in body
    assert {c["name"] for c in call(client, ws, "GET", f"{UC}/catalogs")[1]["catalogs"]} == {"analytics", "lake"}


def test_w7_a_catalog_with_schemas_needs_force(client: Client, ws: dict) -> None:
    serverless = make_workspace("SERVERLESS")
    assign(serverless, STORE.kind(ACCT, "metastore_assignments")[ws["workspace_id"]]["metastore_id"])
    assert call(client, serverless, "POST", f"{UC}/schemas", {"name": "bronze", "catalog_name": "cat"})[1]["error_code"] == "CATALOG_DOES_NOT_EXIST"
    assert call(client, serverless, "POST", f"{UC}/catalogs", {"name": "cat"})[0] == 200
    for name in ("silver", "bronze"):
        status, body = call(client, serverless, "POST", f"{UC}/schemas", {"name": name, "catalog_name": "cat", "properties": {"k": "v"}})
        assert status == 200 and body["full_name"] == f"cat.{name}" and body["properties"] == {"k": "v"}
    assert call(client, serverless, "POST", f"{UC}/schemas", {"name": "bronze", "catalog_name": "cat"})[1]["error_code"] == "SCHEMA_ALREADY_EXISTS"
    assert call(client, serverless, "GET", f"{UC}/schemas")[0] == 400  # catalog_name is required
    assert call(client, serverless, "DELETE", f"{UC}/catalogs/cat") == error(
        400, "INVALID_STATE", "Catalog 'cat' is not empty. The catalog has 2 schemas: bronze, silver. Use force=true to delete it anyway.")
    assert call(client, serverless, "DELETE", f"{UC}/schemas/cat.silver")[0] == 200
    assert call(client, serverless, "DELETE", f"{UC}/schemas/cat.information_schema")[0] == 400
    assert call(client, serverless, "DELETE", f"{UC}/catalogs/cat", query={"force": "true"})[0] == 200
    assert call(client, serverless, "GET", f"{UC}/schemas/cat.bronze")[1]["error_code"] == "SCHEMA_DOES_NOT_EXIST"
    assert call(client, serverless, "POST", f"{UC}/catalogs", {"name": "empty"})[0] == 200
    assert call(client, serverless, "DELETE", f"{UC}/catalogs/empty")[0] == 200  # information_schema does not count


def test_grants_need_existing_principals_and_applicable_privileges(client: Client, ws: dict) -> None:
    serverless = make_workspace("SERVERLESS")
    assign(serverless, STORE.kind(ACCT, "metastore_assignments")[ws["workspace_id"]]["metastore_id"])
    call(client, serverless, "POST", f"{UC}/catalogs", {"name": "cat"})
    call(client, serverless, "POST", f"{UC}/schemas", {"name": "bronze", "catalog_name": "cat"})
    STORE.kind(ACCT, "groups")["g1"] = {"id": "g1", "displayName": "data_engineers"}
    STORE.kind(ACCT, "service_principals")["s1"] = {"id": "s1", "displayName": "ci-automation", "applicationId": "app-1"}
    path = f"{UC}/permissions/catalog/cat"

    def change(principal: str, *add: str, on: str = path) -> tuple[int, dict]:
        return call(client, serverless, "PATCH", on, {"changes": [{"principal": principal, "add": list(add)}]})

    assert change("nobody", "USE_CATALOG") == error(404, "PRINCIPAL_DOES_NOT_EXIST", "Could not find principal with name nobody.")
    status, body = change("data_engineers", "USE_CATALOG", on=f"{UC}/permissions/schema/cat.bronze")
    assert status == 400 and "USE_CATALOG is not applicable" in body["message"]
    assert change("data_engineers", "READ_FILES")[0] == 400  # a storage privilege, not a catalog one
    assert change("data_engineers", "NOT_A_PRIVILEGE")[0] == 400
    assert change("data_engineers", "USE_CATALOG", "SELECT")[0] == 200
    assert change("app-1", "USE_CATALOG")[0] == 200
    # Unity Catalog names a service principal by its application id only, never by its display name.
    assert change("ci-automation", "USE_CATALOG") == error(404, "PRINCIPAL_DOES_NOT_EXIST", "Could not find principal with name ci-automation.")
    assert change("account users", "BROWSE")[0] == 200
    assert change("data_engineers", "USE_SCHEMA", on=f"{UC}/permissions/SCHEMA/cat.bronze")[0] == 200
    parsed = GetPermissionsResponse.from_dict(call(client, serverless, "GET", path)[1])
    assert {a.principal: sorted(p.value for p in a.privileges) for a in parsed.privilege_assignments} == {
        "account users": ["BROWSE"], "app-1": ["USE_CATALOG"], "data_engineers": ["SELECT", "USE_CATALOG"]}
    assert call(client, serverless, "GET", f"{UC}/permissions/catalog/other")[1]["error_code"] == "CATALOG_DOES_NOT_EXIST"


# --- W8 ---------------------------------------------------------------------------------------------------


class sandbox_requests:
    """Calls in this block are served as sandbox requests (the moto patches apply), as through make_aws_app."""

    def __enter__(self) -> None:
        patching.install()
        self.token = patching.ACTIVE.set(SandboxSettings())

    def __exit__(self, *exc: object) -> None:
        patching.ACTIVE.reset(self.token)


def test_w8_trust_policies_name_only_roles_that_exist(iam: Any) -> None:
    name = f"self-{uuid.uuid4().hex[:6]}"
    arn = f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/{name}"

    def trust(*principals: str) -> str:
        return json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": list(principals)}, "Action": "sts:AssumeRole"}]})

    with sandbox_requests():
        for principals in ((UC_MASTER_ROLE_ARN, arn), (f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/missing",)):
            with pytest.raises(ClientError) as refused:
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust(*principals))
            err = refused.value.response["Error"]
            assert err["Code"] == "MalformedPolicyDocument" and refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
            assert err["Message"] == f'Invalid principal in policy: "AWS":"{principals[-1]}"'
        # The account root (with a condition on the principal ARN) and other accounts are accepted.
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=uc_trust(arn, "x"))
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust(UC_MASTER_ROLE_ARN, arn))  # exists now
        with pytest.raises(ClientError, match="Invalid principal in policy"):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=trust(f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/gone"))
    # Plain moto, outside a sandbox request, stays stock.
    iam.create_role(RoleName=f"{name}-stock", AssumeRolePolicyDocument=trust(f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/missing"))


# --- cluster policies, default namespace ----------------------------------------------------------------------


def test_cluster_policies(client: Client, ws: dict) -> None:
    base = "api/2.0/policies/clusters"
    good = json.dumps({"autotermination_minutes": {"type": "range", "maxValue": 60}})
    for definition in ("{not json", "[1, 2]", "3"):
        status, body = call(client, ws, "POST", f"{base}/create", {"name": "p", "definition": definition})
        assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE") and "definition" in body["message"]
    status, body = call(client, ws, "POST", f"{base}/create", {"name": "data-engineering", "definition": good, "description": "d"})
    assert status == 200
    policy_id = body["policy_id"]
    status, body = call(client, ws, "POST", f"{base}/create", {"name": "data-engineering", "definition": good})
    assert (status, body["error_code"]) == (400, "INVALID_PARAMETER_VALUE") and "already exists" in body["message"]
    other = make_workspace()  # names are unique per workspace only
    assert call(client, other, "POST", f"{base}/create", {"name": "data-engineering", "definition": good})[0] == 200
    assert call(client, ws, "POST", f"{base}/edit", {"policy_id": policy_id, "name": "data-engineering", "definition": "{}"})[0] == 200
    policy = Policy.from_dict(call(client, ws, "GET", f"{base}/get", query={"policy_id": policy_id})[1])
    assert policy.definition == "{}" and policy.description is None  # edit replaces the policy
    assert [p["policy_id"] for p in call(client, ws, "GET", f"{base}/list")[1]["policies"]] == [policy_id]
    assert STORE.kind(ACCT, "cluster_policies")[policy_id]["workspace_id"] == ws["workspace_id"]
    assert call(client, ws, "POST", f"{base}/delete", {"policy_id": policy_id}) == (200, {})
    assert call(client, ws, "GET", f"{base}/get", query={"policy_id": policy_id})[1]["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_default_namespace_etags(client: Client, ws: dict) -> None:
    path = "api/2.0/settings/types/default_namespace_ws/names/default"
    status, body = call(client, ws, "GET", path)
    assert (status, body["error_code"]) == (404, "NOT_FOUND")
    etag = body["details"][0]["metadata"]["etag"]

    def update(value: str, tag: str | None) -> tuple[int, dict]:
        setting = {"namespace": {"value": value}, **({"etag": tag} if tag else {})}
        return call(client, ws, "PATCH", path, {"allow_missing": True, "setting": setting, "field_mask": "namespace.value"})

    status, body = update("analytics", None)
    assert status == 404 and body["details"][0]["metadata"]["etag"] == etag
    status, body = update("analytics", etag)
    assert status == 200 and body["namespace"] == {"value": "analytics"} and body["etag"] != etag
    current = body["etag"]
    status, body = update("other", etag)
    assert status == 409 and body["details"][0]["metadata"]["etag"] == current
    assert call(client, ws, "DELETE", path, query={"etag": etag})[0] == 409
    status, body = call(client, ws, "DELETE", path, query={"etag": current})
    assert status == 200 and body["etag"] not in (etag, current)
    assert call(client, ws, "GET", path)[0] == 404


# --- the real SDK over HTTP ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def url(settings: SandboxSettings) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, emulator.make_databricks_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


def test_sdk_round_trip(url: str, ws: dict, iam: Any, s3: Any) -> None:
    w = WorkspaceClient(config=Config(host=workspace_host(url, ws["deployment_name"]), token=SandboxSettings().token,
                                      auth_type="pat", retry_timeout_seconds=5, http_timeout_seconds=5))
    assert w.metastores.current().workspace_id == ws["workspace_id"]
    name = f"uc-{uuid.uuid4().hex[:8]}"
    bucket = f"cat-{name}"
    s3.create_bucket(Bucket=bucket)
    arn = f"arn:aws:iam::{SANDBOX_AWS_ACCOUNT_ID}:role/{name}"
    cred = w.storage_credentials.create(name=name, aws_iam_role=AwsIamRoleRequest(role_arn=arn), skip_validation=True)
    iam.create_role(RoleName=name, AssumeRolePolicyDocument=uc_trust(arn, cred.aws_iam_role.external_id))
    iam.put_role_policy(RoleName=name, PolicyName="uc", PolicyDocument=s3_policy(bucket, S3_ALL))
    results = w.storage_credentials.validate(storage_credential_name=name, url=f"s3://{bucket}/").results
    assert {r.result.value for r in results} == {"PASS"}
    w.external_locations.create(name=name, url=f"s3://{bucket}/", credential_name=name)
    catalog = w.catalogs.create(name="analytics", storage_root=f"s3://{bucket}/catalogs/analytics")
    w.schemas.create(name="bronze", catalog_name=catalog.name)
    assert [s.name for s in w.schemas.list(catalog_name="analytics")] == ["bronze", "information_schema"]
    w.grants.update("catalog", "analytics", changes=[PermissionsChange(principal="account users", add=[Privilege.USE_CATALOG])])
    assert w.grants.get("catalog", "analytics").privilege_assignments[0].privileges == [Privilege.USE_CATALOG]
    policy_id = w.cluster_policies.create(name="analyst", definition="{}").policy_id
    assert [p.policy_id for p in w.cluster_policies.list()] == [policy_id]
    with pytest.raises(NotFound) as unset:
        w.settings.default_namespace.get()
    etag = unset.value.get_error_info()[0].metadata["etag"]
    setting = DefaultNamespaceSetting(namespace=StringMessage(value="analytics"), etag=etag)
    assert w.settings.default_namespace.update(allow_missing=True, setting=setting, field_mask="namespace.value").namespace.value == "analytics"
    w.catalogs.delete("analytics", force=True)
    assert [c.name for c in w.catalogs.list()] == []
