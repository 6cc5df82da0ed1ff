"""The Terraform model (scripts/terraform_model.py, docs/terraform-model.md): pure arithmetic on a graph."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "scripts" / "terraform_model.py"
_SPEC = importlib.util.spec_from_file_location("terraform_model", _PATH)
tm = importlib.util.module_from_spec(_SPEC)
sys.modules.setdefault("terraform_model", tm)
_SPEC.loader.exec_module(tm)


def cost(kind: str, pending: float = 0.0, calls: int = 1, call_s: float = 0.0) -> tm.StepCost:
    return tm.StepCost(kind=kind, pending_s=pending, calls=calls, call_s=call_s)


def test_parallelism_ten_limits_concurrency():
    graph = {f"b{i}": () for i in range(11)}
    costs = {sid: cost("s3.bucket", pending=10.0) for sid in graph}
    eleven = tm.model(graph, costs, topology="test", operation="up", time_scale=1.0)
    assert eleven["seconds"] == pytest.approx(20.0)  # ten at once, then the eleventh
    ten = {sid: graph[sid] for sid in list(graph)[:10]}
    assert tm.model(ten, costs, topology="test", operation="up", time_scale=1.0)["seconds"] == pytest.approx(10.0)


def test_poll_schedule_rounds_pending_time_up():
    # StateChangeConf's default backoff: refreshes at 0, 0.2, 0.6, 1.4, 3.0, 6.2, 12.6, then every 10 s.
    assert tm.settle(100.0, tm.DEFAULT, 0.0, 1.0) == pytest.approx(102.6)
    assert tm.settle(3.0, tm.DEFAULT, 0.0, 1.0) == pytest.approx(3.0)
    # waitVPCEndpointAvailable: Delay 5 s, MinTimeout 5 s, then 10 s steps.
    assert tm.settle(90.0, tm.VPCE, 0.0, 1.0) == pytest.approx(90.0)
    assert tm.settle(91.0, tm.VPCE, 0.0, 1.0) == pytest.approx(100.0)
    # The schedule scales with the replica; a refresh's own latency adds up.
    assert tm.settle(5.0, tm.DEFAULT, 0.0, 0.05) == pytest.approx(102.6 * 0.05)
    assert tm.settle(0.0, tm.ATTR, 0.1, 1.0) == pytest.approx(10.1)
    # Twice in a row (ContinuousTargetOccurence 2): one more read 0.1 s later.
    assert tm.settle(0.0, tm.Poll(repeats=2), 0.0, 1.0) == pytest.approx(0.1)
    graph = {"nat.0": ()}
    out = tm.model(graph, {"nat.0": cost("ec2.nat_gateway", pending=100.0)}, topology="test", operation="up",
                   time_scale=1.0)
    assert out["seconds"] == pytest.approx(102.6)


def test_arm_polls_follow_retry_after():
    # A PUT's Retry-After is the whole seconds left (at most 10), kept for every poll of the status resource.
    assert tm.settle_arm(300.0, 0.0, 1.0, countdown=False) == pytest.approx(300.0)
    assert tm.settle_arm(5.5, 0.0, 1.0, countdown=False) == pytest.approx(10.0)
    # A DELETE's 202s count down, so the last poll lands when the operation is done.
    assert tm.settle_arm(5.5, 0.0, 1.0, countdown=True) == pytest.approx(5.5)


def _privatelink() -> tuple[dict, dict]:
    graph = {
        "vpce.workspace": (),
        "dbx.vpce.workspace": ("vpce.workspace",),
        "vpce.workspace.dns": ("vpce.workspace", "dbx.vpce.workspace"),
        "dbx.network": ("dbx.vpce.workspace", "vpce.workspace.dns"),
        "dbx.workspace": ("dbx.network",),
    }
    costs = {
        "vpce.workspace": cost("ec2.vpc_endpoint", 90.0, 2, 0.1),
        "dbx.vpce.workspace": cost("databricks.vpc_endpoint", 0.0, 2, 0.3),
        "vpce.workspace.dns": cost("ec2.vpc_endpoint_private_dns", 30.0, 2, 0.1),
        "dbx.network": cost("databricks.network", 0.0, 2, 0.3),
        "dbx.workspace": cost("databricks.workspace", 360.0, 2, 0.3),
    }
    return graph, costs


def test_privatelink_needs_a_second_apply():
    graph, costs = _privatelink()
    out = tm.model(graph, costs, topology="privatelink", operation="up", time_scale=1.0)
    assert out["applies"] == 2
    assert [p["phase"] for p in out["phases"]] == ["apply", "apply 2: refresh", "apply 2: private DNS on the endpoints"]
    # The first apply has no private-DNS step; the second refreshes the state and updates the endpoint.
    assert "vpce.workspace.dns" not in out["critical"]
    assert out["single_apply_seconds"] < out["seconds"]
    second = out["phases"][2]["seconds"]
    assert second == pytest.approx(2 * 0.1 + tm.settle(30.0, tm.VPCE, 0.1, 1.0), abs=1e-3)
    # A guide with private DNS on creation (the SRA) applies once.
    assert tm.model(graph, costs, topology="enterprise", operation="up", time_scale=1.0)["applies"] == 1


@pytest.mark.parametrize("scale", [1.0, 0.05])
def test_sleeps_appear_and_scale(scale):
    graph = {"iam.crossaccount": (), "dbx.workspace": ("iam.crossaccount",)}
    costs = {"iam.crossaccount": cost("iam.role"), "dbx.workspace": cost("databricks.workspace")}
    out = tm.model(graph, costs, topology="basic", operation="up", time_scale=scale)
    assert out["sleeps_s"] == pytest.approx(10.0 * scale)
    assert out["critical"] == ["iam.crossaccount", "time_sleep.wait", "dbx.workspace"]
    assert out["seconds"] == pytest.approx(10.0 * scale)
    assert any(a.startswith("time_sleep.wait: 10 s") for a in out["assumptions"])
    # The SRA's serverless variant waits 60 s after the workspace before workspace settings.
    graph = {"dbx.workspace": (), "uc.default_namespace": ("dbx.workspace",)}
    costs = {"dbx.workspace": cost("databricks.workspace"), "uc.default_namespace": cost("databricks.default_namespace")}
    out = tm.model(graph, costs, topology="serverless", operation="up", time_scale=scale)
    assert out["critical_sleeps_s"] == pytest.approx(60.0 * scale)


def test_iam_propagation_overlaps_the_sleep():
    graph = {"iam.crossaccount": (), "dbx.credentials": ("iam.crossaccount",), "dbx.workspace": ("dbx.credentials",)}
    costs = {"iam.crossaccount": cost("iam.role", pending=15.0), "dbx.credentials": cost("databricks.credentials"),
             "dbx.workspace": cost("databricks.workspace")}
    rows = {r["id"]: r for r in tm.schedule(graph, costs, topology="basic", operation="up", time_scale=1.0)}
    assert rows["dbx.credentials"]["finish"] == pytest.approx(15.0)  # propagation, not the 10 s sleep on top
    assert rows["dbx.workspace"]["finish"] == pytest.approx(15.0)


def test_teardown_reverses_the_graph():
    graph = {"vpc": (), "subnet.a": ("vpc",), "nat.0": ("subnet.a",)}
    costs = {"vpc": cost("ec2.vpc", call_s=0.1), "subnet.a": cost("ec2.subnet", call_s=0.1),
             "nat.0": cost("ec2.nat_gateway", pending=60.0, call_s=0.1)}
    out = tm.model(graph, costs, topology="basic", operation="teardown", time_scale=1.0)
    assert out["critical"] == ["nat.0", "subnet.a", "vpc"]
    assert out["phases"][0] == {"phase": "refresh", "seconds": pytest.approx(0.1)}
    rows = {r["id"]: r for r in tm.schedule(graph, costs, topology="basic", operation="teardown", time_scale=1.0)}
    assert rows["subnet.a"]["start"] >= rows["nat.0"]["finish"]
    assert rows["vpc"]["start"] >= rows["subnet.a"]["finish"]
    # waitNATGatewayDeleted: Delay 10 s, then every 10 s.
    assert rows["nat.0"]["finish"] == pytest.approx(0.1 + tm.settle(60.0, tm.NAT_DELETED, 0.1, 1.0))


def test_a_subnet_delete_retries_until_its_interfaces_go():
    graph = {"subnet.a": (), "vpce.x": ("subnet.a",)}
    costs = {"subnet.a": cost("ec2.subnet", pending=20.0), "vpce.x": cost("ec2.vpc_endpoint", pending=90.0)}
    rows = {r["id"]: r for r in tm.schedule(graph, costs, topology="basic", operation="teardown", time_scale=1.0)}
    gone = 90.0  # the endpoint itself is gone then (the waiter notices at its next poll)
    assert rows["vpce.x"]["finish"] >= gone
    retried = rows["subnet.a"]["finish"]
    assert retried >= gone + 20.0 and retried - rows["subnet.a"]["start"] >= 20.0 - (rows["vpce.x"]["finish"] - gone)


def test_unknown_kinds_and_topologies_are_named():
    out = tm.model({"x": ()}, {"x": cost("acme.widget", pending=3.0)}, topology="nowhere", operation="up",
                   time_scale=1.0)
    assert out["seconds"] == pytest.approx(3.0)
    assert any("acme.widget" in a for a in out["assumptions"])
    assert any("'nowhere'" in a for a in out["assumptions"])
    with pytest.raises(ValueError):
        tm.model({"x": ()}, {}, topology="basic", operation="apply", time_scale=1.0)
    with pytest.raises(ValueError):
        tm.model({"x": ("y",)}, {}, topology="basic", operation="up", time_scale=1.0)
