"""[guardrails]: account-wide services (GuardDuty, AWS Config, a budget), adopted when they exist."""

from __future__ import annotations

from typing import Any

from provision.spec import Checker, Section


def _guardrails(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> Any:
    return None  # E1 (#12): filled in by the guardrails work


GUARDRAILS = Section("guardrails", ("guardrails",), _guardrails)
