"""What a topology declares about itself, once, in its own module (see provision/topologies/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from provision.orchestrator import graph
from provision.orchestrator.step import Step
from provision.spec import Section, Spec

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples"


@dataclass(frozen=True)
class Topology:
    name: str
    cloud: str
    summary: str
    sections: tuple[Section, ...]
    build: Callable[[Spec], list[Step]]
    # Dotted spec paths that a live deployment cannot change (a table name covers all its fields).
    immutable: tuple[str, ...]
    # The workspaces it yields, for `output`: (workspace name, step id) each.
    workspaces: Callable[[Spec], list[tuple[str, str]]]
    # The file under examples/ that shows it.
    example: str
    # The derived facts `validate` prints, one line each, from `describe(spec)`.
    describe: Callable[[dict[str, Any]], list[str]]
    # Read-only checks of what the spec names as existing, before anything is created (or None).
    preflight: Callable[[Spec, Any, str, Callable[[Callable[[], Any], str], Any]], None] | None = None
    # Its own rule for what a live deployment cannot change, beyond `immutable` (hub-and-spoke: the hub's
    # network and every built spoke are fixed, new spokes may be appended); returns the refused fields.
    changes: Callable[[dict[str, Any], dict[str, Any]], list[str]] | None = None
    # Why a table this topology does not read is refused, where the generic reason would not help.
    refusals: tuple[tuple[str, str], ...] = ()
    # The other clouds its steps call besides its own (every workspace is made through Databricks' APIs).
    uses: tuple[str, ...] = ("databricks",)

    @property
    def clouds(self) -> tuple[str, ...]:
        """Every cloud a run of this topology makes clients for and classifies errors of."""
        return (self.cloud, *self.uses)

    @property
    def tables(self) -> frozenset[str]:
        return frozenset(t for s in self.sections for t in s.tables)

    def graph(self, spec: Spec) -> list[Step]:
        """The step graph, with its wiring checked (a GraphError is a bug in the topology, not the spec)."""
        return graph.check(self.build(spec))

    @property
    def example_path(self) -> Path:
        return EXAMPLES / self.example
