"""[identity], [[cluster_policies]] and [serverless] without a cloud: each bad value names its field, the presets,
what a live deployment may not change, and the steps against fake account/workspace clients and a fake Secrets
Manager: an OAuth secret only ever in Secrets Manager, an orphaned secret revoked, adoption, converging a group's
members, a policy's definition and a network policy's enforcement in place."""

from __future__ import annotations

import copy
import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError
from databricks.sdk.errors import BadRequest, NotFound
from fakes import FakeClock
from structlog.testing import CapturingLogger

from provision.clouds import error_rules
from provision.clouds.databricks import spec_identity, spec_policies, spec_serverless
from provision.clouds.databricks.spec_policies import PRESETS
from provision.clouds.databricks.spec_serverless import (
    NetworkPolicySpec,
    PrivateEndpointRuleSpec,
)
from provision.clouds.databricks.steps import identity as identity_steps
from provision.clouds.databricks.steps.cluster_policies import ClusterPolicy, digest
from provision.clouds.databricks.steps.identity import (
    Group,
    ServicePrincipal,
    ServicePrincipalSecret,
)
from provision.clouds.databricks.steps.identity_access import (
    DeployerAdmin,
    PermissionAssignment,
)
from provision.clouds.databricks.steps.network_policy import (
    NccBinding,
    NetworkConnectivityConfig,
    NetworkPolicy,
    NetworkPolicyBinding,
    PrivateEndpointRule,
    fit,
)
from provision.errors import OwnershipConflict, SpecError
from provision.orchestrator.clients import CallStats
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import TAG_DEPLOYMENT, Context, Ref
from provision.orchestrator.wait import PollPolicy
from provision.spec import Checker

pytestmark = pytest.mark.usefixtures("no_real_sleep", "wall_clock")


@pytest.fixture
def wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock the secret step records its attempts by, and the fake Databricks stamps create_time with: a second
    further on each time it is read, so that every event is strictly after the one before."""
    ticks = itertools.count()
    monkeypatch.setattr(identity_steps, "_utcnow", lambda: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=next(ticks)))

DEPLOYMENT, REGION, WORKSPACE_ID = "acme-gov", "us-east-1", 1001
SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"


# --- spec ---------------------------------------------------------------------------------------------------


def parse(section: Any, data: dict[str, Any], parsed: dict[str, Any] | None = None) -> tuple[Any, dict[str, str]]:
    check = Checker()
    value = section.parse(check, data, {"name": DEPLOYMENT, "region": REGION, "topology": "basic", **(parsed or {})})
    return value, {p.field: p.reason for p in check.problems}


UC = {"unity_catalog": object()}  # a parsed [unity_catalog]: only its presence matters here


def identity(sps: list[dict[str, Any]] = (), groups: list[dict[str, Any]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    return {"identity": {"service_principals": list(sps), "groups": list(groups)}}


def test_identity_parses_with_defaults() -> None:
    value, problems = parse(spec_identity.IDENTITY, identity(
        [{"name": "ci-automation", "workspace_permission": "USER", "oauth_secret": True}, {"name": "etl"}],
        [{"name": "data_engineers", "members": ["ci-automation", "etl"], "workspace_permission": "ADMIN"}],
    ), UC)
    assert problems == {}
    assert value == spec_identity.IdentitySpec(
        (spec_identity.ServicePrincipalSpec("ci-automation", "USER", True), spec_identity.ServicePrincipalSpec("etl", None, False)),
        (spec_identity.GroupSpec("data_engineers", ("ci-automation", "etl"), "ADMIN"),),
    )
    assert parse(spec_identity.IDENTITY, {})[0] is None


BAD_IDENTITY = {
    "unknown key": (identity([{"name": "a", "role": "x"}]), "identity.service_principals[0].role", "unknown field"),
    "name missing": (identity([{}]), "identity.service_principals[0].name", "is required"),
    "quote in a name": (identity([{"name": 'a"b'}]), "identity.service_principals[0].name", "SCIM filter"),
    "blank name": (identity([{"name": " a"}]), "identity.service_principals[0].name", "blanks"),
    "no letter": (identity([{"name": "--"}]), "identity.service_principals[0].name", "at least one letter"),
    "bad permission": (identity([{"name": "a", "workspace_permission": "OWNER"}]), "identity.service_principals[0].workspace_permission", "USER or ADMIN"),
    "secret not a bool": (identity([{"name": "a", "oauth_secret": "yes"}]), "identity.service_principals[0].oauth_secret", "true or false"),
    "name twice across kinds": (identity([{"name": "ops"}], [{"name": "OPS"}]), "identity.groups[0].name", "unique across"),
    "same slug": (identity([{"name": "ci bot"}, {"name": "ci-bot"}]), "identity.service_principals[1].name", "same step id"),
    "member not an SP": (identity([{"name": "a"}], [{"name": "g", "members": ["b"]}]), "identity.groups[0].members[0]", "not a service principal"),
    "member twice": (identity([{"name": "a"}], [{"name": "g", "members": ["a", "a"]}]), "identity.groups[0].members[1]", "twice"),
    "members not a list": (identity([], [{"name": "g", "members": "a"}]), "identity.groups[0].members", "list of strings"),
    "built-in group": (identity([], [{"name": "admins"}]), "identity.groups[0].name", "built-in"),
    "not an array": ({"identity": {"service_principals": {"name": "a"}}}, "identity.service_principals", "array of tables"),
}


@pytest.mark.parametrize(("data", "field", "reason"), BAD_IDENTITY.values(), ids=BAD_IDENTITY.keys())
def test_bad_identity_values_name_their_field(data: dict[str, Any], field: str, reason: str) -> None:
    value, problems = parse(spec_identity.IDENTITY, data, UC)
    assert value is None and field in problems and reason in problems[field], problems


def test_workspace_permissions_need_unity_catalog() -> None:
    data = identity([{"name": "a", "workspace_permission": "USER"}], [{"name": "g", "workspace_permission": "ADMIN"}])
    _, problems = parse(spec_identity.IDENTITY, data)
    for field in ("identity.service_principals[0].workspace_permission", "identity.groups[0].workspace_permission"):
        assert "needs [unity_catalog]" in problems[field] and "metastore is assigned" in problems[field]
    # Account-only identities need no metastore.
    assert parse(spec_identity.IDENTITY, identity([{"name": "a"}], [{"name": "g", "members": ["a"]}]))[1] == {}


def policies(*items: Any) -> dict[str, Any]:
    return {"cluster_policies": list(items)}


def test_presets_are_sensible_and_secure() -> None:
    value, problems = parse(spec_policies.CLUSTER_POLICIES, policies({"name": "data-engineering"}, {"name": "analyst"}, "admin"))
    assert problems == {} and [p.name for p in value] == ["data-engineering", "analyst", "admin"] and all(p.preset for p in value)
    for policy in value:
        definition = json.loads(policy.definition)
        assert definition == PRESETS[policy.name] and spec_policies.rule_problems(definition) == []
        assert policy.definition == spec_policies.canonical(definition)
        # Every preset: Unity Catalog access mode, auto-termination bounded, a cap on workers.
        assert definition["data_security_mode"]["type"] in ("fixed", "allowlist")
        assert set(definition["data_security_mode"].get("values", [definition["data_security_mode"].get("value")])) <= {"SINGLE_USER", "USER_ISOLATION"}
        assert definition["autotermination_minutes"]["type"] in ("fixed", "range")
        assert definition["autoscale.max_workers"]["maxValue"] <= 50
    de, analyst, admin = (PRESETS[n] for n in ("data-engineering", "analyst", "admin"))
    assert de["data_security_mode"]["value"] == "SINGLE_USER" and analyst["data_security_mode"]["value"] == "USER_ISOLATION"
    assert de["aws_attributes.availability"]["value"] == analyst["aws_attributes.availability"]["value"] == "SPOT_WITH_FALLBACK"
    assert admin["autoscale.max_workers"]["maxValue"] > de["autoscale.max_workers"]["maxValue"] > analyst["autoscale.max_workers"]["maxValue"]
    assert analyst["autotermination_minutes"] == {"type": "fixed", "value": 30}


def test_own_definitions_as_json_or_a_table_are_canonical() -> None:
    text = '{"spark_version": {"type": "unlimited", "defaultValue": "auto:latest-lts"},\n "autotermination_minutes": {"type": "fixed", "value": 20}}'
    value, problems = parse(spec_policies.CLUSTER_POLICIES, policies({"name": "etl", "definition": text},
                                                                     {"name": "analyst", "definition": {"autotermination_minutes": {"type": "fixed", "value": 15}}}))
    assert problems == {}
    assert value[0].definition == spec_policies.canonical(json.loads(text)) and not value[0].preset
    assert value[1].definition == '{"autotermination_minutes":{"type":"fixed","value":15}}' and not value[1].preset


BAD_POLICIES = {
    "JSON syntax error": ({"name": "p", "definition": '{\n  "a": {"type": "fixed" "value": 1}\n}'}, "cluster_policies[0].definition",
                          "is not valid JSON: Expecting ',' delimiter at line 2, column 25"),
    "JSON array": ({"name": "p", "definition": "[1, 2]"}, "cluster_policies[0].definition", "must be a JSON object"),
    "rule not an object": ({"name": "p", "definition": '{"a": 1}'}, "cluster_policies[0].definition", "must be an object with a \"type\""),
    "unknown rule type": ({"name": "p", "definition": '{"a": {"type": "rnage"}}'}, "cluster_policies[0].definition", "type 'rnage'"),
    "fixed without value": ({"name": "p", "definition": '{"a": {"type": "fixed"}}'}, "cluster_policies[0].definition", "needs a \"value\""),
    "allowlist without values": ({"name": "p", "definition": '{"a": {"type": "allowlist", "values": []}}'}, "cluster_policies[0].definition", "non-empty"),
    "range upside down": ({"name": "p", "definition": '{"a": {"type": "range", "minValue": 9, "maxValue": 1}}'}, "cluster_policies[0].definition", "above maxValue"),
    "definition a number": ({"name": "p", "definition": 5}, "cluster_policies[0].definition", "must be a JSON object as a string"),
    "no definition, not a preset": ({"name": "custom"}, "cluster_policies[0].definition", "not a shipped preset"),
    "name too long": ({"name": "x" * 101, "definition": "{}"}, "cluster_policies[0].name", "1-100 characters"),
    "unknown key": ({"name": "admin", "rules": "{}"}, "cluster_policies[0].rules", "unknown field"),
    "not a table": (5, "cluster_policies[0]", "must be a table"),
}


@pytest.mark.parametrize(("item", "field", "reason"), BAD_POLICIES.values(), ids=BAD_POLICIES.keys())
def test_bad_policies_name_their_field(item: Any, field: str, reason: str) -> None:
    value, problems = parse(spec_policies.CLUSTER_POLICIES, policies(item))
    assert value is None and field in problems and reason in problems[field], problems


def test_policy_names_are_unique() -> None:
    _, problems = parse(spec_policies.CLUSTER_POLICIES, policies("admin", {"name": "Admin", "definition": "{}"}))
    assert "already the name of cluster_policies[0]" in problems["cluster_policies[1].name"]
    _, problems = parse(spec_policies.CLUSTER_POLICIES, {"cluster_policies": {"name": "admin"}})
    assert "array of tables" in problems["cluster_policies"]


def serverless(policy: dict[str, Any] | None = None, ncc: dict[str, Any] | None = None) -> dict[str, Any]:
    table: dict[str, Any] = {}
    if policy is not None:
        table["network_policy"] = policy
    if ncc is not None:
        table["ncc"] = ncc
    return {"serverless": table}


def test_serverless_defaults_to_restricted_dry_run() -> None:
    value, problems = parse(spec_serverless.SERVERLESS, serverless(
        {"allowed_internet_destinations": ["pypi.org", "files.pythonhosted.org"], "allowed_storage_buckets": ["my-bucket"]},
        {"private_endpoint_rules": [{"endpoint_service": SERVICE, "domain_names": ["internal.example.com"]}]},
    ))
    assert problems == {}
    assert value.network_policy == NetworkPolicySpec(True, "DRY_RUN", ("pypi.org", "files.pythonhosted.org"), ("my-bucket",))
    assert value.ncc.private_endpoint_rules == (PrivateEndpointRuleSpec(SERVICE, ("internal.example.com",)),)
    full, _ = parse(spec_serverless.SERVERLESS, serverless({"restriction": "full", "enforcement": "enforced"}))
    assert full.network_policy == NetworkPolicySpec(False, "ENFORCED", (), ()) and full.ncc is None


NP = "serverless.network_policy"
BAD_SERVERLESS = {
    "restriction": ({"restriction": "partial"}, None, f"{NP}.restriction", "not one of restricted, full"),
    "enforcement": ({"enforcement": "on"}, None, f"{NP}.enforcement", "not one of dry_run, enforced"),
    "a URL": ({"allowed_internet_destinations": ["https://pypi.org"]}, None, f"{NP}.allowed_internet_destinations[0]", "host name only"),
    "an IP": ({"allowed_internet_destinations": ["10.0.0.1"]}, None, f"{NP}.allowed_internet_destinations[0]", "IP address"),
    "a wildcard": ({"allowed_internet_destinations": ["*.example.com"]}, None, f"{NP}.allowed_internet_destinations[0]", "wildcard"),
    "one label": ({"allowed_internet_destinations": ["localhost"]}, None, f"{NP}.allowed_internet_destinations[0]", "fully qualified"),
    "bad label": ({"allowed_internet_destinations": ["a-.example.com"]}, None, f"{NP}.allowed_internet_destinations[0]", "invalid label 'a-'"),
    "uppercase": ({"allowed_internet_destinations": ["PyPI.org"]}, None, f"{NP}.allowed_internet_destinations[0]", "lowercase"),
    "twice": ({"allowed_internet_destinations": ["pypi.org", "pypi.org"]}, None, f"{NP}.allowed_internet_destinations[1]", "twice"),
    "bucket name": ({"allowed_storage_buckets": ["My_Bucket"]}, None, f"{NP}.allowed_storage_buckets[0]", "not an S3 bucket name"),
    "bucket dots": ({"allowed_storage_buckets": ["a..b"]}, None, f"{NP}.allowed_storage_buckets[0]", "adjacent dots"),
    "bucket as IP": ({"allowed_storage_buckets": ["192.168.1.1"]}, None, f"{NP}.allowed_storage_buckets[0]", "IP address"),
    "destinations on full": ({"restriction": "full", "allowed_internet_destinations": ["pypi.org"]}, None,
                             f"{NP}.allowed_internet_destinations", 'only with restriction = "restricted"'),
    "unknown key": ({"mode": "x"}, None, f"{NP}.mode", "unknown field"),
    "endpoint service": (None, {"private_endpoint_rules": [{"endpoint_service": "vpce-svc-1"}]},
                         "serverless.ncc.private_endpoint_rules[0].endpoint_service", "not an AWS endpoint service name"),
    "service in another region": (None, {"private_endpoint_rules": [{"endpoint_service": SERVICE.replace("us-east-1", "eu-west-1")}]},
                                  "serverless.ncc.private_endpoint_rules[0].endpoint_service", "not the deployment's region us-east-1"),
    "service twice": (None, {"private_endpoint_rules": [{"endpoint_service": SERVICE}, {"endpoint_service": SERVICE}]},
                      "serverless.ncc.private_endpoint_rules[1].endpoint_service", "has a rule already"),
    "domain name": (None, {"private_endpoint_rules": [{"endpoint_service": SERVICE, "domain_names": ["x"]}]},
                    "serverless.ncc.private_endpoint_rules[0].domain_names[0]", "fully qualified"),
}


@pytest.mark.parametrize(("policy", "ncc", "field", "reason"), BAD_SERVERLESS.values(), ids=BAD_SERVERLESS.keys())
def test_bad_serverless_values_name_their_field(policy: Any, ncc: Any, field: str, reason: str) -> None:
    value, problems = parse(spec_serverless.SERVERLESS, serverless(policy, ncc))
    assert value is None and field in problems and reason in problems[field], problems


def test_enforce_sets_enforced_and_needs_a_policy() -> None:
    data = {"name": DEPLOYMENT, **serverless({"enforcement": "dry_run"})}
    enforced = spec_serverless.enforce(data)
    assert enforced["serverless"]["network_policy"]["enforcement"] == "enforced"
    assert data["serverless"]["network_policy"]["enforcement"] == "dry_run"  # a copy
    assert parse(spec_serverless.SERVERLESS, enforced)[0].network_policy.enforcement == "ENFORCED"
    for without in ({"name": DEPLOYMENT}, {"name": DEPLOYMENT, **serverless(ncc={})}):
        with pytest.raises(SpecError) as info:
            spec_serverless.enforce(without, "spec.toml")
        assert [p.field for p in info.value.problems] == ["serverless.network_policy"] and "--enforce-network-policy" in str(info.value)


def test_live_deployments_refuse_removals_and_allow_in_place_changes() -> None:
    before = {
        "identity": {"service_principals": [{"name": "ci", "workspace_permission": "USER", "oauth_secret": True}],
                     "groups": [{"name": "g", "members": ["ci"], "workspace_permission": "USER"}]},
        "cluster_policies": [{"name": "admin", "definition": "{}", "preset": True}],
        "serverless": {"network_policy": {"restricted": True, "enforcement": "DRY_RUN"},
                       "ncc": {"private_endpoint_rules": [{"endpoint_service": SERVICE, "domain_names": []}]}},
    }
    changed = copy.deepcopy(before)
    changed["identity"]["service_principals"][0]["workspace_permission"] = "ADMIN"
    changed["identity"]["groups"][0]["members"] = []
    changed["cluster_policies"][0]["definition"] = '{"a":{"type":"forbidden"}}'
    changed["serverless"]["network_policy"]["enforcement"] = "ENFORCED"
    changed["serverless"]["ncc"]["private_endpoint_rules"][0]["domain_names"] = ["a.example.com"]
    assert spec_identity.changes(before, changed) + spec_policies.changes(before, changed) + spec_serverless.changes(before, changed) == []
    removed = {"identity": {"service_principals": [{"name": "ci"}], "groups": []}, "cluster_policies": [], "serverless": {"ncc": {
        "private_endpoint_rules": [{"endpoint_service": SERVICE.replace("0123", "9999"), "domain_names": []}]}}}
    assert spec_identity.changes(before, removed) == [
        "identity.service_principals.ci.workspace_permission (removing it)", "identity.service_principals.ci.oauth_secret (turning it off)",
        "identity.groups (removing g)",
    ]
    assert spec_policies.changes(before, removed) == ["cluster_policies (removing admin)"]
    assert spec_serverless.changes(before, removed) == [
        "serverless.network_policy (removing it)", "serverless.ncc.private_endpoint_rules[0].endpoint_service (changing it; add a rule instead)",
    ]


# --- fakes --------------------------------------------------------------------------------------------------


def not_found(what: str) -> NotFound:
    return NotFound(f"{what} does not exist", error_code="RESOURCE_DOES_NOT_EXIST")


class FakeSecretsManager:
    def __init__(self) -> None:
        self.secrets: dict[str, dict[str, Any]] = {}
        self.fail_next_create = False

    def _get(self, secret_id: str) -> dict[str, Any]:
        for secret in self.secrets.values():
            if secret_id in (secret["Name"], secret["ARN"]):
                return secret
        raise ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no such secret"}}, "DescribeSecret")

    def describe_secret(self, SecretId: str) -> dict[str, Any]:
        secret = self._get(SecretId)
        return {k: v for k, v in secret.items() if k != "SecretString"}

    def create_secret(self, Name: str, SecretString: str, Description: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        if Name in self.secrets:  # also one scheduled for deletion (Secrets Manager's InvalidRequestException then)
            raise ClientError({"Error": {"Code": "ResourceExistsException", "Message": f"the secret {Name} already exists"}}, "CreateSecret")
        if self.fail_next_create:  # the process dies between the Databricks call and storing the value
            self.fail_next_create = False
            raise KeyboardInterrupt
        arn = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{Name}-AbCdEf"
        self.secrets[Name] = {"Name": Name, "ARN": arn, "SecretString": SecretString, "Description": Description, "Tags": Tags}
        return {"ARN": arn, "Name": Name}

    def delete_secret(self, SecretId: str, ForceDeleteWithoutRecovery: bool) -> None:
        self.secrets.pop(self._get(SecretId)["Name"])

    def put_secret_value(self, SecretId: str, SecretString: str) -> None:
        secret = self._get(SecretId)
        assert not secret.get("DeletedDate"), "a secret scheduled for deletion takes no value"
        secret["SecretString"] = SecretString

    def tag_resource(self, SecretId: str, Tags: list[dict[str, str]]) -> None:
        secret = self._get(SecretId)
        secret["Tags"] = [t for t in secret["Tags"] if t["Key"] not in {n["Key"] for n in Tags}] + Tags

    def restore_secret(self, SecretId: str) -> None:
        self._get(SecretId).pop("DeletedDate", None)


class Scim:
    """Account SCIM service principals or groups."""

    def __init__(self, ids: Any) -> None:
        self.items: dict[str, SimpleNamespace] = {}
        self.ids, self.patches = ids, []

    def list(self, filter: str | None = None) -> list[SimpleNamespace]:
        assert filter and filter.startswith("displayName eq ")
        name = json.loads(filter.removeprefix("displayName eq "))
        return [SimpleNamespace(**{k: v for k, v in vars(i).items() if k != "members"}) for i in self.items.values() if i.display_name.lower() == name.lower()]

    def get(self, id: str) -> SimpleNamespace:
        if id not in self.items:
            raise NotFound(f"Group with id {id} not found.")  # SCIM's 404 carries no error code
        return self.items[id]

    def create(self, display_name: str, active: bool | None = None, members: list[Any] | None = None) -> SimpleNamespace:
        pid = str(next(self.ids))
        item = SimpleNamespace(id=pid, display_name=display_name, application_id=f"app-{pid}",
                               members=[SimpleNamespace(value=m.value) for m in members or ()])
        self.items[pid] = item
        return item

    def delete(self, id: str) -> None:
        self.get(id)
        del self.items[id]

    def patch(self, id: str, operations: list[Any], schemas: list[Any]) -> None:
        group = self.get(id)
        self.patches.append([op.as_dict() for op in operations])
        for op in operations:
            if op.op.value == "add":
                have = {m.value for m in group.members}
                group.members += [SimpleNamespace(value=v["value"]) for v in op.value if v["value"] not in have]
            else:
                gone = json.loads(op.path.removeprefix("members[value eq ").removesuffix("]"))
                group.members = [m for m in group.members if m.value != gone]


class Secrets:
    def __init__(self) -> None:
        self.by_principal: dict[str, dict[str, str]] = {}
        self.created: dict[str, str] = {}  # create_time by secret id, as Databricks says it (to the second)
        self.ids = itertools.count(1)
        self.revoked: list[str] = []

    def list(self, service_principal_id: str) -> list[SimpleNamespace]:
        return [SimpleNamespace(id=i, create_time=self.created[i]) for i in self.by_principal.get(service_principal_id, {})]

    def create(self, service_principal_id: str) -> SimpleNamespace:
        secret_id = f"sec-{next(self.ids)}"
        value = f"dose-very-secret-{secret_id}"
        self.by_principal.setdefault(service_principal_id, {})[secret_id] = value
        self.created[secret_id] = identity_steps._utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
        return SimpleNamespace(id=secret_id, secret=value)

    def delete(self, service_principal_id: str, secret_id: str) -> None:
        self.by_principal[service_principal_id].pop(secret_id)
        self.revoked.append(secret_id)


class Assignments:
    def __init__(self) -> None:
        self.by_workspace: dict[int, dict[int, list[str]]] = {}
        self.unserved: set[int] = set()  # workspaces with no metastore yet (W2)
        self.lists: list[int] = []

    def list(self, workspace_id: int) -> list[SimpleNamespace]:
        self.lists.append(workspace_id)
        if workspace_id in self.unserved:
            raise BadRequest("Permission assignment APIs are not available for this workspace.", error_code="BAD_REQUEST")
        return [SimpleNamespace(principal=SimpleNamespace(principal_id=p), permissions=[SimpleNamespace(value=v) for v in perms])
                for p, perms in self.by_workspace.get(workspace_id, {}).items()]

    def update(self, workspace_id: int, principal_id: int, permissions: list[Any]) -> None:
        assert isinstance(principal_id, int)
        self.by_workspace.setdefault(workspace_id, {})[principal_id] = [p.value for p in permissions]

    def delete(self, workspace_id: int, principal_id: int) -> None:
        self.by_workspace.get(workspace_id, {}).pop(principal_id)


class NetworkPolicies:
    def __init__(self) -> None:
        self.policies: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []

    def _policy(self, body: dict[str, Any]) -> Any:
        from databricks.sdk.service.settings import AccountNetworkPolicy

        return AccountNetworkPolicy.from_dict(body)

    def get_network_policy_rpc(self, network_policy_id: str) -> Any:
        if network_policy_id not in self.policies:
            raise not_found(network_policy_id)
        return self._policy(self.policies[network_policy_id])

    def create_network_policy_rpc(self, network_policy: Any) -> Any:
        self.calls.append("create")
        self.policies[network_policy.network_policy_id] = network_policy.as_dict()
        return self.get_network_policy_rpc(network_policy.network_policy_id)

    def update_network_policy_rpc(self, network_policy_id: str, network_policy: Any) -> Any:
        self.calls.append("update")
        self.policies[network_policy_id] = network_policy.as_dict()
        return self.get_network_policy_rpc(network_policy_id)

    def delete_network_policy_rpc(self, network_policy_id: str) -> None:
        self.calls.append("delete")
        self.policies.pop(network_policy_id)


class WorkspaceApi:
    """One workspace's current_user and cluster_policies."""

    def __init__(self, me_id: str) -> None:
        self.me = SimpleNamespace(id=me_id, user_name="admin@sandbox")
        self.current_user = SimpleNamespace(me=lambda: self.me)
        self.policies: dict[str, SimpleNamespace] = {}
        self.edits = 0
        self.cluster_policies = self
        self._ids = itertools.count(1)

    def list(self) -> list[SimpleNamespace]:
        return list(self.policies.values())

    def get(self, policy_id: str) -> SimpleNamespace:
        if policy_id not in self.policies:
            raise not_found(policy_id)
        return self.policies[policy_id]

    def create(self, name: str, definition: str, description: str) -> SimpleNamespace:
        policy_id = f"pol-{next(self._ids)}"
        self.policies[policy_id] = SimpleNamespace(policy_id=policy_id, name=name, definition=definition, description=description)
        return SimpleNamespace(policy_id=policy_id)

    def edit(self, policy_id: str, name: str, definition: str, description: str) -> None:
        self.edits += 1
        self.get(policy_id).definition = definition

    def delete(self, policy_id: str) -> None:
        self.policies.pop(policy_id)


class Account:
    def __init__(self) -> None:
        ids = itertools.count(100)
        self.service_principals, self.groups = Scim(ids), Scim(ids)
        self.service_principal_secrets, self.workspace_assignment = Secrets(), Assignments()
        self.network_policies = NetworkPolicies()
        self.workspace_ids = [WORKSPACE_ID]
        self.workspaces = SimpleNamespace(list=lambda: [SimpleNamespace(workspace_id=w) for w in self.workspace_ids])
        self.options: dict[int, str] = {WORKSPACE_ID: "default-policy"}
        self.workspace_network_configuration = SimpleNamespace(
            get_workspace_network_option_rpc=lambda workspace_id: SimpleNamespace(network_policy_id=self.options[workspace_id]),
            update_workspace_network_option_rpc=lambda workspace_id, workspace_network_option: self.options.__setitem__(
                workspace_id, workspace_network_option.network_policy_id),
        )


class DbxClients(dict):
    stats = CallStats()


def context(account: Account, workspace: WorkspaceApi | None = None, claimed: set[str] | None = None) -> Context:
    clock = FakeClock(start=0.0)
    databricks = SimpleNamespace(account=account, workspace=lambda name: workspace)
    spec = SimpleNamespace(name=DEPLOYMENT, region=REGION, tags={"Owner": "platform"}, timeouts=SimpleNamespace(resource_seconds=60))
    sm = FakeSecretsManager()
    ctx = Context(
        spec=spec, clients=DbxClients(databricks=databricks, aws=SimpleNamespace(client=lambda service: sm)),  # type: ignore[arg-type]
        retry=RetryPolicy(deadline_seconds=5, clock=clock, sleep=clock.sleep, rng=random.Random(1), errors=error_rules()),
        poll=PollPolicy(initial_seconds=1, max_seconds=1, timeout_seconds=5, clock=clock, sleep=clock.sleep),
        log=structlog.wrap_logger(CapturingLogger(), processors=[]), claimed=set(claimed or ()),
    )
    ctx.sm = sm  # type: ignore[attr-defined]
    ctx.outputs["dbx.workspace"] = {"workspace_id": WORKSPACE_ID, "deployment_name": "dbc-acme"}
    return ctx


def up(step: Any, ctx: Context) -> dict[str, Any]:
    """What the engine does for a step: find, else claim and create; then wait_ready; outputs recorded."""
    found = step.find(ctx)
    if found is None:
        ctx.claimed.add(step.id)
        found = step.create(ctx)
    out = step.wait_ready(ctx, found)
    assert set(out) <= set(step.produces)
    ctx.outputs[step.id] = out
    return out


def teardown(step: Any, ctx: Context) -> None:
    out = {**ctx.outputs.get(step.id, {}), **(step.find(ctx) or {})}
    step.delete(ctx, out)
    step.wait_deleted(ctx, out)


# --- steps --------------------------------------------------------------------------------------------------


def test_a_service_principal_found_before_any_create_is_adopted_and_never_deleted() -> None:
    account = Account()
    theirs = account.service_principals.create(display_name="ci")
    ctx, step = context(account), ServicePrincipal("id.sp.ci", display_name="ci")
    out = up(step, ctx)
    assert out == {"principal_id": theirs.id, "application_id": theirs.application_id, "display_name": "ci", "adopted": True}
    teardown(step, ctx)
    assert theirs.id in account.service_principals.items
    # One this step created (a lost response included: it claimed first) is deleted.
    mine = ServicePrincipal("id.sp.bot", display_name="bot")
    assert up(mine, ctx)["adopted"] is False
    teardown(mine, ctx)
    assert [sp.display_name for sp in account.service_principals.items.values()] == ["ci"]


def test_two_principals_with_our_name_are_an_ownership_conflict() -> None:
    account = Account()
    account.service_principals.create(display_name="ci")
    account.service_principals.create(display_name="ci")
    with pytest.raises(OwnershipConflict, match="2 Databricks service principals are named 'ci'"):
        ServicePrincipal("id.sp.ci", display_name="ci").find(context(account))
    # SCIM's eq may ignore case; provision compares exactly.
    assert ServicePrincipal("id.sp.ci", display_name="CI").find(context(account)) is None


def logged(ctx: Context) -> str:
    return repr(ctx.log._logger.calls)  # type: ignore[attr-defined]


def test_the_oauth_secret_is_only_in_secrets_manager_and_an_orphan_is_revoked() -> None:
    account = Account()
    ctx = context(account)
    up(ServicePrincipal("id.sp.ci", display_name="ci"), ctx)
    principal_id = ctx.outputs["id.sp.ci"]["principal_id"]
    account.service_principal_secrets.create(principal_id)  # the owner's own secret, made before this deployment
    step = ServicePrincipalSecret("id.sp.ci.secret", principal="id.sp.ci")
    sm = ctx.sm  # type: ignore[attr-defined]
    # The first attempt dies after Databricks made the secret, before Secrets Manager stored it.
    sm.fail_next_create = True
    ctx.claimed.add(step.id)
    with pytest.raises(KeyboardInterrupt):
        step.create(ctx)
    assert step.find(ctx) is None and sorted(account.service_principal_secrets.by_principal[principal_id]) == ["sec-1", "sec-2"]
    out = up(step, ctx)
    # The orphan (sec-2) is revoked; the owner's (sec-1) is left; the new one is stored.
    assert account.service_principal_secrets.revoked == ["sec-2"]
    assert sorted(account.service_principal_secrets.by_principal[principal_id]) == ["sec-1", "sec-3"]
    value = account.service_principal_secrets.by_principal[principal_id]["sec-3"]
    stored = sm.secrets[f"{DEPLOYMENT}/id.sp.ci.secret"]
    assert json.loads(stored["SecretString"]) == {"client_id": ctx.outputs["id.sp.ci"]["application_id"], "client_secret": value}
    assert {t["Key"]: t["Value"] for t in stored["Tags"]}[TAG_DEPLOYMENT] == DEPLOYMENT
    assert out == {"secret_arn": stored["ARN"], "secret_id": "sec-3"}
    assert "dose-very-secret" not in json.dumps(out) + json.dumps(ctx.facts) + logged(ctx)
    # A rerun finds it in Secrets Manager and makes none.
    assert step.find(ctx) == out
    teardown(step, ctx)
    assert sm.secrets == {} and sorted(account.service_principal_secrets.by_principal[principal_id]) == ["sec-1"]


def test_a_secret_in_secrets_manager_not_ours_is_a_conflict() -> None:
    ctx = context(Account())
    ctx.sm.secrets["x"] = {"Name": f"{DEPLOYMENT}/id.sp.ci.secret", "ARN": "arn:x", "Tags": [{"Key": TAG_DEPLOYMENT, "Value": "other"}]}  # type: ignore[attr-defined]
    with pytest.raises(OwnershipConflict, match="not tagged as this deployment's"):
        ServicePrincipalSecret("id.sp.ci.secret", principal="id.sp.ci").find(ctx)


def test_group_members_converge_and_only_ours_are_removed() -> None:
    account = Account()
    ctx = context(account)
    a, b = (up(ServicePrincipal(f"id.sp.{n}", display_name=n), ctx)["principal_id"] for n in ("a", "b"))
    theirs = account.service_principals.create(display_name="someone").id
    group = Group("id.group.g", display_name="g", members=("id.sp.a",))
    out = up(group, ctx)
    assert out["members"] == [a] and out["adopted"] is False
    account.groups.items[out["principal_id"]].members.append(SimpleNamespace(value=theirs))  # someone else adds a member
    # The spec now lists b instead of a: b is added, a (which this step added) removed, theirs kept.
    group = Group("id.group.g", display_name="g", members=("id.sp.b",))
    found = group.find(ctx)
    assert group.needs_converge(ctx, found)
    out = group.wait_ready(ctx, found)
    assert sorted(out["members"]) == sorted([b, theirs])
    assert not group.needs_converge(ctx, group.find(ctx))
    teardown(group, ctx)
    assert account.groups.items == {}


def test_an_adopted_group_keeps_its_members_and_loses_only_ours() -> None:
    account = Account()
    ctx = context(account)
    a = up(ServicePrincipal("id.sp.a", display_name="a"), ctx)["principal_id"]
    theirs = account.service_principals.create(display_name="someone").id
    existing = account.groups.create(display_name="g", members=[SimpleNamespace(value=theirs)])
    group = Group("id.group.g", display_name="g", members=("id.sp.a",))
    out = up(group, ctx)
    assert out["adopted"] is True and sorted(out["members"]) == sorted([a, theirs])
    teardown(group, ctx)
    assert [m.value for m in account.groups.items[existing.id].members] == [theirs]


def test_permission_assignment_converges_in_place() -> None:
    account = Account()
    ctx = context(account)
    principal = up(ServicePrincipal("id.sp.a", display_name="a"), ctx)["principal_id"]
    step = PermissionAssignment("id.assign.sp.a", principal="id.sp.a", workspace="dbx.workspace", permission="USER")
    assert up(step, ctx) == {"workspace_id": WORKSPACE_ID, "principal_id": principal, "permissions": ["USER"]}
    admin = PermissionAssignment("id.assign.sp.a", principal="id.sp.a", workspace="dbx.workspace", permission="ADMIN")
    found = admin.find(ctx)
    assert admin.needs_converge(ctx, found)
    assert admin.wait_ready(ctx, found)["permissions"] == ["ADMIN"]
    assert account.workspace_assignment.by_workspace[WORKSPACE_ID] == {int(principal): ["ADMIN"]}
    teardown(admin, ctx)
    assert account.workspace_assignment.by_workspace[WORKSPACE_ID] == {}


@pytest.mark.parametrize("already_admin", [False, True])
def test_the_deployer_is_made_admin_and_only_an_assignment_we_made_is_removed(already_admin: bool) -> None:
    account, workspace = Account(), WorkspaceApi(me_id="7")
    if already_admin:
        account.workspace_assignment.update(WORKSPACE_ID, 7, [SimpleNamespace(value="ADMIN")])
    ctx = context(account, workspace)
    step = DeployerAdmin("id.admin.deployer", workspace="dbx.workspace")
    out = up(step, ctx)
    assert out == {"workspace_id": WORKSPACE_ID, "principal_id": "7", "user_name": "admin@sandbox", "adopted": already_admin}
    assert account.workspace_assignment.by_workspace[WORKSPACE_ID] == {7: ["ADMIN"]}
    teardown(step, ctx)
    assert account.workspace_assignment.by_workspace[WORKSPACE_ID] == ({7: ["ADMIN"]} if already_admin else {})


def test_a_cluster_policy_converges_on_a_changed_definition() -> None:
    account, workspace = Account(), WorkspaceApi(me_id="7")
    ctx = context(account, workspace)
    first = spec_policies.canonical(PRESETS["analyst"])
    step = ClusterPolicy("dbx.policy.analyst", name="analyst", definition=first, workspace="dbx.workspace")
    out = up(step, ctx)
    assert out == {"policy_id": "pol-1", "name": "analyst", "digest": digest(first)}
    # The API's reformatting is no change.
    workspace.policies["pol-1"].definition = json.dumps(PRESETS["analyst"], indent=2)
    assert not step.needs_converge(ctx, step.find(ctx))
    changed = {**PRESETS["analyst"], "autotermination_minutes": {"type": "fixed", "value": 15}}
    step = ClusterPolicy("dbx.policy.analyst", name="analyst", definition=spec_policies.canonical(changed), workspace="dbx.workspace")
    found = step.find(ctx)
    assert step.needs_converge(ctx, found)
    assert step.wait_ready(ctx, found)["digest"] == digest(changed) and workspace.edits == 1
    assert json.loads(workspace.policies["pol-1"].definition) == changed
    teardown(step, ctx)
    assert workspace.policies == {}


def test_a_same_named_policy_not_ours_is_a_conflict_and_a_bad_definition_fails_before_any_call() -> None:
    workspace = WorkspaceApi(me_id="7")
    workspace.create(name="admin", definition="{}", description="the team's own")
    with pytest.raises(OwnershipConflict, match="not this deployment's"):
        ClusterPolicy("dbx.policy.admin", name="admin", definition="{}", workspace="dbx.workspace").find(context(Account(), workspace))
    with pytest.raises(TypeError):
        ClusterPolicy("dbx.policy.x", name="x", definition="[]", workspace="dbx.workspace")


def test_network_policy_enforcement_converges_in_place_and_binding_round_trips() -> None:
    account = Account()
    ctx = context(account)
    dry = NetworkPolicySpec(True, "DRY_RUN", ("pypi.org",), ("my-bucket",))
    step = NetworkPolicy("dbx.network_policy", policy=dry)
    out = up(step, ctx)
    assert out["network_policy_id"] == f"{DEPLOYMENT}-egress" and out["enforcement"] == "DRY_RUN"
    body = account.network_policies.policies[f"{DEPLOYMENT}-egress"]["egress"]["network_access"]
    assert body == {
        "restriction_mode": "RESTRICTED_ACCESS", "policy_enforcement": {"enforcement_mode": "DRY_RUN"},
        "allowed_internet_destinations": [{"destination": "pypi.org", "internet_destination_type": "DNS_NAME"}],
        "allowed_storage_destinations": [{"bucket_name": "my-bucket", "region": REGION, "storage_destination_type": "AWS_S3"}],
    }
    assert not step.needs_converge(ctx, step.find(ctx))
    enforced = NetworkPolicy("dbx.network_policy", policy=NetworkPolicySpec(True, "ENFORCED", ("pypi.org",), ("my-bucket",)))
    found = enforced.find(ctx)
    assert enforced.needs_converge(ctx, found)
    out = enforced.wait_ready(ctx, found)
    assert out["enforcement"] == "ENFORCED" and account.network_policies.calls == ["create", "update"]  # in place, not replaced
    assert not enforced.needs_converge(ctx, enforced.find(ctx))
    ctx.outputs["dbx.network_policy"] = out
    binding = NetworkPolicyBinding("dbx.network_policy.binding", policy="dbx.network_policy", workspace="dbx.workspace")
    assert binding.find(ctx) is None  # bound to default-policy
    up(binding, ctx)
    assert account.options[WORKSPACE_ID] == f"{DEPLOYMENT}-egress"
    teardown(binding, ctx)
    assert account.options[WORKSPACE_ID] == "default-policy"
    teardown(enforced, ctx)
    assert account.network_policies.policies == {}


def test_long_names_fit_databricks_limits() -> None:
    assert fit("short-egress", 32) == "short-egress"
    long = fit("a-deployment-name-of-28-char-egress", 32)
    assert len(long) == 32 and long.startswith("a-deployment-name-of-28") and long != fit("a-deployment-name-of-28-chaX-egress", 32)
    assert len(NetworkConnectivityConfig("dbx.ncc", name="a-deployment-name-of-28-char-ncc").name) == 30


class Ncc:
    def __init__(self, workspaces: list[SimpleNamespace]) -> None:
        self.configs: dict[str, SimpleNamespace] = {}
        self.rules: dict[str, SimpleNamespace] = {}
        self.workspaces = workspaces

    def list_network_connectivity_configurations(self) -> list[SimpleNamespace]:
        return list(self.configs.values())

    def create_network_connectivity_configuration(self, network_connectivity_config: Any) -> SimpleNamespace:
        ncc = SimpleNamespace(network_connectivity_config_id="ncc-1", name=network_connectivity_config.name, region=network_connectivity_config.region)
        self.configs["ncc-1"] = ncc
        return ncc

    def get_network_connectivity_configuration(self, network_connectivity_config_id: str) -> SimpleNamespace:
        if network_connectivity_config_id not in self.configs:
            raise not_found(network_connectivity_config_id)
        return self.configs[network_connectivity_config_id]

    def delete_network_connectivity_configuration(self, network_connectivity_config_id: str) -> None:
        assert not [w for w in self.workspaces if w.network_connectivity_config_id == network_connectivity_config_id], "still bound"
        self.configs.pop(network_connectivity_config_id)

    def list_private_endpoint_rules(self, network_connectivity_config_id: str) -> list[SimpleNamespace]:
        return list(self.rules.values())

    def create_private_endpoint_rule(self, network_connectivity_config_id: str, private_endpoint_rule: Any) -> SimpleNamespace:
        rule = SimpleNamespace(rule_id="rule-1", endpoint_service=private_endpoint_rule.endpoint_service, domain_names=private_endpoint_rule.domain_names,
                               connection_state=SimpleNamespace(value="PENDING"), deactivated=False, error_message=None)
        self.rules["rule-1"] = rule
        return rule

    def get_private_endpoint_rule(self, network_connectivity_config_id: str, private_endpoint_rule_id: str) -> SimpleNamespace:
        return self.rules[private_endpoint_rule_id]

    def update_private_endpoint_rule(self, network_connectivity_config_id: str, private_endpoint_rule_id: str, private_endpoint_rule: Any,
                                     update_mask: str) -> None:
        assert update_mask == "domain_names"
        self.rules[private_endpoint_rule_id].domain_names = private_endpoint_rule.domain_names

    def delete_private_endpoint_rule(self, network_connectivity_config_id: str, private_endpoint_rule_id: str) -> None:
        self.rules[private_endpoint_rule_id].deactivated = True


def test_ncc_rules_converge_and_the_ncc_waits_for_its_workspace() -> None:
    account = Account()
    ws = SimpleNamespace(workspace_id=WORKSPACE_ID, network_connectivity_config_id=None, workspace_status=SimpleNamespace(value="RUNNING"),
                         workspace_status_message="")
    account.network_connectivity = Ncc([ws])

    def update(workspace_id: int, customer_facing_workspace: Any, update_mask: str) -> None:
        assert update_mask == "network_connectivity_config_id"
        ws.network_connectivity_config_id = customer_facing_workspace.network_connectivity_config_id

    account.workspaces = SimpleNamespace(list=lambda: [ws] if ws.workspace_status.value != "GONE" else [], get=lambda workspace_id: ws, update=update)
    ctx = context(account)
    ncc = NetworkConnectivityConfig("dbx.ncc", name=f"{DEPLOYMENT}-ncc")
    up(ncc, ctx)
    rule = PrivateEndpointRule("dbx.ncc.rule.0", ncc="dbx.ncc", rule=PrivateEndpointRuleSpec(SERVICE, ("a.example.com",)))
    out = up(rule, ctx)
    assert out == {"rule_id": "rule-1", "connection_state": "PENDING", "endpoint_service": SERVICE, "domain_names": ["a.example.com"]}
    changed = PrivateEndpointRule("dbx.ncc.rule.0", ncc="dbx.ncc", rule=PrivateEndpointRuleSpec(SERVICE, ("a.example.com", "b.example.com")))
    found = changed.find(ctx)
    assert changed.needs_converge(ctx, found) and changed.wait_ready(ctx, found)["domain_names"] == ["a.example.com", "b.example.com"]
    binding = NccBinding("dbx.ncc.binding", ncc="dbx.ncc", workspace="dbx.workspace", after=("dbx.ncc.rule.0",))
    up(binding, ctx)
    assert ws.network_connectivity_config_id == "ncc-1"
    teardown(binding, ctx)
    assert ws.network_connectivity_config_id == "ncc-1"  # Databricks cannot unset it: it goes with the workspace
    teardown(changed, ctx)
    assert changed.find(ctx) is None  # deactivated is gone
    # The NCC's teardown waits while the workspace still uses it: here, until the poll sees the workspace gone.
    polls = []

    def listing() -> list[SimpleNamespace]:
        polls.append(1)
        if len(polls) > 1:  # the workspace's own teardown finished meanwhile
            account.network_connectivity.workspaces.clear()
        return list(account.network_connectivity.workspaces)

    account.workspaces.list = listing
    teardown(ncc, ctx)
    assert account.network_connectivity.configs == {} and len(polls) == 2


# --- review fixes -------------------------------------------------------------------------------------------


def secret_setup(adopted: bool = True) -> tuple[Account, Context, ServicePrincipalSecret, str]:
    """A principal (someone else's when `adopted`) with its OAuth secret stored by the secret step."""
    account = Account()
    if adopted:
        account.service_principals.create(display_name="ci")
    ctx = context(account)
    principal_id = up(ServicePrincipal("id.sp.ci", display_name="ci"), ctx)["principal_id"]
    step = ServicePrincipalSecret("id.sp.ci.secret", principal="id.sp.ci")
    up(step, ctx)
    return account, ctx, step, principal_id


def stored_secret(ctx: Context) -> dict[str, Any]:
    return ctx.sm.secrets[f"{DEPLOYMENT}/id.sp.ci.secret"]  # type: ignore[attr-defined]


def test_a_later_create_never_revokes_a_secret_older_than_its_own_attempts() -> None:
    account, ctx, step, principal_id = secret_setup()
    secrets = account.service_principal_secrets
    operators = secrets.create(principal_id).id  # an operator's own secret, added after ours was stored
    # Stored: the attempts' record is done with (ids and times only, never a value).
    assert ctx.facts.get("secret_attempts:id.sp.ci.secret") is None
    # Someone deletes the Secrets Manager secret by hand; the next `up` makes a new one, revoking nothing older.
    ctx.sm.secrets.clear()  # type: ignore[attr-defined]
    assert step.find(ctx) is None
    out = up(step, ctx)
    assert secrets.revoked == [] and operators in secrets.by_principal[principal_id]
    assert out["secret_id"] in secrets.by_principal[principal_id]
    # A crash after Databricks made one, before Secrets Manager stored it: the next attempt revokes that one only.
    ctx.sm.secrets.clear()  # type: ignore[attr-defined]
    ctx.sm.fail_next_create = True  # type: ignore[attr-defined]
    with pytest.raises(KeyboardInterrupt):
        step.create(ctx)
    orphan = max(secrets.by_principal[principal_id], key=lambda i: int(i.split("-")[1]))
    started = ctx.facts["secret_attempts:id.sp.ci.secret"]["started"]
    assert len(started) == 1 and "dose" not in json.dumps(ctx.facts)
    out = up(step, ctx)
    assert secrets.revoked == [orphan] and operators in secrets.by_principal[principal_id]


def test_a_secret_scheduled_for_deletion_is_restored_with_a_new_value() -> None:
    account, ctx, step, principal_id = secret_setup()
    stored_secret(ctx)["DeletedDate"] = "2025-01-02T00:00:00Z"  # deleted in the console: a recovery window
    assert step.find(ctx) is None
    out = up(step, ctx)
    assert "DeletedDate" not in stored_secret(ctx) and out["secret_id"] == "sec-2"
    assert json.loads(stored_secret(ctx)["SecretString"])["client_secret"] == account.service_principal_secrets.by_principal[principal_id]["sec-2"]


@pytest.mark.parametrize("how", ["principal recreated", "secret revoked"])
def test_a_stored_secret_that_no_longer_authenticates_is_replaced_in_place(how: str) -> None:
    account, ctx, step, principal_id = secret_setup(adopted=False)
    before = stored_secret(ctx)
    old_arn, secrets = before["ARN"], account.service_principal_secrets
    assert {t["Key"]: t["Value"] for t in before["Tags"]}["provision:client-id"] == ctx.outputs["id.sp.ci"]["application_id"]
    if how == "principal recreated":
        account.service_principals.delete(principal_id)
        secrets.by_principal.pop(principal_id)  # its secrets go with it
        principal = ServicePrincipal("id.sp.ci", display_name="ci")
        assert principal.find(ctx) is None
        principal_id = up(principal, ctx)["principal_id"]
    else:
        secrets.delete(principal_id, "sec-1")
    # The stored client id and secret cannot authenticate: not done, so `up` makes a new one...
    assert step.find(ctx) is None
    out = up(step, ctx)
    # ... and writes it into the same Secrets Manager secret (create_secret would be refused: it exists).
    stored = stored_secret(ctx)
    new_id = out["secret_id"]
    assert stored["ARN"] == old_arn == out["secret_arn"] and new_id in secrets.by_principal[principal_id]
    assert json.loads(stored["SecretString"]) == {"client_id": ctx.outputs["id.sp.ci"]["application_id"],
                                                  "client_secret": secrets.by_principal[principal_id][new_id]}
    tags = {t["Key"]: t["Value"] for t in stored["Tags"]}
    assert tags["provision:secret-id"] == new_id and tags["provision:client-id"] == ctx.outputs["id.sp.ci"]["application_id"]
    assert tags[TAG_DEPLOYMENT] == DEPLOYMENT
    assert "dose-very-secret" not in json.dumps(out) + json.dumps(ctx.facts) + logged(ctx)
    assert step.find(ctx) == out


def test_a_record_without_the_client_id_tag_still_counts_while_its_secret_is_listed() -> None:
    _, ctx, step, _ = secret_setup()
    stored = stored_secret(ctx)
    stored["Tags"] = [t for t in stored["Tags"] if t["Key"] != "provision:client-id"]
    assert step.find(ctx) == {"secret_arn": stored["ARN"], "secret_id": "sec-1"}


def test_assignment_steps_ask_nothing_before_the_metastore_assignment_is_done() -> None:
    account = Account()
    ctx = context(account, WorkspaceApi(me_id="7"))
    up(ServicePrincipal("id.sp.a", display_name="a"), ctx)
    account.workspace_assignment.unserved.add(WORKSPACE_ID)  # plan of a live workspace that just gained [unity_catalog]
    steps = [
        PermissionAssignment("id.assign.sp.a", principal="id.sp.a", workspace="dbx.workspace", permission="USER",
                             after=("uc.assignment",), assignment="uc.assignment"),
        DeployerAdmin("id.admin.deployer", workspace="dbx.workspace", after=("uc.assignment",), assignment="uc.assignment"),
    ]
    for step in steps:
        assert step.needs.count("uc.assignment") == 1 and Ref("uc.assignment", "workspace_id") in step.reads()
        assert step.find(ctx) is None
    assert account.workspace_assignment.lists == []  # no call, so no 300 s of retried refusals
    ctx.outputs["uc.assignment"] = {"workspace_id": WORKSPACE_ID, "metastore_id": "ms-1", "deployment_name": "dbc-acme"}
    account.workspace_assignment.unserved.clear()
    for step in steps:
        assert step.find(ctx) is None
    assert account.workspace_assignment.lists == [WORKSPACE_ID, WORKSPACE_ID]
    # Without the keyword (the old wiring), find asks as soon as the workspace is known.
    assert "uc.assignment" not in DeployerAdmin("id.admin.deployer", workspace="dbx.workspace").needs


OTHER_WORKSPACE, UNSERVED_WORKSPACE, GONE_WORKSPACE = 2002, 3003, 4004


def test_a_principal_another_workspace_uses_is_left_on_teardown() -> None:
    account = Account()
    ctx = context(account)
    sp = ServicePrincipal("id.sp.a", display_name="a")
    sp_id = up(sp, ctx)["principal_id"]
    group = Group("id.group.analysts", display_name="analysts", members=("id.sp.a",))
    group_id = up(group, ctx)["principal_id"]
    assert ctx.outputs["id.sp.a"]["adopted"] is False and ctx.outputs["id.group.analysts"]["adopted"] is False
    # Another deployment adopted both by name and assigned them on its workspace; one workspace serves no assignments
    # yet, one is gone (both skipped).
    assignments = account.workspace_assignment
    account.workspace_ids += [UNSERVED_WORKSPACE, GONE_WORKSPACE, OTHER_WORKSPACE]
    assignments.unserved.add(UNSERVED_WORKSPACE)
    real_list = assignments.list

    def listing(workspace_id: int) -> list[SimpleNamespace]:
        if workspace_id == GONE_WORKSPACE:
            raise not_found(f"workspace {workspace_id}")
        return real_list(workspace_id)

    assignments.list = listing  # type: ignore[method-assign]
    assignments.update(OTHER_WORKSPACE, int(sp_id), [SimpleNamespace(value="USER")])
    assignments.update(OTHER_WORKSPACE, int(group_id), [SimpleNamespace(value="USER")])
    teardown(group, ctx)  # wait_deleted does not wait for a group left in place (it would time out)
    teardown(sp, ctx)
    assert group_id in account.groups.items and sp_id in account.service_principals.items
    assert "left in place: another workspace assigns it a permission" in logged(ctx) and str(OTHER_WORKSPACE) in logged(ctx)
    # Once the other workspace no longer uses them, a later teardown deletes them.
    assignments.by_workspace[OTHER_WORKSPACE].clear()
    group, sp = Group("id.group.analysts", display_name="analysts", members=("id.sp.a",)), ServicePrincipal("id.sp.a", display_name="a")
    teardown(group, ctx)
    teardown(sp, ctx)
    assert account.groups.items == {} and account.service_principals.items == {}


def test_a_network_policy_this_deployment_did_not_create_is_refused_and_never_deleted() -> None:
    account = Account()
    theirs = NetworkPolicySpec(False, "ENFORCED", (), ())
    # Made by a same-named deployment in another region of the account (or by someone else).
    account.network_policies.create_network_policy_rpc(NetworkPolicy("x", policy=theirs)._body(context(account)))
    body = copy.deepcopy(account.network_policies.policies[f"{DEPLOYMENT}-egress"])
    ctx = context(account)
    step = NetworkPolicy("dbx.network_policy", policy=NetworkPolicySpec(True, "DRY_RUN", ("pypi.org",), ()))
    with pytest.raises(OwnershipConflict, match=rf"network policy '{DEPLOYMENT}-egress' exists.*Rename the deployment, or delete that policy"):
        step.find(ctx)
    assert account.network_policies.policies[f"{DEPLOYMENT}-egress"] == body and account.network_policies.calls == ["create"]
    # A record without the mark (made before it existed): the same rule as find's. Not claimed: left alone.
    record = {"network_policy_id": f"{DEPLOYMENT}-egress", "enforcement": "ENFORCED", "digest": "x"}
    step.delete(ctx, record)
    step.wait_deleted(ctx, record)
    with pytest.raises(OwnershipConflict):
        step.wait_ready(ctx, record)
    assert f"{DEPLOYMENT}-egress" in account.network_policies.policies
    # Claimed (this step attempted a create, e.g. a lost response): ours, found, marked, and deleted on teardown.
    ctx.claimed.add(step.id)
    found = step.find(ctx)
    assert found["adopted"] is False
    step.delete(ctx, record)
    step.wait_deleted(ctx, record)
    assert account.network_policies.policies == {}
