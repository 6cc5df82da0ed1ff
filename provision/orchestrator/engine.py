"""The step engine: reconcile steps in dependency order, checkpoint after every transition.

up:        for each step: find -> create if absent -> checkpoint ids -> wait ready (converge) -> done.
           A step already done is verified with one find; gone means it is created again, and every
           done step that needs a step created or adopted in this run is converged again (a new subnet
           gets its route table association back).
           A step left in_progress by a crash is reconciled the same way: find adopts what was created.
teardown:  reverse dependency order; find (authoritative, catches a create that was never checkpointed)
           -> delete (NotFound counts as done) -> wait until gone -> checkpoint deleted.

Before anything, graph.check refuses a broken graph (see graph.py); while a step runs, `ctx.out` refuses a
Ref it did not declare, and the engine refuses outputs it does not declare in `produces`.

Scheduling: each step starts as soon as every step it `needs` is done (in teardown: as soon as every step
that needs it is deleted); up to `parallelism` of them work at once, while a step asleep in a wait gives its
slot to another (slots.py), and slots go to the longest remaining chain first. The state file serializes its own writes, so each checkpoint stays atomic. When a step fails, no new step
starts; the steps already running finish their work (their resources are checkpointed), then the run
stops with the first failure. Ctrl-C interrupts every running step at its next wait. With parallelism 1
the steps run one by one on the calling thread, in declaration order.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Protocol

from structlog.contextvars import bind_contextvars, bound_contextvars

from provision.constants import DEFAULT_PARALLELISM
from provision.errors import (
    GraphError,
    OwnershipConflict,
    StateFileError,
    StepFailed,
)
from provision.orchestrator.failpoints import Failpoints
from provision.orchestrator.graph import check, produced
from provision.orchestrator.logging import scrub, secret_values
from provision.orchestrator import planning
from provision.orchestrator.planning import PlanItem
from provision.orchestrator.retry import CONVERGING, DELETING, phase
from provision.orchestrator.slots import Slots, idle
from provision.orchestrator.step import DECLARED_READS, Context, Outputs, Step
from provision.state.store import StateFile, Status, now_iso

_real_sleep = time.sleep
# Worker threads at most: a 32-spoke run has a few hundred steps, most of them asleep in waits at any moment.
MAX_THREADS = 256


class Reporter(Protocol):
    def step(self, step_id: str, phase: str, detail: str = "") -> None: ...


class NullReporter:
    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        return None


class Interrupted(KeyboardInterrupt):
    """Raised in a running step's wait when the run was interrupted (Ctrl-C) on the main thread."""


class Engine:
    # Done steps whose resource `refuse_replacements` saw drift in, all of it convergible in place: `up` converges
    # them even when their find's digest does not show it (a bucket's settings changed by hand).
    drifted: frozenset[str] = frozenset()

    def __init__(
        self,
        steps: list[Step],
        state: StateFile,
        ctx: Context,
        *,
        failpoints: Failpoints | None = None,
        reporter: Reporter | None = None,
        parallelism: int = DEFAULT_PARALLELISM,
    ):
        self.steps = check(steps)
        self.parallelism = max(1, parallelism)
        self._interrupted = threading.Event()
        self.state = state
        self.ctx = ctx
        self.failpoints = failpoints or Failpoints()
        self.reporter = reporter or NullReporter()
        self.state.ensure_steps([(s.id, s.kind) for s in self.steps])
        ctx.facts = state.facts
        ctx.remember = state.remember
        ctx.retired = state.retired_of
        for step in self.steps:
            record = self.state.record(step.id)
            if record.status is Status.DONE:
                self.ctx.outputs[step.id] = dict(record.outputs)
            if record.outputs and record.status is not Status.DELETED:
                # Also a failed or interrupted step's: a step stopped mid-replacement still knows its own old object.
                self.ctx.initial[step.id] = dict(record.outputs)
            if step.external and not record.external:
                record.external = True  # saved with the next transition
            if record.create_attempted and record.status is not Status.DELETED:
                self.ctx.claimed.add(step.id)
            self.ctx.attempts[step.id] = record.attempts
        # Steps created or adopted during this run: their dependents must converge again.
        self.changed: set[str] = set()
        # What refuse_replacements' reads found for done steps, so up does not read them a second time.
        self.prefound: dict[str, Outputs] = {}

    def unknown_live_records(self) -> list[str]:
        """Records the state file says may exist but that this topology has no step for."""
        known = {s.id for s in self.steps}
        return [r.id for r in self.state.live_records() if r.id not in known]

    # up ------------------------------------------------------------------------------------------
    def up(self) -> dict[str, Outputs]:
        # Only a run that changes things retires what a step replaced (plan's finds record nothing).
        self.ctx.retire = self.state.retire
        self._schedule(self.steps, lambda step: step.needs, self._up_step)
        # Every step is done, so nothing uses a replaced resource any more (the workspace moved to the new network).
        by_id = {s.id: s for s in self.steps}
        for entry in sorted(self.state.retired, key=lambda e: -self._position(e["step"])):
            if entry["step"] in by_id:
                self._delete_retired(by_id[entry["step"]], entry["outputs"])
            else:
                self.ctx.log.warning("a replaced resource's step is not in this topology; it is left", step=entry["step"], outputs=entry["outputs"])
        return {s.id: self.ctx.outputs[s.id] for s in self.steps}

    def _position(self, step_id: str) -> int:
        return next((i for i, s in enumerate(self.steps) if s.id == step_id), -1)

    def _delete_retired(self, step: Step, out: Outputs) -> None:
        """Delete a resource the step replaced, then forget it; a failure stops the run, resumably (it stays retired)."""
        with self._reading(step), bound_contextvars(step=step.id, kind=step.kind, resource_id=step.resource_id(out)):
            try:
                with phase(DELETING):
                    self.ctx.call(lambda: self._delete(step, out), f"{step.id} delete replaced")
                step.wait_deleted(self.ctx, out)
            except Exception as exc:
                raise StepFailed(step.id, exc) from exc
            self.ctx.log.info("deleted the replaced resource")
            self.state.release(step.id, out)

    def _up_step(self, step: Step) -> None:
        record = self.state.record(step.id)
        # The record is updated in place below; remember what it said when this run reached the step.
        was_done, previous = record.status is Status.DONE, dict(record.outputs)
        log = self.ctx.log
        if was_done:
            found = self.prefound.pop(step.id, None)
            if found is None:
                found = self._guarded(step, lambda: self.ctx.call(lambda: self._find(step), f"{step.id} find"))
            stale = found is not None and (bool(self.changed.intersection(step.needs)) or step.id in self.drifted or step.needs_converge(self.ctx, found))
            if found is not None and not stale:
                merged = {**record.outputs, **found}
                self.ctx.outputs[step.id] = merged
                if merged != record.outputs:
                    self.state.update(step.id, outputs=merged)
                self.reporter.step(step.id, "kept", step.resource_id(merged) or "")
                return
            if found is None:
                log.warning("resource gone since last run; creating it again", resource_id=step.resource_id(record.outputs))
            else:
                log.info("converging again: the spec or a step it needs changed", changed=sorted(self.changed.intersection(step.needs)))

        self.ctx.attempts[step.id] = record.attempts + 1
        self.state.update(step.id, status=Status.IN_PROGRESS, attempts=record.attempts + 1, started_at=now_iso(), finished_at=None, last_error=None)
        self.reporter.step(step.id, "started")
        try:
            out = self.ctx.call(lambda: self._find(step), f"{step.id} find")
            if out is None:
                out = self._create(step)
                # Known from here on: a failure before the checkpoint still records these ids.
                self.ctx.outputs[step.id] = out
                bind_contextvars(resource_id=step.resource_id(out))
                log.info("created")
                self.state.update(step.id, outputs=out)
                action = "created"
            else:
                bind_contextvars(resource_id=step.resource_id(out))
                log.info("existing" if step.external else "adopted")
                self.state.update(step.id, outputs={**previous, **out})
                action = "converged" if was_done else ("existing" if step.external else "adopted")
            self.ctx.outputs[step.id] = out
            self.reporter.step(step.id, "waiting", step.resource_id(out) or "")
            with phase(CONVERGING):
                out = produced(step, step.wait_ready(self.ctx, out))
            self.ctx.outputs[step.id] = out
            self.state.update(step.id, status=Status.DONE, outputs=out, finished_at=now_iso())
        except BaseException as exc:
            self._fail(step, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise StepFailed(step.id, exc) from exc
        if action != "converged" or out != previous:
            self.changed.add(step.id)
        self.reporter.step(step.id, action, step.resource_id(out) or "")
        self._guarded(step, lambda: self.failpoints.hit(step.id, "after_checkpoint"))

    def _create(self, step: Step) -> Outputs:
        attempts = 0
        # Saved before the call: from now on the resource may exist whatever happens to this process.
        if not self.state.record(step.id).create_attempted:
            self.state.update(step.id, create_attempted=True)
        self.ctx.claimed.add(step.id)

        last: list[BaseException | None] = [None]

        def attempt() -> Outputs:
            # A failed create may still have happened (lost response): re-read before trying again, for a
            # little while, since a new resource can take seconds to show up in listings. A refusal (a 4xx: the
            # role not propagated yet, throttled) applied nothing: one read is enough.
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                refused = last[0] is not None and self.ctx.retry.errors.refused(last[0])
                found = self._find(step) if refused else self._find_settled(step)
                if found is not None:
                    return found
            # Inside the retried call, so a `transient` failpoint behaves like a lost response.
            self.failpoints.hit(step.id, "before_create")
            try:
                out = produced(step, step.create(self.ctx))
            except Exception as exc:
                last[0] = exc
                raise
            self.failpoints.hit(step.id, "after_create")
            return out

        return self.ctx.call(attempt, f"{step.id} create")

    def _find_settled(self, step: Step) -> Outputs | None:
        poll = self.ctx.poll
        waited = 0.0
        for interval in poll.intervals():
            found = self._find(step)
            if found is not None or waited >= poll.visibility_seconds:
                return found
            delay = min(interval, poll.visibility_seconds - waited)
            poll.sleep(delay)
            waited += delay
        return None

    # teardown ------------------------------------------------------------------------------------
    def teardown(self) -> None:
        known = {s.id for s in self.steps}
        unknown = self.unknown_live_records() + sorted({e["step"] for e in self.state.retired if e["step"] not in known})
        if unknown:
            raise StateFileError(
                f"state file {self.state.path} records steps that may still exist but that the spec as run has no "
                f"step for: {', '.join(unknown)}; the state file does not match its spec"
            )
        dependents: dict[str, list[str]] = {s.id: [] for s in self.steps}
        for step in self.steps:
            for need in step.needs:
                dependents[need].append(step.id)
        self._schedule(list(reversed(self.steps)), lambda step: dependents[step.id], self._teardown_step)

    # scheduling ------------------------------------------------------------------------------------
    def _schedule(self, order: list[Step], after: Callable[[Step], Iterable[str]], work: Callable[[Step], None]) -> None:
        """Run `work` for every step once all of `after(step)` have run, up to `parallelism` at once."""

        def run(step: Step) -> None:
            # Every log line of the step carries its id and resource id (resource_id is re-bound once known).
            with self._reading(step), bound_contextvars(step=step.id, kind=step.kind, resource_id=step.resource_id(self.state.record(step.id).outputs)):
                work(step)

        if self.parallelism == 1:
            for step in order:
                run(step)
            return
        # Ready steps start longest-remaining-chain first (their typical durations), then in declaration order.
        dependents: dict[str, list[str]] = {s.id: [] for s in order}
        for step in order:
            for before in after(step):
                if before in dependents:
                    dependents[before].append(step.id)
        typical = {s.id: s.typical_seconds for s in order}
        rank: dict[str, float] = {}
        for step in reversed(order):  # `order` lists a step before what runs after it
            rank[step.id] = typical[step.id] + max((rank[d] for d in dependents[step.id]), default=0.0)
        order = sorted(order, key=lambda s: -rank[s.id])  # stable: declaration order among equals
        pending, finished = {s.id: s for s in order}, set()
        failures: list[StepFailed] = []
        running: dict[Future, Step] = {}
        slots = Slots(self.parallelism, self._interrupted, Interrupted)

        def run_in_slot(step: Step) -> None:
            slots.acquire(rank[step.id])
            try:
                run(step)
            finally:
                slots.release()

        # Ready bookkeeping in O(1) per finished step (a 32-spoke graph has some 700 steps): how many of its
        # `after` each pending step still waits for, and a queue the finished futures report to.
        blocked = {s.id: len(set(after(s))) for s in order}
        waiting_for_me: dict[str, list[Step]] = {}
        for step in order:
            for before in set(after(step)):
                waiting_for_me.setdefault(before, []).append(step)
        ready = [s for s in order if not blocked[s.id]]  # in rank order, as `order` is
        reports: queue.SimpleQueue[Future] = queue.SimpleQueue()
        restore = self._interruptible_sleeps()
        # Threads are cheap and mostly asleep in waits; `slots` bounds the ones working (slots.py).
        pool = ThreadPoolExecutor(max_workers=min(len(order), MAX_THREADS) or 1, thread_name_prefix="step")
        try:
            while True:
                if not failures:
                    for step in ready:
                        del pending[step.id]
                        # Each step runs in a copy of this context: the run's bound log fields go with it.
                        future = pool.submit(contextvars.copy_context().run, run_in_slot, step)
                        running[future] = step
                        future.add_done_callback(reports.put)
                    ready = []
                if not running:
                    break
                future = reports.get()
                step = running.pop(future)
                error = future.exception()
                if error is None:
                    finished.add(step.id)
                    for later in waiting_for_me.get(step.id, ()):
                        blocked[later.id] -= 1
                        if not blocked[later.id]:
                            ready.append(later)
                    ready.sort(key=lambda s: -rank[s.id])
                elif isinstance(error, StepFailed):
                    failures.append(error)
                else:
                    raise error
        except BaseException:
            # Ctrl-C (or a bug): every running step stops at its next wait and records itself interrupted.
            self._interrupted.set()
            raise
        finally:
            pool.shutdown(wait=True)
            restore()
        if failures:
            first = failures[0]
            first.others = [f.step_id for f in failures[1:]]
            raise first
        if pending:  # unreachable with a valid graph (graph.check() checked it)
            raise GraphError(f"steps never became ready: {', '.join(pending)}")

    def _interruptible_sleeps(self) -> Callable[[], None]:
        """Make the waits of worker threads return at once (raising Interrupted) when the run is interrupted."""
        poll, retry = self.ctx.poll, self.ctx.retry
        originals = (poll.sleep, retry.sleep)

        def make(original: Callable[[float], None]) -> Callable[[float], None]:
            def sleep(seconds: float) -> None:
                if self._interrupted.is_set():
                    raise Interrupted()
                with idle():  # a sleeping step gives its slot to another (slots.py)
                    if original is _real_sleep:
                        if self._interrupted.wait(seconds):
                            raise Interrupted()
                    else:  # an injected (test) sleep keeps its own behaviour
                        original(seconds)

            return sleep

        poll.sleep, retry.sleep = make(poll.sleep), make(retry.sleep)

        def restore() -> None:
            poll.sleep, retry.sleep = originals

        return restore

    def _teardown_step(self, step: Step) -> None:
        for out in self.state.retired_of(step.id):  # left by an `up` that stopped before deleting them
            self._delete_retired(step, out)
        record = self.state.record(step.id)
        if record.status in (Status.PENDING, Status.DELETED):
            return
        if step.external:
            self.state.update(step.id, status=Status.DELETED, finished_at=now_iso())
            self.reporter.step(step.id, "released")
            return
        log = self.ctx.log
        self.state.update(step.id, status=Status.IN_PROGRESS, started_at=now_iso(), finished_at=None, last_error=None)
        self.reporter.step(step.id, "deleting", step.resource_id(record.outputs) or "")
        try:
            try:
                found = self.ctx.call(lambda: self._find(step), f"{step.id} find")
            except OwnershipConflict:
                if record.outputs:
                    raise
                # What carries our name is not ours and we never recorded creating it: leave it alone.
                log.warning("not deleting a resource this deployment does not own")
                found = None
            out = {**record.outputs, **(found or {})}
            if found is None and not record.outputs:
                action = "gone"
            else:

                def delete() -> None:
                    self.failpoints.hit(step.id, "before_delete")
                    self._delete(step, out)
                    self.failpoints.hit(step.id, "after_delete")

                # AWS keeps refusing with DependencyViolation for a while after a dependency is gone
                # (its network interfaces are released late): retried, briefly, in the deleting phase.
                with phase(DELETING):
                    self.ctx.call(delete, f"{step.id} delete")
                step.wait_deleted(self.ctx, out)
                log.info("deleted")
                action = "deleted"
            self.state.update(step.id, status=Status.DELETED, finished_at=now_iso())
        except BaseException as exc:
            self._fail(step, exc)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise StepFailed(step.id, exc) from exc
        self.ctx.outputs.pop(step.id, None)
        self.reporter.step(step.id, action)

    def _delete(self, step: Step, out: Outputs) -> None:
        try:
            step.delete(self.ctx, out)
        except Exception as exc:
            if not self.ctx.retry.errors.is_not_found(exc):
                raise

    # plan (orchestrator/planning.py) -------------------------------------------------------------
    def plan(self) -> list[PlanItem]:
        """What `up` would do, from reads only: each step's action, status and drifts."""
        with self._in_memory_facts():
            return planning.plan(self)

    def refuse_replacements(self) -> None:
        """Before `up` changes anything: ReplacementRefused (exit 2) for a drift that cannot converge in place;
        the steps with drift that can are kept in `drifted`."""
        with self._in_memory_facts():
            self.drifted = planning.refuse_replacements(self)

    @contextmanager
    def _in_memory_facts(self) -> Iterator[None]:
        """A find may resolve a fact (the account id); reads only must not write the state file for it (plan holds no
        lock). The fact stays in memory (ctx.facts is the state's): a later save of this run records it."""
        remember = self.ctx.remember
        self.ctx.remember = lambda key, value: None
        try:
            yield
        finally:
            self.ctx.remember = remember

    # helpers -------------------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _reading(step: Step) -> Iterator[None]:
        """While a step runs, ctx.out refuses any output it did not declare in `reads()`."""
        token = DECLARED_READS.set(frozenset(step.reads()))
        try:
            yield
        finally:
            DECLARED_READS.reset(token)

    def _find(self, step: Step) -> Outputs | None:
        return produced(step, step.find(self.ctx))

    def _fail(self, step: Step, exc: BaseException) -> None:
        message = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
        message = scrub(message, secret_values())
        outputs = self.ctx.outputs.get(step.id) or self.state.record(step.id).outputs
        self.state.update(step.id, status=Status.FAILED, last_error=message[:4000], outputs=outputs, finished_at=now_iso())
        self.ctx.log.error("step failed", error=message)
        self.reporter.step(step.id, "failed", message)

    def _guarded(self, step: Step, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise StepFailed(step.id, exc) from exc
