"""Spec files for tests: the shipped examples, with overrides, written back as TOML."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str = "basic") -> dict[str, Any]:
    return tomllib.loads((EXAMPLES / f"{name}.toml").read_text())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(lines: list[str], header: str, table: dict[str, Any]) -> None:
    """One table's plain keys, then its sub-tables as [header.sub] (Azure's [azure.network])."""
    lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in table.items():
        name = f"{header}.{json.dumps(key)}" if header else key
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            _table(lines, name, value)
        elif _is_table_array(value):
            for entry in value:
                lines.append(f"\n[[{name}]]")
                _table(lines, name, entry)


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    _table(lines, "", data)
    return "\n".join(lines) + "\n"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(to_toml(data))
    return path


def merged(base: dict[str, Any], **tables: Any) -> dict[str, Any]:
    """base with top-level values replaced and tables merged key by key (sub-tables too)."""
    out = {k: (merged(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in tables.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], **value)
        else:
            out[key] = value
    return out
