"""The [workspace.security] fragment: hardening settings of a workspace, once it is running."""

from __future__ import annotations

from provision.orchestrator.step import Step
from provision.spec import Spec


def hardening(spec: Spec, workspace: str, *, prefix: str = "") -> list[Step]:
    """Steps that harden the workspace made by step `workspace` (ids start with `prefix`)."""
    if spec.workspace_security is None:
        return []
    return []
