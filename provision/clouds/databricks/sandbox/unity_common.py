"""What the Unity Catalog modules of the workspace API share: the metastore a workspace reaches (W3), UC's
error codes, S3 URLs and the lookups of metastore objects.

Unity objects live per metastore: a workspace reaches the metastore assigned to it
(`metastore_assignments[workspace_id].metastore_id`); a workspace without one (or whose metastore is gone) is
answered 404 METASTORE_DOES_NOT_EXIST on every UC endpoint (W3). Records are keyed by (metastore_id, name)
(schemas: (metastore_id, "catalog.schema")); catalog and schema names are stored lowercased (UC names are
case-insensitive), storage credential and external location names as given, looked up case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request

from provision.clouds.databricks.sandbox.store import STORE, ApiError, invalid
from provision.sandbox.settings import SandboxSettings

# The identity Unity Catalog assumes customer roles with (AwsIamRoleResponse.unity_catalog_iam_arn).
UC_MASTER_ROLE_ARN = "arn:aws:iam::414351767826:role/unity-catalog-prod-UCMasterRole-14S5ZJVKOTYTL"
_S3_URL_RE = re.compile(r"^s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(/.*)?$")
_LABELS = {
    "storage_credentials": ("Storage Credential", "STORAGE_CREDENTIAL"),
    "external_locations": ("External Location", "EXTERNAL_LOCATION"),
    "catalogs": ("Catalog", "CATALOG"),
    "schemas": ("Schema", "SCHEMA"),
}


@dataclass
class Uc:
    """One UC request: the workspace, its metastore and the caller (the sandbox admin)."""

    settings: SandboxSettings
    request: Request
    ws: dict
    metastore: dict
    caller: str

    @property
    def account_id(self) -> str:
        return self.ws["account_id"]

    @property
    def metastore_id(self) -> str:
        return self.metastore["metastore_id"]

    def kind(self, kind: str) -> dict[Any, dict]:
        return STORE.kind(self.account_id, kind)

    def of_metastore(self, kind: str) -> list[dict]:
        return [r for r in self.kind(kind).values() if r["metastore_id"] == self.metastore_id]

    def flag(self, name: str, body: dict | None = None) -> bool:
        """A boolean from the body or, for DELETE, the query string (the SDK sends `force=true`)."""
        value = (body or {}).get(name, self.request.args.get(name))
        return value is True or str(value).lower() == "true"


def metastore_of(ws: dict) -> dict:
    """W3: the metastore assigned to the workspace, or 404 METASTORE_DOES_NOT_EXIST."""
    assignment = STORE.kind(ws["account_id"], "metastore_assignments").get(ws["workspace_id"])
    metastore = STORE.kind(ws["account_id"], "metastores").get(assignment["metastore_id"]) if assignment else None
    if metastore is None:
        raise ApiError(404, "METASTORE_DOES_NOT_EXIST", "No metastore assigned for the current workspace.")
    return metastore


def does_not_exist(kind: str, name: str) -> ApiError:
    label, code = _LABELS[kind]
    return ApiError(404, f"{code}_DOES_NOT_EXIST", f"{label} '{name}' does not exist.")


def already_exists(kind: str, name: str) -> ApiError:
    label, code = _LABELS[kind]
    return ApiError(409, f"{code}_ALREADY_EXISTS", f"{label} '{name}' already exists")


def key(uc: Uc, name: str) -> tuple[str, str]:
    return (uc.metastore_id, name.lower())


def lookup(uc: Uc, kind: str, name: str) -> dict:
    record = uc.kind(kind).get(key(uc, name))
    if record is None:
        raise does_not_exist(kind, name)
    return record


def s3_url(url: Any, field: str = "url") -> tuple[str, str]:
    """(bucket, path without surrounding slashes) of an s3://bucket[/path] URL, else 400."""
    match = _S3_URL_RE.match(url) if isinstance(url, str) else None
    if not match:
        raise invalid(f"{field} {url!r} is not a valid S3 URL: expected s3://<bucket>[/<path>].")
    return match.group(1), (match.group(2) or "").strip("/")


def _segments(url: str) -> list[str]:
    bucket, path = s3_url(url)
    return [bucket, *[p for p in path.split("/") if p]]


def covers(base: str, url: str) -> bool:
    """Whether `url` is `base` or below it, path segment by segment (s3://b/a covers s3://b/a/x, not s3://b/ab)."""
    outer, inner = _segments(base), _segments(url)
    return inner[: len(outer)] == outer


def overlaps(a: str, b: str) -> bool:
    return covers(a, b) or covers(b, a)


def string_map(body: dict, field: str) -> dict[str, str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise invalid(f"{field} must be a map of strings to strings.")
    return dict(value)


def optional_str(body: dict, field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise invalid(f"{field} must be a string.")
    return value


def check_name(value: Any, what: str) -> str:
    """UC identifiers: 1-255 characters without '.', ' ', '/' or control characters."""
    if not isinstance(value, str) or not value:
        raise invalid(f"{what} name is required.")
    if len(value) > 255 or re.search(r"[.\s/\x00-\x1f\x7f]", value):
        raise invalid(f"Invalid {what} name '{value}': names may not contain '.', ' ', '/' or control characters "
                      "and are at most 255 characters.")
    return value
