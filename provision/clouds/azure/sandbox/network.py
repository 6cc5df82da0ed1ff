"""Microsoft.Network virtual networks, subnets and (read-only) network interfaces.

- A VNet GET embeds its subnets; each subnet shows addressPrefix(es), delegations [{name, id, type,
  properties.serviceName, actions}], networkSecurityGroup {id}, privateEndpointNetworkPolicies (default
  "Disabled"), and, once used, ipConfigurations [{id}] and privateEndpoints [{id}]. Validation and who holds
  a subnet: subnets.py.
- A VNet PUT replaces the subnet list with the body's: a subnet the body leaves out (or every subnet, when
  `subnets` is omitted) is deleted, and one in use refuses the whole PUT with InUseSubnetCannotBeDeleted,
  which is how redeploying a VNet template without its subnets fails (Azure/azure-quickstart-templates#2786,
  "Create VNET without destroying all subnets"). The same refuses DELETE of an in-use subnet or its VNet.
- One operation at a time on a VNet and its subnets: 409 AnotherOperationInProgress (lro.ensure_idle).
- PUT answers 201/200 with provisioningState "Updating" (NRP's state for creates and updates alike).
A private endpoint's NIC lives in the endpoint's resource group; it is served by GET and list (and the
generic listing) and goes with its endpoint.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    bad_request,
    child_not_found,
    deleting,
    etag,
    new_guid,
    provider_id,
    public,
    resource_not_found,
    same,
)
from provision.clouds.azure.sandbox.subnets import (
    address_space,
    claims,
    in_use,
    render_subnet,
    subnet_networks,
    subnet_props,
    subnets_of,
)

NS = "Microsoft.Network"


def vnet_id(sub: str, rg: str, name: str) -> str:
    return provider_id(sub, rg, NS, "virtualNetworks", name)


def render_vnet(vnet: dict) -> dict:
    out = public(vnet)
    out["properties"]["subnets"] = [render_subnet(s) for s in subnets_of(vnet)]
    return out


def _put_vnet(ctx: Any) -> tuple[int, Any, dict]:
    rg, name, body = ctx.args["rg"], ctx.args["vnet"], ctx.body()
    resources.group(ctx, rg, write=True)
    location = resources.require_location(body)
    rid = vnet_id(ctx.sub, rg, name)
    existing = STORE.get(rid)
    lro.ensure_idle(ctx, [existing, *(subnets_of(existing) if existing else [])])
    space = address_space(existing["id"] if existing else rid, body)
    vnet = existing or {"id": rid, "name": name, "type": "Microsoft.Network/virtualNetworks", "_kind": "virtual_networks"}
    staged, siblings = [], []
    for item in (body.get("properties") or {}).get("subnets") or []:
        if not isinstance(item, dict) or not item.get("name"):
            raise bad_request("InvalidRequestFormat", "Cannot parse the request.")
        old = next((s for s in subnets_of(vnet) if same(s["name"], item["name"])), None) if existing else None
        props = subnet_props(ctx, vnet, space, item["name"], item.get("properties"), siblings, old)
        siblings.append((item["name"], subnet_networks(props)))
        staged.append((old, item["name"], props))
    kept = {(old or {}).get("id", "").lower() for old, _, _ in staged}
    dropped = [s for s in (subnets_of(existing) if existing else []) if s["id"].lower() not in kept]
    for subnet in dropped:
        in_use(subnet)
    vnet.update({"location": location, "etag": etag()})
    if body.get("tags"):
        vnet["tags"] = dict(body["tags"])
    else:
        vnet.pop("tags", None)
    given = body.get("properties") or {}
    vnet["properties"] = {
        "provisioningState": "Updating",
        "resourceGuid": (existing or {}).get("properties", {}).get("resourceGuid") or new_guid(),
        "addressSpace": {"addressPrefixes": list(given["addressSpace"]["addressPrefixes"])},
        "virtualNetworkPeerings": [],
        "enableDdosProtection": bool(given.get("enableDdosProtection", False)),
        "privateEndpointVNetPolicies": given.get("privateEndpointVNetPolicies") or "Disabled",
        **({"dhcpOptions": given["dhcpOptions"]} if "dhcpOptions" in given else {}),
    }
    STORE.add(vnet)
    op = lro.schedule(vnet, ctx.at, ctx.delay("azure_resource_seconds", rid), "Succeeded", ns=NS, location=location)
    for old, sname, props in staged:
        subnet = old or STORE.add({"id": f"{vnet['id']}/subnets/{sname}", "name": sname, "type": "Microsoft.Network/virtualNetworks/subnets", "_kind": "subnets"})
        subnet.update({"etag": etag(), "properties": {**props, "provisioningState": "Updating"}})
        subnet["_due"], subnet["_then"], subnet["_op"] = op["due"], "Succeeded", op["id"]
    for subnet in dropped:
        subnet["_due"], subnet["_then"], subnet["_op"] = op["due"], "deleted", op["id"]
        subnet["properties"]["provisioningState"] = "Deleting"
    return lro.reply_put(ctx, render_vnet(vnet), op, existing is None)


def _vnet(ctx: Any) -> tuple[int, Any, dict]:
    rg, name = ctx.args["rg"], ctx.args["vnet"]
    if ctx.method == "PUT":
        return _put_vnet(ctx)
    reply, vnet = resources.read_or_gone(ctx, rg, vnet_id(ctx.sub, rg, name), f"Microsoft.Network/virtualNetworks/{name}", render_vnet)
    if reply is not None:
        return reply
    lro.ensure_idle(ctx, [vnet, *subnets_of(vnet)])
    for subnet in subnets_of(vnet):
        in_use(subnet)
    op = lro.schedule(vnet, ctx.at, ctx.delay("azure_resource_seconds", vnet["id"]), "deleted", ns=NS, location=vnet["location"])
    for record in [vnet, *subnets_of(vnet)]:
        record["_due"], record["_then"], record["_op"] = op["due"], "deleted", op["id"]
        record["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _finish_vnet_delete(vnet: dict, op: dict | None) -> None:
    for subnet in subnets_of(vnet):
        STORE.remove(subnet["id"])
    STORE.remove(vnet["id"])


def parent_vnet(ctx: Any) -> dict:
    rg, name = ctx.args["rg"], ctx.args["vnet"]
    resources.group(ctx, rg, write=ctx.method == "PUT")
    vnet = STORE.get(vnet_id(ctx.sub, rg, name))
    if vnet is None:
        raise resource_not_found(f"Microsoft.Network/virtualNetworks/{name}", rg)
    return vnet


def _subnet(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "DELETE" and STORE.get(vnet_id(ctx.sub, ctx.args["rg"], ctx.args["vnet"])) is None:
        resources.group(ctx, ctx.args["rg"])
        return 204, None, {}
    vnet = parent_vnet(ctx)
    sid = f"{vnet['id']}/subnets/{ctx.args['subnet']}"
    subnet = STORE.get(sid)
    if ctx.method == "GET":
        if subnet is None:
            raise child_not_found(sid)
        return 200, render_subnet(subnet), {}
    if ctx.method == "DELETE":
        if subnet is None:
            return 204, None, {}
        lro.ensure_idle(ctx, [vnet, *subnets_of(vnet)])
        in_use(subnet)
        op = lro.schedule(subnet, ctx.at, ctx.delay("azure_resource_seconds", subnet["id"]), "deleted", ns=NS, location=vnet["location"])
        subnet["properties"]["provisioningState"] = "Deleting"
        return lro.reply_delete(ctx, op)
    lro.ensure_idle(ctx, [vnet, *subnets_of(vnet)])
    space = [ipaddress.ip_network(p, strict=False) for p in vnet["properties"]["addressSpace"]["addressPrefixes"]]
    siblings = [(s["name"], subnet_networks(s["properties"])) for s in subnets_of(vnet) if s is not subnet and not deleting(s)]
    name = subnet["name"] if subnet else ctx.args["subnet"]
    props = subnet_props(ctx, vnet, space, name, ctx.body().get("properties"), siblings, subnet)
    created = subnet is None
    subnet = subnet or STORE.add({"id": sid, "name": name, "type": "Microsoft.Network/virtualNetworks/subnets", "_kind": "subnets"})
    subnet.update({"etag": etag(), "properties": {**props, "provisioningState": "Updating"}})
    op = lro.schedule(subnet, ctx.at, ctx.delay("azure_resource_seconds", sid), "Succeeded", ns=NS, location=vnet["location"])
    return lro.reply_put(ctx, render_subnet(subnet), op, created)


def _subnet_list(ctx: Any) -> tuple[int, Any, dict]:
    return 200, {"value": [render_subnet(s) for s in subnets_of(parent_vnet(ctx))]}, {}


def _vnet_list(ctx: Any) -> tuple[int, Any, dict]:
    return resources.list_kind(ctx, "virtual_networks", render_vnet)


def _nic(ctx: Any) -> tuple[int, Any, dict]:
    resources.group(ctx, ctx.args["rg"])
    nic = STORE.get(provider_id(ctx.sub, ctx.args["rg"], NS, "networkInterfaces", ctx.args["nic"]))
    if nic is None:
        raise resource_not_found(f"Microsoft.Network/networkInterfaces/{ctx.args['nic']}", ctx.args["rg"])
    return 200, public(nic), {}


def _nic_list(ctx: Any) -> tuple[int, Any, dict]:
    resources.group(ctx, ctx.args["rg"])
    return 200, {"value": [public(n) for n in STORE.of_kind("network_interfaces") if same(n["id"].split("/")[4], ctx.args["rg"])]}, {}


lro.FINISH_DELETE["virtual_networks"] = _finish_vnet_delete
lro.USERS["subnets"] = lambda s: [user for user, _ in claims(s)]
lro.USERS["virtual_networks"] = lambda v: [user for s in subnets_of(v) for user, _ in claims(s)]

_RG = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.network"
ROUTES = [
    ("/subscriptions/<sub>/providers/microsoft.network/virtualnetworks", "vnet_list_sub", "network", "virtualNetworks", ["GET"]),
    (f"{_RG}/virtualnetworks", "vnet_list", "network", "virtualNetworks", ["GET"]),
    (f"{_RG}/virtualnetworks/<vnet>", "vnet", "network", "virtualNetworks", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/virtualnetworks/<vnet>/subnets", "subnet_list", "network", "virtualNetworks/subnets", ["GET"]),
    (f"{_RG}/virtualnetworks/<vnet>/subnets/<subnet>", "subnet", "network", "virtualNetworks/subnets", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/networkinterfaces", "nic_list", "network", "networkInterfaces", ["GET"]),
    (f"{_RG}/networkinterfaces/<nic>", "nic", "network", "networkInterfaces", ["GET"]),
]
HANDLERS = {
    "vnet_list_sub": _vnet_list, "vnet_list": _vnet_list, "vnet": _vnet,
    "subnet_list": _subnet_list, "subnet": _subnet, "nic_list": _nic_list, "nic": _nic,
}
