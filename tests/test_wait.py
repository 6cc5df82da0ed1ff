"""wait_for on a fake clock: target, failure and timeout states, and a geometric poll schedule."""

from __future__ import annotations


import pytest

from provision.errors import ResourceFailed, WaitTimeout
from provision.orchestrator.wait import PollPolicy, wait_for

from fakes import FakeClock


pytestmark = pytest.mark.usefixtures("no_real_sleep")




class Resource:
    """Reports `before` until `change_at` (fake seconds), then `after`; records when it was read."""

    def __init__(self, clock: FakeClock, before: str, after: str | None = None, change_at: float = float("inf")):
        self.clock, self.before, self.after, self.change_at = clock, before, after, change_at
        self.reads: list[float] = []

    def __call__(self) -> dict:
        self.reads.append(self.clock.now)
        state = self.after if self.clock.now >= self.change_at else self.before
        return {"state": state, "message": f"workspace is {state.lower()}"}


def poll(clock: FakeClock, **kw) -> PollPolicy:
    return PollPolicy(clock=clock, sleep=clock.sleep, **kw)


def wait(resource: Resource, clock: FakeClock, *, timeout: float = 1800.0, **kw):
    return wait_for(
        resource,
        status_of=lambda v: v["state"],
        target={"RUNNING"},
        failure={"FAILED", "BANNED"},
        what="workspace acme",
        policy=poll(clock, timeout_seconds=timeout, **kw),
        detail_of=lambda v: v["message"],
    )


def test_returns_immediately_when_already_at_target():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "RUNNING")
    assert wait(resource, clock)["state"] == "RUNNING"
    assert resource.reads == [0.0]
    assert clock.sleeps == []


def test_returns_the_value_once_target_reached():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "PROVISIONING", "RUNNING", change_at=10)
    assert wait(resource, clock) == {"state": "RUNNING", "message": "workspace is running"}
    assert len(resource.reads) > 1
    assert clock.now >= 10


def test_failure_state_raises_with_detail():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "PROVISIONING", "FAILED", change_at=5)
    with pytest.raises(ResourceFailed) as info:
        wait(resource, clock)
    assert info.value.status == "FAILED"
    assert info.value.detail == "workspace is failed"
    assert str(info.value) == "workspace acme is FAILED: workspace is failed"


def test_timeout_names_the_last_status():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "PROVISIONING")
    with pytest.raises(WaitTimeout) as info:
        wait(resource, clock, timeout=60)
    assert info.value.last_status == "PROVISIONING"
    assert "workspace acme did not become RUNNING within 60s" in str(info.value)
    assert "last status: PROVISIONING" in str(info.value)
    # The last sleep is trimmed so the final poll happens at the deadline, not past it.
    assert clock.now == pytest.approx(60)
    assert resource.reads[-1] == pytest.approx(60)


def test_timeout_argument_overrides_policy():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "PROVISIONING")
    with pytest.raises(WaitTimeout):
        wait_for(
            resource, status_of=lambda v: v["state"], target={"RUNNING"}, failure=set(), what="x",
            policy=poll(clock, timeout_seconds=1800), timeout_seconds=20,
        )
    assert clock.now == pytest.approx(20)


def test_status_reaching_target_at_the_deadline_wins():
    clock = FakeClock(start=0.0)
    resource = Resource(clock, "PROVISIONING", "RUNNING", change_at=60)
    assert wait(resource, clock, timeout=60)["state"] == "RUNNING"


def test_intervals_grow_geometrically_to_the_cap():
    clock = FakeClock(start=0.0)
    with pytest.raises(WaitTimeout):
        wait(Resource(clock, "PROVISIONING"), clock, timeout=120, initial_seconds=2, factor=1.5, max_seconds=15)
    assert clock.sleeps[:7] == pytest.approx([2, 3, 4.5, 6.75, 10.125, 15, 15])
    assert max(clock.sleeps) == 15


def test_on_poll_sees_every_status():
    clock = FakeClock(start=0.0)
    seen: list[str] = []
    resource = Resource(clock, "PROVISIONING", "RUNNING", change_at=4)
    wait_for(
        resource, status_of=lambda v: v["state"], target={"RUNNING"}, failure=set(), what="x",
        policy=poll(clock), on_poll=seen.append,
    )
    assert seen == ["PROVISIONING", "PROVISIONING", "RUNNING"]


def test_six_minute_wait_is_cheap_and_reacts_within_one_interval():
    clock = FakeClock(start=0.0)
    change_at = 360.0
    resource = Resource(clock, "PROVISIONING", "RUNNING", change_at=change_at)
    wait(resource, clock, initial_seconds=2, factor=1.5, max_seconds=15)
    assert len(resource.reads) <= 40
    assert change_at <= clock.now <= change_at + 15
    assert resource.reads[-2] < change_at
