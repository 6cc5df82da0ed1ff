"""Microsoft.Resources: the subscription, resource groups and the generic resource listings.

- Resource groups are created synchronously, as ARM does (PUT answers 201/200 with provisioningState
  Succeeded; the SDK's create_or_update is not a long-running operation). HEAD answers 204 or 404.
- DELETE answers 202 with Location .../operationresults/<id> and Retry-After; the group and everything in
  it show provisioningState "Deleting" until azure_resource_group_deleting_seconds (or the deletion of a
  workspace in it, whichever is longer) have passed, then go, each with its own side effects (a
  workspace's managed group goes with it). A resource another group still uses (a subnet holding another
  group's private endpoint or workspace, an NSG on another group's subnet), and what that resource uses in
  turn, is not deleted: the operation fails with ResourceGroupDeletionBlocked ("Deletion of resource group
  '<rg>' failed as resources with identifiers '<ids>' could not be deleted. The provisioning state of the
  resource group will be rolled back. ...", Azure/bicep-registry-modules PR #1607, MicrosoftDocs/azure-docs
  #52282) and the group stays with what could not go.
  DELETE of a missing group is 404 ResourceGroupNotFound (the SDK accepts only 200/202).
- A PUT into a group being deleted: 409 ResourceGroupBeingDeleted ("The resource group '<rg>' is in
  deprovisioning state and cannot perform this operation.", as in Azure/azure-cli#21121 and #28679).
- A group's location cannot change: 409 InvalidResourceGroupLocation.
- A workspace's managed resource group (managedBy = the workspace id) is protected by Azure Databricks'
  deny assignment: DELETE or PUT by the user is 403 DenyAssignmentAuthorizationFailed with the wording of
  microsoft/AzureTRE#4776 (the "System deny assignment created by Azure Databricks <workspace id>").
- GET .../resourcegroups/<rg>/resources lists every tracked resource of the group in the generic shape
  (id, name, type, location, tags, sku, managedBy), as does GET /subscriptions/<s>/resources.
"""

from __future__ import annotations

from typing import Any

import provision.clouds.azure.sandbox.lro as lro  # noqa: PLR0402
import provision.clouds.azure.sandbox.rules as rules  # noqa: PLR0402
from provision.clouds.azure.sandbox.store import (
    STORE,
    ArmError,
    bad_request,
    deleting,
    group_id,
    new_guid,
    public,
    resource_not_found,
    rg_not_found,
    same,
)
from provision.sandbox.settings import SANDBOX_AZURE_TENANT_ID

# The principal the sandbox's token stands for (deny-assignment messages name it).
SANDBOX_PRINCIPAL = "sandbox-user@provision.local"
SANDBOX_OBJECT_ID = "5a4db0c5-0000-4000-8000-0000000000b1"
TRACKED = (
    "virtual_networks", "network_security_groups", "private_endpoints", "network_interfaces",
    "private_dns_zones", "virtual_network_links", "workspaces",
)
# Deletion order inside a group: users before what they use.
DELETE_ORDER = (
    "workspaces", "private_dns_zone_groups", "private_endpoints", "network_interfaces", "virtual_network_links",
    "private_dns_zones", "subnets", "virtual_networks", "network_security_groups",
)


def location_of(value: Any) -> str:
    return value.replace(" ", "").lower() if isinstance(value, str) else ""


def require_location(body: dict) -> str:
    location = location_of(body.get("location"))
    if not location:
        raise bad_request("LocationRequired", "The location property is required for this definition.")
    return location


def group(ctx: Any, rg: str, write: bool = False) -> dict:
    """The resource group a request addresses; a write into one being deleted is refused."""
    record = STORE.get(group_id(ctx.sub, rg))
    if record is None:
        raise rg_not_found(rg)
    if write and deleting(record) and rules.enforced("rg-put-while-deleting"):
        raise ArmError(
            409,
            "ResourceGroupBeingDeleted",
            f"The resource group '{record['name']}' is in deprovisioning state and cannot perform this operation.",
        )
    return record


def read_or_gone(ctx: Any, rg: str, rid: str, type_path: str, render: Any) -> tuple[tuple[int, Any, dict] | None, dict | None]:
    """The shared start of a GET or DELETE on one resource: a GET is answered here (404 in ARM's words if it is
    missing), and so is a DELETE of a missing resource (204, as ARM answers). Otherwise (None, the resource)."""
    group(ctx, rg)
    found = STORE.get(rid)
    if ctx.method == "GET":
        if found is None:
            raise resource_not_found(type_path, rg)
        return (200, render(found), {}), found
    if found is None:
        return (204, None, {}), None
    return None, found


def list_kind(ctx: Any, kind: str, render: Any) -> tuple[int, Any, dict]:
    """An ARM list operation of one resource type: by resource group when the path names one (which must
    exist), else across the subscription."""
    found = STORE.of_kind(kind)
    if "rg" in ctx.args:
        group(ctx, ctx.args["rg"])
        found = [r for r in found if same(r["id"].split("/")[4], ctx.args["rg"])]
    return 200, {"value": [render(r) for r in found]}, {}


def generic(record: dict) -> dict:
    out = {k: record[k] for k in ("id", "name", "type", "sku", "kind", "managedBy", "location", "tags") if k in record}
    return out


def _deny(record: dict, action: str) -> None:
    workspace = STORE.get(record.get("managedBy"))
    if workspace is None or workspace["_kind"] != "workspaces" or not rules.enforced("managed-rg-deny-assignment"):
        return
    scope = f"/subscriptions/{record['id'].split('/')[2]}/resourcegroups/{record['name']}"
    raise ArmError(
        403,
        "DenyAssignmentAuthorizationFailed",
        f"The client '{SANDBOX_PRINCIPAL}' with object id '{SANDBOX_OBJECT_ID}' has permission to perform action "
        f"'{action}' on scope '{scope}'; however, the access is denied because of the deny assignment with name "
        f"'System deny assignment created by Azure Databricks {workspace['id']}' and Id "
        f"'{record['_deny_id']}' at scope '{group_id(record['id'].split('/')[2], record['name'])}'.",
    )


def new_group(sub: str, rg: str, location: str, tags: dict | None = None, managed_by: str | None = None) -> dict:
    record: dict[str, Any] = {
        "id": group_id(sub, rg),
        "name": rg,
        "type": "Microsoft.Resources/resourceGroups",
        "location": location,
        "properties": {"provisioningState": "Succeeded"},
        "_kind": "resource_groups",
    }
    if managed_by:
        record["managedBy"] = managed_by
        record["_deny_id"] = new_guid().replace("-", "")
    if tags:
        record["tags"] = dict(tags)
    return STORE.add(record)


def _subscription(ctx: Any) -> tuple[int, Any, dict]:
    return 200, {
        "id": f"/subscriptions/{ctx.sub}",
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": ctx.sub,
        "tenantId": SANDBOX_AZURE_TENANT_ID,
        "displayName": "provision sandbox",
        "state": "Enabled",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "PayAsYouGo_2014-09-01",
            "spendingLimit": "Off",
        },
    }, {}


def _groups(ctx: Any) -> tuple[int, Any, dict]:
    return 200, {"value": [public(r) for r in STORE.of_kind("resource_groups")]}, {}


def _put_group(ctx: Any) -> tuple[int, Any, dict]:
    rg, body = ctx.args["rg"], ctx.body()
    location = require_location(body)
    tags = body.get("tags")
    if tags is not None and not isinstance(tags, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized: 'tags'.")
    existing = STORE.get(group_id(ctx.sub, rg))
    if existing is None:
        return 201, public(new_group(ctx.sub, rg, location, tags, body.get("managedBy"))), {}
    group(ctx, rg, write=True)
    _deny(existing, "Microsoft.Resources/subscriptions/resourcegroups/write")
    if location != existing["location"] and rules.enforced("rg-location-immutable"):
        raise ArmError(
            409,
            "InvalidResourceGroupLocation",
            f"Invalid resource group location '{location}'. The Resource group already exists in location "
            f"'{existing['location']}'.",
        )
    existing["location"] = location
    if tags:
        existing["tags"] = dict(tags)
    else:
        existing.pop("tags", None)
    return 200, public(existing), {}


def _patch_group(ctx: Any) -> tuple[int, Any, dict]:
    record, body = group(ctx, ctx.args["rg"], write=True), ctx.body()
    _deny(record, "Microsoft.Resources/subscriptions/resourcegroups/write")
    if isinstance(body.get("tags"), dict):
        record["tags"] = dict(body["tags"])
    return 200, public(record), {}


def _delete_group(ctx: Any) -> tuple[int, Any, dict]:
    record = group(ctx, ctx.args["rg"])
    _deny(record, "Microsoft.Resources/subscriptions/resourcegroups/delete")
    op = STORE.operations.get(record.get("_op") or "") if deleting(record) else None
    if op is None:
        members = STORE.in_group(ctx.sub, record["name"])
        seconds = ctx.delay("azure_resource_group_deleting_seconds", record["id"])
        if any(m["_kind"] == "workspaces" for m in members):
            seconds = max(seconds, ctx.delay("azure_workspace_deleting_seconds", record["id"]))
        op = lro.schedule(record, ctx.at, seconds, "deleted", ns="Microsoft.Resources", location=record["location"], fail_status=409)
        record["properties"]["provisioningState"] = "Deleting"
        for member in members:
            member["_due"], member["_then"], member["_op"] = op["due"], "deleted", op["id"]
            member.setdefault("properties", {})["provisioningState"] = "Deleting"
    return 202, None, {"Location": lro.result_url(ctx.base, ctx.sub, op, ctx.api_version), "Retry-After": lro.retry_after(op, ctx.at)}


def _group_endpoint(ctx: Any) -> tuple[int, Any, dict]:
    if ctx.method == "PUT":
        return _put_group(ctx)
    if ctx.method == "PATCH":
        return _patch_group(ctx)
    if ctx.method == "DELETE":
        return _delete_group(ctx)
    if ctx.method == "HEAD":
        return (204 if STORE.get(group_id(ctx.sub, ctx.args["rg"])) else 404), None, {}
    return 200, public(group(ctx, ctx.args["rg"])), {}


def _group_resources(ctx: Any) -> tuple[int, Any, dict]:
    record = group(ctx, ctx.args["rg"])
    members = STORE.in_group(ctx.sub, record["name"])
    return 200, {"value": [generic(m) for m in members if m["_kind"] in TRACKED]}, {}


def _subscription_resources(ctx: Any) -> tuple[int, Any, dict]:
    return 200, {"value": [generic(r) for kind in TRACKED for r in STORE.of_kind(kind)]}, {}


def _finish_group_delete(record: dict, op: dict | None) -> None:
    """Delete what the group holds (users first); keep what another group still uses, and then the group."""
    sub = record["id"].split("/")[2]
    members = STORE.in_group(sub, record["name"])
    inside = {m["id"].lower() for m in members}
    blocked_ids: set[str] = set()
    while rules.enforced("rg-delete-blocked-by-external-use"):  # to a fixpoint: what a kept resource uses stays too
        more = {
            m["id"].lower()
            for m in members
            if m["id"].lower() not in blocked_ids
            and any(
                (u.lower() not in inside or u.lower() in blocked_ids) and STORE.get(u) is not None
                for u in lro.USERS.get(m["_kind"], lambda r: [])(m)
            )
        }
        if not more:
            break
        blocked_ids |= more
    blocked = [m for m in members if m["id"].lower() in blocked_ids]
    for kind in DELETE_ORDER:
        for member in [m for m in members if m["_kind"] == kind and m["id"].lower() not in blocked_ids]:
            if STORE.get(member["id"]) is member:
                member["_due"] = member["_then"] = None
                lro.FINISH_DELETE.get(kind, lambda r, o: STORE.remove(r["id"]))(member, None)
    for member in members:  # anything of a kind without an order (none today) goes too
        if STORE.get(member["id"]) is member and member["id"].lower() not in blocked_ids:
            STORE.remove(member["id"])
    if not blocked:
        STORE.remove(record["id"])
        return
    for member in [record, *blocked]:
        lro.settle_now(member)
    if op is not None:
        names = ",".join(b["id"].split("/providers/", 1)[1] for b in blocked if b["_kind"] in TRACKED)
        op["error"] = {
            "code": "ResourceGroupDeletionBlocked",
            "message": f"Deletion of resource group '{record['name']}' failed as resources with identifiers '{names}' "
            f"could not be deleted. The provisioning state of the resource group will be rolled back. The tracking "
            f"Id is '{new_guid()}'. Please check audit logs for more details.",
        }


lro.FINISH_DELETE["resource_groups"] = _finish_group_delete

ROUTES = [
    ("/subscriptions/<sub>", "subscription", "subscriptions", "subscriptions", ["GET"]),
    ("/subscriptions/<sub>/resourcegroups", "rg_list", "resources", "resourceGroups", ["GET"]),
    ("/subscriptions/<sub>/resourcegroups/<rg>", "rg", "resources", "resourceGroups", ["GET", "HEAD", "PUT", "PATCH", "DELETE"]),
    ("/subscriptions/<sub>/resourcegroups/<rg>/resources", "rg_resources", "resources", "resources", ["GET"]),
    ("/subscriptions/<sub>/resources", "sub_resources", "resources", "resources", ["GET"]),
]
HANDLERS = {
    "subscription": _subscription,
    "rg_list": _groups,
    "rg": _group_endpoint,
    "rg_resources": _group_resources,
    "sub_resources": _subscription_resources,
}
