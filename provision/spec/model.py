"""The deployment spec as validated: the deployment-wide fields every topology has, plus its sections.

Which sections a spec has, and how each is checked, is the topology's business (provision/topologies):
each cloud owns the sections it knows (`provision/clouds/<cloud>/spec.py`). Credentials never appear here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable

from provision.errors import FieldProblem, SpecError
from provision.spec.checker import Checker

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,26}[a-z0-9]$")
# The keys every spec may have, whatever its topology.
COMMON_KEYS = frozenset({"name", "region", "topology", "tags", "timeouts", "state"})
# s3://bucket/key: a bucket name by S3's rules and a key that names an object.
S3_STATE_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S*[^/\s]$")


@dataclass(frozen=True)
class TimeoutsSpec:
    retry_deadline_seconds: float
    workspace_seconds: float
    resource_seconds: float


@dataclass(frozen=True)
class StateSpec:
    """`[state]`: where `up` keeps the state when --state is not given, and the remote state's settings."""

    backend: str | None  # a path or s3://bucket/key
    kms_key_id: str | None  # SSE-KMS key of the state objects; None: the AWS managed key
    lock_ttl_seconds: float  # a lock not refreshed for this long may be taken over from another host


@dataclass(frozen=True)
class Section:
    """One part of a spec: the attribute it becomes (`spec.<field>`), the top-level TOML keys it reads,
    and its parser. `parse(check, data, parsed)` sees what was parsed before it (name, region, topology
    and earlier sections, by field) and returns the section's value, or None after recording problems."""

    field: str
    tables: tuple[str, ...]
    parse: Callable[[Checker, dict[str, Any], dict[str, Any]], Any]


@dataclass(frozen=True)
class Spec:
    name: str
    cloud: str
    region: str
    topology: str
    tags: dict[str, str]
    timeouts: TimeoutsSpec
    # The topology's sections by field (network, databricks, hub, ...); read as attributes: spec.network.
    sections: dict[str, Any] = field(default_factory=dict)
    # Every section field any topology has: one this spec lacks reads as None, any other name is an error.
    known_sections: frozenset[str] = field(default_factory=frozenset, compare=False, repr=False)
    raw: dict[str, Any] = field(compare=False, repr=False, default_factory=dict)
    state: StateSpec | None = field(default=None, compare=False)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes that are not fields.
        state = self.__dict__
        if name in state.get("sections", {}):
            return state["sections"][name]
        if name in state.get("known_sections", ()):
            return None
        raise AttributeError(f"a spec has no section {name!r}")

    def to_json(self) -> dict[str, Any]:
        """The spec as run, for the state file (re-validated on resume)."""
        return self.raw


def parse_name(check: Checker, data: dict[str, Any]) -> str | None:
    name = check.string(data, "name", "name")
    if name is not None and not NAME_RE.fullmatch(name):
        check.fail("name", f"{name!r} must be 3-28 characters: lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen")
        return None
    return name


def parse_timeouts(check: Checker, data: dict[str, Any]) -> TimeoutsSpec | None:
    tmo = check.table(data, "timeouts", {"retry_deadline_seconds", "workspace_seconds", "resource_seconds"})
    retry_deadline = check.number(tmo, "retry_deadline_seconds", "timeouts.retry_deadline_seconds", 300, 1)
    workspace_seconds = check.number(tmo, "workspace_seconds", "timeouts.workspace_seconds", 1800, 1)
    resource_seconds = check.number(tmo, "resource_seconds", "timeouts.resource_seconds", 900, 1)
    if retry_deadline is None or workspace_seconds is None or resource_seconds is None:
        return None
    return TimeoutsSpec(retry_deadline, workspace_seconds, resource_seconds)


def parse_state(check: Checker, data: dict[str, Any]) -> StateSpec | None:
    if "state" not in data:
        return None
    table = check.table(data, "state", {"backend", "kms_key_id", "lock_ttl_seconds"})
    backend = check.string(table, "backend", "state.backend", required=False)
    if backend is not None and backend.startswith("s3://") and not S3_STATE_RE.fullmatch(backend):
        check.fail("state.backend", f"{backend!r} must be s3://BUCKET/KEY, with a valid bucket name and a key that names an object")
    elif backend is not None and not backend.strip():
        check.fail("state.backend", "must be a path or s3://BUCKET/KEY")
    kms_key_id = check.string(table, "kms_key_id", "state.kms_key_id", required=False)
    ttl = check.number(table, "lock_ttl_seconds", "state.lock_ttl_seconds", 300, 1)
    return StateSpec(backend, kms_key_id, ttl if ttl is not None else 300.0)


def read_toml(path: Path) -> dict[str, Any]:
    """A spec file's TOML; a missing or unparsable file is a SpecError naming the file."""
    source = str(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SpecError(source, [FieldProblem("(file)", "does not exist")]) from None
    except OSError as exc:
        raise SpecError(source, [FieldProblem("(file)", f"cannot be read: {exc.strerror}")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(source, [FieldProblem("(file)", f"is not valid TOML: {exc}")]) from None


def describe(spec: Spec) -> dict[str, Any]:
    """The validated, derived spec (subnet CIDRs, zones, bucket) for `validate`, `plan` and change checks."""
    out: dict[str, Any] = {
        "name": spec.name, "cloud": spec.cloud, "region": spec.region, "topology": spec.topology, "tags": dict(spec.tags),
    }
    for key, value in spec.sections.items():
        if isinstance(value, (tuple, list)):  # a section of repeated tables ([[cluster_policies]])
            out[key] = [asdict(v) if is_dataclass(v) else v for v in value]
        else:
            out[key] = asdict(value) if is_dataclass(value) else value
    out["timeouts"] = asdict(spec.timeouts)
    return out
