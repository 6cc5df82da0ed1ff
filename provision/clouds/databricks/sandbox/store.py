"""The emulator's state: every Databricks object per account and kind in one lock-protected store, the
API's error shape, and the request helpers every API module shares."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from werkzeug.wrappers import Request

KINDS = (
    "credentials",
    "storage_configurations",
    "networks",
    "workspaces",
    "vpc_endpoints",
    "private_access_settings",
    "customer_managed_keys",
    "tokens",  # workspace personal access tokens (token_infos plus workspace_id), served by the workspace API
    # Unity Catalog, account side (unity_account.py): metastores by metastore_id; assignments by workspace_id.
    "metastores",
    "metastore_assignments",
    # Unity Catalog, metastore side (unity_workspace.py), reached through a workspace assigned to the metastore;
    # keyed by (metastore_id, name) (schemas: (metastore_id, "catalog.schema")).
    "storage_credentials",
    "external_locations",
    "catalogs",
    "schemas",
    # Each workspace's cluster policies (policies_api.py), by policy_id, with their workspace_id.
    "cluster_policies",
    # Account identities (identity_api.py): SCIM users, service principals and groups by id; OAuth secrets of
    # service principals by secret id (a hash only, never the value); workspace permission assignments by
    # (workspace_id, principal_id).
    "users",
    "service_principals",
    "service_principal_secrets",
    "groups",
    "permission_assignments",
    # Serverless egress (network_api.py): network policies by network_policy_id, each workspace's network option
    # by workspace_id, network connectivity configurations by id, their private endpoint rules by rule_id.
    "network_policies",
    "workspace_network_options",
    "network_connectivity_configs",
    "private_endpoint_rules",
)


class ApiError(Exception):
    """An error answered as {"error_code", "message"}; the SDK maps code first, then HTTP status."""

    def __init__(self, status: int, error_code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.headers = headers or {}


def not_found(what: str, obj_id: Any) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{what} {obj_id} does not exist.")


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def now_ms() -> int:
    return int(time.time() * 1000)


class Store:
    """Every emulator object, per Databricks account and kind. Records are API-shaped dicts; keys
    starting with "_" are private bookkeeping and never leave the store."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, dict[Any, dict]]] = {}

    def kind(self, account_id: str, kind: str) -> dict[Any, dict]:
        return self.accounts.setdefault(account_id, {k: {} for k in KINDS})[kind]

    def all_workspaces(self) -> list[dict]:
        return [ws for acct in self.accounts.values() for ws in acct["workspaces"].values()]

    def clear(self) -> None:
        with self.lock:
            self.accounts.clear()


STORE = Store()


def public(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_")}


# --- request helpers ------------------------------------------------------------------------------


def json_body(request: Request) -> dict:
    if not request.get_data():
        return {}
    try:
        body = json.loads(request.get_data())
    except ValueError as e:
        raise ApiError(400, "MALFORMED_REQUEST", f"Could not parse request body as JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "Request body must be a JSON object.")
    return body


def required_str(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{field} is required and must be a non-empty string.")
    return value


def string_list(body: dict, field: str) -> list[str]:
    value = body.get(field) or []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"{field} must be a list of strings.")
    return value


def get_record(account_id: str, kind: str, obj_id: Any) -> dict:
    record = STORE.kind(account_id, kind).get(obj_id)
    if record is None:
        label = {
            "credentials": "Credential configuration",
            "storage_configurations": "Storage configuration",
            "networks": "Network configuration",
            "workspaces": "Workspace",
            "vpc_endpoints": "VPC endpoint configuration",
            "private_access_settings": "Private access settings",
            "customer_managed_keys": "Customer managed key configuration",
        }[kind]
        raise not_found(label, obj_id)
    return record


def referenced(account_id: str, kind: str, obj_id: Any, field: str) -> dict:
    """A body reference to a missing object is a bad parameter (400), unlike a missing path id (404)."""
    record = STORE.kind(account_id, kind).get(obj_id)
    if record is None:
        raise invalid(f"{field} {obj_id} does not exist in account {account_id}.")
    return record


def users_of(account_id: str, field: str, obj_id: str) -> list[int]:
    return [ws["workspace_id"] for ws in STORE.kind(account_id, "workspaces").values() if ws.get(field) == obj_id]


def networks_using_endpoint(account_id: str, vpc_endpoint_id: str) -> list[str]:
    return [
        network["network_id"]
        for network in STORE.kind(account_id, "networks").values()
        if any(vpc_endpoint_id in ids for ids in (network.get("vpc_endpoints") or {}).values())
    ]
