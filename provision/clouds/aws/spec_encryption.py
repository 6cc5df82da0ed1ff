"""[encryption]: customer-managed KMS keys for managed services and workspace storage (new, or existing)."""

from __future__ import annotations

from typing import Any

from provision.spec import Checker, Section


def _encryption(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> Any:
    return None  # E1 (#12): filled in by the encryption work


ENCRYPTION = Section("encryption", ("encryption",), _encryption)
