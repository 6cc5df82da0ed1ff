"""Checking a parsed spec: every problem is collected, each naming its field, and reported at once."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

from provision.errors import FieldProblem


class Checker:
    """Collects problems; each accessor returns a value of the right type or None after recording why."""

    def __init__(self) -> None:
        self.problems: list[FieldProblem] = []

    def fail(self, field_name: str, reason: str) -> None:
        self.problems.append(FieldProblem(field_name, reason))

    def table(self, data: dict[str, Any], key: str, allowed: set[str], prefix: str = "") -> dict[str, Any]:
        value = data.get(key, {})
        where = f"{prefix}{key}"
        if not isinstance(value, dict):
            self.fail(where, f"must be a table, got {type(value).__name__}")
            return {}
        self.unknown(value, allowed, f"{where}.")
        return value

    def unknown(self, data: dict[str, Any], allowed: set[str], prefix: str) -> None:
        for key in data:
            if key not in allowed:
                self.fail(f"{prefix}{key}" if key else f'{prefix}""', "unknown field")

    def string(self, data: dict[str, Any], key: str, where: str, *, required: bool = True, default: str | None = None) -> str | None:
        if key not in data:
            if required:
                self.fail(where, "is required")
            return default
        value = data[key]
        if not isinstance(value, str):
            self.fail(where, f"must be a string, got {type(value).__name__}")
            return None
        return value

    def integer(self, data: dict[str, Any], key: str, where: str, default: int) -> int | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be an integer, got {type(value).__name__}")
            return None
        return value

    def number(self, data: dict[str, Any], key: str, where: str, default: float, minimum: float) -> float | None:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(where, f"must be a number, got {type(value).__name__}")
            return None
        if not math.isfinite(value) or value > 7 * 24 * 3600:
            self.fail(where, f"must be a finite number of seconds up to a week, got {value}")
            return None
        if value < minimum:
            self.fail(where, f"must be at least {minimum:g}, got {value:g}")
            return None
        return float(value)

    def string_list(self, data: dict[str, Any], key: str, where: str) -> list[str] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(where, "must be a list of strings")
            return None
        return value


def parse_cidr(check: Checker, text: str, where: str) -> ipaddress.IPv4Network | None:
    try:
        net = ipaddress.IPv4Network(text, strict=True)
    except ValueError as exc:
        reason = str(exc)
        if "has host bits set" in reason:
            reason = f"{text!r} has host bits set (did you mean {ipaddress.IPv4Network(text, strict=False)}?)"
        else:
            reason = f"{text!r} is not a valid IPv4 CIDR block"
        check.fail(where, reason)
        return None
    return net


def allocate(vpc: ipaddress.IPv4Network, prefixes: list[int]) -> list[ipaddress.IPv4Network] | None:
    """Carve blocks of the given prefix lengths from the VPC in order, each aligned; None if they don't fit."""
    cursor = int(vpc.network_address)
    end = int(vpc.broadcast_address) + 1
    blocks = []
    for prefix in prefixes:
        size = 2 ** (32 - prefix)
        cursor = (cursor + size - 1) // size * size
        if cursor + size > end:
            return None
        blocks.append(ipaddress.IPv4Network((cursor, prefix)))
        cursor += size
    return blocks
