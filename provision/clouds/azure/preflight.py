"""Preflight for Azure: credentials first, then what the spec names or implies as existing, with reads only,
before anything is created. Every problem names its spec field and is reported at once (exit 2).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from provision.clouds.azure import context as az
from provision.clouds.azure.errors import is_not_found
from provision.clouds.azure.spec import LARGEST_ENDPOINT_SUBNET_PREFIX, LARGEST_SUBNET_PREFIX
from provision.clouds.azure.steps.network import DATABRICKS_DELEGATION
from provision.clouds.azure.steps.privatelink import PRIVATE_DNS_ZONE
from provision.errors import FieldProblem, PreflightError
from provision.orchestrator.step import TAG_DEPLOYMENT
from provision.spec import Spec

Call = Callable[[Callable[[], Any], str], Any]


def _read(call: Call, fn: Callable[[], Any], what: str) -> dict[str, Any] | None:
    def read() -> dict[str, Any] | None:
        try:
            return az.as_json(fn())
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise

    return call(read, what)


def check(spec: Spec, clients: Any, source: str, call: Call) -> None:
    arm = clients["azure"]
    arm.check_credentials()  # a CredentialsError says how to sign in
    a = spec.azure
    problems: list[FieldProblem] = []

    group = _read(call, lambda: arm.resource.resource_groups.get(a.resource_group), "preflight resource group")
    if group is None and a.resource_group_exists:
        problems.append(FieldProblem("azure.resource_group", f"resource group {a.resource_group} does not exist in subscription {a.subscription_id}"))
    if group is not None:
        location = str(group.get("location") or "").replace(" ", "").lower()
        if location != spec.region:
            problems.append(FieldProblem(
                "azure.resource_group", f"resource group {a.resource_group} is in {location}, not azure.location {spec.region}: "
                "Azure Databricks needs the workspace, its VNet and its group in one location",
            ))
        owner = (group.get("tags") or {}).get(TAG_DEPLOYMENT)
        if not a.resource_group_exists and owner != spec.name:
            problems.append(FieldProblem(
                "azure.resource_group", f"resource group {a.resource_group} already exists and is not this deployment's; "
                "set azure.resource_group_exists = true to build in it (it is then never deleted), or choose another name",
            ))

    managed = _read(call, lambda: arm.resource.resource_groups.get(a.workspace.managed_resource_group), "preflight managed resource group")
    workspace_id = az.resource_id(a.subscription_id, a.resource_group, "Microsoft.Databricks/workspaces", a.workspace.name)
    if managed is not None and str(managed.get("managedBy") or "").lower() != workspace_id.lower():
        problems.append(FieldProblem(
            "azure.workspace.managed_resource_group",
            f"resource group {a.workspace.managed_resource_group} already exists; Azure Databricks creates the managed resource group itself: name one that does not exist",
        ))

    own_zone = az.resource_id(a.subscription_id, a.resource_group, "Microsoft.Network/privateDnsZones", PRIVATE_DNS_ZONE)
    zone = _read(call, lambda: arm.dns.private_zones.get(a.resource_group, PRIVATE_DNS_ZONE), "preflight private DNS zone")
    zone_owner = (zone or {}).get("tags", {}).get(TAG_DEPLOYMENT) if zone else None
    if zone is not None and zone_owner != spec.name:
        whose = f"deployment {zone_owner!r}" if zone_owner else "no provision deployment"
        problems.append(FieldProblem(
            "azure.resource_group", f"resource group {a.resource_group} already holds the private DNS zone {PRIVATE_DNS_ZONE} "
            f"(it belongs to {whose}) and a group holds one zone of a name: deploy into another resource group",
        ))

    if a.network.existing:
        problems += _existing_vnet(spec, arm, call, workspace_id)
        problems += _linked_elsewhere(arm, call, a.network.existing_vnet_id or "", own_zone)
    if problems:
        raise PreflightError(source, problems)


def _existing_vnet(spec: Spec, arm: Any, call: Call, workspace_id: str) -> list[FieldProblem]:
    net = spec.azure.network
    assert net.existing_vnet_id is not None
    parts = az.parse_id(net.existing_vnet_id)
    group, name = parts["resourcegroups"], parts["virtualnetworks"]
    vnet = _read(call, lambda: arm.network.virtual_networks.get(group, name), "preflight vnet")
    if vnet is None:
        return [FieldProblem("azure.network.existing_vnet_id", f"VNet {name} not found in resource group {group}")]
    problems = []
    if str(vnet.get("location") or "").lower() != spec.region:
        problems.append(FieldProblem("azure.network.existing_vnet_id", f"VNet {name} is in {vnet.get('location')}, not azure.location {spec.region}"))
    spaces = [ipaddress.ip_network(p) for p in (az.props(vnet).get("addressSpace") or {}).get("addressPrefixes") or []]
    subnets = {s.get("name", "").lower(): s for s in az.props(vnet).get("subnets") or []}
    used = _subnets_in_use(arm, call, workspace_id, net.existing_vnet_id)
    for key, subnet_name, delegated in (
        ("host_subnet", net.host_subnet, True), ("container_subnet", net.container_subnet, True), ("endpoint_subnet", net.endpoint_subnet, False),
    ):
        where = f"azure.network.{key}"
        assert subnet_name is not None
        subnet = subnets.get(subnet_name.lower())
        if subnet is None:
            problems.append(FieldProblem(where, f"subnet {subnet_name} not found in VNet {name}"))
            continue
        p = az.props(subnet)
        prefix = p.get("addressPrefix") or (p.get("addressPrefixes") or [None])[0]
        block = ipaddress.ip_network(prefix) if prefix else None
        if block is None or not any(block.subnet_of(space) for space in spaces if space.version == block.version):
            problems.append(FieldProblem(where, f"subnet {subnet_name} ({prefix}) is not inside the VNet's address space"))
        elif delegated and block.prefixlen > LARGEST_SUBNET_PREFIX:
            problems.append(FieldProblem(where, f"subnet {subnet_name} is a /{block.prefixlen}; Azure Databricks needs /{LARGEST_SUBNET_PREFIX} or larger"))
        elif block.prefixlen > LARGEST_ENDPOINT_SUBNET_PREFIX:
            problems.append(FieldProblem(where, f"subnet {subnet_name} is a /{block.prefixlen}; the endpoints need /{LARGEST_ENDPOINT_SUBNET_PREFIX} or larger"))
        services = {(d.get("properties") or {}).get("serviceName") for d in p.get("delegations") or []}
        if delegated:
            if DATABRICKS_DELEGATION not in services:
                problems.append(FieldProblem(where, f"subnet {subnet_name} is not delegated to {DATABRICKS_DELEGATION}"))
            if not (p.get("networkSecurityGroup") or {}).get("id"):
                problems.append(FieldProblem(where, f"subnet {subnet_name} has no network security group associated"))
            user = used.get(subnet_name.lower())
            if user:
                problems.append(FieldProblem(where, f"subnet {subnet_name} is already used by workspace {user}"))
        elif services:
            problems.append(FieldProblem(where, f"subnet {subnet_name} is delegated to {', '.join(sorted(s for s in services if s))}; private endpoints need an undelegated subnet"))
    return problems


def _subnets_in_use(arm: Any, call: Call, workspace_id: str, vnet_id: str) -> dict[str, str]:
    """Subnet name (lowercased) -> the other workspace injected into it, for the spec's VNet."""
    def read() -> list[dict[str, Any]]:
        return [az.as_json(w) for w in arm.databricks.workspaces.list_by_subscription()]

    used: dict[str, str] = {}
    for ws in call(read, "preflight workspaces"):
        if str(ws.get("id", "")).lower() == workspace_id.lower():
            continue
        params = az.props(ws).get("parameters") or {}
        if str((params.get("customVirtualNetworkId") or {}).get("value") or "").lower() != vnet_id.lower():
            continue
        for key in ("customPublicSubnetName", "customPrivateSubnetName"):
            value = (params.get(key) or {}).get("value")
            if value:
                used[value.lower()] = ws.get("name", "")
    return used


def _linked_elsewhere(arm: Any, call: Call, vnet_id: str, own_zone: str) -> list[FieldProblem]:
    """A VNet resolves a namespace from one zone: one already linked to another privatelink.azuredatabricks.net
    zone (the usual hub DNS) cannot be linked to ours, and ARM would refuse it halfway through the run."""
    zones = call(lambda: [az.as_json(z) for z in arm.dns.private_zones.list()], "preflight private DNS zones")
    for zone in zones:
        if zone.get("name", "").lower() != PRIVATE_DNS_ZONE or zone.get("id", "").lower() == own_zone.lower():
            continue
        group = az.parse_id(zone["id"])["resourcegroups"]
        links = call(lambda: [az.as_json(link) for link in arm.dns.virtual_network_links.list(group, PRIVATE_DNS_ZONE)], "preflight zone links")
        if any(str((az.props(link).get("virtualNetwork") or {}).get("id", "")).lower() == vnet_id.lower() for link in links):
            return [FieldProblem(
                "azure.network.existing_vnet_id",
                f"the VNet is already linked to the private DNS zone {zone['id']}; Azure links a VNet to one zone of a name, "
                "so this deployment cannot link its own: unlink it, or deploy the endpoint's records into that zone yourself",
            )]
    return []
