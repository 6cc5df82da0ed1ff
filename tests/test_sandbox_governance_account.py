"""The Databricks emulator's account side of a governed workspace: metastores and their assignments (W5, W6),
identities and workspace permission assignments (W2), network policies (W9), NCCs and their private endpoint
rules, serverless workspaces, and what a workspace's deletion takes with it. Each refusal is a test a lenient
emulator would fail. Most run through werkzeug's test client on an in-process app; a few run databricks-sdk's
AccountClient against it over HTTP, proving the SDK parses every shape."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from provision.clouds.databricks.sandbox import STORE, make_databricks_app, reset
from provision.clouds.databricks.sandbox.identity_api import admin_user_id
from provision.sandbox.settings import SandboxSettings

SERVICE = "com.amazonaws.vpce.us-east-1.vpce-svc-0123456789abcdef0"


class Api:
    """The Account API of one in-process emulator, through werkzeug's test client."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.app = make_databricks_app(settings)
        self.client = Client(self.app)
        self.account = settings.account_id

    def call(self, method: str, path: str, body: Any = None, status: int = 200, **query: Any) -> Any:
        response = self.client.open(
            f"/api/2.0/accounts/{self.account}{path}", method=method, json=body, query_string=query or None,
            headers={"Authorization": f"Bearer {self.settings.token}"},
        )
        assert response.status_code == status, f"{method} {path}: {response.status_code} {response.get_data(as_text=True)}"
        return response.get_json(silent=True)

    def refused(self, method: str, path: str, body: Any = None, *, status: int = 400, **query: Any) -> dict:
        return self.call(method, path, body, status, **query)

    def serverless(self, name: str = "gov", region: str = "us-east-1", **extra: Any) -> int:
        body = {"workspace_name": name, "aws_region": region, "compute_mode": "SERVERLESS", **extra}
        return self.call("POST", "/workspaces", body)["workspace_id"]

    def metastore(self, region: str = "us-east-1", name: str = "primary") -> str:
        return self.call("POST", "/metastores", {"metastore_info": {"name": name, "region": region}})["metastore_info"]["metastore_id"]

    def assign(self, workspace_id: int, metastore_id: str, *, federated: bool = True) -> None:
        body = {"metastore_assignment": {"workspace_id": workspace_id, "metastore_id": metastore_id, "default_catalog_name": "main"}}
        self.call("POST", f"/workspaces/{workspace_id}/metastores/{metastore_id}", body)
        if federated:  # as if identity_federation_seconds had passed
            STORE.kind(self.account, "metastore_assignments")[workspace_id]["_assigned_at"] -= 3600

    def sp(self, name: str = "ci-automation") -> dict:
        return self.call("POST", "/scim/v2/ServicePrincipals", {"displayName": name}, 201)


@pytest.fixture
def api() -> Iterator[Api]:
    reset()
    yield Api(SandboxSettings(workspace_provisioning_seconds=0.0, workspace_warmup_seconds=0.0, identity_federation_seconds=60.0,
                              vpc_endpoint_pending_seconds=60.0))
    reset()


@pytest.fixture
def account(api: Api) -> Iterator[Any]:
    """databricks-sdk's AccountClient against the same app, served over HTTP on a loopback port."""
    from databricks.sdk import AccountClient
    from databricks.sdk.config import Config

    server = make_server("127.0.0.1", 0, api.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield AccountClient(config=Config(host=f"http://127.0.0.1:{server.server_port}", account_id=api.account,
                                          token=api.settings.token, auth_type="pat", retry_timeout_seconds=5))
    finally:
        server.shutdown()
        thread.join(5)


# --- metastores (W5, W6) ---------------------------------------------------------------------------------------


def test_one_metastore_per_region_w5(api: Api) -> None:
    first = api.metastore("us-east-1")
    error = api.refused("POST", "/metastores", {"metastore_info": {"name": "second", "region": "us-east-1"}})
    assert error == {
        "error_code": "INVALID_STATE",
        "message": f"This account with id {api.account} has reached the limit for metastores in region us-east-1.",
    }
    api.metastore("us-west-2", "west")  # another region is fine
    listed = api.call("GET", "/metastores")["metastores"]
    assert sorted(m["region"] for m in listed) == ["us-east-1", "us-west-2"]
    info = api.call("GET", f"/metastores/{first}")["metastore_info"]
    assert info["name"] == "primary" and info["cloud"] == "aws" and "storage_root" not in info


def test_a_metastore_needs_a_name_and_a_region(api: Api) -> None:
    assert "region" in api.refused("POST", "/metastores", {"metastore_info": {"name": "m"}})["message"]
    assert "name" in api.refused("POST", "/metastores", {"metastore_info": {"region": "us-east-1"}})["message"]
    assert "not a valid AWS region" in api.refused("POST", "/metastores", {"metastore_info": {"name": "m", "region": "mars-1"}})["message"]
    assert api.call("GET", "/metastores") == {"metastores": []}


def test_an_assigned_metastore_is_deleted_only_with_force_w6(api: Api) -> None:
    metastore_id, workspace_id = api.metastore(), api.serverless()
    api.assign(workspace_id, metastore_id)
    error = api.refused("DELETE", f"/metastores/{metastore_id}")
    assert error == {"error_code": "INVALID_STATE", "message": f"Metastore {metastore_id} is still assigned to workspace(s) {workspace_id}."}
    assert api.refused("DELETE", f"/metastores/{metastore_id}", force="false")["error_code"] == "INVALID_STATE"
    assert api.call("GET", f"/metastores/{metastore_id}/workspaces") == {"workspace_ids": [workspace_id]}
    assert api.call("DELETE", f"/metastores/{metastore_id}", force="true") == {}
    assert api.refused("GET", f"/metastores/{metastore_id}", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api.refused("GET", f"/workspaces/{workspace_id}/metastore", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # Unassigned and empty: no force needed.
    api.call("DELETE", f"/metastores/{api.metastore()}")


def test_a_metastore_holding_objects_is_deleted_only_with_force(api: Api) -> None:
    metastore_id = api.metastore()
    STORE.kind(api.account, "catalogs")[(metastore_id, "analytics")] = {"name": "analytics"}
    assert "not empty" in api.refused("DELETE", f"/metastores/{metastore_id}")["message"]
    api.call("DELETE", f"/metastores/{metastore_id}", force="true")
    assert STORE.kind(api.account, "catalogs") == {}


def test_metastore_update_changes_only_its_updatable_fields(api: Api) -> None:
    metastore_id = api.metastore()
    body = {"metastore_info": {"owner": "admins", "delta_sharing_scope": "INTERNAL_AND_EXTERNAL"}}
    info = api.call("PUT", f"/metastores/{metastore_id}", body)["metastore_info"]
    assert (info["owner"], info["delta_sharing_scope"], info["name"]) == ("admins", "INTERNAL_AND_EXTERNAL", "primary")
    assert "delta_sharing_scope" in api.refused("PUT", f"/metastores/{metastore_id}", {"metastore_info": {"delta_sharing_scope": "PUBLIC"}})["message"]


def test_assignment_rules(api: Api) -> None:
    east, west = api.metastore("us-east-1"), api.metastore("us-west-2", "west")
    workspace_id = api.serverless()
    # Another region's metastore, a missing workspace or metastore.
    assert "region" in api.refused("POST", f"/workspaces/{workspace_id}/metastores/{west}", {})["message"]
    assert api.refused("POST", f"/workspaces/12345/metastores/{east}", {}, status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api.refused("POST", f"/workspaces/{workspace_id}/metastores/nope", {}, status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert api.refused("GET", f"/workspaces/{workspace_id}/metastore", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    before = time.monotonic()
    api.assign(workspace_id, east, federated=False)
    record = STORE.kind(api.account, "metastore_assignments")[workspace_id]
    assert record["metastore_id"] == east and before <= record["_assigned_at"] <= time.monotonic()
    # At most one per workspace; the default catalog is the only thing an update changes.
    assert api.refused("POST", f"/workspaces/{workspace_id}/metastores/{east}", {}, status=409)["error_code"] == "RESOURCE_ALREADY_EXISTS"
    api.call("PUT", f"/workspaces/{workspace_id}/metastores/{east}", {"metastore_assignment": {"default_catalog_name": "analytics"}})
    assert api.call("GET", f"/workspaces/{workspace_id}/metastore") == {
        "metastore_assignment": {"workspace_id": workspace_id, "metastore_id": east, "default_catalog_name": "analytics"}
    }
    assert api.refused("DELETE", f"/workspaces/{workspace_id}/metastores/{west}", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    api.call("DELETE", f"/workspaces/{workspace_id}/metastores/{east}")
    assert api.call("GET", f"/metastores/{east}/workspaces") == {"workspace_ids": []}


# --- identities and permission assignments (W2) ----------------------------------------------------------------

W2 = {"error_code": "BAD_REQUEST", "message": "Permission assignment APIs are not available for this workspace."}


def test_permission_assignments_wait_for_identity_federation_w2(api: Api) -> None:
    workspace_id, metastore_id, sp = api.serverless(), api.metastore(), api.sp()
    path = f"/workspaces/{workspace_id}/permissionassignments"
    # No metastore assigned: every permission-assignment call refuses.
    assert api.refused("GET", path) == W2
    assert api.refused("PUT", f"{path}/principals/{sp['id']}", {"permissions": ["USER"]}) == W2
    assert api.refused("DELETE", f"{path}/principals/{sp['id']}") == W2
    # Just assigned: still refused until identity_federation_seconds have passed.
    api.assign(workspace_id, metastore_id, federated=False)
    assert api.refused("GET", path) == W2
    STORE.kind(api.account, "metastore_assignments")[workspace_id]["_assigned_at"] -= 61
    assert api.call("GET", path) == {"permission_assignments": []}


def test_permission_assignment_needs_an_existing_principal_and_a_known_permission(api: Api) -> None:
    workspace_id = api.serverless()
    api.assign(workspace_id, api.metastore())
    path = f"/workspaces/{workspace_id}/permissionassignments/principals"
    error = api.refused("PUT", f"{path}/4242424242", {"permissions": ["USER"]}, status=404)
    assert error["error_code"] == "RESOURCE_DOES_NOT_EXIST" and "4242424242" in error["message"]
    sp = api.sp()
    assert "permissions" in api.refused("PUT", f"{path}/{sp['id']}", {"permissions": ["OWNER"]})["message"]
    assert "permissions" in api.refused("PUT", f"{path}/{sp['id']}", {"permissions": []})["message"]
    answer = api.call("PUT", f"{path}/{sp['id']}", {"permissions": ["USER"]})
    principal = {"principal_id": int(sp["id"]), "display_name": "ci-automation", "service_principal_name": sp["applicationId"]}
    assert answer == {"permissions": ["USER"], "principal": principal}
    admin = admin_user_id(api.account)
    api.call("PUT", f"{path}/{admin}", {"permissions": ["ADMIN"]})
    listed = api.call("GET", f"/workspaces/{workspace_id}/permissionassignments")["permission_assignments"]
    assert {a["principal"]["principal_id"]: a["permissions"] for a in listed} == {int(sp["id"]): ["USER"], int(admin): ["ADMIN"]}
    assert next(a for a in listed if a["principal"]["principal_id"] == int(admin))["principal"]["user_name"] == "sandbox-admin@example.com"
    # Deleting the principal takes its assignment with it.
    api.call("DELETE", f"/scim/v2/ServicePrincipals/{sp['id']}", status=204)
    listed = api.call("GET", f"/workspaces/{workspace_id}/permissionassignments")["permission_assignments"]
    assert [a["principal"]["principal_id"] for a in listed] == [int(admin)]
    api.call("DELETE", f"{path}/{admin}")
    assert api.refused("DELETE", f"{path}/{admin}", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_the_sandbox_admin_is_the_account_user_scim_me_answers(api: Api) -> None:
    from provision.clouds.databricks.sandbox.workspace_api import _me

    users = api.call("GET", "/scim/v2/Users")["Resources"]
    assert [u["userName"] for u in users] == ["sandbox-admin@example.com"]
    assert users[0]["id"] == _me(api.settings, {"account_id": api.account})["id"] == admin_user_id(api.account)
    assert api.refused("DELETE", f"/scim/v2/Users/{users[0]['id']}")["status"] == "400"


def test_scim_groups_members_filters_and_paging(api: Api) -> None:
    first, second = api.sp("ci"), api.sp("ci")  # a service principal's displayName is not unique
    assert first["applicationId"] != second["applicationId"]
    group = api.call("POST", "/scim/v2/Groups", {"displayName": "data_engineers", "members": [{"value": first["id"]}]}, 201)
    duplicate = api.refused("POST", "/scim/v2/Groups", {"displayName": "data_engineers"}, status=409)
    assert duplicate["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"] and duplicate["status"] == "409"
    missing = api.refused("POST", "/scim/v2/Groups", {"displayName": "x", "members": [{"value": "999"}]}, status=404)
    assert "999" in missing["detail"]
    patch = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
             "Operations": [{"op": "add", "path": "members", "value": [{"value": second["id"]}]}]}
    api.call("PATCH", f"/scim/v2/Groups/{group['id']}", patch)
    members = api.call("GET", f"/scim/v2/Groups/{group['id']}")["members"]
    assert [m["value"] for m in members] == [first["id"], second["id"]] and members[0]["$ref"] == f"ServicePrincipals/{first['id']}"
    assert api.call("GET", f"/scim/v2/ServicePrincipals/{first['id']}")["groups"][0]["display"] == "data_engineers"
    remove = {"schemas": patch["schemas"], "Operations": [{"op": "remove", "path": f'members[value eq "{first["id"]}"]'}]}
    api.call("PATCH", f"/scim/v2/Groups/{group['id']}", remove)
    assert [m["value"] for m in api.call("GET", f"/scim/v2/Groups/{group['id']}")["members"]] == [second["id"]]
    assert api.refused("PATCH", f"/scim/v2/Groups/{group['id']}", {"Operations": patch["Operations"]})["scimType"] == "invalidSyntax"
    # PUT replaces the members.
    api.call("PUT", f"/scim/v2/Groups/{group['id']}", {"displayName": "data_engineers", "members": [{"value": first["id"]}]})
    assert [m["value"] for m in api.call("GET", f"/scim/v2/Groups/{group['id']}")["members"]] == [first["id"]]
    # Filters and paging as the SDK iterates them.
    found = api.call("GET", "/scim/v2/ServicePrincipals", filter=f'applicationId eq "{second["applicationId"]}"')
    assert [r["id"] for r in found["Resources"]] == [second["id"]] and found["totalResults"] == 1
    assert len(api.call("GET", "/scim/v2/ServicePrincipals", filter='displayName eq "ci"')["Resources"]) == 2
    assert api.call("GET", "/scim/v2/ServicePrincipals", filter='displayName eq "cd"')["Resources"] == []
    page = api.call("GET", "/scim/v2/ServicePrincipals", startIndex=2, count=1)
    assert [r["id"] for r in page["Resources"]] == [second["id"]] and page["startIndex"] == 2
    assert api.call("GET", "/scim/v2/ServicePrincipals", startIndex=3)["Resources"] == []
    assert "members" not in api.call("GET", "/scim/v2/Groups")["Resources"][0]
    assert api.refused("GET", "/scim/v2/Groups", filter="displayName likes x")["scimType"] == "invalidFilter"
    quoted = api.sp('say "hi"')
    assert [r["id"] for r in api.call("GET", "/scim/v2/ServicePrincipals", filter='displayName eq "say \\"hi\\""')["Resources"]] == [quoted["id"]]
    both = api.call("GET", "/scim/v2/ServicePrincipals", filter=f'displayName eq "ci" and applicationId eq "{first["applicationId"]}"')
    assert [r["id"] for r in both["Resources"]] == [first["id"]]


def test_service_principal_secrets_answer_the_value_once(api: Api) -> None:
    sp = api.sp()
    path = f"/servicePrincipals/{sp['id']}/credentials/secrets"
    created = api.call("POST", path, {"lifetime": "3600s"})
    assert created["secret"].startswith("dose") and created["status"] == "ACTIVE"
    listed = api.call("GET", path)["secrets"]
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]
    assert created["secret"] not in repr(STORE.accounts)  # only a hash is kept
    assert "lifetime" in api.refused("POST", path, {"lifetime": "1 hour"})["message"]
    api.call("DELETE", f"{path}/{created['id']}")
    assert api.call("GET", path) == {"secrets": []}
    assert api.refused("POST", "/servicePrincipals/123/credentials/secrets", {}, status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- network policies (W9), NCCs and private endpoint rules ------------------------------------------------------

RESTRICTED = {
    "network_access": {
        "restriction_mode": "RESTRICTED_ACCESS",
        "allowed_internet_destinations": [{"destination": "pypi.org", "internet_destination_type": "DNS_NAME"}],
        "allowed_storage_destinations": [{"bucket_name": "my-bucket", "region": "us-east-1", "storage_destination_type": "AWS_S3"}],
        "policy_enforcement": {"enforcement_mode": "DRY_RUN"},
    }
}


def test_a_bound_network_policy_and_the_default_one_cannot_be_deleted_w9(api: Api) -> None:
    workspace_id = api.serverless()
    assert api.call("GET", f"/workspaces/{workspace_id}/network") == {"workspace_id": workspace_id, "network_policy_id": "default-policy"}
    default = api.call("GET", "/network-policies/default-policy")
    assert default["egress"]["network_access"]["restriction_mode"] == "FULL_ACCESS"
    created = api.call("POST", "/network-policies", {"network_policy_id": "gov-egress", "egress": RESTRICTED})
    assert created == {"network_policy_id": "gov-egress", "account_id": api.account, "egress": RESTRICTED}
    assert api.refused("POST", "/network-policies", {"network_policy_id": "gov-egress"}, status=409)["error_code"] == "RESOURCE_ALREADY_EXISTS"
    api.call("PUT", f"/workspaces/{workspace_id}/network", {"workspace_id": workspace_id, "network_policy_id": "gov-egress"})
    assert api.refused("DELETE", "/network-policies/gov-egress") == {
        "error_code": "INVALID_STATE", "message": f"Network policy gov-egress is in use by workspace(s) {workspace_id}."
    }
    assert api.refused("DELETE", "/network-policies/default-policy") == {
        "error_code": "INVALID_PARAMETER_VALUE", "message": "The default policy cannot be deleted."
    }
    assert "does not exist" in api.refused("PUT", f"/workspaces/{workspace_id}/network", {"network_policy_id": "nope"})["message"]
    api.call("PUT", f"/workspaces/{workspace_id}/network", {"workspace_id": workspace_id, "network_policy_id": "default-policy"})
    api.call("DELETE", "/network-policies/gov-egress")
    assert [p["network_policy_id"] for p in api.call("GET", "/network-policies")["items"]] == ["default-policy"]


def test_network_policy_fields_are_checked(api: Api) -> None:
    bad = {
        "restriction_mode": {"network_access": {"restriction_mode": "SOME_ACCESS"}},
        "internet_destination_type": {"network_access": {"restriction_mode": "RESTRICTED_ACCESS",
                                                         "allowed_internet_destinations": [{"destination": "x", "internet_destination_type": "IP"}]}},
        "storage_destination_type": {"network_access": {"restriction_mode": "RESTRICTED_ACCESS",
                                                        "allowed_storage_destinations": [{"bucket_name": "b", "region": "us-east-1"}]}},
        "enforcement_mode": {"network_access": {"restriction_mode": "FULL_ACCESS", "policy_enforcement": {"enforcement_mode": "LOUD"}}},
    }
    for field, egress in bad.items():
        assert field in api.refused("POST", "/network-policies", {"network_policy_id": "p", "egress": egress})["message"]
    assert "network_policy_id" in api.refused("POST", "/network-policies", {"network_policy_id": "x" * 33})["message"]
    api.call("POST", "/network-policies", {"network_policy_id": "p", "egress": RESTRICTED})
    enforced = {"network_access": {**RESTRICTED["network_access"], "policy_enforcement": {"enforcement_mode": "ENFORCED"}}}
    assert api.call("PUT", "/network-policies/p", {"network_policy_id": "p", "egress": enforced})["egress"] == enforced


def test_an_ncc_a_workspace_uses_cannot_be_deleted(api: Api) -> None:
    ncc = api.call("POST", "/network-connectivity-configs", {"name": "gov-ncc", "region": "us-east-1"})
    ncc_id = ncc["network_connectivity_config_id"]
    assert ncc["egress_config"]["default_rules"]["aws_stable_ip_rule"]["cidr_blocks"]
    west = api.call("POST", "/network-connectivity-configs", {"name": "west-ncc", "region": "us-west-2"})
    workspace_id = api.serverless()
    api.call("GET", f"/workspaces/{workspace_id}")  # RUNNING
    wrong = api.refused("PATCH", f"/workspaces/{workspace_id}", {"network_connectivity_config_id": west["network_connectivity_config_id"]})
    assert "region" in wrong["message"]
    api.call("PATCH", f"/workspaces/{workspace_id}", {"network_connectivity_config_id": ncc_id})
    assert api.refused("DELETE", f"/network-connectivity-configs/{ncc_id}") == {
        "error_code": "INVALID_STATE", "message": f"Network connectivity configuration {ncc_id} is in use by workspace(s) {workspace_id}."
    }
    api.call("POST", f"/network-connectivity-configs/{ncc_id}/private-endpoint-rules", {"endpoint_service": SERVICE, "domain_names": ["a.example.com"]})
    api.call("DELETE", f"/workspaces/{workspace_id}")
    api.call("DELETE", f"/network-connectivity-configs/{ncc_id}")
    assert STORE.kind(api.account, "private_endpoint_rules") == {}  # its rules went with it
    assert "name" in api.refused("POST", "/network-connectivity-configs", {"name": "x", "region": "us-east-1"})["message"]


def test_private_endpoint_rules_turn_established_and_deactivate_on_delete(api: Api) -> None:
    ncc_id = api.call("POST", "/network-connectivity-configs", {"name": "gov-ncc", "region": "us-east-1"})["network_connectivity_config_id"]
    path = f"/network-connectivity-configs/{ncc_id}/private-endpoint-rules"
    other_region = "com.amazonaws.vpce.us-west-2.vpce-svc-0123456789abcdef0"
    assert "endpoint_service" in api.refused("POST", path, {"endpoint_service": other_region, "domain_names": ["a.example.com"]})["message"]
    assert "resource_names" in api.refused("POST", path, {"endpoint_service": SERVICE, "resource_names": ["b"]})["message"]
    rule = api.call("POST", path, {"endpoint_service": SERVICE, "domain_names": ["internal.example.com"]})
    assert rule["connection_state"] == "PENDING" and rule["vpc_endpoint_id"].startswith("vpce-") and rule["deactivated"] is False
    # A PENDING rule goes at once.
    api.call("DELETE", f"{path}/{rule['rule_id']}")
    assert api.call("GET", path) == {"items": []}
    rule = api.call("POST", path, {"endpoint_service": SERVICE, "domain_names": ["internal.example.com"]})
    api.settings.vpc_endpoint_pending_seconds = 0.0
    assert api.call("GET", f"{path}/{rule['rule_id']}")["connection_state"] == "ESTABLISHED"
    updated = api.call("PATCH", f"{path}/{rule['rule_id']}", {"domain_names": ["db.example.com"]}, update_mask="domain_names")
    assert updated["domain_names"] == ["db.example.com"]
    ncc = api.call("GET", f"/network-connectivity-configs/{ncc_id}")
    assert [r["rule_id"] for r in ncc["egress_config"]["target_rules"]["aws_private_endpoint_rules"]] == [rule["rule_id"]]
    # An ESTABLISHED rule is deactivated, not removed.
    deleted = api.call("DELETE", f"{path}/{rule['rule_id']}")
    assert deleted["deactivated"] is True and deleted["deactivated_at"]
    assert [r["deactivated"] for r in api.call("GET", path)["items"]] == [True]


# --- serverless workspaces and what a workspace's deletion takes --------------------------------------------------


def test_a_serverless_workspace_refuses_customer_resources(api: Api) -> None:
    for field in ("credentials_id", "storage_configuration_id", "network_id"):
        error = api.refused("POST", "/workspaces", {"workspace_name": "s", "aws_region": "us-east-1", "compute_mode": "SERVERLESS", field: "x"})
        assert error["error_code"] == "INVALID_PARAMETER_VALUE" and field in error["message"] and "serverless" in error["message"]
    tier = api.refused("POST", "/workspaces", {"workspace_name": "s", "aws_region": "us-east-1", "compute_mode": "SERVERLESS", "pricing_tier": "STANDARD"})
    assert "PREMIUM or ENTERPRISE" in tier["message"]
    assert "compute_mode" in api.refused("POST", "/workspaces", {"workspace_name": "s", "aws_region": "us-east-1", "compute_mode": "CLASSIC"})["message"]
    # A classic workspace still needs its credentials and storage.
    assert "credentials_id" in api.refused("POST", "/workspaces", {"workspace_name": "c", "aws_region": "us-east-1"})["message"]
    assert "credentials_id" in api.refused("POST", "/workspaces", {"workspace_name": "c", "aws_region": "us-east-1", "compute_mode": "HYBRID"})["message"]
    workspace_id = api.serverless(pricing_tier="ENTERPRISE")
    ws = api.call("GET", f"/workspaces/{workspace_id}")
    assert ws["workspace_status"] == "RUNNING" and ws["compute_mode"] == "SERVERLESS"
    assert not {"credentials_id", "storage_configuration_id", "network_id"} & ws.keys()
    assert "serverless" in api.refused("PATCH", f"/workspaces/{workspace_id}", {"credentials_id": "x"})["message"]


def test_deleting_a_workspace_removes_its_assignments_and_network_option(api: Api) -> None:
    workspace_id, metastore_id, sp = api.serverless(), api.metastore(), api.sp()
    api.assign(workspace_id, metastore_id)
    api.call("PUT", f"/workspaces/{workspace_id}/permissionassignments/principals/{sp['id']}", {"permissions": ["USER"]})
    api.call("POST", "/network-policies", {"network_policy_id": "gov-egress", "egress": RESTRICTED})
    api.call("PUT", f"/workspaces/{workspace_id}/network", {"network_policy_id": "gov-egress"})
    api.call("DELETE", f"/workspaces/{workspace_id}")
    for kind in ("metastore_assignments", "permission_assignments", "workspace_network_options"):
        assert STORE.kind(api.account, kind) == {}, kind
    api.call("DELETE", "/network-policies/gov-egress")  # no longer bound
    api.call("DELETE", f"/metastores/{metastore_id}")  # no longer assigned
    assert api.refused("GET", f"/workspaces/{workspace_id}/network", status=404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"


# --- databricks-sdk round trips ---------------------------------------------------------------------------------


def test_sdk_metastores_and_assignments(api: Api, account: Any) -> None:
    from databricks.sdk.errors import InvalidState, NotFound
    from databricks.sdk.service.catalog import (
        CreateAccountsMetastore,
        CreateMetastoreAssignment,
    )
    from databricks.sdk.service.provisioning import CustomerFacingComputeMode

    ws = account.workspaces.create(workspace_name="gov", aws_region="us-east-1", compute_mode=CustomerFacingComputeMode.SERVERLESS).response
    created = account.metastores.create(metastore_info=CreateAccountsMetastore(name="primary", region="us-east-1")).metastore_info
    with pytest.raises(InvalidState, match="reached the limit for metastores in region us-east-1"):
        account.metastores.create(metastore_info=CreateAccountsMetastore(name="again", region="us-east-1"))
    assert [(m.metastore_id, m.region, m.storage_root) for m in account.metastores.list()] == [(created.metastore_id, "us-east-1", None)]
    with pytest.raises(NotFound):
        account.metastore_assignments.get(ws.workspace_id)
    assignment = CreateMetastoreAssignment(workspace_id=ws.workspace_id, metastore_id=created.metastore_id, default_catalog_name="main")
    account.metastore_assignments.create(ws.workspace_id, created.metastore_id, metastore_assignment=assignment)
    assert account.metastore_assignments.get(ws.workspace_id).metastore_assignment.metastore_id == created.metastore_id
    assert list(account.metastore_assignments.list(created.metastore_id)) == [ws.workspace_id]
    with pytest.raises(InvalidState, match="still assigned"):
        account.metastores.delete(created.metastore_id)
    account.metastores.delete(created.metastore_id, force=True)
    assert list(account.metastores.list()) == []


def test_sdk_identities_and_permission_assignments(api: Api, account: Any) -> None:
    from databricks.sdk.errors import BadRequest, NotFound
    from databricks.sdk.service.iam import (
        ComplexValue,
        Patch,
        PatchOp,
        PatchSchema,
        WorkspacePermission,
    )

    workspace_id = api.serverless()
    sp = account.service_principals.create(display_name="ci-automation")
    assert [s.id for s in account.service_principals.list(filter='displayName eq "ci-automation"')] == [sp.id]
    group = account.groups.create(display_name="data_engineers")
    account.groups.patch(group.id, schemas=[PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP],
                         operations=[Patch(op=PatchOp.ADD, path="members", value=[ComplexValue(value=sp.id).as_dict()])])
    assert [m.value for m in account.groups.get(group.id).members] == [sp.id]
    assert [u.user_name for u in account.users.list()] == ["sandbox-admin@example.com"]
    secret = account.service_principal_secrets.create(sp.id)
    assert secret.secret and [s.id for s in account.service_principal_secrets.list(sp.id)] == [secret.id]
    with pytest.raises(BadRequest, match="Permission assignment APIs are not available"):
        account.workspace_assignment.update(workspace_id, int(sp.id), permissions=[WorkspacePermission.USER])
    api.assign(workspace_id, api.metastore())
    with pytest.raises(NotFound):
        account.workspace_assignment.update(workspace_id, 987654321, permissions=[WorkspacePermission.USER])
    account.workspace_assignment.update(workspace_id, int(group.id), permissions=[WorkspacePermission.USER])
    (assigned,) = account.workspace_assignment.list(workspace_id)
    assert (assigned.principal.group_name, assigned.permissions) == ("data_engineers", [WorkspacePermission.USER])
    account.workspace_assignment.delete(workspace_id, int(group.id))
    account.groups.delete(group.id)
    with pytest.raises(NotFound):
        account.groups.get(group.id)


def test_sdk_network_policies_and_nccs(api: Api, account: Any) -> None:
    from databricks.sdk.errors import InvalidParameterValue, InvalidState
    from databricks.sdk.service import settings as s

    workspace_id = api.serverless()
    assert account.network_policies.get_network_policy_rpc("default-policy").egress.network_access.restriction_mode.value == "FULL_ACCESS"
    access = s.EgressNetworkPolicyNetworkAccessPolicy(
        restriction_mode=s.EgressNetworkPolicyNetworkAccessPolicyRestrictionMode.RESTRICTED_ACCESS,
        allowed_internet_destinations=[s.EgressNetworkPolicyNetworkAccessPolicyInternetDestination(
            destination="pypi.org",
            internet_destination_type=s.EgressNetworkPolicyNetworkAccessPolicyInternetDestinationInternetDestinationType.DNS_NAME)],
        policy_enforcement=s.EgressNetworkPolicyNetworkAccessPolicyPolicyEnforcement(
            enforcement_mode=s.EgressNetworkPolicyNetworkAccessPolicyPolicyEnforcementEnforcementMode.DRY_RUN),
    )
    policy = s.AccountNetworkPolicy(network_policy_id="gov-egress", egress=s.NetworkPolicyEgress(network_access=access))
    created = account.network_policies.create_network_policy_rpc(policy)
    assert created.egress.network_access.allowed_internet_destinations[0].destination == "pypi.org"
    assert sorted(p.network_policy_id for p in account.network_policies.list_network_policies_rpc()) == ["default-policy", "gov-egress"]
    option = account.workspace_network_configuration.update_workspace_network_option_rpc(
        workspace_id, s.WorkspaceNetworkOption(workspace_id=workspace_id, network_policy_id="gov-egress"))
    assert option.network_policy_id == "gov-egress"
    assert account.workspace_network_configuration.get_workspace_network_option_rpc(workspace_id).network_policy_id == "gov-egress"
    with pytest.raises(InvalidState, match="in use by workspace"):
        account.network_policies.delete_network_policy_rpc("gov-egress")
    with pytest.raises(InvalidParameterValue, match="default policy cannot be deleted"):
        account.network_policies.delete_network_policy_rpc("default-policy")
    ncc = account.network_connectivity.create_network_connectivity_configuration(
        s.CreateNetworkConnectivityConfiguration(name="gov-ncc", region="us-east-1"))
    rule = account.network_connectivity.create_private_endpoint_rule(
        ncc.network_connectivity_config_id, s.CreatePrivateEndpointRule(endpoint_service=SERVICE, domain_names=["internal.example.com"]))
    assert rule.connection_state == s.NccPrivateEndpointRulePrivateLinkConnectionState.PENDING
    listed = list(account.network_connectivity.list_private_endpoint_rules(ncc.network_connectivity_config_id))
    assert [r.rule_id for r in listed] == [rule.rule_id]
    assert [n.name for n in account.network_connectivity.list_network_connectivity_configurations()] == ["gov-ncc"]
    account.network_connectivity.delete_network_connectivity_configuration(ncc.network_connectivity_config_id)


def test_the_inventory_lists_every_new_kind_and_leaves_defaults_out(api: Api, account: Any) -> None:
    from provision.clouds.databricks.sandbox.listing import list_account

    host = account.config.host
    empty = list_account(host, api.settings.token, api.account)
    new_kinds = {
        "databricks_metastores", "databricks_metastore-assignments", "databricks_users", "databricks_service-principals",
        "databricks_service-principal-secrets", "databricks_groups", "databricks_permission-assignments",
        "databricks_network-policies", "databricks_workspace-network-options", "databricks_network-connectivity-configs",
        "databricks_private-endpoint-rules", "databricks_cluster-policies", "databricks_catalogs", "databricks_schemas",
        "databricks_external-locations", "databricks_storage-credentials",
    }
    assert new_kinds <= empty.keys()
    assert {k: v for k, v in empty.items() if v} == {}  # default-policy and the sandbox admin are not inventory
    workspace_id, metastore_id, sp = api.serverless(), api.metastore(), api.sp()
    api.assign(workspace_id, metastore_id)
    api.call("PUT", f"/workspaces/{workspace_id}/permissionassignments/principals/{sp['id']}", {"permissions": ["USER"]})
    api.call("POST", f"/servicePrincipals/{sp['id']}/credentials/secrets", {})
    api.call("POST", "/scim/v2/Groups", {"displayName": "eng"}, 201)
    api.call("POST", "/network-policies", {"network_policy_id": "gov-egress", "egress": RESTRICTED})
    api.call("PUT", f"/workspaces/{workspace_id}/network", {"network_policy_id": "gov-egress"})
    ncc_id = api.call("POST", "/network-connectivity-configs", {"name": "gov-ncc", "region": "us-east-1"})["network_connectivity_config_id"]
    api.call("POST", f"/network-connectivity-configs/{ncc_id}/private-endpoint-rules", {"endpoint_service": SERVICE, "domain_names": ["a.example.com"]})
    found = list_account(host, api.settings.token, api.account)
    account_kinds = new_kinds - {"databricks_cluster-policies", "databricks_catalogs", "databricks_schemas",
                                 "databricks_external-locations", "databricks_storage-credentials", "databricks_users"}
    assert {k: len(found[k]) for k in account_kinds} == dict.fromkeys(account_kinds, 1)
    assert found["databricks_permission-assignments"][0]["workspace_id"] == workspace_id
