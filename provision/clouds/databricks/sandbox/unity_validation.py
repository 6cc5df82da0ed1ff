"""W4: what Unity Catalog finds when it tries a storage credential on a URL, read from the sandbox's IAM and S3
through aws_bridge.py (the only module that reads AWS).

For a credential (its role ARN and external id) and an s3:// URL, in this order:
1. The role must exist, trust the UC master role (UC_MASTER_ROLE_ARN) for sts:AssumeRole with Condition
   StringEquals sts:ExternalId = the credential's external id, and be unchanged for `iam_propagation_seconds`
   since the latest of its creation, its last trust policy update and its last inline policy put (STS refuses
   to assume a new role, and a rewritten trust or policy is not in force everywhere yet). Else every operation
   fails with "Failed to get credentials: AWS IAM role in the storage credential is not configured correctly. ...".
2. The trust must hold a self-assume statement: the role's own ARN as AWS principal, or the account root with
   Condition ArnLike/ArnEquals aws:PrincipalArn matching the role's ARN. Else "The IAM role for this storage
   credential is not self-assuming." for every operation.
3. Each operation needs the role's inline policies to allow it (and no Deny to match; conditions are not
   evaluated): READ s3:GetObject, WRITE s3:PutObject, DELETE s3:DeleteObject on objects under the URL, LIST
   s3:ListBucket on the bucket; PATH_EXISTS needs the bucket to exist. A read-only check SKIPs WRITE and DELETE.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

import provision.clouds.databricks.sandbox.aws_bridge as aws_bridge  # noqa: PLR0402  (imports the module, not its package)
from provision.clouds.databricks.sandbox.unity_common import UC_MASTER_ROLE_ARN, s3_url
from provision.sandbox.settings import SandboxSettings

NOT_CONFIGURED = ("Failed to get credentials: AWS IAM role in the storage credential is not configured correctly. "
                  "Please contact your account admin to update the configuration.")
NOT_SELF_ASSUMING = "The IAM role for this storage credential is not self-assuming."
OPERATIONS = ("READ", "LIST", "WRITE", "DELETE", "PATH_EXISTS")
_OBJECT_ACTIONS = {"READ": "s3:GetObject", "WRITE": "s3:PutObject", "DELETE": "s3:DeleteObject"}
_PROBE = "__databricks_validation_probe"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _document(text: Any) -> dict:
    if isinstance(text, dict):
        return text
    try:
        doc = json.loads(text)
    except (TypeError, ValueError):
        try:
            doc = json.loads(urllib.parse.unquote(str(text)))
        except ValueError:
            return {}
    return doc if isinstance(doc, dict) else {}


def _statements(text: Any) -> list[dict]:
    return [s for s in _as_list(_document(text).get("Statement")) if isinstance(s, dict)]


def _wildcard(pattern: str, value: str, ignore_case: bool = False) -> bool:
    """IAM's wildcard match: * any run of characters, ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if ignore_case else 0) is not None


def _conditions(statement: dict, operators: set[str], name: str) -> list[str]:
    """Values of condition key `name` under any of `operators` (IAM: both case-insensitive)."""
    found: list[str] = []
    for op, conds in (statement.get("Condition") or {}).items():
        if op.lower() in operators and isinstance(conds, dict):
            for cond_key, values in conds.items():
                if cond_key.lower() == name:
                    found += [str(v) for v in _as_list(values)]
    return found


def _assume_statements(trust: Any) -> list[tuple[dict, set[str]]]:
    out = []
    for st in _statements(trust):
        actions = {str(a).lower() for a in _as_list(st.get("Action"))}
        if st.get("Effect") != "Allow" or not {"sts:assumerole", "sts:*", "*"} & actions:
            continue
        principal = st.get("Principal")
        out.append((st, {str(p) for p in _as_list(principal.get("AWS"))} if isinstance(principal, dict) else set()))
    return out


def _trusts_master(trust: Any, external_id: str) -> bool:
    return any(
        UC_MASTER_ROLE_ARN in aws and external_id in _conditions(st, {"stringequals"}, "sts:externalid")
        for st, aws in _assume_statements(trust)
    )


def _self_assuming(trust: Any, role_arn: str) -> bool:
    account = role_arn.split(":")[4]
    for st, aws in _assume_statements(trust):
        if role_arn in aws:
            return True
        if f"arn:aws:iam::{account}:root" in aws or account in aws:
            patterns = _conditions(st, {"arnlike", "arnequals"}, "aws:principalarn")
            if any(_wildcard(p, role_arn) for p in patterns):
                return True
    return False


def _allowed(policies: list[dict], action: str, resource: str) -> bool:
    def matches(st: dict) -> bool:
        actions = _as_list(st.get("Action"))
        resources = _as_list(st.get("Resource"))
        return any(_wildcard(str(a), action, ignore_case=True) for a in actions) and any(
            _wildcard(str(r), resource) for r in resources
        )

    if any(st.get("Effect") == "Deny" and matches(st) for st in policies):
        return False
    return any(st.get("Effect") == "Allow" and matches(st) for st in policies)


def credential_problem(settings: SandboxSettings, role_arn: str, external_id: str) -> str | None:
    """Rules 1 and 2: why UC could not get credentials from the role, or None."""
    role = aws_bridge.role(role_arn)
    if role is None or not _trusts_master(role.trust_policy, external_id):
        return NOT_CONFIGURED
    settled = role.age_seconds if role.settled_seconds is None else role.settled_seconds
    if settled < settings.delay("iam_propagation_seconds", role_arn):
        return NOT_CONFIGURED
    if not _self_assuming(role.trust_policy, role_arn):
        return NOT_SELF_ASSUMING
    return None


def validate(settings: SandboxSettings, credential: dict, url: str, read_only: bool = False) -> list[dict]:
    """ValidationResult dicts, one per operation, for the credential on the URL."""
    role_arn = credential["aws_iam_role"]["role_arn"]
    bucket, path = s3_url(url)
    problem = credential_problem(settings, role_arn, credential["aws_iam_role"]["external_id"])
    if problem is not None:
        return [{"operation": op, "result": "FAIL", "message": problem} for op in OPERATIONS]
    role = aws_bridge.role(role_arn)
    policies = [st for _, doc in (role.inline_policies if role else ()) for st in _statements(doc)]
    obj = f"arn:aws:s3:::{bucket}/{path + '/' if path else ''}{_PROBE}"
    results = []
    for op in OPERATIONS:
        if read_only and op in ("WRITE", "DELETE"):
            results.append({"operation": op, "result": "SKIP"})
            continue
        if op == "PATH_EXISTS":
            ok = aws_bridge.bucket_exists(bucket)
            message = f"The S3 bucket {bucket} of url {url} does not exist."
        else:
            action, resource = (_OBJECT_ACTIONS[op], obj) if op in _OBJECT_ACTIONS else ("s3:ListBucket", f"arn:aws:s3:::{bucket}")
            ok = _allowed(policies, action, resource)
            message = f"AWS IAM role does not have {op} permissions on url {url}."
        results.append({"operation": op, "result": "PASS"} if ok else {"operation": op, "result": "FAIL", "message": message})
    return results


def first_failure(results: list[dict]) -> str | None:
    return next((r["message"] for r in results if r["result"] == "FAIL"), None)
