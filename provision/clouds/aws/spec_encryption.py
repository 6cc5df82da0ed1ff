"""[encryption]: customer-managed KMS keys for managed services and workspace storage (new, or existing).

    [encryption]
    managed_services = true        # notebooks, secrets, SQL queries in the control plane
    workspace_storage = true       # the root bucket (DBFS) and the clusters' EBS volumes
    separate_keys = false          # one key for both use cases, or one key each
    deletion_window_days = 7       # KMS's 7..30: the waiting period teardown schedules
    [encryption.existing]          # the user's keys instead of new ones: never modified, never deleted
    managed_services_key_arn = "arn:aws:kms:<region>:<account>:key/<id>"
    workspace_storage_key_arn = "arn:aws:kms:<region>:<account>:key/<id>"
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

# The two Databricks use cases (KeyUseCase in the Account API), by their spec field.
USE_CASES = {"managed_services": "MANAGED_SERVICES", "workspace_storage": "STORAGE"}
# KMS accepts a waiting period of 7 to 30 days before it deletes a key.
DELETION_WINDOW_DAYS = (7, 30)
_KEY_ID = r"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
KEY_ARN_RE = re.compile(rf"arn:aws[a-z-]*:kms:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):key/{_KEY_ID}")


@dataclass(frozen=True)
class ExistingKeys:
    """The user's own keys, by use case (the same ARN twice is one key for both)."""

    managed_services_key_arn: str | None = None
    workspace_storage_key_arn: str | None = None


@dataclass(frozen=True)
class EncryptionSpec:
    managed_services: bool = True
    workspace_storage: bool = True
    separate_keys: bool = False
    deletion_window_days: int = 7
    existing: ExistingKeys | None = None

    def use_cases(self) -> tuple[str, ...]:
        """The spec fields of the use cases that are on, managed services first."""
        return tuple(use for use in USE_CASES if getattr(self, use))


def key_arn_problem(arn: str, region: str | None) -> str | None:
    if ":alias/" in arn:
        return f"{arn!r} is an alias ARN; give the key's ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    match = KEY_ARN_RE.fullmatch(arn)
    if match is None:
        return f"{arn!r} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
    if region and match.group("region") != region:
        return f"key {arn} is in {match.group('region')}, not {region}: Databricks needs the key in the workspace's region"
    return None


def _flag(check: Checker, table: dict[str, Any], key: str, default: bool) -> bool | None:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(f"encryption.{key}", f"must be true or false, got {type(value).__name__}")
        return None
    return value


def _existing(check: Checker, table: dict[str, Any], region: str | None, on: dict[str, bool | None]) -> ExistingKeys | None:
    keys = {f"{use}_key_arn" for use in USE_CASES}
    existing = check.table(table, "existing", keys, prefix="encryption.")
    if "existing" not in table or not isinstance(table["existing"], dict):
        return None
    if not existing:
        check.fail("encryption.existing", "names no key; give managed_services_key_arn and/or workspace_storage_key_arn, or remove the table")
        return None
    arns: dict[str, str | None] = {}
    for use in USE_CASES:
        where = f"encryption.existing.{use}_key_arn"
        arn = check.string(existing, f"{use}_key_arn", where, required=False)
        if arn is not None and (problem := key_arn_problem(arn, region)):
            check.fail(where, problem)
            arn = None
        if arn is not None and on[use] is False:
            check.fail(where, f"names a key for a use case that is off (encryption.{use} = false)")
        elif arn is None and on[use] and f"{use}_key_arn" not in existing:
            check.fail(where, f"is required: with [encryption.existing], every use case that is on uses an existing key (encryption.{use} is on)")
        arns[use] = arn
    return ExistingKeys(arns["managed_services"], arns["workspace_storage"])


def _encryption(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> EncryptionSpec | None:
    if "encryption" not in data:
        return None
    allowed = {"managed_services", "workspace_storage", "separate_keys", "deletion_window_days", "existing"}
    table = check.table(data, "encryption", allowed)
    if not isinstance(data["encryption"], dict):
        return None
    problems = len(check.problems)
    on = {use: _flag(check, table, use, True) for use in USE_CASES}
    separate = _flag(check, table, "separate_keys", False)
    if on["managed_services"] is False and on["workspace_storage"] is False:
        check.fail("encryption", "turns both use cases off (managed_services and workspace_storage); turn one on or remove [encryption]")
    elif separate and not all(on.values()):
        check.fail("encryption.separate_keys", "needs both encryption.managed_services and encryption.workspace_storage on")

    window = check.integer(table, "deletion_window_days", "encryption.deletion_window_days", default=DELETION_WINDOW_DAYS[0])
    low, high = DELETION_WINDOW_DAYS
    if window is not None and not low <= window <= high:
        check.fail("encryption.deletion_window_days", f"must be between {low} and {high} days (KMS's limits), got {window}")

    existing = _existing(check, table, parsed.get("region"), on)
    if "existing" in table:
        if "separate_keys" in table:
            check.fail("encryption.separate_keys", "cannot be combined with encryption.existing: the keys given decide (the same ARN twice is one key)")
        if "deletion_window_days" in table:
            check.fail("encryption.deletion_window_days", "applies only to keys this deployment creates; existing keys are never deleted")

    databricks = parsed.get("databricks")
    if databricks is not None and databricks.pricing_tier != "ENTERPRISE":
        # Databricks: "This feature requires the Enterprise pricing tier" (customer-managed keys on AWS).
        check.fail("encryption", f"customer-managed keys need databricks.pricing_tier = \"ENTERPRISE\", got {databricks.pricing_tier!r}")

    if len(check.problems) > problems or None in on.values() or separate is None or window is None:
        return None
    if existing is not None:
        # Which keys exist decides how many there are: the same ARN twice is one key for both use cases.
        arns = {existing.managed_services_key_arn, existing.workspace_storage_key_arn} - {None}
        separate = len(arns) > 1
    return EncryptionSpec(bool(on["managed_services"]), bool(on["workspace_storage"]), bool(separate), window, existing)


ENCRYPTION = Section("encryption", ("encryption",), _encryption)
