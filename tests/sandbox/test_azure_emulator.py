"""The ARM emulator (clouds/azure/sandbox) through the real azure-mgmt clients and, for what the SDKs hide
(headers, status codes, requests without a token or an api-version), through raw HTTP: the long-running
operation protocol with the SDK's own poller and with polling=False + GET, deletion (202 + Location, then
404), resource group cascades, listings (list_via_api, inventory), authentication, the subscription,
api-versions, case-insensitive names, and the shapes a Databricks-on-Azure deployment reads back."""

# ruff: noqa: F811  (the fixtures imported from test_azure_support are pytest arguments)
from __future__ import annotations

import time

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpRequest
from sandbox_helpers import delays, wait_until
from test_azure_support import (  # noqa: F401  (fixtures)
    POLL,
    arm_clients,
    arm_url,
    az,
    refused,
    settings,
    world,
)

from provision.clouds.azure import sandbox as emulator
from provision.clouds.azure.sandbox.listing import list_via_api
from provision.sandbox.latency import REALISTIC
from provision.sandbox.settings import SandboxSettings


def raw(client, method: str, url: str, body: dict | None = None):
    return client.send_request(HttpRequest(method, url, json=body))


def vnet_url(base: str, world, name: str = "vnet", version: str = "2026-03-01") -> str:
    return f"{base}{world.group_id()}/providers/Microsoft.Network/virtualNetworks/{name}?api-version={version}"


# --- long-running operations ------------------------------------------------------------------------------


def test_put_answers_201_with_an_operation_that_finishes_after_the_delay(world, arm_url, settings):
    world.rg()
    body = world.vnet_body([world.subnet("a", "10.1.0.0/24")])
    with delays(settings, azure_resource_seconds=0.3):
        first = raw(world.az.network, "PUT", vnet_url(arm_url, world), body)
        assert first.status_code == 201
        assert first.json()["properties"]["provisioningState"] == "Updating"
        assert first.json()["properties"]["subnets"][0]["properties"]["provisioningState"] == "Updating"
        status_url = first.headers["Azure-AsyncOperation"]
        assert status_url.startswith(f"{arm_url}/subscriptions/{world.sub}/providers/Microsoft.Network/locations/eastus/operations/")
        assert first.headers["Retry-After"] == "0" and first.headers["x-ms-request-id"]
        assert raw(world.az.network, "GET", status_url).json()["status"] == "InProgress"
        wait_until(lambda: raw(world.az.network, "GET", status_url).json()["status"] == "Succeeded", timeout=3)
        assert world.az.network.virtual_networks.get("rg", "vnet").provisioning_state == "Succeeded"
        again = raw(world.az.network, "PUT", vnet_url(arm_url, world), body)
        assert again.status_code == 200 and again.json()["properties"]["provisioningState"] == "Updating"


def test_the_sdk_poller_follows_the_operation(world, settings):
    world.rg()
    with delays(settings, azure_resource_seconds=0.25):
        started = time.monotonic()
        poller = world.az.network.network_security_groups.begin_create_or_update("rg", "nsg", {"location": "eastus"}, polling_interval=0.02)
        assert poller.status() == "InProgress"
        nsg = poller.result()
    assert nsg.provisioning_state == "Succeeded" and time.monotonic() - started >= 0.25
    assert world.az.stats.calls[("azure.network", "GET locations/operations")] >= 2


def test_polling_false_then_get_until_succeeded(world, settings):
    world.rg()
    with delays(settings, azure_endpoint_seconds=0.2, azure_resource_seconds=0.2):
        poller = world.az.dns.private_zones.begin_create_or_update("rg", "corp.internal", {"location": "global"}, polling=False)
        assert poller.result().provisioning_state == "Creating"
        wait_until(lambda: world.az.dns.private_zones.get("rg", "corp.internal").provisioning_state == "Succeeded", timeout=3)


def test_delete_answers_202_with_a_location_then_the_resource_is_gone(world, arm_url, settings):
    world.rg()
    world.vnet()
    with delays(settings, azure_resource_seconds=0.3):
        deleted = raw(world.az.network, "DELETE", vnet_url(arm_url, world))
        assert deleted.status_code == 202 and deleted.headers["Retry-After"] == "0"
        location = deleted.headers["Location"]
        assert "/operationResults/" in location and deleted.headers["Azure-AsyncOperation"]
        assert raw(world.az.network, "GET", location).status_code == 202
        assert world.az.network.virtual_networks.get("rg", "vnet").provisioning_state == "Deleting"
        wait_until(lambda: raw(world.az.network, "GET", location).status_code == 200, timeout=3)
    error = refused(lambda: world.az.network.virtual_networks.get("rg", "vnet"), 404, "ResourceNotFound")
    assert error.error.message == (
        "The Resource 'Microsoft.Network/virtualNetworks/vnet' under resource group 'rg' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix"
    )
    assert raw(world.az.network, "DELETE", vnet_url(arm_url, world)).status_code == 204  # a missing resource
    world.vnet("vnet2")
    world.az.network.virtual_networks.begin_delete("rg", "vnet2", polling_interval=POLL).result()
    with pytest.raises(ResourceNotFoundError):
        world.az.network.virtual_networks.get("rg", "vnet2")


def test_deleting_a_resource_group_takes_everything_in_it(world, settings):
    vnet = world.network()
    ws = world.workspace(vnet)
    world.put_pe(world.pe_body(vnet, ws)).result()
    zone = world.zone()
    world.link(zone, vnet)
    with delays(settings, azure_resource_group_deleting_seconds=0.3):
        poller = world.az.resource.resource_groups.begin_delete("rg", polling_interval=0.02)
        assert world.az.resource.resource_groups.get("rg").properties.provisioning_state == "Deleting"
        assert world.az.databricks.workspaces.get("rg", "ws").provisioning_state == "Deleting"
        refused(lambda: world.nsg(name="late"), 409, "ResourceGroupBeingDeleted")
        poller.result()
    assert emulator.inventory() == {kind: [] for kind in emulator.KINDS}  # the managed group went with its workspace
    refused(lambda: world.az.resource.resource_groups.get("rg"), 404, "ResourceGroupNotFound", "Resource group 'rg' could not be found.")
    refused(lambda: world.az.resource.resource_groups.begin_delete("rg", polling=False), 404, "ResourceGroupNotFound")
    assert not world.az.resource.resource_groups.check_existence("rg")


# --- listings --------------------------------------------------------------------------------------------


def test_listings_read_through_the_sdks_agree_with_the_inventory(world):
    vnet = world.network()
    ws = world.workspace(vnet)
    world.put_pe(world.pe_body(vnet, ws)).result()
    zone = world.zone()
    world.link(zone, vnet)
    body = {"properties": {"privateDnsZoneConfigs": [{"name": "adb", "properties": {"privateDnsZoneId": zone["id"]}}]}}
    world.az.network.private_dns_zone_groups.begin_create_or_update("rg", "pe", "default", body, polling_interval=POLL).result()
    found = list_via_api(world.az)
    assert {kind: len(items) for kind, items in found.items()} == {
        "resource_groups": 2, "virtual_networks": 1, "subnets": 3, "network_security_groups": 1, "private_endpoints": 1,
        "private_dns_zone_groups": 1, "private_dns_zones": 1, "virtual_network_links": 1, "workspaces": 1,
    }
    assert found == emulator.inventory()
    managed = next(g for g in found["resource_groups"] if g["name"] == "rg-managed")
    assert managed["managedBy"] == ws["id"]
    generic = {(r.type, r.name.split(".nic.")[0]) for r in world.az.resource.resources.list_by_resource_group("rg")}
    assert generic == {
        ("Microsoft.Network/networkSecurityGroups", "nsg"), ("Microsoft.Network/virtualNetworks", "vnet"),
        ("Microsoft.Databricks/workspaces", "ws"), ("Microsoft.Network/privateEndpoints", "pe"),
        ("Microsoft.Network/networkInterfaces", "pe"), ("Microsoft.Network/privateDnsZones", zone["name"]),
        ("Microsoft.Network/privateDnsZones/virtualNetworkLinks", "link"),
    }
    assert [w.name for w in world.az.databricks.workspaces.list_by_subscription()] == ["ws"]
    assert [z.name for z in world.az.dns.private_zones.list()] == [zone["name"]]


# --- the front door: authentication, subscription, api-version, names ---------------------------------------


def test_requests_without_the_sandbox_token_are_refused(arm_url, settings, world):
    url = f"{arm_url}/subscriptions/{settings.azure_subscription_id}/resourcegroups?api-version=2025-04-01"
    missing = requests.get(url, timeout=5)
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "AuthenticationFailed"
    assert missing.json()["error"]["message"] == "Authentication failed. The 'Authorization' header is missing."
    assert missing.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    malformed = requests.get(url, headers={"Authorization": "Basic abc"}, timeout=5)
    assert malformed.json()["error"]["code"] == "AuthenticationFailed" and "invalid format" in malformed.json()["error"]["message"]
    with pytest.raises(ClientAuthenticationError) as info:
        arm_clients(arm_url, settings, token="not-the-token").resource.resource_groups.get("rg")
    assert info.value.error.code == "InvalidAuthenticationToken" and info.value.error.message == "The access token is invalid."


def test_only_the_sandbox_subscription_exists(arm_url, settings, world):
    other = "11111111-2222-4333-8444-555555555555"
    error = refused(lambda: arm_clients(arm_url, settings, subscription=other).resource.resource_groups.list().next(), 404, "SubscriptionNotFound")
    assert error.error.message == f"The subscription '{other}' could not be found."
    malformed = raw(world.az.resource, "GET", f"{arm_url}/subscriptions/not-a-guid/resourcegroups?api-version=2025-04-01")
    assert malformed.status_code == 400 and malformed.json()["error"]["code"] == "InvalidSubscriptionId"


def test_api_versions_are_checked_per_provider(arm_url, world):
    world.rg()
    world.vnet()
    missing = requests.get(vnet_url(arm_url, world).split("?")[0], timeout=5)  # before authentication, as ARM does
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = raw(world.az.network, "GET", vnet_url(arm_url, world, version="2019-13-01")).json()["error"]
    assert unknown["code"] == "NoRegisteredProviderFound"
    assert unknown["message"].startswith("No registered resource provider found for location 'eastus' and API version '2019-13-01' for type 'virtualNetworks'.")
    assert raw(world.az.network, "GET", vnet_url(arm_url, world, version="2024-05-01")).status_code == 200
    groups = f"{arm_url}/subscriptions/{world.sub}/resourcegroups/rg?api-version="
    assert raw(world.az.resource, "GET", groups + "2099-01-01").json()["error"]["code"] == "InvalidApiVersionParameter"
    assert raw(world.az.resource, "GET", groups + "2021-04-01").json()["name"] == "rg"
    # Before 2026-01-01 a workspace needs no computeMode (it is a classic, Hybrid one).
    ws_url = f"{arm_url}{world.group_id()}/providers/Microsoft.Databricks/workspaces/old?api-version=2024-05-01"
    body = world.workspace_body(computeMode=None)
    created = raw(world.az.databricks, "PUT", ws_url, body)
    assert created.status_code == 201 and created.json()["properties"]["computeMode"] == "Hybrid"
    assert created.json()["properties"]["provisioningState"] == "Accepted"


def test_names_are_case_insensitive_and_keep_their_casing(world):
    world.rg("MyGroup")
    world.vnet("MyVNet", rg="MyGroup", subnets=[world.subnet("Apps", "10.1.0.0/24")])
    found = world.az.network.virtual_networks.get("mygroup", "MYVNET")
    assert found.name == "MyVNet" and found.id.endswith("/resourceGroups/MyGroup/providers/Microsoft.Network/virtualNetworks/MyVNet")
    assert world.az.network.subnets.get("MYGROUP", "myvnet", "APPS").name == "Apps"
    assert [g.name for g in world.az.resource.resource_groups.list()] == ["MyGroup"]
    assert world.az.resource.resource_groups.check_existence("MYGROUP")


# --- shapes and semantics a deployment reads back -------------------------------------------------------


def test_a_vnet_put_replaces_its_subnets(world):
    world.rg()
    world.vnet(subnets=[world.subnet("a", "10.1.0.0/24"), world.subnet("b", "10.1.1.0/24")])
    world.vnet(subnets=[world.subnet("a", "10.1.0.0/24")])
    assert [s.name for s in world.az.network.subnets.list("rg", "vnet")] == ["a"]
    world.vnet()  # no subnets in the body: none left
    assert list(world.az.network.subnets.list("rg", "vnet")) == []


def test_a_workspace_holds_its_subnets_and_vnet(world):
    vnet = world.network()
    world.workspace(vnet)
    body = world.vnet_body([world.subnet("endpoints", "10.1.2.0/24")])
    put = lambda: world.az.network.virtual_networks.begin_create_or_update("rg", "vnet", body, polling_interval=POLL).result()
    refused(put, 400, "InUseSubnetCannotBeDeleted", "Subnet public is in use by")
    refused(lambda: world.az.network.virtual_networks.begin_delete("rg", "vnet", polling=False), 400, "InUseSubnetCannotBeDeleted")
    world.az.databricks.workspaces.begin_delete("rg", "ws", polling_interval=POLL).result()
    world.az.network.virtual_networks.begin_delete("rg", "vnet", polling_interval=POLL).result()


def test_workspace_shape_managed_group_and_deletion(world, settings):
    vnet = world.network()
    with delays(settings, azure_workspace_provisioning_seconds=0.2):
        poller = world.put_workspace(world.workspace_body(vnet, requiredNsgRules="NoAzureDatabricksRules"))
        assert poller.status() == "InProgress"
        accepted = world.az.databricks.workspaces.get("rg", "ws").as_dict()
        assert accepted["properties"]["provisioningState"] == "Accepted" and "workspaceId" not in accepted["properties"]
        assert world.az.resource.resource_groups.get("rg-managed").managed_by == accepted["id"]
        ws = poller.result().as_dict()
    p = ws["properties"]
    assert len(p["workspaceId"]) == 16 and p["workspaceId"].isdigit()
    assert p["workspaceUrl"].startswith(f"adb-{p['workspaceId']}.") and p["workspaceUrl"].endswith(".azuredatabricks.net")
    assert p["parameters"]["enableNoPublicIp"] == {"type": "Bool", "value": True}
    assert p["parameters"]["customPublicSubnetName"] == {"type": "String", "value": "public"}
    assert p["requiredNsgRules"] == "NoAzureDatabricksRules" and p["computeMode"] == "Hybrid" and p["createdBy"]["oid"]
    pe = world.put_pe(world.pe_body(vnet, ws)).result().as_dict()
    world.az.databricks.workspaces.begin_delete("rg", "ws", polling_interval=POLL).result()
    assert not world.az.resource.resource_groups.check_existence("rg-managed")
    state = world.az.network.private_endpoints.get("rg", "pe").as_dict()["properties"]["privateLinkServiceConnections"][0]
    assert state["properties"]["privateLinkServiceConnectionState"]["status"] == "Disconnected"
    assert pe["id"]


def test_a_private_endpoint_gets_a_nic_an_address_and_dns_records(world):
    vnet = world.network()
    ws = world.workspace(vnet)
    pe = world.put_pe(world.pe_body(vnet, ws)).result().as_dict()
    (nic_ref,) = pe["properties"]["networkInterfaces"]
    nic = world.az.network.network_interfaces.get("rg", nic_ref["id"].rsplit("/", 1)[1]).as_dict()
    ip = nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
    assert ip == "10.1.2.4" and pe["properties"]["customDnsConfigs"] == [{"fqdn": ws["properties"]["workspaceUrl"], "ipAddresses": [ip]}]
    (connection,) = pe["properties"]["privateLinkServiceConnections"]
    assert connection["properties"]["privateLinkServiceConnectionState"] == {"status": "Approved", "description": "Auto-Approved", "actionsRequired": "None"}
    subnet = world.az.network.subnets.get("rg", "vnet", "endpoints").as_dict()["properties"]
    assert subnet["privateEndpoints"] == [{"id": pe["id"]}] and subnet["ipConfigurations"][0]["id"].startswith(nic["id"])
    (pec,) = world.az.databricks.workspaces.get("rg", "ws").as_dict()["properties"]["privateEndpointConnections"]
    assert pec["properties"]["privateEndpoint"]["id"] == pe["id"] and pec["properties"]["groupIds"] == ["databricks_ui_api"]
    assert [c.name for c in world.az.databricks.private_endpoint_connections.list("rg", "ws")] == [pec["name"]]
    zone = world.zone()
    body = {"properties": {"privateDnsZoneConfigs": [{"name": "adb", "properties": {"privateDnsZoneId": zone["id"]}}]}}
    group = world.az.network.private_dns_zone_groups.begin_create_or_update("rg", "pe", "default", body, polling_interval=POLL).result().as_dict()
    (record,) = group["properties"]["privateDnsZoneConfigs"][0]["properties"]["recordSets"]
    relative = ws["properties"]["workspaceUrl"].removesuffix(".azuredatabricks.net")
    assert (record["recordSetName"], record["ipAddresses"], record["ttl"]) == (relative, [ip], 10)
    a_records = [r.as_dict() for r in world.az.dns.record_sets.list_by_type("rg", zone["name"], "A")]
    assert [(r["name"], r["properties"]["aRecords"]) for r in a_records] == [(relative, [{"ipv4Address": ip}])]
    assert {r.name for r in world.az.dns.record_sets.list("rg", zone["name"])} == {"@", relative}
    world.az.network.private_dns_zone_groups.begin_delete("rg", "pe", "default", polling_interval=POLL).result()
    assert [r.name for r in world.az.dns.record_sets.list("rg", zone["name"])] == ["@"]
    refused(lambda: world.az.network.subnets.begin_delete("rg", "vnet", "endpoints", polling=False), 400, "InUseSubnetCannotBeDeleted",
            f"Subnet endpoints is in use by {nic['properties']['ipConfigurations'][0]['id']} and cannot be deleted.")
    world.az.network.private_endpoints.begin_delete("rg", "pe", polling_interval=POLL).result()
    assert "privateEndpoints" not in world.az.network.subnets.get("rg", "vnet", "endpoints").as_dict()["properties"]
    world.az.network.subnets.begin_delete("rg", "vnet", "endpoints", polling_interval=POLL).result()


def test_applying_the_same_bodies_again_changes_nothing(world):
    vnet = world.network()
    ws = world.workspace(vnet)
    pe = world.put_pe(world.pe_body(vnet, ws)).result().as_dict()
    nsg = world.az.network.network_security_groups.get("rg", "nsg").as_dict()
    poller = world.put_workspace(world.workspace_body(vnet), polling=False)
    assert poller.result().provisioning_state == "Updating"
    wait_until(lambda: world.az.databricks.workspaces.get("rg", "ws").provisioning_state == "Succeeded", timeout=3)
    again = world.az.databricks.workspaces.get("rg", "ws").as_dict()["properties"]
    assert (again["workspaceId"], again["workspaceUrl"]) == (ws["properties"]["workspaceId"], ws["properties"]["workspaceUrl"])
    assert world.put_pe(world.pe_body(vnet, ws)).result().as_dict()["properties"]["customDnsConfigs"] == pe["properties"]["customDnsConfigs"]
    # An NSG re-applied as read back (Databricks' rules included) is accepted.
    body = {"location": "eastus", "properties": {"securityRules": [{"name": r["name"], "properties": r["properties"]} for r in nsg["properties"]["securityRules"]]}}
    world.az.network.network_security_groups.begin_create_or_update("rg", "nsg", body, polling_interval=POLL).result()
    assert [r.name for r in world.az.network.network_security_groups.get("rg", "nsg").security_rules] == [r["name"] for r in nsg["properties"]["securityRules"]]


def test_nsg_shows_default_rules_and_its_subnets(world):
    world.network()
    nsg = world.az.network.network_security_groups.get("rg", "nsg").as_dict()["properties"]
    assert [r["name"] for r in nsg["defaultSecurityRules"]] == [
        "AllowVnetInBound", "AllowAzureLoadBalancerInBound", "DenyAllInBound", "AllowVnetOutBound", "AllowInternetOutBound", "DenyAllOutBound",
    ]
    assert [s["id"].rsplit("/", 1)[1] for s in nsg["subnets"]] == ["public", "private"]
    assert nsg["securityRules"][0]["type"] == "Microsoft.Network/networkSecurityGroups/securityRules"


def test_a_vnet_link_completes(world, settings):
    world.rg()
    zone, vnet = world.zone(), world.vnet()
    with delays(settings, azure_resource_seconds=0.2):
        poller = world.az.dns.virtual_network_links.begin_create_or_update(
            "rg", zone["name"], "link", {"location": "global", "properties": {"virtualNetwork": {"id": vnet["id"]}}}, polling=False,
        )
        assert poller.result().virtual_network_link_state == "InProgress"
        wait_until(lambda: world.az.dns.virtual_network_links.get("rg", zone["name"], "link").virtual_network_link_state == "Completed", timeout=3)
    assert world.az.dns.private_zones.get("rg", zone["name"]).number_of_virtual_network_links == 1


def test_azure_settings_and_latency_profile():
    values = SandboxSettings()
    with pytest.raises(ValueError, match="read-only"):
        values.update({"azure_token": "x"})
    with pytest.raises(ValueError, match="read-only"):
        values.update({"azure_subscription_id": "x"})
    azure = {k for k in REALISTIC if k.startswith("azure_")}
    assert azure == {
        "azure_workspace_provisioning_seconds", "azure_workspace_deleting_seconds", "azure_endpoint_seconds",
        "azure_resource_seconds", "azure_resource_group_deleting_seconds", "azure_call_seconds",
    }
    assert 240 <= REALISTIC["azure_workspace_provisioning_seconds"] <= 360


def test_errors_carry_arm_headers(world, arm_url):
    response = raw(world.az.network, "GET", vnet_url(arm_url, world))
    assert response.status_code == 404 and response.json()["error"]["code"] == "ResourceGroupNotFound"
    assert response.headers["x-ms-request-id"] and response.headers["x-ms-correlation-request-id"]
    with pytest.raises(HttpResponseError):
        world.az.network.virtual_networks.get("rg", "vnet")
