"""Microsoft.Network private endpoints (to Azure Databricks workspaces) and their private DNS zone groups.

Validation, in NRP's order:
- the subnet must exist, in the endpoint's region: InvalidResourceReference ("Resource <subnet> referenced
  by resource <endpoint> was not found. Please make sure that the referenced resource exists, and that both
  resources are in the same region.", microsoft-foundry/foundry-samples#657, Azure/azure-cli#13614);
- it must be provisioned: 429 RetryableError "A retryable error occurred." with the detail
  ReferencedResourceNotProvisioned ("Cannot proceed with operation because resource <subnet> used by resource
  <endpoint> is not in Succeeded state. Resource is in Updating state and the last operation that updated/is
  updating the resource is PutSubnetOperation.", hashicorp/terraform#7986 answered at once, hashicorp/
  terraform-provider-azurerm#30197 and Azure-Samples/azuresandbox#25 by the poller);
- it must not be delegated: PrivateEndpointCreationNotAllowedAsSubnetIsDelegated (code recalled; the portal
  says "The selected subnet has a delegation and cannot be used with a private endpoint",
  MicrosoftDocs/azure-docs#47048);
- one group id per connection to a first-party resource: OnlyOneGroupIdPermitted (DFE-Digital/terraform-
  azurerm-container-apps-hosting#352);
- the private link resource must exist: InvalidResourceReference, as for the subnet;
- Azure Databricks' own checks come back wrapped as "Call to Microsoft.Databricks/workspaces failed. Error
  message: ..." with PrivateEndpointConnectionProvisioningFailed (the code and wrapper of the Databricks
  refusal in microsoft/terraform-provider-azuredevops#106): a group id other than databricks_ui_api /
  browser_authentication ("Invalid groupId", as hashicorp/terraform-provider-azurerm#11778 shows another
  provider answer; that code was not found), or a workspace not on the premium tier (Private Link needs
  Premium: learn.microsoft.com/azure/databricks/security/network/classic/private-link; wording ours);
- a workspace with an operation in progress, or another connection to it still provisioning: 409
  ConcurrentUpdateError "... Workspace update could not be completed because it has been updated by another
  process." (databricks/terraform-databricks-examples#177, where the poller reports it; answered here at once).
On success the endpoint gets a NIC (in its own resource group) with the subnet's next free address,
customDnsConfigs for the workspace's FQDN, and an auto-approved connection ({"status": "Approved",
"description": "Auto-Approved"}, same subscription); the subnet and the workspace list it. If the workspace is
deleted, the connection turns Disconnected and the endpoint stays, as Private Link does (the endpoint and its
DNS record outlive their target: getstratolens.com "Private Endpoint Disconnected", hub.pointfive.co
"orphaned private endpoints after target service deletion").

A DNS zone group's zone must exist (InvalidResourceReference); once it is Succeeded the zone holds an A
record (TTL 10, the TTL Azure gives these records; recalled, not sourced) per FQDN of the endpoint: adb-<workspaceId>.<n> for databricks_ui_api, <region>.pl-auth for
browser_authentication (relative to privatelink.azuredatabricks.net), shown in the group's
privateDnsZoneConfigs[].properties.recordSets; deleting the group (or its endpoint) removes them.
"""

from __future__ import annotations

from typing import Any

import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
import provision.clouds.azure.sandbox.subnets as subnets  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    ArmError,
    bad_request,
    busy,
    child_not_found,
    etag,
    id_of,
    invalid_reference,
    new_guid,
    parse_id,
    provider_id,
    public,
    resource_not_found,
    same,
    state_of,
)

NS = "Microsoft.Network"
GROUP_IDS = ("databricks_ui_api", "browser_authentication")
DATABRICKS_SUFFIX = "azuredatabricks.net"


def pe_id(sub: str, rg: str, name: str) -> str:
    return provider_id(sub, rg, NS, "privateEndpoints", name)


def targeting(workspace_id: str) -> list[dict]:
    return [pe for pe in STORE.of_kind("private_endpoints") if same(pe.get("_target"), workspace_id)]


def _databricks_refusal(status: int, code: str, text: str) -> ArmError:
    return ArmError(status, code, f"Call to Microsoft.Databricks/workspaces failed. Error message: {text}", details=[])


def _fqdn(workspace: dict | None, group_id: str, location: str) -> str:
    if group_id == "browser_authentication":
        return f"{location}.pl-auth.{DATABRICKS_SUFFIX}"
    if workspace is None:
        return f"unknown.{DATABRICKS_SUFFIX}"
    return workspace["properties"].get("workspaceUrl") or f"{workspace['name']}.{DATABRICKS_SUFFIX}"


def _check(ctx: Any, rid: str, location: str, props: dict) -> tuple[dict | None, dict | None, str, str]:
    """(subnet, workspace, group id, target id) of a valid endpoint body; a disabled rule lets a missing
    subnet or workspace through as None."""
    subnet_ref = id_of(props.get("subnet"))
    subnet = STORE.get(subnet_ref)
    if subnet is not None and subnet["_kind"] != "subnets":
        subnet = None
    vnet = STORE.get(subnet["id"].rsplit("/subnets/", 1)[0]) if subnet else None
    if (subnet is None or vnet is None or vnet["location"] != location) and rules.enforced("pe-subnet-must-exist"):
        raise invalid_reference(subnet_ref or "", rid)
    if subnet is not None and state_of(subnet) != "Succeeded" and rules.enforced("pe-reference-provisioned"):
        detail = (
            f"Cannot proceed with operation because resource {subnet['id']} used by resource {rid} is not in Succeeded "
            f"state. Resource is in {state_of(subnet)} state and the last operation that updated/is updating the "
            "resource is PutSubnetOperation."
        )
        raise ArmError(
            429, "RetryableError", "A retryable error occurred.", {"Retry-After": "1"},
            details=[{"code": "ReferencedResourceNotProvisioned", "message": detail}],
        )
    if subnet is not None and subnet["properties"].get("delegations") and rules.enforced("pe-not-in-delegated-subnet"):
        raise bad_request(
            "PrivateEndpointCreationNotAllowedAsSubnetIsDelegated",
            f"Private endpoint {rid} cannot be created as subnet {subnet['id']} is delegated.",
        )
    connections = props.get("privateLinkServiceConnections") or props.get("manualPrivateLinkServiceConnections") or []
    if not connections or not isinstance(connections[0], dict):
        raise bad_request("InvalidRequestFormat", "Cannot parse the request.")
    cprops = connections[0].get("properties") or {}
    target_ref, group_ids = str(cprops.get("privateLinkServiceId") or ""), list(cprops.get("groupIds") or [])
    if len(group_ids) > 1 and rules.enforced("pe-one-group-id"):
        raise bad_request(
            "OnlyOneGroupIdPermitted",
            f"Private link service connection {rid}/privateLinkServiceConnections/{connections[0].get('name', '')} has the "
            f"following group Ids: {', '.join(group_ids)}. Only one group Id is permitted when connecting to a "
            f"first-party resource ({target_ref}).",
        )
    workspace = STORE.get(target_ref)
    if workspace is not None and workspace["_kind"] != "workspaces":
        workspace = None
    if workspace is None and (rules.enforced("pe-target-must-exist") or parse_id(target_ref) is None):
        raise invalid_reference(target_ref, rid)
    group_id = group_ids[0] if group_ids else ""
    if group_id not in GROUP_IDS and rules.enforced("pe-group-id-valid"):
        raise _databricks_refusal(400, "PrivateEndpointConnectionProvisioningFailed", "Invalid groupId")
    if workspace is None:
        return subnet, None, group_id, target_ref
    if workspace["sku"]["name"].lower() != "premium" and rules.enforced("pe-workspace-premium"):
        raise _databricks_refusal(
            400, "PrivateEndpointConnectionProvisioningFailed",
            "Private Link is only supported for workspaces on the premium pricing tier.",
        )
    others_busy = any(busy(pe) for pe in targeting(workspace["id"]) if not same(pe["id"], rid))
    if (busy(workspace) or others_busy) and rules.enforced("pe-workspace-not-busy"):
        raise _databricks_refusal(
            409, "ConcurrentUpdateError", "Workspace update could not be completed because it has been updated by another process."
        )
    return subnet, workspace, group_id, workspace["id"]


def _connection(rid: str, given: dict, target: str, group_id: str) -> dict:
    name = given.get("name") or "default"
    return {
        "name": name,
        "id": f"{rid}/privateLinkServiceConnections/{name}",
        "etag": etag(),
        "type": "Microsoft.Network/privateEndpoints/privateLinkServiceConnections",
        "properties": {
            "provisioningState": "Succeeded",
            "privateLinkServiceId": target,
            "groupIds": [group_id],
            "privateLinkServiceConnectionState": {"status": "Approved", "description": "Auto-Approved", "actionsRequired": "None"},
        },
    }


def _new_nic(ctx: Any, rg: str, pe: dict, name: str, subnet: dict, group_id: str, fqdn: str) -> dict:
    nic_name = name or f"{pe['name']}.nic.{new_guid()}"
    nid = provider_id(ctx.sub, rg, NS, "networkInterfaces", nic_name)
    config = f"privateEndpointIpConfig.{new_guid()}"
    return STORE.add({
        "id": nid,
        "name": nic_name,
        "type": "Microsoft.Network/networkInterfaces",
        "location": pe["location"],
        "etag": etag(),
        "properties": {
            "provisioningState": "Succeeded",
            "resourceGuid": new_guid(),
            "ipConfigurations": [{
                "name": config,
                "id": f"{nid}/ipConfigurations/{config}",
                "etag": etag(),
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "properties": {
                    "provisioningState": "Succeeded",
                    "privateIPAddress": subnets.allocate_ip(subnet),
                    "privateIPAllocationMethod": "Dynamic",
                    "subnet": {"id": subnet["id"]},
                    "primary": True,
                    "privateIPAddressVersion": "IPv4",
                    "privateLinkConnectionProperties": {"groupId": group_id, "requiredMemberName": group_id, "fqdns": [fqdn]},
                },
            }],
            "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
            "enableAcceleratedNetworking": False,
            "enableIPForwarding": False,
            "privateEndpoint": {"id": pe["id"]},
            "nicType": "Standard",
        },
        "_kind": "network_interfaces",
        "_subnet": subnet["id"],
    })


def _put_pe(ctx: Any) -> tuple[int, Any, dict]:
    rg, name, body = ctx.args["rg"], ctx.args["pe"], ctx.body()
    resources.group(ctx, rg, write=True)
    location = resources.require_location(body)
    rid = pe_id(ctx.sub, rg, name)
    existing = STORE.get(rid)
    lro.ensure_idle(ctx, [existing])
    props = body.get("properties") or {}
    subnet, workspace, group_id, target = _check(ctx, existing["id"] if existing else rid, location, props)
    pe = existing or STORE.add({"id": rid, "name": name, "type": "Microsoft.Network/privateEndpoints", "_kind": "private_endpoints"})
    fqdn = _fqdn(workspace, group_id, location)
    nic = STORE.get(pe.get("_nic"))
    if nic is None and subnet is not None:
        nic = _new_nic(ctx, rg, pe | {"location": location}, props.get("customNetworkInterfaceName") or "", subnet, group_id, fqdn)
    ips = [nic["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]] if nic else []
    connections = props.get("privateLinkServiceConnections") or props.get("manualPrivateLinkServiceConnections")
    pe.update({"location": location, "etag": etag(), "_nic": nic["id"] if nic else None, "_target": target})
    if body.get("tags"):
        pe["tags"] = dict(body["tags"])
    else:
        pe.pop("tags", None)
    pe["properties"] = {
        "provisioningState": "Updating",
        "resourceGuid": (existing or {}).get("properties", {}).get("resourceGuid") or new_guid(),
        "privateLinkServiceConnections": [_connection(pe["id"], connections[0], target, group_id)],
        "manualPrivateLinkServiceConnections": [],
        "customNetworkInterfaceName": props.get("customNetworkInterfaceName") or "",
        "subnet": {"id": subnet["id"] if subnet else id_of(props.get("subnet")) or ""},
        "ipConfigurations": [],
        "networkInterfaces": [{"id": nic["id"]}] if nic else [],
        "customDnsConfigs": [{"fqdn": fqdn, "ipAddresses": ips}],
        "isIPv6Enabled": False,
    }
    op = lro.schedule(pe, ctx.at, ctx.delay("azure_endpoint_seconds", rid), "Succeeded", ns=NS, location=location)
    return lro.reply_put(ctx, public(pe), op, existing is None)


def _pe(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "PUT":
        return _put_pe(ctx)
    rg, name = ctx.args["rg"], ctx.args["pe"]
    reply, pe = resources.read_or_gone(ctx, rg, pe_id(ctx.sub, rg, name), f"Microsoft.Network/privateEndpoints/{name}", public)
    if reply is not None:
        return reply
    groups = STORE.children(pe["id"], "private_dns_zone_groups")
    lro.ensure_idle(ctx, [pe, *groups])
    op = lro.schedule(pe, ctx.at, ctx.delay("azure_endpoint_seconds", pe["id"]), "deleted", ns=NS, location=pe["location"])
    for record in [pe, *groups]:
        record["_due"], record["_then"], record["_op"] = op["due"], "deleted", op["id"]
        record["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _finish_pe_delete(pe: dict, op: dict | None) -> None:
    for group in STORE.children(pe["id"], "private_dns_zone_groups"):
        STORE.remove(group["id"])
    if pe.get("_nic"):
        STORE.remove(pe["_nic"])
    STORE.remove(pe["id"])


def _pe_list(ctx: Any) -> tuple[int, Any, dict]:
    return resources.list_kind(ctx, "private_endpoints", public)


# --- private DNS zone groups ---------------------------------------------------------------------------


def relative_name(fqdn: str, zone: str) -> str:
    suffix = zone[len("privatelink."):] if zone.lower().startswith("privatelink.") else zone
    if fqdn.lower().endswith("." + suffix.lower()):
        return fqdn[: -len(suffix) - 1]
    return fqdn.split(".")[0]


def record_sets(group: dict, zone_id: str) -> list[dict]:
    """The A records a settled zone group keeps in one zone: [{recordSetName, fqdn, ttl, ipAddresses}]."""
    pe, zone = STORE.get(group["_pe"]), STORE.get(zone_id)
    if pe is None or zone is None or state_of(group) != "Succeeded":
        return []
    return [
        {
            "recordType": "A",
            "recordSetName": relative_name(c["fqdn"], zone["name"]),
            "fqdn": f"{relative_name(c['fqdn'], zone['name'])}.{zone['name']}",
            "ttl": 10,
            "ipAddresses": list(c["ipAddresses"]),
            "provisioningState": "Succeeded",
        }
        for c in pe["properties"]["customDnsConfigs"]
    ]


def zone_records(zone: dict) -> list[dict]:
    return [
        rs
        for group in STORE.of_kind("private_dns_zone_groups")
        for config in group["properties"]["privateDnsZoneConfigs"]
        if same(config["properties"]["privateDnsZoneId"], zone["id"])
        for rs in record_sets(group, zone["id"])
    ]


def render_group(group: dict) -> dict:
    out = public(group)
    for config in out["properties"]["privateDnsZoneConfigs"]:
        config["properties"]["recordSets"] = record_sets(group, config["properties"]["privateDnsZoneId"])
    return out


def _parent_pe(ctx: Any) -> dict:
    rg, name = ctx.args["rg"], ctx.args["pe"]
    resources.group(ctx, rg, write=ctx.method == "PUT")
    pe = STORE.get(pe_id(ctx.sub, rg, name))
    if pe is None:
        raise resource_not_found(f"Microsoft.Network/privateEndpoints/{name}", rg)
    return pe


def _group(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "DELETE" and STORE.get(pe_id(ctx.sub, ctx.args["rg"], ctx.args["pe"])) is None:
        resources.group(ctx, ctx.args["rg"])
        return 204, None, {}
    pe = _parent_pe(ctx)
    gid = f"{pe['id']}/privateDnsZoneGroups/{ctx.args['zg']}"
    group = STORE.get(gid)
    if ctx.method == "GET":
        if group is None:
            raise child_not_found(gid)
        return 200, render_group(group), {}
    if ctx.method == "DELETE":
        if group is None:
            return 204, None, {}
        lro.ensure_idle(ctx, [pe, group])
        op = lro.schedule(group, ctx.at, ctx.delay("azure_endpoint_seconds", gid), "deleted", ns=NS, location=pe["location"])
        group["properties"]["provisioningState"] = "Deleting"
        return lro.reply_delete(ctx, op)
    lro.ensure_idle(ctx, [pe, group])
    configs = []
    for item in (ctx.body().get("properties") or {}).get("privateDnsZoneConfigs") or []:
        zone_ref = ((item or {}).get("properties") or {}).get("privateDnsZoneId")
        zone = STORE.get(zone_ref)
        if (zone is None or zone["_kind"] != "private_dns_zones") and rules.enforced("zone-group-zone-must-exist"):
            raise invalid_reference(zone_ref or "", gid)
        configs.append({"name": item.get("name") or (zone or {}).get("name", "").replace(".", "-"), "properties": {"privateDnsZoneId": zone["id"] if zone else zone_ref}})
    created = group is None
    group = group or STORE.add({"id": gid, "name": ctx.args["zg"], "type": "Microsoft.Network/privateEndpoints/privateDnsZoneGroups", "_kind": "private_dns_zone_groups", "_pe": pe["id"]})
    group.update({"etag": etag(), "properties": {"provisioningState": "Updating", "privateDnsZoneConfigs": configs}})
    op = lro.schedule(group, ctx.at, ctx.delay("azure_endpoint_seconds", gid), "Succeeded", ns=NS, location=pe["location"])
    return lro.reply_put(ctx, render_group(group), op, created)


def _group_list(ctx: Any) -> tuple[int, Any, dict]:
    pe = _parent_pe(ctx)
    return 200, {"value": [render_group(g) for g in STORE.children(pe["id"], "private_dns_zone_groups")]}, {}


lro.FINISH_DELETE["private_endpoints"] = _finish_pe_delete

_RG = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.network"
ROUTES = [
    ("/subscriptions/<sub>/providers/microsoft.network/privateendpoints", "pe_list_sub", "network", "privateEndpoints", ["GET"]),
    (f"{_RG}/privateendpoints", "pe_list", "network", "privateEndpoints", ["GET"]),
    (f"{_RG}/privateendpoints/<pe>", "pe", "network", "privateEndpoints", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/privateendpoints/<pe>/privatednszonegroups", "zg_list", "network", "privateEndpoints/privateDnsZoneGroups", ["GET"]),
    (f"{_RG}/privateendpoints/<pe>/privatednszonegroups/<zg>", "zg", "network", "privateEndpoints/privateDnsZoneGroups", ["GET", "PUT", "DELETE"]),
]
HANDLERS = {"pe_list_sub": _pe_list, "pe_list": _pe_list, "pe": _pe, "zg_list": _group_list, "zg": _group}
