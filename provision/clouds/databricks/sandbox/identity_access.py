"""What account identities may do, as databricks-sdk 0.156 calls it (service/oauth2.py ServicePrincipalSecretsAPI,
service/iam.py WorkspaceAssignmentAPI); the identities themselves are identity_api.py's.

- OAuth secrets: accounts/<a>/servicePrincipals/<sp id>/credentials/secrets: POST {lifetime?: "<n>s", scopes?}
  answers the value (`secret`) once; GET lists {secrets: [...]} (never a value; next_page_token paging); DELETE
  .../secrets/<id>. Only a SHA-256 of a value is kept.
- Workspace permission assignments: accounts/<a>/workspaces/<ws>/permissionassignments (GET: {permission_assignments:
  [{permissions, principal: {principal_id, display_name, user_name|service_principal_name|group_name}}]}),
  .../permissionassignments/principals/<id> (PUT {permissions: [USER|ADMIN]}, DELETE) and
  .../permissionassignments/permissions. Until the workspace's metastore assignment is
  `identity_federation_seconds` old (or with none), every one of them answers W2: 400 BAD_REQUEST "Permission
  assignment APIs are not available for this workspace." The principal must exist (404 otherwise).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request

from provision.clouds.databricks.sandbox.identity_api import (
    ensure_admin,
    find_principal,
)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    json_body,
    not_found,
)
from provision.clouds.databricks.sandbox.unity_account import (
    assignment_of,
    workspace_id_of,
)
from provision.sandbox.settings import SandboxSettings

_ACCT = "/api/2.0/accounts/<account_id>"
_ASSIGN = f"{_ACCT}/workspaces/<workspace_id>/permissionassignments"
RULES = [
    Rule(f"{_ACCT}/servicePrincipals/<sp_id>/credentials/secrets", endpoint="access.secrets", methods=["GET", "POST"]),
    Rule(f"{_ACCT}/servicePrincipals/<sp_id>/credentials/secrets/<secret_id>", endpoint="access.secret", methods=["DELETE"]),
    Rule(_ASSIGN, endpoint="access.assignments", methods=["GET"]),
    Rule(f"{_ASSIGN}/permissions", endpoint="access.assignment_permissions", methods=["GET"]),
    Rule(f"{_ASSIGN}/principals/<principal_id>", endpoint="access.assignment", methods=["PUT", "DELETE"]),
]
_WORKSPACE_PERMISSIONS = {"USER": "Workspace user", "ADMIN": "Workspace admin"}
_DEFAULT_SECRET_LIFETIME_SECONDS = 730 * 24 * 3600  # "a default lifetime of 730 days (63072000s)"


# --- OAuth secrets of service principals ------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_info(record: dict) -> dict:
    return {k: record[k] for k in ("id", "create_time", "update_time", "expire_time", "status", "scopes") if record.get(k) is not None}


def _secrets(account_id: str, request: Request, endpoint: str, args: dict) -> Any:
    sp_id = args["sp_id"]
    if sp_id not in STORE.kind(account_id, "service_principals"):
        raise not_found("Service principal", sp_id)
    store = STORE.kind(account_id, "service_principal_secrets")
    if endpoint == "access.secret":
        record = store.get(args["secret_id"])
        if record is None or record["service_principal_id"] != sp_id:
            raise not_found("Secret", args["secret_id"])
        del store[record["id"]]
        return {}
    if request.method == "GET":
        mine = [_secret_info(s) for s in store.values() if s["service_principal_id"] == sp_id]
        try:
            size = int(request.args.get("page_size") or 0) or len(mine) or 1
            offset = int(request.args.get("page_token") or 0)
        except ValueError:
            raise invalid("page_size and page_token must be integers.") from None
        page: dict[str, Any] = {"secrets": mine[offset : offset + size]}
        if offset + size < len(mine):
            page["next_page_token"] = str(offset + size)
        return page
    body = json_body(request)
    lifetime = body.get("lifetime")
    seconds = _DEFAULT_SECRET_LIFETIME_SECONDS
    if lifetime is not None:
        match = re.fullmatch(r"(\d+)s", str(lifetime))
        if match is None or int(match.group(1)) <= 0:
            raise invalid(f"lifetime {lifetime!r} must be a positive number of seconds such as \"3600s\".")
        seconds = int(match.group(1))
    scopes = body.get("scopes")
    if scopes is not None and (not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes)):
        raise invalid("scopes must be a list of strings.")
    value = "dose" + secrets.token_hex(32)
    now = datetime.now(UTC)
    record: dict[str, Any] = {
        "id": secrets.token_hex(16),
        "service_principal_id": sp_id,
        "create_time": _rfc3339(now),
        "update_time": _rfc3339(now),
        "expire_time": _rfc3339(now + timedelta(seconds=seconds)),
        "status": "ACTIVE",
        "_sha256": hashlib.sha256(value.encode()).hexdigest(),
    }
    if scopes:
        record["scopes"] = list(scopes)
    store[record["id"]] = record
    return {**_secret_info(record), "secret": value}


# --- workspace permission assignments ------------------------------------------------------------------------


def _federated_workspace(settings: SandboxSettings, account_id: str, raw_workspace_id: str) -> int:
    """The workspace, once identity federation is on for it (W2 before)."""
    workspace_id = workspace_id_of(account_id, raw_workspace_id)
    assignment = assignment_of(account_id, workspace_id)
    if assignment is None or time.monotonic() - assignment["_assigned_at"] < settings.delay("identity_federation_seconds", str(workspace_id)):
        raise ApiError(400, "BAD_REQUEST", "Permission assignment APIs are not available for this workspace.")
    return workspace_id


def principal_output(account_id: str, principal_id: Any) -> dict:
    found = find_principal(account_id, principal_id)
    if found is None:
        return {"principal_id": int(principal_id)}
    resource_type, record = found
    out: dict[str, Any] = {"principal_id": int(record["id"]), "display_name": record.get("displayName")}
    field, attr = {"Users": ("user_name", "userName"), "ServicePrincipals": ("service_principal_name", "applicationId"),
                   "Groups": ("group_name", "displayName")}[resource_type]
    out[field] = record.get(attr)
    return out


def _assignment(account_id: str, record: dict) -> dict:
    return {"permissions": list(record["permissions"]), "principal": principal_output(account_id, record["principal_id"])}


def _assignments(settings: SandboxSettings, account_id: str, request: Request, endpoint: str, args: dict) -> Any:
    workspace_id = _federated_workspace(settings, account_id, args["workspace_id"])
    store = STORE.kind(account_id, "permission_assignments")
    if endpoint == "access.assignment_permissions":
        return {"permissions": [{"permission_level": p, "description": d} for p, d in _WORKSPACE_PERMISSIONS.items()]}
    if endpoint == "access.assignments":
        mine = [a for a in store.values() if a["workspace_id"] == workspace_id]
        return {"permission_assignments": [_assignment(account_id, a) for a in mine]}
    raw = args["principal_id"]
    if not raw.isdigit() or find_principal(account_id, raw) is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Principal {raw} does not exist in account {account_id}.")
    key = (workspace_id, int(raw))
    if request.method == "DELETE":
        if key not in store:
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Principal {raw} has no permission assignment on workspace {workspace_id}.")
        del store[key]
        return {}
    permissions = json_body(request).get("permissions")
    if not isinstance(permissions, list) or not permissions or not all(p in _WORKSPACE_PERMISSIONS for p in permissions):
        raise invalid(f"permissions must be a non-empty list of {', '.join(_WORKSPACE_PERMISSIONS)}, not {permissions!r}.")
    store[key] = {"workspace_id": workspace_id, "principal_id": int(raw), "permissions": sorted(set(permissions), key=permissions.index)}
    return _assignment(account_id, store[key])


def handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Any:
    account_id = args["account_id"]
    ensure_admin(account_id)
    if endpoint in ("access.secrets", "access.secret"):
        return _secrets(account_id, request, endpoint, args)
    return _assignments(settings, account_id, request, endpoint, args)
