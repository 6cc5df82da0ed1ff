"""Subnets as the network resource provider validates and shows them, and who holds one.

- Prefixes: not CIDR -> InvalidAddressPrefixFormat ("Address prefix <p> of resource <id> is not formatted
  correctly. It should follow CIDR notation, for example 10.0.0.0/24.", Azure/azure-service-operator#997,
  Azure/avdaccelerator#83); host bits set -> InvalidCIDRNotation (wording recalled, not found in the search
  corpus); outside the VNet -> NetcfgSubnetRangeOutsideVnet, overlapping -> NetcfgSubnetRangesOverlap (both
  worded as MicrosoftDocs/azure-docs PR #123869 quotes them); smaller than /29 -> NetcfgInvalidSubnet (the
  generic "Subnet '<n>' is not valid in virtual network '<v>'.", Azure/azure-cli#28097, #10917).
- A missing NSG reference -> InvalidResourceReference; an unknown delegation service ->
  InvalidServiceNameOnDelegation (crossplane-contrib/provider-upjet-azure#342); changing the delegations of a
  used subnet -> SubnetDelegationsCannotChangeWhenSubnetUsedByResource (MicrosoftDocs/azure-docs#39112);
  removing the NSG from a subnet a workspace's network intent policy holds ->
  NetworkSecurityGroupCannotBeRemovedDueToNipOnSubnet ("Network security group cannot be removed from subnet
  <id> because it has network intent policy <nip> applied.", hashicorp/terraform-provider-azurerm#11158).
- A subnet in use (a private endpoint's NIC, a workspace's network intent policy) cannot be deleted:
  InUseSubnetCannotBeDeleted ("Subnet <name> is in use by <id> and cannot be deleted. In order to delete the
  subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.", Azure/azure-cli#10014,
  Azure-Samples/Copilot-Studio-with-Azure-AI-Search#99).
A subnet's ipConfigurations and privateEndpoints are computed from the NICs in it; other holders (workspaces)
register in SUBNET_CLAIMS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    bad_request,
    etag,
    id_of,
    invalid_reference,
    public,
    same,
)

VALID_DELEGATIONS = (
    "Microsoft.Databricks/workspaces", "Microsoft.Web/serverFarms", "Microsoft.Web/hostingEnvironments",
    "Microsoft.ContainerInstance/containerGroups", "Microsoft.Sql/managedInstances", "Microsoft.Netapp/volumes",
    "Microsoft.DBforPostgreSQL/flexibleServers", "Microsoft.DBforMySQL/flexibleServers", "Microsoft.App/environments",
    "Microsoft.Network/dnsResolvers", "Microsoft.Batch/batchAccounts", "Microsoft.Logic/integrationServiceEnvironments",
    "Microsoft.ApiManagement/service", "Microsoft.Kusto/clusters", "Microsoft.PowerPlatform/vnetaccesslinks",
)
DELEGATION_ACTIONS = {
    "microsoft.databricks/workspaces": [
        "Microsoft.Network/virtualNetworks/subnets/join/action",
        "Microsoft.Network/virtualNetworks/subnets/prepareNetworkPolicies/action",
        "Microsoft.Network/virtualNetworks/subnets/unprepareNetworkPolicies/action",
    ],
}
# Who else holds a subnet: each returns [(user record id, the id ARM names in its messages)].
SUBNET_CLAIMS: list[Callable[[dict], list[tuple[str, str]]]] = []


def subnets_of(vnet: dict) -> list[dict]:
    return [s for s in STORE.children(vnet["id"], "subnets")]


def nics_in(subnet: dict) -> list[dict]:
    return [n for n in STORE.of_kind("network_interfaces") if same(n["_subnet"], subnet["id"])]


def claims(subnet: dict) -> list[tuple[str, str]]:
    found = [(nic["id"], nic["properties"]["ipConfigurations"][0]["id"]) for nic in nics_in(subnet)]
    for claim in SUBNET_CLAIMS:
        found += claim(subnet)
    return found


def in_use(subnet: dict) -> None:
    users = claims(subnet)
    if users and rules.enforced("in-use-subnet-delete"):
        raise bad_request(
            "InUseSubnetCannotBeDeleted",
            f"Subnet {subnet['name']} is in use by {users[0][1]} and cannot be deleted. In order to delete the "
            "subnet, delete all the resources within the subnet. See aka.ms/deletesubnet.",
        )


def render_subnet(subnet: dict) -> dict:
    out = public(subnet)
    nics = nics_in(subnet)
    if nics:
        out["properties"]["ipConfigurations"] = [{"id": n["properties"]["ipConfigurations"][0]["id"]} for n in nics]
        out["properties"]["privateEndpoints"] = [{"id": n["properties"]["privateEndpoint"]["id"]} for n in nics]
    return out


def to_network(prefix: Any, owner_id: str, check_host_bits: bool = True) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        net = ipaddress.ip_network(prefix, strict=False) if isinstance(prefix, str) and "/" in prefix else None
    except ValueError:
        net = None
    if net is None:
        if rules.enforced("address-prefix-format"):
            raise bad_request(
                "InvalidAddressPrefixFormat",
                f"Address prefix {prefix} of resource {owner_id} is not formatted correctly. It should follow CIDR "
                "notation, for example 10.0.0.0/24.",
            )
        return ipaddress.ip_network("0.0.0.0/32")
    if check_host_bits and str(net) != prefix.strip() and rules.enforced("address-prefix-host-bits"):
        raise bad_request(
            "InvalidCIDRNotation",
            f"The address prefix {prefix} in resource {owner_id} has an invalid CIDR notation. For the given prefix "
            f"length, the address prefix should be {net}.",
        )
    return net


def subnet_networks(props: dict) -> list:
    prefixes = props.get("addressPrefixes") or ([props["addressPrefix"]] if props.get("addressPrefix") else [])
    out = []
    for p in prefixes:
        try:
            out.append(ipaddress.ip_network(p, strict=False))
        except ValueError:
            pass
    return out


def _delegations(subnet_id: str, given: Any) -> list[dict]:
    out = []
    for d in given or []:
        service = ((d or {}).get("properties") or {}).get("serviceName") or ""
        valid = next((v for v in VALID_DELEGATIONS if same(v, service)), None)
        if valid is None and rules.enforced("delegation-service-name"):
            raise bad_request(
                "InvalidServiceNameOnDelegation",
                f"The service name {service} specified on delegation {subnet_id}/delegations/{d.get('name', '')} is not "
                f"valid. Valid value(s) are: {','.join(VALID_DELEGATIONS)}.",
            )
        name = d.get("name") or service.replace("/", ".")
        out.append({
            "name": name,
            "id": f"{subnet_id}/delegations/{name}",
            "etag": etag(),
            "type": "Microsoft.Network/virtualNetworks/subnets/delegations",
            "properties": {
                "provisioningState": "Succeeded",
                "serviceName": valid or service,
                "actions": list(DELEGATION_ACTIONS.get(service.lower(), [])),
            },
        })
    return out


def subnet_props(ctx: Any, vnet: dict, space: list, name: str, given: dict, siblings: list, existing: dict | None) -> dict:
    """Validate one subnet (against the VNet's space and its siblings' [(name, networks)]) and shape it."""
    sid = f"{vnet['id']}/subnets/{name}"
    given = given if isinstance(given, dict) else {}
    props: dict[str, Any] = {}
    if given.get("addressPrefixes"):
        props["addressPrefixes"] = list(given["addressPrefixes"])
    elif given.get("addressPrefix"):
        props["addressPrefix"] = given["addressPrefix"]
    else:
        raise bad_request("NoAddressPrefixOrPoolProvided", f"Subnet {sid} has no address prefix or IPAM pool specified.")
    nets = [to_network(p, sid) for p in props.get("addressPrefixes") or [props.get("addressPrefix")]]
    for net in nets:
        if not any(net.version == s.version and net.subnet_of(s) for s in space) and rules.enforced("subnet-inside-vnet"):
            raise bad_request(
                "NetcfgSubnetRangeOutsideVnet",
                f"Subnet '{name}' is not valid because its IP address range is outside the IP address range of virtual network '{vnet['name']}'.",
            )
        if net.version == 4 and net.prefixlen > 29 and rules.enforced("subnet-minimum-size"):
            raise bad_request("NetcfgInvalidSubnet", f"Subnet '{name}' is not valid in virtual network '{vnet['name']}'.")
        if any(net.overlaps(o) for _, others in siblings for o in others) and rules.enforced("subnets-no-overlap"):
            raise bad_request(
                "NetcfgSubnetRangesOverlap",
                f"Subnet '{name}' is not valid because its IP address range overlaps with that of an existing subnet "
                f"in virtual network '{vnet['name']}'.",
            )
    nsg_ref = id_of(given.get("networkSecurityGroup"))
    if nsg_ref:
        nsg = STORE.get(nsg_ref)
        if (nsg is None or nsg["_kind"] != "network_security_groups") and rules.enforced("subnet-nsg-must-exist"):
            raise invalid_reference(nsg_ref, sid)
        props["networkSecurityGroup"] = {"id": nsg["id"] if nsg else nsg_ref}
    props["delegations"] = _delegations(sid, given.get("delegations"))
    for key, default in (("privateEndpointNetworkPolicies", "Disabled"), ("privateLinkServiceNetworkPolicies", "Enabled")):
        props[key] = given.get(key) or default
    for key in ("routeTable", "natGateway", "serviceEndpoints", "defaultOutboundAccess"):
        if key in given:
            props[key] = given[key]
    if existing is not None:
        _check_used_subnet_change(existing, props)
    return props


def _check_used_subnet_change(existing: dict, props: dict) -> None:
    users = claims(existing)
    if not users:
        return
    before = sorted(d["properties"]["serviceName"] for d in existing["properties"].get("delegations") or [])
    after = sorted(d["properties"]["serviceName"] for d in props["delegations"])
    if [b.lower() for b in before] != [a.lower() for a in after] and rules.enforced("delegation-change-in-use"):
        raise bad_request(
            "SubnetDelegationsCannotChangeWhenSubnetUsedByResource",
            f"Delegations of subnet {existing['id']} cannot be changed from [{','.join(before)}] to "
            f"[{','.join(after)}] because it is being used by the resource {users[0][1]}.",
        )
    nips = [shown for user, shown in users if "/networkIntentPolicies/" in shown]
    removed = existing["properties"].get("networkSecurityGroup") and not props.get("networkSecurityGroup")
    if removed and nips and rules.enforced("nsg-removal-blocked-by-nip"):
        raise bad_request(
            "NetworkSecurityGroupCannotBeRemovedDueToNipOnSubnet",
            f"Network security group cannot be removed from subnet {existing['id']} because it has network "
            f"intent policy {nips[0]} applied.",
        )


def address_space(vnet_id_: str, body: dict) -> list:
    prefixes = ((body.get("properties") or {}).get("addressSpace") or {}).get("addressPrefixes")
    if not isinstance(prefixes, list) or not prefixes:
        raise bad_request("InvalidAddressSpace", f"Virtual network {vnet_id_} must have at least one address prefix in its address space.")
    return [to_network(p, vnet_id_) for p in prefixes]


def allocate_ip(subnet: dict) -> str:
    """The lowest free address after Azure's five reserved ones (network, gateway, two DNS, broadcast)."""
    used = {n["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"] for n in nics_in(subnet)}
    for net in subnet_networks(subnet["properties"]):
        for i, host in enumerate(net.hosts()):
            if i >= 3 and str(host) not in used:
                return str(host)
    raise bad_request("SubnetIsFull", f"Subnet {subnet['name']} with address prefix {subnet['properties'].get('addressPrefix')} does not have enough capacity for 1 IP addresses.")
