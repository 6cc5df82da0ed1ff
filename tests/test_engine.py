"""The step engine against an in-memory cloud: ordering, checkpoints, adoption, retries, drift, teardown,
failpoints and plan. No AWS, no real sleeping (the retry and poll policies run on a fake clock)."""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from botocore.exceptions import ClientError
from fakes import FakeClock
from structlog.contextvars import merge_contextvars
from structlog.testing import CapturingLogger

from provision import topologies as spec_module
from provision.clouds import error_rules
from provision.errors import GraphError, InjectedFault, StepFailed
from provision.orchestrator.clients import CallStats
from provision.orchestrator.engine import Engine
from provision.orchestrator.failpoints import Failpoints
from provision.orchestrator.graph import ordered
from provision.orchestrator.retry import RetryPolicy
from provision.orchestrator.step import Context, Outputs, Ref, Step, single
from provision.orchestrator.wait import PollPolicy
from provision.state.store import StateFile, Status

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "basic.toml"
ORDER = ["vpc", "subnet.0", "subnet.1", "nat.0"]


# fakes -------------------------------------------------------------------------------------------


def client_error(code: str, status: int = 400, message: str = "fake", operation: str = "FakeOperation") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def not_found() -> ClientError:
    return client_error("InvalidVpcID.NotFound", message="The vpc ID does not exist")




class FakeCloud:
    """Resources by id, each tagged with the step that owns it. Every API call is logged as (op, step)."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.seq = 0
        # (op, step) -> errors raised before the call takes effect, one per call, in order.
        self.fail_before: dict[tuple[str, str], list[BaseException]] = {}
        # (op, step) -> errors raised after the call took effect (a lost response).
        self.fail_after: dict[tuple[str, str], list[BaseException]] = {}
        self.pending_reads = 0  # how many readiness reads of a new resource say "pending"
        self.on_create: Any = None

    def _enter(self, op: str, step_id: str) -> None:
        self.calls.append((op, step_id))
        queue = self.fail_before.get((op, step_id))
        if queue:
            raise queue.pop(0)

    def _leave(self, op: str, step_id: str) -> None:
        queue = self.fail_after.get((op, step_id))
        if queue:
            raise queue.pop(0)

    def make(self, step_id: str, parents: dict[str, str] | None = None) -> str:
        """A resource owned by step_id, created directly (no call logged)."""
        self.seq += 1
        rid = f"r-{self.seq}"
        self.resources[rid] = {"step": step_id, "parents": dict(parents or {}), "reads_left": self.pending_reads}
        return rid

    def owned(self, step_id: str) -> list[str]:
        return [rid for rid, r in self.resources.items() if r["step"] == step_id]

    def read(self, rid: str) -> dict[str, Any]:
        resource = self.resources.get(rid)
        if resource is None:
            raise not_found()
        if resource["reads_left"] > 0:
            resource["reads_left"] -= 1
            return {"state": "pending"}
        return {"state": "available"}

    def ops(self, op: str) -> list[str]:
        return [sid for o, sid in self.calls if o == op]

    def of(self, step_id: str) -> list[str]:
        return [o for o, sid in self.calls if sid == step_id]


class FakeStep(Step):
    kind = "fake.resource"
    produces = ("res_id", "ready")

    def __init__(self, step_id: str, cloud: FakeCloud, needs: tuple[str, ...] = ()):
        super().__init__(step_id, needs)
        self.cloud = cloud
        self.parents = [Ref(n, "res_id") for n in needs]

    def find(self, ctx: Context) -> Outputs | None:
        self.cloud._enter("find", self.id)
        found = single([{"res_id": rid} for rid in self.cloud.owned(self.id)], "fake resource", self.id)
        self.cloud._leave("find", self.id)
        return found

    def create(self, ctx: Context) -> Outputs:
        self.cloud._enter("create", self.id)
        if self.cloud.on_create:
            self.cloud.on_create(self.id)
        rid = self.cloud.make(self.id, {ref.step: ctx.out(ref) for ref in self.parents})
        self.cloud._leave("create", self.id)
        return {"res_id": rid}

    def wait_ready(self, ctx: Context, out: Outputs) -> Outputs:
        self.cloud.calls.append(("wait_ready", self.id))
        rid = out["res_id"]
        ctx.wait(lambda: self.cloud.read(rid), status_of=lambda r: r["state"], target={"available"}, failure={"failed"}, what=f"fake {rid}")
        return {**out, "ready": True}

    def delete(self, ctx: Context, out: Outputs) -> None:
        self.cloud._enter("delete", self.id)
        if out["res_id"] not in self.cloud.resources:
            raise not_found()
        del self.cloud.resources[out["res_id"]]
        self.cloud._leave("delete", self.id)

    def wait_deleted(self, ctx: Context, out: Outputs) -> None:
        ctx.wait_gone(lambda: self.cloud.read(out["res_id"]), what=f"fake {out['res_id']}")


def chain(cloud: FakeCloud) -> list[Step]:
    return [
        FakeStep("vpc", cloud),
        FakeStep("subnet.0", cloud, needs=("vpc",)),
        FakeStep("subnet.1", cloud, needs=("vpc",)),
        FakeStep("nat.0", cloud, needs=("subnet.0",)),
    ]


class RecordingReporter:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def step(self, step_id: str, phase: str, detail: str = "") -> None:
        self.events.append((step_id, phase, detail))

    def phases(self, step_id: str) -> list[str]:
        return [phase for sid, phase, _ in self.events if sid == step_id]


class StubClients:
    def __init__(self) -> None:
        self.stats = CallStats()

    def aws(self, service: str) -> Any:
        raise AssertionError(f"engine tests must not touch AWS ({service})")

    @property
    def account(self) -> Any:
        raise AssertionError("engine tests must not touch Databricks")


@dataclass
class World:
    path: Path
    spec: Any
    cloud: FakeCloud = field(default_factory=FakeCloud)
    clock: FakeClock = field(default_factory=FakeClock)
    ctx: Context | None = None
    logger: CapturingLogger | None = None
    reporter: RecordingReporter | None = None

    def state(self) -> StateFile:
        """The state as a new process would see it: from disk if written, else fresh."""
        if self.path.exists():
            return StateFile.load(self.path)
        return StateFile.new(self.path, deployment=self.spec.name, cloud="aws", target="sandbox", spec=self.spec.to_json(), spec_path=None)

    def new_ctx(self) -> Context:
        self.logger = CapturingLogger()
        return Context(
            spec=self.spec,
            clients=StubClients(),  # type: ignore[arg-type]
            retry=RetryPolicy(deadline_seconds=60, initial_seconds=1, max_seconds=4, clock=self.clock, sleep=self.clock.sleep, rng=random.Random(7), errors=error_rules()),
            poll=PollPolicy(initial_seconds=1, factor=2, max_seconds=4, timeout_seconds=120, visibility_seconds=0, clock=self.clock, sleep=self.clock.sleep),
            # Steps' log context may come from bind() or from structlog's contextvars: capture both.
            log=structlog.wrap_logger(self.logger, processors=[merge_contextvars]),
        )

    def engine(self, failpoints: Failpoints | None = None, steps: list[Step] | None = None, parallelism: int = 1) -> Engine:
        """Parallelism 1 unless asked: these tests pin exact call orders (test_engine_parallel.py covers the rest)."""
        self.ctx = self.new_ctx()
        self.reporter = RecordingReporter()
        return Engine(steps if steps is not None else chain(self.cloud), self.state(), self.ctx, failpoints=failpoints,
                      reporter=self.reporter, parallelism=parallelism)

    def seed(self, records: dict[str, tuple[Status, Outputs]]) -> None:
        state = self.state()
        state.ensure_steps([(sid, FakeStep.kind) for sid in ORDER])
        for sid, (status, outputs) in records.items():
            state.update(sid, status=status, outputs=outputs, attempts=1)
        state.save()

    def disk(self) -> dict[str, Any]:
        return StateFile.load(self.path).steps

    def statuses(self) -> dict[str, Status]:
        return {sid: rec.status for sid, rec in self.disk().items()}

    def log_events(self, method: str) -> list[dict[str, Any]]:
        assert self.logger is not None
        return [c.kwargs for c in self.logger.calls if c.method_name == method]


pytestmark = pytest.mark.usefixtures("no_real_sleep")


@pytest.fixture
def world(tmp_path: Path) -> World:
    data = tomllib.loads(EXAMPLE.read_text())
    return World(path=tmp_path / "state" / "acme-basic.json", spec=spec_module.from_dict(data, str(EXAMPLE)))


# up ----------------------------------------------------------------------------------------------


def test_up_creates_each_step_once_in_order_and_checkpoints(world: World) -> None:
    world.cloud.pending_reads = 1
    snapshots: dict[str, dict[str, str]] = {}
    world.cloud.on_create = lambda sid: snapshots.__setitem__(sid, {k: v.status.value for k, v in world.disk().items()})

    outputs = world.engine().up()

    assert world.cloud.calls == [(op, sid) for sid in ORDER for op in ("find", "create", "wait_ready")]
    assert list(outputs) == ORDER
    for sid in ORDER:
        (rid,) = world.cloud.owned(sid)
        assert outputs[sid] == {"res_id": rid, "ready": True}
    # Dependencies got the outputs of the steps they need.
    res = lambda sid: outputs[sid]["res_id"]  # noqa: E731
    assert world.cloud.resources[res("subnet.0")]["parents"] == {"vpc": res("vpc")}
    assert world.cloud.resources[res("nat.0")]["parents"] == {"subnet.0": res("subnet.0")}
    # Every earlier step was checkpointed done on disk before the next one was created.
    assert snapshots["vpc"] == {"vpc": "in_progress", "subnet.0": "pending", "subnet.1": "pending", "nat.0": "pending"}
    assert snapshots["subnet.1"] == {"vpc": "done", "subnet.0": "done", "subnet.1": "in_progress", "nat.0": "pending"}
    assert snapshots["nat.0"] == {"vpc": "done", "subnet.0": "done", "subnet.1": "done", "nat.0": "in_progress"}

    disk = world.disk()
    assert list(disk) == ORDER
    for sid in ORDER:
        record = disk[sid]
        assert record.status is Status.DONE
        assert record.outputs == outputs[sid]
        assert record.attempts == 1
        assert record.last_error is None
        assert record.finished_at is not None
    # Readiness was polled on the fake clock: one "pending" read per resource, one fake sleep each.
    assert world.clock.sleeps == [1, 1, 1, 1]
    assert sum(n for (service, _), n in world.ctx.clients.stats.calls.items() if service == "poll") == 8

    # A second run, as a new process over the same state file: one find per done step, nothing else.
    world.cloud.calls.clear()
    again = world.engine().up()
    assert world.cloud.calls == [("find", sid) for sid in ORDER]
    assert again == outputs
    assert world.statuses() == {sid: Status.DONE for sid in ORDER}
    assert all(rec.attempts == 1 for rec in world.disk().values())
    assert all(world.reporter.phases(sid) == ["kept"] for sid in ORDER)
    assert len(world.cloud.resources) == 4


def test_in_progress_step_whose_resource_exists_is_adopted_not_recreated(world: World) -> None:
    # A crash right after subnet.0's create returned, before its outputs were checkpointed.
    vpc = world.cloud.make("vpc")
    subnet = world.cloud.make("subnet.0", {"vpc": vpc})
    world.seed({"vpc": (Status.DONE, {"res_id": vpc, "ready": True}), "subnet.0": (Status.IN_PROGRESS, {})})

    outputs = world.engine().up()

    assert world.cloud.ops("create") == ["subnet.1", "nat.0"]
    assert world.cloud.owned("subnet.0") == [subnet]
    assert outputs["subnet.0"] == {"res_id": subnet, "ready": True}
    assert world.cloud.resources[outputs["nat.0"]["res_id"]]["parents"] == {"subnet.0": subnet}
    record = world.disk()["subnet.0"]
    assert record.status is Status.DONE
    assert record.outputs == {"res_id": subnet, "ready": True}
    assert record.attempts == 2
    assert "adopted" in world.reporter.phases("subnet.0")
    assert "created" not in world.reporter.phases("subnet.0")


def test_terminal_failure_marks_step_failed_and_a_later_run_completes(world: World) -> None:
    world.cloud.fail_before[("create", "subnet.1")] = [client_error("InvalidParameterValue", message="bad CIDR")]

    with pytest.raises(StepFailed) as failed:
        world.engine().up()

    assert failed.value.step_id == "subnet.1"
    assert isinstance(failed.value.cause, ClientError)
    assert world.cloud.ops("create") == ["vpc", "subnet.0", "subnet.1"]  # terminal: not retried
    assert world.clock.sleeps == []
    disk = world.disk()
    assert disk["vpc"].status is Status.DONE and disk["subnet.0"].status is Status.DONE
    assert disk["subnet.1"].status is Status.FAILED
    assert "InvalidParameterValue" in disk["subnet.1"].last_error
    assert disk["subnet.1"].finished_at is not None
    assert disk["nat.0"].status is Status.PENDING
    assert disk["nat.0"].attempts == 0
    assert world.cloud.of("nat.0") == []
    assert world.log_events("error") and world.log_events("error")[-1]["step"] == "subnet.1"

    # The cause is fixed (the injected error was consumed); a new run finishes without duplicates.
    world.cloud.calls.clear()
    outputs = world.engine().up()

    assert world.cloud.ops("create") == ["subnet.1", "nat.0"]
    assert {sid: len(world.cloud.owned(sid)) for sid in ORDER} == {sid: 1 for sid in ORDER}
    disk = world.disk()
    assert all(rec.status is Status.DONE for rec in disk.values())
    assert disk["subnet.1"].last_error is None
    assert disk["subnet.1"].attempts == 2
    assert disk["subnet.1"].outputs == outputs["subnet.1"]


def test_transient_error_after_a_create_that_happened_rereads_instead_of_creating_again(world: World) -> None:
    # Lost response: the create took effect, but the caller saw a 500.
    world.cloud.fail_after[("create", "subnet.0")] = [client_error("InternalError", status=500)]

    outputs = world.engine().up()

    assert world.cloud.of("subnet.0") == ["find", "create", "find", "wait_ready"]
    (rid,) = world.cloud.owned("subnet.0")
    assert outputs["subnet.0"] == {"res_id": rid, "ready": True}
    assert world.disk()["subnet.0"].status is Status.DONE
    assert len(world.clock.sleeps) == 1
    retries = world.log_events("warning")
    assert [e["what"] for e in retries if e["event"] == "retrying"] == ["subnet.0 create"]


def test_transient_error_before_the_create_took_effect_creates_once_on_retry(world: World) -> None:
    world.cloud.fail_before[("create", "vpc")] = [client_error("RequestLimitExceeded"), client_error("Throttling")]

    world.engine().up()

    assert world.cloud.of("vpc") == ["find", "create", "find", "create", "find", "create", "wait_ready"]
    assert len(world.cloud.owned("vpc")) == 1
    assert len(world.clock.sleeps) == 2
    assert world.statuses()["vpc"] is Status.DONE


def test_done_step_whose_resource_vanished_is_created_again(world: World) -> None:
    first = world.engine().up()
    old = first["subnet.1"]["res_id"]
    del world.cloud.resources[old]  # drift: deleted out of band
    world.cloud.calls.clear()

    second = world.engine().up()

    assert world.cloud.ops("create") == ["subnet.1"]
    (new,) = world.cloud.owned("subnet.1")
    assert new != old
    assert second["subnet.1"] == {"res_id": new, "ready": True}
    record = world.disk()["subnet.1"]
    assert record.status is Status.DONE and record.outputs == {"res_id": new, "ready": True}
    for sid in ("vpc", "subnet.0", "nat.0"):
        assert world.cloud.of(sid) == ["find"]
        assert second[sid] == first[sid]
    assert any(e["event"].startswith("resource gone") for e in world.log_events("warning"))


# teardown ----------------------------------------------------------------------------------------


def test_teardown_deletes_in_reverse_order_and_marks_deleted(world: World) -> None:
    world.engine().up()
    world.cloud.calls.clear()

    engine = world.engine()
    engine.teardown()

    assert world.cloud.ops("delete") == list(reversed(ORDER))
    # Each step is found, deleted and confirmed gone before the next one is touched.
    assert [sid for op, sid in world.cloud.calls] == [sid for sid in reversed(ORDER) for _ in ("find", "delete")]
    assert world.cloud.resources == {}
    assert world.statuses() == {sid: Status.DELETED for sid in ORDER}
    assert world.ctx.outputs == {}


def test_teardown_counts_not_found_on_delete_as_done(world: World) -> None:
    outputs = world.engine().up()
    del world.cloud.resources[outputs["subnet.0"]["res_id"]]  # already gone
    world.cloud.calls.clear()

    world.engine().teardown()

    assert world.cloud.ops("delete") == list(reversed(ORDER))  # subnet.0's delete was attempted, said NotFound
    assert world.statuses() == {sid: Status.DELETED for sid in ORDER}
    assert world.cloud.resources == {}


def test_teardown_deletes_a_created_but_never_checkpointed_resource_and_leaves_pending_alone(world: World) -> None:
    vpc = world.cloud.make("vpc")
    orphan = world.cloud.make("subnet.0", {"vpc": vpc})
    world.seed({"vpc": (Status.DONE, {"res_id": vpc, "ready": True}), "subnet.0": (Status.IN_PROGRESS, {})})

    world.engine().teardown()

    assert world.cloud.ops("delete") == ["subnet.0", "vpc"]
    assert orphan not in world.cloud.resources and vpc not in world.cloud.resources
    assert world.cloud.of("subnet.1") == [] and world.cloud.of("nat.0") == []
    statuses = world.statuses()
    assert statuses["subnet.0"] is Status.DELETED and statuses["vpc"] is Status.DELETED
    assert statuses["subnet.1"] is Status.PENDING and statuses["nat.0"] is Status.PENDING


def test_teardown_of_a_failed_step_whose_create_never_happened_deletes_nothing(world: World) -> None:
    world.cloud.fail_before[("create", "subnet.0")] = [client_error("InvalidParameterValue")]
    with pytest.raises(StepFailed):
        world.engine().up()
    world.cloud.calls.clear()

    world.engine().teardown()

    assert world.cloud.ops("delete") == ["vpc"]
    assert world.cloud.of("subnet.0") == ["find"]
    assert world.statuses() == {"vpc": Status.DELETED, "subnet.0": Status.DELETED, "subnet.1": Status.PENDING, "nat.0": Status.PENDING}


def test_teardown_resumes_after_a_failure_midway(world: World) -> None:
    outputs = world.engine().up()
    world.cloud.fail_before[("delete", "subnet.0")] = [client_error("UnauthorizedOperation", message="not authorized")]
    world.cloud.calls.clear()

    with pytest.raises(StepFailed) as failed:
        world.engine().teardown()

    assert failed.value.step_id == "subnet.0"
    assert world.cloud.ops("delete") == ["nat.0", "subnet.1", "subnet.0"]
    assert world.cloud.of("vpc") == []
    disk = world.disk()
    assert disk["nat.0"].status is Status.DELETED and disk["subnet.1"].status is Status.DELETED
    assert disk["subnet.0"].status is Status.FAILED
    assert "UnauthorizedOperation" in disk["subnet.0"].last_error
    assert disk["subnet.0"].outputs["res_id"] == outputs["subnet.0"]["res_id"]  # still known, for the retry
    assert disk["vpc"].status is Status.DONE
    assert sorted(world.cloud.resources) == sorted([outputs["vpc"]["res_id"], outputs["subnet.0"]["res_id"]])

    world.cloud.calls.clear()
    world.engine().teardown()

    assert world.cloud.ops("delete") == ["subnet.0", "vpc"]
    assert world.cloud.of("nat.0") == [] and world.cloud.of("subnet.1") == []
    assert world.statuses() == {sid: Status.DELETED for sid in ORDER}
    assert world.cloud.resources == {}


# failpoints --------------------------------------------------------------------------------------


def test_failpoint_after_create_leaves_resource_unrecorded_and_resume_adopts_it(world: World) -> None:
    with pytest.raises(StepFailed) as failed:
        world.engine(Failpoints("subnet.0:after_create=error")).up()

    assert isinstance(failed.value.cause, InjectedFault)
    assert world.cloud.ops("create") == ["vpc", "subnet.0"]
    (created,) = world.cloud.owned("subnet.0")
    record = world.disk()["subnet.0"]
    assert record.status is Status.FAILED  # never checkpointed as done
    # At most the bare create outputs may be recorded (for teardown); wait_ready never ran.
    assert record.outputs in ({}, {"res_id": created})
    assert "InjectedFault" in record.last_error
    assert world.statuses()["subnet.1"] is Status.PENDING
    world.cloud.calls.clear()

    outputs = world.engine().up()

    assert world.cloud.ops("create") == ["subnet.1", "nat.0"]
    assert world.cloud.owned("subnet.0") == [created]
    assert outputs["subnet.0"] == {"res_id": created, "ready": True}
    assert world.disk()["subnet.0"].status is Status.DONE
    assert "adopted" in world.reporter.phases("subnet.0")


def test_failpoint_after_checkpoint_leaves_step_done(world: World) -> None:
    with pytest.raises(StepFailed) as failed:
        world.engine(Failpoints("subnet.0:after_checkpoint=error")).up()

    assert failed.value.step_id == "subnet.0"
    (created,) = world.cloud.owned("subnet.0")
    disk = world.disk()
    assert disk["subnet.0"].status is Status.DONE
    assert disk["subnet.0"].outputs == {"res_id": created, "ready": True}
    assert disk["subnet.1"].status is Status.PENDING
    world.cloud.calls.clear()

    world.engine().up()

    assert world.cloud.of("subnet.0") == ["find"]
    assert world.cloud.ops("create") == ["subnet.1", "nat.0"]
    assert world.statuses() == {sid: Status.DONE for sid in ORDER}


@pytest.mark.parametrize(
    ("point", "calls", "retries"),
    [
        # The fault fires before each of the first two creates; the third attempt creates.
        ("before_create", ["find", "find", "find", "create", "wait_ready"], 2),
        # A lost response: the create happened, so the retry's find adopts it and the second fault never fires.
        ("after_create", ["find", "create", "find", "wait_ready"], 1),
    ],
)
def test_transient_failpoint_around_create_is_retried_not_fatal(world: World, point: str, calls: list[str], retries: int) -> None:
    # failpoints.py: `transient` is "an error the retry policy retries" (example: vpc:before_create=transient*2).
    world.engine(Failpoints(f"subnet.0:{point}=transient*2")).up()

    assert world.statuses() == {sid: Status.DONE for sid in ORDER}
    assert world.cloud.of("subnet.0") == calls
    assert len(world.cloud.owned("subnet.0")) == 1
    assert len(world.clock.sleeps) == retries


def test_transient_failpoint_before_delete_is_retried_not_fatal(world: World) -> None:
    world.engine().up()

    world.engine(Failpoints("subnet.0:before_delete=transient*1")).teardown()

    assert world.statuses() == {sid: Status.DELETED for sid in ORDER}
    assert world.cloud.resources == {}
    assert world.cloud.ops("delete") == list(reversed(ORDER))
    assert len(world.clock.sleeps) == 1


# plan --------------------------------------------------------------------------------------------


def test_plan_reports_create_adopt_keep_recreate_and_changes_nothing(world: World) -> None:
    vpc = world.cloud.make("vpc")
    subnet = world.cloud.make("subnet.1", {"vpc": vpc})
    world.seed(
        {
            "vpc": (Status.DONE, {"res_id": vpc, "ready": True}),  # exists: keep
            "subnet.0": (Status.DONE, {"res_id": "r-gone", "ready": True}),  # vanished: recreate
            "subnet.1": (Status.IN_PROGRESS, {}),  # exists, never checkpointed: adopt
            # nat.0: pending and absent: create
        }
    )
    before = {sid: rec.to_json() for sid, rec in world.disk().items()}
    resources_before = {k: dict(v) for k, v in world.cloud.resources.items()}

    items = world.engine().plan()

    assert [(i.step_id, i.kind, i.action) for i in items] == [
        ("vpc", "fake.resource", "keep"),
        ("subnet.0", "fake.resource", "recreate"),
        ("subnet.1", "fake.resource", "adopt"),
        ("nat.0", "fake.resource", "create"),
    ]
    assert [i.resource_id for i in items] == [vpc, "r-gone", subnet, None]
    assert world.cloud.ops("create") == [] and world.cloud.ops("delete") == []
    assert world.cloud.resources == resources_before
    assert {sid: rec.to_json() for sid, rec in world.disk().items()} == before


# graph -------------------------------------------------------------------------------------------


def test_ordered_accepts_a_valid_declared_order() -> None:
    steps = chain(FakeCloud())
    assert ordered(steps) == steps


def test_ordered_rejects_duplicate_ids() -> None:
    cloud = FakeCloud()
    with pytest.raises(GraphError, match="duplicate step id vpc"):
        ordered([FakeStep("vpc", cloud), FakeStep("subnet.0", cloud, needs=("vpc",)), FakeStep("vpc", cloud)])


def test_ordered_rejects_needs_on_an_undeclared_step() -> None:
    cloud = FakeCloud()
    with pytest.raises(GraphError, match="subnet.0"):
        ordered([FakeStep("vpc", cloud), FakeStep("subnet.0", cloud, needs=("igw",))])


def test_ordered_rejects_needs_on_a_later_step() -> None:
    cloud = FakeCloud()
    with pytest.raises(GraphError, match="needs \\['vpc'\\]"):
        ordered([FakeStep("subnet.0", cloud, needs=("vpc",)), FakeStep("vpc", cloud)])


def test_engine_refuses_a_broken_graph_before_touching_state(world: World) -> None:
    cloud = world.cloud
    with pytest.raises(GraphError):
        world.engine(steps=[FakeStep("vpc", cloud), FakeStep("vpc", cloud)])
    assert not world.path.exists()
    assert cloud.calls == []


def test_dependency_violation_during_delete_is_waited_out_briefly(world: World) -> None:
    world.engine().up()
    # AWS releases a deleted dependency's network interfaces late: the delete is refused a few times.
    world.cloud.fail_before[("delete", "subnet.0")] = [client_error("DependencyViolation", message="has dependencies")] * 3

    world.engine().teardown()

    assert world.statuses() == {sid: Status.DELETED for sid in ORDER}
    assert world.cloud.resources == {}
    reasons = [e["reason"] for e in world.log_events("warning") if e["event"] == "retrying"]
    assert reasons == ["dependency still being released"] * 3


def test_persistent_dependency_violation_fails_within_its_own_limit(world: World) -> None:
    world.engine().up()
    world.cloud.fail_before[("delete", "subnet.0")] = [client_error("DependencyViolation", message="has dependencies")] * 10_000
    engine = world.engine()
    engine.ctx.retry.reason_limits["dependency still being released"] = 30.0
    started = world.clock()

    with pytest.raises(StepFailed) as failed:
        engine.teardown()

    assert failed.value.step_id == "subnet.0"
    assert "DependencyViolation" in str(failed.value)
    assert 30.0 <= world.clock() - started < engine.ctx.retry.deadline_seconds
