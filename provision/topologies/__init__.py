"""The topology registry: every topology declares itself once, in its own module (a `TOPOLOGY` record:
its cloud, the spec sections it reads, how its step graph is built, which fields are fixed on a live
deployment, its preflight, the workspaces it yields, its example file and its `validate` summary).

The spec (`load`, `from_dict`), the runner, `validate`, `output`, the benchmark and the crash matrix read
this registry; nothing else lists topologies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from provision.clouds import CLOUDS
from provision.errors import SpecError
from provision.orchestrator.step import Step
from provision.spec import (
    COMMON_KEYS,
    Checker,
    Spec,
    describe,
    parse_name,
    parse_timeouts,
    read_toml,
)
from provision.spec.model import parse_state
from provision.topologies import (
    azure_privatelink,
    basic,
    hub_spoke,
    privatelink,
    serverless,
)
from provision.topologies.registry import EXAMPLES, Topology

REGISTRY: dict[str, Topology] = {m.TOPOLOGY.name: m.TOPOLOGY for m in (basic, privatelink, hub_spoke, serverless, azure_privatelink)}
# Every section any topology has: `spec.<field>` of a section this spec's topology lacks is None.
SECTION_FIELDS = frozenset(s.field for t in REGISTRY.values() for s in t.sections)


def topology_of(spec: Spec) -> Topology:
    return REGISTRY[spec.topology]


def build(spec: Spec) -> list[Step]:
    return topology_of(spec).graph(spec)


def _refusal(key: str, topology: Topology) -> str:
    own = dict(topology.refusals)
    if key in own:
        return own[key]
    users = [t.name for t in REGISTRY.values() if key in t.tables]
    names = ", ".join(f'"{n}"' for n in users)
    return f"only applies to topolog{'y' if len(users) == 1 else 'ies'} {names}, not {topology.name!r}"


DEFAULT_TOPOLOGY = "basic"


def from_dict(data: dict[str, Any], source: str = "<spec>", *, as_run: bool = False) -> Spec:
    """Validate a parsed spec completely, for its topology; raise SpecError listing every problem.

    `as_run`: the spec comes from a state file. A table this topology does not read is then ignored, not
    refused: an older provision accepted some (hub-and-spoke ignored [existing] and [storage]), and a
    deployment built from such a spec must stay resumable, and removable."""
    check = Checker()
    known = COMMON_KEYS.union(*(t.tables for t in REGISTRY.values()))
    check.unknown(data, set(known), "")
    name = parse_name(check, data)
    topology_name = check.string(data, "topology", "topology", required=False, default=DEFAULT_TOPOLOGY)
    topology = REGISTRY.get(topology_name or "")
    if topology_name is not None and topology is None:
        check.fail("topology", f"unknown topology {topology_name!r}; choose one of {', '.join(REGISTRY)}")
    # Without a topology its sections are unknown, but the deployment-wide fields are still checked (by
    # the default topology's cloud), so one run reports every problem it can.
    cloud = CLOUDS[(topology or REGISTRY[DEFAULT_TOPOLOGY]).cloud]
    assert cloud.parse_region is not None and cloud.parse_tags is not None, f"{cloud.name} hosts no topology"
    region = cloud.parse_region(check, data)
    tags = cloud.parse_tags(check, data)
    sections: dict[str, Any] = {}
    if topology is not None:
        for key in data:
            if key in known and key not in COMMON_KEYS and key not in topology.tables and not as_run:
                check.fail(key, _refusal(key, topology))
        parsed: dict[str, Any] = {"name": name, "region": region, "topology": topology.name}
        for section in topology.sections:
            sections[section.field] = parsed[section.field] = section.parse(check, data, parsed)
    timeouts = parse_timeouts(check, data)
    state = parse_state(check, data)
    if check.problems:
        raise SpecError(source, check.problems)
    # A section may be None without a problem (no [network] when the VPC exists); these may not.
    assert topology and name and region and timeouts, "a parser returned None without recording a problem"
    return Spec(name=name, cloud=topology.cloud, region=region, topology=topology.name, tags=tags, timeouts=timeouts,
                sections=sections, known_sections=SECTION_FIELDS, raw=data, state=state)


def load(path: Path) -> Spec:
    """Read and validate a spec file; a missing or unparsable file is a SpecError too."""
    return from_dict(read_toml(path), str(path))


def changed_fields(old: Spec, new: Spec) -> list[str]:
    """The fields of `new` that a live deployment built from `old` cannot take."""
    topology = topology_of(old)
    before, after = describe(old), describe(new)
    changed = topology.changes(before, after) if topology.changes else []
    for path in topology.immutable:
        head, _, tail = path.partition(".")
        a, b = before.get(head), after.get(head)
        if tail:
            a, b = (a or {}).get(tail), (b or {}).get(tail)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += [f"{head}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            changed.append(path)
    return changed


__all__ = ["EXAMPLES", "REGISTRY", "Topology", "build", "changed_fields", "describe", "from_dict", "load", "topology_of"]
