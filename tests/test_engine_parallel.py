"""The engine's scheduler with parallelism > 1: independent branches really run at once, a step never
starts before the steps it needs are done (nor is deleted before the steps that need it are gone), a
failure lets running branches finish but starts nothing new, and Ctrl-C stops steps that are waiting."""

from __future__ import annotations

import threading
import time
import tomllib
from pathlib import Path

import pytest
from test_engine import EXAMPLE, FakeStep, World

from provision import topologies as spec_module
from provision.errors import StepFailed
from provision.orchestrator.wait import PollPolicy
from provision.state.store import Status


@pytest.fixture
def world(tmp_path: Path) -> World:
    data = tomllib.loads(EXAMPLE.read_text())
    return World(path=tmp_path / "state" / "acme-basic.json", spec=spec_module.from_dict(data, str(EXAMPLE)))


def branches(world: World) -> list[FakeStep]:
    """Two independent chains and a join: a1 -> a2, b1 -> b2, join needs a2 and b2."""
    c = world.cloud
    return [
        FakeStep("a1", c), FakeStep("b1", c), FakeStep("a2", c, needs=("a1",)), FakeStep("b2", c, needs=("b1",)),
        FakeStep("join", c, needs=("a2", "b2")),
    ]


def test_independent_steps_run_at_the_same_time(world: World) -> None:
    # a1 and b1 each wait for the other inside their create: only concurrent runs get through.
    barrier = threading.Barrier(2, timeout=5)
    world.cloud.on_create = lambda sid: barrier.wait() if sid in ("a1", "b1") else None
    world.engine(steps=branches(world), parallelism=4).up()
    assert set(world.statuses().values()) == {Status.DONE}


def test_with_parallelism_one_the_same_steps_run_one_by_one(world: World) -> None:
    barrier = threading.Barrier(2, timeout=0.5)
    world.cloud.on_create = lambda sid: barrier.wait() if sid in ("a1", "b1") else None
    with pytest.raises(StepFailed) as failed:
        world.engine(steps=branches(world), parallelism=1).up()
    assert failed.value.step_id == "a1"  # alone, it waited for a partner that never came


def test_a_step_starts_only_after_the_steps_it_needs_are_done(world: World) -> None:
    steps = branches(world)
    order: list[tuple[str, str]] = []
    lock = threading.Lock()
    engine = world.engine(steps=steps, parallelism=8)
    reporter_step = engine.reporter.step

    def record(step_id: str, phase: str, detail: str = "") -> None:
        with lock:
            order.append((step_id, phase))
        reporter_step(step_id, phase, detail)

    engine.reporter.step = record  # type: ignore[method-assign]
    engine.up()
    position = {event: i for i, event in enumerate(order)}
    for step in steps:
        for need in step.needs:
            assert position[(need, "created")] < position[(step.id, "started")], order

    order.clear()
    engine = world.engine(steps=steps, parallelism=8)
    reporter_step = engine.reporter.step
    engine.reporter.step = record  # type: ignore[method-assign]
    engine.teardown()
    position = {event: i for i, event in enumerate(order)}
    for step in steps:
        for need in step.needs:  # `need` goes only once `step` is deleted
            assert position[(step.id, "deleted")] < position[(need, "deleting")], order
    assert world.cloud.resources == {}


def test_a_failure_lets_running_branches_finish_and_starts_nothing_new(world: World) -> None:
    failed_once = threading.Event()

    def on_create(sid: str) -> None:
        if sid == "a1":
            failed_once.set()
            raise RuntimeError("a1 refused")
        if sid == "b1":  # still running when a1 fails; it must be allowed to finish and checkpoint
            assert failed_once.wait(5)

    world.cloud.on_create = on_create
    with pytest.raises(StepFailed) as failed:
        world.engine(steps=branches(world), parallelism=2).up()
    assert failed.value.step_id == "a1"
    statuses = world.statuses()
    assert statuses["a1"] is Status.FAILED
    assert statuses["b1"] is Status.DONE and world.cloud.owned("b1")
    # Nothing new started after the failure, though b2 had become ready.
    assert statuses["b2"] is Status.PENDING and statuses["a2"] is Status.PENDING and statuses["join"] is Status.PENDING


def test_every_failed_branch_is_reported(world: World) -> None:
    both = threading.Barrier(2, timeout=5)

    def on_create(sid: str) -> None:
        if sid in ("a1", "b1"):
            both.wait()
            raise RuntimeError(f"{sid} refused")

    world.cloud.on_create = on_create
    with pytest.raises(StepFailed) as failed:
        world.engine(steps=branches(world), parallelism=2).up()
    assert {failed.value.step_id, *failed.value.others} == {"a1", "b1"}
    assert world.statuses()["a1"] is Status.FAILED and world.statuses()["b1"] is Status.FAILED


def test_an_interrupt_stops_steps_that_are_waiting(world: World) -> None:
    """Ctrl-C reaches the main thread; running steps stop at their next wait, recorded as interrupted."""
    waiting = threading.Event()

    def on_create(sid: str) -> None:
        if sid == "a1":
            assert waiting.wait(5)
            raise KeyboardInterrupt
        if sid == "b1":
            world.cloud.pending_reads = 10**6  # b1's resource never becomes ready
            waiting.set()

    world.cloud.on_create = on_create
    engine = world.engine(steps=branches(world), parallelism=2)
    # Real sleeps: the interrupt must cut them short.
    engine.ctx.poll = PollPolicy(initial_seconds=0.05, factor=1.5, max_seconds=0.2, timeout_seconds=60, visibility_seconds=0, sleep=time.sleep)
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        engine.up()
    assert time.monotonic() - started < 10
    disk = world.disk()
    assert disk["b1"].status is Status.FAILED and disk["b1"].last_error == "interrupted"
    assert disk["b1"].outputs  # what it created is recorded


def test_when_slots_are_scarce_the_longest_chain_starts_first(world: World) -> None:
    class Slow(FakeStep):
        typical_seconds = 300.0  # e.g. a workspace

    c = world.cloud
    steps = [FakeStep("c1", c), FakeStep("c2", c), FakeStep("c3", c), FakeStep("head", c), Slow("slow", c, needs=("head",))]
    started: list[str] = []
    c.on_create = started.append
    world.engine(steps=steps, parallelism=2).up()
    # "head" leads to the slow step, so it goes before the cheap steps declared ahead of it.
    assert "head" in started[:2], started


def test_steps_asleep_in_a_wait_give_their_slot_to_others(world: World) -> None:
    # Four steps, two slots: each step's resource stays pending until all four have polled it once. Only if a
    # step gives its slot back while it sleeps between polls can the other two start and poll at all.
    polled: set[str] = set()
    working, most = [0], [0]
    lock = threading.Lock()

    class Pending(FakeStep):
        def wait_ready(self, ctx, out):  # type: ignore[no-untyped-def]
            def read() -> dict:
                with lock:
                    working[0] += 1
                    most[0] = max(most[0], working[0])
                    polled.add(self.id)
                    ready = len(polled) == 4
                time.sleep(0.01)  # a call in flight, holding its slot
                with lock:
                    working[0] -= 1
                return {"state": "available" if ready else "pending"}

            ctx.wait(read, status_of=lambda r: r["state"], target={"available"}, what=f"pending {self.id}")
            return out

    steps = [Pending(sid, world.cloud) for sid in ("p1", "p2", "p3", "p4")]
    world.engine(steps=steps, parallelism=2).up()
    assert set(world.statuses().values()) == {Status.DONE}
    assert most[0] <= 2  # never more than two steps calling at once
