"""Preflight of the user's existing KMS keys ([encryption.existing]), with reads only, before anything is
created: each key exists, is an enabled symmetric encryption key in the deployment's region, and its key
policy lets Databricks use it for its use case; the storage key must also let the cross-account role use
it for the clusters' EBS volumes, and the key that encrypts the flow-log group (flow logs on) must let
CloudWatch Logs use it for that group.

The key policy is judged the way KMS would for those principals: an Allow statement must name the
principal (or "*"), cover the action (wildcards allowed), and its conditions on what preflight knows must
hold: the documented `aws:PrincipalTag/DatabricksAccountId` (this Databricks account), `aws:PrincipalArn`
and `aws:PrincipalAccount` (the cross-account role), `kms:EncryptionContext:aws:logs:arn` (the flow-log
group). A Deny without conditions takes it away. Conditions on other keys are assumed to hold (preflight
cannot evaluate them).

The cross-account role this tool creates (`iam.crossaccount`, no [existing] role) does not exist yet, and a
key policy cannot name a role that does not exist: its grant is a statement for Principal "*" whose
`aws:PrincipalArn` condition admits the role's deterministic ARN (or, on a rerun, one naming the role). A
grant to the account root alone is not accepted for it: that only defers to IAM policies, and the role's
policy grants no KMS actions.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

from provision.clouds.aws.errors import error_code, is_not_found
from provision.clouds.aws.spec_encryption import USE_CASES
from provision.clouds.aws.steps.iam import CrossAccountRole
from provision.clouds.aws.steps.kms import EBS_ACTIONS, LOGS_ACTIONS, flow_log_group_arn, logs_use_case
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
# What CloudWatch Logs does with the key of an encrypted log group (the guide's Encrypt*, Decrypt*,
# ReEncrypt*, GenerateDataKey*, Describe*).
LOGS_NEEDED = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:GenerateDataKey", "kms:DescribeKey")
_TAG_KEY = "aws:principaltag/databricksaccountid"
_LOGS_CONTEXT_KEY = "kms:encryptioncontext:aws:logs:arn"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _names_principal(statement: dict[str, Any], principals: set[str]) -> bool:
    principal = statement.get("Principal")
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    named = set(_as_list(principal.get("AWS"))) | set(_as_list(principal.get("Service")))
    return bool(named & principals)


def _covers(statement: dict[str, Any], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), str(pattern).lower()) for pattern in _as_list(statement.get("Action")))


def _matches(base: str, actual: str, wanted: list[str]) -> bool | None:
    """Whether a string or ARN condition operator (without IfExists / set qualifier) holds; None for others."""
    if base in ("stringequals", "arnequals", "stringnotequals", "arnnotequals"):
        found = actual in wanted
    elif base in ("stringlike", "arnlike", "stringnotlike", "arnnotlike"):
        found = any(fnmatch.fnmatchcase(actual, v) for v in wanted)
    else:
        return None
    return not found if "not" in base else found


def _conditions_hold(statement: dict[str, Any], known: dict[str, str]) -> bool:
    """The statement's conditions on the context keys of `known` (lower-case key -> value) must hold."""
    for operator, conditions in (statement.get("Condition") or {}).items():
        if not isinstance(conditions, dict):
            continue
        base = operator.lower().removesuffix("ifexists").split(":")[-1]
        for key, values in conditions.items():
            actual = known.get(key.lower())
            if actual is not None and _matches(base, actual, [str(v) for v in _as_list(values)]) is False:
                return False
    return True


def missing_actions(
    policy: dict[str, Any], principals: set[str], actions: tuple[str, ...], databricks_account_id: str,
    known: dict[str, str] | None = None,
) -> list[str]:
    """The actions of `actions` the key policy does not let any of `principals` perform; `known` holds other
    request context (lower-case condition key -> value) the statements' conditions are judged against."""
    statements = [s for s in _as_list(policy.get("Statement")) if isinstance(s, dict) and "NotPrincipal" not in s and "NotAction" not in s]
    context = {_TAG_KEY: databricks_account_id, **(known or {})}
    missing = []
    for action in actions:
        allowed = any(
            s.get("Effect") == "Allow" and _names_principal(s, principals) and _covers(s, action) and _conditions_hold(s, context)
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


def created_role_arn(spec: Spec, account: str) -> str:
    """The ARN the cross-account role this tool creates will have (its name is deterministic)."""
    name = CrossAccountRole("iam.crossaccount").role_name(_Deployment(spec.name))  # type: ignore[arg-type]
    return f"arn:aws:iam::{account}:role/{name}"


class _Deployment:
    """What `CrossAccountRole.role_name` reads of its context, before any context exists."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment

    def name_of(self, step_id: str, default: str) -> str:
        return default  # preflight runs before any state: no imported names yet


def _principal(arn: str) -> dict[str, str]:
    return {"aws:principalarn": arn, "aws:principalaccount": arn.split(":")[4]}


def _flow_logs(spec: Spec) -> bool:
    return spec.network_security is not None and bool(spec.network_security.flow_logs)


def problems(spec: Spec, aws: Callable[[str], Any], call: Callable[[Callable[[], Any], str], Any]) -> list[FieldProblem]:
    kms = aws("kms")
    found: list[FieldProblem] = []
    accounts: list[str] = []

    def account() -> str:
        # The credentials' account (STS), read once and only if a check needs it.
        if not accounts:
            accounts.append(str(call(lambda: aws("sts").get_caller_identity()["Account"], "preflight aws account id")))
        return accounts[0]

    # The key that encrypts the flow-log group, as the [encryption] fragment chooses it.
    logs_case = logs_use_case(tuple(USE_CASES[use] for use in spec.encryption.use_cases())) if _flow_logs(spec) else None
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
            if use_case == "STORAGE":
                fail_ebs = _ebs_problem(spec, policy, arn, account)
                if fail_ebs:
                    fail(fail_ebs, [field])
            if use_case == logs_case:
                group = flow_log_group_arn(spec.region, account(), spec.name)
                service = f"logs.{spec.region}.amazonaws.com"
                gaps = missing_actions(policy, {"*", service}, LOGS_NEEDED, spec.databricks.account_id, {_LOGS_CONTEXT_KEY: group})
                if gaps:
                    fail(
                        f"the key policy of {arn} does not let CloudWatch Logs ({service}) use it for the flow-log group {group} "
                        f"(network_security.flow_logs is on): missing {', '.join(gaps)}; add an Allow for that service principal of "
                        f"{', '.join(LOGS_ACTIONS)} with condition ArnEquals kms:EncryptionContext:aws:logs:arn = {group}",
                        [field],
                    )
    return found


def _ebs_problem(spec: Spec, policy: dict[str, Any], arn: str, account: Callable[[], str]) -> str | None:
    """What the storage key's policy lacks for the cross-account role's EBS volumes, or None."""
    existing = spec.existing.cross_account_role_arn
    role = existing or created_role_arn(spec, account())
    gaps = missing_actions(policy, {"*", role}, EBS_NEEDED, spec.databricks.account_id, _principal(role))
    if not gaps:
        return None
    if existing:
        return f"the key policy of {arn} does not let the cross-account role {role} use it for EBS volumes: missing {', '.join(gaps)}"
    return (
        f"the key policy of {arn} does not let the cross-account role this deployment creates ({role}) use it for EBS volumes: "
        f"missing {', '.join(gaps)}; the role does not exist yet, so add an Allow for Principal \"*\" of {', '.join(EBS_ACTIONS)} "
        f"with conditions ArnEquals aws:PrincipalArn = {role} and kms:ViaService ec2.{spec.region}.amazonaws.com "
        "(a grant to the account root is not enough: the role's IAM policy grants no KMS actions)"
    )


def check(spec: Spec, aws: Callable[[str], Any], source: str, call: Callable[[Callable[[], Any], str], Any]) -> None:
    """Raise PreflightError listing every problem with the existing keys."""
    found = problems(spec, aws, call)
    if found:
        raise PreflightError(source, found)
