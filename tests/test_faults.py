"""Fault tolerance against the sandbox's seeded fault injection: transient faults on every service and
lost responses on creates end in exactly the inventory of a clean run, never a duplicate."""

from __future__ import annotations

import json

import pytest

import specs
from provision.sandbox import daemon
from sandbox_inventory import BASIC_SINGLE_NAT, counts, inventory, untagged

ACCOUNT = specs.example()["databricks"]["account_id"]


def faults(sandbox) -> dict:
    return daemon.request(sandbox.databricks_host, "/_sandbox/faults")


def spec_file(tmp_path):
    # A generous retry deadline: at 20% faults some calls need several attempts.
    return specs.write(tmp_path / "spec.toml", specs.merged(specs.example(), timeouts={"retry_deadline_seconds": 120}))


@pytest.mark.parametrize("seed", [7, 21])
def test_transient_faults_at_20_percent_on_every_service(sandbox, cli, tmp_path, seed):
    daemon.request(sandbox.databricks_host, "/_sandbox/faults/reset", "POST", {})
    daemon.configure(sandbox, {"fault_rate": 0.2, "fault_seed": seed})
    try:
        cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0, timeout=600)
        injected = faults(sandbox)["injected"]
        found = inventory_clean(sandbox)
        assert counts(found) == BASIC_SINGLE_NAT and untagged(found, "acme-basic") == []
        cli("teardown", "--yes", check=0, timeout=600)
    finally:
        daemon.configure(sandbox, {"fault_rate": 0})
    assert sum(injected.values()) > 10, injected  # the faults really happened
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
    log = "".join(p.read_text() for p in (tmp_path / "provision-logs").glob("*-up.log"))
    reasons = {json.loads(line)["reason"] for line in log.splitlines() if '"event": "retrying"' in line}
    assert reasons  # each retry is logged with its reason


def inventory_clean(sandbox):
    """Read the inventory with faults paused (the test's own reads must not be faulted)."""
    settings = daemon.request(sandbox.databricks_host, "/_sandbox/config")
    daemon.configure(sandbox, {"fault_rate": 0, "lost_response_rate": 0})
    try:
        return inventory(sandbox, account_id=ACCOUNT)
    finally:
        daemon.configure(sandbox, {"fault_rate": settings["fault_rate"], "lost_response_rate": settings["lost_response_rate"]})


def test_lost_responses_on_every_create_make_no_duplicates(sandbox, cli, tmp_path):
    daemon.request(sandbox.databricks_host, "/_sandbox/faults/reset", "POST", {})
    daemon.configure(sandbox, {"lost_response_rate": 1.0, "fault_seed": 3})
    try:
        cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0, timeout=600)
        lost = faults(sandbox)["lost_responses"]
    finally:
        daemon.configure(sandbox, {"lost_response_rate": 0})
    assert lost > 20, lost
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT and untagged(found, "acme-basic") == []
    cli("teardown", "--yes", check=0, timeout=600)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
