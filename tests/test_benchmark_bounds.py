"""The benchmark's bounds (scripts/bench_bounds.py): the physical bound charges each step only what the sandbox
drew for its resources and its calls, and the chain it reports is the one that sets it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import bench_bounds as bounds  # noqa: E402
import pytest  # noqa: E402

from provision.sandbox.settings import SandboxSettings  # noqa: E402

GRAPH = {"vpc": (), "nat": ("vpc",), "role": (), "ws": ("vpc", "role")}
STEPS = [
    {"id": "vpc", "kind": "ec2.vpc", "outputs": {"vpc_id": "vpc-1"}},
    {"id": "nat", "kind": "ec2.nat_gateway", "outputs": {"nat_gateway_id": "nat-1", "vpc": "vpc-1"}},
    {"id": "role", "kind": "iam.role", "outputs": {"role_arn": "arn:aws:iam::1:role/r"}},
    {"id": "ws", "kind": "databricks.workspace", "outputs": {"workspace_id": 42, "role_arn": "arn:aws:iam::1:role/r"}},
]


def call(step: str | None, service: str, poll: bool = False) -> dict:
    event = {"event": "api call", "service": service, "operation": "Describe", "step": step}
    return {**event, "poll": "waiting"} if poll else event


def test_each_drawn_delay_goes_to_the_step_that_created_its_resource() -> None:
    journal = {
        "delays": [
            {"name": "nat_gateway_pending_seconds", "key": "nat-1", "seconds": 5.0},
            {"name": "iam_propagation_seconds", "key": "arn:aws:iam::1:role/r", "seconds": 0.5},
            {"name": "workspace_provisioning_seconds", "key": "42", "seconds": 18.0},
            {"name": "vpc_endpoint_pending_seconds", "key": "vpce-nobody", "seconds": 4.0},
        ],
        "calls": {"aws": {"count": 4, "seconds": 0.04}, "databricks": {"count": 2, "seconds": 0.06}},
    }
    events = [call(None, "sts"), call("vpc", "ec2"), call("vpc", "ec2"), call("nat", "ec2"), call("nat", "ec2", poll=True),
              {"event": "poll", "step": "nat", "what": "nat-1"}, call("ws", "databricks"), call("ws", "databricks", poll=True),
              {"event": "poll", "step": "ws", "what": "ws"}, call("role", "iam")]
    costs, prefix, unmatched = bounds.step_costs(STEPS, events, journal, teardown=False)
    assert costs["role"].pending_s == 0.5  # the role's creator, not the workspace that names it too
    assert costs["ws"].pending_s == 18.0 and costs["nat"].pending_s == 5.0
    assert costs["vpc"].calls == 2 and costs["nat"].calls == 1  # polls are not the step's own calls
    assert costs["ws"].physical_s == pytest.approx(18.0 + 2 * 0.03)  # one call, and the read that saw the wait end
    assert prefix == pytest.approx(0.01)  # the credentials check before any step
    assert [d["key"] for d in unmatched] == ["vpce-nobody"]
    bound, chain = bounds.physical_bound(GRAPH, costs, prefix, reverse=False)
    assert chain == ["role", "ws"] and bound == pytest.approx(0.01 + costs["role"].physical_s + costs["ws"].physical_s)


def test_teardown_reverses_the_chain_and_adds_released_interfaces_to_the_resource_that_left_them() -> None:
    journal = {"delays": [{"name": "nat_gateway_deleting_seconds", "key": "nat-1", "seconds": 3.0},
                          {"name": "eni_release_seconds", "key": "nat-1/delete", "seconds": 1.0}], "calls": {}}
    costs, _, _ = bounds.step_costs(STEPS, [], journal, teardown=True)
    assert costs["nat"].pending_s == 4.0
    bound, chain = bounds.physical_bound(GRAPH, costs, 0.0, reverse=True)
    assert chain == ["nat", "vpc"] and bound == 4.0


def test_a_bucket_the_run_overdraws_sets_a_floor() -> None:
    events = [{"event": "api call", "service": "ec2", "operation": "CreateVpcEndpoint"}] * 10
    # CreateVpcEndpoint: 4 tokens, 0.3 a second; at time scale 0.5 the sandbox refills twice as fast.
    assert bounds.rate_floors(events, 0.5) == {"CreateVpcEndpoint": round(6 / 0.6, 3)}
    assert bounds.rate_floors(events[:4], 0.5) == {}


def test_the_sandbox_journal_keeps_each_draw_once() -> None:
    settings = SandboxSettings(latency_jitter=0.25, nat_gateway_pending_seconds=100.0)
    first = settings.delay("nat_gateway_pending_seconds", "nat-9")
    assert settings.delay("nat_gateway_pending_seconds", "nat-9") == first
    settings.journal.call("aws", 0.1)
    snapshot = settings.journal.snapshot()
    assert snapshot["delays"] == [{"name": "nat_gateway_pending_seconds", "key": "nat-9", "seconds": round(first, 4)}]
    assert snapshot["calls"] == {"aws": {"count": 1, "seconds": 0.1}}
    assert "journal" not in settings.public_fields()
    settings.journal.reset()
    assert settings.journal.snapshot() == {"delays": [], "calls": {}}
