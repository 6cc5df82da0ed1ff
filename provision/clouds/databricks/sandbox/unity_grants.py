"""Unity Catalog grants (GrantsAPI): GET and PATCH api/2.1/unity-catalog/permissions/<securable_type>/<full_name>.

- securable_type is a SecurableType value in any case (catalog, schema, external_location, storage_credential,
  metastore); the securable must exist (404 <TYPE>_DOES_NOT_EXIST).
- PATCH {changes: [{principal, add, remove}]} applies each change and answers every assignment
  (UpdatePermissionsResponse) unless omit_permissions_in_response. Privileges must be Privilege values that
  apply to the securable (400 INVALID_PARAMETER_VALUE otherwise), principals must exist in the account:
  a user by userName, a service principal by applicationId (never its displayName: Unity Catalog names a
  service principal by its application id, and GET reports it so), a group by displayName, or the built-in
  "account users" group (404 PRINCIPAL_DOES_NOT_EXIST otherwise).
- GET answers {privilege_assignments: [{principal, privileges}]}, sorted, optionally for one `principal`;
  only explicit grants (no inherited ones, no owner).
Grants live in the securable's record (private `_grants`) and go with it.
"""

from __future__ import annotations

from typing import Any

from provision.clouds.databricks.sandbox.store import ApiError, invalid, json_body
from provision.clouds.databricks.sandbox.unity_common import Uc, does_not_exist, key

_DATA = {
    "ALL_PRIVILEGES", "APPLY_TAG", "BROWSE", "CREATE_FUNCTION", "CREATE_MATERIALIZED_VIEW", "CREATE_MODEL",
    "CREATE_TABLE", "CREATE_VOLUME", "EXECUTE", "EXTERNAL_USE_SCHEMA", "MANAGE", "MODIFY", "READ_VOLUME",
    "REFRESH", "SELECT", "USE_SCHEMA", "WRITE_VOLUME",
}
APPLICABLE = {
    "CATALOG": _DATA | {"CREATE_SCHEMA", "USE_CATALOG"},
    "SCHEMA": set(_DATA),
    "EXTERNAL_LOCATION": {
        "ALL_PRIVILEGES", "BROWSE", "CREATE_EXTERNAL_TABLE", "CREATE_EXTERNAL_VOLUME", "CREATE_FOREIGN_SECURABLE",
        "CREATE_MANAGED_STORAGE", "EXTERNAL_USE_LOCATION", "MANAGE", "READ_FILES", "WRITE_FILES",
    },
    "STORAGE_CREDENTIAL": {
        "ALL_PRIVILEGES", "CREATE_EXTERNAL_LOCATION", "CREATE_EXTERNAL_TABLE", "MANAGE", "READ_FILES", "WRITE_FILES",
    },
    "METASTORE": {
        "CREATE_CATALOG", "CREATE_CLEAN_ROOM", "CREATE_CONNECTION", "CREATE_EXTERNAL_LOCATION", "CREATE_PROVIDER",
        "CREATE_RECIPIENT", "CREATE_SERVICE_CREDENTIAL", "CREATE_SHARE", "CREATE_STORAGE_CREDENTIAL", "MANAGE_ALLOWLIST",
        "SET_SHARE_PERMISSION", "USE_MARKETPLACE_ASSETS", "USE_PROVIDER", "USE_RECIPIENT", "USE_SHARE",
    },
}
_KINDS = {"CATALOG": "catalogs", "SCHEMA": "schemas", "EXTERNAL_LOCATION": "external_locations",
          "STORAGE_CREDENTIAL": "storage_credentials"}
ACCOUNT_USERS = "account users"


def _privilege_names() -> set[str]:
    from databricks.sdk.service.catalog import Privilege

    return {p.value for p in Privilege}


def _securable(uc: Uc, securable_type: str, full_name: str) -> tuple[str, dict]:
    kind_name = securable_type.upper().replace("-", "_")
    if kind_name == "METASTORE":
        if full_name != uc.metastore_id:
            raise ApiError(404, "METASTORE_DOES_NOT_EXIST", f"Metastore '{full_name}' does not exist.")
        return kind_name, uc.metastore
    if kind_name not in _KINDS:
        raise invalid(f"Securable type {securable_type} is not supported here: one of {', '.join(sorted(APPLICABLE))}.")
    record = uc.kind(_KINDS[kind_name]).get(key(uc, full_name))
    if record is None:
        raise does_not_exist(_KINDS[kind_name], full_name)
    return kind_name, record


def principal_exists(uc: Uc, principal: str) -> bool:
    if principal == ACCOUNT_USERS or principal == uc.caller:
        return True
    users = uc.kind("users").values()
    sps = uc.kind("service_principals").values()
    groups = uc.kind("groups").values()
    return (
        any(u.get("userName") == principal for u in users)
        or any(s.get("applicationId") == principal for s in sps)
        or any(g.get("displayName") == principal for g in groups)
    )


def _assignments(record: dict, principal: str | None = None) -> list[dict]:
    grants: dict[str, list[str]] = record.get("_grants", {})
    return [
        {"principal": p, "privileges": sorted(privs)}
        for p, privs in sorted(grants.items())
        if privs and (principal is None or p == principal)
    ]


def _privileges(value: Any, kind_name: str, full_name: str, field: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(f"{field} must be a list of privileges.")
    known = _privilege_names()
    for privilege in value:
        if privilege not in known:
            raise invalid(f"Unknown privilege {privilege}.")
        if privilege not in APPLICABLE[kind_name]:
            raise invalid(f"Privilege {privilege} is not applicable to this entity [{full_name}:{kind_name}].")
    return value


def respond(uc: Uc, securable_type: str, full_name: str) -> dict:
    kind_name, record = _securable(uc, securable_type, full_name)
    if uc.request.method == "GET":
        return {"privilege_assignments": _assignments(record, uc.request.args.get("principal"))}
    if uc.request.method != "PATCH":
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{uc.request.method} is not supported on permissions.")
    body = json_body(uc.request)
    changes = body.get("changes") or []
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise invalid("changes must be a list of PermissionsChange objects.")
    planned = []
    for change in changes:  # check everything before changing anything
        principal = change.get("principal")
        if not isinstance(principal, str) or not principal:
            raise invalid("Each change needs a principal.")
        if not principal_exists(uc, principal):
            raise ApiError(404, "PRINCIPAL_DOES_NOT_EXIST", f"Could not find principal with name {principal}.")
        add = _privileges(change.get("add"), kind_name, full_name, "add")
        remove = _privileges(change.get("remove"), kind_name, full_name, "remove")
        planned.append((principal, add, remove))
    grants = record.setdefault("_grants", {})
    for principal, add, remove in planned:
        held = set(grants.get(principal, [])) | set(add)
        grants[principal] = sorted(held - set(remove))
        if not grants[principal]:
            del grants[principal]
    return {} if body.get("omit_permissions_in_response") is True else {"privilege_assignments": _assignments(record)}
