"""Account identities, as databricks-sdk 0.156 calls them (service/iam.py AccountUsersAPI,
AccountServicePrincipalsAPI, AccountGroupsAPI, WorkspaceAssignmentAPI; service/oauth2.py
ServicePrincipalSecretsAPI):

- SCIM 2.0 under accounts/<a>/scim/v2/{Users,ServicePrincipals,Groups}: POST, GET (list), GET/PUT/PATCH/DELETE
  of one. Resources use SCIM's field names (id, schemas, userName, applicationId, displayName, members
  [{value, display, $ref}], groups, active, ...). Lists answer a SCIM ListResponse {schemas, totalResults,
  startIndex, itemsPerPage, Resources} paged by startIndex (1-based) and count, as the SDK iterates (it stops
  on an empty page); `filter` takes `<attr> eq|ne|co|sw "<value>"` (and `pr`) joined by and/or, e.g.
  displayName eq "x" or applicationId eq "<uuid>"; `attributes`/`excludedAttributes` trim the answer. As on
  accounts created since 2025-08, a Groups list carries no members: GET the group for them. PATCH takes a
  PatchOp ({schemas: [urn:...:PatchOp], Operations: [{op: add|remove|replace, path?, value?}]}, paths
  `members`, `members[value eq "<id>"]` and plain attributes). Errors are SCIM errors ({schemas, detail,
  status}, which the SDK reads as error_code SCIM_<status>). Ids are numeric strings (principal ids are ints
  in the permission-assignment API); a service principal's applicationId is a UUID; userName (users) and
  displayName (groups) are unique, a service principal's displayName is not. Members must exist; deleting a
  principal removes it from groups, its workspace permission assignments and (service principals) its secrets.
- The sandbox admin (the identity the sandbox token acts as) is always an account user; its id is the one
  each workspace's SCIM Me answers (admin_user_id, the same hashing as workspace_api._me).
- OAuth secrets and workspace permission assignments: identity_access.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import uuid
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    json_body,
)
from provision.clouds.databricks.sandbox.unity_account import (
    ADMIN_USER_NAME,
)
from provision.sandbox.settings import SandboxSettings

_ACCT = "/api/2.0/accounts/<account_id>"
_SCIM_TYPES = "<any(Users,ServicePrincipals,Groups):resource_type>"
RULES = [
    Rule(f"{_ACCT}/scim/v2/{_SCIM_TYPES}", endpoint="id.scim_collection", methods=["GET", "POST"]),
    Rule(f"{_ACCT}/scim/v2/{_SCIM_TYPES}/<obj_id>", endpoint="id.scim_item", methods=["GET", "PUT", "PATCH", "DELETE"]),
]
_URN = "urn:ietf:params:scim:schemas:core:2.0:"
_KINDS = {"Users": "users", "ServicePrincipals": "service_principals", "Groups": "groups"}
_SCHEMAS = {"Users": f"{_URN}User", "ServicePrincipals": f"{_URN}ServicePrincipal", "Groups": f"{_URN}Group"}
_PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
# Writable attributes per resource type (id, schemas, groups and meta are the server's).
_ATTRIBUTES = {
    "Users": ("userName", "displayName", "active", "emails", "name", "externalId", "roles", "entitlements"),
    "ServicePrincipals": ("applicationId", "displayName", "active", "externalId", "roles", "entitlements"),
    "Groups": ("displayName", "members", "externalId", "roles", "entitlements"),
}
_FILTER_RE = re.compile(r'\s*([A-Za-z][\w.]*)\s+(eq|ne|co|sw|pr)\b\s*(?:"((?:[^"\\]|\\.)*)")?\s*', re.IGNORECASE)


class ScimError(ApiError):
    """An error of the SCIM API, answered in SCIM's shape (RFC 7644 3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(status, f"SCIM_{status}", f"{scim_type} {detail}".strip() if scim_type else detail)
        self.body: dict[str, Any] = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"], "detail": detail, "status": str(status)}
        if scim_type:
            self.body["scimType"] = scim_type


# --- the sandbox admin ------------------------------------------------------------------------------


def admin_user_id(account_id: str) -> str:
    """The id of the user the sandbox token acts as: what every workspace's SCIM Me answers (workspace_api._me)."""
    return str(int(hashlib.sha256(account_id.encode()).hexdigest(), 16) % 10**16)


def ensure_admin(account_id: str) -> dict:
    users = STORE.kind(account_id, "users")
    user_id = admin_user_id(account_id)
    if user_id not in users:
        users[user_id] = {
            "schemas": [_SCHEMAS["Users"]],
            "id": user_id,
            "userName": ADMIN_USER_NAME,
            "displayName": "Sandbox Admin",
            "active": True,
            "emails": [{"value": ADMIN_USER_NAME, "type": "work", "primary": True}],
            "roles": [{"value": "account_admin"}],
        }
    return users[user_id]


def find_principal(account_id: str, principal_id: Any) -> tuple[str, dict] | None:
    """(resource type, record) of the user, service principal or group with this id."""
    ensure_admin(account_id)
    for resource_type, kind in _KINDS.items():
        record = STORE.kind(account_id, kind).get(str(principal_id))
        if record is not None:
            return resource_type, record
    return None


def principal_named(account_id: str, name: str) -> tuple[str, dict] | None:
    """The principal a Unity Catalog grant names: a user's userName, a service principal's applicationId or a
    group's displayName (for unity_workspace.py)."""
    ensure_admin(account_id)
    for resource_type, kind, attr in (("Users", "users", "userName"), ("ServicePrincipals", "service_principals", "applicationId"),
                                      ("Groups", "groups", "displayName")):
        for record in STORE.kind(account_id, kind).values():
            if record.get(attr) == name:
                return resource_type, record
    return None


# --- SCIM resources -----------------------------------------------------------------------------------


def _new_id(account_id: str) -> str:
    while True:
        candidate = str(secrets.randbelow(9 * 10**15) + 10**15)
        if find_principal(account_id, candidate) is None:
            return candidate


def _ref(account_id: str, member_id: str) -> dict:
    found = find_principal(account_id, member_id)
    if found is None:
        raise ScimError(404, f"Member {member_id} does not exist in the account.", "invalidValue")
    resource_type, record = found
    display = record.get("displayName") or record.get("userName") or ""
    return {"value": record["id"], "display": display, "$ref": f"{resource_type}/{record['id']}"}


def _members(account_id: str, values: Any) -> list[dict]:
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, dict) and v.get("value") for v in values):
        raise ScimError(400, "members must be a list of {\"value\": <principal id>}.", "invalidValue")
    out: list[dict] = []
    for v in values:
        if str(v["value"]) not in {m["value"] for m in out}:
            out.append({"value": str(v["value"])})
            _ref(account_id, str(v["value"]))  # must exist
    return out


def _render(account_id: str, resource_type: str, record: dict) -> dict:
    """The record as SCIM shows it: members resolved, and the groups the principal is a direct member of."""
    out = dict(record)
    if resource_type == "Groups":
        out["members"] = [_ref(account_id, m["value"]) for m in record.get("members", []) if find_principal(account_id, m["value"])]
        out["meta"] = {"resourceType": "Group"}
    groups = [
        {"value": g["id"], "display": g["displayName"], "type": "direct", "$ref": f"Groups/{g['id']}"}
        for g in STORE.kind(account_id, "groups").values()
        if any(m["value"] == record["id"] for m in g.get("members", []))
    ]
    if groups:
        out["groups"] = groups
    return out


def _check_unique(account_id: str, resource_type: str, values: dict, own_id: str | None) -> None:
    attr = {"Users": "userName", "Groups": "displayName", "ServicePrincipals": "applicationId"}[resource_type]
    value = values.get(attr)
    for record in STORE.kind(account_id, _KINDS[resource_type]).values():
        if record["id"] != own_id and value is not None and str(record.get(attr, "")).lower() == str(value).lower():
            what = {"Users": "User with username", "Groups": "Group with name", "ServicePrincipals": "Service principal with application id"}
            raise ScimError(409, f"{what[resource_type]} {value} already exists.", "uniqueness")


def _fields(account_id: str, resource_type: str, body: dict, current: dict | None) -> dict:
    values = {k: body[k] for k in _ATTRIBUTES[resource_type] if body.get(k) is not None}
    if resource_type == "Users":
        if not isinstance(values.get("userName"), str) or not values["userName"].strip():
            raise ScimError(400, "userName is required.", "invalidValue")
        values.setdefault("displayName", values["userName"])
        values.setdefault("emails", [{"value": values["userName"], "type": "work", "primary": True}])
    elif resource_type == "ServicePrincipals":
        app_id = values.get("applicationId") or (current or {}).get("applicationId") or str(uuid.uuid4())
        try:
            uuid.UUID(str(app_id))
        except ValueError:
            raise ScimError(400, f"applicationId {app_id} is not a UUID.", "invalidValue") from None
        if current is not None and app_id != current["applicationId"]:
            raise ScimError(400, "applicationId cannot be changed.", "mutability")
        values["applicationId"] = str(app_id)
    if resource_type in ("Groups", "ServicePrincipals") and (not isinstance(values.get("displayName"), str) or not values["displayName"].strip()):
        raise ScimError(400, "displayName is required.", "invalidValue")
    if resource_type == "Groups":
        values["members"] = _members(account_id, values.get("members"))
    if resource_type != "Groups":
        active = values.get("active", True)
        if not isinstance(active, bool):
            raise ScimError(400, "active must be a boolean.", "invalidValue")
        values["active"] = active
    _check_unique(account_id, resource_type, values, (current or {}).get("id"))
    return values


def _patch(account_id: str, resource_type: str, record: dict, body: dict) -> None:
    if _PATCH_OP not in (body.get("schemas") or []):
        raise ScimError(400, f"schemas must be [\"{_PATCH_OP}\"].", "invalidSyntax")
    operations = body.get("Operations")
    if not isinstance(operations, list) or not operations:
        raise ScimError(400, "Operations must be a non-empty list.", "invalidSyntax")
    updated = {k: v for k, v in record.items() if k in _ATTRIBUTES[resource_type]}
    for operation in operations:
        op = str((operation or {}).get("op", "")).lower()
        path, value = operation.get("path"), operation.get("value")
        if op not in ("add", "remove", "replace"):
            raise ScimError(400, f"op {operation.get('op')!r} is not add, remove or replace.", "invalidSyntax")
        if path is None:
            if op == "remove" or not isinstance(value, dict):
                raise ScimError(400, "An operation without a path needs an object value.", "noTarget")
            for attr, v in value.items():
                if attr == "members" and op == "add":
                    updated["members"] = updated.get("members", []) + (v or [])
                else:
                    updated[attr] = v
            continue
        member = re.fullmatch(r'\s*members\s*\[\s*value\s+eq\s+"?([^"\]]+)"?\s*\]\s*', path, re.IGNORECASE)
        if member and op == "remove":
            updated["members"] = [m for m in updated.get("members", []) if str(m["value"]) != member.group(1)]
        elif path.lower() == "members":
            given = value if isinstance(value, list) else ([value] if isinstance(value, dict) else [])
            if op == "add":
                updated["members"] = updated.get("members", []) + given
            elif op == "replace":
                updated["members"] = given
            else:
                drop = {str(m.get("value")) for m in given}
                updated["members"] = [m for m in updated.get("members", []) if drop and str(m["value"]) not in drop]
        elif path in _ATTRIBUTES[resource_type]:
            if op == "remove":
                updated.pop(path, None)
            else:
                updated[path] = value
        else:
            raise ScimError(400, f"path {path!r} is not an attribute of {resource_type}.", "invalidPath")
    _replace(record, resource_type, _fields(account_id, resource_type, updated, record))


def _replace(record: dict, resource_type: str, fields: dict) -> None:
    for attr in _ATTRIBUTES[resource_type]:
        record.pop(attr, None)
    record.update(fields)


def _matches(account_id: str, resource_type: str, record: dict, expression: str | None) -> bool:
    if not expression:
        return True
    rendered = {k.lower(): v for k, v in _render(account_id, resource_type, record).items()}
    result: bool | None = None
    joiner = "and"
    rest = expression
    while rest.strip():
        m = _FILTER_RE.match(rest)
        if m is None:
            raise ScimError(400, f"Unsupported filter: {expression}", "invalidFilter")
        attr, op, literal = m.group(1).lower(), m.group(2).lower(), m.group(3)
        if op != "pr" and literal is None:
            raise ScimError(400, f"Unsupported filter: {expression}", "invalidFilter")
        actual = rendered.get(attr)
        text = "" if actual is None else str(actual).lower() if isinstance(actual, bool) else str(actual)
        want = re.sub(r"\\(.)", r"\1", literal or "")
        case_insensitive = attr in ("username", "emails")
        if case_insensitive:
            text, want = text.lower(), want.lower()
        term = {
            "eq": actual is not None and text == want,
            "ne": actual is None or text != want,
            "co": actual is not None and want in text,
            "sw": actual is not None and text.startswith(want),
            "pr": actual not in (None, "", []),
        }[op]
        result = term if result is None else (result and term) if joiner == "and" else (result or term)
        rest = rest[m.end():]
        j = re.match(r"(and|or)\s+", rest, re.IGNORECASE)
        if j is None:
            if rest.strip():
                raise ScimError(400, f"Unsupported filter: {expression}", "invalidFilter")
            break
        joiner, rest = j.group(1).lower(), rest[j.end():]
    return bool(result)


def _trim(resource: dict, request: Request) -> dict:
    attributes = [a.strip() for a in request.args.get("attributes", "").split(",") if a.strip()]
    excluded = {a.strip().lower() for a in request.args.get("excludedAttributes", "").split(",") if a.strip()}
    if attributes:
        keep = {a.lower() for a in attributes} | {"id", "schemas"}
        resource = {k: v for k, v in resource.items() if k.lower() in keep}
    return {k: v for k, v in resource.items() if k.lower() not in excluded}


def _int_arg(request: Request, name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        raise ScimError(400, f"{name} must be an integer.", "invalidValue") from None


def _list(account_id: str, resource_type: str, request: Request) -> dict:
    records = [r for r in STORE.kind(account_id, _KINDS[resource_type]).values() if _matches(account_id, resource_type, r, request.args.get("filter"))]
    start, count = max(_int_arg(request, "startIndex", 1), 1), max(_int_arg(request, "count", 10000), 0)
    page = records[start - 1 : start - 1 + count]
    resources = []
    for record in page:
        rendered = _render(account_id, resource_type, record)
        if resource_type == "Groups":
            rendered.pop("members", None)  # not listed since 2025-08: GET the group for its members
        resources.append(_trim(rendered, request))
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": len(records),
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def _forget_principal(account_id: str, principal_id: str) -> None:
    for group in STORE.kind(account_id, "groups").values():
        group["members"] = [m for m in group.get("members", []) if m["value"] != principal_id]
    assignments = STORE.kind(account_id, "permission_assignments")
    for key in [k for k, a in assignments.items() if str(a["principal_id"]) == principal_id]:
        del assignments[key]
    secrets_ = STORE.kind(account_id, "service_principal_secrets")
    for key in [k for k, s in secrets_.items() if s["service_principal_id"] == principal_id]:
        del secrets_[key]


def _scim(account_id: str, request: Request, endpoint: str, args: dict) -> Any:
    resource_type = args["resource_type"]
    records = STORE.kind(account_id, _KINDS[resource_type])
    if endpoint == "id.scim_collection":
        if request.method == "GET":
            return _list(account_id, resource_type, request)
        body = json_body(request)
        record = {"schemas": [_SCHEMAS[resource_type]], "id": _new_id(account_id), **_fields(account_id, resource_type, body, None)}
        records[record["id"]] = record
        return Response(json.dumps(_render(account_id, resource_type, record)), status=201, mimetype="application/json")
    record = records.get(args["obj_id"])
    if record is None:
        noun = {"Users": "User", "ServicePrincipals": "Service principal", "Groups": "Group"}[resource_type]
        raise ScimError(404, f"{noun} with id {args['obj_id']} not found.")
    if request.method == "GET":
        return _trim(_render(account_id, resource_type, record), request)
    if request.method == "DELETE":
        if record["id"] == admin_user_id(account_id):
            raise ScimError(400, "The account admin the sandbox token acts as cannot be deleted.", "mutability")
        del records[record["id"]]
        _forget_principal(account_id, record["id"])
        return Response(status=204)
    if request.method == "PUT":
        _replace(record, resource_type, _fields(account_id, resource_type, json_body(request), record))
    else:
        _patch(account_id, resource_type, record, json_body(request))
    return _render(account_id, resource_type, record)


def handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Any:
    account_id = args["account_id"]
    ensure_admin(account_id)
    return _scim(account_id, request, endpoint, args)
