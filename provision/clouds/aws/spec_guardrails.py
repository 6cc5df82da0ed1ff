"""[guardrails]: account-wide services (GuardDuty, AWS Config, a budget), adopted when they exist.

    [guardrails]
    guardduty = true                 # a GuardDuty detector in the region (adopted if the account has one)
    config = true                    # an AWS Config recorder with delivery channel (adopted if one exists)
    config_rules = ["ENCRYPTED_VOLUMES", ...]   # AWS managed rules, always this deployment's own
    record_global_resources = true   # the recorder also records IAM (global) resource types
    [guardrails.budget]
    monthly_limit_usd = 500
    alert_emails = ["platform@example.com"]
    thresholds_percent = [50, 80, 100, 120]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

# The enterprise guide's "AWS Config (8 compliance rules)", which it does not name: AWS managed rules for
# the security features it lists (docs.aws.amazon.com/config/latest/developerguide/<rule-name>.html).
DEFAULT_CONFIG_RULES = (
    "ENCRYPTED_VOLUMES",  # encrypted-volumes: attached EBS volumes encrypted ("EBS encryption enforced via AWS Config")
    "S3_BUCKET_SERVER_SIDE_ENCRYPTION_ENABLED",  # s3-bucket-server-side-encryption-enabled
    "S3_BUCKET_SSL_REQUESTS_ONLY",  # s3-bucket-ssl-requests-only: bucket policies deny plain HTTP
    "S3_BUCKET_LEVEL_PUBLIC_ACCESS_PROHIBITED",  # s3-bucket-level-public-access-prohibited
    "S3_BUCKET_VERSIONING_ENABLED",  # s3-bucket-versioning-enabled (the root bucket is versioned)
    "VPC_FLOW_LOGS_ENABLED",  # vpc-flow-logs-enabled
    "CMK_BACKING_KEY_ROTATION_ENABLED",  # cmk-backing-key-rotation-enabled
    "INCOMING_SSH_DISABLED",  # restricted-ssh: no security group open to SSH from anywhere
)
DEFAULT_THRESHOLDS = (50.0, 80.0, 100.0, 120.0)
# AWS Budgets: at most 10 notifications per budget and 10 e-mail subscribers per notification.
MAX_NOTIFICATIONS = 10
MAX_EMAILS = 10
MAX_THRESHOLD_PERCENT = 1000.0  # AWS takes more; a larger percentage here is almost surely a typo
# Managed rule identifiers are upper case with digits and underscores; our rule name
# "<deployment>-<identifier>" must fit Config's 128 characters (a deployment name has at most 28).
_RULE_ID_RE = re.compile(r"[A-Z][A-Z0-9_]{0,98}")
_EMAIL_RE = re.compile(r"[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+")


@dataclass(frozen=True)
class BudgetSpec:
    monthly_limit_usd: float
    alert_emails: tuple[str, ...]
    thresholds_percent: tuple[float, ...] = DEFAULT_THRESHOLDS


@dataclass(frozen=True)
class GuardrailsSpec:
    guardduty: bool = True
    config: bool = True
    config_rules: tuple[str, ...] = DEFAULT_CONFIG_RULES
    record_global_resources: bool = True
    budget: BudgetSpec | None = None


def _flag(check: Checker, table: dict[str, Any], key: str, default: bool) -> bool | None:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(f"guardrails.{key}", f"must be true or false, got {type(value).__name__}")
        return None
    return value


def _rules(check: Checker, table: dict[str, Any], config: bool | None) -> tuple[str, ...] | None:
    where = "guardrails.config_rules"
    if "config_rules" not in table:
        return DEFAULT_CONFIG_RULES
    rules = check.string_list(table, "config_rules", where)
    if rules is None:
        return None
    if config is False:
        check.fail(where, "needs guardrails.config = true: Config rules evaluate what the recorder records")
        return None
    ok = True
    for i, rule in enumerate(rules):
        if not _RULE_ID_RE.fullmatch(rule):
            check.fail(f"{where}[{i}]", f"{rule!r} is not an AWS managed rule identifier (upper case, digits and underscores, e.g. ENCRYPTED_VOLUMES)")
            ok = False
    seen = [r for i, r in enumerate(rules) if r in rules[:i]]
    if seen:
        check.fail(where, f"lists {seen[0]} twice")
        ok = False
    return tuple(rules) if ok else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _budget(check: Checker, table: dict[str, Any]) -> BudgetSpec | None:
    budget = check.table(table, "budget", {"monthly_limit_usd", "alert_emails", "thresholds_percent"}, prefix="guardrails.")
    if not isinstance(table["budget"], dict):
        return None
    ok = True
    limit = _number(budget.get("monthly_limit_usd"))
    if "monthly_limit_usd" not in budget:
        check.fail("guardrails.budget.monthly_limit_usd", "is required")
        ok = False
    elif limit is None or limit <= 0:
        check.fail("guardrails.budget.monthly_limit_usd", f"must be a positive number of US dollars, got {budget['monthly_limit_usd']!r}")
        ok = False
    emails = check.string_list(budget, "alert_emails", "guardrails.budget.alert_emails")
    if "alert_emails" not in budget:
        check.fail("guardrails.budget.alert_emails", "is required: the budget's alerts go to these addresses")
        ok = False
    elif emails is None:
        ok = False
    elif not 1 <= len(emails) <= MAX_EMAILS:
        check.fail("guardrails.budget.alert_emails", f"needs 1 to {MAX_EMAILS} addresses (AWS Budgets' limit per alert), got {len(emails)}")
        ok = False
    else:
        for i, email in enumerate(emails):
            if not _EMAIL_RE.fullmatch(email) or len(email) > 254:
                check.fail(f"guardrails.budget.alert_emails[{i}]", f"{email!r} is not an e-mail address")
                ok = False
        if len({e.lower() for e in emails}) != len(emails):
            check.fail("guardrails.budget.alert_emails", "addresses must be distinct")
            ok = False
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    if "thresholds_percent" in budget:
        raw = budget["thresholds_percent"]
        where = "guardrails.budget.thresholds_percent"
        values = [_number(v) for v in raw] if isinstance(raw, list) else None
        if values is None or not raw:
            check.fail(where, "must be a non-empty list of percentages")
            ok = False
        elif len(values) > MAX_NOTIFICATIONS:
            check.fail(where, f"AWS Budgets allows at most {MAX_NOTIFICATIONS} alerts per budget, got {len(values)}")
            ok = False
        else:
            for i, value in enumerate(values):
                if value is None or not 0 < value <= MAX_THRESHOLD_PERCENT:
                    check.fail(f"{where}[{i}]", f"must be a percentage above 0 and at most {MAX_THRESHOLD_PERCENT:g}, got {raw[i]!r}")
                    ok = False
            if ok and len(set(values)) != len(values):
                check.fail(where, "thresholds must be distinct")
                ok = False
            if ok:
                thresholds = tuple(v for v in values if v is not None)
    if not ok or limit is None or emails is None:
        return None
    return BudgetSpec(limit, tuple(emails), thresholds)


def _guardrails(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> GuardrailsSpec | None:
    if "guardrails" not in data:
        return None
    table = check.table(data, "guardrails", {"guardduty", "config", "config_rules", "record_global_resources", "budget"})
    if not isinstance(data["guardrails"], dict):
        return None
    guardduty = _flag(check, table, "guardduty", True)
    config = _flag(check, table, "config", True)
    record_global = _flag(check, table, "record_global_resources", True)
    if record_global is not None and "record_global_resources" in table and config is False:
        check.fail("guardrails.record_global_resources", "needs guardrails.config = true")
        record_global = None
    rules = _rules(check, table, config)
    budget = _budget(check, table) if "budget" in table else None
    if "budget" in table and budget is None:
        return None
    if guardduty is False and config is False and budget is None:
        check.fail("guardrails", "turns nothing on: set guardduty or config to true, or add [guardrails.budget] (or remove the table)")
        return None
    if guardduty is None or config is None or record_global is None or rules is None:
        return None
    return GuardrailsSpec(guardduty, config, rules if config else (), record_global, budget)


GUARDRAILS = Section("guardrails", ("guardrails",), _guardrails)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A live deployment keeps the guardrails it made or adopted: turning one off would drop its steps from the
    graph and leave the resources (and state records teardown could no longer match). Rules may change, as long
    as one remains (the rules step then deletes the ones no longer named); the budget's values may change."""
    old, new = before.get("guardrails") or {}, after.get("guardrails") or {}
    changed = [f"guardrails.{key} (turning it off)" for key in ("guardduty", "config") if old.get(key) and not new.get(key)]
    if old.get("config") and new.get("config") and old.get("config_rules") and not new.get("config_rules"):
        changed.append("guardrails.config_rules (removing every rule)")
    if old.get("budget") and not new.get("budget"):
        changed.append("guardrails.budget (removing it)")
    return changed
