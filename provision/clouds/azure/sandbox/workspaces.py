"""Microsoft.Databricks/workspaces (api-version 2026-01-01 as azure-mgmt-databricks 3.0 sends it) and their
managed resource groups.

A PUT of a new workspace answers 201 with provisioningState "Accepted" (then "Succeeded" or "Failed" after
azure_workspace_provisioning_seconds), Azure-AsyncOperation, Location and Retry-After; the managed resource
group appears at once with managedBy = the workspace id (and Azure Databricks' deny assignment, see
resources.py). On success the workspace gets workspaceId (16 digits), workspaceUrl
adb-<workspaceId>.<n>.azuredatabricks.net, and its network intent policy adds the
"Microsoft.Databricks-workspaces_UseOnly_databricks-worker-*" rules to its subnets' NSG (names from
Azure/azure-quickstart-templates PR #8931 and databricks/terraform-provider-databricks#1384; the set per
requiredNsgRules is reconstructed from the VNet-injection docs' rule table). Parameters are echoed with
their types ({"type": "Bool", "value": true}), with the defaults the RP adds (storageAccountName,
resourceTags {application: databricks, databricks-environment: true}, as turbot/steampipe-plugin-azure PR
#961 shows a real one). DELETE answers 202 and takes azure_workspace_deleting_seconds; the managed group goes
with it and every private endpoint connection to it turns Disconnected (endpoints stay, as Private Link does).

Refusals (rules.py names them):
- computeMode is "Required on create, cannot be changed" (the 2026-01-01 API reference, KnownComputeMode):
  missing on create -> 400 ComputeModeRequired; changed -> 400 ComputeModeChangeNotAllowed (codes not found in
  public sources; modelled on VirtualNetworkIdChangeNotAllowed). Older api-versions default it to Hybrid.
- changing customVirtualNetworkId -> 400 VirtualNetworkIdChangeNotAllowed ("Updating required Virtual Network
  from <a> to <b> is currently not allowed", MicrosoftDocs/azure-docs#111122).
- requiredNsgRules NoAzureDatabricksRules or publicNetworkAccess Disabled (Private Link) on a non-premium SKU
  -> 400 (Private Link needs Premium; codes not found publicly). No Public IP itself is allowed on standard
  (MicrosoftDocs/azure-docs#80494: secure cluster connectivity is available on the Standard tier).
- a named subnet that is not there is not refused at once: the deployment fails, and ARM's poller reports
  the misleading SubnetIsNotWithinVnetError "The subnet <name> CIDR range '<null>' is not within the Virtual
  Network CIDR range '<vnet prefix>'" (hashicorp/terraform-provider-azurerm#26335, #27099, Azure/terraform-
  azurerm-avm-res-databricks-workspace#46); a missing VNet fails the same way (VirtualNetworkNotFound).
- a subnet not delegated to Microsoft.Databricks/workspaces -> 400 SubnetMissingRequiredDelegation (NRP's code
  for a missing delegation; wording modelled on it); without an NSG -> 400 SubnetMissingNetworkSecurityGroup;
  already used by another workspace -> 400 SubnetAlreadyInUse (both codes not found publicly).
- an existing managed resource group fails the deployment: ResourceOperationFailure with detail
  ApplianceProvisioningFailed "The managed resource group '<id>' already exists. Please specify a new
  non-existent managed resource group" (pulumi/pulumi-azure-native#3643).
- a PUT or DELETE while the workspace is Accepted/Updating/Deleting -> 409 ConcurrentUpdateError ("Workspace
  update could not be completed because it has been updated by another process.", databricks/terraform-
  databricks-examples#177).
"""

from __future__ import annotations

import random
import string
from typing import Any

import provision.clouds.azure.sandbox.endpoints as endpoints  # noqa: PLR0402
import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.nsg as nsg  # noqa: PLR0402
import provision.clouds.azure.sandbox.resources as resources  # noqa: PLR0402
import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
import provision.clouds.azure.sandbox.subnets as subnets  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    ArmError,
    bad_request,
    busy,
    group_id,
    new_guid,
    parse_group_id,
    provider_id,
    public,
    resource_not_found,
    same,
    state_of,
)

NS = "Microsoft.Databricks"
TYPE = "Microsoft.Databricks/workspaces"
_TYPES = {
    "customVirtualNetworkId": "String", "customPublicSubnetName": "String", "customPrivateSubnetName": "String",
    "enableNoPublicIp": "Bool", "prepareEncryption": "Bool", "requireInfrastructureEncryption": "Bool",
    "storageAccountName": "String", "storageAccountSkuName": "String", "natGatewayName": "String",
    "publicIpName": "String", "vnetAddressPrefix": "String", "loadBalancerId": "String",
    "loadBalancerBackendPoolName": "String", "amlWorkspaceId": "String", "resourceTags": "Object",
}
_USE_ONLY = "Microsoft.Databricks-workspaces_UseOnly_databricks-"
# (name, description, protocol, destination port, destination, direction); the webapp rule only for AllRules.
_NIP_RULES = (
    ("worker-to-worker-inbound", "Required for worker nodes communication within a cluster.", "*", "*", "VirtualNetwork", "Inbound"),
    ("worker-to-databricks-webapp", "Required for workers communication with Databricks Webapp.", "Tcp", "443", "AzureDatabricks", "Outbound"),
    ("worker-to-sql", "Required for workers communication with Azure SQL services.", "Tcp", "3306", "Sql", "Outbound"),
    ("worker-to-storage", "Required for workers communication with Azure Storage services.", "Tcp", "443", "Storage", "Outbound"),
    ("worker-to-worker-outbound", "Required for worker nodes communication within a cluster.", "*", "*", "VirtualNetwork", "Outbound"),
    ("worker-to-eventhub", "Required for worker communication with Azure Eventhub services.", "Tcp", "9093", "EventHub", "Outbound"),
)
_BUSY = "Workspace update could not be completed because it has been updated by another process."


def ws_id(sub: str, rg: str, name: str) -> str:
    return provider_id(sub, rg, NS, "workspaces", name)


def live(ws: dict) -> bool:
    return state_of(ws) != "Failed"


def nip_rules(ws: dict) -> list[dict]:
    every = ws["properties"].get("requiredNsgRules") == "AllRules"
    return [
        {"name": name, "description": text, "protocol": proto, "sourcePortRange": "*", "destinationPortRange": port,
         "sourceAddressPrefix": "VirtualNetwork", "destinationAddressPrefix": dst, "access": "Allow", "direction": direction}
        for name, text, proto, port, dst, direction in _NIP_RULES
        if every or name != "worker-to-databricks-webapp"
    ]


def _subnet_claims(subnet: dict) -> list[tuple[str, str]]:
    return [(ws["id"], ws["_nip"]) for ws in STORE.of_kind("workspaces") if live(ws) and any(same(s, subnet["id"]) for s in ws["_subnets"])]


def _nsg_needs(nsg_ref: dict) -> list[tuple[str, dict]]:
    out = []
    for ws in STORE.of_kind("workspaces"):
        if not ws.get("_rules_added") or not live(ws):
            continue
        for sid in ws["_subnets"]:
            subnet = STORE.get(sid)
            if subnet and same((subnet["properties"].get("networkSecurityGroup") or {}).get("id"), nsg_ref["id"]):
                out += [(ws["_nip"], r) for r in nip_rules(ws)]
                break
    return out


def render(ws: dict) -> dict:
    out = public(ws)
    out["properties"]["privateEndpointConnections"] = [_connection(ws, pe) for pe in endpoints.targeting(ws["id"])]
    return out


def _connection(ws: dict, pe: dict) -> dict:
    name = f"{pe['name']}.{pe['properties']['resourceGuid']}"
    conn = pe["properties"]["privateLinkServiceConnections"][0]["properties"]
    return {
        "id": f"{ws['id']}/privateEndpointConnections/{name}",
        "name": name,
        "type": f"{TYPE}/privateEndpointConnections",
        "properties": {
            "privateEndpoint": {"id": pe["id"]},
            "groupIds": list(conn["groupIds"]),
            "privateLinkServiceConnectionState": dict(conn["privateLinkServiceConnectionState"]),
            "provisioningState": "Updating" if busy(pe) else "Succeeded",
        },
    }


def _param(params: dict, key: str) -> Any:
    value = params.get(key)
    return value.get("value") if isinstance(value, dict) else None


def _parameters(given: dict, existing: dict | None) -> dict:
    out = {k: dict(v) for k, v in ((existing or {}).get("properties", {}).get("parameters") or {}).items()}
    for key, value in given.items():
        if isinstance(value, dict) and "value" in value:
            v = value["value"]
            kind = _TYPES.get(key) or ("Bool" if isinstance(v, bool) else "Object" if isinstance(v, dict) else "String")
            out[key] = {"type": kind, "value": v}
    defaults = {
        "enableNoPublicIp": ("Bool", True), "prepareEncryption": ("Bool", False), "requireInfrastructureEncryption": ("Bool", False),
        "storageAccountName": ("String", "dbstorage" + "".join(random.choices(string.ascii_lowercase + string.digits, k=13))),
        "storageAccountSkuName": ("String", "Standard_GRS"),
        "resourceTags": ("Object", {"application": "databricks", "databricks-environment": "true"}),
    }
    for key, (kind, value) in defaults.items():
        out.setdefault(key, {"type": kind, "value": value})
    return out


def _refuse(code: str, message: str) -> ArmError:
    return bad_request(code, message)


def _validate(ctx: Any, rid: str, body: dict, existing: dict | None) -> dict:
    """Synchronous checks; returns what the workspace needs (compute mode, SKU, network, async failure)."""
    props, sku = body.get("properties") or {}, ((body.get("sku") or {}).get("name") or "standard")
    premium = sku.lower() == "premium"
    mode = props.get("computeMode")
    old = (existing or {}).get("properties", {})
    if existing is None and not mode and ctx.api_version[:10] >= "2026-01-01" and rules.enforced("workspace-needs-compute-mode"):
        raise _refuse("ComputeModeRequired", "The 'computeMode' property is required when creating a workspace. Supported values are 'Hybrid' and 'Serverless'.")
    mode = mode or old.get("computeMode") or "Hybrid"
    if existing is not None and old.get("computeMode") and not same(mode, old["computeMode"]) and rules.enforced("workspace-compute-mode-immutable"):
        raise _refuse("ComputeModeChangeNotAllowed", f"Updating computeMode from {old['computeMode']} to {mode} is currently not allowed")
    mrg_ref = old.get("managedResourceGroupId") or props.get("managedResourceGroupId")  # kept on update
    mrg = parse_group_id(mrg_ref)
    if mrg is None or not same(mrg[0], ctx.sub):
        raise _refuse("InvalidParameter", f"The managedResourceGroupId '{mrg_ref}' is not a valid resource group id in subscription '{ctx.sub}'.")
    nsg_rules = props.get("requiredNsgRules") or old.get("requiredNsgRules") or "AllRules"
    if nsg_rules == "NoAzureDatabricksRules" and not premium and rules.enforced("workspace-premium-for-nsg-rules"):
        raise _refuse("InvalidSkuForRequiredNsgRules", "The requiredNsgRules value 'NoAzureDatabricksRules' is only supported for workspaces on the premium pricing tier.")
    access = props.get("publicNetworkAccess") or old.get("publicNetworkAccess") or "Enabled"
    if access == "Disabled" and not premium and rules.enforced("workspace-premium-for-private-access"):
        raise _refuse("InvalidSkuForPublicNetworkAccess", "Disabling public network access (Private Link) is only supported for workspaces on the premium pricing tier.")
    params = {**(old.get("parameters") or {}), **(props.get("parameters") or {})}  # an update keeps what it omits
    vnet_ref = _param(params, "customVirtualNetworkId")
    old_vnet = _param(old.get("parameters") or {}, "customVirtualNetworkId")
    if existing is not None and not same(vnet_ref or old_vnet, old_vnet) and rules.enforced("workspace-vnet-immutable"):
        raise _refuse("VirtualNetworkIdChangeNotAllowed", f"Updating required Virtual Network from {old_vnet} to {vnet_ref} is currently not allowed")
    subnets, failure = [], None
    mrg_record = STORE.get(group_id(*mrg))
    if mrg_record is not None and not same(mrg_record.get("managedBy"), rid) and rules.enforced("workspace-managed-rg-must-not-exist"):
        failure = {
            "code": "ResourceOperationFailure",
            "message": "The resource operation completed with terminal provisioning state 'Failed'.",
            "details": [{"code": "ApplianceProvisioningFailed", "message": f"The managed resource group '{mrg_ref}' already exists. Please specify a new non-existent managed resource group"}],
        }
    if vnet_ref:
        vnet = STORE.get(vnet_ref)
        if vnet is None or vnet["_kind"] != "virtual_networks":
            if rules.enforced("workspace-vnet-must-exist"):
                failure = failure or {"code": "VirtualNetworkNotFound", "message": f"The virtual network '{vnet_ref}' could not be found."}
        else:
            for key in ("customPublicSubnetName", "customPrivateSubnetName"):
                name = _param(params, key)
                subnet = STORE.get(f"{vnet['id']}/subnets/{name}") if name else None
                if subnet is None:
                    if rules.enforced("workspace-subnet-must-exist"):
                        prefix = vnet["properties"]["addressSpace"]["addressPrefixes"][0]
                        failure = failure or {"code": "SubnetIsNotWithinVnetError", "message": f"The subnet {name} CIDR range '<null>' is not within the Virtual Network CIDR range '{prefix}'"}
                    continue
                _check_subnet(rid, subnet)
                subnets.append(subnet["id"])
    return {"sku": sku, "mode": mode, "mrg": mrg, "nsg_rules": nsg_rules, "access": access, "subnets": subnets, "vnet": vnet_ref, "failure": failure}


def _check_subnet(rid: str, subnet: dict) -> None:
    services = [d["properties"]["serviceName"].lower() for d in subnet["properties"].get("delegations") or []]
    if "microsoft.databricks/workspaces" not in services and rules.enforced("workspace-subnet-delegated"):
        raise _refuse(
            "SubnetMissingRequiredDelegation",
            f"Subnet {subnet['id']} requires any of the following delegation(s) [Microsoft.Databricks/workspaces] to "
            f"reference network intent policy of workspace {rid}.",
        )
    if not subnet["properties"].get("networkSecurityGroup") and rules.enforced("workspace-subnet-has-nsg"):
        raise _refuse("SubnetMissingNetworkSecurityGroup", f"Subnet {subnet['id']} must have a network security group associated with it for Azure Databricks.")
    others = [u for u, _ in _subnet_claims(subnet) if not same(u, rid)]
    if others and rules.enforced("workspace-subnet-not-shared"):
        raise _refuse("SubnetAlreadyInUse", f"Subnet {subnet['id']} is already used by workspace {others[0]}. A subnet can be used by one workspace only.")


def _put(ctx: Any) -> tuple[int, Any, dict]:
    rg, name, body = ctx.args["rg"], ctx.args["ws"], ctx.body()
    resources.group(ctx, rg, write=True)
    location = resources.require_location(body)
    rid = ws_id(ctx.sub, rg, name)
    existing = STORE.get(rid)
    if busy(existing) and rules.enforced("workspace-one-operation-at-a-time"):
        raise ArmError(409, "ConcurrentUpdateError", _BUSY)
    need = _validate(ctx, existing["id"] if existing else rid, body, existing)
    ws = existing or STORE.add({"id": rid, "name": name, "type": TYPE, "_kind": "workspaces", "_nip": ""})
    props, old = body.get("properties") or {}, (existing or {}).get("properties", {})
    ws.update({"location": location, "sku": {"name": need["sku"]}, "_subnets": need["subnets"], "_vnet": need["vnet"]})
    ws["_nip"] = ws["_nip"] or provider_id(ctx.sub, rg, "Microsoft.Network", "networkIntentPolicies", f"adb-{location}-{new_guid().replace('-', '')[:10]}")
    if body.get("tags"):
        ws["tags"] = dict(body["tags"])
    else:
        ws.pop("tags", None)
    stamp = lro.iso(ctx.at)
    ws["properties"] = {
        **{k: v for k, v in old.items() if k in ("workspaceId", "workspaceUrl", "createdBy", "createdDateTime")},
        "managedResourceGroupId": old.get("managedResourceGroupId") or props["managedResourceGroupId"],
        "computeMode": need["mode"],
        "parameters": _parameters(props.get("parameters") or {}, existing),
        "provisioningState": "Updating" if state_of(existing) == "Succeeded" else "Accepted",
        "authorizations": [{"principalId": "9a74af6f-d153-4348-988a-e2672920bee9", "roleDefinitionId": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"}],
        "publicNetworkAccess": need["access"],
        "requiredNsgRules": need["nsg_rules"],
        "updatedBy": {"oid": resources.SANDBOX_OBJECT_ID, "puid": "1003200000000001", "applicationId": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
    }
    ws["properties"].setdefault("createdBy", dict(ws["properties"]["updatedBy"]))
    ws["properties"].setdefault("createdDateTime", stamp)
    mrg_taken = need["failure"] is not None and need["failure"]["code"] == "ResourceOperationFailure"
    if not mrg_taken and STORE.get(group_id(*need["mrg"])) is None:
        resources.new_group(ctx.sub, need["mrg"][1], location, {"application": "databricks", "databricks-environment": "true"}, ws["id"])
    then = "Failed" if need["failure"] else "Succeeded"
    op = lro.schedule(ws, ctx.at, ctx.delay("azure_workspace_provisioning_seconds", rid), then, ns=NS, location=location, error=need["failure"])
    return lro.reply_put(ctx, render(ws), op, existing is None, with_location=True)


def _settled(ws: dict) -> None:
    if state_of(ws) != "Succeeded":
        return
    props = ws["properties"]
    if not props.get("workspaceId"):
        props["workspaceId"] = str(random.randint(10**15, 10**16 - 1))
        props["workspaceUrl"] = f"adb-{props['workspaceId']}.{random.randint(1, 19)}.azuredatabricks.net"
    if rules.enforced("workspace-adds-nsg-rules"):
        for sid in ws["_subnets"]:
            subnet = STORE.get(sid)
            group = STORE.get((subnet or {}).get("properties", {}).get("networkSecurityGroup", {}).get("id"))
            if group is not None:
                nsg.add_rules(group, [{**r, "name": _USE_ONLY + r["name"]} for r in nip_rules(ws)])
        ws["_rules_added"] = True


def _workspace(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "PUT":
        return _put(ctx)
    rg, name = ctx.args["rg"], ctx.args["ws"]
    reply, ws = resources.read_or_gone(ctx, rg, ws_id(ctx.sub, rg, name), f"{TYPE}/{name}", render)
    if reply is not None:
        return reply
    if busy(ws) and rules.enforced("workspace-one-operation-at-a-time"):
        raise ArmError(409, "ConcurrentUpdateError", _BUSY)
    op = lro.schedule(ws, ctx.at, ctx.delay("azure_workspace_deleting_seconds", ws["id"]), "deleted", ns=NS, location=ws["location"])
    ws["properties"]["provisioningState"] = "Deleting"
    return lro.reply_delete(ctx, op)


def _finish_delete(ws: dict, op: dict | None) -> None:
    for pe in endpoints.targeting(ws["id"]):
        pe["properties"]["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"] = {
            "status": "Disconnected", "description": "The private link resource was deleted.", "actionsRequired": "None",
        }
    mrg = STORE.get(ws["properties"]["managedResourceGroupId"])
    if mrg is not None and same(mrg.get("managedBy"), ws["id"]):
        sub = mrg["id"].split("/")[2]
        for member in STORE.in_group(sub, mrg["name"]):
            STORE.remove(member["id"])
        STORE.remove(mrg["id"])
    STORE.remove(ws["id"])


def _list(ctx: Any) -> tuple[int, Any, dict]:
    return resources.list_kind(ctx, "workspaces", render)


def _connections(ctx: Any) -> tuple[int, Any, dict]:
    resources.group(ctx, ctx.args["rg"])
    ws = STORE.get(ws_id(ctx.sub, ctx.args["rg"], ctx.args["ws"]))
    if ws is None:
        raise resource_not_found(f"{TYPE}/{ctx.args['ws']}", ctx.args["rg"])
    found = render(ws)["properties"]["privateEndpointConnections"]
    if "pec" not in ctx.args:
        return 200, {"value": found}, {}
    match = next((c for c in found if same(c["name"], ctx.args["pec"])), None)
    if match is None:
        raise resource_not_found(f"{TYPE}/{ws['name']}/privateEndpointConnections/{ctx.args['pec']}", ctx.args["rg"])
    return 200, match, {}


subnets.SUBNET_CLAIMS.append(_subnet_claims)
nsg.NSG_REQUIREMENTS.append(_nsg_needs)
lro.SETTLED["workspaces"] = _settled
lro.FINISH_DELETE["workspaces"] = _finish_delete

_RG = "/subscriptions/<sub>/resourcegroups/<rg>/providers/microsoft.databricks/workspaces"
ROUTES = [
    ("/subscriptions/<sub>/providers/microsoft.databricks/workspaces", "ws_list_sub", "databricks", "workspaces", ["GET"]),
    (_RG, "ws_list", "databricks", "workspaces", ["GET"]),
    (f"{_RG}/<ws>", "ws", "databricks", "workspaces", ["GET", "PUT", "DELETE"]),
    (f"{_RG}/<ws>/privateendpointconnections", "ws_pecs", "databricks", "workspaces/privateEndpointConnections", ["GET"]),
    (f"{_RG}/<ws>/privateendpointconnections/<pec>", "ws_pecs", "databricks", "workspaces/privateEndpointConnections", ["GET"]),
]
HANDLERS = {"ws_list_sub": _list, "ws_list": _list, "ws": _workspace, "ws_pecs": _connections}
