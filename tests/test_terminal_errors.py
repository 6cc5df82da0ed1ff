"""Terminal errors (access denied, invalid parameter, quota exceeded) fail at once with the API's own
message, well before the retry deadline; once the cause is fixed, `resume` completes with the exact
inventory. The sandbox refuses the named operation on every call (`refuse` setting, faults.py)."""

from __future__ import annotations

import json
import time

import pytest

import specs
from provision.sandbox import daemon
from sandbox_inventory import BASIC_SINGLE_NAT, counts, inventory, untagged

ACCOUNT = specs.example()["databricks"]["account_id"]
DEADLINE = 120


@pytest.mark.parametrize(
    "operation, kind, step, api_text",
    [
        # One AWS and one Databricks refusal end to end; the classifier's terminal codes (quotas too) are unit tests in test_retry.py.
        ("CreateRole", "access_denied", "iam.crossaccount", "is not authorized to perform: iam:CreateRole"),
        ("workspaces.create", "invalid_parameter", "dbx.workspace", "INVALID_PARAMETER_VALUE: A request parameter is invalid"),
    ],
)
def test_terminal_error_fails_fast_with_api_message_then_resume_completes(
    sandbox, cli, tmp_path, operation, kind, step, api_text
):
    spec = specs.write(tmp_path / "spec.toml", specs.merged(specs.example(), timeouts={"retry_deadline_seconds": DEADLINE}))
    daemon.configure(sandbox, {"refuse": {operation: kind}})
    try:
        started = time.monotonic()
        failed = cli("up", "--config", str(spec), "--sandbox", check=1)
        elapsed = time.monotonic() - started
    finally:
        daemon.configure(sandbox, {"refuse": {}})
    assert elapsed < DEADLINE / 4, f"took {elapsed:.1f}s: a terminal error was retried"
    assert f"step {step} failed" in failed.stderr and api_text in failed.stderr, failed.stderr
    assert "Traceback" not in failed.stderr
    log = "".join(p.read_text() for p in (tmp_path / "provision-logs").glob("*-up.log"))
    retried = [json.loads(line) for line in log.splitlines() if '"event": "retrying"' in line]
    assert not [r for r in retried if api_text in json.dumps(r)], retried  # never retried
    state = json.loads((tmp_path / "provision.state.json").read_text())
    record = next(r for r in state["steps"] if r["id"] == step)
    assert record["status"] != "done", record

    cli("resume", check=0)
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT and untagged(found, "acme-basic") == []


def test_refusal_setting_is_validated(sandbox):
    with pytest.raises(Exception, match="refuse.CreateVpc must be one of"):
        daemon.configure(sandbox, {"refuse": {"CreateVpc": "sometimes"}})
