"""KMS: what AWS refuses that moto 5.2.5 accepts, and the inventory of customer-managed keys.

1. A key policy naming an IAM principal of this account that does not exist, or a role younger than
   `iam_propagation_seconds` (IAM has not propagated it to KMS yet), is refused on CreateKey and
   PutKeyPolicy with MalformedPolicyDocumentException "Policy contains a statement with one or more
   invalid principals." (moto stores any policy).
2. ScheduleKeyDeletion takes a waiting period of 7 to 30 days only (moto ignores any other value and
   returns no date, leaving the key enabled), and refuses a key already pending deletion with
   KMSInvalidStateException "<key ARN> is pending deletion." (moto silently moves the date).
   CreateKey without KeyUsage makes an ENCRYPT_DECRYPT key, as KMS does (moto leaves the usage null).
3. EnableKeyRotation refuses a disabled key (DisabledException) and a key pending deletion
   (KMSInvalidStateException); moto turns rotation on regardless.

Listed: `kms_key`, the customer-managed keys not pending deletion (a scheduled key is history: KMS only
deletes it after its waiting period), and `kms_alias`, their aliases (not AWS's `alias/aws/*`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.iam.exceptions import NotFoundException as IAMNotFound
from moto.iam.models import iam_backends
from moto.kms.models import KmsBackend

from provision.clouds.aws.sandbox.listing import Clients, lists
from provision.clouds.aws.sandbox.patching import patch
from provision.sandbox.settings import SandboxSettings

INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
WINDOW_DAYS = (7, 30)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _principal_known(account_id: str, arn: str, settings: SandboxSettings) -> bool:
    """Whether KMS would accept `arn` as a principal: another account's, the root, or an IAM user or role of
    this account that exists and (a role) has propagated."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[2] != "iam" or parts[4] != account_id:
        return True  # another account's principals, service principals, bare account ids: not checked here
    resource = parts[5]
    if resource == "root":
        return True
    if account_id not in iam_backends:
        return False
    iam = iam_backends[account_id]["aws"]
    if resource.startswith("role/"):
        try:
            role = iam.get_role_by_arn(arn)
        except IAMNotFound:
            return False
        age = (datetime.now(UTC).replace(tzinfo=None) - role.create_date).total_seconds()  # moto's create_date is naive UTC
        return age >= settings.delay("iam_propagation_seconds", arn)
    if resource.startswith("user/"):
        return any(user.arn == arn for user in iam.users.values())
    return True


def _refuse_unknown_principals(backend: Any, policy: str | None, settings: SandboxSettings) -> None:
    if not policy:
        return
    try:
        statements = _as_list(json.loads(policy).get("Statement"))
    except (ValueError, AttributeError):
        return  # moto's own handling of a malformed document stays as it is
    for statement in statements:
        principal = statement.get("Principal") if isinstance(statement, dict) else None
        named = _as_list(principal.get("AWS")) if isinstance(principal, dict) else []
        if not all(_principal_known(backend.account_id, str(p), settings) for p in named if p != "*"):
            raise JsonRESTError("MalformedPolicyDocumentException", INVALID_PRINCIPALS)


def _key(backend: Any, key_id: str) -> Any | None:
    return backend.keys.get(backend.get_key_id(key_id))


def _invalid_state(key: Any) -> JsonRESTError:
    return JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")


@patch(KmsBackend, "create_key")
def _create_key(
    self: Any, original: Callable, settings: SandboxSettings, policy: str | None, key_usage: str, key_spec: str, description: str,
    tags: list[dict[str, str]] | None, multi_region: bool = False, origin: str = "AWS_KMS",
) -> Any:
    _refuse_unknown_principals(self, policy, settings)
    # KMS's default usage; moto leaves it null, so DescribeKey would show a key no service can encrypt with.
    return original(self, policy, key_usage or "ENCRYPT_DECRYPT", key_spec, description, tags, multi_region, origin)


@patch(KmsBackend, "put_key_policy")
def _put_key_policy(self: Any, original: Callable, settings: SandboxSettings, key_id: str, policy: str) -> None:
    _refuse_unknown_principals(self, policy, settings)
    return original(self, key_id, policy)


@patch(KmsBackend, "schedule_key_deletion")
def _schedule_key_deletion(self: Any, original: Callable, settings: SandboxSettings, key_id: str, pending_window_in_days: int) -> float:
    low, high = WINDOW_DAYS
    if not low <= pending_window_in_days <= high:
        bound = f"greater than or equal to {low}" if pending_window_in_days < low else f"less than or equal to {high}"
        raise JsonRESTError(
            "ValidationException",
            f"1 validation error detected: Value '{pending_window_in_days}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value {bound}",
        )
    key = _key(self, key_id)
    if key is not None and key.key_state == "PendingDeletion":
        raise _invalid_state(key)
    # moto indexes its keys by id only, though the API takes the key's ARN too.
    return original(self, self.get_key_id(key_id), pending_window_in_days)


@patch(KmsBackend, "enable_key_rotation")
def _enable_key_rotation(self: Any, original: Callable, settings: SandboxSettings, key_id: str) -> None:
    key = _key(self, key_id)
    if key is not None and key.key_state == "PendingDeletion":
        raise _invalid_state(key)
    if key is not None and key.key_state == "Disabled":
        raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
    return original(self, key_id)


# --- inventory (listing.py) ------------------------------------------------------------------------


def _aws_managed(kms: Any, key_id: str) -> bool:
    """moto's stand-ins for AWS-managed keys are CUSTOMER keys behind a reserved alias/aws/* name."""
    return any(a["AliasName"].startswith("alias/aws/") for a in kms.list_aliases(KeyId=key_id).get("Aliases", []))


@lists("kms_key", owned=True)
def _list_keys(clients: Clients) -> list[dict]:
    kms, found = clients("kms"), []
    for page in kms.get_paginator("list_keys").paginate():
        for listed in page["Keys"]:
            meta = kms.describe_key(KeyId=listed["KeyId"])["KeyMetadata"]
            if meta.get("KeyManager") != "CUSTOMER" or meta["KeyState"] == "PendingDeletion" or _aws_managed(kms, meta["KeyId"]):
                continue
            tags = kms.list_resource_tags(KeyId=meta["KeyId"]).get("Tags", [])
            found.append({
                "id": meta["KeyId"], "KeyId": meta["KeyId"], "Arn": meta["Arn"], "KeyState": meta["KeyState"],
                "Tags": [{"Key": t["TagKey"], "Value": t["TagValue"]} for t in tags],
            })
    return found


@lists("kms_alias")
def _list_aliases(clients: Clients) -> list[dict]:
    aliases = clients("kms").list_aliases().get("Aliases", [])
    return [{"id": a["AliasName"], **a} for a in aliases if not a["AliasName"].startswith("alias/aws/") and a.get("TargetKeyId")]
