"""[network_security]: VPC flow logs, NACLs on the Databricks subnets, restrictive VPC endpoint policies."""

from __future__ import annotations

from typing import Any

from provision.spec import Checker, Section


def _network_security(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> Any:
    return None  # E1 (#12): filled in by the network security work


NETWORK_SECURITY = Section("network_security", ("network_security",), _network_security)
