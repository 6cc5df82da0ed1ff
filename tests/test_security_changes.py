"""A live deployment may not turn off a security section's parts that made resources: their steps would leave
the graph, the resources would stay, and teardown could no longer match the state file."""

from __future__ import annotations

import copy

import pytest

import specs
from provision.topologies import changed_fields, from_dict

ENTERPRISE = specs.example("enterprise")


def _changed(mutate) -> list[str]:
    after = copy.deepcopy(ENTERPRISE)
    mutate(after)
    return changed_fields(from_dict(ENTERPRISE, "old"), from_dict(after, "new"))


@pytest.mark.parametrize(
    "mutate, refused",
    [
        (lambda d: d.pop("network_security"), ["network_security.flow_logs", "network_security.nacls"]),
        (lambda d: d["network_security"].update(nacls=False), ["network_security.nacls"]),
        (lambda d: d["guardrails"].update(guardduty=False), ["guardrails.guardduty"]),
        (lambda d: (d["guardrails"].update(config=False), d["guardrails"].pop("config_rules", None)), ["guardrails.config"]),
        (lambda d: d["guardrails"].update(config_rules=[]), ["guardrails.config_rules"]),
        (lambda d: d["guardrails"].pop("budget"), ["guardrails.budget"]),
        (lambda d: d.pop("guardrails"), ["guardrails.guardduty", "guardrails.config", "guardrails.budget"]),
        (lambda d: d["workspace"]["security"].update(compliance_standards=[]), ["workspace.security.compliance_standards"]),
        (lambda d: d.pop("encryption"), ["encryption"]),
    ],
)
def test_turning_off_what_made_resources_is_refused_naming_the_field(mutate, refused):
    changed = _changed(mutate)
    for field in refused:
        assert any(c.startswith(field) for c in changed), (field, changed)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d["network_security"].update(flow_log_retention_days=90, endpoint_policies=False),
        lambda d: d["guardrails"].update(config_rules=["ENCRYPTED_VOLUMES"]),
        lambda d: d["guardrails"]["budget"].update(monthly_limit_usd=900, thresholds_percent=[90]),
        lambda d: d["encryption"].update(deletion_window_days=30),
    ],
)
def test_values_that_converge_in_place_may_change(mutate):
    assert _changed(mutate) == []
