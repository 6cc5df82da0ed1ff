"""The emulator's WSGI app: routes of the Account API, each workspace's API and the OAuth issuers, the
authentication of Account API calls, and the store-wide views (inventory, reset). The Account API's Unity
Catalog, identity and serverless-egress routes are declared and answered by unity_account.py, identity_api.py,
identity_access.py and network_api.py (endpoint "<family>.<name>")."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

import provision.clouds.databricks.sandbox.identity_access as identity_access  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.identity_api as identity_api  # noqa: PLR0402
import provision.clouds.databricks.sandbox.keys as keys  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.network_api as network_api  # noqa: PLR0402
import provision.clouds.databricks.sandbox.oauth as oauth  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.unity_account as unity_account  # noqa: PLR0402
from provision.clouds.databricks.sandbox.account_api import (
    create_credentials,
    create_network,
    create_private_access_settings,
    create_storage,
    create_vpc_endpoint,
    replace_private_access_settings,
    sync_endpoint,
)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    get_record,
    invalid,
    json_body,
    networks_using_endpoint,
    public,
    users_of,
)
from provision.clouds.databricks.sandbox.workspace_api import (
    WORKSPACE_PREFIX,
    handle_workspace,
    purge_expired_tokens,
)
from provision.clouds.databricks.sandbox.workspaces import (
    advance_workspace,
    create_workspace,
    forget_workspace,
    update_workspace,
)
from provision.sandbox.settings import SandboxSettings

_ACCOUNT_ID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# URL segment -> (store kind, id field in the JSON body)
_SEGMENTS: dict[str, tuple[str, str]] = {
    "credentials": ("credentials", "credentials_id"),
    "storage-configurations": ("storage_configurations", "storage_configuration_id"),
    "networks": ("networks", "network_id"),
    "workspaces": ("workspaces", "workspace_id"),
    "vpc-endpoints": ("vpc_endpoints", "vpc_endpoint_id"),
    "private-access-settings": ("private_access_settings", "private_access_settings_id"),
    "customer-managed-keys": ("customer_managed_keys", "customer_managed_key_id"),
}


def reset() -> None:
    """Forget every emulated Databricks object and issued OAuth token (moto's AWS state is untouched)."""
    STORE.clear()
    oauth.reset()


def inventory(settings_or_app: Any = None) -> dict:
    """Every object per account per kind, API-shaped: {account_id: {kind: [obj, ...]}}.

    Given the settings (or an app from make_databricks_app), due workspace transitions are applied
    first so the dump matches what a GET would return."""
    settings = settings_or_app if isinstance(settings_or_app, SandboxSettings) else None
    if settings is None:
        settings = getattr(settings_or_app, "sandbox_settings", None)
    with STORE.lock:
        for account_id, kinds in STORE.accounts.items():
            purge_expired_tokens(account_id)
            for registration in kinds["vpc_endpoints"].values():
                sync_endpoint(settings, registration)
            for ws in kinds["workspaces"].values() if settings is not None else ():
                advance_workspace(settings, account_id, ws)
            for rule in kinds["private_endpoint_rules"].values():
                network_api.refresh_rule(settings, rule)
        return {
            account_id: {kind: [public(r) for r in records.values()] for kind, records in kinds.items()}
            for account_id, kinds in STORE.accounts.items()
        }


# Unity Catalog objects live in a metastore, not a workspace: what the listing reads here, for a metastore that no
# running workspace reaches (adopted, left behind by a teardown), under the kinds `listing.py` names.
_METASTORE_KINDS = {
    "catalogs": "databricks_catalogs", "schemas": "databricks_schemas",
    "external_locations": "databricks_external-locations", "storage_credentials": "databricks_storage-credentials",
}


def metastore_objects(account_id: str) -> dict[str, dict[str, list[dict]]]:
    """{metastore_id: {kind: [object, ...]}} for every metastore of the account (sandbox control API: a leak into a
    metastore no workspace can reach any more is a leak too). System catalogs and information_schema are not listed."""
    with STORE.lock:
        out: dict[str, dict[str, list[dict]]] = {m: {k: [] for k in _METASTORE_KINDS.values()} for m in STORE.kind(account_id, "metastores")}
        for kind, listed in _METASTORE_KINDS.items():
            for record in STORE.kind(account_id, kind).values():
                if record.get("catalog_type") in ("SYSTEM_CATALOG", "INTERNAL_CATALOG") or (kind == "schemas" and record.get("name") == "information_schema"):
                    continue
                if record.get("metastore_id") in out:
                    out[record["metastore_id"]][listed].append(public(record))
        return out


_CREATORS: dict[str, Callable[[SandboxSettings, str, dict], dict]] = {
    "credentials": create_credentials,
    "storage_configurations": create_storage,
    "networks": create_network,
    "workspaces": create_workspace,
    "vpc_endpoints": create_vpc_endpoint,
    "private_access_settings": create_private_access_settings,
    "customer_managed_keys": keys.create_customer_managed_key,
}

_URLS = Map(
    [
        Rule("/.well-known/databricks-config", endpoint="host_metadata", methods=["GET"]),
        # Specific account paths (static segments win over the generic <segment> rules below).
        *unity_account.RULES,
        *identity_api.RULES,
        *identity_access.RULES,
        *network_api.RULES,
        Rule("/api/2.0/accounts/<account_id>/<segment>", endpoint="collection", methods=["GET", "POST"]),
        Rule(
            "/api/2.0/accounts/<account_id>/<segment>/<obj_id>",
            endpoint="item",
            methods=["GET", "DELETE", "PATCH", "PUT"],
        ),
        # Each workspace's own API (see workspace_host); an unknown path or method still checks the
        # workspace first, then answers ENDPOINT_NOT_FOUND as a workspace does.
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/.well-known/databricks-config", endpoint="ws_metadata", methods=["GET"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/api/2.0/token/create", endpoint="ws_token_create", methods=["POST"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/api/2.0/token/list", endpoint="ws_token_list", methods=["GET"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/api/2.0/token/delete", endpoint="ws_token_delete", methods=["POST"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/api/2.0/preview/scim/v2/Me", endpoint="ws_me", methods=["GET"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/api/2.0/settings/types/<setting_type>/names/<setting_name>", endpoint="ws_setting", methods=["GET", "PATCH"]),
        Rule("/oidc/accounts/<account_id>/.well-known/oauth-authorization-server", endpoint="oidc_discovery", methods=["GET"]),
        Rule("/oidc/accounts/<account_id>/v1/token", endpoint="oidc_token", methods=["POST"]),
        Rule(
            f"{WORKSPACE_PREFIX}/<deployment>/oidc/.well-known/oauth-authorization-server",
            endpoint="ws_oidc_discovery",
            methods=["GET"],
        ),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/oidc/v1/token", endpoint="ws_oidc_token", methods=["POST"]),
        Rule(f"{WORKSPACE_PREFIX}/<deployment>/<path:rest>", endpoint="ws_unknown"),
    ],
    strict_slashes=False,
)


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(status: int, error_code: str, message: str) -> Response:
    return _json({"error_code": error_code, "message": message}, status)


def _refresh(settings: SandboxSettings, account_id: str, kind: str, record: dict) -> None:
    """Apply what changed since the last read: workspace transitions, endpoint states from AWS."""
    if kind == "workspaces":
        advance_workspace(settings, account_id, record)
    elif kind == "vpc_endpoints":
        sync_endpoint(settings, record)


# Account API families with routes of their own: endpoint "<family>.<name>" -> handler answering a JSON-able body
# or a Response.
_FAMILIES: dict[str, Callable[[SandboxSettings, Request, str, dict], Any]] = {
    "uc": unity_account.handle,
    "id": identity_api.handle,
    "access": identity_access.handle,
    "net": network_api.handle,
}

# The only kinds that accept an update, and with which method (as the SDK sends it).
_UPDATE_METHODS = {"workspaces": "PATCH", "private_access_settings": "PUT"}


def _handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Response:
    if endpoint == "oidc_discovery":
        return _json(oauth.discovery(f"{request.host_url.rstrip('/')}/oidc/accounts/{args['account_id']}"))
    if endpoint == "oidc_token":
        return oauth.token_response(settings, request, f"account:{args['account_id']}")
    if endpoint == "host_metadata":
        # What an account host answers: no workspace_id, so the SDK treats it as account-level.
        host = request.host_url.rstrip("/")
        oidc = f"{host}/oidc/accounts/{{account_id}}"
        return _json({"oidc_endpoint": oidc, "account_id": settings.account_id, "cloud": "AWS"})

    if "." in endpoint:
        if not _ACCOUNT_ID_RE.match(args["account_id"]):
            raise invalid(f"Account id {args['account_id']} is not a valid account id.")
        result = _FAMILIES[endpoint.split(".", 1)[0]](settings, request, endpoint, args)
        return result if isinstance(result, Response) else _json(result)
    account_id, segment = args["account_id"], args["segment"]
    if segment not in _SEGMENTS:
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{request.method} {request.path}'.")
    if not _ACCOUNT_ID_RE.match(account_id):
        raise invalid(f"Account id {account_id} is not a valid account id.")
    kind, id_field = _SEGMENTS[segment]

    if endpoint == "collection":
        if request.method == "POST":
            return _json(public(_CREATORS[kind](settings, account_id, json_body(request))))
        records = list(STORE.kind(account_id, kind).values())
        for record in records:
            _refresh(settings, account_id, kind, record)
        return _json([public(r) for r in records])  # the SDK iterates a bare JSON array

    obj_id: Any = args["obj_id"]
    if kind == "workspaces":
        try:
            obj_id = int(obj_id)
        except ValueError:
            raise invalid(f"workspace_id {obj_id} must be an integer.") from None
    if request.method in ("PATCH", "PUT") and _UPDATE_METHODS.get(kind) != request.method:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported on {segment}.")
    record = get_record(account_id, kind, obj_id)
    _refresh(settings, account_id, kind, record)

    if request.method == "GET":
        return _json(public(record))
    if request.method == "PATCH":
        body = json_body(request)
        return _json(public(update_workspace(account_id, record, body, request.args.get("update_mask"))))
    if request.method == "PUT":
        return _json(public(replace_private_access_settings(account_id, record, json_body(request))))
    # DELETE: configurations still referenced by a workspace cannot go, as in the real API.
    if kind != "workspaces":
        # A workspace names its key configurations in two fields of its own.
        users = keys.workspaces_using(account_id, obj_id) if kind == "customer_managed_keys" else users_of(account_id, id_field, obj_id)
        if users:
            raise ApiError(
                400,
                "INVALID_STATE",
                f"{segment} {obj_id} cannot be deleted: it is used by workspace(s) {', '.join(map(str, users))}.",
            )
        networks = networks_using_endpoint(account_id, obj_id) if kind == "vpc_endpoints" else []
        if networks:
            raise ApiError(
                400,
                "INVALID_STATE",
                f"{segment} {obj_id} cannot be deleted: it is used by network configuration(s) {', '.join(networks)}.",
            )
    else:
        forget_workspace(account_id, record)
        return _json(public(record))
    del STORE.kind(account_id, kind)[obj_id]
    return _json(public(record))


def make_databricks_app(settings: SandboxSettings) -> Callable:
    """A WSGI app emulating the Databricks Account API; settings are read at request time."""

    def app(environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            if request.path.startswith("/api/"):
                # The sandbox token, or an OAuth token from the issuer of the account in the path.
                auth = request.headers.get("Authorization", "")
                parts = request.path.split("/")
                account = parts[4] if len(parts) > 4 and parts[3] == "accounts" else ""
                if not (
                    hmac.compare_digest(auth.encode(), f"Bearer {settings.token}".encode())
                    or oauth.accepts(auth, f"account:{account}")
                ):
                    raise ApiError(401, "UNAUTHENTICATED", "Invalid access token: send Authorization: Bearer <token>.")
            try:
                endpoint, args = _URLS.bind_to_environ(environ).match()
            except HTTPException as e:
                code = "ENDPOINT_NOT_FOUND" if e.code == 404 else "METHOD_NOT_ALLOWED"
                raise ApiError(e.code or 404, code, f"No API found for '{request.method} {request.path}'.") from None
            with STORE.lock:
                if endpoint.startswith("ws_"):
                    response = handle_workspace(settings, request, endpoint, args)
                else:
                    response = _handle(settings, request, endpoint, args)
        except ApiError as e:  # a SCIM error carries its own body
            body = getattr(e, "body", None)
            response = _json(body, e.status) if body is not None else _error(e.status, e.error_code, e.message)
            response.headers.update(e.headers)
        except Exception as e:  # a JSON 500 still reaches the SDK as a typed InternalError
            response = _error(500, "INTERNAL_ERROR", f"{type(e).__name__}: {e}")
        return response(environ, start_response)

    app.sandbox_settings = settings  # type: ignore[attr-defined]  # lets inventory(app) find the settings
    return app
