"""IAM: the inline policy quota of a role, principals of trust policies, when a role last changed (IAM propagation
is the Databricks emulator's rule: a new or changed role cannot be assumed as changed yet), and the listing of roles
for the inventory (listing.py).

Rules:
1. A role's inline policies together may hold 10,240 characters, whitespace not counted; PutRolePolicy
   answers LimitExceeded past that. moto stores any size.
2. A trust policy (CreateRole, UpdateAssumeRolePolicy) naming as AWS principal a role of this account that
   does not exist is refused with MalformedPolicyDocument `Invalid principal in policy: "AWS":"<arn>"`, as
   IAM resolves principals to their unique ids when it stores the policy. That includes the role's own ARN
   at its creation: a self-assuming role is created trusting the account root (with an ArnLike/ArnEquals
   aws:PrincipalArn condition) or gets its own ARN through UpdateAssumeRolePolicy afterwards. The account root
   and other accounts' principals are accepted (IAM cannot check those). moto stores any principal.
3. A successful UpdateAssumeRolePolicy or PutRolePolicy stamps the role (CHANGED_AT, naive UTC like moto's
   create_date): the Databricks emulator applies its propagation delay from the latest of creation and changes.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.iam.exceptions import LimitExceededException, MalformedPolicyDocument
from moto.iam.models import IAMBackend

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

ROLE_INLINE_POLICY_QUOTA = 10_240
# The attribute of a moto Role holding when its trust or an inline policy last changed (rule 3); absent: never.
CHANGED_AT = "_sandbox_changed_at"


def _stamp(role: Any) -> None:
    setattr(role, CHANGED_AT, datetime.now(UTC).replace(tzinfo=None))


def _size(document: str) -> int:
    return len("".join(document.split()))


@patch(IAMBackend, "put_role_policy")
def _put_role_policy(self: Any, original: Callable, settings: SandboxSettings, role_name: str, policy_name: str, policy_json: str) -> None:
    role = self.get_role(role_name)  # NoSuchEntity first, as IAM answers
    # The quota is on all of the role's inline policies; the one being replaced does not count twice.
    others = sum(_size(doc) for name, doc in role.policies.items() if name != policy_name)
    if others + _size(policy_json) > ROLE_INLINE_POLICY_QUOTA:
        raise LimitExceededException(f"Maximum policy size of {ROLE_INLINE_POLICY_QUOTA} bytes exceeded for role {role_name}")
    result = original(self, role_name, policy_name, policy_json)
    _stamp(role)
    return result


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _missing_role_principal(backend: Any, document: str) -> str | None:
    """The first AWS principal of `document` that names a role of this account IAM does not know."""
    try:
        doc = json.loads(document)
    except ValueError:
        try:
            doc = json.loads(urllib.parse.unquote(document))
        except ValueError:
            return None  # moto's own validation answers a malformed document
    statements = _as_list(doc.get("Statement")) if isinstance(doc, dict) else []
    for statement in statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        for arn in _as_list(principal.get("AWS")) if isinstance(principal, dict) else []:
            parts = str(arn).split(":")
            if len(parts) < 6 or parts[2] != "iam" or parts[4] != backend.account_id or not parts[5].startswith("role/"):
                continue
            if not any(role.arn == arn for role in backend.roles.values()):
                return str(arn)
    return None


def _refuse_missing_principal(backend: Any, document: str) -> None:
    missing = _missing_role_principal(backend, document)
    if missing is not None:
        raise MalformedPolicyDocument(f'Invalid principal in policy: "AWS":"{missing}"')


@patch(IAMBackend, "create_role")
def _create_role(
    self: Any, original: Callable, settings: SandboxSettings, role_name: str, assume_role_policy_document: str, path: str,
    permissions_boundary: str | None, description: str, tags: list[dict[str, str]], max_session_duration: str | None,
    linked_service: str | None = None,
) -> Any:
    _refuse_missing_principal(self, assume_role_policy_document)  # the role itself does not exist yet
    return original(self, role_name, assume_role_policy_document, path, permissions_boundary, description, tags,
                    max_session_duration, linked_service)


@patch(IAMBackend, "update_assume_role_policy")
def _update_assume_role_policy(self: Any, original: Callable, settings: SandboxSettings, role_name: str, policy_document: str) -> None:
    role = self.get_role(role_name)  # NoSuchEntity first, as IAM answers
    _refuse_missing_principal(self, policy_document)
    result = original(self, role_name, policy_document)
    _stamp(role)
    return result


@lists("iam_role")
def _list_roles(clients: Clients) -> list[dict]:
    return clients("iam").list_roles()["Roles"]
