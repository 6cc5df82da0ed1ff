"""Unity Catalog: the [unity_catalog] spec section, the classification of Databricks' not-yet refusals (W1-W4), the
request shapes of the Unity Catalog steps (fake Databricks clients built from the SDK's own dataclasses; botocore's
Stubber for IAM), and the credential validation loop on a fake clock."""

from __future__ import annotations

import copy
import json
import random
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import boto3
import pytest
import requests
import structlog
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from databricks.sdk.errors.parser import _Parser
from databricks.sdk.service import catalog as uc
from databricks.sdk.service import settings as dbs
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision.clouds import error_rules
from provision.clouds.aws.spec import StorageSpec, derived_bucket_name
from provision.clouds.aws.steps.storage import RootBucket
from provision.clouds.aws.steps.uc_storage import (
    UC_MASTER_ROLE,
    CatalogBucket,
    UnityCatalogRole,
    UnityCatalogRolePolicy,
    catalog_bucket_policy,
    uc_role_name,
)
from provision.clouds.databricks import errors as dbx_errors
from provision.clouds.databricks.spec_unity import PRIVILEGES, Grant, UnityCatalogSpec, section
from provision.clouds.databricks.steps.unity import (
    Catalog,
    DefaultNamespace,
    ExternalLocation,
    Grants,
    Metastore,
    MetastoreAssignment,
    Schema,
    StorageCredential,
)
from provision.errors import NotYetPropagated, OwnershipConflict, RetryDeadlineExceeded
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import IAM_PROPAGATION, PROPAGATING, RetryPolicy, phase
from provision.orchestrator.step import Context
from provision.orchestrator.wait import PollPolicy
from provision.spec import Checker

pytestmark = pytest.mark.usefixtures("no_real_sleep")

NAME, REGION = "gov", "us-east-1"
DBX_ACCOUNT = "0a1b2c3d-0000-4000-8000-000000000001"
AWS_ACCOUNT = "123456789012"
EXTERNAL_ID = "5e7a1f52-9c1d-4a0e-8d7b-3f0c2a1b9e44"  # random, as for a credential made by a non-admin
DEPLOYMENT = "dbc-gov-1234"
RULES = error_rules(("aws", "databricks"))


# --- spec ------------------------------------------------------------------------------------------------


def parse(table: Any, *, storage: bool = True, root: str | None = None) -> tuple[UnityCatalogSpec | None, dict[str, str]]:
    check = Checker()
    parsed = {"name": NAME, "region": REGION, "account_id": DBX_ACCOUNT, "storage": StorageSpec(root) if root else None}
    data = {"unity_catalog": table} if table is not None else {}
    result = section(storage=storage).parse(check, data, parsed)
    return result, {p.field: p.reason for p in check.problems}


def test_defaults() -> None:
    spec, problems = parse({})
    assert problems == {}
    assert spec == UnityCatalogSpec(
        metastore_name=f"{NAME}-{REGION}", catalog=NAME, schemas=("bronze", "silver", "gold"),
        bucket_name=f"{derived_bucket_name(NAME, DBX_ACCOUNT, REGION)}-catalog", grants=(), default_namespace=True,
    )
    assert spec.bucket_name != derived_bucket_name(NAME, DBX_ACCOUNT, REGION)  # never the root bucket's


def test_absent_section_is_none() -> None:
    assert parse(None) == (None, {})


def test_a_full_spec() -> None:
    spec, problems = parse({
        "metastore_name": "primary-us-east-1", "catalog": "analytics", "schemas": ["raw", "curated"], "bucket_name": "acme-catalog",
        "default_namespace": False,
        "grants": [
            {"principal": "data_engineers", "privileges": ["USE_CATALOG", "USE_SCHEMA", "SELECT"]},
            {"principal": "account users", "privileges": ["SELECT"], "schema": "curated"},
        ],
    })
    assert problems == {}
    assert spec is not None
    assert (spec.metastore_name, spec.catalog, spec.schemas, spec.bucket_name, spec.default_namespace) == (
        "primary-us-east-1", "analytics", ("raw", "curated"), "acme-catalog", False,
    )
    assert spec.grants == (
        Grant("data_engineers", ("USE_CATALOG", "USE_SCHEMA", "SELECT")), Grant("account users", ("SELECT",), "curated"),
    )


def test_hyphenated_deployment_names_make_a_valid_default_catalog() -> None:
    check = Checker()
    spec = section().parse(check, {"unity_catalog": {}}, {"name": "my-data-1", "region": REGION, "account_id": DBX_ACCOUNT})
    assert check.problems == [] and spec.catalog == "my_data_1"


@pytest.mark.parametrize(
    "table, field, reason",
    [
        ({"colour": 1}, "unity_catalog.colour", "unknown field"),
        ({"metastore_name": "has space"}, "unity_catalog.metastore_name", "letters, digits, hyphens"),
        ({"metastore_name": 7}, "unity_catalog.metastore_name", "must be a string"),
        ({"catalog": "Analytics"}, "unity_catalog.catalog", "write 'analytics'"),
        ({"catalog": "my-catalog"}, "unity_catalog.catalog", "lowercase letters, digits and underscores"),
        ({"catalog": "system"}, "unity_catalog.catalog", "reserves"),
        ({"catalog": ""}, "unity_catalog.catalog", "must not be empty"),
        ({"schemas": "bronze"}, "unity_catalog.schemas", "list of strings"),
        ({"schemas": ["bronze", "bronze"]}, "unity_catalog.schemas[1]", "listed twice"),
        ({"schemas": ["information_schema"]}, "unity_catalog.schemas[0]", "already"),
        ({"schemas": ["default"]}, "unity_catalog.schemas[0]", "already"),
        ({"schemas": ["Gold"]}, "unity_catalog.schemas[0]", "write 'gold'"),
        ({"schemas": ["a.b"]}, "unity_catalog.schemas[0]", "lowercase letters"),
        ({"bucket_name": "Bad_Bucket"}, "unity_catalog.bucket_name", "lowercase letters, digits, dots and hyphens"),
        ({"bucket_name": 3}, "unity_catalog.bucket_name", "must be a string"),
        ({"default_namespace": "yes"}, "unity_catalog.default_namespace", "true or false"),
        ({"grants": {"principal": "x"}}, "unity_catalog.grants", "array of tables"),
        ({"grants": ["x"]}, "unity_catalog.grants[0]", "must be a table"),
        ({"grants": [{"privileges": ["SELECT"]}]}, "unity_catalog.grants[0].principal", "is required"),
        ({"grants": [{"principal": " x", "privileges": ["SELECT"]}]}, "unity_catalog.grants[0].principal", "surrounding spaces"),
        ({"grants": [{"principal": "x"}]}, "unity_catalog.grants[0].privileges", "is required"),
        ({"grants": [{"principal": "x", "privileges": []}]}, "unity_catalog.grants[0].privileges", "at least one"),
        ({"grants": [{"principal": "x", "privileges": ["select"]}]}, "unity_catalog.grants[0].privileges[0]", "did you mean SELECT"),
        ({"grants": [{"principal": "x", "privileges": ["READ"]}]}, "unity_catalog.grants[0].privileges[0]", "not a Unity Catalog privilege"),
        ({"grants": [{"principal": "x", "privileges": ["CREATE_CATALOG"]}]}, "unity_catalog.grants[0].privileges[0]", "cannot be granted on a catalog"),
        ({"grants": [{"principal": "x", "privileges": ["USE_CATALOG"], "schema": "gold"}]}, "unity_catalog.grants[0].privileges[0]", "cannot be granted on a schema"),
        ({"grants": [{"principal": "x", "privileges": ["SELECT", "SELECT"]}]}, "unity_catalog.grants[0].privileges[1]", "listed twice"),
        ({"grants": [{"principal": "x", "privileges": ["SELECT"], "schema": "platinum"}]}, "unity_catalog.grants[0].schema", "not one of unity_catalog.schemas"),
        ({"grants": [{"principal": "x", "privileges": ["SELECT"], "colour": 1}]}, "unity_catalog.grants[0].colour", "unknown field"),
        ({"grants": [{"principal": "x", "privileges": ["SELECT"]}, {"principal": "x", "privileges": ["MODIFY"]}]}, "unity_catalog.grants[1]", "list its privileges once"),
    ],
)
def test_bad_fields_name_themselves(table: dict[str, Any], field: str, reason: str) -> None:
    _, problems = parse(table)  # any problem fails the whole spec (SpecError), each naming its field
    assert field in problems, problems
    assert reason in problems[field]


def test_the_catalog_bucket_is_not_the_root_bucket() -> None:
    spec, problems = parse({"bucket_name": "shared-bucket"}, root="shared-bucket")
    assert spec is None and "root bucket" in problems["unity_catalog.bucket_name"]


def test_serverless_refuses_a_bucket_and_uses_default_storage() -> None:
    spec, problems = parse({"bucket_name": "acme-catalog"}, storage=False)
    assert spec is None and "default storage" in problems["unity_catalog.bucket_name"]
    spec, problems = parse({}, storage=False)
    assert problems == {} and spec is not None and spec.bucket_name is None


def test_privileges_are_the_sdks() -> None:
    assert PRIVILEGES == tuple(p.value for p in uc.Privilege)


# --- classifier ------------------------------------------------------------------------------------------


def dbx(status: int, body: dict[str, Any], path: str = "/api/2.1/unity-catalog/catalogs") -> Exception:
    """A Databricks error as the SDK builds it from an HTTP response (its own parser and error mapper)."""
    response = requests.Response()
    response.status_code = status
    response.reason = requests.status_codes._codes[status][0].replace("_", " ").title()
    response._content = json.dumps(body).encode()
    response.request = requests.Request("POST", f"https://dbc-gov-1234.cloud.databricks.com{path}").prepare()
    response.url = response.request.url
    error = _Parser().get_api_error(response)
    assert error is not None
    return error


W1 = {"error_code": "INVALID_PARAMETER_VALUE", "message": "Current organization 1234567890 does not have any associated worker environments"}
W2 = {"error_code": "BAD_REQUEST", "message": "Permission assignment APIs are not available for this workspace."}
W3 = {"error_code": "METASTORE_DOES_NOT_EXIST", "message": "No metastore assigned for the current workspace."}
NOT_CONFIGURED = (
    "Failed to get credentials: AWS IAM role in the storage credential is not configured correctly. Please contact your account "
    "admin to update the configuration."
)


@pytest.mark.parametrize(
    "status, body, reason",
    [
        (400, W1, "workspace warming up (no worker environments yet)"),
        (400, W2, "identity federation not enabled yet (metastore assignment propagating)"),
        (404, W3, "metastore assignment propagating"),
    ],
)
def test_not_yet_refusals_are_transient(status: int, body: dict[str, Any], reason: str) -> None:
    error = dbx(status, body)
    assert RULES.classify(error) == reason
    assert not RULES.is_not_found(error)


def test_no_metastore_is_not_not_found_but_other_404s_are() -> None:
    assert dbx_errors.no_metastore(dbx(404, W3))
    assert RULES.is_not_found(dbx(404, {"error_code": "CATALOG_DOES_NOT_EXIST", "message": "Catalog 'x' does not exist."}))
    assert RULES.is_not_found(dbx(404, {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "nope"}))
    assert RULES.is_already_exists(dbx(409, {"error_code": "CATALOG_ALREADY_EXISTS", "message": "Catalog 'x' already exists"}))


@pytest.mark.parametrize(
    "body",
    [
        {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid name"},  # W1's code, another message
        {"error_code": "BAD_REQUEST", "message": "Malformed request"},  # W2's code, another message
        {"error_code": "INVALID_STATE", "message": "Catalog 'x' is not empty. The catalog has 1 schemas: a. Use force=true to delete it anyway."},
    ],
)
def test_look_alikes_stay_terminal(body: dict[str, Any]) -> None:
    assert RULES.classify(dbx(400, body)) is None


@pytest.mark.parametrize(
    "status, body",
    [
        (403, {"error_code": "PERMISSION_DENIED", "message": "AWS IAM role does not have READ permissions on url s3://b/."}),
        (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "The IAM role for this storage credential is not self-assuming."}),
        (400, {"error_code": "INVALID_PARAMETER_VALUE", "message": NOT_CONFIGURED}),
    ],
)
def test_credential_refusals_are_propagation_only_while_propagating(status: int, body: dict[str, Any]) -> None:
    error = dbx(status, body, "/api/2.1/unity-catalog/external-locations")
    assert RULES.classify_in_phase(error) is None  # elsewhere: the user's to fix
    with phase(PROPAGATING):
        assert RULES.classify_in_phase(error) == IAM_PROPAGATION


def test_a_validation_fail_is_retried_as_propagation() -> None:
    assert RULES.classify(NotYetPropagated("validation", IAM_PROPAGATION, "READ: nope")) == IAM_PROPAGATION


# --- steps: harness ----------------------------------------------------------------------------------------


class FakeClients:
    """`ctx.clients["databricks"].account` / `.workspace(name)`, `ctx.clients["aws"].client(service)`."""

    def __init__(self, *, account: Any = None, workspace: Any = None, iam: Any = None, s3: Any = None) -> None:
        self.account, self._workspace, self._aws = account, workspace, {"iam": iam, "s3": s3}
        self.workspaces_asked: list[str] = []
        self.stats = CallStats()

    def __getitem__(self, cloud: str) -> Any:
        return self

    def workspace(self, deployment_name: str) -> Any:
        self.workspaces_asked.append(deployment_name)
        return self._workspace

    def client(self, service: str) -> Any:
        client = self._aws[service]
        assert client is not None, f"unexpected AWS service {service}"
        return client


def context(clients: FakeClients, clock: FakeClock | None = None, outputs: dict[str, dict[str, Any]] | None = None, deadline: float = 60) -> Context:
    clock = clock or FakeClock(start=0.0)
    spec = SimpleNamespace(name=NAME, region=REGION, tags={}, timeouts=SimpleNamespace(resource_seconds=60), databricks=SimpleNamespace(account_id=DBX_ACCOUNT))
    return Context(
        spec=spec,  # type: ignore[arg-type]
        clients=clients,  # type: ignore[arg-type]
        retry=RetryPolicy(errors=RULES, deadline_seconds=deadline, initial_seconds=1, max_seconds=4, clock=clock, sleep=clock.sleep, rng=random.Random(3)),
        poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=60, clock=clock, sleep=clock.sleep),
        log=structlog.wrap_logger(CapturingLogger(), processors=[]),
        outputs=copy.deepcopy(outputs or {}),
        facts={"aws_account_id": AWS_ACCOUNT},
    )


ASSIGNED = {"uc.assignment": {"workspace_id": 1234, "metastore_id": "ms-1", "deployment_name": DEPLOYMENT}}
CREDENTIAL = {"uc.credential": {"name": "gov-catalog", "credential_id": "c-1", "external_id": EXTERNAL_ID,
                                "role_arn": f"arn:aws:iam::{AWS_ACCOUNT}:role/gov-uc-catalog", "deployment_name": DEPLOYMENT}}
BUCKET = {"s3.catalog": {"bucket": "gov-catalog-bucket", "arn": "arn:aws:s3:::gov-catalog-bucket", "digest": "d"}}
CATALOG = {"uc.catalog": {"name": "analytics", "storage_root": "s3://gov-catalog-bucket/catalogs/analytics", "deployment_name": DEPLOYMENT}}
ROLE_ARN = f"arn:aws:iam::{AWS_ACCOUNT}:role/gov-uc-catalog"


def not_found(what: str) -> Exception:
    return dbx(404, {"error_code": f"{what}_DOES_NOT_EXIST", "message": f"{what.lower()} does not exist"})


def logged_retries(ctx: Context) -> list[dict[str, Any]]:
    return [c.kwargs for c in ctx.log._logger.calls if c.kwargs.get("event") == "retrying"]


# --- account level ---------------------------------------------------------------------------------------------


def test_metastore_is_the_regions_and_adopted_unless_ours() -> None:
    account = MagicMock()
    account.metastores.list.return_value = [
        uc.MetastoreInfo(metastore_id="ms-west", name="west", region="us-west-2"),
        uc.MetastoreInfo(metastore_id="ms-1", name="primary", region=REGION),
    ]
    step = Metastore("uc.metastore", name="gov-us-east-1")
    ctx = context(FakeClients(account=account))
    assert step.find(ctx) == {"metastore_id": "ms-1", "name": "primary", "region": REGION, "adopted": True}
    ctx.claimed.add(step.id)  # even after a create attempt, another name is the account's
    assert step.find(ctx)["adopted"] is True
    step.delete(ctx, step.find(ctx))
    account.metastores.delete.assert_not_called()


def test_metastore_create_and_delete_requests() -> None:
    account = MagicMock()
    account.metastores.create.return_value = uc.AccountsCreateMetastoreResponse(
        metastore_info=uc.MetastoreInfo(metastore_id="ms-new", name="gov-us-east-1", region=REGION)
    )
    step = Metastore("uc.metastore", name="gov-us-east-1")
    ctx = context(FakeClients(account=account))
    ctx.claimed.add(step.id)
    out = step.create(ctx)
    assert out == {"metastore_id": "ms-new", "name": "gov-us-east-1", "region": REGION, "adopted": False}
    (call,) = account.metastores.create.call_args_list
    assert call.kwargs["metastore_info"].as_dict() == {"name": "gov-us-east-1", "region": REGION}  # no storage root
    # Another workspace still uses it: left in place.
    account.metastore_assignments.list.return_value = [99]
    step.delete(ctx, out)
    account.metastores.delete.assert_not_called()
    account.metastore_assignments.list.return_value = []
    step.delete(ctx, out)
    account.metastores.delete.assert_called_once_with(metastore_id="ms-new")  # never force


def test_assignment_to_another_metastore_is_refused() -> None:
    account = MagicMock()
    account.metastore_assignments.get.return_value = uc.AccountsMetastoreAssignment(
        metastore_assignment=uc.MetastoreAssignment(workspace_id=1234, metastore_id="ms-other")
    )
    step = MetastoreAssignment("uc.assignment", metastore="uc.metastore", workspace="dbx.workspace")
    ctx = context(FakeClients(account=account), outputs={
        "uc.metastore": {"metastore_id": "ms-1"}, "dbx.workspace": {"workspace_id": 1234, "deployment_name": DEPLOYMENT},
    })
    with pytest.raises(OwnershipConflict, match="ms-other"):
        step.find(ctx)


def test_assignment_create_request_and_absent_reads() -> None:
    account = MagicMock()
    account.metastore_assignments.get.side_effect = dbx(404, W3)  # however the API says "none", it is none
    step = MetastoreAssignment("uc.assignment", metastore="uc.metastore", workspace="dbx.workspace")
    ctx = context(FakeClients(account=account), outputs={
        "uc.metastore": {"metastore_id": "ms-1"}, "dbx.workspace": {"workspace_id": 1234, "deployment_name": DEPLOYMENT},
    })
    assert step.find(ctx) is None
    assert step.create(ctx) == {"workspace_id": 1234, "metastore_id": "ms-1", "deployment_name": DEPLOYMENT}
    call = account.metastore_assignments.create.call_args
    assert (call.kwargs["workspace_id"], call.kwargs["metastore_id"]) == (1234, "ms-1")
    assert call.kwargs["metastore_assignment"].as_dict() == {"workspace_id": 1234, "metastore_id": "ms-1"}
    assert step.find(context(FakeClients(account=account))) is None  # plan: inputs unknown, no call
    assert account.metastore_assignments.get.call_count == 1


# --- storage credential, role, policy, location ------------------------------------------------------------------


def test_credential_names_the_role_before_it_exists_and_reads_the_external_id() -> None:
    ws = MagicMock()
    ws.storage_credentials.create.return_value = uc.StorageCredentialInfo(
        name="gov-catalog", id="c-1", comment="provision:deployment=gov",
        aws_iam_role=uc.AwsIamRoleResponse(role_arn=ROLE_ARN, external_id=EXTERNAL_ID, unity_catalog_iam_arn=UC_MASTER_ROLE),
    )
    clients = FakeClients(workspace=ws)
    step = StorageCredential("uc.credential", name="gov-catalog", assignment="uc.assignment")
    assert step.find(context(clients)) is None and not clients.workspaces_asked  # plan before the assignment
    ctx = context(clients, outputs=ASSIGNED)
    out = step.create(ctx)
    assert out == {"name": "gov-catalog", "credential_id": "c-1", "external_id": EXTERNAL_ID, "role_arn": ROLE_ARN, "deployment_name": DEPLOYMENT}
    call = ws.storage_credentials.create.call_args
    assert call.kwargs == {
        "name": "gov-catalog", "aws_iam_role": uc.AwsIamRoleRequest(role_arn=ROLE_ARN),
        "comment": "provision:deployment=gov", "skip_validation": True,
    }
    assert clients.workspaces_asked == [DEPLOYMENT]


def test_a_credential_not_ours_is_refused_by_name() -> None:
    ws = MagicMock()
    ws.storage_credentials.get.return_value = uc.StorageCredentialInfo(
        name="gov-catalog", comment="made by hand", aws_iam_role=uc.AwsIamRoleResponse(role_arn=ROLE_ARN, external_id="x"),
    )
    with pytest.raises(OwnershipConflict, match="storage credential 'gov-catalog'"):
        StorageCredential("uc.credential", name="gov-catalog", assignment="uc.assignment").find(context(FakeClients(workspace=ws), outputs=ASSIGNED))


def iam_client() -> tuple[Any, Stubber, list[tuple[str, dict[str, Any]]]]:
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    iam = session.client("iam")
    seen: list[tuple[str, dict[str, Any]]] = []
    iam.meta.events.register("before-parameter-build.iam", lambda params, model, **_: seen.append((model.name, copy.deepcopy(params))))
    return iam, Stubber(iam), seen


def role(trust: dict[str, Any] | None = None, tags: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body = {"Path": "/", "RoleName": "gov-uc-catalog", "RoleId": "AROAEXAMPLEEXAMPLE123", "Arn": ROLE_ARN, "CreateDate": "2026-01-01T00:00:00Z",
            "Tags": tags if tags is not None else [{"Key": "provision:deployment", "Value": NAME}]}
    if trust is not None:
        body["AssumeRolePolicyDocument"] = json.dumps(trust)
    return body


def test_role_trust_carries_the_external_id_and_self_assumes_through_the_account_root() -> None:
    iam, stub, seen = iam_client()
    stub.add_response("create_role", {"Role": role()}, {"RoleName": "gov-uc-catalog", "AssumeRolePolicyDocument": ANY, "Description": ANY, "Tags": ANY})
    step = UnityCatalogRole("iam.uc", credential="uc.credential")
    with stub:
        out = step.create(context(FakeClients(iam=iam), outputs=CREDENTIAL))
    assert out == {"role_name": "gov-uc-catalog", "role_arn": ROLE_ARN, "external_id": EXTERNAL_ID}
    (name, params), = seen
    trust = json.loads(params["AssumeRolePolicyDocument"])
    master, self_assume = trust["Statement"]
    assert master["Principal"] == {"AWS": UC_MASTER_ROLE}
    assert master["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    # Never the role's own ARN as principal (IAM refuses it while the role does not exist): the root, narrowed.
    assert self_assume["Principal"] == {"AWS": f"arn:aws:iam::{AWS_ACCOUNT}:root"}
    assert self_assume["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}, "ArnLike": {"aws:PrincipalArn": ROLE_ARN}}
    assert ROLE_ARN not in json.dumps([s["Principal"] for s in trust["Statement"]])
    assert {t["Key"]: t["Value"] for t in params["Tags"]}["provision:deployment"] == NAME
    assert uc_role_name(NAME) == "gov-uc-catalog"


def test_role_trust_converges_when_the_external_id_changes() -> None:
    iam, stub, seen = iam_client()
    old = copy.deepcopy(json.loads(json.dumps(_trust("old-external-id"))))
    stub.add_response("get_role", {"Role": role(old)}, {"RoleName": "gov-uc-catalog"})
    stub.add_response("get_role", {"Role": role(old)}, {"RoleName": "gov-uc-catalog"})
    stub.add_response("update_assume_role_policy", {}, {"RoleName": "gov-uc-catalog", "PolicyDocument": ANY})
    step = UnityCatalogRole("iam.uc", credential="uc.credential")
    ctx = context(FakeClients(iam=iam), outputs=CREDENTIAL)
    with stub:
        found = step.find(ctx)
        assert found["external_id"] == "old-external-id" and step.needs_converge(ctx, found)
        step.wait_ready(ctx, found)
    assert json.loads(seen[-1][1]["PolicyDocument"]) == _trust(EXTERNAL_ID)


def _trust(external_id: str) -> dict[str, Any]:
    from provision.clouds.aws.steps.uc_storage import uc_trust_policy

    return uc_trust_policy(AWS_ACCOUNT, NAME, external_id)


@pytest.mark.parametrize("key", [None, "arn:aws:kms:us-east-1:123456789012:key/1111-2222"])
def test_role_policy_grants_the_bucket_itself_and_the_key(key: str | None) -> None:
    iam, stub, seen = iam_client()
    stub.add_response("put_role_policy", {}, {"RoleName": "gov-uc-catalog", "PolicyName": "gov-uc-catalog-policy", "PolicyDocument": ANY})
    outputs = {"iam.uc": {"role_name": "gov-uc-catalog", "role_arn": ROLE_ARN}, **BUCKET, "kms.bucket": {"key_arn": key}}
    step = UnityCatalogRolePolicy("iam.uc.policy", role="iam.uc", bucket="s3.catalog", kms_key="kms.bucket" if key else None)
    with stub:
        out = step.create(context(FakeClients(iam=iam), outputs=outputs))
    assert out["policy_name"] == "gov-uc-catalog-policy" and out["role_arn"] == ROLE_ARN
    statements = {s["Sid"]: s for s in json.loads(seen[0][1]["PolicyDocument"])["Statement"]}
    objects, bucket = statements["CatalogObjects"], statements["CatalogBucket"]
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(objects["Action"]) and objects["Resource"] == "arn:aws:s3:::gov-catalog-bucket/*"
    assert {"s3:ListBucket", "s3:GetBucketLocation", "s3:GetLifecycleConfiguration", "s3:PutLifecycleConfiguration"} <= set(bucket["Action"])
    assert bucket["Resource"] == "arn:aws:s3:::gov-catalog-bucket"
    assert statements["AssumeSelf"] == {"Sid": "AssumeSelf", "Effect": "Allow", "Action": "sts:AssumeRole", "Resource": ROLE_ARN}
    if key:
        assert statements["CatalogKey"]["Resource"] == key and "kms:GenerateDataKey*" in statements["CatalogKey"]["Action"]
    else:
        assert "CatalogKey" not in statements


def test_catalog_bucket_policy_is_tls_only_with_no_grant() -> None:
    s3 = MagicMock()
    s3.get_bucket_policy.side_effect = ClientError({"Error": {"Code": "NoSuchBucketPolicy", "Message": "none"}}, "GetBucketPolicy")
    bucket = CatalogBucket("s3.catalog", "gov-catalog-bucket")
    ctx = context(FakeClients(s3=s3))
    bucket._initial_policy(ctx, s3, "gov-catalog-bucket")
    policy = json.loads(s3.put_bucket_policy.call_args.kwargs["Policy"])
    assert policy == catalog_bucket_policy("gov-catalog-bucket")
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    # A root-bucket-shaped policy (with Databricks' grant) is replaced; the digest tells the two apart.
    s3.get_bucket_policy.side_effect = None
    s3.get_bucket_policy.return_value = {"Policy": json.dumps({"Statement": [{"Effect": "Allow"}]})}
    bucket._initial_policy(ctx, s3, "gov-catalog-bucket")
    assert s3.put_bucket_policy.call_count == 2
    assert bucket._settings_digest(ctx) != RootBucket("s3.root", "gov-catalog-bucket")._settings_digest(ctx)


def location_harness(results: list[list[tuple[str, str]]] | None = None, *, forever: list[tuple[str, str]] | None = None) -> tuple[ExternalLocation, Context, Any, FakeClock]:
    ws = MagicMock()
    answers = [uc.ValidateStorageCredentialResponse(is_dir=True, results=[
        uc.ValidationResult(operation=uc.ValidationResultOperation(op), result=uc.ValidationResultResult(r), message=None if r == "PASS" else f"AWS IAM role does not have {op} permissions on url s3://gov-catalog-bucket/.")
        for op, r in rs]) for rs in (results or [])]
    if forever is not None:
        ws.storage_credentials.validate.return_value = uc.ValidateStorageCredentialResponse(is_dir=True, results=[
            uc.ValidationResult(operation=uc.ValidationResultOperation(op), result=uc.ValidationResultResult(r), message=f"{op} not yet") for op, r in forever])
    else:
        ws.storage_credentials.validate.side_effect = answers
    ws.external_locations.create.return_value = uc.ExternalLocationInfo(name="gov-catalog", url="s3://gov-catalog-bucket/", credential_name="gov-catalog")
    clock = FakeClock(start=0.0)
    ctx = context(FakeClients(workspace=ws), clock, outputs={**CREDENTIAL, **BUCKET, "iam.uc.policy": {}}, deadline=60)
    step = ExternalLocation("uc.location", name="gov-catalog", credential="uc.credential", bucket="s3.catalog", role_policy="iam.uc.policy")
    return step, ctx, ws, clock


def test_validation_fails_twice_then_passes_and_each_retry_is_logged() -> None:
    ops = ("READ", "WRITE", "DELETE", "LIST")
    step, ctx, ws, clock = location_harness([
        [(op, "FAIL") for op in ops], [("READ", "PASS"), ("WRITE", "FAIL"), ("DELETE", "PASS"), ("LIST", "PASS")], [(op, "PASS") for op in ops],
    ])
    out = step.create(ctx)
    assert out == {"name": "gov-catalog", "url": "s3://gov-catalog-bucket/", "credential_name": "gov-catalog", "deployment_name": DEPLOYMENT}
    assert ws.storage_credentials.validate.call_count == 3
    assert ws.storage_credentials.validate.call_args.kwargs == {"storage_credential_name": "gov-catalog", "url": "s3://gov-catalog-bucket/"}
    ws.external_locations.create.assert_called_once_with(
        name="gov-catalog", url="s3://gov-catalog-bucket/", credential_name="gov-catalog", comment="provision:deployment=gov",
    )
    retries = logged_retries(ctx)
    assert [r["reason"] for r in retries] == [IAM_PROPAGATION, IAM_PROPAGATION]
    assert "WRITE: AWS IAM role does not have WRITE permissions" in retries[1]["error"]
    assert clock.sleeps and clock.now > 0  # backed off on the fake clock, no real sleep


def test_validation_that_never_passes_gives_up_with_the_last_answer() -> None:
    step, ctx, ws, clock = location_harness(forever=[("READ", "PASS"), ("LIST", "FAIL")])
    with pytest.raises(RetryDeadlineExceeded) as raised:
        step.create(ctx)
    assert raised.value.reason == IAM_PROPAGATION
    assert "LIST: LIST not yet" in str(raised.value)
    ws.external_locations.create.assert_not_called()
    assert clock.now >= 60


def test_location_create_refused_while_propagating_is_retried() -> None:
    step, ctx, ws, _ = location_harness([[("READ", "PASS")]])
    denied = dbx(403, {"error_code": "PERMISSION_DENIED", "message": NOT_CONFIGURED}, "/api/2.1/unity-catalog/external-locations")
    ws.external_locations.create.side_effect = [denied, uc.ExternalLocationInfo(name="gov-catalog", url="s3://gov-catalog-bucket/", credential_name="gov-catalog")]
    assert step.create(ctx)["name"] == "gov-catalog"
    assert [r["reason"] for r in logged_retries(ctx)] == [IAM_PROPAGATION]


def test_a_location_that_exists_already_is_re_read() -> None:
    step, ctx, ws, _ = location_harness([[("READ", "PASS")]])
    ws.external_locations.create.side_effect = dbx(409, {"error_code": "EXTERNAL_LOCATION_ALREADY_EXISTS", "message": "exists"})
    ws.external_locations.get.return_value = uc.ExternalLocationInfo(name="gov-catalog", url="s3://gov-catalog-bucket/", credential_name="gov-catalog", comment="provision:deployment=gov")
    assert step.create(ctx)["url"] == "s3://gov-catalog-bucket/"
    ws.external_locations.get.return_value = uc.ExternalLocationInfo(name="gov-catalog", url="s3://other/", credential_name="x", comment="someone else's")
    with pytest.raises(OwnershipConflict, match="external location 'gov-catalog'"):
        step.find(ctx)


# --- catalog, schema, grants, default namespace ------------------------------------------------------------------


def test_catalog_request_and_ownership() -> None:
    ws = MagicMock()
    ws.catalogs.get.side_effect = not_found("CATALOG")
    ws.catalogs.create.return_value = uc.CatalogInfo(name="analytics", storage_root="s3://gov-catalog-bucket/catalogs/analytics", properties={"provision:deployment": NAME})
    step = Catalog("uc.catalog", name="analytics", assignment="uc.assignment", bucket="s3.catalog", location="uc.location")
    ctx = context(FakeClients(workspace=ws), outputs={**ASSIGNED, **BUCKET})
    assert step.find(ctx) is None
    assert step.create(ctx) == {"name": "analytics", "storage_root": "s3://gov-catalog-bucket/catalogs/analytics", "deployment_name": DEPLOYMENT}
    kwargs = ws.catalogs.create.call_args.kwargs
    assert (kwargs["name"], kwargs["storage_root"], kwargs["properties"]) == ("analytics", "s3://gov-catalog-bucket/catalogs/analytics", {"provision:deployment": NAME})
    ws.catalogs.get.side_effect = None
    ws.catalogs.get.return_value = uc.CatalogInfo(name="analytics", properties={"owner": "someone"})
    with pytest.raises(OwnershipConflict, match="catalog 'analytics'"):
        step.find(ctx)
    step.delete(ctx, {"name": "analytics"})
    ws.catalogs.delete.assert_called_once_with(name="analytics", force=True)


def test_serverless_catalog_has_no_storage_root() -> None:
    ws = MagicMock()
    ws.catalogs.create.return_value = uc.CatalogInfo(name="analytics", properties={"provision:deployment": NAME})
    step = Catalog("uc.catalog", name="analytics", assignment="uc.assignment")
    step.create(context(FakeClients(workspace=ws), outputs=ASSIGNED))
    assert ws.catalogs.create.call_args.kwargs["storage_root"] is None


def test_schema_request_and_re_read_when_it_exists() -> None:
    ws = MagicMock()
    ws.schemas.create.side_effect = dbx(409, {"error_code": "SCHEMA_ALREADY_EXISTS", "message": "exists"})
    ws.schemas.get.return_value = uc.SchemaInfo(name="bronze", full_name="analytics.bronze", properties={"provision:deployment": NAME})
    step = Schema("uc.schema.bronze", name="bronze", catalog="uc.catalog")
    ctx = context(FakeClients(workspace=ws), outputs=CATALOG)
    assert step.create(ctx) == {"full_name": "analytics.bronze", "deployment_name": DEPLOYMENT}
    kwargs = ws.schemas.create.call_args.kwargs
    assert (kwargs["name"], kwargs["catalog_name"], kwargs["properties"]) == ("bronze", "analytics", {"provision:deployment": NAME})
    ws.schemas.get.assert_called_with(full_name="analytics.bronze")


def test_grants_add_only_what_is_missing_and_find_waits_for_all() -> None:
    ws = MagicMock()
    granted = {
        ("catalog", "analytics"): uc.GetPermissionsResponse(privilege_assignments=[
            uc.PrivilegeAssignment(principal="data_engineers", privileges=[uc.Privilege.USE_CATALOG]),
            uc.PrivilegeAssignment(principal="someone", privileges=[uc.Privilege.MODIFY]),
        ]),
        ("schema", "analytics.bronze"): uc.GetPermissionsResponse(privilege_assignments=[]),
    }
    ws.grants.get.side_effect = lambda securable_type, full_name, page_token=None: granted[(securable_type, full_name)]
    step = Grants("uc.grants", catalog="uc.catalog", grants=(
        Grant("data_engineers", ("USE_CATALOG", "USE_SCHEMA")), Grant("account users", ("SELECT",), "bronze"),
    ))
    ctx = context(FakeClients(workspace=ws), outputs=CATALOG)
    assert step.find(ctx) is None
    out = step.create(ctx)
    assert out["catalog"] == "analytics" and out["digest"] == step.digest("analytics")
    calls = {(c.kwargs["securable_type"], c.kwargs["full_name"]): c.kwargs["changes"] for c in ws.grants.update.call_args_list}
    assert calls == {
        ("catalog", "analytics"): [uc.PermissionsChange(principal="data_engineers", add=[uc.Privilege.USE_SCHEMA])],
        ("schema", "analytics.bronze"): [uc.PermissionsChange(principal="account users", add=[uc.Privilege.SELECT])],
    }
    assert all(change.remove is None for changes in calls.values() for change in changes)  # never removes
    granted[("catalog", "analytics")].privilege_assignments[0].privileges.append(uc.Privilege.USE_SCHEMA)
    granted[("schema", "analytics.bronze")].privilege_assignments.append(uc.PrivilegeAssignment(principal="account users", privileges=[uc.Privilege.SELECT]))
    assert step.find(ctx) == out


def test_default_namespace_patch_with_etag_and_field_mask() -> None:
    ws = MagicMock()
    ws.settings.default_namespace.get.return_value = dbs.DefaultNamespaceSetting(namespace=dbs.StringMessage(value="hive_metastore"), etag="e-1")
    ws.settings.default_namespace.update.return_value = dbs.DefaultNamespaceSetting(namespace=dbs.StringMessage(value="analytics"), etag="e-2")
    step = DefaultNamespace("uc.default_namespace", catalog="uc.catalog")
    ctx = context(FakeClients(workspace=ws), outputs=CATALOG)
    assert step.find(ctx) is None  # another catalog: not as wanted yet
    assert step.create(ctx) == {"deployment_name": DEPLOYMENT, "namespace": "analytics"}
    kwargs = ws.settings.default_namespace.update.call_args.kwargs
    assert kwargs["allow_missing"] is True and kwargs["field_mask"] == "namespace.value"
    assert kwargs["setting"].as_dict() == {"namespace": {"value": "analytics"}, "etag": "e-1", "setting_name": "default"}
    step.delete(ctx, {})
    ws.settings.default_namespace.delete.assert_called_once_with(etag="e-1")


def test_default_namespace_unset_writes_with_the_etag_of_the_404_and_retries_a_409_once() -> None:
    def etag_error(status: int, code: str, etag: str) -> Exception:
        return dbx(status, {"error_code": code, "message": "etag", "details": [
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ETAG_MISSING", "domain": "settings.databricks.com", "metadata": {"etag": etag}},
        ]}, "/api/2.0/settings/types/default_namespace_ws/names/default")

    ws = MagicMock()
    ws.settings.default_namespace.get.side_effect = etag_error(404, "NOT_FOUND", "e-0")
    ws.settings.default_namespace.update.side_effect = [
        etag_error(409, "RESOURCE_CONFLICT", "e-1"), dbs.DefaultNamespaceSetting(namespace=dbs.StringMessage(value="analytics"), etag="e-2"),
    ]
    step = DefaultNamespace("uc.default_namespace", catalog="uc.catalog")
    ctx = context(FakeClients(workspace=ws), outputs=CATALOG)
    assert step.find(ctx) is None
    assert step.create(ctx)["namespace"] == "analytics"
    assert [c.kwargs["setting"].etag for c in ws.settings.default_namespace.update.call_args_list] == ["e-0", "e-1"]
    step.delete(ctx, {})  # unset: nothing to delete
    ws.settings.default_namespace.delete.assert_not_called()


# --- review fixes: service principals by application id, absent securables, sticky metastore verdict, teardown
# through the step's own recorded deployment name, URLs without their trailing slash -----------------------------------


SP = {"id.sp.ci": {"principal_id": "sp-1", "application_id": "0f1e2d3c-app", "display_name": "ci-automation", "adopted": False}}


def test_grants_name_a_service_principal_by_its_application_id() -> None:
    ws = MagicMock()
    granted: dict[tuple[str, str], list[uc.PrivilegeAssignment]] = {("catalog", "analytics"): []}
    ws.grants.get.side_effect = lambda securable_type, full_name, page_token=None: uc.GetPermissionsResponse(privilege_assignments=granted[(securable_type, full_name)])
    step = Grants("uc.grants", catalog="uc.catalog", service_principals={"ci-automation": "id.sp.ci"}, grants=(
        Grant("ci-automation", ("USE_CATALOG",)), Grant("data_engineers", ("BROWSE",)),
    ))
    assert "id.sp.ci" in step.needs
    assert step.find(context(FakeClients(workspace=ws), outputs=CATALOG)) is None  # plan: the id is not known yet
    ws.grants.get.assert_not_called()
    ctx = context(FakeClients(workspace=ws), outputs={**CATALOG, **SP})
    out = step.create(ctx)
    (call,) = ws.grants.update.call_args_list
    assert call.kwargs["changes"] == [
        uc.PermissionsChange(principal="0f1e2d3c-app", add=[uc.Privilege.USE_CATALOG]),
        uc.PermissionsChange(principal="data_engineers", add=[uc.Privilege.BROWSE]),
    ]
    # Unity Catalog reports the grant under the application id: found, so the next up keeps it.
    granted[("catalog", "analytics")] += [
        uc.PrivilegeAssignment(principal="0f1e2d3c-app", privileges=[uc.Privilege.USE_CATALOG]),
        uc.PrivilegeAssignment(principal="data_engineers", privileges=[uc.Privilege.BROWSE]),
    ]
    found = step.find(ctx)
    assert found == out and not step.needs_converge(ctx, found)


def test_grants_on_a_securable_that_does_not_exist_are_missing() -> None:
    ws = MagicMock()

    def get(securable_type: str, full_name: str, page_token: str | None = None) -> Any:
        if securable_type == "schema":
            raise not_found("SCHEMA")  # an interrupted up, or a schema dropped by hand
        return uc.GetPermissionsResponse(privilege_assignments=[uc.PrivilegeAssignment(principal="account users", privileges=[uc.Privilege.BROWSE])])

    ws.grants.get.side_effect = get
    step = Grants("uc.grants", catalog="uc.catalog", grants=(Grant("account users", ("BROWSE",)), Grant("account users", ("SELECT",), "bronze")))
    ctx = context(FakeClients(workspace=ws), outputs=CATALOG)
    assert step.find(ctx) is None
    step.delete(ctx, {"catalog": "analytics"})  # nothing to do


def test_a_renamed_metastore_this_step_created_is_still_deleted() -> None:
    account = MagicMock()
    account.metastores.create.return_value = MagicMock(metastore_info=uc.MetastoreInfo(metastore_id="ms-new", name="gov-us-east-1", region=REGION))
    account.metastores.list.return_value = []
    account.metastore_assignments.list.return_value = []
    step = Metastore("uc.metastore", name="gov-us-east-1")
    ctx = context(FakeClients(account=account))
    ctx.claimed.add(step.id)
    recorded = step.create(ctx)
    assert recorded["adopted"] is False
    # Renamed in the console: still the one this step created (its id is a state fact), so teardown deletes it.
    account.metastores.list.return_value = [uc.MetastoreInfo(metastore_id="ms-new", name="renamed-in-console", region=REGION)]
    found = step.find(ctx)
    assert found["adopted"] is False and found["name"] == "renamed-in-console"
    step.delete(ctx, {**recorded, **found})  # as the engine merges them
    account.metastores.delete.assert_called_once_with(metastore_id="ms-new")
    # Another metastore than the one it created, under another name: the account's.
    account.metastores.list.return_value = [uc.MetastoreInfo(metastore_id="ms-other", name="theirs", region=REGION)]
    assert step.find(ctx)["adopted"] is True


@pytest.mark.parametrize("make, out", [
    (lambda: Catalog("uc.catalog", name="analytics", assignment="uc.assignment"), {"name": "analytics", "storage_root": None}),
    (lambda: Schema("uc.schema.bronze", name="bronze", catalog="uc.catalog"), {"full_name": "analytics.bronze"}),
    (lambda: StorageCredential("uc.credential", name="gov-catalog", assignment="uc.assignment"), {"name": "gov-catalog"}),
    (lambda: ExternalLocation("uc.location", name="gov-catalog", credential="uc.credential", bucket="s3.catalog", role_policy="iam.uc.policy"), {"name": "gov-catalog"}),
])
def test_teardown_reaches_the_workspace_through_the_steps_own_record(make: Any, out: dict[str, Any]) -> None:
    ws = MagicMock()
    for api in (ws.catalogs, ws.schemas, ws.storage_credentials, ws.external_locations):
        api.get.side_effect = not_found("X")
    clients = FakeClients(workspace=ws)
    ctx = context(clients)  # the assignment (and the catalog, the credential) ended FAILED: their outputs are unknown
    step = make()
    assert "deployment_name" in step.produces
    assert step.find(ctx) is None
    step.delete(ctx, {**out, "deployment_name": DEPLOYMENT})
    step.wait_deleted(ctx, {**out, "deployment_name": DEPLOYMENT})
    deleted = [api.delete for api in (ws.catalogs, ws.schemas, ws.storage_credentials, ws.external_locations) if api.delete.called]
    assert len(deleted) == 1 and clients.workspaces_asked == [DEPLOYMENT, DEPLOYMENT]


def test_schema_and_location_record_the_deployment_name() -> None:
    ws = MagicMock()
    ws.schemas.create.return_value = uc.SchemaInfo(name="bronze", full_name="analytics.bronze")
    assert Schema("uc.schema.bronze", name="bronze", catalog="uc.catalog").create(context(FakeClients(workspace=ws), outputs=CATALOG)) == {
        "full_name": "analytics.bronze", "deployment_name": DEPLOYMENT}
    step, ctx, _, _ = location_harness([[("READ", "PASS")]])
    assert step.create(ctx)["deployment_name"] == DEPLOYMENT


def test_a_location_url_answered_without_its_trailing_slash_is_the_same() -> None:
    step, ctx, ws, _ = location_harness()
    found = {"name": "gov-catalog", "url": "s3://gov-catalog-bucket", "credential_name": "gov-catalog", "deployment_name": DEPLOYMENT}
    assert not step.needs_converge(ctx, found)
    assert step.wait_ready(ctx, found) == found
    ws.storage_credentials.validate.assert_not_called()
    ws.external_locations.update.assert_not_called()
    assert step.needs_converge(ctx, {**found, "url": "s3://other-bucket"})
