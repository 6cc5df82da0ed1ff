"""Serverless egress on the Account API, as databricks-sdk 0.156 calls it (service/settings.py NetworkPoliciesAPI,
WorkspaceNetworkConfigurationAPI, NetworkConnectivityAPI); the SDK sends each object unwrapped as the body.

- Network policies: POST accounts/<a>/network-policies (AccountNetworkPolicy: the client chooses
  network_policy_id, ^[a-zA-Z0-9_.-]{1,32}$, unique: 409 RESOURCE_ALREADY_EXISTS), GET (list: {items: [...]}),
  GET/PUT/DELETE .../network-policies/<id>. egress.network_access holds restriction_mode (FULL_ACCESS |
  RESTRICTED_ACCESS), allowed_internet_destinations [{destination, internet_destination_type: DNS_NAME}],
  allowed_storage_destinations [{bucket_name, region, storage_destination_type: AWS_S3}] and policy_enforcement
  {enforcement_mode: DRY_RUN | ENFORCED, dry_run_mode_product_filter?}. Every account has `default-policy`
  (FULL_ACCESS), made on first use; it can be updated but not deleted (400 INVALID_PARAMETER_VALUE "The default
  policy cannot be deleted."). A policy a workspace is bound to cannot be deleted (W9): 400 INVALID_STATE
  "Network policy <id> is in use by workspace(s) <ids>."
- Workspace network option: GET/PUT accounts/<a>/workspaces/<ws>/network {workspace_id, network_policy_id}.
  Every workspace is bound to exactly one policy, `default-policy` from its creation (workspaces.py); the policy
  must exist (400 INVALID_PARAMETER_VALUE). The option goes with the workspace.
- Network connectivity configurations: POST accounts/<a>/network-connectivity-configs {name
  (^[0-9a-zA-Z-_]{3,30}$), region}, GET (list: {items}), GET/DELETE .../<id>; egress_config shows the default
  stable-IP rule and the private endpoint rules. A workspace binds one with the workspace PATCH
  (network_connectivity_config_id, same region: workspaces.py); one bound to any workspace cannot be deleted:
  400 INVALID_STATE "Network connectivity configuration <id> is in use by workspace(s) <ids>."
- Private endpoint rules (AWS shape): POST/GET(list {items})/GET/PATCH(update_mask)/DELETE
  .../network-connectivity-configs/<id>/private-endpoint-rules[/<rule_id>] with endpoint_service (a VPC endpoint
  service of the NCC's region: com.amazonaws.vpce.<region>.vpce-svc-..., or com.amazonaws.<region>.s3 with
  resource_names = buckets) and domain_names. A new rule is PENDING and turns ESTABLISHED after
  `vpc_endpoint_pending_seconds` (the sandbox approves the endpoint connection itself, as the owner of the
  endpoint service would in the AWS console). DELETE of a PENDING rule removes it; an ESTABLISHED one is
  deactivated (deactivated: true, deactivated_at) and stays listed until its NCC goes, as the real API keeps it
  for a day. The inventory (listing.py) leaves deactivated rules out.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from typing import Any

from werkzeug.routing import Rule
from werkzeug.wrappers import Request

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    json_body,
    not_found,
    now_ms,
)
from provision.clouds.databricks.sandbox.unity_account import workspace_id_of
from provision.sandbox.settings import SandboxSettings

_ACCT = "/api/2.0/accounts/<account_id>"
_NCC = f"{_ACCT}/network-connectivity-configs/<ncc_id>"
RULES = [
    Rule(f"{_ACCT}/network-policies", endpoint="net.policies", methods=["GET", "POST"]),
    Rule(f"{_ACCT}/network-policies/<policy_id>", endpoint="net.policy", methods=["GET", "PUT", "DELETE"]),
    Rule(f"{_ACCT}/workspaces/<workspace_id>/network", endpoint="net.workspace_option", methods=["GET", "PUT"]),
    Rule(f"{_ACCT}/network-connectivity-configs", endpoint="net.nccs", methods=["GET", "POST"]),
    Rule(_NCC, endpoint="net.ncc", methods=["GET", "DELETE"]),
    Rule(f"{_NCC}/private-endpoint-rules", endpoint="net.rules", methods=["GET", "POST"]),
    Rule(f"{_NCC}/private-endpoint-rules/<rule_id>", endpoint="net.rule", methods=["GET", "PATCH", "DELETE"]),
]
DEFAULT_POLICY = "default-policy"
_POLICY_ID_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,32}$")
_NCC_NAME_RE = re.compile(r"^[0-9a-zA-Z_-]{3,30}$")
_RESTRICTION_MODES = {"FULL_ACCESS", "RESTRICTED_ACCESS"}
_ENFORCEMENT_MODES = {"DRY_RUN", "ENFORCED"}
_PRODUCT_FILTERS = {"DBSQL", "ML_SERVING"}
_RULE_UPDATABLE = {"domain_names", "enabled", "resource_names"}
# Databricks' serverless egress addresses of the NCC's region (documentation ranges: the sandbox's own).
_STABLE_IPS = ["198.51.100.0/28", "203.0.113.0/28"]


# --- network policies ------------------------------------------------------------------------------------


def ensure_default_policy(account_id: str) -> dict:
    policies = STORE.kind(account_id, "network_policies")
    if DEFAULT_POLICY not in policies:
        policies[DEFAULT_POLICY] = {
            "network_policy_id": DEFAULT_POLICY,
            "account_id": account_id,
            "egress": {"network_access": {"restriction_mode": "FULL_ACCESS"}},
        }
    return policies[DEFAULT_POLICY]


def bind_default_policy(account_id: str, workspace_id: int) -> None:
    """What a new workspace starts with (workspaces.py)."""
    ensure_default_policy(account_id)
    STORE.kind(account_id, "workspace_network_options")[workspace_id] = {"workspace_id": workspace_id, "network_policy_id": DEFAULT_POLICY}


def _items(value: Any, field: str) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise invalid(f"{field} must be a list of objects.")
    return value


def _egress(egress: Any) -> dict:
    """The policy's egress, checked field by field; stored as given."""
    if egress is None:
        return {"network_access": {"restriction_mode": "FULL_ACCESS"}}
    if not isinstance(egress, dict):
        raise invalid("egress must be an object.")
    access = egress.get("network_access")
    if access is None:
        return egress
    if not isinstance(access, dict):
        raise invalid("egress.network_access must be an object.")
    prefix = "egress.network_access"
    if access.get("restriction_mode") not in _RESTRICTION_MODES:
        raise invalid(f"{prefix}.restriction_mode must be one of {sorted(_RESTRICTION_MODES)}, not {access.get('restriction_mode')!r}.")
    for field in ("allowed_internet_destinations", "blocked_internet_destinations"):
        for n, d in enumerate(_items(access.get(field), f"{prefix}.{field}")):
            if not isinstance(d.get("destination"), str) or not d["destination"]:
                raise invalid(f"{prefix}.{field}[{n}].destination is required.")
            if d.get("internet_destination_type", "DNS_NAME") != "DNS_NAME":
                raise invalid(f"{prefix}.{field}[{n}].internet_destination_type must be DNS_NAME.")
    for n, d in enumerate(_items(access.get("allowed_storage_destinations"), f"{prefix}.allowed_storage_destinations")):
        where = f"{prefix}.allowed_storage_destinations[{n}]"
        kind = d.get("storage_destination_type")
        if kind != "AWS_S3":
            raise invalid(f"{where}.storage_destination_type must be AWS_S3 on AWS, not {kind!r}.")
        if not isinstance(d.get("bucket_name"), str) or not d["bucket_name"]:
            raise invalid(f"{where}.bucket_name is required for AWS_S3.")
        if not isinstance(d.get("region"), str) or not aws_bridge.region_exists(d["region"]):
            raise invalid(f"{where}.region {d.get('region')!r} is not a valid AWS region.")
    for n, d in enumerate(_items(access.get("allowed_databricks_destinations"), f"{prefix}.allowed_databricks_destinations")):
        ids = d.get("workspace_ids") or []
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise invalid(f"{prefix}.allowed_databricks_destinations[{n}].workspace_ids must be a list of integers.")
    enforcement = access.get("policy_enforcement")
    if enforcement is not None:
        if not isinstance(enforcement, dict):
            raise invalid(f"{prefix}.policy_enforcement must be an object.")
        mode = enforcement.get("enforcement_mode")
        if mode is not None and mode not in _ENFORCEMENT_MODES:
            raise invalid(f"{prefix}.policy_enforcement.enforcement_mode must be one of {sorted(_ENFORCEMENT_MODES)}, not {mode!r}.")
        products = enforcement.get("dry_run_mode_product_filter") or []
        if not isinstance(products, list) or not set(products) <= _PRODUCT_FILTERS:
            raise invalid(f"{prefix}.policy_enforcement.dry_run_mode_product_filter must list {sorted(_PRODUCT_FILTERS)} only.")
    return egress


def _policy_body(request: Request) -> dict:
    body = json_body(request)
    # The SDK sends the AccountNetworkPolicy itself; the REST reference wraps it in network_policy.
    return body["network_policy"] if isinstance(body.get("network_policy"), dict) else body


def _policy(account_id: str, policy_id: str) -> dict:
    ensure_default_policy(account_id)
    record = STORE.kind(account_id, "network_policies").get(policy_id)
    if record is None:
        raise not_found("Network policy", policy_id)
    return record


def bound_workspaces(account_id: str, policy_id: str) -> list[int]:
    return sorted(o["workspace_id"] for o in STORE.kind(account_id, "workspace_network_options").values() if o["network_policy_id"] == policy_id)


def _policies(account_id: str, request: Request, endpoint: str, args: dict) -> Any:
    ensure_default_policy(account_id)
    policies = STORE.kind(account_id, "network_policies")
    if endpoint == "net.policies":
        if request.method == "GET":
            return {"items": list(policies.values())}
        body = _policy_body(request)
        policy_id = body.get("network_policy_id")
        if not isinstance(policy_id, str) or not _POLICY_ID_RE.match(policy_id):
            raise invalid(f"network_policy_id {policy_id!r} is required and must match ^[a-zA-Z0-9_.-]{{1,32}}$.")
        if policy_id in policies:
            raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"Network policy {policy_id} already exists.")
        record = {"network_policy_id": policy_id, "account_id": account_id, "egress": _egress(body.get("egress"))}
        policies[policy_id] = record
        return record
    record = _policy(account_id, args["policy_id"])
    policy_id = record["network_policy_id"]
    if request.method == "GET":
        return record
    if request.method == "PUT":
        body = _policy_body(request)
        if body.get("network_policy_id") not in (None, policy_id):
            raise invalid(f"network_policy_id {body['network_policy_id']} does not match the path ({policy_id}).")
        record["egress"] = _egress(body.get("egress"))
        return record
    if policy_id == DEFAULT_POLICY:
        raise invalid("The default policy cannot be deleted.")
    users = bound_workspaces(account_id, policy_id)
    if users:
        raise ApiError(400, "INVALID_STATE", f"Network policy {policy_id} is in use by workspace(s) {', '.join(map(str, users))}.")
    del policies[policy_id]
    return {}


def _workspace_option(account_id: str, request: Request, args: dict) -> Any:
    workspace_id = workspace_id_of(account_id, args["workspace_id"])
    options = STORE.kind(account_id, "workspace_network_options")
    if workspace_id not in options:  # "default-policy used if no explicit assignment exists"
        bind_default_policy(account_id, workspace_id)
    if request.method == "PUT":
        body = json_body(request)
        if body.get("workspace_id") not in (None, workspace_id, str(workspace_id)):
            raise invalid(f"workspace_id {body['workspace_id']} does not match the path ({workspace_id}).")
        policy_id = body.get("network_policy_id")
        if not isinstance(policy_id, str) or not policy_id:
            raise invalid("network_policy_id is required.")
        ensure_default_policy(account_id)
        if policy_id not in STORE.kind(account_id, "network_policies"):
            raise invalid(f"network_policy_id {policy_id} does not exist in account {account_id}.")
        options[workspace_id]["network_policy_id"] = policy_id
    return dict(options[workspace_id])


# --- network connectivity configurations and their private endpoint rules --------------------------------------


def ncc_users(account_id: str, ncc_id: str) -> list[int]:
    return sorted(ws["workspace_id"] for ws in STORE.kind(account_id, "workspaces").values() if ws.get("network_connectivity_config_id") == ncc_id)


def _ncc(account_id: str, ncc_id: str) -> dict:
    record = STORE.kind(account_id, "network_connectivity_configs").get(ncc_id)
    if record is None:
        raise not_found("Network connectivity configuration", ncc_id)
    return record


def refresh_rule(settings: SandboxSettings | None, rule: dict) -> dict:
    """PENDING until the endpoint connection is approved (after vpc_endpoint_pending_seconds), then ESTABLISHED."""
    pending = rule["connection_state"] == "PENDING" and settings is not None
    if pending and time.monotonic() - rule["_created"] >= settings.delay("vpc_endpoint_pending_seconds", rule["rule_id"]):
        rule["connection_state"], rule["updated_time"] = "ESTABLISHED", now_ms()
    return rule


def _rules_of(settings: SandboxSettings | None, account_id: str, ncc_id: str) -> list[dict]:
    return [refresh_rule(settings, r) for r in STORE.kind(account_id, "private_endpoint_rules").values() if r["network_connectivity_config_id"] == ncc_id]


def public_rule(rule: dict) -> dict:
    return {k: v for k, v in rule.items() if not k.startswith("_")}


def _render_ncc(settings: SandboxSettings, account_id: str, record: dict) -> dict:
    rules = [public_rule(r) for r in _rules_of(settings, account_id, record["network_connectivity_config_id"])]
    egress: dict[str, Any] = {"default_rules": {"aws_stable_ip_rule": {"cidr_blocks": list(_STABLE_IPS)}}}
    if rules:
        egress["target_rules"] = {"aws_private_endpoint_rules": rules}
    return {**record, "egress_config": egress}


def _string_list(body: dict, field: str) -> list[str] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise invalid(f"{field} must be a non-empty list of strings.")
    return list(value)


def _create_rule(account_id: str, ncc: dict, body: dict) -> dict:
    service = body.get("endpoint_service")
    region = ncc["region"]
    if not isinstance(service, str) or not service:
        raise invalid("endpoint_service is required for a private endpoint rule on AWS.")
    s3 = service == f"com.amazonaws.{region}.s3"
    if not s3 and not re.fullmatch(rf"com\.amazonaws\.vpce\.{re.escape(region)}\.vpce-svc-[0-9a-f]{{8,17}}", service):
        raise invalid(
            f"endpoint_service {service} is not a VPC endpoint service of the network connectivity configuration's region "
            f"{region} (com.amazonaws.vpce.{region}.vpce-svc-<id>, or com.amazonaws.{region}.s3)."
        )
    domain_names, resource_names = _string_list(body, "domain_names"), _string_list(body, "resource_names")
    if s3 and (domain_names or not resource_names):
        raise invalid("A private endpoint rule to Amazon S3 takes resource_names (bucket names), not domain_names.")
    if not s3 and resource_names:
        raise invalid("resource_names is only for private endpoint rules to Amazon S3; use domain_names.")
    now = now_ms()
    rule: dict[str, Any] = {
        "rule_id": str(uuid.uuid4()),
        "network_connectivity_config_id": ncc["network_connectivity_config_id"],
        "account_id": account_id,
        "endpoint_service": service,
        "connection_state": "PENDING",
        "vpc_endpoint_id": f"vpce-{secrets.token_hex(9)[:17]}",
        "deactivated": False,
        "creation_time": now,
        "updated_time": now,
        "_created": time.monotonic(),
    }
    if domain_names:
        rule["domain_names"] = domain_names
    if resource_names:
        rule["resource_names"], rule["enabled"] = resource_names, True
    STORE.kind(account_id, "private_endpoint_rules")[rule["rule_id"]] = rule
    return rule


def _update_rule(rule: dict, body: dict, mask: str | None) -> dict:
    fields = [f.strip() for f in (mask or "").split(",") if f.strip()]
    if not fields or not set(fields) <= _RULE_UPDATABLE:
        raise invalid(f"update_mask must name some of {sorted(_RULE_UPDATABLE)}, not {mask!r}.")
    if rule["deactivated"]:
        raise ApiError(400, "INVALID_STATE", f"Private endpoint rule {rule['rule_id']} is deactivated.")
    for field in fields:
        if field == "enabled":
            if "resource_names" not in rule or not isinstance(body.get("enabled"), bool):
                raise invalid("enabled is a boolean, and only for private endpoint rules to Amazon S3.")
            rule["enabled"] = body["enabled"]
        elif (field == "resource_names") != ("resource_names" in rule):
            raise invalid(f"{field} cannot be set on this private endpoint rule.")
        else:
            rule[field] = _string_list(body, field) or []
    rule["updated_time"] = now_ms()
    return rule


def _nccs(settings: SandboxSettings, account_id: str, request: Request, endpoint: str, args: dict) -> Any:
    nccs = STORE.kind(account_id, "network_connectivity_configs")
    if endpoint == "net.nccs":
        if request.method == "GET":
            return {"items": [_render_ncc(settings, account_id, r) for r in nccs.values()]}
        body = json_body(request)
        body = body["network_connectivity_config"] if isinstance(body.get("network_connectivity_config"), dict) else body
        name, region = body.get("name"), body.get("region")
        if not isinstance(name, str) or not _NCC_NAME_RE.match(name):
            raise invalid(f"name {name!r} is required and must match ^[0-9a-zA-Z-_]{{3,30}}$.")
        if not isinstance(region, str) or not aws_bridge.region_exists(region):
            raise invalid(f"region {region!r} is not a valid AWS region.")
        now = now_ms()
        record = {
            "network_connectivity_config_id": str(uuid.uuid4()),
            "account_id": account_id,
            "name": name,
            "region": region,
            "creation_time": now,
            "updated_time": now,
        }
        nccs[record["network_connectivity_config_id"]] = record
        return _render_ncc(settings, account_id, record)
    ncc = _ncc(account_id, args["ncc_id"])
    ncc_id = ncc["network_connectivity_config_id"]
    rules = STORE.kind(account_id, "private_endpoint_rules")
    if endpoint == "net.ncc":
        if request.method == "GET":
            return _render_ncc(settings, account_id, ncc)
        users = ncc_users(account_id, ncc_id)
        if users:
            raise ApiError(
                400, "INVALID_STATE", f"Network connectivity configuration {ncc_id} is in use by workspace(s) {', '.join(map(str, users))}."
            )
        for rule in _rules_of(None, account_id, ncc_id):
            del rules[rule["rule_id"]]
        del nccs[ncc_id]
        return {}
    if endpoint == "net.rules":
        if request.method == "GET":
            return {"items": [public_rule(r) for r in _rules_of(settings, account_id, ncc_id)]}
        return public_rule(_create_rule(account_id, ncc, json_body(request)))
    rule = rules.get(args["rule_id"])
    if rule is None or rule["network_connectivity_config_id"] != ncc_id:
        raise not_found("Private endpoint rule", args["rule_id"])
    refresh_rule(settings, rule)
    if request.method == "PATCH":
        return public_rule(_update_rule(rule, json_body(request), request.args.get("update_mask")))
    if request.method == "DELETE":
        if rule["connection_state"] in ("PENDING", "EXPIRED", "CREATE_FAILED", "REJECTED"):
            del rules[rule["rule_id"]]
        elif not rule["deactivated"]:
            rule["deactivated"], rule["deactivated_at"] = True, now_ms()
    return public_rule(rule)


def handle(settings: SandboxSettings, request: Request, endpoint: str, args: dict) -> Any:
    account_id = args["account_id"]
    if endpoint in ("net.policies", "net.policy"):
        return _policies(account_id, request, endpoint, args)
    if endpoint == "net.workspace_option":
        return _workspace_option(account_id, request, args)
    return _nccs(settings, account_id, request, endpoint, args)
