"""The [guardrails] fragment: account-wide GuardDuty, AWS Config and a budget (adopted when they exist)."""

from __future__ import annotations

from provision.orchestrator.step import Step
from provision.spec import Spec


def guardrails(spec: Spec) -> list[Step]:
    if spec.guardrails is None:
        return []
    return []
