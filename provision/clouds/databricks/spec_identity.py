"""[[identity.service_principals]] and [[identity.groups]]: account identities and their workspace permissions.

Checked as Databricks and provision need them:
- a name is a SCIM display name that provision finds the principal by (`displayName eq "<name>"`), so it has no
  double quote, backslash or control character, no surrounding blanks, and is unique across service principals
  and groups (without case: a grant's `principal` names one of them); two names with the same slug would give
  the same step id (`id.sp.<slug>`, `id.group.<slug>`), so those are refused too;
- a group's members are service principals of this spec (provision adds them; see steps/identity.Group);
- `workspace_permission` is USER or ADMIN, and only with [unity_catalog]: Databricks refuses workspace permission
  assignments until a metastore is assigned to the workspace (identity federation);
- the built-in groups ("admins", "users", "account users") are Databricks', not a spec's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

PERMISSIONS = ("USER", "ADMIN")
RESERVED_GROUPS = ("account users", "admins", "users")
MAX_NAME = 255
_BAD_CHARS = re.compile(r'["\\\x00-\x1f\x7f]')
_WHERE = "identity"


@dataclass(frozen=True)
class ServicePrincipalSpec:
    name: str
    workspace_permission: str | None  # USER, ADMIN, or None (account only)
    oauth_secret: bool = False


@dataclass(frozen=True)
class GroupSpec:
    name: str
    members: tuple[str, ...]  # names of service principals of this spec
    workspace_permission: str | None


@dataclass(frozen=True)
class IdentitySpec:
    service_principals: tuple[ServicePrincipalSpec, ...]
    groups: tuple[GroupSpec, ...]


def slug(name: str) -> str:
    """A principal's name as a step id part."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _name(check: Checker, item: dict[str, Any], where: str) -> str | None:
    name = check.string(item, "name", f"{where}.name")
    if name is None:
        return None
    if not name or len(name) > MAX_NAME:
        check.fail(f"{where}.name", f"must be 1-{MAX_NAME} characters, got {len(name)}")
    elif name != name.strip():
        check.fail(f"{where}.name", f"{name!r} has leading or trailing blanks")
    elif _BAD_CHARS.search(name):
        check.fail(f"{where}.name", f"{name!r} has a double quote, backslash or control character (it is looked up with a SCIM filter)")
    elif not slug(name):
        check.fail(f"{where}.name", f"{name!r} needs at least one letter or digit")
    else:
        return name
    return None


def _permission(check: Checker, item: dict[str, Any], where: str, has_unity_catalog: bool) -> tuple[bool, str | None]:
    if "workspace_permission" not in item:
        return True, None
    value = check.string(item, "workspace_permission", f"{where}.workspace_permission")
    if value is None:
        return False, None
    if value not in PERMISSIONS:
        check.fail(f"{where}.workspace_permission", f"{value!r} is not a workspace permission; use USER or ADMIN (or leave it out: account only)")
        return False, None
    if not has_unity_catalog:
        check.fail(f"{where}.workspace_permission", "needs [unity_catalog]: Databricks refuses workspace permission assignments "
                   "until a metastore is assigned to the workspace")
        return False, None
    return True, value


def _items(check: Checker, table: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        check.fail(f"{_WHERE}.{key}", f"must be an array of tables ([[{_WHERE}.{key}]])")
        return []
    return value


def _service_principals(check: Checker, table: dict[str, Any], uc: bool) -> list[ServicePrincipalSpec]:
    out = []
    for i, item in enumerate(_items(check, table, "service_principals")):
        where = f"{_WHERE}.service_principals[{i}]"
        check.unknown(item, {"name", "workspace_permission", "oauth_secret"}, f"{where}.")
        name = _name(check, item, where)
        good, permission = _permission(check, item, where, uc)
        secret = item.get("oauth_secret", False)
        if not isinstance(secret, bool):
            check.fail(f"{where}.oauth_secret", f"must be true or false, got {type(secret).__name__}")
            good = False
        if name is not None and good:
            out.append(ServicePrincipalSpec(name, permission, secret))
    return out


def _groups(check: Checker, table: dict[str, Any], uc: bool, sp_names: set[str]) -> list[GroupSpec]:
    out = []
    for i, item in enumerate(_items(check, table, "groups")):
        where = f"{_WHERE}.groups[{i}]"
        check.unknown(item, {"name", "members", "workspace_permission"}, f"{where}.")
        name = _name(check, item, where)
        good, permission = _permission(check, item, where, uc)
        if name is not None and name.lower() in RESERVED_GROUPS:
            check.fail(f"{where}.name", f"{name!r} is a built-in Databricks group; name the spec's group otherwise")
            good = False
        members = check.string_list(item, "members", f"{where}.members")
        if members is None:
            good = good and "members" not in item
            members = []
        for j, member in enumerate(members):
            if member not in sp_names:
                check.fail(f"{where}.members[{j}]", f"{member!r} is not a service principal of [[identity.service_principals]]")
                good = False
            elif member in members[:j]:
                check.fail(f"{where}.members[{j}]", f"{member!r} is listed twice")
                good = False
        if name is not None and good:
            out.append(GroupSpec(name, tuple(members), permission))
    return out


def _unique(check: Checker, sps: list[ServicePrincipalSpec], groups: list[GroupSpec]) -> None:
    seen: dict[str, str] = {}
    for kind, items in (("service_principals", sps), ("groups", groups)):
        slugs: dict[str, str] = {}
        for i, item in enumerate(items):
            where = f"{_WHERE}.{kind}[{i}].name"
            key = item.name.lower()
            if key in seen:
                check.fail(where, f"{item.name!r} is already the name of {seen[key]}: names are unique across service principals and groups")
                continue
            if slug(item.name) in slugs:
                check.fail(where, f"{item.name!r} and {slugs[slug(item.name)]!r} give the same step id ({slug(item.name)}); rename one")
                continue
            seen[key] = f"{_WHERE}.{kind}[{i}]"
            slugs[slug(item.name)] = item.name


def _parse(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> IdentitySpec | None:
    if "identity" not in data:
        return None
    before = len(check.problems)
    table = check.table(data, "identity", {"service_principals", "groups"})
    # A [unity_catalog] that failed to parse reports its own problems; only its absence is one here.
    uc = parsed.get("unity_catalog") is not None or "unity_catalog" in data
    sps = _service_principals(check, table, uc)
    # Members are checked against every listed name, so a bad service principal is reported once, not per group.
    raw = table.get("service_principals")
    sp_names = {i["name"] for i in raw if isinstance(i.get("name"), str)} if isinstance(raw, list) and all(isinstance(i, dict) for i in raw) else set()
    groups = _groups(check, table, uc, sp_names)
    _unique(check, sps, groups)
    if len(check.problems) > before:
        return None
    return IdentitySpec(tuple(sps), tuple(groups))


# After [unity_catalog]: workspace permissions need a metastore assigned.
IDENTITY = Section("identity", ("identity",), _parse)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a live deployment may not do with [identity]: remove a service principal or group (its step would leave
    the graph while the account object lives on, and nothing could delete it any more), turn an OAuth secret off,
    or drop a workspace permission (the same, for the secret and the assignment). Adding is fine, and so are
    USER <-> ADMIN and a group's members (converged in place)."""
    refused: list[str] = []
    old, new = before.get("identity") or {}, after.get("identity") or {}
    for kind in ("service_principals", "groups"):
        was = {i["name"]: i for i in old.get(kind) or ()}
        now = {i["name"]: i for i in new.get(kind) or ()}
        refused += [f"{_WHERE}.{kind} (removing {name})" for name in sorted(set(was) - set(now))]
        for name in sorted(set(was) & set(now)):
            if was[name].get("workspace_permission") and not now[name].get("workspace_permission"):
                refused.append(f"{_WHERE}.{kind}.{name}.workspace_permission (removing it)")
            if was[name].get("oauth_secret") and not now[name].get("oauth_secret"):
                refused.append(f"{_WHERE}.{kind}.{name}.oauth_secret (turning it off)")
    return refused
