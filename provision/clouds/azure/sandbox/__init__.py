"""Local emulator of Azure Resource Manager for `provision --sandbox`, reached by the real azure-mgmt SDK
clients (azure-mgmt-resource, -network, -privatedns, -databricks) over HTTP on 127.0.0.1.

It serves what a Databricks-on-Azure deployment touches: resource groups and the generic resource listings
(resources.py), VNets, subnets and NICs (network.py), NSGs (nsg.py), private endpoints and their DNS zone
groups (endpoints.py), private DNS zones, VNet links and record sets (dns.py), and Microsoft.Databricks
workspaces with their managed resource groups (workspaces.py). arm.py routes, authenticates (Bearer
settings.azure_token), checks the subscription and api-version, and renders ARM's error shape and headers;
lro.py runs ARM's long-running operation protocol (201/200 + Azure-AsyncOperation, 202 + Location,
Retry-After, status resources), with every transition computed from time on read, like the Databricks
emulator. The refusals a lenient fake would skip are named in rules.py, which tests can switch off.

All state is in one lock-protected store (store.py), keyed by lower-cased ARM id: ids keep the request's
casing and lookups ignore it, as ARM's do. `inventory()` dumps it by kind, shaped as GETs answer, and
`listing.list_via_api(clients)` reads the same through the SDKs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provision.clouds.azure.sandbox import (
    arm,
    endpoints,
    lro,
    network,
    nsg,
    rules,
    subnets,
    workspaces,
)
from provision.clouds.azure.sandbox.store import KINDS, STORE, ArmError, now, public
from provision.sandbox.settings import SandboxSettings


def make_azure_app(settings: SandboxSettings) -> Callable:
    """A WSGI app emulating ARM; settings are read at request time (`app.sandbox_settings`)."""
    return arm.make_app(settings)


def reset() -> None:
    """Forget every emulated resource and operation."""
    STORE.clear()


def inventory(settings: SandboxSettings | Any = None) -> dict[str, list[dict]]:
    """Every resource by kind (store.KINDS), ARM-shaped as a GET returns it after the due transitions, in
    the order listing.list_via_api reads them. `settings` (or an app) is accepted for symmetry with the
    Databricks emulator; transitions depend on time only."""
    from provision.clouds.azure.sandbox import dns

    with STORE.lock:
        lro.advance(now())
        out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for group in STORE.of_kind("resource_groups"):
            out["resource_groups"].append(public(group))
            members = STORE.in_group(group["id"].split("/")[2], group["name"])
            of = {kind: [m for m in members if m["_kind"] == kind] for kind in KINDS}
            for vnet in of["virtual_networks"]:
                out["virtual_networks"].append(network.render_vnet(vnet))
                out["subnets"] += [subnets.render_subnet(s) for s in subnets.subnets_of(vnet)]
            out["network_security_groups"] += [nsg.render(n) for n in of["network_security_groups"]]
            for pe in of["private_endpoints"]:
                out["private_endpoints"].append(public(pe))
                out["private_dns_zone_groups"] += [endpoints.render_group(g) for g in STORE.children(pe["id"], "private_dns_zone_groups")]
            for zone in of["private_dns_zones"]:
                out["private_dns_zones"].append(dns.render_zone(zone))
                out["virtual_network_links"] += [public(link) for link in dns.links_of(zone)]
            out["workspaces"] += [workspaces.render(w) for w in of["workspaces"]]
        return out


__all__ = ["KINDS", "STORE", "ArmError", "inventory", "make_azure_app", "reset", "rules"]
