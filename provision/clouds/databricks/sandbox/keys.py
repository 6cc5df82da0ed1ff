"""Customer-managed key configurations of the Account API (`/customer-managed-keys`), checked against the
sandbox's KMS as Databricks' own principal would meet the key (through aws_bridge):

- POST needs `use_cases` (MANAGED_SERVICES and/or STORAGE) and `aws_key_info.key_arn`, a KMS key that exists
  in its region, is enabled, and whose key policy lets Databricks (arn:aws:iam::414351767826:root, carrying
  the principal tag DatabricksAccountId = this account) perform what each use case needs; otherwise 400
  MALFORMED_REQUEST. `key_region` is the key ARN's; `reuse_key_for_cluster_volumes` (STORAGE only) defaults
  to true.
- A workspace naming a key configuration (managed_services_customer_managed_key_id,
  storage_customer_managed_key_id) needs one of this account, for that use case, in the workspace's region
  (else 400 INVALID_PARAMETER_VALUE); one whose KMS key is no longer enabled when provisioning ends fails
  the workspace.
- DELETE of a configuration a workspace names is refused with 400 INVALID_STATE (app.py).

The key policy is read the way KMS evaluates it for that principal, independently of the tool's own
preflight: an Allow naming the principal (or "*") and covering the action (wildcards allowed), whose
principal-tag condition, if any, admits the account; a Deny without conditions wins. Other condition keys
are taken as met.
"""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from typing import Any

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.databricks.sandbox.store import (
    STORE,
    ApiError,
    invalid,
    now_ms,
    referenced,
)
from provision.sandbox.settings import DATABRICKS_AWS_ACCOUNT_ID, SandboxSettings

_KEY_ARN_RE = re.compile(r"^arn:aws[\w-]*:kms:([a-z0-9-]+):(\d{12}):key/[\w-]+$")
_PRINCIPALS = {"*", DATABRICKS_AWS_ACCOUNT_ID, f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"}
# What Databricks does with a key of each use case.
_ACTIONS = {
    "MANAGED_SERVICES": ("kms:Encrypt", "kms:Decrypt"),
    "STORAGE": ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey"),
}
# Workspace field -> the use case its key configuration must have.
WORKSPACE_FIELDS = {"managed_services_customer_managed_key_id": "MANAGED_SERVICES", "storage_customer_managed_key_id": "STORAGE"}


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _applies(statement: dict, account_id: str) -> bool:
    principal = statement.get("Principal")
    named = {"*"} if principal == "*" else set(_as_list(principal.get("AWS"))) if isinstance(principal, dict) else set()
    if not named & _PRINCIPALS:
        return False
    for operator, conditions in (statement.get("Condition") or {}).items():
        for key, values in (conditions or {}).items() if isinstance(conditions, dict) else ():
            if key.lower() != "aws:principaltag/databricksaccountid":
                continue
            wanted = [str(v) for v in _as_list(values)]
            if "like" in operator.lower():
                if not any(fnmatch.fnmatchcase(account_id, w) for w in wanted):
                    return False
            elif account_id not in wanted:
                return False
    return True


def _allowed(statement: dict, action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(p).lower()) for p in _as_list(statement.get("Action")))


def missing_actions(policy_text: Any, use_case: str, account_id: str) -> list[str]:
    """What Databricks could not do with a key under this key policy for `use_case`."""
    try:
        policy = json.loads(policy_text) if isinstance(policy_text, str) else policy_text
        statements = [s for s in _as_list(policy.get("Statement")) if isinstance(s, dict)]
    except (ValueError, AttributeError):
        return list(_ACTIONS[use_case])
    missing = []
    for action in _ACTIONS[use_case]:
        allow = any(s.get("Effect") == "Allow" and "NotAction" not in s and _applies(s, account_id) and _allowed(s, action) for s in statements)
        deny = any(s.get("Effect") == "Deny" and not s.get("Condition") and _applies(s, account_id) and _allowed(s, action) for s in statements)
        if deny or not allow:
            missing.append(action)
    return missing


def _refused(detail: str) -> ApiError:
    return ApiError(400, "MALFORMED_REQUEST", f"Failed to validate the customer managed key: {detail}")


def create_customer_managed_key(settings: SandboxSettings, account_id: str, body: dict) -> dict:
    use_cases = body.get("use_cases")
    if not use_cases:
        raise ApiError(400, "MALFORMED_REQUEST", "Missing required parameters: use_cases")
    if not isinstance(use_cases, list) or not all(u in _ACTIONS for u in use_cases) or len(set(use_cases)) != len(use_cases):
        raise invalid(f"use_cases must be distinct values of {sorted(_ACTIONS)}, got {use_cases!r}.")
    info = body.get("aws_key_info")
    if not isinstance(info, dict) or not info.get("key_arn"):
        raise ApiError(400, "MALFORMED_REQUEST", "Missing required parameters: aws_key_info.key_arn")
    key_arn = info["key_arn"]
    match = _KEY_ARN_RE.match(str(key_arn))
    if match is None:
        raise invalid(f"aws_key_info.key_arn {key_arn} is not a KMS key ARN.")
    region = match.group(1)
    if info.get("key_region") not in (None, region):
        raise invalid(f"aws_key_info.key_region {info['key_region']} is not the region of key {key_arn} ({region}).")
    key = aws_bridge.kms_key(key_arn)
    if key is None:
        raise _refused(f"KMS key {key_arn} does not exist or Databricks cannot describe it.")
    if key.state != "Enabled":
        raise _refused(f"KMS key {key_arn} is {key.state}, not Enabled.")
    for use_case in use_cases:
        gaps = missing_actions(key.policy, use_case, account_id)
        if gaps:
            raise _refused(
                f"the key policy of {key_arn} does not allow arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root (principal tag "
                f"DatabricksAccountId={account_id}) to use the key for {use_case}: missing {', '.join(gaps)}."
            )
    aws_key_info: dict[str, Any] = {"key_arn": key_arn, "key_region": region}
    if info.get("key_alias"):
        aws_key_info["key_alias"] = info["key_alias"]
    if "STORAGE" in use_cases:
        reuse = info.get("reuse_key_for_cluster_volumes")
        aws_key_info["reuse_key_for_cluster_volumes"] = True if reuse is None else bool(reuse)
    record = {
        "customer_managed_key_id": str(uuid.uuid4()),
        "account_id": account_id,
        "aws_key_info": aws_key_info,
        "use_cases": list(use_cases),
        "creation_time": now_ms(),
    }
    STORE.kind(account_id, "customer_managed_keys")[record["customer_managed_key_id"]] = record
    return record


def check_workspace_keys(account_id: str, values: dict) -> None:
    """A workspace's key configurations: this account's, for their use case, in the workspace's region."""
    for field, use_case in WORKSPACE_FIELDS.items():
        key_id = values.get(field)
        if not key_id:
            continue
        config = referenced(account_id, "customer_managed_keys", key_id, field)
        if use_case not in config["use_cases"]:
            raise invalid(f"{field} {key_id} is a key configuration for {', '.join(config['use_cases'])}, not {use_case}.")
        key_region = config["aws_key_info"]["key_region"]
        if key_region != values.get("aws_region"):
            raise invalid(
                f"Customer managed key {key_id} ({config['aws_key_info']['key_arn']}) is in region {key_region}, "
                f"not the workspace's region {values.get('aws_region')}."
            )


def provisioning_problems(account_id: str, ws: dict) -> list[str]:
    """Why Databricks could not encrypt the workspace with its keys when provisioning ends."""
    problems = []
    for field in WORKSPACE_FIELDS:
        config = STORE.kind(account_id, "customer_managed_keys").get(ws.get(field))
        if config is None:
            continue
        key_arn = config["aws_key_info"]["key_arn"]
        key = aws_bridge.kms_key(key_arn)
        if key is None or key.state != "Enabled":
            problems.append(f"customer-managed key {key_arn} is {key.state if key else 'gone'}; Databricks cannot encrypt with it")
    return problems


def workspaces_using(account_id: str, key_id: str) -> list[int]:
    return [
        ws["workspace_id"] for ws in STORE.kind(account_id, "workspaces").values() if key_id in (ws.get(f) for f in WORKSPACE_FIELDS)
    ]
