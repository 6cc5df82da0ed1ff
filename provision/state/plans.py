"""Saved plans: `plan --out FILE` records what it planned and against which state; `up --plan FILE` applies
that spec only while the state is still the one planned against (same lineage and serial).

A plan made with no state (lineage None, serial 0) applies only while there is still none: otherwise another
run has built something since, and the plan no longer says what `up` would do.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from provision.errors import LineageError, UsageError

FORMAT = 1


@dataclass(frozen=True)
class SavedPlan:
    deployment: str
    lineage: str | None  # None: planned with no state
    serial: int
    spec: dict[str, Any]  # the validated spec's JSON, which `up --plan` runs
    spec_path: str | None
    target: str
    items: list[dict[str, Any]] = field(default_factory=list)
    # Where the state it was made against lives (a path or s3://): `up --plan` uses it unless --state says otherwise.
    state: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, **asdict(self)}


def item_json(item: Any) -> dict[str, Any]:
    """A PlanItem (a dataclass, or any object with attributes) as JSON-ready data."""
    return asdict(item) if is_dataclass(item) and not isinstance(item, type) else dict(vars(item))


def write(path: Path, plan: SavedPlan) -> None:
    # Written whole before anything reads it: a half-written plan would fail to parse rather than apply.
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(plan.to_json(), indent=2, default=str) + "\n")
    tmp.replace(path)


def read(path: Path) -> SavedPlan:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"saved plan {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"saved plan {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"saved plan {path} is not a plan of format {FORMAT} (made by `provision plan --out`)")
    try:
        plan = SavedPlan(
            deployment=data["deployment"], lineage=data["lineage"], serial=int(data["serial"]), spec=dict(data["spec"]),
            spec_path=data.get("spec_path"), target=data["target"], items=list(data.get("items") or []),
            state=data.get("state"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"saved plan {path} is malformed ({type(exc).__name__}: {exc})") from None
    return plan


def check(plan: SavedPlan, path: Path, state: Any | None, where: str) -> None:
    """Refuse (LineageError, exit 2) to apply `plan` to `state` (a StateFile, or None when there is none)
    unless it is the state the plan was made against."""
    if state is None:
        if plan.lineage is not None:
            raise LineageError(
                f"saved plan {path} was made against state {where} (lineage {plan.lineage}, serial {plan.serial}), "
                "which no longer exists; make a new plan"
            )
        return
    if plan.lineage is None:
        raise LineageError(
            f"saved plan {path} was made when there was no state, but {where} now exists (serial {state.serial}): "
            "another run changed the deployment since; make a new plan"
        )
    state.expect_lineage(plan.lineage, f"saved plan {path} was made against that lineage")
    if state.serial != plan.serial:
        raise LineageError(
            f"saved plan {path} was made at serial {plan.serial} of state {where}, which is now at serial "
            f"{state.serial}: the state moved on since; make a new plan"
        )
