"""`plan` and up's drift pre-pass: what `up` would do, from reads only.

For each step, `find` against the state file and the spec gives an action (create, adopt, keep, recreate, converge,
replace, existing, conflict) and a status (orchestrator/drift.py: in_sync, drifted with its drifts, missing, extra,
new). Before `up` changes anything, `refuse_replacements` reads the steps that declare `drift_before_up` and refuses
a drift their API cannot converge in place. The Engine calls these (Engine.plan, Engine.refuse_replacements).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provision.errors import OwnershipConflict, ReplacementRefused, StepFailed
from provision.orchestrator.drift import DRIFTED, EXTRA, IN_SYNC, MISSING, NEW, Drift, replacements
from provision.orchestrator.step import Outputs, Step
from provision.state.store import Status

if TYPE_CHECKING:
    from provision.orchestrator.engine import Engine


@dataclass
class PlanItem:
    step_id: str
    kind: str
    action: str  # create, adopt, keep, recreate, converge, replace, existing, conflict
    resource_id: str | None
    status: str = NEW  # in_sync, drifted, missing, extra, new (orchestrator/drift.py)
    drifts: list[Drift] = field(default_factory=list)
    detail: str | None = None  # why a step is in conflict (an extra resource carries its tags)

    @property
    def changes(self) -> bool:
        """Whether `up` would change something for this step (what `plan --detailed-exitcode` counts)."""
        return self.action not in ("keep", "existing") or self.status != IN_SYNC

    def to_json(self) -> dict[str, Any]:
        return {
            "step_id": self.step_id, "kind": self.kind, "action": self.action, "resource_id": self.resource_id,
            "status": self.status, "drifts": [d.to_json() for d in self.drifts], "detail": self.detail,
        }


def plan(engine: Engine) -> list[PlanItem]:
    """Each step's action, and how what `find` sees compares with the state file and the spec."""
    items: list[PlanItem] = []
    # Steps whose resource up would make anew (new ids): the done steps that need them converge again. One converged
    # in place keeps its ids, so its dependents are not counted (up re-converges them only if its outputs change).
    changing: set[str] = set()
    for step in engine.steps:
        with engine._reading(step):
            item = _plan_step(engine, step, changing)
        if item.action in ("create", "recreate", "adopt", "replace"):
            changing.add(step.id)
        items.append(item)
    return items


def _plan_step(engine: Engine, step: Step, changing: set[str]) -> PlanItem:
    record = engine.state.record(step.id)
    done = record.status is Status.DONE
    try:
        found = _find(engine, step)
    except StepFailed as failed:
        if not isinstance(failed.cause, OwnershipConflict):
            raise
        # More than one resource carries the step's tags (or its name is someone else's): up would stop here.
        resource = step.resource_id(record.outputs) if record.outputs else None
        return PlanItem(step.id, step.kind, "conflict", resource, EXTRA, detail=str(failed.cause))
    seen = found or record.outputs
    resource = step.resource_id(seen) if seen else None
    if found is None:
        status = MISSING if done or step.external else NEW
        action = "existing" if step.external else ("recreate" if done else "create")
        return PlanItem(step.id, step.kind, action, resource, status)
    if done:
        engine.ctx.outputs[step.id] = {**record.outputs, **found}  # what up would read its dependents' wanted values from
    if step.external:
        return PlanItem(step.id, step.kind, "existing", resource, IN_SYNC)
    drifts = _drift(engine, step, found)
    if not done:
        action = "adopt"
    elif replacements(drifts):
        action = "replace"
    elif drifts or changing.intersection(step.needs):
        action = "converge"
    else:
        action = "keep"
    return PlanItem(step.id, step.kind, action, resource, DRIFTED if drifts else IN_SYNC, drifts)


def refuse_replacements(engine: Engine) -> frozenset[str]:
    """Reads only: the drift of each done step that declares `drift_before_up`. A drift its API cannot converge in
    place raises ReplacementRefused naming every such step and field (exit 2), before up changes anything. Returns
    the steps with drift up can converge in place."""
    refused: list[tuple[str, Drift]] = []
    drifted: set[str] = set()
    for step in engine.steps:
        if not step.drift_before_up or step.external or engine.state.record(step.id).status is not Status.DONE:
            continue
        with engine._reading(step):
            try:
                found = _find(engine, step)
            except StepFailed as failed:
                if isinstance(failed.cause, OwnershipConflict):
                    continue  # up stops at this step with the conflict, in its order
                raise
            drifts = _drift(engine, step, found) if found is not None else []  # gone: up creates it again
            if found is not None:
                engine.prefound[step.id] = found
        refused += [(step.id, d) for d in replacements(drifts)]
        if drifts:
            drifted.add(step.id)
    if refused:
        raise ReplacementRefused(refused)
    return frozenset(drifted)


def _find(engine: Engine, step: Step) -> Outputs | None:
    return engine._guarded(step, lambda: engine.ctx.call(lambda: engine._find(step), f"{step.id} find"))


def _drift(engine: Engine, step: Step, found: Outputs) -> list[Drift]:
    """The step's drift, when every output it reads is known (a step adopted in a fresh plan may read outputs of
    steps not created yet: up converges it anyway)."""
    outputs = engine.ctx.outputs
    if not all(ref.key in outputs.get(ref.step, {}) for ref in step.reads()):
        return []
    return list(engine._guarded(step, lambda: engine.ctx.call(lambda: step.drift(engine.ctx, found), f"{step.id} drift")))
