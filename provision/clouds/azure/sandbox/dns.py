"""Microsoft.Network/privateDnsZones: zones, virtual network links and (read-only) record sets.

- Zones are global: any other location is 400 LocationNotAvailableForResourceType ("The provided location
  '<x>' is not available for resource type 'Microsoft.Network/privateDnsZones'. List of available regions
  for the resource type is 'global'."). A zone shows its counts and limits (numberOfRecordSets,
  maxNumberOfVirtualNetworkLinks... as `az network private-dns zone show` prints them, Azure/azure-cli
  #15010); PUT answers 201/200 with provisioningState Creating/Updating.
- A zone with virtual network links cannot be deleted: 409 CannotDeleteResource ("Cannot delete resource
  while nested resources exist. Some existing nested resource IDs include: 'Microsoft.Network/
  privateDnsZones/<z>/virtualNetworkLinks/<l>'. Please delete all nested resources before deleting this
  resource.", learntocloud/networking-lab#8, DefangLabs/pulumi-defang#245).
- A link to a VNet that does not exist: 400 BadRequest ("Virtual network resource not found for '<id>'",
  Azure/azure-cli#23351). A VNet links to a zone once (MicrosoftDocs/azure-docs#103051: "You can create only
  one link between a private DNS zone and a virtual network"): 409 Conflict (code not found publicly). A link
  shows registrationEnabled and virtualNetworkLinkState InProgress -> Completed.
- Missing zones and links: ARM's ResourceNotFound with the nested type path ("The Resource
  'Microsoft.Network/privateDnsZones/<z>/virtualNetworkLinks/<l>' under resource group ...",
  Azure/terraform-provider-azapi#649).
- Record sets: the SOA at "@" and the A records private endpoint DNS zone groups keep (endpoints.py),
  listed by GET .../<zone>/A and .../<zone>/ALL, one by GET .../<zone>/A/<name>.
"""

from __future__ import annotations

from typing import Any

import provision.clouds.azure.sandbox.endpoints as endpoints  # noqa: PLR0402
import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    ArmError,
    bad_request,
    id_of,
    new_guid,
    provider_id,
    public,
    resource_not_found,
    same,
    state_of,
)

NS = "Microsoft.Network"
TYPE = "Microsoft.Network/privateDnsZones"


def zone_id(sub: str, rg: str, name: str) -> str:
    return provider_id(sub, rg, NS, "privateDnsZones", name)


def links_of(zone: dict) -> list[dict]:
    return STORE.children(zone["id"], "virtual_network_links")


def render_zone(zone: dict) -> dict:
    out = public(zone)
    links = links_of(zone)
    out["properties"].update({
        "numberOfRecordSets": 1 + len(endpoints.zone_records(zone)),
        "numberOfVirtualNetworkLinks": len(links),
        "numberOfVirtualNetworkLinksWithRegistration": sum(1 for link in links if link["properties"]["registrationEnabled"]),
    })
    return out


def _global(body: dict, type_name: str) -> str:
    location = resources.location_of(body.get("location")) or "global"
    if location != "global" and rules.enforced("dns-zone-location-global"):
        raise bad_request(
            "LocationNotAvailableForResourceType",
            f"The provided location '{location}' is not available for resource type '{type_name}'. List of available "
            "regions for the resource type is 'global'.",
        )
    return "global"


def _put_zone(ctx: Any) -> tuple[int, Any, dict]:
    rg, name, body = ctx.args["rg"], ctx.args["zone"], ctx.body()
    resources.group(ctx, rg, write=True)
    location = _global(body, TYPE)
    rid = zone_id(ctx.sub, rg, name)
    existing = STORE.get(rid)
    zone = existing or STORE.add({"id": rid, "name": name, "type": TYPE, "_kind": "private_dns_zones"})
    zone.update({"location": location, "etag": new_guid()})
    if body.get("tags"):
        zone["tags"] = dict(body["tags"])
    else:
        zone.pop("tags", None)
    zone["properties"] = {
        "maxNumberOfRecordSets": 25000,
        "maxNumberOfVirtualNetworkLinks": 1000,
        "maxNumberOfVirtualNetworkLinksWithRegistration": 100,
        "provisioningState": "Updating" if existing else "Creating",
        "internalId": (existing or {}).get("properties", {}).get("internalId") or new_guid(),
    }
    op = lro.schedule(zone, ctx.at, ctx.delay("azure_resource_seconds", rid), "Succeeded", ns=NS, location="global")
    return lro.reply_put(ctx, render_zone(zone), op, existing is None, with_location=True)


def _zone(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "PUT":
        return _put_zone(ctx)
    rg, name = ctx.args["rg"], ctx.args["zone"]
    reply, zone = resources.read_or_gone(ctx, rg, zone_id(ctx.sub, rg, name), f"{TYPE}/{name}", render_zone)
    if reply is not None:
        return reply
    links = links_of(zone)
    if links and rules.enforced("dns-zone-delete-with-links"):
        raise ArmError(
            409,
            "CannotDeleteResource",
            "Cannot delete resource while nested resources exist. Some existing nested resource IDs include: "
            f"'{TYPE}/{zone['name']}/virtualNetworkLinks/{links[0]['name']}'. Please delete all nested resources "
            "before deleting this resource.",
        )
    op = lro.schedule(zone, ctx.at, ctx.delay("azure_resource_seconds", zone["id"]), "deleted", ns=NS, location="global")
    zone["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _finish_zone_delete(zone: dict, op: dict | None) -> None:
    for link in links_of(zone):
        STORE.remove(link["id"])
    STORE.remove(zone["id"])


def _zone_list(ctx: Any) -> tuple[int, Any, dict]:
    return resources.list_kind(ctx, "private_dns_zones", render_zone)


def _parent_zone(ctx: Any) -> dict:
    rg, name = ctx.args["rg"], ctx.args["zone"]
    resources.group(ctx, rg, write=ctx.method == "PUT")
    zone = STORE.get(zone_id(ctx.sub, rg, name))
    if zone is None:
        raise resource_not_found(f"{TYPE}/{name}", rg)
    return zone


def _put_link(ctx: Any, zone: dict, link: dict | None) -> tuple[int, Any, dict]:
    body = ctx.body()
    location = _global(body, f"{TYPE}/virtualNetworkLinks")
    props = body.get("properties") or {}
    vnet_ref = id_of(props.get("virtualNetwork")) or ""
    vnet = STORE.get(vnet_ref)
    if (vnet is None or vnet["_kind"] != "virtual_networks") and rules.enforced("dns-link-vnet-must-exist"):
        raise bad_request("BadRequest", f"Virtual network resource not found for '{vnet_ref}'")
    lid = f"{zone['id']}/virtualNetworkLinks/{ctx.args['link']}"
    twin = next((k for k in links_of(zone) if same(k["properties"]["virtualNetwork"]["id"], vnet_ref) and not same(k["id"], lid)), None)
    if twin is not None and rules.enforced("dns-link-once-per-vnet"):
        raise ArmError(
            409,
            "Conflict",
            f"A virtual network cannot be linked to the same Private DNS zone more than once. Virtual network "
            f"'{vnet_ref}' is already linked to zone '{zone['name']}' by link '{twin['name']}'.",
        )
    # A VNet resolves each namespace from one zone only: a second zone of the same name (in another group) is refused.
    overlapping = next(
        (z for z in STORE.of_kind("private_dns_zones") if same(z["name"], zone["name"]) and not same(z["id"], zone["id"])
         and any(same(k["properties"]["virtualNetwork"]["id"], vnet_ref) for k in links_of(z))),
        None,
    )
    if overlapping is not None and rules.enforced("dns-link-one-zone-per-namespace"):
        raise bad_request(
            "BadRequest",
            f"A virtual network cannot be linked to multiple zones with overlapping namespaces. You tried to link virtual "
            f"network with '{zone['name']}' and '{overlapping['name']}' zones.",
        )
    created = link is None
    link = link or STORE.add({"id": lid, "name": ctx.args["link"], "type": f"{TYPE}/virtualNetworkLinks", "_kind": "virtual_network_links"})
    link.update({"location": location, "etag": new_guid()})
    if body.get("tags"):
        link["tags"] = dict(body["tags"])
    else:
        link.pop("tags", None)
    link["properties"] = {
        "virtualNetwork": {"id": vnet["id"] if vnet else vnet_ref},
        "registrationEnabled": bool(props.get("registrationEnabled", False)),
        "resolutionPolicy": props.get("resolutionPolicy") or "Default",
        "virtualNetworkLinkState": "InProgress",
        "provisioningState": "Creating" if created else "Updating",
    }
    op = lro.schedule(link, ctx.at, ctx.delay("azure_resource_seconds", lid), "Succeeded", ns=NS, location="global")
    return lro.reply_put(ctx, public(link), op, created, with_location=True)


def _link(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "DELETE" and STORE.get(zone_id(ctx.sub, ctx.args["rg"], ctx.args["zone"])) is None:
        resources.group(ctx, ctx.args["rg"])
        return 204, None, {}
    zone = _parent_zone(ctx)
    lid = f"{zone['id']}/virtualNetworkLinks/{ctx.args['link']}"
    link = STORE.get(lid)
    if ctx.method == "PUT":
        return _put_link(ctx, zone, link)
    if ctx.method == "GET":
        if link is None:
            raise resource_not_found(f"{TYPE}/{zone['name']}/virtualNetworkLinks/{ctx.args['link']}", ctx.args["rg"])
        return 200, public(link), {}
    if link is None:
        return 204, None, {}
    op = lro.schedule(link, ctx.at, ctx.delay("azure_resource_seconds", lid), "deleted", ns=NS, location="global")
    link["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _settle_link(link: dict) -> None:
    if state_of(link) == "Succeeded":
        link["properties"]["virtualNetworkLinkState"] = "Completed"


def _link_list(ctx: Any) -> tuple[int, Any, dict]:
    return 200, {"value": [public(k) for k in links_of(_parent_zone(ctx))]}, {}


def _record(zone: dict, rtype: str, name: str, properties: dict) -> dict:
    return {
        "id": f"{zone['id']}/{rtype}/{name}",
        "name": name,
        "type": f"{TYPE}/{rtype}",
        "etag": zone["properties"]["internalId"],
        "properties": {"ttl": properties.pop("ttl"), "fqdn": f"{zone['name']}." if name == "@" else f"{name}.{zone['name']}.", "isAutoRegistered": False, **properties},
    }


def record_sets(zone: dict) -> list[dict]:
    soa = _record(zone, "SOA", "@", {"ttl": 3600, "soaRecord": {
        "email": "azureprivatedns-host.microsoft.com", "expireTime": 2419200, "host": "azureprivatedns.net",
        "minimumTtl": 10, "refreshTime": 3600, "retryTime": 300, "serialNumber": 1,
    }})
    by_name: dict[str, list[str]] = {}
    for rs in endpoints.zone_records(zone):
        by_name.setdefault(rs["recordSetName"], []).extend(rs["ipAddresses"])
    a_records = [_record(zone, "A", name, {"ttl": 10, "aRecords": [{"ipv4Address": ip} for ip in ips]}) for name, ips in by_name.items()]
    return [soa, *a_records]


def _records(ctx: Any) -> tuple[int, Any, dict]:
    zone = _parent_zone(ctx)
    rtype = ctx.args["rtype"]
    sets = [rs for rs in record_sets(zone) if rtype.lower() == "all" or rs["type"].lower().endswith("/" + rtype.lower())]
    if "rname" not in ctx.args:
        return 200, {"value": sets}, {}
    found = next((rs for rs in sets if same(rs["name"], ctx.args["rname"])), None)
    if found is None:
        raise ArmError(404, "NotFound", f"The resource record '{ctx.args['rname']}' does not exist in resource group '{ctx.args['rg']}' of subscription '{ctx.sub}'.")
    return 200, found, {}


lro.FINISH_DELETE["private_dns_zones"] = _finish_zone_delete
lro.SETTLED["virtual_network_links"] = _settle_link

_RG = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.network/privatednszones"
ROUTES = [
    ("/subscriptions/<sub>/providers/microsoft.network/privatednszones", "zone_list_sub", "privatedns", "privateDnsZones", ["GET"]),
    (_RG, "zone_list", "privatedns", "privateDnsZones", ["GET"]),
    (f"{_RG}/<zone>", "zone", "privatedns", "privateDnsZones", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/<zone>/virtualnetworklinks", "link_list", "privatedns", "privateDnsZones/virtualNetworkLinks", ["GET"]),
    (f"{_RG}/<zone>/virtualnetworklinks/<link>", "link", "privatedns", "privateDnsZones/virtualNetworkLinks", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/<zone>/<rtype>", "records", "privatedns", "privateDnsZones/A", ["GET"]),
    (f"{_RG}/<zone>/<rtype>/<rname>", "records", "privatedns", "privateDnsZones/A", ["GET"]),
]
HANDLERS = {"zone_list_sub": _zone_list, "zone_list": _zone_list, "zone": _zone, "link_list": _link_list, "link": _link, "records": _records}
