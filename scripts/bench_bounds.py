"""The benchmark's lower bounds: what the provider made us wait for, and what our own steps took.

Two bounds over the same step graph (reversed for teardown), each the longest chain of step weights:

- **step bound**: each step weighted with its own measured duration (from the state file). It contains our
  overheads (poll lateness, client time, scheduling), so a slow step raises the bound with it.
- **physical bound**: each step weighted only with what the provider imposed, from the sandbox's journal
  (provision/sandbox/journal.py): the pending time the sandbox drew for the step's resources, plus one call
  latency for every API call the step made (the step's calls run one after another) and one for the read
  that sees a wait end. The calls the run made before its first step (the credentials check) are a prefix
  of every chain. A run can only be slower than this by its own doing.

A drawn delay is the step's whose outputs name its key (the resource's id or ARN): the first such step in
graph order (the creator; later steps only reference it). The network interfaces a deleted NAT gateway,
interface endpoint or TGW attachment leaves behind (eni_release_seconds) are journaled under that resource,
so they count on top of its deletion.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

# ARM creates with PUT (create-or-update): counted as creates, like the Account API's POSTs.
CREATE_PREFIXES = ("Create", "Allocate", "Run", "POST ", "PUT ")
READ_PREFIXES = ("Describe", "Get", "List", "Head", "Search", "GET ")
# Delays a step's wait does not see through its own outputs: name -> the step kind that waits for them.
WAITED_BY_KIND = {"identity_federation_seconds": "databricks.metastore_assignment"}


def _seconds(start: str | None, end: str | None) -> float:
    if not start or not end:
        return 0.0
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def step_durations(state: dict) -> dict[str, float]:
    return {r["id"]: _seconds(r.get("started_at"), r.get("finished_at")) for r in state["steps"]}


def run_window(state: dict) -> tuple[dt.datetime | None, dt.datetime | None]:
    """When the first step started and the last finished (the rest of the wall time is start-up and exit)."""
    starts = [dt.datetime.fromisoformat(r["started_at"]) for r in state["steps"] if r.get("started_at")]
    ends = [dt.datetime.fromisoformat(r["finished_at"]) for r in state["steps"] if r.get("finished_at")]
    return (min(starts) if starts else None), (max(ends) if ends else None)


def critical_path(graph: dict[str, tuple[str, ...]], weights: dict[str, float], reverse: bool = False) -> tuple[float, list[str]]:
    """The longest chain through the step graph and the steps on it (in the order they run)."""
    order = list(graph)
    edges = graph
    if reverse:  # teardown: a step goes after every step that needs it
        dependents: dict[str, list[str]] = defaultdict(list)
        for step, needs in graph.items():
            for need in needs:
                dependents[need].append(step)
        order, edges = order[::-1], {s: tuple(dependents[s]) for s in graph}
    finish: dict[str, float] = {}
    via: dict[str, str | None] = {}
    for step in order:
        before = max(edges[step], key=lambda d: finish[d], default=None)
        finish[step] = (finish[before] if before else 0.0) + weights.get(step, 0.0)
        via[step] = before
    if not finish:
        return 0.0, []
    position = {step: i for i, step in enumerate(order)}
    last: str | None = max(finish, key=lambda s: (finish[s], position[s]))  # ties: the chain that goes furthest
    chain = []
    while last is not None:
        chain.append(last)
        last = via[last]
    return finish[chain[0]], chain[::-1]


def read_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def call_kind(service: str) -> str:
    """Which latency of the sandbox a call of this service was given (faults.py: one per app)."""
    if service == "databricks" or service.startswith("databricks"):
        return "databricks"
    return "azure" if service.startswith("azure") else "aws"


def call_summary(events: list[dict]) -> dict:
    """API calls per service split into creates, other writes, reads and polls; polls per wait; throttled answers."""
    per_service: dict[str, Counter] = defaultdict(Counter)
    polls_per_wait: Counter = Counter()
    throttled = 0
    before_steps = 0  # reads logged before "run started": the credentials checks and preflight (runner._CallLog)
    started = False
    for event in events:
        name = event.get("event")
        started = started or name == "run started"
        if name == "api call":
            service, operation = event["service"], event["operation"]
            if event.get("poll"):
                kind = "polls"
            elif operation.startswith(READ_PREFIXES):
                kind = "reads"
                before_steps += not started
            elif operation.startswith(CREATE_PREFIXES) and not operation.endswith("/delete"):
                kind = "creates"
            else:
                kind = "other_writes"
            per_service[service][kind] += 1
        elif name == "poll":
            polls_per_wait[(event.get("step"), event.get("what"))] += 1
        elif name == "retrying" and str(event.get("reason", "")).startswith("throttled"):
            throttled += 1
    return {
        "per_service": {s: {k: c[k] for k in ("creates", "other_writes", "reads", "polls")} for s, c in sorted(per_service.items())},
        "writes": sum(c["creates"] + c["other_writes"] for c in per_service.values()),
        "reads": sum(c["reads"] + c["polls"] for c in per_service.values()),
        "polls_per_wait": {f"{step}: {what}": n for (step, what), n in polls_per_wait.most_common()},
        "throttled": throttled,
        "credential_check_reads": before_steps,
    }


def finished_event(events: list[dict]) -> dict:
    return next((e for e in reversed(events) if e.get("event") == "run finished"), {})


def _values(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _values(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


@dataclass
class StepCost:
    """One step as the provider made it wait (sandbox seconds); the Terraform model takes the same figures."""

    kind: str
    pending_s: float = 0.0
    calls: int = 0
    call_s: float = 0.0
    waits: int = 0

    @property
    def physical_s(self) -> float:
        return self.pending_s + (self.calls + self.waits) * self.call_s


def step_costs(steps: list[dict], events: list[dict], journal: dict, *, teardown: bool) -> tuple[dict[str, StepCost], float, list[dict]]:
    """Per step: the pending time drawn for its resources, its own calls and its waits; plus the calls made
    before any step (the prefix of every chain) and the drawn delays no step could be found for."""
    kinds = {s["id"]: s["kind"] for s in steps}
    latency = {kind: c["seconds"] / c["count"] for kind, c in journal.get("calls", {}).items() if c["count"]}
    owner: dict[str, str] = {}
    for record in steps:  # graph order: the first step naming a key is its creator
        for value in _values(record.get("outputs") or {}):
            owner.setdefault(value.lower(), record["id"])
    calls: Counter = Counter()
    kind_of_calls: dict[str, Counter] = defaultdict(Counter)
    waits: dict[str, set] = defaultdict(set)
    prefix = 0.0
    for event in events:
        if event.get("event") == "poll" and event.get("step"):
            waits[event["step"]].add(event.get("what"))
        if event.get("event") != "api call" or event.get("poll"):
            continue
        kind = call_kind(event["service"])
        if event.get("step"):
            calls[event["step"]] += 1
            kind_of_calls[event["step"]][kind] += 1
        else:
            prefix += latency.get(kind, 0.0)
    costs: dict[str, StepCost] = {}
    for sid, kind in kinds.items():
        n = calls[sid]
        mean = (sum(latency.get(k, 0.0) * c for k, c in kind_of_calls[sid].items()) / n) if n else latency.get("aws", 0.0)
        costs[sid] = StepCost(kind=kind, calls=n, call_s=mean, waits=len(waits[sid]))
    pending: dict[str, list[float]] = defaultdict(list)
    unmatched = []
    released: dict[str, float] = {}  # one release per owner: its interfaces go together
    for delay in journal.get("delays", []):
        name, key = delay["name"], delay["key"]
        if name == "eni_release_seconds":
            released[key] = max(released.get(key, 0.0), delay["seconds"])
            continue
        by_kind = WAITED_BY_KIND.get(name)
        sid = next((s for s, k in kinds.items() if k == by_kind), None) if by_kind else None
        sid = sid or owner.get(key.removesuffix("/delete").lower())
        if sid is None:
            unmatched.append(delay)
            continue
        pending[sid].append(delay["seconds"])
    for key, seconds in released.items():
        sid = owner.get(key.removesuffix("/delete").lower())
        if sid is None:
            unmatched.append({"name": "eni_release_seconds", "key": key, "seconds": seconds})
        else:
            pending[sid].append(seconds)
    for sid, drawn in pending.items():
        # One step's resources are waited for one after another (a workspace, then its warm-up; a deletion,
        # then the release of its interfaces).
        costs[sid].pending_s = sum(drawn)
    return costs, prefix, unmatched


def physical_bound(graph: dict[str, tuple[str, ...]], costs: dict[str, StepCost], prefix: float, *, reverse: bool) -> tuple[float, list[str]]:
    bound, chain = critical_path(graph, {s: c.physical_s for s, c in costs.items()}, reverse=reverse)
    return prefix + bound, chain


def rate_floors(events: list[dict], time_scale: float) -> dict[str, float]:
    """What EC2's documented token buckets alone impose on the run (provision/rate_limits.py): n calls drawing
    on a bucket of capacity c refilled at r a second take at least (n - c) / r, whoever paces them. In sandbox
    seconds (the sandbox refills S times faster, as the run is S times faster). Only floors above zero."""
    from provision.rate_limits import ec2_bucket

    counts: Counter = Counter()
    figures: dict[str, tuple[float, float]] = {}
    for event in events:
        if event.get("event") == "api call" and event.get("service") == "ec2":
            name, bucket = ec2_bucket(event["operation"], ("Filters",))  # our describes always filter
            counts[name] += 1
            figures[name] = bucket
    floors = {}
    for name, n in counts.items():
        capacity, rate = figures[name]
        if n > capacity:
            floors[name] = round((n - capacity) / (rate / (time_scale or 1.0)), 3)
    return floors
