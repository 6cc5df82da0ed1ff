"""Unity Catalog as a workspace serves it (databricks-sdk 0.156 service/catalog.py), under api/2.1/unity-catalog/:

- current-metastore-assignment (MetastoresAPI.current) and metastore_summary;
- storage-credentials: create (aws_iam_role.role_arn required; the answer's aws_iam_role carries a fresh random
  external_id per credential and the UC master role as unity_catalog_iam_arn), get, list, PATCH, delete
  (refused while an external location uses it, unless force); validate-storage-credentials (W4,
  unity_validation.py: {isDir, results: [{operation, result, message}]});
- external-locations: create (url s3://bucket[/path]; the credential must exist; a URL overlapping another
  location is refused; validated as W4 unless skip_validation: 403 PERMISSION_DENIED with the first failure),
  get, list, PATCH, delete (refused while a catalog's storage_root is under it, unless force);
- catalogs: create (storage_root must be under an external location of the metastore; without one the
  metastore's storage root is used; a metastore without one refuses (400 INVALID_STATE, UC's text) except in a
  SERVERLESS workspace, whose catalogs use default storage), get, list, PATCH, delete (W7 unless force). A
  catalog with a storage_root gets a marker object `<root>/__unitystorage/catalogs/<catalog_id>/_marker` in its
  bucket, so a teardown that does not empty the bucket meets BucketNotEmpty. Each catalog gets an
  `information_schema` schema (owned by "System user", listed, not deletable, not counted by W7); UC's
  `default` schema is not created;
- schemas: create (the catalog must exist), get, list (catalog_name required), PATCH, delete;
- permissions/<securable_type>/<full_name>: grants (unity_grants.py).
Every endpoint first needs the workspace's metastore assignment (W3, unity_common.metastore_of).
"""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.wrappers import Request

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
import provision.clouds.databricks.sandbox.unity_grants as unity_grants  # noqa: PLR0402
import provision.clouds.databricks.sandbox.unity_validation as unity_validation  # noqa: PLR0402
from provision.clouds.databricks.sandbox.store import (
    ApiError,
    invalid,
    json_body,
    now_ms,
    public,
)
from provision.clouds.databricks.sandbox.unity_common import (
    UC_MASTER_ROLE_ARN,
    Uc,
    already_exists,
    check_name,
    covers,
    does_not_exist,
    key,
    lookup,
    metastore_of,
    optional_str,
    overlaps,
    s3_url,
    string_map,
)
from provision.sandbox.settings import SandboxSettings

PREFIX = "api/2.1/unity-catalog/"
_COLLECTIONS = {"storage-credentials", "external-locations", "catalogs", "schemas"}
_SINGLETONS = {"current-metastore-assignment", "metastore_summary", "validate-storage-credentials"}
INFORMATION_SCHEMA = "information_schema"


def handles(rest: str) -> bool:
    """Whether the path is a UC endpoint this module serves (others stay ENDPOINT_NOT_FOUND)."""
    if not rest.startswith(PREFIX):
        return False
    parts = rest[len(PREFIX):].strip("/").split("/", 1)
    return parts[0] in _COLLECTIONS | _SINGLETONS or (parts[0] == "permissions" and len(parts) == 2 and "/" in parts[1])


def _stamp(uc: Uc, record: dict, created: bool = False) -> dict:
    now = now_ms()
    if created:
        record.update(created_at=now, created_by=uc.caller, owner=uc.caller, metastore_id=uc.metastore_id)
    record.update(updated_at=now, updated_by=uc.caller)
    return record


# --- storage credentials ----------------------------------------------------------------------------


def _role_arn(body: dict) -> str:
    role = body.get("aws_iam_role")
    arn = role.get("role_arn") if isinstance(role, dict) else None
    if not isinstance(arn, str) or not arn.startswith("arn:aws:iam::") or ":role/" not in arn:
        raise invalid("aws_iam_role.role_arn is required: the ARN of an IAM role (arn:aws:iam::<account>:role/<name>).")
    return arn


def _create_credential(uc: Uc, body: dict) -> dict:
    name = check_name(body.get("name"), "storage credential")
    arn = _role_arn(body)
    if key(uc, name) in uc.kind("storage_credentials"):
        raise already_exists("storage_credentials", name)
    record: dict[str, Any] = {
        "id": str(uuid.uuid4()), "name": name, "full_name": name,
        "aws_iam_role": {"role_arn": arn, "external_id": str(uuid.uuid4()), "unity_catalog_iam_arn": UC_MASTER_ROLE_ARN},
        "read_only": body.get("read_only") is True, "used_for_managed_storage": False, "isolation_mode": "ISOLATION_MODE_OPEN",
    }
    if optional_str(body, "comment") is not None:
        record["comment"] = body["comment"]
    uc.kind("storage_credentials")[key(uc, name)] = _stamp(uc, record, created=True)
    return record


def _locations_using(uc: Uc, credential: dict) -> list[dict]:
    return [loc for loc in uc.of_metastore("external_locations") if loc["credential_id"] == credential["id"]]


def _credential_item(uc: Uc, name: str) -> dict | None:
    record = lookup(uc, "storage_credentials", name)
    method = uc.request.method
    if method == "GET":
        return record
    if method == "DELETE":
        users = _locations_using(uc, record)
        if users and not uc.flag("force"):
            raise ApiError(400, "INVALID_STATE", f"Storage credential '{record['name']}' has 0 directly dependent external "
                           f"table(s) and {len(users)} dependent storage location(s). You may use force option to delete it "
                           "but the managed storage data using this storage credential cannot be purged by Unity Catalog anymore.")
        del uc.kind("storage_credentials")[key(uc, name)]
        return None
    body = json_body(uc.request)
    if body.get("aws_iam_role") is not None:
        record["aws_iam_role"] = {**record["aws_iam_role"], "role_arn": _role_arn(body)}
    for field in ("comment", "owner"):
        if optional_str(body, field) is not None:
            record[field] = body[field]
    if body.get("read_only") is not None:
        record["read_only"] = body["read_only"] is True
    new_name = body.get("new_name")
    if new_name and new_name.lower() != record["name"].lower():
        check_name(new_name, "storage credential")
        if key(uc, new_name) in uc.kind("storage_credentials"):
            raise already_exists("storage_credentials", new_name)
        del uc.kind("storage_credentials")[key(uc, name)]
        record.update(name=new_name, full_name=new_name)
        uc.kind("storage_credentials")[key(uc, new_name)] = record
        for loc in _locations_using(uc, record):
            loc["credential_name"] = new_name
    return _stamp(uc, record)


def _validate(uc: Uc, body: dict) -> dict:
    name = body.get("storage_credential_name")
    if not isinstance(name, str) or not name:
        raise invalid("storage_credential_name is required: the name of an existing storage credential to validate.")
    credential = lookup(uc, "storage_credentials", name)
    url = body.get("url")
    if url is None and body.get("external_location_name"):
        url = lookup(uc, "external_locations", body["external_location_name"])["url"]
    if url is None:
        raise invalid("url or external_location_name is required.")
    s3_url(url)
    results = unity_validation.validate(uc.settings, credential, url, read_only=body.get("read_only") is True)
    return {"isDir": True, "results": results}


# --- external locations -------------------------------------------------------------------------------


def _check_location_url(uc: Uc, url: Any, credential: dict, name: str, skip_validation: bool, read_only: bool) -> str:
    s3_url(url)
    for other in uc.of_metastore("external_locations"):
        if other["name"].lower() != name.lower() and overlaps(other["url"], url):
            raise invalid(f"Input path url '{url}' overlaps with an existing external location '{other['name']}' "
                          f"('{other['url']}') within 'CreateExternalLocation' call.")
    if not skip_validation:
        failure = unity_validation.first_failure(unity_validation.validate(uc.settings, credential, url, read_only))
        if failure:
            raise ApiError(403, "PERMISSION_DENIED", failure)
    return url


def _create_location(uc: Uc, body: dict) -> dict:
    name = check_name(body.get("name"), "external location")
    if not isinstance(body.get("credential_name"), str):
        raise invalid("credential_name is required.")
    credential = lookup(uc, "storage_credentials", body["credential_name"])
    if key(uc, name) in uc.kind("external_locations"):
        raise already_exists("external_locations", name)
    read_only = body.get("read_only") is True
    url = _check_location_url(uc, body.get("url"), credential, name, body.get("skip_validation") is True, read_only)
    record: dict[str, Any] = {
        "name": name, "url": url, "credential_name": credential["name"], "credential_id": credential["id"],
        "read_only": read_only, "fallback": body.get("fallback") is True, "isolation_mode": "ISOLATION_MODE_OPEN",
    }
    if optional_str(body, "comment") is not None:
        record["comment"] = body["comment"]
    uc.kind("external_locations")[key(uc, name)] = _stamp(uc, record, created=True)
    return record


def _catalogs_under(uc: Uc, location: dict) -> list[dict]:
    return [c for c in uc.of_metastore("catalogs") if c.get("storage_root") and covers(location["url"], c["storage_root"])]


def _location_item(uc: Uc, name: str) -> dict | None:
    record = lookup(uc, "external_locations", name)
    method = uc.request.method
    if method == "GET":
        return record
    dependents = _catalogs_under(uc, record)
    if method == "DELETE":
        if dependents and not uc.flag("force"):
            raise ApiError(400, "INVALID_STATE", f"Cannot delete external location (name = {record['name']}) because the "
                           f"location has 0 dependent metastores, {len(dependents)} dependent catalogs, 0 dependent schemas, "
                           "0 dependent managed tables, 0 dependent external tables, 0 dependent external volumes. You may use "
                           "force option to delete it but the managed storage data under this location cannot be purged by "
                           "Unity Catalog anymore.")
        del uc.kind("external_locations")[key(uc, name)]
        return None
    body = json_body(uc.request)
    credential = lookup(uc, "storage_credentials", body.get("credential_name") or record["credential_name"])
    read_only = body["read_only"] is True if body.get("read_only") is not None else record["read_only"]
    url = body.get("url") or record["url"]
    if url != record["url"] and dependents and not uc.flag("force", body):
        raise ApiError(400, "INVALID_STATE", "External Location has dependent catalogs, schemas, managed or external "
                       "tables/volumes; use force option to update url anyway")
    if url != record["url"] or credential["id"] != record["credential_id"]:
        _check_location_url(uc, url, credential, record["name"], body.get("skip_validation") is True, read_only)
    record.update(url=url, credential_name=credential["name"], credential_id=credential["id"], read_only=read_only)
    for field in ("comment", "owner"):
        if optional_str(body, field) is not None:
            record[field] = body[field]
    new_name = body.get("new_name")
    if new_name and new_name.lower() != record["name"].lower():
        check_name(new_name, "external location")
        if key(uc, new_name) in uc.kind("external_locations"):
            raise already_exists("external_locations", new_name)
        del uc.kind("external_locations")[key(uc, name)]
        record["name"] = new_name
        uc.kind("external_locations")[key(uc, new_name)] = record
    return _stamp(uc, record)


# --- catalogs and schemas ------------------------------------------------------------------------------


def _managed_storage(uc: Uc, storage_root: Any, what: str) -> str:
    """A storage_root must lie under an external location of the metastore, in a bucket that exists."""
    bucket, _ = s3_url(storage_root, "storage_root")
    if not any(covers(loc["url"], storage_root) for loc in uc.of_metastore("external_locations")):
        raise invalid(f"Input path url '{storage_root}' of {what} is not covered by any external location of metastore "
                      f"{uc.metastore_id}: create an external location for it first.")
    if not aws_bridge.bucket_exists(bucket):
        raise ApiError(403, "PERMISSION_DENIED", f"Could not access {storage_root}: the S3 bucket {bucket} does not exist.")
    return storage_root.rstrip("/")


def _schema_record(uc: Uc, catalog: dict, name: str, body: dict, system: bool = False) -> dict:
    record: dict[str, Any] = {
        "name": name, "catalog_name": catalog["name"], "full_name": f"{catalog['name']}.{name}",
        "catalog_type": catalog["catalog_type"], "schema_id": str(uuid.uuid4()),
    }
    for field in ("comment",):
        if optional_str(body, field) is not None:
            record[field] = body[field]
    properties = string_map(body, "properties")
    if properties is not None:
        record["properties"] = properties
    if body.get("storage_root") is not None:
        record["storage_root"] = _managed_storage(uc, body["storage_root"], "the schema")
        record["storage_location"] = f"{record['storage_root']}/__unitystorage/schemas/{record['schema_id']}"
    elif catalog.get("storage_location"):
        record["storage_location"] = f"{catalog['storage_location']}/__unitystorage/schemas/{record['schema_id']}"
    _stamp(uc, record, created=True)
    if system:
        record.update(owner="System user", created_by="System user", updated_by="System user",
                      comment="Information schema (auto-created)")
    uc.kind("schemas")[key(uc, record["full_name"])] = record
    return record


def _create_catalog(uc: Uc, body: dict) -> dict:
    name = check_name(body.get("name"), "catalog").lower()
    if name in ("system", "hive_metastore", "samples", "__databricks_internal"):
        raise invalid(f"Catalog name '{name}' is reserved.")
    if key(uc, name) in uc.kind("catalogs"):
        raise already_exists("catalogs", name)
    properties = string_map(body, "properties")
    record: dict[str, Any] = {
        "_id": str(uuid.uuid4()), "name": name, "full_name": name, "catalog_type": "MANAGED_CATALOG",
        "securable_type": "CATALOG", "isolation_mode": "OPEN", "provisioning_info": {"state": "ACTIVE"},
    }
    if body.get("storage_root") is not None:
        record["storage_root"] = _managed_storage(uc, body["storage_root"], "the catalog")
        record["storage_location"] = f"{record['storage_root']}/__unitystorage/catalogs/{record['_id']}"
    elif uc.metastore.get("storage_root"):
        record["storage_location"] = f"{uc.metastore['storage_root'].rstrip('/')}/__unitystorage/catalogs/{record['_id']}"
    elif uc.ws.get("compute_mode") != "SERVERLESS":
        raise ApiError(400, "INVALID_STATE", "Metastore storage root URL does not exist. Please provide a storage location "
                       "for the catalog (for example 'CREATE CATALOG myCatalog MANAGED LOCATION '<location-path>'). "
                       "Alternatively set up a metastore root storage location to provide a storage location for all "
                       "catalogs in the metastore.")
    if optional_str(body, "comment") is not None:
        record["comment"] = body["comment"]
    if properties is not None:
        record["properties"] = properties
    if record.get("storage_root"):
        bucket, path = s3_url(record["storage_location"])
        aws_bridge.put_object(bucket, f"{path}/_marker", b"")
    uc.kind("catalogs")[key(uc, name)] = _stamp(uc, record, created=True)
    _schema_record(uc, record, INFORMATION_SCHEMA, {}, system=True)
    return record


def _schemas_of(uc: Uc, catalog_name: str) -> list[dict]:
    return sorted((s for s in uc.of_metastore("schemas") if s["catalog_name"] == catalog_name), key=lambda s: s["name"])


def _catalog_item(uc: Uc, name: str) -> dict | None:
    record = lookup(uc, "catalogs", name)
    method = uc.request.method
    if method == "GET":
        return record
    schemas = _schemas_of(uc, record["name"])
    if method == "DELETE":
        user_schemas = [s["name"] for s in schemas if s["name"] != INFORMATION_SCHEMA]
        if user_schemas and not uc.flag("force"):
            raise ApiError(400, "INVALID_STATE", f"Catalog '{record['name']}' is not empty. The catalog has "
                           f"{len(user_schemas)} schemas: {', '.join(user_schemas)}. Use force=true to delete it anyway.")
        for schema in schemas:
            del uc.kind("schemas")[key(uc, schema["full_name"])]
        del uc.kind("catalogs")[key(uc, name)]
        return None
    body = json_body(uc.request)
    for field in ("comment", "owner"):
        if optional_str(body, field) is not None:
            record[field] = body[field]
    if string_map(body, "properties") is not None:
        record["properties"] = body["properties"]
    if body.get("isolation_mode") in ("OPEN", "ISOLATED"):
        record["isolation_mode"] = body["isolation_mode"]
    new_name = body.get("new_name")
    if new_name and new_name.lower() != record["name"]:
        new_name = check_name(new_name, "catalog").lower()
        if key(uc, new_name) in uc.kind("catalogs"):
            raise already_exists("catalogs", new_name)
        del uc.kind("catalogs")[key(uc, name)]
        record.update(name=new_name, full_name=new_name)
        uc.kind("catalogs")[key(uc, new_name)] = record
        for schema in schemas:
            del uc.kind("schemas")[key(uc, schema["full_name"])]
            schema.update(catalog_name=new_name, full_name=f"{new_name}.{schema['name']}")
            uc.kind("schemas")[key(uc, schema["full_name"])] = schema
    return _stamp(uc, record)


def _create_schema(uc: Uc, body: dict) -> dict:
    name = check_name(body.get("name"), "schema").lower()
    if not isinstance(body.get("catalog_name"), str) or not body["catalog_name"]:
        raise invalid("catalog_name is required.")
    catalog = lookup(uc, "catalogs", body["catalog_name"])
    full_name = f"{catalog['name']}.{name}"
    if key(uc, full_name) in uc.kind("schemas"):
        raise already_exists("schemas", full_name)
    return _schema_record(uc, catalog, name, body)


def _schema_item(uc: Uc, full_name: str) -> dict | None:
    record = lookup(uc, "schemas", full_name)
    method = uc.request.method
    if method == "GET":
        return record
    if record["name"] == INFORMATION_SCHEMA:
        raise invalid(f"Schema '{record['full_name']}' is a system schema and cannot be changed or deleted.")
    if method == "DELETE":
        del uc.kind("schemas")[key(uc, full_name)]
        return None
    body = json_body(uc.request)
    for field in ("comment", "owner"):
        if optional_str(body, field) is not None:
            record[field] = body[field]
    if string_map(body, "properties") is not None:
        record["properties"] = body["properties"]
    new_name = body.get("new_name")
    if new_name and new_name.lower() != record["name"]:
        new_name = check_name(new_name, "schema").lower()
        new_full = f"{record['catalog_name']}.{new_name}"
        if key(uc, new_full) in uc.kind("schemas"):
            raise already_exists("schemas", new_full)
        del uc.kind("schemas")[key(uc, full_name)]
        record.update(name=new_name, full_name=new_full)
        uc.kind("schemas")[key(uc, new_full)] = record
    return _stamp(uc, record)


# --- dispatch -------------------------------------------------------------------------------------------

_CREATE = {"storage-credentials": _create_credential, "external-locations": _create_location,
           "catalogs": _create_catalog, "schemas": _create_schema}
_ITEM = {"storage-credentials": _credential_item, "external-locations": _location_item,
         "catalogs": _catalog_item, "schemas": _schema_item}
_LIST = {"storage-credentials": ("storage_credentials", "storage_credentials"),
         "external-locations": ("external_locations", "external_locations"),
         "catalogs": ("catalogs", "catalogs"), "schemas": ("schemas", "schemas")}


def _collection(uc: Uc, segment: str) -> dict:
    if uc.request.method == "POST":
        return public(_CREATE[segment](uc, json_body(uc.request)))
    if uc.request.method != "GET":
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{uc.request.method} is not supported on {segment}.")
    kind, wrapper = _LIST[segment]
    records = uc.of_metastore(kind)
    if segment == "schemas":
        catalog_name = uc.request.args.get("catalog_name")
        if not catalog_name:
            raise invalid("catalog_name is required to list schemas.")
        records = _schemas_of(uc, lookup(uc, "catalogs", catalog_name)["name"])
    return {wrapper: [public(r) for r in sorted(records, key=lambda r: r["name"])]}


def respond(settings: SandboxSettings, request: Request, ws: dict, rest: str, caller: str) -> dict:
    """The JSON answer of one UC request (authentication and warm-up are the caller's)."""
    uc = Uc(settings, request, ws, metastore_of(ws), caller)  # W3 first
    segment, _, tail = rest[len(PREFIX):].strip("/").partition("/")
    if segment == "current-metastore-assignment" and request.method == "GET":
        assignment = uc.kind("metastore_assignments")[ws["workspace_id"]]
        return {k: assignment[k] for k in ("workspace_id", "metastore_id", "default_catalog_name") if assignment.get(k) is not None}
    if segment == "metastore_summary" and request.method == "GET":
        return public(uc.metastore)
    if segment == "validate-storage-credentials" and request.method == "POST":
        return _validate(uc, json_body(request))
    if segment == "permissions":
        securable_type, _, full_name = tail.partition("/")
        return unity_grants.respond(uc, securable_type, full_name)
    if segment in _COLLECTIONS and not tail:
        return _collection(uc, segment)
    if segment in _COLLECTIONS and request.method in ("GET", "PATCH", "DELETE"):
        record = _ITEM[segment](uc, tail)
        return {} if record is None else public(record)
    raise ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported on /{rest}.")


__all__ = ["INFORMATION_SCHEMA", "PREFIX", "does_not_exist", "handles", "respond"]
