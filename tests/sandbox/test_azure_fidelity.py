"""One test per fidelity rule of the ARM emulator (clouds/azure/sandbox/rules.py), through the real azure-mgmt
clients: the call is refused with ARM's status, code and wording, and inside rules.disabled(<rule>) the same
call is accepted, which proves the test would fail against a lenient emulator."""

# ruff: noqa: F811  (the fixtures imported from test_azure_support are pytest arguments)
from __future__ import annotations

import pytest
from sandbox_helpers import delays
from test_azure_support import (  # noqa: F401  (fixtures)
    DELEGATION,
    OWN_RULES,
    POLL,
    arm_url,
    az,
    failed,
    refused,
    settings,
    world,
)

from provision.clouds.azure.sandbox import rules

GHOST = "/providers/Microsoft.Network/virtualNetworks/ghost"


# --- resource groups ------------------------------------------------------------------------------------


def test_rg_put_while_deleting(world, settings):
    world.rg()
    with delays(settings, azure_resource_group_deleting_seconds=30):
        world.az.resource.resource_groups.begin_delete("rg", polling=False)
        call = lambda: world.az.network.network_security_groups.begin_create_or_update("rg", "nsg", {"location": "eastus"}, polling=False)
        refused(call, 409, "ResourceGroupBeingDeleted", "The resource group 'rg' is in deprovisioning state")
        with rules.disabled("rg-put-while-deleting"):
            assert call().result().name == "nsg"


def test_rg_location_immutable(world):
    world.rg(location="eastus")
    call = lambda: world.az.resource.resource_groups.create_or_update("rg", {"location": "westus"})
    refused(call, 409, "InvalidResourceGroupLocation", "already exists in location 'eastus'")
    with rules.disabled("rg-location-immutable"):
        assert call().location == "westus"


def test_rg_delete_blocked_by_external_use(world):
    world.rg("rg-a"), world.rg("rg-b")
    nsg = world.nsg(rg="rg-a")
    world.vnet(rg="rg-b", subnets=[world.subnet("s", "10.1.0.0/24", nsg)])
    call = lambda: world.az.resource.resource_groups.begin_delete("rg-a", polling_interval=POLL).result()
    refused(call, 409, "ResourceGroupDeletionBlocked", "Microsoft.Network/networkSecurityGroups/nsg")
    assert world.az.network.network_security_groups.get("rg-a", "nsg").provisioning_state == "Succeeded"
    assert world.az.resource.resource_groups.get("rg-a").properties.provisioning_state == "Succeeded"
    with rules.disabled("rg-delete-blocked-by-external-use"):
        call()
    assert not world.az.resource.resource_groups.check_existence("rg-a")


def test_managed_rg_deny_assignment(world):
    world.rg()
    ws = world.workspace()
    call = lambda: world.az.resource.resource_groups.begin_delete("rg-managed", polling=False)
    error = refused(call, 403, "DenyAssignmentAuthorizationFailed", f"System deny assignment created by Azure Databricks {ws['id']}")
    assert "'Microsoft.Resources/subscriptions/resourcegroups/delete'" in error.error.message
    with rules.disabled("managed-rg-deny-assignment"):
        call()


# --- VNets and subnets ----------------------------------------------------------------------------------


def _put_vnet(world, body):
    return lambda: world.az.network.virtual_networks.begin_create_or_update("rg", "v", body, polling_interval=POLL).result()


def test_address_prefix_format(world):
    world.rg()
    call = _put_vnet(world, world.vnet_body([], "10.0.0.0"))
    refused(call, 400, "InvalidAddressPrefixFormat", "Address prefix 10.0.0.0 of resource")
    with rules.disabled("address-prefix-format"):
        call()


def test_address_prefix_host_bits(world):
    world.rg()
    call = _put_vnet(world, world.vnet_body([], "10.1.0.1/16"))
    refused(call, 400, "InvalidCIDRNotation", "the address prefix should be 10.1.0.0/16")
    with rules.disabled("address-prefix-host-bits"):
        call()


def test_subnet_inside_vnet(world):
    world.rg()
    call = _put_vnet(world, world.vnet_body([world.subnet("a", "10.2.0.0/24")]))
    refused(call, 400, "NetcfgSubnetRangeOutsideVnet", "Subnet 'a' is not valid because its IP address range is outside")
    with rules.disabled("subnet-inside-vnet"):
        call()


def test_subnets_no_overlap(world):
    world.rg()
    call = _put_vnet(world, world.vnet_body([world.subnet("a", "10.1.0.0/24"), world.subnet("b", "10.1.0.0/25")]))
    refused(call, 400, "NetcfgSubnetRangesOverlap", "overlaps with that of an existing subnet in virtual network 'v'")
    with rules.disabled("subnets-no-overlap"):
        call()


def test_subnet_minimum_size(world):
    world.rg()
    call = _put_vnet(world, world.vnet_body([world.subnet("a", "10.1.0.0/30")]))
    refused(call, 400, "NetcfgInvalidSubnet", "Subnet 'a' is not valid in virtual network 'v'")
    with rules.disabled("subnet-minimum-size"):
        call()


def test_subnet_nsg_must_exist(world):
    world.rg()
    subnet = {"name": "a", "properties": {"addressPrefix": "10.1.0.0/24", "networkSecurityGroup": {"id": world.group_id() + "/providers/Microsoft.Network/networkSecurityGroups/ghost"}}}
    call = _put_vnet(world, world.vnet_body([subnet]))
    refused(call, 400, "InvalidResourceReference", "networkSecurityGroups/ghost referenced by resource")
    with rules.disabled("subnet-nsg-must-exist"):
        call()


def test_delegation_service_name(world):
    world.rg()
    subnet = {"name": "a", "properties": {"addressPrefix": "10.1.0.0/24", "delegations": [{"name": "d", "properties": {"serviceName": "Microsoft.Nope/things"}}]}}
    call = _put_vnet(world, world.vnet_body([subnet]))
    refused(call, 400, "InvalidServiceNameOnDelegation", "The service name Microsoft.Nope/things specified on delegation")
    with rules.disabled("delegation-service-name"):
        call()


def _workspace_on_network(world):
    vnet = world.network()
    return vnet, world.workspace(vnet)


def _put_subnet(world, name, props):
    return lambda: world.az.network.subnets.begin_create_or_update("rg", "vnet", name, {"properties": props}, polling_interval=POLL).result()


def test_delegation_change_in_use(world):
    _workspace_on_network(world)
    nsg = world.az.network.network_security_groups.get("rg", "nsg")
    call = _put_subnet(world, "public", {"addressPrefix": "10.1.0.0/24", "networkSecurityGroup": {"id": nsg.id}})
    refused(call, 400, "SubnetDelegationsCannotChangeWhenSubnetUsedByResource", "cannot be changed from [Microsoft.Databricks/workspaces] to []")
    with rules.disabled("delegation-change-in-use"):
        call()


def test_in_use_subnet_delete(world):
    _workspace_on_network(world)
    call = lambda: world.az.network.subnets.begin_delete("rg", "vnet", "public", polling=False)
    refused(call, 400, "InUseSubnetCannotBeDeleted", "/providers/Microsoft.Network/networkIntentPolicies/adb-eastus-")
    with rules.disabled("in-use-subnet-delete"):
        call()


def test_nsg_removal_blocked_by_nip(world):
    _workspace_on_network(world)
    call = _put_subnet(world, "public", {"addressPrefix": "10.1.0.0/24", "delegations": DELEGATION})
    refused(call, 400, "NetworkSecurityGroupCannotBeRemovedDueToNipOnSubnet", "because it has network intent policy")
    with rules.disabled("nsg-removal-blocked-by-nip"):
        call()


def test_one_operation_at_a_time(world, settings):
    world.rg()
    with delays(settings, azure_resource_seconds=30):
        world.az.network.virtual_networks.begin_create_or_update("rg", "vnet", world.vnet_body([]), polling=False)
        call = lambda: world.az.network.subnets.begin_create_or_update("rg", "vnet", "a", {"properties": {"addressPrefix": "10.1.0.0/24"}}, polling=False)
        error = refused(call, 409, "AnotherOperationInProgress", "Another operation on this or dependent resource is in progress")
        assert "/providers/Microsoft.Network/locations/eastus/operations/" in error.error.message
        with rules.disabled("one-operation-at-a-time"):
            call()


# --- NSGs -------------------------------------------------------------------------------------------------


def test_in_use_nsg_delete(world):
    world.network()
    call = lambda: world.az.network.network_security_groups.begin_delete("rg", "nsg", polling=False)
    refused(call, 400, "InUseNetworkSecurityGroupCannotBeDeleted", "/subnets/public, ")
    with rules.disabled("in-use-nsg-delete"):
        call()


def _rule(**overrides):
    props = {**OWN_RULES[0]["properties"], **overrides}
    return [{"name": "r", "properties": {k: v for k, v in props.items() if v is not None}}]


@pytest.mark.parametrize(
    ("security_rules", "code", "phrase"),
    [
        (_rule(sourceAddressPrefix=None), "SecurityRuleParametersMissing", "must specify SourceAddressPrefixes, SourceAddressPrefix"),
        (_rule(destinationPortRange="70000"), "SecurityRuleInvalidPortRange", "Value provided: 70000"),
        (_rule(priority=50), "SecurityRuleInvalidPriority", "Allowed range 100-4096"),
        (_rule(protocol="Http"), "SecurityRuleParameterContainsUnsupportedValue", "Protocol"),
        (_rule() + [{**_rule()[0], "name": "r2"}], "SecurityRuleConflict", "cannot have the same Priority and Direction"),
    ],
)
def test_nsg_rule_validation(world, security_rules, code, phrase):
    world.rg()
    body = {"location": "eastus", "properties": {"securityRules": security_rules}}
    call = lambda: world.az.network.network_security_groups.begin_create_or_update("rg", "nsg", body, polling_interval=POLL).result()
    refused(call, 400, code, phrase)
    with rules.disabled("nsg-rule-validation"):
        call()


def test_nsg_keeps_databricks_rules(world):
    _workspace_on_network(world)
    call = lambda: world.nsg(security_rules=OWN_RULES)
    refused(call, 400, "ConflictWithNetworkIntentPolicy", "Network Security Group doesn't have supporting Security Rule")
    with rules.disabled("nsg-keeps-databricks-rules"):
        assert [r["name"] for r in call()["properties"]["securityRules"]] == ["to-aad"]


# --- private endpoints and DNS zone groups ----------------------------------------------------------------


def test_pe_subnet_must_exist(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_pe(world.pe_body(vnet, ws, subnet="ghost")).result()
    refused(call, 400, "InvalidResourceReference", "/subnets/ghost referenced by resource")
    with rules.disabled("pe-subnet-must-exist"):
        call()


def test_pe_reference_provisioned(world, settings):
    vnet, ws = _workspace_on_network(world)
    with delays(settings, azure_resource_seconds=30):
        world.az.network.subnets.begin_create_or_update("rg", "vnet", "fresh", {"properties": {"addressPrefix": "10.1.3.0/24"}}, polling=False)
        call = lambda: world.put_pe(world.pe_body(vnet, ws, subnet="fresh"), polling=False)
        error = refused(call, 429, "RetryableError", "A retryable error occurred.")
        assert error.error.details[0].code == "ReferencedResourceNotProvisioned"
        assert "is not in Succeeded state. Resource is in Updating state" in error.error.details[0].message
        with rules.disabled("pe-reference-provisioned"):
            call()


def test_pe_not_in_delegated_subnet(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_pe(world.pe_body(vnet, ws, subnet="public")).result()
    refused(call, 400, "PrivateEndpointCreationNotAllowedAsSubnetIsDelegated", "cannot be created as subnet")
    with rules.disabled("pe-not-in-delegated-subnet"):
        call()


def test_pe_target_must_exist(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_pe(world.pe_body(vnet, ws["id"] + "-ghost")).result()
    refused(call, 400, "InvalidResourceReference", "workspaces/ws-ghost referenced by resource")
    with rules.disabled("pe-target-must-exist"):
        call()


def test_pe_one_group_id(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_pe(world.pe_body(vnet, ws, group=["databricks_ui_api", "browser_authentication"])).result()
    refused(call, 400, "OnlyOneGroupIdPermitted", "Only one group Id is permitted when connecting to a first-party resource")
    with rules.disabled("pe-one-group-id"):
        call()


def test_pe_group_id_valid(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_pe(world.pe_body(vnet, ws, group="blob")).result()
    refused(call, 400, "PrivateEndpointConnectionProvisioningFailed", "Call to Microsoft.Databricks/workspaces failed. Error message: Invalid groupId")
    with rules.disabled("pe-group-id-valid"):
        call()


def test_pe_workspace_premium(world):
    vnet = world.network()
    ws = world.workspace(vnet, sku="standard")
    call = lambda: world.put_pe(world.pe_body(vnet, ws)).result()
    refused(call, 400, "PrivateEndpointConnectionProvisioningFailed", "premium pricing tier")
    with rules.disabled("pe-workspace-premium"):
        call()


def test_pe_workspace_not_busy(world, settings):
    vnet, ws = _workspace_on_network(world)
    with delays(settings, azure_endpoint_seconds=30):
        world.put_pe(world.pe_body(vnet, ws), "pe1", polling=False)
        call = lambda: world.put_pe(world.pe_body(vnet, ws, group="browser_authentication"), "pe2", polling=False)
        refused(call, 409, "ConcurrentUpdateError", "has been updated by another process")
        with rules.disabled("pe-workspace-not-busy"):
            call()


def test_zone_group_zone_must_exist(world):
    vnet, ws = _workspace_on_network(world)
    world.put_pe(world.pe_body(vnet, ws)).result()
    ghost = world.group_id() + "/providers/Microsoft.Network/privateDnsZones/privatelink.azuredatabricks.net"
    body = {"properties": {"privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": ghost}}]}}
    call = lambda: world.az.network.private_dns_zone_groups.begin_create_or_update("rg", "pe", "default", body, polling_interval=POLL).result()
    refused(call, 400, "InvalidResourceReference", "privateDnsZones/privatelink.azuredatabricks.net referenced by resource")
    with rules.disabled("zone-group-zone-must-exist"):
        call()


# --- private DNS ------------------------------------------------------------------------------------------


def test_dns_zone_location_global(world):
    world.rg()
    call = lambda: world.az.dns.private_zones.begin_create_or_update("rg", "example.internal", {"location": "eastus"}, polling_interval=POLL).result()
    refused(call, 400, "LocationNotAvailableForResourceType", "List of available regions for the resource type is 'global'")
    with rules.disabled("dns-zone-location-global"):
        call()


def _link(world, zone, vnet_id, name="link"):
    body = {"location": "global", "properties": {"virtualNetwork": {"id": vnet_id}, "registrationEnabled": False}}
    return lambda: world.az.dns.virtual_network_links.begin_create_or_update("rg", zone["name"], name, body, polling_interval=POLL).result()


def test_dns_link_vnet_must_exist(world):
    world.rg()
    zone = world.zone()
    call = _link(world, zone, world.group_id() + GHOST)
    refused(call, 400, "BadRequest", "Virtual network resource not found for")
    with rules.disabled("dns-link-vnet-must-exist"):
        call()


def test_dns_link_once_per_vnet(world):
    world.rg()
    zone, vnet = world.zone(), world.vnet()
    world.link(zone, vnet)
    call = _link(world, zone, vnet["id"], "again")
    refused(call, 409, "Conflict", "cannot be linked to the same Private DNS zone more than once")
    with rules.disabled("dns-link-once-per-vnet"):
        call()


def test_dns_link_one_zone_per_namespace(world):
    """The usual hub setup: the VNet already resolves privatelink.azuredatabricks.net from a zone in another group."""
    world.rg()
    world.rg("hub-rg")
    vnet = world.vnet()
    hub_zone = world.zone(rg="hub-rg")
    world.link(hub_zone, vnet, rg="hub-rg")
    zone = world.zone()
    call = _link(world, zone, vnet["id"], "ours")
    refused(call, 400, "BadRequest", "cannot be linked to multiple zones with overlapping namespaces")
    with rules.disabled("dns-link-one-zone-per-namespace"):
        call()


def test_dns_zone_delete_with_links(world):
    world.rg()
    zone, vnet = world.zone(), world.vnet()
    world.link(zone, vnet)
    call = lambda: world.az.dns.private_zones.begin_delete("rg", zone["name"], polling_interval=POLL).result()
    refused(call, 409, "CannotDeleteResource", "privateDnsZones/privatelink.azuredatabricks.net/virtualNetworkLinks/link")
    with rules.disabled("dns-zone-delete-with-links"):
        call()


# --- workspaces -------------------------------------------------------------------------------------------


def test_workspace_needs_compute_mode(world):
    vnet = world.network()
    call = lambda: world.put_workspace(world.workspace_body(vnet, computeMode=None)).result()
    refused(call, 400, "ComputeModeRequired", "'computeMode' property is required")
    with rules.disabled("workspace-needs-compute-mode"):
        assert call().compute_mode == "Hybrid"


def test_workspace_compute_mode_immutable(world):
    vnet, _ = _workspace_on_network(world)
    call = lambda: world.put_workspace(world.workspace_body(vnet, computeMode="Serverless")).result()
    refused(call, 400, "ComputeModeChangeNotAllowed", "Updating computeMode from Hybrid to Serverless is currently not allowed")
    with rules.disabled("workspace-compute-mode-immutable"):
        call()


def test_workspace_vnet_immutable(world):
    vnet, _ = _workspace_on_network(world)
    nsg = world.az.network.network_security_groups.get("rg", "nsg").as_dict()
    other = world.vnet("vnet2", prefix="10.2.0.0/16", subnets=[
        world.subnet("public", "10.2.0.0/24", nsg, delegated=True), world.subnet("private", "10.2.1.0/24", nsg, delegated=True),
    ])
    call = lambda: world.put_workspace(world.workspace_body(other)).result()
    refused(call, 400, "VirtualNetworkIdChangeNotAllowed", f"Updating required Virtual Network from {vnet['id']} to {other['id']}")
    with rules.disabled("workspace-vnet-immutable"):
        call()


def test_workspace_premium_for_nsg_rules(world):
    vnet = world.network()
    call = lambda: world.put_workspace(world.workspace_body(vnet, sku="standard", requiredNsgRules="NoAzureDatabricksRules")).result()
    refused(call, 400, "InvalidSkuForRequiredNsgRules", "premium pricing tier")
    with rules.disabled("workspace-premium-for-nsg-rules"):
        call()


def test_workspace_premium_for_private_access(world):
    vnet = world.network()
    call = lambda: world.put_workspace(world.workspace_body(vnet, sku="standard", publicNetworkAccess="Disabled")).result()
    refused(call, 400, "InvalidSkuForPublicNetworkAccess", "premium pricing tier")
    with rules.disabled("workspace-premium-for-private-access"):
        call()


def test_workspace_vnet_must_exist(world):
    world.rg()
    call = lambda: world.put_workspace(world.workspace_body({"id": world.group_id() + GHOST})).result()
    failed(call, "VirtualNetworkNotFound", "virtualNetworks/ghost' could not be found")
    assert world.az.databricks.workspaces.get("rg", "ws").provisioning_state == "Failed"
    with rules.disabled("workspace-vnet-must-exist"):
        assert call().provisioning_state == "Succeeded"


def test_workspace_subnet_must_exist(world):
    vnet = world.network()
    call = lambda: world.put_workspace(world.workspace_body(vnet, public="pubic")).result()
    failed(call, "SubnetIsNotWithinVnetError", "The subnet pubic CIDR range '<null>' is not within the Virtual Network CIDR range '10.1.0.0/16'")
    with rules.disabled("workspace-subnet-must-exist"):
        assert call().provisioning_state == "Succeeded"


def test_workspace_subnet_delegated(world):
    world.rg()
    nsg = world.nsg()
    vnet = world.vnet(subnets=[world.subnet("public", "10.1.0.0/24", nsg), world.subnet("private", "10.1.1.0/24", nsg)])
    call = lambda: world.put_workspace(world.workspace_body(vnet)).result()
    refused(call, 400, "SubnetMissingRequiredDelegation", "requires any of the following delegation(s) [Microsoft.Databricks/workspaces]")
    with rules.disabled("workspace-subnet-delegated"):
        call()


def test_workspace_subnet_has_nsg(world):
    world.rg()
    vnet = world.vnet(subnets=[world.subnet("public", "10.1.0.0/24", delegated=True), world.subnet("private", "10.1.1.0/24", delegated=True)])
    call = lambda: world.put_workspace(world.workspace_body(vnet)).result()
    refused(call, 400, "SubnetMissingNetworkSecurityGroup", "must have a network security group")
    with rules.disabled("workspace-subnet-has-nsg"):
        call()


def test_workspace_subnet_not_shared(world):
    vnet, ws = _workspace_on_network(world)
    call = lambda: world.put_workspace(world.workspace_body(vnet, managed="rg-managed-2"), "ws2").result()
    refused(call, 400, "SubnetAlreadyInUse", f"is already used by workspace {ws['id']}")
    with rules.disabled("workspace-subnet-not-shared"):
        call()


def test_workspace_managed_rg_must_not_exist(world):
    vnet = world.network()
    world.rg("rg-managed")
    call = lambda: world.put_workspace(world.workspace_body(vnet)).result()
    error = failed(call, "ResourceOperationFailure", "terminal provisioning state 'Failed'")
    assert error.error.details[0].code == "ApplianceProvisioningFailed" and "already exists" in error.error.details[0].message
    with rules.disabled("workspace-managed-rg-must-not-exist"):
        assert call().provisioning_state == "Succeeded"


def test_workspace_one_operation_at_a_time(world, settings):
    vnet = world.network()
    with delays(settings, azure_workspace_provisioning_seconds=30):
        world.put_workspace(world.workspace_body(vnet), polling=False)
        put = lambda: world.put_workspace(world.workspace_body(vnet), polling=False)
        delete = lambda: world.az.databricks.workspaces.begin_delete("rg", "ws", polling=False)
        refused(put, 409, "ConcurrentUpdateError", "has been updated by another process")
        refused(delete, 409, "ConcurrentUpdateError", "has been updated by another process")
        with rules.disabled("workspace-one-operation-at-a-time"):
            put(), delete()


def test_workspace_adds_nsg_rules(world):
    _workspace_on_network(world)
    names = [r["name"] for r in world.az.network.network_security_groups.get("rg", "nsg").as_dict()["properties"]["securityRules"]]
    assert names[0] == "to-aad" and "Microsoft.Databricks-workspaces_UseOnly_databricks-worker-to-worker-inbound" in names
    world.az.databricks.workspaces.begin_delete("rg", "ws", polling_interval=POLL).result()
    world.az.network.network_security_groups.begin_create_or_update("rg", "nsg", {"location": "eastus", "properties": {"securityRules": OWN_RULES}}, polling_interval=POLL).result()
    with rules.disabled("workspace-adds-nsg-rules"):
        world.workspace(world.az.network.virtual_networks.get("rg", "vnet").as_dict())
    assert [r["name"] for r in world.az.network.network_security_groups.get("rg", "nsg").as_dict()["properties"]["securityRules"]] == ["to-aad"]
