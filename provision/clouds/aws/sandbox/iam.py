"""IAM: the inline policy quota of a role (IAM propagation is the Databricks emulator's rule: a new role
cannot be assumed yet), and the listing of roles for the inventory (listing.py).

Rule: a role's inline policies together may hold 10,240 characters, whitespace not counted; PutRolePolicy
answers LimitExceeded past that. moto stores any size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.iam.exceptions import LimitExceededException
from moto.iam.models import IAMBackend

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

ROLE_INLINE_POLICY_QUOTA = 10_240


def _size(document: str) -> int:
    return len("".join(document.split()))


@patch(IAMBackend, "put_role_policy")
def _put_role_policy(self: Any, original: Callable, settings: SandboxSettings, role_name: str, policy_name: str, policy_json: str) -> None:
    role = self.get_role(role_name)  # NoSuchEntity first, as IAM answers
    # The quota is on all of the role's inline policies; the one being replaced does not count twice.
    others = sum(_size(doc) for name, doc in role.policies.items() if name != policy_name)
    if others + _size(policy_json) > ROLE_INLINE_POLICY_QUOTA:
        raise LimitExceededException(f"Maximum policy size of {ROLE_INLINE_POLICY_QUOTA} bytes exceeded for role {role_name}")
    return original(self, role_name, policy_name, policy_json)


@lists("iam_role")
def _list_roles(clients: Clients) -> list[dict]:
    return clients("iam").list_roles()["Roles"]
