"""Every ARM emulator resource by kind, read only through the real azure-mgmt clients' list operations (the
ground truth tests and the crash matrix compare with): the subscription's resource groups, then in each
group its VNets (and each VNet's subnets), NSGs, private endpoints (and each one's DNS zone groups), private
DNS zones (and each zone's virtual network links) and Databricks workspaces. A group deleted while it is
being read is skipped. Nothing here touches the emulator's internals, so it works as well against real ARM.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.azure.sandbox.store import KINDS


def list_via_api(clients: Any) -> dict[str, list[dict]]:
    """{kind: [ARM JSON, ...]} for every kind in store.KINDS, in ARM's listing order."""
    from azure.core.exceptions import ResourceNotFoundError

    out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for group in clients.resource.resource_groups.list():
        rg = group.as_dict()
        found: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        try:
            for vnet in clients.network.virtual_networks.list(rg["name"]):
                found["virtual_networks"].append(vnet.as_dict())
                found["subnets"] += [s.as_dict() for s in clients.network.subnets.list(rg["name"], vnet.name)]
            found["network_security_groups"] = [n.as_dict() for n in clients.network.network_security_groups.list(rg["name"])]
            for pe in clients.network.private_endpoints.list(rg["name"]):
                found["private_endpoints"].append(pe.as_dict())
                found["private_dns_zone_groups"] += [
                    g.as_dict() for g in clients.network.private_dns_zone_groups.list(pe.name, rg["name"])
                ]
            for zone in clients.dns.private_zones.list_by_resource_group(rg["name"]):
                found["private_dns_zones"].append(zone.as_dict())
                found["virtual_network_links"] += [
                    link.as_dict() for link in clients.dns.virtual_network_links.list(rg["name"], zone.name)
                ]
            found["workspaces"] = [w.as_dict() for w in clients.databricks.workspaces.list_by_resource_group(rg["name"])]
        except ResourceNotFoundError:
            continue  # the group went while it was being read
        out["resource_groups"].append(rg)
        for kind, items in found.items():
            out[kind] += items
    return out
