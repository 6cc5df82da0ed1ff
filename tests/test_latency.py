"""The latency profile (sandbox/latency.py), per-resource drawn delays, and the poll policy's cost on long
waits: a 6-minute wait takes at most 40 polls and is noticed within one poll interval."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes import FakeClock
from provision import topologies as specs
from provision.orchestrator.clients import Target
from provision.app.runner import policies
from provision.orchestrator.wait import wait_for
from provision.sandbox.latency import JITTER, REALISTIC, settings_for
from provision.sandbox.settings import SandboxSettings

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "basic.toml"


def test_profile_is_scaled_and_carries_its_scale():
    values = settings_for("realistic", 0.05)
    assert values["firewall_deleting_seconds"] == pytest.approx(1200 * 0.05)
    assert values["workspace_provisioning_seconds"] == pytest.approx(360 * 0.05)
    assert values["time_scale"] == 0.05 and values["latency_jitter"] == JITTER
    assert set(REALISTIC) <= set(values)
    with pytest.raises(ValueError, match="unknown latency profile"):
        settings_for("glacial", 1)
    settings = SandboxSettings()
    settings.update(values)  # every profile key is a real setting


def test_each_resource_draws_its_own_delay_once():
    settings = SandboxSettings()
    settings.update({"nat_gateway_pending_seconds": 100, "latency_jitter": 0.25, "fault_seed": 3})
    draws = [settings.delay("nat_gateway_pending_seconds", f"nat-{i}") for i in range(200)]
    assert all(75 <= d <= 125 for d in draws)
    assert len({round(d, 6) for d in draws}) > 150  # spread, not one value
    assert settings.delay("nat_gateway_pending_seconds", "nat-7") == draws[7]  # stable for a resource
    settings.update({"latency_jitter": 0})
    assert settings.delay("nat_gateway_pending_seconds", "nat-7") == 100


def test_client_intervals_scale_with_a_profiled_sandbox():
    spec = specs.load(EXAMPLE)
    retry, poll = policies(spec, Target("sandbox", {"aws": "http://x", "databricks": "http://y"}, {"databricks": "t"}, time_scale=0.05))
    assert (poll.initial_seconds, poll.max_seconds) == pytest.approx((0.1, 0.5))
    assert (retry.initial_seconds, retry.max_seconds, retry.settling_max_seconds) == pytest.approx((0.05, 1.0, 0.1))
    _, real = policies(spec, Target("real"))
    assert (real.initial_seconds, real.factor, real.max_seconds) == (2.0, 1.5, 10.0)


@pytest.mark.parametrize("ready_at", [360.0, 359.0, 361.5, 1200.0])
def test_a_six_minute_wait_costs_at_most_40_polls_and_is_noticed_within_one_interval(ready_at):
    spec = specs.load(EXAMPLE)
    _, poll = policies(spec, Target("real"))
    clock = FakeClock(start=0.0)
    poll.clock, poll.sleep = clock, clock.sleep
    reads = []

    def read() -> str:
        reads.append(clock.now)
        return "READY" if clock.now >= ready_at else "PROVISIONING"

    wait_for(read, status_of=lambda s: s, target={"READY"}, failure=set(), what="firewall", policy=poll, timeout_seconds=3600)
    if ready_at <= 360:
        assert len(reads) <= 40, len(reads)
    assert reads[-1] - ready_at <= poll.max_seconds  # noticed within one (capped) interval
    assert reads[-2] < ready_at  # and not before it was ready
