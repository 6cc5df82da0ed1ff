"""The [workspace.security] fragment: hardening settings of a workspace, once it is running."""

from __future__ import annotations

from provision.clouds.databricks.steps.settings import (
    AutomaticClusterUpdate,
    ComplianceSecurityProfile,
    EnhancedSecurityMonitoring,
)
from provision.orchestrator.step import Step
from provision.spec import Spec


def hardening(spec: Spec, workspace: str, *, prefix: str = "") -> list[Step]:
    """Steps that harden the workspace made by step `workspace` (ids start with `prefix`): one per setting the
    spec turns on. The compliance security profile goes first: it turns the other two on itself."""
    security = spec.workspace_security
    if security is None:
        return []
    steps: list[Step] = []
    after: tuple[str, ...] = ()
    if security.compliance_security_profile:
        profile = f"{prefix}dbx.settings.compliance_profile"
        steps.append(ComplianceSecurityProfile(profile, workspace=workspace, standards=security.compliance_standards))
        after = (profile,)
    if security.enhanced_security_monitoring:
        steps.append(EnhancedSecurityMonitoring(f"{prefix}dbx.settings.security_monitoring", workspace=workspace, after=after))
    if security.automatic_cluster_update:
        steps.append(AutomaticClusterUpdate(f"{prefix}dbx.settings.cluster_update", workspace=workspace, after=after))
    return steps
