"""The [guardrails] fragment: account-wide GuardDuty, AWS Config and a budget (adopted when they exist).

The steps need nothing of the topology's own (no VPC, no workspace), so every AWS topology adds them the
same way and they run alongside the rest from the start.
"""

from __future__ import annotations

from provision.clouds.aws.steps.awsconfig import ConfigRecorder, ConfigRules
from provision.clouds.aws.steps.awsconfig_delivery import ConfigBucket, ConfigRole
from provision.clouds.aws.steps.budget import MonthlyBudget
from provision.clouds.aws.steps.guardduty import GuardDutyDetector
from provision.orchestrator.step import Step
from provision.spec import Spec


def guardrails(spec: Spec) -> list[Step]:
    g = spec.guardrails
    if g is None:
        return []
    steps: list[Step] = []
    if g.guardduty:
        steps.append(GuardDutyDetector("guardduty.detector"))
    if g.config:
        steps += [
            ConfigBucket("config.bucket"),
            ConfigRole("config.role", bucket="config.bucket"),
            ConfigRecorder("config.recorder", role="config.role", bucket="config.bucket", record_global=g.record_global_resources),
        ]
        if g.config_rules:
            steps.append(ConfigRules("config.rules", recorder="config.recorder", identifiers=g.config_rules))
    if g.budget is not None:
        b = g.budget
        steps.append(MonthlyBudget("budget.monthly", limit_usd=b.monthly_limit_usd, emails=b.alert_emails, thresholds=b.thresholds_percent))
    return steps
