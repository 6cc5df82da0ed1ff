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


def to_toml(data: dict[str, Any]) -> str:
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict) and not _is_table_array(v)]
    for key, table in data.items():
        if isinstance(table, dict):
            lines.append(f"\n[{key}]")
            lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in table.items()]
        elif _is_table_array(table):
            for entry in table:
                lines.append(f"\n[[{key}]]")
                lines += [f"{json.dumps(k)} = {_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(to_toml(data))
    return path


def merged(base: dict[str, Any], **tables: Any) -> dict[str, Any]:
    """base with top-level values replaced and tables merged key by key."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in tables.items():
        if isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out
