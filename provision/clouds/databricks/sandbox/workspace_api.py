"""Each workspace's own REST API, minimally, reached by the real WorkspaceClient (see the package
docstring): host metadata, personal access tokens, SCIM Me, the workspace's OAuth issuer, its settings
(settings_api.py), Unity Catalog (unity_workspace.py) and cluster policies (policies_api.py).

W1, warm-up: for `workspace_warmup_seconds` after a workspace first turns RUNNING (`_running_since`), every
authenticated endpoint answers 400 INVALID_PARAMETER_VALUE "Current organization <id> does not have any
associated worker environments", as a new real workspace does; host metadata and the OIDC endpoints are exempt.
Paths nobody serves answer ENDPOINT_NOT_FOUND before authentication, as before."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from typing import Any

from werkzeug.wrappers import Request, Response

import provision.clouds.databricks.sandbox.oauth as oauth  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.policies_api as policies_api  # noqa: PLR0402
import provision.clouds.databricks.sandbox.settings_api as settings_api  # noqa: PLR0402
import provision.clouds.databricks.sandbox.store as store  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.unity_workspace as unity_workspace  # noqa: PLR0402
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    json_body,
    not_found,
    required_str,
)
from provision.clouds.databricks.sandbox.workspaces import advance_workspace
from provision.sandbox.settings import SandboxSettings

WORKSPACE_PREFIX = "/workspaces"
_DEFAULT_TOKEN_LIFETIME_SECONDS = 2 * 365 * 24 * 3600  # "remains valid for 2 years" (SDK TokensAPI.create)


def workspace_host(emulator_host: str, deployment_name: str) -> str:
    """The URL at which the emulator serves workspace `deployment_name`: a WorkspaceClient host."""
    return f"{emulator_host.rstrip('/')}{WORKSPACE_PREFIX}/{urllib.parse.quote(deployment_name, safe='')}"


def _token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def purge_expired_tokens(account_id: str) -> None:
    """Expired tokens stop authenticating and drop out of token/list, as on the real service."""
    now = store.now_ms()
    tokens = STORE.kind(account_id, "tokens")
    for token_id in [t for t, info in tokens.items() if 0 <= info["expiry_time"] <= now]:
        del tokens[token_id]


def _token_info(record: dict) -> dict:
    """A stored token as the Tokens API shows it (PublicTokenInfo): never its value or hash."""
    return {k: record[k] for k in ("token_id", "creation_time", "expiry_time", "comment") if k in record}


def _workspace_tokens(ws: dict) -> dict[str, dict]:
    return {
        token_id: record
        for token_id, record in STORE.kind(ws["account_id"], "tokens").items()
        if record["workspace_id"] == ws["workspace_id"]
    }


def _served_workspace(settings: SandboxSettings, deployment: str) -> dict:
    """The workspace whose URL this is, if that URL answers now (see the module docstring)."""
    ws = next((w for w in STORE.all_workspaces() if w["deployment_name"] == deployment), None)
    if ws is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"No workspace is served at deployment {deployment}.")
    advance_workspace(settings, ws["account_id"], ws)
    status = ws["workspace_status"]
    if status == "RUNNING" or (status == "PROVISIONING" and ws.get("_served")):
        return ws
    if status == "PROVISIONING":
        raise ApiError(
            503,
            "TEMPORARILY_UNAVAILABLE",
            f"Workspace {ws['workspace_id']} ({deployment}) is still being provisioned; try again later.",
            {"Retry-After": "1"},
        )
    raise ApiError(
        400,
        "INVALID_STATE",
        f"Workspace {ws['workspace_id']} ({deployment}) is {status}, not RUNNING: {ws.get('workspace_status_message', '')}",
    )


def _authenticate(settings: SandboxSettings, request: Request, ws: dict) -> None:
    """The sandbox token, an OAuth token from this workspace's issuer, or a live personal access token of
    this very workspace."""
    auth = request.headers.get("Authorization", "")
    if hmac.compare_digest(auth.encode(), f"Bearer {settings.token}".encode()):
        return
    if oauth.accepts(auth, f"workspace:{ws['workspace_id']}"):
        return
    if auth.startswith("Bearer "):
        digest = _token_hash(auth[len("Bearer ") :])
        if any(hmac.compare_digest(digest, t["_sha256"]) for t in _workspace_tokens(ws).values()):
            return
    raise ApiError(401, "UNAUTHENTICATED", "Invalid access token: send Authorization: Bearer <token>.")


def _check_warm(settings: SandboxSettings, ws: dict) -> None:
    """W1: a workspace that only just turned RUNNING has no worker environments yet."""
    since = ws.get("_running_since")
    if since is not None and time.monotonic() - since < settings.delay("workspace_warmup_seconds", str(ws["workspace_id"])):
        raise invalid(f"Current organization {ws['workspace_id']} does not have any associated worker environments")


def _served_path(request: Request, rest: str) -> str | None:
    """Which module serves a path of the catch-all route: "unity", "policies", "settings" (the DELETE of a
    setting), or None (ENDPOINT_NOT_FOUND)."""
    if unity_workspace.handles(rest):
        return "unity"
    if policies_api.handles(rest):
        return "policies"
    parts = rest.strip("/").split("/")
    if request.method == "DELETE" and len(parts) == 7 and parts[:4] == ["api", "2.0", "settings", "types"] and parts[5] == "names":
        return "settings"
    return None


def _me(settings: SandboxSettings, ws: dict) -> dict:
    """The account admin the sandbox token (and every token it created) acts as, as SCIM shows a user."""
    user_id = str(int(hashlib.sha256(ws["account_id"].encode()).hexdigest(), 16) % 10**16)
    user_name = "sandbox-admin@example.com"
    return {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": user_id,
        "userName": user_name,
        "displayName": "Sandbox Admin",
        "active": True,
        "emails": [{"value": user_name, "type": "work", "primary": True}],
        "groups": [{"display": "admins", "type": "direct", "value": "1", "$ref": "Groups/1"}],
    }


def _create_token(ws: dict, body: dict) -> dict:
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise invalid("comment must be a string.")
    lifetime = body.get("lifetime_seconds")
    if lifetime is None:
        lifetime = _DEFAULT_TOKEN_LIFETIME_SECONDS
    elif not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        raise invalid(f"lifetime_seconds must be a positive number of seconds, not {lifetime!r}.")
    value = "dapi" + secrets.token_hex(16)
    now = store.now_ms()
    record: dict[str, Any] = {
        "token_id": secrets.token_hex(32),
        "creation_time": now,
        "expiry_time": now + lifetime * 1000,
        "workspace_id": ws["workspace_id"],
        "_sha256": _token_hash(value),
    }
    if comment is not None:
        record["comment"] = comment
    STORE.kind(ws["account_id"], "tokens")[record["token_id"]] = record
    return {"token_value": value, "token_info": _token_info(record)}


def handle_workspace(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Response:
    ws = _served_workspace(settings, args["deployment"])
    org_id = {"X-Databricks-Org-Id": str(ws["workspace_id"])}
    if endpoint == "ws_metadata":
        # What a workspace host answers (unauthenticated): with workspace_id, so the SDK sees a workspace.
        host = workspace_host(request.host_url, ws["deployment_name"])
        body = {
            "oidc_endpoint": f"{host}/oidc",
            "account_id": ws["account_id"],
            "workspace_id": str(ws["workspace_id"]),
            "cloud": "AWS",
        }
        return Response(json.dumps(body), mimetype="application/json", headers=org_id)
    if endpoint == "ws_oidc_discovery":
        issuer = f"{workspace_host(request.host_url, ws['deployment_name'])}/oidc"
        return Response(json.dumps(oauth.discovery(issuer)), mimetype="application/json", headers=org_id)
    if endpoint == "ws_oidc_token":
        return oauth.token_response(settings, request, f"workspace:{ws['workspace_id']}")
    served = _served_path(request, args["rest"]) if endpoint == "ws_unknown" else None
    if endpoint == "ws_unknown" and served is None:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} /{args['rest']}'.", org_id)
    try:
        _authenticate(settings, request, ws)
        # Sent by the SDK once host metadata named the workspace; a unified host routes by it.
        claimed = request.headers.get("X-Databricks-Workspace-Id")
        if claimed is not None and claimed != str(ws["workspace_id"]):
            raise invalid(f"X-Databricks-Workspace-Id {claimed} does not match workspace {ws['workspace_id']}.")
        _check_warm(settings, ws)
        purge_expired_tokens(ws["account_id"])
        if endpoint == "ws_setting":
            return settings_api.respond(ws, request, args, org_id)
        caller = _me(settings, ws)["userName"]
        if served == "settings":
            parts = args["rest"].strip("/").split("/")
            return settings_api.respond(ws, request, {"setting_type": parts[4], "setting_name": parts[6]}, org_id)
        if served == "unity":
            result = unity_workspace.respond(settings, request, ws, args["rest"], caller)
        elif served == "policies":
            result = policies_api.respond(ws, request, args["rest"], caller)
        elif endpoint == "ws_token_create":
            result = _create_token(ws, json_body(request))
        elif endpoint == "ws_token_list":
            result = {"token_infos": [_token_info(t) for t in _workspace_tokens(ws).values()]}
        elif endpoint == "ws_token_delete":
            token_id = required_str(json_body(request), "token_id")
            if token_id not in _workspace_tokens(ws):
                raise not_found("Token", token_id)
            del STORE.kind(ws["account_id"], "tokens")[token_id]
            result = {}
        else:  # ws_me
            result = _me(settings, ws)
    except ApiError as e:
        e.headers = {**org_id, **e.headers}
        raise
    return Response(json.dumps(result), mimetype="application/json", headers=org_id)
