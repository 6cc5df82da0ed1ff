"""End to end through the real CLI: remote state on the sandbox's S3 (issue 14, acceptance 1) and saved plans
(acceptance 4). One full run of the basic topology; the saved-plan refusals stop at the first step."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections import Counter

import boto3
import specs
from botocore.exceptions import ClientError
from cli_support import provision_command
from sandbox_inventory import BASIC_SINGLE_NAT, counts, inventory

from provision import topologies
from provision.sandbox import daemon
from provision.state.store import StateFile

ACCOUNT = specs.example()["databricks"]["account_id"]
FAST_WORKSPACE = {"workspace_provisioning_seconds": 0.5}


def _s3(sandbox) -> object:
    return boto3.client("s3", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1",
                        aws_access_key_id="sandbox", aws_secret_access_key="sandbox")


def _state(s3, bucket: str, key: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError:
        return None


def test_remote_state_lock_takeover_and_teardown(sandbox, cli, tmp_path):
    """A saved plan applied to an S3 state (no local state file); a second up exits 3 naming the holder; the
    first is SIGKILLed; resume takes its dead lock over and finishes as a clean run; teardown leaves the bucket."""
    s3 = _s3(sandbox)
    s3.create_bucket(Bucket="team-state")
    s3.put_bucket_versioning(Bucket="team-state", VersioningConfiguration={"Status": "Enabled"})
    where = "s3://team-state/acme/basic.json"
    spec = specs.write(tmp_path / "spec.toml", specs.example())
    cli("plan", "--config", str(spec), "--sandbox", "--state", where, "--out", "plan.json", check=0)

    daemon.configure(sandbox, {"workspace_provisioning_seconds": 120})  # the first run waits on its workspace
    first = subprocess.Popen([*provision_command(), "up", "--plan", "plan.json", "--state", where, "--sandbox"],
                             cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = _state(s3, "team-state", "acme/basic.json")
            if state and any(s["id"] == "dbx.workspace" and s["status"] == "in_progress" for s in state["steps"]):
                break
            assert first.poll() is None, "the first run ended early"
            time.sleep(0.1)
        else:
            raise AssertionError("the first run never reached its workspace")
        second = cli("up", "--config", str(spec), "--sandbox", "--state", where)
        assert second.returncode == 3, second.stderr
        assert "locked" in second.stderr and f"pid {first.pid}" in second.stderr and socket.gethostname() in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    daemon.configure(sandbox, FAST_WORKSPACE)

    resumed = cli("resume", "--state", where, "--sandbox", check=0)
    assert "RUNNING" in resumed.stdout and "took over the lock" in resumed.stderr and f"pid {first.pid}" in resumed.stderr
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT + Counter({"bucket": 1})  # + the state bucket
    assert sorted(p.name for p in tmp_path.glob("*.json*")) == ["plan.json"]  # no local state file, nor its lock
    status = json.loads(cli("status", "--state", where, "--sandbox", "--output", "json", check=0).stdout)
    assert {s["status"] for s in status["steps"]} == {"done"}

    cli("teardown", "--yes", "--state", where, "--sandbox", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == Counter({"bucket": 1})
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["team-state"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".json") or ".state" in p.name) == ["plan.json"]


def test_a_saved_plan_is_refused_once_the_state_moved_on(sandbox, cli, tmp_path):
    """Through the CLI; "another run" writes the state in-process (a run of its own would add nothing here)."""
    spec = specs.write(tmp_path / "spec.toml", specs.example())
    cli("plan", "--config", str(spec), "--sandbox", "--out", "fresh.json", check=0)
    assert json.loads((tmp_path / "fresh.json").read_text())["lineage"] is None
    raw = topologies.load(spec).to_json()
    state = StateFile.new(tmp_path / "provision.state.json", deployment=raw["name"], cloud="aws", target="sandbox", spec=raw, spec_path=str(spec))
    state.save()  # another run made a state since

    refused = cli("up", "--plan", "fresh.json", check=2)
    assert "no state" in refused.stderr and "make a new plan" in refused.stderr

    cli("plan", "--config", str(spec), "--sandbox", "--out", "current.json", check=0)
    saved = json.loads((tmp_path / "current.json").read_text())
    assert (saved["lineage"], saved["serial"]) == (state.lineage, state.serial) == (state.lineage, 1)
    other = specs.write(tmp_path / "other.toml", specs.merged(specs.example(), tags={"Owner": "else"}))
    assert "not the spec" in cli("up", "--plan", "current.json", "--config", str(other), check=2).stderr
    # The plan names the state it was made against: another --state is refused, not silently started afresh.
    assert "was made against state" in cli("up", "--plan", "current.json", "--state", "elsewhere.json", check=2).stderr
    assert not (tmp_path / "elsewhere.json").exists()
    state.remember("zones", ["use1-az1"])  # another run wrote again
    moved_on = cli("up", "--plan", "current.json", check=2)
    assert "moved on" in moved_on.stderr and "serial 1" in moved_on.stderr and "serial 2" in moved_on.stderr
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
