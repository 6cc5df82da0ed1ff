"""Azure back-end Private Link in one run against the sandbox's ARM emulator, read back through ARM itself
(the azure-mgmt clients), not through our state file; then a teardown that leaves nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import specs
from sandbox_inventory import AZURE_PRIVATELINK, counts, inventory, untagged

from provision.app.inventory import azure_inventory
from provision.clouds.azure.clients import AzureClients
from provision.orchestrator.clients import SANDBOX, CallStats, Target

EXAMPLE = "azure-privatelink"
def arm(sandbox) -> AzureClients:
    target = Target(SANDBOX, {"azure": sandbox.azure_endpoint_url}, {"azure": sandbox.azure_token})
    return AzureClients(subscription_id=sandbox.azure_subscription_id, target=target, stats=CallStats())


def state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "provision.state.json").read_text())


def test_azure_privatelink_in_one_run_then_teardown(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", specs.example(EXAMPLE))
    result = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert ".azuredatabricks.net" in result.stdout

    found = inventory(sandbox)
    assert counts(found) == AZURE_PRIVATELINK
    assert untagged(found, "acme-azpl") == []
    c = arm(sandbox)
    ws = c.databricks.workspaces.get("rg-acme-azpl", "acme-azpl").as_dict()
    p = ws["properties"]
    assert p["provisioningState"] == "Succeeded"
    assert ws["sku"]["name"] == "premium" and p["computeMode"] == "Hybrid"
    assert p["requiredNsgRules"] == "NoAzureDatabricksRules" and p["publicNetworkAccess"] == "Enabled"
    assert p["parameters"]["enableNoPublicIp"]["value"] is True
    vnet = c.network.virtual_networks.get("rg-acme-azpl", "acme-azpl-vnet").as_dict()
    assert p["parameters"]["customVirtualNetworkId"]["value"].lower() == vnet["id"].lower()
    nsg = c.network.network_security_groups.get("rg-acme-azpl", "acme-azpl-nsg").as_dict()
    subnets = {s["name"]: s["properties"] for s in vnet["properties"]["subnets"]}
    for key in ("customPublicSubnetName", "customPrivateSubnetName"):
        subnet = subnets[p["parameters"][key]["value"]]
        assert [d["properties"]["serviceName"] for d in subnet["delegations"]] == ["Microsoft.Databricks/workspaces"]
        assert subnet["networkSecurityGroup"]["id"].lower() == nsg["id"].lower()
    endpoint_subnet = subnets["acme-azpl-endpoints"]
    assert not endpoint_subnet.get("delegations") and endpoint_subnet["privateEndpointNetworkPolicies"] == "Disabled"
    # No inbound rule of our own; outbound to Azure AD and Front Door on 443 only. The rules Azure Databricks
    # manages itself (worker to worker, Storage, Sql, EventHub) are its own, named as such.
    rules = [r for r in nsg["properties"]["securityRules"] if not r["name"].startswith("Microsoft.Databricks-workspaces_UseOnly_")]
    assert {(r["properties"]["direction"], r["properties"]["destinationAddressPrefix"], r["properties"]["destinationPortRange"]) for r in rules} == {
        ("Outbound", "AzureActiveDirectory", "443"), ("Outbound", "AzureFrontDoor.Frontend", "443"),
    }

    pe = c.network.private_endpoints.get("rg-acme-azpl", "acme-azpl-pe-ui-api").as_dict()
    (connection,) = pe["properties"]["privateLinkServiceConnections"]
    assert connection["properties"]["groupIds"] == ["databricks_ui_api"]
    assert connection["properties"]["privateLinkServiceId"].lower() == ws["id"].lower()
    assert connection["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    assert pe["properties"]["subnet"]["id"].lower().endswith("/subnets/acme-azpl-endpoints")
    links = [link.as_dict() for link in c.dns.virtual_network_links.list("rg-acme-azpl", "privatelink.azuredatabricks.net")]
    assert [link["properties"]["virtualNetwork"]["id"].lower() for link in links] == [vnet["id"].lower()]
    assert links[0]["properties"]["registrationEnabled"] is False
    (group,) = [g.as_dict() for g in c.network.private_dns_zone_groups.list("acme-azpl-pe-ui-api", "rg-acme-azpl")]
    zone_ids = [z["properties"]["privateDnsZoneId"].lower() for z in group["properties"]["privateDnsZoneConfigs"]]
    assert zone_ids == [c.dns.private_zones.get("rg-acme-azpl", "privatelink.azuredatabricks.net").as_dict()["id"].lower()]

    out = {s["id"]: s["outputs"] for s in state(tmp_path)["steps"]}
    assert out["workspace"]["workspace_url"] == f"https://{p['workspaceUrl']}"
    assert out["pe.ui_api"]["private_ip"] and out["pe.ui_api"]["private_ip"].startswith("10.60.2.")

    # Run twice, expect nothing new.
    again = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "created" not in again.stdout.lower().replace("created_by", "")
    assert counts(inventory(sandbox)) == AZURE_PRIVATELINK
    cli("plan", "--config", str(spec), "--sandbox", "--detailed-exitcode", check=0)  # no false drift

    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_browser_authentication_endpoint_comes_after_the_ui_api_one(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", specs.merged(specs.example(EXAMPLE), azure={"browser_authentication": True}))
    cli("up", "--config", str(spec), "--sandbox", check=0)
    found = counts(inventory(sandbox))
    assert found["azure_private_endpoints"] == 2 and found["azure_private_dns_zone_groups"] == 2
    steps = {s["id"]: s for s in state(tmp_path)["steps"]}
    assert steps["pe.browser_auth"]["started_at"] >= steps["pe.ui_api"]["finished_at"]
    pe = arm(sandbox).network.private_endpoints.get("rg-acme-azpl", "acme-azpl-pe-browser-auth").as_dict()
    assert pe["properties"]["privateLinkServiceConnections"][0]["properties"]["groupIds"] == ["browser_authentication"]
    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_an_existing_resource_group_is_used_and_never_deleted(sandbox, cli, tmp_path):
    c = arm(sandbox)
    c.resource.resource_groups.create_or_update("team-rg", {"location": "eastus2", "tags": {"owner": "team"}})
    spec = specs.write(tmp_path / "spec.toml", specs.merged(
        specs.example(EXAMPLE), azure={"resource_group": "team-rg", "resource_group_exists": True},
    ))
    cli("up", "--config", str(spec), "--sandbox", check=0)
    cli("teardown", "--yes", check=0)
    left = azure_inventory(sandbox)
    assert [g["name"] for g in left["azure_resource_groups"]] == ["team-rg"]
    assert counts(left) == {"azure_resource_groups": 1}


@pytest.mark.parametrize("location", ["westeurope"])
def test_an_existing_resource_group_in_another_location_fails_preflight(sandbox, cli, tmp_path, location):
    arm(sandbox).resource.resource_groups.create_or_update("team-rg", {"location": location})
    spec = specs.write(tmp_path / "spec.toml", specs.merged(
        specs.example(EXAMPLE), azure={"resource_group": "team-rg", "resource_group_exists": True},
    ))
    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 2, result.stderr
    assert "azure.resource_group" in result.stderr and location in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
    assert counts(azure_inventory(sandbox)) == {"azure_resource_groups": 1}


SUB = "5a4db0c5-0000-4000-8000-0000000000a2"
DELEGATION = [{"name": "dbx", "properties": {"serviceName": "Microsoft.Databricks/workspaces"}}]


def _team_network(c: AzureClients, *, delegate: bool = True, nsg: bool = True) -> str:
    """What a platform team already has: a VNet with a host, a container and an endpoint subnet."""
    c.resource.resource_groups.create_or_update("net-rg", {"location": "eastus2"})
    nsg_id = None
    if nsg:
        nsg_id = c.network.network_security_groups.begin_create_or_update("net-rg", "team-nsg", {"location": "eastus2"}).result().as_dict()["id"]
    c.network.virtual_networks.begin_create_or_update(
        "net-rg", "team-vnet", {"location": "eastus2", "properties": {"addressSpace": {"addressPrefixes": ["10.70.0.0/22"]}}},
    ).result()
    for name, prefix, delegated in (("public-host", "10.70.0.0/24", True), ("private-worker", "10.70.1.0/24", True), ("endpoints", "10.70.2.0/26", False)):
        props: dict = {"addressPrefix": prefix}
        if delegated and delegate:
            props["delegations"] = DELEGATION
        if delegated and nsg_id:
            props["networkSecurityGroup"] = {"id": nsg_id}
        c.network.subnets.begin_create_or_update("net-rg", "team-vnet", name, {"properties": props}).result()
    return f"/subscriptions/{SUB}/resourceGroups/net-rg/providers/Microsoft.Network/virtualNetworks/team-vnet"


def _existing_spec(tmp_path: Path, vnet_id: str, **network) -> Path:
    data = specs.example(EXAMPLE)
    data["azure"]["network"] = {
        "existing_vnet_id": vnet_id, "host_subnet": "public-host", "container_subnet": "private-worker", "endpoint_subnet": "endpoints",
        **network,
    }
    return specs.write(tmp_path / "spec.toml", data)


def test_an_existing_vnet_is_used_read_only_and_left_as_it_was(sandbox, cli, tmp_path):
    c = arm(sandbox)
    vnet_id = _team_network(c)
    before = {s.as_dict()["name"]: s.as_dict()["properties"].get("networkSecurityGroup") for s in c.network.subnets.list("net-rg", "team-vnet")}
    spec = _existing_spec(tmp_path, vnet_id)
    cli("up", "--config", str(spec), "--sandbox", check=0)
    ws = c.databricks.workspaces.get("rg-acme-azpl", "acme-azpl").as_dict()["properties"]
    assert ws["parameters"]["customVirtualNetworkId"]["value"].lower() == vnet_id.lower()
    assert ws["parameters"]["customPublicSubnetName"]["value"] == "public-host"
    cli("teardown", "--yes", check=0)
    left = azure_inventory(sandbox)
    assert sorted(g["name"] for g in left["azure_resource_groups"]) == ["net-rg"]
    assert [v["name"] for v in left["azure_virtual_networks"]] == ["team-vnet"]
    after = {s.as_dict()["name"]: s.as_dict()["properties"].get("networkSecurityGroup") for s in c.network.subnets.list("net-rg", "team-vnet")}
    assert after == before


@pytest.mark.parametrize("problem, fragment", [
    ({"delegate": False}, "is not delegated to Microsoft.Databricks/workspaces"),
    ({"nsg": False}, "has no network security group"),
])
def test_preflight_refuses_an_unfit_existing_vnet_before_anything_is_created(sandbox, cli, tmp_path, problem, fragment):
    vnet_id = _team_network(arm(sandbox), **problem)
    spec = _existing_spec(tmp_path, vnet_id)
    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 2, result.stderr
    assert "azure.network.host_subnet" in result.stderr and fragment in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
    assert [g["name"] for g in azure_inventory(sandbox)["azure_resource_groups"]] == ["net-rg"]


def test_preflight_names_a_missing_subnet_and_a_subnet_outside_the_rules(sandbox, cli, tmp_path):
    vnet_id = _team_network(arm(sandbox))
    spec = _existing_spec(tmp_path, vnet_id, container_subnet="nope", endpoint_subnet="public-host2")
    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 2
    assert "azure.network.container_subnet: subnet nope not found" in result.stderr
    assert "azure.network.endpoint_subnet: subnet public-host2 not found" in result.stderr


# --- resuming what an earlier run left in flight or broken ---------------------------------------------------


def _slow(sandbox, **delays: float) -> None:
    from provision.sandbox import daemon

    daemon.configure(sandbox, delays)


def test_teardown_killed_while_the_workspace_is_deleting_waits_for_it_rather_than_retrying_a_refused_delete(sandbox, cli, tmp_path):
    """The second teardown finds the workspace still Deleting (ARM refuses another DELETE with 409): it waits with
    the workspace's own timeout, far past the 3 s retry deadline a retried DELETE would have."""
    spec = specs.write(tmp_path / "spec.toml", specs.merged(specs.example(EXAMPLE), timeouts={"retry_deadline_seconds": 3}))
    cli("up", "--config", str(spec), "--sandbox", check=0)
    _slow(sandbox, azure_workspace_deleting_seconds=6)
    killed = cli("teardown", "--yes", env={"PROVISION_FAILPOINTS": "workspace:after_delete=kill"})
    assert killed.returncode == -9
    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_up_killed_while_the_workspace_is_creating_is_resumed_by_waiting_and_teardown_waits_too(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", specs.merged(specs.example(EXAMPLE), timeouts={"retry_deadline_seconds": 3}))
    _slow(sandbox, azure_workspace_provisioning_seconds=6)
    killed = cli("up", "--config", str(spec), "--sandbox", env={"PROVISION_FAILPOINTS": "workspace:after_create=kill"})
    assert killed.returncode == -9
    # Straight to teardown while the workspace is still being created: its DELETE waits for the create to finish.
    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_a_failed_workspace_is_put_again_by_resume_once_the_cause_is_gone(sandbox, cli, tmp_path):
    c = arm(sandbox)
    # The cause: the managed resource group the workspace names already exists (Azure Databricks must create it).
    c.resource.resource_groups.create_or_update("managed-acme-azpl", {"location": "eastus2"})
    spec = specs.write(tmp_path / "spec.toml", specs.example(EXAMPLE))
    failed = cli("up", "--config", str(spec), "--sandbox")
    assert failed.returncode == 2, failed.stderr  # preflight names it before anything is made
    assert "azure.workspace.managed_resource_group" in failed.stderr
    # Made after preflight passed (a race with someone else): the workspace's operation fails.
    c.resource.resource_groups.begin_delete("managed-acme-azpl").result()
    killed = cli("up", "--config", str(spec), "--sandbox", env={"PROVISION_FAILPOINTS": "workspace:before_create=kill"})
    assert killed.returncode == -9
    c.resource.resource_groups.create_or_update("managed-acme-azpl", {"location": "eastus2"})
    resumed = cli("resume")
    assert resumed.returncode == 1 and "Failed" in resumed.stderr
    assert c.databricks.workspaces.get("rg-acme-azpl", "acme-azpl").as_dict()["properties"]["provisioningState"] == "Failed"
    c.resource.resource_groups.begin_delete("managed-acme-azpl").result()
    cli("resume", check=0)
    assert c.databricks.workspaces.get("rg-acme-azpl", "acme-azpl").as_dict()["properties"]["provisioningState"] == "Succeeded"
    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_an_endpoint_left_disconnected_by_a_replaced_workspace_is_made_again(sandbox, cli, tmp_path):
    spec = specs.write(tmp_path / "spec.toml", specs.example(EXAMPLE))
    cli("up", "--config", str(spec), "--sandbox", check=0)
    c = arm(sandbox)
    c.databricks.workspaces.begin_delete("rg-acme-azpl", "acme-azpl").result()  # someone deleted it by hand
    pe = c.network.private_endpoints.get("rg-acme-azpl", "acme-azpl-pe-ui-api").as_dict()
    assert pe["properties"]["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"]["status"] == "Disconnected"
    cli("up", "--config", str(spec), "--sandbox", check=0)
    pe = c.network.private_endpoints.get("rg-acme-azpl", "acme-azpl-pe-ui-api").as_dict()
    assert pe["properties"]["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    assert counts(inventory(sandbox)) == AZURE_PRIVATELINK
    cli("teardown", "--yes", check=0)
    assert counts(azure_inventory(sandbox)) == {}


def test_a_second_deployment_in_the_same_group_is_refused_by_preflight(sandbox, cli, tmp_path):
    arm(sandbox).resource.resource_groups.create_or_update("shared-rg", {"location": "eastus2"})
    first = specs.write(tmp_path / "first.toml", specs.merged(specs.example(EXAMPLE), azure={"resource_group": "shared-rg", "resource_group_exists": True}))
    cli("up", "--config", str(first), "--sandbox", check=0)
    other = tmp_path / "other"
    other.mkdir()
    second = specs.write(other / "spec.toml", specs.merged(
        specs.example(EXAMPLE), name="acme-two",
        azure={"resource_group": "shared-rg", "resource_group_exists": True, "workspace": {"name": "acme-two"},
               "network": {"vnet_cidr": "10.61.0.0/22"}},
    ))
    before = counts(azure_inventory(sandbox))
    result = cli("up", "--config", str(second), "--sandbox", "--state", str(other / "provision.state.json"))
    assert result.returncode == 2, result.stderr
    assert "azure.resource_group" in result.stderr and "privatelink.azuredatabricks.net" in result.stderr
    assert counts(azure_inventory(sandbox)) == before


def test_an_existing_vnet_already_linked_to_a_hub_zone_of_the_same_name_is_refused_by_preflight(sandbox, cli, tmp_path):
    c = arm(sandbox)
    vnet_id = _team_network(c)
    c.resource.resource_groups.create_or_update("hub-dns", {"location": "eastus2"})
    c.dns.private_zones.begin_create_or_update("hub-dns", "privatelink.azuredatabricks.net", {"location": "global"}).result()
    link = {"location": "global", "properties": {"virtualNetwork": {"id": vnet_id}, "registrationEnabled": False}}
    c.dns.virtual_network_links.begin_create_or_update("hub-dns", "privatelink.azuredatabricks.net", "team", link).result()
    result = cli("up", "--config", str(_existing_spec(tmp_path, vnet_id)), "--sandbox")
    assert result.returncode == 2, result.stderr
    assert "azure.network.existing_vnet_id" in result.stderr and "already linked" in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
