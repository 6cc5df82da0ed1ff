"""[workspace.security]: the spec's checks (each bad value names its field, exit 2), the steps the fragment adds
in basic and in each hub-spoke spoke, and what a live deployment may not change."""

from __future__ import annotations

from typing import Any

import pytest
import specs

from provision import topologies
from provision.clouds.databricks.spec_security import (
    COMPLIANCE_STANDARDS,
    WorkspaceSecuritySpec,
)
from provision.clouds.databricks.steps.settings import (
    AutomaticClusterUpdate,
    ComplianceSecurityProfile,
    EnhancedSecurityMonitoring,
)
from provision.errors import SpecError


def spec_with(security: dict[str, Any] | None, *, tier: str = "ENTERPRISE", example: str = "basic", workspace: dict[str, Any] | None = None) -> Any:
    data = specs.example(example)
    data["databricks"] = {**data["databricks"], "pricing_tier": tier}
    if security is not None or workspace is not None:
        data["workspace"] = {**(workspace or {}), **({"security": security} if security is not None else {})}
    return topologies.from_dict(data, f"{example}.toml")


def problems(security: Any, **kwargs: Any) -> dict[str, str]:
    with pytest.raises(SpecError) as info:
        spec_with(security, **kwargs)
    return {p.field: p.reason for p in info.value.problems}


def test_absent_means_nothing_changes() -> None:
    spec = spec_with(None, tier="PREMIUM")
    assert spec.workspace_security is None
    assert not [s for s in topologies.build(spec) if s.kind == "databricks.workspace_setting"]


def test_the_profile_turns_the_other_two_on_by_default() -> None:
    spec = spec_with({"compliance_security_profile": True, "compliance_standards": ["HIPAA", "PCI_DSS"]})
    assert spec.workspace_security == WorkspaceSecuritySpec(True, ("HIPAA", "PCI_DSS"), True, True)
    steps = {s.id: s for s in topologies.build(spec) if s.kind == "databricks.workspace_setting"}
    # One step: Databricks turns the other two on with the profile and keeps them on.
    assert list(steps) == ["dbx.settings.compliance_profile"]
    (profile,) = steps.values()
    assert isinstance(profile, ComplianceSecurityProfile) and profile.standards == ("HIPAA", "PCI_DSS")
    assert profile.needs == ("dbx.workspace",)  # after the workspace is running


def test_each_setting_alone() -> None:
    spec = spec_with({"automatic_cluster_update": True})
    assert spec.workspace_security == WorkspaceSecuritySpec(False, (), False, True)
    assert [s.id for s in topologies.build(spec) if s.kind == "databricks.workspace_setting"] == ["dbx.settings.cluster_update"]
    assert spec_with({}).workspace_security == WorkspaceSecuritySpec(False, (), False, False)


def test_every_spoke_is_hardened() -> None:
    spec = spec_with({"enhanced_security_monitoring": True}, example="hub-spoke")
    ids = [s.id for s in topologies.build(spec) if s.kind == "databricks.workspace_setting"]
    assert ids == ["spoke.analytics.dbx.settings.security_monitoring", "spoke.science.dbx.settings.security_monitoring"]


BAD = {
    "profile not a bool": ({"compliance_security_profile": "yes"}, {}, "workspace.security.compliance_security_profile", "true or false"),
    "monitoring not a bool": ({"enhanced_security_monitoring": 1}, {}, "workspace.security.enhanced_security_monitoring", "true or false"),
    "unknown standard": ({"compliance_security_profile": True, "compliance_standards": ["SOC2"]}, {},
                         "workspace.security.compliance_standards[0]", "not a compliance standard"),
    "NONE is not a standard": ({"compliance_security_profile": True, "compliance_standards": ["NONE"]}, {},
                               "workspace.security.compliance_standards[0]", "not a compliance standard"),
    "standard twice": ({"compliance_security_profile": True, "compliance_standards": ["HIPAA", "HIPAA"]}, {},
                       "workspace.security.compliance_standards[1]", "twice"),
    "standards not a list": ({"compliance_security_profile": True, "compliance_standards": "HIPAA"}, {},
                             "workspace.security.compliance_standards", "list of strings"),
    "standards without the profile": ({"compliance_standards": ["HIPAA"]}, {}, "workspace.security.compliance_standards",
                                      "compliance_security_profile = true"),
    "monitoring off under the profile": ({"compliance_security_profile": True, "enhanced_security_monitoring": False}, {},
                                         "workspace.security.enhanced_security_monitoring", "the profile turns it on"),
    "updates off under the profile": ({"compliance_security_profile": True, "automatic_cluster_update": False}, {},
                                      "workspace.security.automatic_cluster_update", "the profile turns it on"),
    "profile on premium": ({"compliance_security_profile": True}, {"tier": "PREMIUM"}, "workspace.security.compliance_security_profile",
                           "needs the ENTERPRISE pricing tier"),
    "monitoring on premium": ({"enhanced_security_monitoring": True}, {"tier": "PREMIUM"}, "workspace.security.enhanced_security_monitoring",
                              "databricks.pricing_tier is PREMIUM"),
    "unknown key": ({"ip_access_lists": True}, {}, "workspace.security.ip_access_lists", "unknown field"),
    "another key in [workspace]": ({}, {"workspace": {"name": "x"}}, "workspace.name", "unknown field"),
    "security not a table": (5, {}, "workspace.security", "must be a table"),
}


@pytest.mark.parametrize(("security", "kwargs", "field", "reason"), BAD.values(), ids=BAD.keys())
def test_bad_values_name_the_field(security: Any, kwargs: dict[str, Any], field: str, reason: str) -> None:
    found = problems(security, **kwargs)
    assert field in found and reason in found[field], found


def test_bad_values_exit_2_from_the_cli(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from provision.cli import main

    data = specs.example("basic")
    data["workspace"] = {"security": {"compliance_security_profile": True}}  # on the example's PREMIUM tier
    path = specs.write(tmp_path / "spec.toml", data)
    with pytest.raises(SystemExit) as exited:
        main(["validate", "--config", str(path)])
    assert exited.value.code == 2 and "workspace.security.compliance_security_profile" in capsys.readouterr().err


def test_standards_are_the_sdks() -> None:
    from databricks.sdk.service.settings import ComplianceStandard

    assert set(COMPLIANCE_STANDARDS) == {s.value for s in ComplianceStandard} - {"NONE"}


def test_a_live_deployment_keeps_what_it_turned_on() -> None:
    """hub-spoke's record runs spec_security.changes (basic's and privatelink's are the lead's to wire)."""

    def hub(security: dict[str, Any] | None) -> Any:
        return spec_with(security, example="hub-spoke")

    on = hub({"compliance_security_profile": True, "compliance_standards": ["HIPAA"]})
    assert topologies.changed_fields(on, on) == []
    assert topologies.changed_fields(on, hub({"compliance_security_profile": True, "compliance_standards": ["HIPAA", "PCI_DSS"]})) == []
    assert topologies.changed_fields(on, hub({"compliance_security_profile": True})) == [
        "workspace.security.compliance_standards (removing HIPAA)"]
    assert topologies.changed_fields(on, hub(None)) == [
        f"workspace.security.{key} (turning it off)" for key in ("compliance_security_profile", "enhanced_security_monitoring", "automatic_cluster_update")
    ] + ["workspace.security.compliance_standards (removing HIPAA)"]
    assert topologies.changed_fields(hub(None), on) == []  # turning settings on is a change a live deployment takes
