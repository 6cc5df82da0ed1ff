"""[workspace.security]: compliance security profile, enhanced security monitoring, automatic cluster update."""

from __future__ import annotations

from typing import Any

from provision.spec import Checker, Section


def _workspace_security(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> Any:
    return None  # E1 (#12): filled in by the workspace hardening work


WORKSPACE_SECURITY = Section("workspace_security", ("workspace",), _workspace_security)
