"""Unity Catalog on the Account API, as databricks-sdk 0.156 calls it (service/catalog.py,
AccountMetastoresAPI and AccountMetastoreAssignmentsAPI):

- POST   accounts/<a>/metastores {metastore_info: {name, region, storage_root?}} -> {metastore_info}
- GET    accounts/<a>/metastores -> {metastores: [...]}; GET/PUT/DELETE accounts/<a>/metastores/<id>
  (GET and PUT answer {metastore_info}; PUT takes {metastore_info: UpdateAccountsMetastore}; DELETE ?force=true)
- GET    accounts/<a>/metastores/<id>/workspaces -> {workspace_ids: [...]}
- POST/PUT/DELETE accounts/<a>/workspaces/<ws>/metastores/<id> {metastore_assignment: {...}} -> {}
- GET    accounts/<a>/workspaces/<ws>/metastore -> {metastore_assignment: {workspace_id, metastore_id, default_catalog_name}}

Rules:
- A metastore needs a name and a valid AWS region; no storage_root is needed (catalogs bring their own storage
  or the default storage of a serverless workspace). One metastore per region per account (W5): 400 INVALID_STATE
  "This account with id <acct> has reached the limit for metastores in region <region>."
- DELETE of a metastore assigned to any workspace, or still holding catalogs, storage credentials or external
  locations, is refused without force=true (W6): 400 INVALID_STATE "Metastore <id> is still assigned to
  workspace(s) <ids>." (the assignment check comes first). With force=true it goes with its assignments and
  every object in it.
- An assignment needs the workspace and the metastore of this account, in the same region; a workspace has at
  most one (a second: 409 RESOURCE_ALREADY_EXISTS). Its record keeps `_assigned_at` (time.monotonic()): identity
  federation (identity_api.py, W2) and the workspace's Unity Catalog APIs start from there.
Account-level lookups of missing objects answer 404 RESOURCE_DOES_NOT_EXIST (the workspace-level W3 code,
METASTORE_DOES_NOT_EXIST, is only for "no metastore assigned to this workspace").
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    json_body,
    not_found,
    now_ms,
)
from provision.sandbox.settings import SandboxSettings

_ACCT = "/api/2.0/accounts/<account_id>"
RULES = [
    Rule(f"{_ACCT}/metastores", endpoint="uc.metastores", methods=["GET", "POST"]),
    Rule(f"{_ACCT}/metastores/<metastore_id>", endpoint="uc.metastore", methods=["GET", "PUT", "DELETE"]),
    Rule(f"{_ACCT}/metastores/<metastore_id>/workspaces", endpoint="uc.metastore_workspaces", methods=["GET"]),
    Rule(f"{_ACCT}/workspaces/<workspace_id>/metastore", endpoint="uc.workspace_metastore", methods=["GET"]),
    Rule(
        f"{_ACCT}/workspaces/<workspace_id>/metastores/<metastore_id>",
        endpoint="uc.assignment",
        methods=["POST", "PUT", "DELETE"],
    ),
]
ADMIN_USER_NAME = "sandbox-admin@example.com"  # the owner of what the sandbox token creates (identity_api.py)
# UpdateAccountsMetastore: what a PUT may change.
_UPDATABLE = (
    "delta_sharing_organization_name",
    "delta_sharing_recipient_token_lifetime_in_seconds",
    "delta_sharing_scope",
    "external_access_enabled",
    "owner",
    "privilege_model_version",
    "storage_root_credential_id",
)
_DELTA_SHARING_SCOPES = {"INTERNAL", "INTERNAL_AND_EXTERNAL"}
# The metastore-side kinds (unity_workspace.py) keyed by (metastore_id, name).
METASTORE_OBJECT_KINDS = ("catalogs", "schemas", "storage_credentials", "external_locations")


def workspace_id_of(account_id: str, raw: Any) -> int:
    """The workspace of a path segment: an integer id of an existing workspace of this account."""
    try:
        workspace_id = int(raw)
    except (TypeError, ValueError):
        raise invalid(f"workspace_id {raw} must be an integer.") from None
    if workspace_id not in STORE.kind(account_id, "workspaces"):
        raise not_found("Workspace", workspace_id)
    return workspace_id


def _metastore(account_id: str, metastore_id: str) -> dict:
    record = STORE.kind(account_id, "metastores").get(metastore_id)
    if record is None:
        raise not_found("Metastore", metastore_id)
    return record


def assigned_workspaces(account_id: str, metastore_id: str) -> list[int]:
    return sorted(
        a["workspace_id"] for a in STORE.kind(account_id, "metastore_assignments").values() if a["metastore_id"] == metastore_id
    )


def assignment_of(account_id: str, workspace_id: int) -> dict | None:
    """The workspace's metastore assignment record, if any (with its private `_assigned_at`)."""
    return STORE.kind(account_id, "metastore_assignments").get(workspace_id)


def _create_metastore(account_id: str, body: dict) -> dict:
    info = body.get("metastore_info")
    if not isinstance(info, dict):
        raise invalid("metastore_info is required.")
    name, region = info.get("name"), info.get("region")
    if not isinstance(name, str) or not name.strip():
        raise invalid("metastore_info.name is required and must be a non-empty string.")
    if not isinstance(region, str) or not region:
        raise invalid("metastore_info.region is required.")
    if not aws_bridge.region_exists(region):
        raise invalid(f"metastore_info.region {region} is not a valid AWS region.")
    storage_root = info.get("storage_root")
    if storage_root is not None and (not isinstance(storage_root, str) or not storage_root.startswith("s3://")):
        raise invalid(f"metastore_info.storage_root {storage_root!r} must be an s3:// URL.")
    if any(m["region"] == region for m in STORE.kind(account_id, "metastores").values()):
        raise ApiError(
            400,
            "INVALID_STATE",
            f"This account with id {account_id} has reached the limit for metastores in region {region}.",
        )
    metastore_id = str(uuid.uuid4())
    now = now_ms()
    record: dict[str, Any] = {
        "metastore_id": metastore_id,
        "name": name,
        "region": region,
        "cloud": "aws",
        "global_metastore_id": f"aws:{region}:{metastore_id}",
        "owner": ADMIN_USER_NAME,
        "created_at": now,
        "created_by": ADMIN_USER_NAME,
        "updated_at": now,
        "updated_by": ADMIN_USER_NAME,
        "delta_sharing_scope": "INTERNAL",
        "privilege_model_version": "1.0",
        "external_access_enabled": bool(info.get("external_access_enabled", False)),
    }
    if storage_root is not None:
        record["storage_root"] = storage_root
    STORE.kind(account_id, "metastores")[metastore_id] = record
    return record


def _update_metastore(record: dict, body: dict) -> dict:
    info = body.get("metastore_info") or {}
    if not isinstance(info, dict):
        raise invalid("metastore_info must be an object.")
    scope = info.get("delta_sharing_scope")
    if scope is not None and scope not in _DELTA_SHARING_SCOPES:
        raise invalid(f"metastore_info.delta_sharing_scope {scope!r} is not one of {sorted(_DELTA_SHARING_SCOPES)}.")
    for field in _UPDATABLE:
        if info.get(field) is not None:
            record[field] = info[field]
    record["updated_at"], record["updated_by"] = now_ms(), ADMIN_USER_NAME
    return record


def _objects_in(account_id: str, metastore_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for kind in METASTORE_OBJECT_KINDS:
        keys = [k for k in STORE.kind(account_id, kind) if isinstance(k, tuple) and k[0] == metastore_id]
        if keys:
            found[kind] = keys
    return found


def _delete_metastore(account_id: str, record: dict, force: bool) -> dict:
    metastore_id = record["metastore_id"]
    workspaces = assigned_workspaces(account_id, metastore_id)
    objects = _objects_in(account_id, metastore_id)
    if not force:
        if workspaces:
            raise ApiError(
                400,
                "INVALID_STATE",
                f"Metastore {metastore_id} is still assigned to workspace(s) {', '.join(map(str, workspaces))}.",
            )
        # The information_schema of a catalog is not the user's; a catalog itself is.
        user_objects = {
            kind: keys for kind, keys in objects.items() if kind != "schemas" or any(not str(k[1]).endswith(".information_schema") for k in keys)
        }
        if user_objects:
            what = ", ".join(f"{len(keys)} {kind.replace('_', ' ')}" for kind, keys in user_objects.items())
            raise ApiError(
                400, "INVALID_STATE", f"Metastore {metastore_id} is not empty: it holds {what}. Use force=true to delete it anyway."
            )
    for workspace_id in workspaces:
        del STORE.kind(account_id, "metastore_assignments")[workspace_id]
    for kind, keys in objects.items():
        for key in keys:
            del STORE.kind(account_id, kind)[key]
    del STORE.kind(account_id, "metastores")[metastore_id]
    return {}


def _assignment_body(body: dict, workspace_id: int, metastore_id: str) -> dict:
    assignment = body.get("metastore_assignment") or {}
    if not isinstance(assignment, dict):
        raise invalid("metastore_assignment must be an object.")
    if assignment.get("workspace_id") not in (None, workspace_id, str(workspace_id)):
        raise invalid(f"metastore_assignment.workspace_id {assignment['workspace_id']} does not match the path ({workspace_id}).")
    if assignment.get("metastore_id") not in (None, metastore_id):
        raise invalid(f"metastore_assignment.metastore_id {assignment['metastore_id']} does not match the path ({metastore_id}).")
    name = assignment.get("default_catalog_name")
    if name is not None and not isinstance(name, str):
        raise invalid("metastore_assignment.default_catalog_name must be a string.")
    return assignment


def _assign(account_id: str, workspace_id: int, metastore: dict, body: dict) -> dict:
    assignment = _assignment_body(body, workspace_id, metastore["metastore_id"])
    ws = STORE.kind(account_id, "workspaces")[workspace_id]
    if ws["aws_region"] != metastore["region"]:
        raise invalid(
            f"Workspace {workspace_id} is in region {ws['aws_region']}, but metastore {metastore['metastore_id']} is in "
            f"region {metastore['region']}: a workspace can only be assigned a metastore of its own region."
        )
    current = assignment_of(account_id, workspace_id)
    if current is not None:
        raise ApiError(
            409,
            "RESOURCE_ALREADY_EXISTS",
            f"Workspace {workspace_id} is already assigned to metastore {current['metastore_id']}.",
        )
    STORE.kind(account_id, "metastore_assignments")[workspace_id] = {
        "workspace_id": workspace_id,
        "metastore_id": metastore["metastore_id"],
        "default_catalog_name": assignment.get("default_catalog_name") or "hive_metastore",
        "_assigned_at": time.monotonic(),
    }
    return {}


def _existing_assignment(account_id: str, workspace_id: int, metastore_id: str) -> dict:
    current = assignment_of(account_id, workspace_id)
    if current is None or current["metastore_id"] != metastore_id:
        raise ApiError(
            404,
            "RESOURCE_DOES_NOT_EXIST",
            f"Workspace {workspace_id} is not assigned to metastore {metastore_id}.",
        )
    return current


def _public_assignment(record: dict) -> dict:
    return {k: record[k] for k in ("workspace_id", "metastore_id", "default_catalog_name") if record.get(k) is not None}


def handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Any:
    account_id = args["account_id"]
    metastores = STORE.kind(account_id, "metastores")
    if endpoint == "uc.metastores":
        if request.method == "POST":
            return {"metastore_info": _create_metastore(account_id, json_body(request))}
        return {"metastores": list(metastores.values())}
    if endpoint == "uc.workspace_metastore":
        workspace_id = workspace_id_of(account_id, args["workspace_id"])
        current = assignment_of(account_id, workspace_id)
        if current is None:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Workspace {workspace_id} has no metastore assigned.")
        return {"metastore_assignment": _public_assignment(current)}
    if endpoint == "uc.assignment":
        workspace_id = workspace_id_of(account_id, args["workspace_id"])
        metastore = _metastore(account_id, args["metastore_id"])
        if request.method == "POST":
            return _assign(account_id, workspace_id, metastore, json_body(request))
        current = _existing_assignment(account_id, workspace_id, metastore["metastore_id"])
        if request.method == "PUT":
            # Only the default catalog may change (AccountMetastoreAssignmentsAPI.update).
            name = _assignment_body(json_body(request), workspace_id, metastore["metastore_id"]).get("default_catalog_name")
            if name:
                current["default_catalog_name"] = name
            return {}
        del STORE.kind(account_id, "metastore_assignments")[workspace_id]
        return {}
    record = _metastore(account_id, args["metastore_id"])
    if endpoint == "uc.metastore_workspaces":
        return {"workspace_ids": assigned_workspaces(account_id, record["metastore_id"])}
    if request.method == "GET":
        return {"metastore_info": record}
    if request.method == "PUT":
        return {"metastore_info": _update_metastore(record, json_body(request))}
    return _delete_metastore(account_id, record, request.args.get("force", "").lower() == "true")
