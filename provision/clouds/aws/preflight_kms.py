"""Preflight of the user's existing KMS keys ([encryption.existing]), with reads only, before anything is
created: each key exists, is an enabled symmetric encryption key in the deployment's region, and its key
policy lets Databricks use it for its use case (and, for workspace storage with an existing cross-account
role, lets that role use it for the clusters' EBS volumes).

The key policy is judged the way KMS would for those principals: an Allow statement must name the
principal (or "*"), cover the action (wildcards allowed) and, if it has the documented
`aws:PrincipalTag/DatabricksAccountId` condition, list this Databricks account; a Deny without conditions
takes it away. Conditions on other keys are assumed to hold (preflight cannot evaluate them).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

from provision.clouds.aws.errors import error_code, is_not_found
from provision.clouds.aws.spec_encryption import USE_CASES
from provision.constants import DATABRICKS_AWS_ACCOUNT_ID
from provision.errors import FieldProblem, PreflightError
from provision.spec import Spec

_DATABRICKS = {"*", DATABRICKS_AWS_ACCOUNT_ID, f"arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root"}
# What Databricks does with each use case's key (the documented statements' actions, wildcards expanded).
NEEDED = {
    "MANAGED_SERVICES": ("kms:Encrypt", "kms:Decrypt"),
    "STORAGE": ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey"),
}
# What the cross-account role does with the storage key for EBS volumes.
EBS_NEEDED = ("kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey")
_TAG_KEY = "aws:principaltag/databricksaccountid"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _names_principal(statement: dict[str, Any], principals: set[str]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    named = set(_as_list(principal.get("AWS"))) if isinstance(principal, dict) else set()
    return bool(named & principals)


def _covers(statement: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(pattern).lower()) for pattern in _as_list(statement.get("Action")))


def _tag_condition_holds(statement: dict[str, Any], databricks_account_id: str) -> bool:
    """The documented principal-tag condition, if the statement has one, must admit this account."""
    for operator, conditions in (statement.get("Condition") or {}).items():
        if not isinstance(conditions, dict):
            continue
        for key, values in conditions.items():
            if key.lower() != _TAG_KEY:
                continue
            base = operator.lower().removesuffix("ifexists").split(":")[-1]
            wanted = [str(v) for v in _as_list(values)]
            if base == "stringequals" and databricks_account_id not in wanted:
                return False
            if base == "stringlike" and not any(fnmatch.fnmatchcase(databricks_account_id, v) for v in wanted):
                return False
    return True


def missing_actions(policy: dict[str, Any], principals: set[str], actions: tuple[str, ...], databricks_account_id: str) -> list[str]:
    """The actions of `actions` the key policy does not let any of `principals` perform."""
    statements = [s for s in _as_list(policy.get("Statement")) if isinstance(s, dict) and "NotPrincipal" not in s and "NotAction" not in s]
    missing = []
    for action in actions:
        allowed = any(
            s.get("Effect") == "Allow" and _names_principal(s, principals) and _covers(s, action)
            and _tag_condition_holds(s, databricks_account_id)
            for s in statements
        )
        denied = any(
            s.get("Effect") == "Deny" and not s.get("Condition") and _names_principal(s, principals) and _covers(s, action)
            for s in statements
        )
        if not allowed or denied:
            missing.append(action)
    return missing


def needed(spec: Spec) -> bool:
    return spec.encryption is not None and spec.encryption.existing is not None


def _keys(spec: Spec) -> dict[str, list[str]]:
    """Each existing key ARN -> the spec fields (use cases) it serves."""
    existing = spec.encryption.existing
    served: dict[str, list[str]] = {}
    for use in USE_CASES:
        arn = getattr(existing, f"{use}_key_arn")
        if arn:
            served.setdefault(arn, []).append(use)
    return served


def problems(spec: Spec, aws: Callable[[str], Any], call: Callable[[Callable[[], Any], str], Any]) -> list[FieldProblem]:
    kms = aws("kms")
    found: list[FieldProblem] = []
    for arn, uses in _keys(spec).items():
        fields = [f"encryption.existing.{use}_key_arn" for use in uses]

        def fail(reason: str, fields: list[str] = fields) -> None:
            found.extend(FieldProblem(f, reason) for f in fields)

        try:
            meta = call(lambda arn=arn: kms.describe_key(KeyId=arn)["KeyMetadata"], "preflight kms key")
        except Exception as exc:
            if is_not_found(exc):
                fail(f"KMS key {arn} not found")
                continue
            if error_code(exc) == "AccessDeniedException":
                fail(f"KMS key {arn} is not readable with these AWS credentials (kms:DescribeKey)")
                continue
            raise
        if meta["Arn"].split(":")[3] != spec.region:
            fail(f"KMS key {arn} is in {meta['Arn'].split(':')[3]}, not {spec.region}")
        if meta.get("KeyState") != "Enabled":
            fail(f"KMS key {arn} is {meta.get('KeyState')}; Databricks needs an enabled key")
        if meta.get("KeyUsage") != "ENCRYPT_DECRYPT" or meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            fail(f"KMS key {arn} is {meta.get('KeySpec')} for {meta.get('KeyUsage')}; Databricks needs a symmetric encryption key")
        try:
            policy = json.loads(call(lambda arn=arn: kms.get_key_policy(KeyId=arn, PolicyName="default")["Policy"], "preflight kms key policy"))
        except Exception as exc:
            if error_code(exc) != "AccessDeniedException":
                raise
            fail(f"the key policy of KMS key {arn} is not readable with these AWS credentials (kms:GetKeyPolicy), so it cannot be checked")
            continue
        for use, field in zip(uses, fields):
            use_case = USE_CASES[use]
            gaps = missing_actions(policy, _DATABRICKS, NEEDED[use_case], spec.databricks.account_id)
            if gaps:
                fail(
                    f"the key policy of {arn} does not let Databricks (arn:aws:iam::{DATABRICKS_AWS_ACCOUNT_ID}:root, principal tag "
                    f"DatabricksAccountId={spec.databricks.account_id}) use it for {use_case}: missing {', '.join(gaps)}",
                    [field],
                )
            role = spec.existing.cross_account_role_arn
            if use_case == "STORAGE" and role:
                gaps = missing_actions(policy, {"*", role}, EBS_NEEDED, spec.databricks.account_id)
                if gaps:
                    fail(f"the key policy of {arn} does not let the cross-account role {role} use it for EBS volumes: missing {', '.join(gaps)}", [field])
    return found


def check(spec: Spec, aws: Callable[[str], Any], source: str, call: Callable[[Callable[[], Any], str], Any]) -> None:
    """Raise PreflightError listing every problem with the existing keys."""
    found = problems(spec, aws, call)
    if found:
        raise PreflightError(source, found)
