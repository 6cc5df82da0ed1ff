"""[workspace.security]: compliance security profile, enhanced security monitoring, automatic cluster update.

Checked as Databricks would: the three are parts of the Enhanced Security and Compliance add-on, which needs
the ENTERPRISE tier; compliance standards apply only under the compliance security profile; and the profile
turns enhanced security monitoring and automatic cluster update on itself (they cannot be off with it).
`false` means "not asked for": provision never turns a security setting off, and Databricks does not let the
compliance security profile be turned off once on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provision.spec import Checker, Section

# databricks-sdk 0.156's settings.ComplianceStandard values, less NONE (an empty list says that).
COMPLIANCE_STANDARDS = (
    "CANADA_PROTECTED_B", "CYBER_ESSENTIAL_PLUS", "FEDRAMP_HIGH", "FEDRAMP_IL5", "FEDRAMP_MODERATE", "GERMANY_C5",
    "GERMANY_TISAX", "HIPAA", "HITRUST", "IRAP_PROTECTED", "ISMAP", "ITAR_EAR", "KSA_ECC_CCC_DCC", "K_FSI", "PCI_DSS",
)
REQUIRED_TIER = "ENTERPRISE"
_FIELDS = ("compliance_security_profile", "compliance_standards", "enhanced_security_monitoring", "automatic_cluster_update")
_WHERE = "workspace.security"


@dataclass(frozen=True)
class WorkspaceSecuritySpec:
    compliance_security_profile: bool
    compliance_standards: tuple[str, ...]
    enhanced_security_monitoring: bool
    automatic_cluster_update: bool


def _flag(check: Checker, table: dict[str, Any], key: str, default: bool) -> bool | None:
    value = table.get(key, default)
    if not isinstance(value, bool):
        check.fail(f"{_WHERE}.{key}", f"must be true or false, got {type(value).__name__}")
        return None
    return value


def _standards(check: Checker, table: dict[str, Any]) -> tuple[str, ...] | None:
    where = f"{_WHERE}.compliance_standards"
    listed = check.string_list(table, "compliance_standards", where)
    if listed is None:
        return None if "compliance_standards" in table else ()
    ok = True
    for i, name in enumerate(listed):
        if name not in COMPLIANCE_STANDARDS:
            check.fail(f"{where}[{i}]", f"{name!r} is not a compliance standard; use one of {', '.join(COMPLIANCE_STANDARDS)}")
            ok = False
        elif name in listed[:i]:
            check.fail(f"{where}[{i}]", f"{name} is listed twice")
            ok = False
    return tuple(listed) if ok else None


def _workspace_security(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> WorkspaceSecuritySpec | None:
    workspace = check.table(data, "workspace", {"security"})
    if "security" not in workspace:
        return None
    table = check.table(workspace, "security", set(_FIELDS), prefix="workspace.")
    profile = _flag(check, table, "compliance_security_profile", False)
    # The profile turns the other two on: they default to it, and cannot be false with it.
    monitoring = _flag(check, table, "enhanced_security_monitoring", bool(profile))
    updates = _flag(check, table, "automatic_cluster_update", bool(profile))
    standards = _standards(check, table)
    if profile:
        for key, value in (("enhanced_security_monitoring", monitoring), ("automatic_cluster_update", updates)):
            if value is False:
                check.fail(f"{_WHERE}.{key}", "cannot be false with compliance_security_profile on: the profile turns it on")
    if standards and profile is False:
        check.fail(f"{_WHERE}.compliance_standards", "apply only with compliance_security_profile = true")
    databricks = parsed.get("databricks")
    tier = getattr(databricks, "pricing_tier", None)
    if tier is not None and tier != REQUIRED_TIER:
        for key, value in (("compliance_security_profile", profile), ("enhanced_security_monitoring", monitoring), ("automatic_cluster_update", updates)):
            if value:
                check.fail(f"{_WHERE}.{key}", f"needs the {REQUIRED_TIER} pricing tier (the Enhanced Security and Compliance add-on); databricks.pricing_tier is {tier}")
    if None in (profile, monitoring, updates, standards):
        return None
    assert profile is not None and monitoring is not None and updates is not None and standards is not None
    return WorkspaceSecuritySpec(profile, standards, monitoring, updates)


# After the databricks section: the tier decides what may be turned on.
WORKSPACE_SECURITY = Section("workspace_security", ("workspace",), _workspace_security)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A live deployment keeps every security setting it turned on: Databricks does not let the compliance
    security profile go, provision never turns a setting off, and a setting's step must stay in the graph
    for the state file to match it. Standards may be added, not removed."""
    old, new = before.get("workspace_security") or {}, after.get("workspace_security") or {}
    changed = [f"{_WHERE}.{key} (turning it off)" for key in ("compliance_security_profile", "enhanced_security_monitoring", "automatic_cluster_update")
               if old.get(key) and not new.get(key)]
    removed = sorted(set(old.get("compliance_standards") or ()) - set(new.get("compliance_standards") or ()))
    if removed:
        changed.append(f"{_WHERE}.compliance_standards (removing {', '.join(removed)})")
    return changed
