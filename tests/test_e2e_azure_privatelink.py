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
