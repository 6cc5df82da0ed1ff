"""End to end through the real CLI against the sandbox: the `basic` topology's acceptance behaviour.

Every check of what exists reads the sandbox itself (sandbox_inventory), never our state file.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

import specs
from provision.errors import StateFileError
from provision.sandbox import daemon
from provision.state.store import StateFile
from cli_support import provision_command
from sandbox_inventory import BASIC_SINGLE_NAT, counts, inventory, untagged

ACCOUNT = specs.example()["databricks"]["account_id"]
NAME = specs.example()["name"]


def spec_file(tmp_path: Path, **tables) -> Path:
    return specs.write(tmp_path / "spec.toml", specs.merged(specs.example(), **tables))


def state_of(tmp_path: Path) -> dict:
    # Through StateFile: mid-run, or after a kill, the latest changes are in the journal beside the snapshot.
    return StateFile.load(tmp_path / "provision.state.json").to_json()


def step_status(tmp_path: Path) -> dict[str, str]:
    return {s["id"]: s["status"] for s in state_of(tmp_path)["steps"]}


def test_up_rerun_and_teardown_leave_exactly_what_they_should(sandbox, cli, tmp_path):
    """One deployment's whole life: plan, up, output, status, plan again, a refused change, a rerun, teardown."""
    spec = spec_file(tmp_path)
    fresh = cli("plan", "--config", str(spec), "--sandbox", "--output", "json", check=0)
    assert {item["action"] for item in json.loads(fresh.stdout)} == {"create"}
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
    assert not (tmp_path / "provision.state.json").exists()
    first = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "RUNNING" in first.stdout and "https://" in first.stdout
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT
    assert untagged(found, NAME) == []
    workspace = found["databricks_workspaces"][0]
    assert workspace["workspace_status"] == "RUNNING"

    outputs = json.loads(cli("output", "--output", "json", check=0).stdout)
    assert outputs["workspace_id"] == workspace["workspace_id"]
    assert outputs["workspace_url"] == f"https://{workspace['deployment_name']}.cloud.databricks.com"
    assert outputs["workspaces"] == [{
        "name": workspace["workspace_name"], "workspace_id": workspace["workspace_id"],
        "workspace_url": outputs["workspace_url"], "workspace_status": "RUNNING",
    }]
    assert outputs["vpc.vpc_id"] == found["vpc"][0]["VpcId"]
    status = json.loads(cli("status", "--output", "json", check=0).stdout)
    assert status["deployment"] == NAME and (status["cloud"], status["target"]) == ("aws", "sandbox")
    assert {s["status"] for s in status["steps"]} == {"done"}
    assert all(set(s) == {"id", "status", "outputs"} for s in status["steps"])
    after = json.loads(cli("plan", "--config", str(spec), "--sandbox", "--output", "json", check=0).stdout)
    assert {item["action"] for item in after} == {"keep"}

    # The network of a live deployment cannot change; tags and timeouts may (the rerun below uses them).
    changed = cli("up", "--config", str(spec_file(tmp_path, network={"nat": "per_az"})), "--sandbox")
    assert changed.returncode == 2 and "network.nat" in changed.stderr and "teardown" in changed.stderr
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT
    spec = spec_file(tmp_path, tags={"Owner": "someone-else"})

    # A second run reconciles: every step is kept, nothing new appears.
    again = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "created" not in again.stdout and again.stdout.count(": kept") == len(status["steps"])
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT

    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
    assert set(step_status(tmp_path).values()) == {"deleted"}
    # Teardown of a torn-down deployment is a no-op, not an error.
    cli("teardown", "--yes", check=0)


def test_state_file_is_private_and_holds_no_secret(sandbox, cli, tmp_path):
    """The service principal's secret signs in (OAuth M2M against the sandbox) and is never echoed into the
    state file, logs or output; the sandbox signs AWS calls with fixed dummy keys, never the user's. Every
    command, failures included, is covered in test_secrets.py; scrubbing itself in test_logging.py."""
    secret = "dose-not-leak-4f9c2e7a1b"
    daemon.configure(sandbox, {"oauth_clients": {"sp-client-id": hashlib.sha256(secret.encode()).hexdigest()}})
    env = {"DATABRICKS_CLIENT_SECRET": secret, "DATABRICKS_CLIENT_ID": "sp-client-id", "AWS_SECRET_ACCESS_KEY": secret + "aws"}
    result = cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", "--log-format", "json", "--verbose", env=env, check=0)
    state_path = tmp_path / "provision.state.json"
    assert oct(state_path.stat().st_mode & 0o777) == "0o600"
    logs = list((tmp_path / "provision-logs").glob("*.log"))
    assert logs, "a per-run log file beside the state file"
    texts = [state_path.read_text(), result.stdout, result.stderr, *(p.read_text() for p in logs)]
    assert not any(secret in text for text in texts)
    assert any('"operation": "CreateVpc"' in p.read_text() for p in logs), "every AWS call is logged"


def test_failure_mid_run_then_resume_creates_each_resource_once(sandbox, cli, tmp_path):
    failed = cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", env={"PROVISION_FAILPOINTS": "nat.0:after_create=error"})
    assert failed.returncode == 1, failed.stderr
    assert "nat.0" in failed.stderr and "provision resume" in failed.stderr and "Traceback" not in failed.stderr
    statuses = step_status(tmp_path)
    assert statuses["nat.0"] == "failed" and statuses["eip.nat.0"] == "done" and statuses["dbx.workspace"] == "pending"
    # The failure hit after the create call returned and before the checkpoint: the NAT gateway exists
    # although the state file never learnt its id. Resume must adopt it, not create a second one.
    assert "nat_gateway_id" not in next(s for s in state_of(tmp_path)["steps"] if s["id"] == "nat.0")["outputs"]
    nats = [n["NatGatewayId"] for n in inventory(sandbox, account_id=ACCOUNT)["nat_gateway"]]
    assert len(nats) == 1

    resumed = cli("resume", check=0)
    assert "RUNNING" in resumed.stdout
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT
    assert [n["NatGatewayId"] for n in found["nat_gateway"]] == nats


# One point here; scripts/crash_matrix.py kills at every point of every step (a sample runs in test_crash_matrix.py).
@pytest.mark.parametrize("point", ["dbx.network:before_create=kill"])
def test_sigkill_at_a_failpoint_then_resume(sandbox, cli, tmp_path, point):
    killed = cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", env={"PROVISION_FAILPOINTS": point})
    assert killed.returncode == -signal.SIGKILL
    resumed = cli("resume", check=0)
    # The dead run's lock was freed by the kernel; the new run says it takes over.
    assert "died without finishing" in resumed.stderr
    found = inventory(sandbox, account_id=ACCOUNT)
    assert counts(found) == BASIC_SINGLE_NAT
    assert untagged(found, NAME) == []


def test_sigkill_from_outside_mid_run_then_resume(sandbox, cli, tmp_path):
    spec = spec_file(tmp_path)
    env = {**os.environ, "PROVISION_SANDBOX_DIR": os.environ["PROVISION_SANDBOX_DIR"]}
    process = subprocess.Popen([*provision_command(), "up", "--config", str(spec), "--sandbox"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if step_status(tmp_path).get("nat.0") in ("in_progress", "done"):
                break
        except (StateFileError, KeyError):
            pass  # not written yet
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=10) == -signal.SIGKILL
    cli("resume", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT
    # And teardown after a crash-and-resume still leaves nothing.
    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def test_sigkill_during_teardown_then_teardown_again(sandbox, cli, tmp_path):
    cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0)
    killed = cli("teardown", "--yes", env={"PROVISION_FAILPOINTS": "nat.0:after_delete=kill"})
    assert killed.returncode == -signal.SIGKILL
    assert step_status(tmp_path)["nat.0"] == "in_progress"
    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def test_iam_propagation_is_waited_out_by_retries(sandbox, cli, tmp_path):
    from provision.sandbox import daemon

    daemon.configure(sandbox, {"iam_propagation_seconds": 6})
    started = time.monotonic()
    cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0)
    assert time.monotonic() - started >= 6  # credentials were accepted only once the role had propagated
    log = next((tmp_path / "provision-logs").glob("*-up.log")).read_text()
    retries = [json.loads(line) for line in log.splitlines() if '"event": "retrying"' in line]
    assert retries and all(r["reason"] == "iam-propagation" for r in retries)
    assert {r["step"] for r in retries} == {"dbx.credentials"}


def test_wrong_trust_policy_fails_after_the_deadline_naming_it(sandbox, cli, tmp_path):
    spec = spec_file(tmp_path, timeouts={"retry_deadline_seconds": 3})
    cli("up", "--config", str(spec), "--sandbox", env={"PROVISION_FAILPOINTS": "dbx.credentials:before_create=error"})
    role = state_of(tmp_path)["steps"][0]["outputs"]["role_name"]
    iam = boto3.client("iam", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    wrong = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "sts:AssumeRole"}]}
    iam.update_assume_role_policy(RoleName=role, PolicyDocument=json.dumps(wrong))

    started = time.monotonic()
    result = cli("resume")
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert elapsed >= 3
    assert "trust policy" in result.stderr and "414351767826" in result.stderr and "ExternalId" in result.stderr
    assert "Traceback" not in result.stderr
    assert step_status(tmp_path)["dbx.credentials"] == "failed"
    assert inventory(sandbox, account_id=ACCOUNT)["databricks_credentials"] == []


def test_failed_workspace_is_explained_kept_and_retried_by_resume(sandbox, cli, tmp_path):
    spec = spec_file(tmp_path)
    cli("up", "--config", str(spec), "--sandbox", env={"PROVISION_FAILPOINTS": "dbx.workspace:before_create=error"})
    ec2 = boto3.client("ec2", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    vpc_id = state_of(tmp_path)["steps"][2]["outputs"]["vpc_id"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})

    failed = cli("resume")
    assert failed.returncode == 1
    assert "FAILED" in failed.stderr and "vpc_status" in failed.stderr and "DNS" in failed.stderr
    workspaces = inventory(sandbox, account_id=ACCOUNT)["databricks_workspaces"]
    assert [w["workspace_status"] for w in workspaces] == ["FAILED"]  # kept for inspection
    assert step_status(tmp_path)["dbx.workspace"] == "failed"

    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    fixed = cli("resume", check=0)
    assert "RUNNING" in fixed.stdout
    found = inventory(sandbox, account_id=ACCOUNT)
    assert [w["workspace_id"] for w in found["databricks_workspaces"]] == [workspaces[0]["workspace_id"]]
    assert counts(found) == BASIC_SINGLE_NAT


def test_resume_after_a_failed_teardown_carries_the_teardown_through(sandbox, cli, tmp_path):
    cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0)
    failed = cli("teardown", "--yes", env={"PROVISION_FAILPOINTS": "igw:before_delete=error"})
    assert failed.returncode == 1
    assert "provision resume" in failed.stderr and "teardown" in failed.stderr
    resumed = cli("resume", check=0)
    assert "teardown completed" in resumed.stdout and "created" not in resumed.stdout
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def test_zones_are_resolved_once_and_recorded(sandbox, cli, tmp_path):
    cli("up", "--config", str(spec_file(tmp_path)), "--sandbox", check=0)
    zones = state_of(tmp_path)["facts"]["availability_zones"]
    assert len(zones) == 2 and all(z.startswith("us-east-1") for z in zones)
    subnets = inventory(sandbox, account_id=ACCOUNT)["subnet"]
    assert {s["AvailabilityZone"] for s in subnets} == set(zones)


def test_a_subnet_deleted_out_of_band_is_recreated_and_reassociated(sandbox, cli, tmp_path):
    spec = spec_file(tmp_path)
    cli("up", "--config", str(spec), "--sandbox", check=0)
    ec2 = boto3.client("ec2", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    outputs = {s["id"]: s["outputs"] for s in state_of(tmp_path)["steps"]}
    old_subnet = outputs["subnet.public.1"]["subnet_id"]
    ec2.disassociate_route_table(AssociationId=outputs["rt.public"]["associations"][old_subnet])
    ec2.delete_subnet(SubnetId=old_subnet)

    again = cli("up", "--config", str(spec), "--sandbox", check=0)
    assert "subnet.public.1: created" in again.stdout, again.stdout
    assert "rt.public: converged" in again.stdout, again.stdout
    new_subnet = {s["id"]: s["outputs"] for s in state_of(tmp_path)["steps"]}["subnet.public.1"]["subnet_id"]
    table = ec2.describe_route_tables(RouteTableIds=[outputs["rt.public"]["route_table_id"]])["RouteTables"][0]
    assert new_subnet in {a.get("SubnetId") for a in table["Associations"]}
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT


def test_someone_elses_bucket_is_neither_adopted_nor_deleted(sandbox, cli, tmp_path):
    s3 = boto3.client("s3", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    s3.create_bucket(Bucket="finance-reports")
    s3.put_bucket_tagging(Bucket="finance-reports", Tagging={"TagSet": [{"Key": "team", "Value": "finance"}]})
    s3.put_object(Bucket="finance-reports", Key="q3.csv", Body=b"revenue")
    spec = spec_file(tmp_path, storage={"bucket_name": "finance-reports"})

    result = cli("up", "--config", str(spec), "--sandbox")
    assert result.returncode == 1 and "finance-reports" in result.stderr and "belongs to" in result.stderr
    cli("teardown", "--yes", check=0)
    assert s3.get_object(Bucket="finance-reports", Key="q3.csv")["Body"].read() == b"revenue"
    assert s3.get_bucket_tagging(Bucket="finance-reports")["TagSet"] == [{"Key": "team", "Value": "finance"}]
    found = inventory(sandbox, account_id=ACCOUNT)
    assert [b["Name"] for b in found["bucket"]] == ["finance-reports"]
    assert counts(found) == {"bucket": 1}


def test_interrupt_exits_130_and_resume_finishes(sandbox, cli, tmp_path):
    from provision.sandbox import daemon

    daemon.configure(sandbox, {"workspace_provisioning_seconds": 30})
    # SIGINT at its default in the child: a suite started in the background (nohup ... &) inherits it ignored.
    process = subprocess.Popen([*provision_command(), "up", "--config", str(spec_file(tmp_path)), "--sandbox"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    # Generous bounds: on 2 loaded cores (CI runs the suite on two workers) reaching the workspace can take a while.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if step_status(tmp_path).get("dbx.workspace") == "in_progress":
                break
        except (StateFileError, KeyError):
            pass  # not written yet
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=90)
    assert process.returncode == 130, stderr
    assert "provision resume" in stderr and "Traceback" not in stderr
    assert step_status(tmp_path)["dbx.workspace"] == "failed"
    daemon.configure(sandbox, {"workspace_provisioning_seconds": 0.5})
    cli("resume", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == BASIC_SINGLE_NAT


def test_a_failed_nat_gateway_is_reported_and_replaced_by_resume(sandbox, cli, tmp_path):
    from provision.sandbox import daemon

    # A failed NAT gateway turns `deleted` by itself (as on AWS); kept `failed` long enough for the checks below.
    daemon.configure(sandbox, {"nat_gateway_fail_next": 1, "nat_gateway_failed_seconds": 120})
    failed = cli("up", "--config", str(spec_file(tmp_path)), "--sandbox")
    assert failed.returncode == 1 and "nat.0" in failed.stderr and "failed" in failed.stderr
    assert "invalid state" in failed.stderr  # the NAT gateway's own FailureMessage
    ec2 = boto3.client("ec2", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
    first = ec2.describe_nat_gateways()["NatGateways"]
    assert [n["State"] for n in first] == ["failed"]
    assert inventory(sandbox, account_id=ACCOUNT)["nat_gateway"] == []  # a failed NAT is history, not inventory

    daemon.configure(sandbox, {"nat_gateway_failed_seconds": 2.0})  # from here it may go `deleted`, as on AWS
    cli("resume", check=0)
    live = inventory(sandbox, account_id=ACCOUNT)["nat_gateway"]
    assert len(live) == 1 and live[0]["NatGatewayId"] != first[0]["NatGatewayId"]
    cli("teardown", "--yes", check=0)
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}
