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
    spec turns on. The compliance security profile brings the other two with it (Databricks turns them on and
    keeps them on), so with the profile there is one step: a step for either would always find it on."""
    security = spec.workspace_security
    if security is None:
        return []
    if security.compliance_security_profile:
        return [ComplianceSecurityProfile(f"{prefix}dbx.settings.compliance_profile", workspace=workspace, standards=security.compliance_standards)]
    steps: list[Step] = []
    if security.enhanced_security_monitoring:
        steps.append(EnhancedSecurityMonitoring(f"{prefix}dbx.settings.security_monitoring", workspace=workspace))
    if security.automatic_cluster_update:
        steps.append(AutomaticClusterUpdate(f"{prefix}dbx.settings.cluster_update", workspace=workspace))
    return steps
