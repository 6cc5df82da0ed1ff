"""The step graph's wiring, checked before anything runs (no Context, no client needed).

Each step names the steps it `needs` and the outputs it `reads()` (Refs: producer step id and key); each
step declares the output keys it `produces`. A topology is wired correctly when ids are unique, every
step is declared after the steps it needs, and every Ref names a step among the reader's needs (directly
or not, so it is done before the reader starts) and a key that step produces. Anything else is a bug in
the topology or in a step, never the user's doing.
"""

from __future__ import annotations

from provision.errors import GraphError
from provision.orchestrator.step import Outputs, Step


def ordered(steps: list[Step]) -> list[Step]:
    """Steps in declared order, checked to be a valid topological order with unique ids."""
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            raise GraphError(f"duplicate step id {step.id}")
        missing = [n for n in step.needs if n not in seen]
        if missing:
            raise GraphError(f"step {step.id} needs {missing}, which are not declared before it")
        seen.add(step.id)
    return list(steps)


def check(steps: list[Step]) -> list[Step]:
    """`ordered(steps)`, with every step's reads checked against its needs and its producers' outputs."""
    steps = ordered(steps)
    by_id = {s.id: s for s in steps}
    upstream: dict[str, frozenset[str]] = {}  # each step's needs, transitively
    for step in steps:
        upstream[step.id] = frozenset(step.needs).union(*(upstream[n] for n in step.needs))
        for ref in step.reads():
            producer = by_id.get(ref.step)
            if producer is None:
                raise GraphError(f"step {step.id} reads {ref.key!r} of step {ref.step}, which does not exist")
            if ref.step not in upstream[step.id]:
                raise GraphError(
                    f"step {step.id} reads {ref.key!r} of step {ref.step}, which it does not need: add {ref.step} to its needs"
                )
            if ref.key not in producer.produces:
                raise GraphError(
                    f"step {step.id} reads {ref.key!r} of step {ref.step}, which a {type(producer).__name__} does not produce "
                    f"(it produces {', '.join(producer.produces) or 'nothing'})"
                )
    return steps


def produced(step: Step, out: Outputs | None) -> Outputs | None:
    """What a step's find / create / wait_ready returned, refused if it has keys the step does not declare
    in `produces` (no Ref could name them, so graph.check could not vouch for their readers)."""
    extra = sorted(set(out or ()) - set(step.produces))
    if extra:
        raise GraphError(f"step {step.id} returned outputs its {type(step).__name__} does not declare in `produces`: {', '.join(extra)}")
    return out
