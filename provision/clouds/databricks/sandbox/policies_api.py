"""A workspace's cluster policies (databricks-sdk 0.156 compute.ClusterPoliciesAPI) under api/2.0/policies/clusters/:
POST create {name, definition, ...} -> {policy_id}; POST edit {policy_id, name, ...} replaces the policy (fields not
sent are cleared); POST delete {policy_id}; GET get?policy_id= -> Policy; GET list -> {policies: [...]}
(sort_column POLICY_CREATION_TIME | POLICY_NAME, sort_order ASC | DESC).

Rules: name is required, 1-100 characters and unique in the workspace (400 INVALID_PARAMETER_VALUE); definition,
when given, must be a string holding a JSON object (400 INVALID_PARAMETER_VALUE naming the parse error); a
policy_id that does not exist is 404 RESOURCE_DOES_NOT_EXIST. The workspace's built-in default policies
(Personal Compute, ...) are not modelled. Records carry their workspace_id (not shown by the API) and go with the
workspace.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from werkzeug.wrappers import Request

from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    json_body,
    now_ms,
)

PREFIX = "api/2.0/policies/clusters/"
_METHODS = {"create": "POST", "edit": "POST", "delete": "POST", "get": "GET", "list": "GET"}
_FIELDS = ("definition", "description", "max_clusters_per_user", "policy_family_id", "policy_family_definition_overrides")


def handles(rest: str) -> bool:
    return rest.startswith(PREFIX) and rest[len(PREFIX):].strip("/") in _METHODS


def _policies(ws: dict) -> dict[str, dict]:
    return {pid: p for pid, p in STORE.kind(ws["account_id"], "cluster_policies").items() if p["workspace_id"] == ws["workspace_id"]}


def _shown(record: dict) -> dict:
    return {k: v for k, v in record.items() if not k.startswith("_") and k != "workspace_id"}


def _get(ws: dict, policy_id: Any) -> dict:
    if not isinstance(policy_id, str) or not policy_id:
        raise invalid("policy_id is required.")
    record = _policies(ws).get(policy_id)
    if record is None:
        raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Cluster policy {policy_id} does not exist.")
    return record


def _fields(ws: dict, body: dict, policy_id: str | None) -> dict:
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        raise invalid("name is required: the cluster policy's name, 1 to 100 characters.")
    if any(p["name"] == name and pid != policy_id for pid, p in _policies(ws).items()):
        raise invalid(f"Cluster policy with name '{name}' already exists. Policy names must be unique.")
    definition = body.get("definition")
    if definition is not None:
        if not isinstance(definition, str):
            raise invalid("definition must be a string holding the policy's JSON definition.")
        try:
            parsed = json.loads(definition)
        except ValueError as e:
            raise invalid(f"Invalid policy definition: {e}.") from None
        if not isinstance(parsed, dict):
            raise invalid("Invalid policy definition: it must be a JSON object of attribute paths to policy elements.")
    if body.get("definition") and body.get("policy_family_id"):
        raise invalid("definition cannot be used with policy_family_id; use policy_family_definition_overrides instead.")
    max_clusters = body.get("max_clusters_per_user")
    if max_clusters is not None and (not isinstance(max_clusters, int) or isinstance(max_clusters, bool) or max_clusters < 1):
        raise invalid("max_clusters_per_user must be a positive integer.")
    return {"name": name, **{f: body[f] for f in _FIELDS if body.get(f) is not None}}


def respond(ws: dict, request: Request, rest: str, caller: str) -> dict:
    """The JSON answer of one cluster-policy request (authentication and warm-up are the caller's)."""
    action = rest[len(PREFIX):].strip("/")
    if request.method != _METHODS[action]:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"{request.method} is not supported on /{rest}.")
    store = STORE.kind(ws["account_id"], "cluster_policies")
    if action == "get":
        return _shown(_get(ws, request.args.get("policy_id")))
    if action == "list":
        column = request.args.get("sort_column") or "POLICY_CREATION_TIME"
        order = request.args.get("sort_order") or "DESC"
        if column not in ("POLICY_CREATION_TIME", "POLICY_NAME") or order not in ("ASC", "DESC"):
            raise invalid("sort_column must be POLICY_CREATION_TIME or POLICY_NAME and sort_order ASC or DESC.")
        field = "created_at_timestamp" if column == "POLICY_CREATION_TIME" else "name"
        ordered = sorted(_policies(ws).values(), key=lambda p: (p[field], p["_seq"]), reverse=order == "DESC")
        return {"policies": [_shown(p) for p in ordered]}
    body = json_body(request)
    if action == "create":
        fields = _fields(ws, body, None)
        policy_id = secrets.token_hex(8).upper()
        store[policy_id] = {
            "policy_id": policy_id, **fields, "created_at_timestamp": now_ms(), "creator_user_name": caller,
            "is_default": False, "workspace_id": ws["workspace_id"], "_seq": len(store),
        }
        return {"policy_id": policy_id}
    record = _get(ws, body.get("policy_id"))
    if action == "delete":
        del store[record["policy_id"]]
        return {}
    fields = _fields(ws, body, record["policy_id"])  # edit replaces the policy
    for field in _FIELDS:
        record.pop(field, None)
    record.update(fields)
    return {}
