"""[unity_catalog]: the region's metastore, the catalog with its managed location and schemas, grants, and the
workspace's default namespace.

Names are checked as Unity Catalog stores them. UC folds identifiers to lowercase, so a catalog or schema name
written with capitals would be read back as another name than the spec's (and a grant naming the schema would
miss): provision refuses capitals rather than folding them silently, and says the lowercase name to write.
Catalog and schema names are lowercase letters, digits and underscores, starting with a letter or underscore,
at most 255 characters (no backquoted names). Every new catalog has the schemas `default` and
`information_schema` already, so neither may be listed. Privileges are UC's own names (databricks-sdk's
`catalog.Privilege`), limited to those that can be granted on a catalog or a schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

DEFAULT_SCHEMAS = ("bronze", "silver", "gold")
_WHERE = "unity_catalog"
_FIELDS = {"metastore_name", "catalog", "schemas", "bucket_name", "default_namespace", "grants"}
_GRANT_FIELDS = {"principal", "privileges", "schema"}

# databricks-sdk 0.156's catalog.Privilege values (a test checks they are the SDK's), copied so that parsing a
# spec does not import the SDK.
PRIVILEGES = (
    "ACCESS", "ALL_PRIVILEGES", "APPLY_TAG", "BROWSE", "CREATE", "CREATE_CATALOG", "CREATE_CLEAN_ROOM", "CREATE_CONNECTION",
    "CREATE_EXTERNAL_LOCATION", "CREATE_EXTERNAL_TABLE", "CREATE_EXTERNAL_VOLUME", "CREATE_FOREIGN_CATALOG",
    "CREATE_FOREIGN_SECURABLE", "CREATE_FUNCTION", "CREATE_MANAGED_STORAGE", "CREATE_MATERIALIZED_VIEW", "CREATE_MODEL",
    "CREATE_PROVIDER", "CREATE_RECIPIENT", "CREATE_SCHEMA", "CREATE_SERVICE_CREDENTIAL", "CREATE_SHARE",
    "CREATE_STORAGE_CREDENTIAL", "CREATE_TABLE", "CREATE_VIEW", "CREATE_VOLUME", "EXECUTE", "EXECUTE_CLEAN_ROOM_TASK",
    "EXTERNAL_USE_LOCATION", "EXTERNAL_USE_SCHEMA", "MANAGE", "MANAGE_ALLOWLIST", "MODIFY", "MODIFY_CLEAN_ROOM",
    "READ_FILES", "READ_METADATA", "READ_PRIVATE_FILES", "READ_VOLUME", "REFRESH", "SELECT", "SET_SHARE_PERMISSION",
    "USAGE", "USE_CATALOG", "USE_CONNECTION", "USE_MARKETPLACE_ASSETS", "USE_PROVIDER", "USE_RECIPIENT", "USE_SCHEMA",
    "USE_SHARE", "WRITE_FILES", "WRITE_PRIVATE_FILES", "WRITE_VOLUME",
)
# What Unity Catalog lets a catalog and a schema be granted (the others are privileges on the metastore, external
# locations, connections, shares, clean rooms, or of the legacy Hive model).
SCHEMA_PRIVILEGES = (
    "ALL_PRIVILEGES", "APPLY_TAG", "CREATE_FUNCTION", "CREATE_MATERIALIZED_VIEW", "CREATE_MODEL", "CREATE_TABLE",
    "CREATE_VOLUME", "EXECUTE", "EXTERNAL_USE_SCHEMA", "MANAGE", "MODIFY", "READ_VOLUME", "REFRESH", "SELECT",
    "USE_SCHEMA", "WRITE_VOLUME",
)
CATALOG_PRIVILEGES = (*SCHEMA_PRIVILEGES, "BROWSE", "CREATE_SCHEMA", "USE_CATALOG")
# Catalog names Databricks keeps for itself; schemas every catalog has from its creation.
RESERVED_CATALOGS = ("hive_metastore", "samples", "system", "information_schema")
BUILTIN_SCHEMAS = ("default", "information_schema")

_IDENTIFIER_RE = re.compile(r"[a-z_][a-z0-9_]{0,254}")
_METASTORE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,254}")


@dataclass(frozen=True)
class Grant:
    principal: str
    privileges: tuple[str, ...]
    schema: str | None = None  # None: on the catalog


@dataclass(frozen=True)
class UnityCatalogSpec:
    metastore_name: str
    catalog: str
    schemas: tuple[str, ...]
    # The catalog bucket; None: the workspace's default storage (the serverless topology).
    bucket_name: str | None
    grants: tuple[Grant, ...]
    default_namespace: bool


def catalog_bucket_name(name: str, account_id: str, region: str) -> str:
    """The catalog bucket's default: the root bucket's derived name (another deployment's never collides) plus
    "-catalog", so the two buckets of a deployment sort together and never share a name."""
    from provision.clouds.aws.spec import derived_bucket_name

    return f"{derived_bucket_name(name, account_id, region)}-catalog"


def default_catalog(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name)


def identifier_problem(value: str) -> str | None:
    """Why `value` is not a catalog or schema name as Unity Catalog stores it, or None."""
    if not value:
        return "must not be empty"
    if value != value.lower() and _IDENTIFIER_RE.fullmatch(value.lower()):
        return f"Unity Catalog stores names in lowercase: write {value.lower()!r}"
    if not _IDENTIFIER_RE.fullmatch(value):
        return "must be at most 255 lowercase letters, digits and underscores, starting with a letter or underscore"
    return None


def _name(check: Checker, table: dict[str, Any], key: str, default: str) -> str | None:
    where = f"{_WHERE}.{key}"
    value = check.string(table, key, where, required=False, default=default)
    if value is None:
        return None
    problem = identifier_problem(value)
    if problem:
        check.fail(where, f"{value!r}: {problem}" if key in table else f"the default {value!r} {problem}; set {key}")
        return None
    if value in RESERVED_CATALOGS:
        check.fail(where, f"{value!r} is a catalog name Databricks reserves; choose another")
        return None
    return value


def _metastore_name(check: Checker, table: dict[str, Any], default: str | None) -> str | None:
    where = f"{_WHERE}.metastore_name"
    value = check.string(table, "metastore_name", where, required=False, default=default)
    if value is not None and not _METASTORE_RE.fullmatch(value):
        check.fail(where, f"{value!r} must be 1-255 letters, digits, hyphens and underscores, starting with a letter or digit")
        return None
    return value


def _schemas(check: Checker, table: dict[str, Any]) -> tuple[str, ...] | None:
    where = f"{_WHERE}.schemas"
    if "schemas" not in table:
        return DEFAULT_SCHEMAS
    listed = check.string_list(table, "schemas", where)
    if listed is None:
        return None
    ok = True
    for i, name in enumerate(listed):
        problem = identifier_problem(name)
        if problem:
            check.fail(f"{where}[{i}]", f"{name!r}: {problem}")
            ok = False
        elif name in BUILTIN_SCHEMAS:
            check.fail(f"{where}[{i}]", f"every catalog has the schema {name!r} already; do not list it")
            ok = False
        elif name in listed[:i]:
            check.fail(f"{where}[{i}]", f"{name!r} is listed twice")
            ok = False
    return tuple(listed) if ok else None


def _bucket(check: Checker, table: dict[str, Any], parsed: dict[str, Any], storage: bool) -> tuple[bool, str | None]:
    """(ok, bucket name): the catalog bucket, or None in the workspace's default storage."""
    from provision.clouds.aws.spec import bucket_problem

    where = f"{_WHERE}.bucket_name"
    if not storage:
        if "bucket_name" in table:
            check.fail(where, "this topology keeps the catalog in the workspace's default storage (serverless); remove bucket_name")
            return False, None
        return True, None
    bucket = check.string(table, "bucket_name", where, required=False)
    if bucket is None:
        if "bucket_name" in table:
            return False, None
        name, account_id, region = parsed.get("name"), parsed.get("account_id"), parsed.get("region")
        if not (name and account_id and region):  # their own sections said why
            return False, None
        bucket = catalog_bucket_name(name, account_id, region)
    else:
        problem = bucket_problem(bucket)
        if problem:
            check.fail(where, f"{bucket!r} {problem}")
            return False, None
    root = getattr(parsed.get("storage"), "bucket_name", None)
    if bucket == root:
        check.fail(where, f"{bucket!r} is the root bucket (storage.bucket_name); the catalog needs a bucket of its own")
        return False, None
    return True, bucket


def _grant(check: Checker, item: Any, where: str, schemas: tuple[str, ...] | None) -> Grant | None:
    if not isinstance(item, dict):
        check.fail(where, f"must be a table, got {type(item).__name__}")
        return None
    check.unknown(item, _GRANT_FIELDS, f"{where}.")
    principal = check.string(item, "principal", f"{where}.principal")
    if principal is not None and (not principal.strip() or principal != principal.strip() or len(principal) > 255):
        check.fail(f"{where}.principal", f"{principal!r} must be a group, service principal or user name without surrounding spaces")
        principal = None
    schema = check.string(item, "schema", f"{where}.schema", required=False)
    if schema is not None and schemas is not None and schema not in schemas:
        known = ", ".join(schemas) or "none"
        check.fail(f"{where}.schema", f"{schema!r} is not one of unity_catalog.schemas ({known})")
        schema = None
    bad_schema = "schema" in item and schema is None
    privileges = check.string_list(item, "privileges", f"{where}.privileges")
    if "privileges" not in item:
        check.fail(f"{where}.privileges", "is required")
    elif privileges is not None and not privileges:
        check.fail(f"{where}.privileges", "must list at least one privilege")
        privileges = None
    ok = privileges is not None
    allowed, on = (SCHEMA_PRIVILEGES, "a schema") if "schema" in item else (CATALOG_PRIVILEGES, "a catalog")
    for i, privilege in enumerate(privileges or []):
        at = f"{where}.privileges[{i}]"
        if privilege not in PRIVILEGES:
            hint = privilege.upper().replace(" ", "_")
            suggestion = f" (did you mean {hint}?)" if hint in PRIVILEGES else ""
            check.fail(at, f"{privilege!r} is not a Unity Catalog privilege{suggestion}")
            ok = False
        elif privilege not in allowed:
            check.fail(at, f"{privilege} cannot be granted on {on}; use one of {', '.join(sorted(allowed))}")
            ok = False
        elif privilege in privileges[:i]:  # type: ignore[index]
            check.fail(at, f"{privilege} is listed twice")
            ok = False
    if principal is None or not ok or bad_schema:
        return None
    return Grant(principal, tuple(privileges or ()), schema)


def _grants(check: Checker, table: dict[str, Any], schemas: tuple[str, ...] | None) -> tuple[Grant, ...] | None:
    where = f"{_WHERE}.grants"
    items = table.get("grants", [])
    if not isinstance(items, list):
        check.fail(where, f"must be an array of tables ([[{where}]]), got {type(items).__name__}")
        return None
    grants: list[Grant | None] = [_grant(check, item, f"{where}[{i}]", schemas) for i, item in enumerate(items)]
    seen: dict[tuple[str, str | None], int] = {}
    for i, grant in enumerate(grants):
        if grant is None:
            continue
        key = (grant.principal, grant.schema)
        if key in seen:
            on = f"schema {grant.schema}" if grant.schema else "the catalog"
            check.fail(f"{where}[{i}]", f"{grant.principal!r} is granted on {on} in {where}[{seen[key]}] already; list its privileges once")
            grants[i] = None
        else:
            seen[key] = i
    if any(g is None for g in grants):
        return None
    return tuple(g for g in grants if g is not None)


def section(*, storage: bool = True) -> Section:
    """storage=False (serverless): the catalog uses the workspace's default storage, and bucket_name is refused."""

    def parse(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> UnityCatalogSpec | None:
        if "unity_catalog" not in data:
            return None
        table = check.table(data, "unity_catalog", _FIELDS)
        if not isinstance(data["unity_catalog"], dict):
            return None
        name, region = parsed.get("name"), parsed.get("region")
        metastore = _metastore_name(check, table, f"{name}-{region}" if name and region else None)
        catalog = _name(check, table, "catalog", default_catalog(name)) if name else check.string(table, "catalog", f"{_WHERE}.catalog", required=False)
        schemas = _schemas(check, table)
        bucket_ok, bucket = _bucket(check, table, parsed, storage)
        default_namespace = table.get("default_namespace", True)
        if not isinstance(default_namespace, bool):
            check.fail(f"{_WHERE}.default_namespace", f"must be true or false, got {type(default_namespace).__name__}")
            default_namespace = None
        grants = _grants(check, table, schemas)
        if metastore is None or catalog is None or schemas is None or not bucket_ok or default_namespace is None or grants is None:
            return None
        return UnityCatalogSpec(metastore, catalog, schemas, bucket, grants, default_namespace)

    return Section("unity_catalog", ("unity_catalog",), parse)


UNITY_CATALOG = section()
