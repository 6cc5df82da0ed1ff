"""Drift: how a resource that exists differs from what the spec says, field by field.

A step reports drift for a resource its `find` saw (`Step.drift`); `plan` shows it, and `up` refuses, before
changing anything, a drift it could only converge by replacing the resource (`in_place=False`: a VPC's CIDR,
a subnet's zone). Everything else `up` converges in place, through the step's `needs_converge` and `wait_ready`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

# A plan item's status: what `find` saw against the state file and the spec.
IN_SYNC = "in_sync"  # exists, as the spec says
DRIFTED = "drifted"  # exists, but differs from the spec (its drifts say how)
MISSING = "missing"  # the state file records it done, but it is gone: up creates it again
EXTRA = "extra"  # more than one resource carries the step's ownership tags: up stops until they are removed
NEW = "new"  # never created: up creates it (or adopts what a crashed run made)


@dataclass(frozen=True)
class Drift:
    """One field that differs. `wanted` and `found` are short, printable values (never a secret)."""

    field: str
    wanted: Any
    found: Any
    # False when the API cannot change this field: converging means replacing the resource, which up refuses.
    in_place: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "wanted": self.wanted, "found": self.found, "in_place": self.in_place}

    def __str__(self) -> str:
        return f"{self.field}: wanted {_show(self.wanted)}, found {_show(self.found)}"


def unnamed() -> list[Drift]:
    """A step that only knows that its resource differs (a digest), not how."""
    return [Drift("*", "as the spec says", "differs")]


def fields(wanted: dict[str, Any], found: dict[str, Any], *, replaced: Iterable[str] = ()) -> list[Drift]:
    """The fields of `wanted` whose value `found` does not have; those in `replaced` cannot change in place."""
    fixed = set(replaced)
    return [Drift(key, value, found.get(key), in_place=key not in fixed) for key, value in wanted.items() if found.get(key) != value]


def members(field: str, wanted: Iterable[Any], found: Iterable[Any], show: Any = str) -> list[Drift]:
    """A set-valued field (security-group rules, routes): one drift per missing member and per extra one."""
    want, have = set(wanted), set(found)
    missing = [Drift(field, show(m), None) for m in sorted(want - have, key=repr)]
    extra = [Drift(field, None, show(m)) for m in sorted(have - want, key=repr)]
    return missing + extra


def replacements(drifts: Iterable[Drift]) -> list[Drift]:
    return [d for d in drifts if not d.in_place]


def _show(value: Any) -> str:
    return "(none)" if value is None else str(value)
