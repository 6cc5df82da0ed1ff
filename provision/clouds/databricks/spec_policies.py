"""[[cluster_policies]]: the enterprise guide's three shipped presets or the spec's own JSON definitions.

An entry is a table `{name, definition}`, or just a preset's name as a string. `definition` is a JSON object in
Databricks' policy definition language (a string holding the JSON text, or a TOML table); it is checked here,
before any call: valid JSON (a syntax error names the line and column), an object of attribute path -> rule, each
rule with a known `type` and what that type needs. A preset's name without `definition` gets the shipped one.

The presets (AWS node types; every cluster on Unity Catalog, terminating itself, spot workers with on-demand
fallback and an on-demand driver):
- data-engineering: dedicated (SINGLE_USER) access for pipelines and jobs, general-purpose/memory/compute nodes up
  to 4xlarge, up to 20 workers, auto-termination 10-60 minutes;
- analyst: standard (USER_ISOLATION) shared access, all-purpose clusters only, small nodes, up to 8 workers,
  auto-termination fixed at 30 minutes;
- admin: looser: either access mode, any node type, up to 50 workers, auto-termination 10-240 minutes, on-demand
  allowed; still never without Unity Catalog and never without auto-termination.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from provision.clouds.databricks.spec_identity import slug
from provision.spec import Checker, Section

MAX_NAME = 100  # Databricks: "Length must be between 1 and 100 characters."
RULE_TYPES = ("fixed", "forbidden", "allowlist", "blocklist", "regex", "range", "unlimited")
_WHERE = "cluster_policies"


def _common(name: str) -> dict[str, Any]:
    return {
        "spark_version": {"type": "unlimited", "defaultValue": "auto:latest-lts"},
        "aws_attributes.first_on_demand": {"type": "fixed", "value": 1, "hidden": True},  # the driver on demand
        "enable_local_disk_encryption": {"type": "fixed", "value": True},
        "custom_tags.ClusterPolicy": {"type": "fixed", "value": name},
    }


PRESETS: dict[str, dict[str, Any]] = {
    "data-engineering": {
        **_common("data-engineering"),
        "data_security_mode": {"type": "fixed", "value": "SINGLE_USER"},
        "cluster_type": {"type": "allowlist", "values": ["all-purpose", "job"]},
        "autotermination_minutes": {"type": "range", "minValue": 10, "maxValue": 60, "defaultValue": 30},
        "node_type_id": {
            "type": "allowlist", "defaultValue": "m6i.xlarge",
            "values": ["m6i.xlarge", "m6i.2xlarge", "m6i.4xlarge", "r6i.xlarge", "r6i.2xlarge", "r6i.4xlarge", "c6i.2xlarge", "c6i.4xlarge"],
        },
        "driver_node_type_id": {"type": "allowlist", "defaultValue": "m6i.xlarge", "values": ["m6i.xlarge", "m6i.2xlarge", "r6i.xlarge", "r6i.2xlarge"]},
        "aws_attributes.availability": {"type": "fixed", "value": "SPOT_WITH_FALLBACK", "hidden": True},
        "autoscale.min_workers": {"type": "range", "minValue": 1, "maxValue": 4, "defaultValue": 1},
        "autoscale.max_workers": {"type": "range", "minValue": 1, "maxValue": 20, "defaultValue": 8},
        "num_workers": {"type": "range", "minValue": 0, "maxValue": 20},
    },
    "analyst": {
        **_common("analyst"),
        "data_security_mode": {"type": "fixed", "value": "USER_ISOLATION"},
        "cluster_type": {"type": "fixed", "value": "all-purpose"},
        "autotermination_minutes": {"type": "fixed", "value": 30},
        "node_type_id": {"type": "allowlist", "defaultValue": "m6i.xlarge", "values": ["m6i.xlarge", "m6i.2xlarge", "r6i.xlarge"]},
        "driver_node_type_id": {"type": "allowlist", "defaultValue": "m6i.xlarge", "values": ["m6i.xlarge", "m6i.2xlarge", "r6i.xlarge"]},
        "aws_attributes.availability": {"type": "fixed", "value": "SPOT_WITH_FALLBACK", "hidden": True},
        "autoscale.min_workers": {"type": "fixed", "value": 1, "hidden": True},
        "autoscale.max_workers": {"type": "range", "minValue": 1, "maxValue": 8, "defaultValue": 4},
        "num_workers": {"type": "range", "minValue": 0, "maxValue": 8},
        "instance_pool_id": {"type": "forbidden", "hidden": True},
    },
    "admin": {
        **_common("admin"),
        "data_security_mode": {"type": "allowlist", "values": ["SINGLE_USER", "USER_ISOLATION"], "defaultValue": "SINGLE_USER"},
        "autotermination_minutes": {"type": "range", "minValue": 10, "maxValue": 240, "defaultValue": 60},
        "node_type_id": {"type": "unlimited", "defaultValue": "m6i.xlarge"},
        "aws_attributes.availability": {"type": "allowlist", "values": ["SPOT_WITH_FALLBACK", "ON_DEMAND"], "defaultValue": "SPOT_WITH_FALLBACK"},
        "autoscale.max_workers": {"type": "range", "minValue": 1, "maxValue": 50, "defaultValue": 8},
        "num_workers": {"type": "range", "minValue": 0, "maxValue": 50},
    },
}


@dataclass(frozen=True)
class ClusterPolicySpec:
    name: str
    definition: str  # canonical JSON text (sorted keys), as sent to the API
    preset: bool = False


def canonical(definition: dict[str, Any]) -> str:
    """A definition as sent to the API and compared with what the API holds: sorted keys, no whitespace."""
    return json.dumps(definition, sort_keys=True, separators=(",", ":"))


def rule_problems(definition: Any) -> list[str]:
    """Why a parsed definition is not a policy definition (empty: it is one)."""
    if not isinstance(definition, dict):
        return [f"must be a JSON object of attribute path -> rule, got a JSON {_json_type(definition)}"]
    problems = []
    for path, rule in definition.items():
        if not path:
            problems.append("has an empty attribute path")
            continue
        if not isinstance(rule, dict):
            problems.append(f"rule {path!r} must be an object with a \"type\", got a JSON {_json_type(rule)}")
            continue
        kind = rule.get("type")
        if kind not in RULE_TYPES:
            problems.append(f"rule {path!r} has type {kind!r}; use one of {', '.join(RULE_TYPES)}")
        elif kind == "fixed" and "value" not in rule:
            problems.append(f"rule {path!r} (fixed) needs a \"value\"")
        elif kind in ("allowlist", "blocklist") and (not isinstance(rule.get("values"), list) or not rule["values"]):
            problems.append(f"rule {path!r} ({kind}) needs a non-empty \"values\" list")
        elif kind == "regex" and not isinstance(rule.get("pattern"), str):
            problems.append(f"rule {path!r} (regex) needs a \"pattern\" string")
        elif kind == "range":
            bounds = {k: rule[k] for k in ("minValue", "maxValue") if k in rule}
            if not bounds or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bounds.values()):
                problems.append(f"rule {path!r} (range) needs a numeric \"minValue\" and/or \"maxValue\"")
            elif len(bounds) == 2 and bounds["minValue"] > bounds["maxValue"]:
                problems.append(f"rule {path!r} (range) has minValue {bounds['minValue']} above maxValue {bounds['maxValue']}")
    return problems


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(value), "value")


def parse_definition(check: Checker, value: Any, where: str) -> str | None:
    """A definition (JSON text or a TOML table) as canonical JSON, or None after recording why it is not one."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            check.fail(where, f"is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}")
            return None
    elif not isinstance(value, dict):
        check.fail(where, f"must be a JSON object as a string (or a TOML table), got {type(value).__name__}")
        return None
    problems = rule_problems(value)
    for problem in problems:
        check.fail(where, problem)
    return None if problems else canonical(value)


def _entry(check: Checker, item: Any, where: str) -> ClusterPolicySpec | None:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict):
        check.fail(where, f"must be a table (or a preset's name), got {type(item).__name__}")
        return None
    check.unknown(item, {"name", "definition"}, f"{where}.")
    name = check.string(item, "name", f"{where}.name")
    if name is None:
        return None
    if not 1 <= len(name) <= MAX_NAME or name != name.strip():
        check.fail(f"{where}.name", f"must be 1-{MAX_NAME} characters without leading or trailing blanks, got {name!r}")
        return None
    if "definition" not in item:
        if name not in PRESETS:
            check.fail(f"{where}.definition", f"is required: {name!r} is not a shipped preset ({', '.join(PRESETS)})")
            return None
        return ClusterPolicySpec(name, canonical(PRESETS[name]), preset=True)
    definition = parse_definition(check, item["definition"], f"{where}.definition")
    return None if definition is None else ClusterPolicySpec(name, definition)


def _parse(check: Checker, data: dict[str, Any], parsed: dict[str, Any]) -> tuple[ClusterPolicySpec, ...] | None:
    if _WHERE not in data:
        return None
    items = data[_WHERE]
    if not isinstance(items, list):
        check.fail(_WHERE, f"must be an array of tables ([[{_WHERE}]]) or of preset names, got {type(items).__name__}")
        return None
    before = len(check.problems)
    policies: list[ClusterPolicySpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        policy = _entry(check, item, f"{_WHERE}[{i}]")
        if policy is None:
            continue
        # Step ids come from the names' slugs (dbx.policy.<slug>): names must differ in them, not only in case.
        key = slug(policy.name)
        if not key:
            check.fail(f"{_WHERE}[{i}].name", f"{policy.name!r} needs at least one letter or digit")
        elif key in seen:
            check.fail(f"{_WHERE}[{i}].name", f"{policy.name!r} is already the name of {_WHERE}[{seen[key]}] (or gives the same step id)")
        else:
            seen[key] = i
            policies.append(policy)
    return None if len(check.problems) > before else tuple(policies)


CLUSTER_POLICIES = Section("cluster_policies", ("cluster_policies",), _parse)


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """A live deployment keeps its cluster policies: removing one would drop its step while the policy lives on in
    the workspace. A changed definition (or a preset swapped for the spec's own) converges in place."""
    def names(described: dict[str, Any]) -> set[str]:
        return {p["name"] if isinstance(p, dict) else p.name for p in described.get(_WHERE) or ()}

    return [f"{_WHERE} (removing {name})" for name in sorted(names(before) - names(after))]
