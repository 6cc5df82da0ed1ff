"""The CLI's contract: exit codes, messages that name the problem, no tracebacks, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import specs
from cli_support import provision_command
from sandbox_inventory import counts, inventory

ACCOUNT = specs.example()["databricks"]["account_id"]


def write_spec(tmp_path: Path, **tables) -> Path:
    return specs.write(tmp_path / "spec.toml", specs.merged(specs.example(), **tables))


BAD_SPECS = [
    ({"network": {"vpc_cidr": "10.40.0.0/16", "private_subnet_netmask": 27}}, "network.private_subnet_netmask", "/17-/26"),
    ({"network": {"vpc_cidr": "10.40.0.0/33"}}, "network.vpc_cidr", "not a valid"),
    ({"network": {"az_count": 1}}, "network.az_count", "at least 2"),
    ({"region": "mars-north-1"}, "region", "mars-north-1"),
    ({"name": "Bad_Name"}, "name", "lowercase"),
    (
        {"network": {"private_subnet_cidrs": ["10.40.0.0/19", "10.40.16.0/20"], "public_subnet_cidrs": ["10.40.64.0/26", "10.40.64.64/26"]}},
        "network.private_subnet_cidrs",
        "overlaps",
    ),
    ({"databricks": {"account_id": "not-a-uuid"}}, "databricks.account_id", "account id"),
    ({"network": {"vpc_cidr": "10.40.0.0/16", "nat": "double"}}, "network.nat", "single"),
    ({"encryption": {"deletion_window_days": 3}}, "encryption.deletion_window_days", "between 7 and 30"),
    ({"network_security": {"flow_log_retention_days": 31}}, "network_security.flow_log_retention_days", "retention period"),
    ({"guardrails": {"budget": {"monthly_limit_usd": -5, "alert_emails": ["a@example.com"]}}}, "guardrails.budget.monthly_limit_usd", "positive"),
]


@pytest.mark.parametrize(("override", "field", "reason"), BAD_SPECS)
def test_bad_spec_exits_2_naming_the_field_and_creates_nothing(sandbox, cli, tmp_path, override, field, reason):
    result = cli("up", "--config", str(write_spec(tmp_path, **override)), "--sandbox")
    assert result.returncode == 2
    assert field in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "provision.state.json").exists()
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def test_validate_reports_every_problem_at_once(cli, tmp_path):
    spec = write_spec(tmp_path, region="nowhere-1", network={"az_count": 1}, storage={"bucket_name": "Bad..Bucket"})
    result = cli("validate", "--config", str(spec))
    assert result.returncode == 2
    for field in ("region", "network.az_count", "storage.bucket_name"):
        assert field in result.stderr


def test_missing_and_unparsable_spec_files(cli, tmp_path):
    missing = cli("validate", "--config", str(tmp_path / "nope.toml"))
    assert missing.returncode == 2 and "nope.toml" in missing.stderr and "does not exist" in missing.stderr
    (tmp_path / "broken.toml").write_text("name = [unclosed\n")
    broken = cli("validate", "--config", str(tmp_path / "broken.toml"))
    assert broken.returncode == 2 and "not valid TOML" in broken.stderr and "Traceback" not in broken.stderr


@pytest.mark.parametrize("content", ['{"schema_version": 1, "deployment": ', "[]", '{"schema_version": 99}'])
@pytest.mark.parametrize("command", [["resume"], ["status"], ["teardown", "--yes"], ["output"]])
def test_corrupt_state_file_exits_2_and_is_left_untouched(cli, tmp_path, content, command):
    state = tmp_path / "provision.state.json"
    state.write_text(content)
    result = cli(*command)
    assert result.returncode == 2
    assert "provision.state.json" in result.stderr and "Traceback" not in result.stderr
    assert state.read_text() == content


def test_up_with_corrupt_state_file_does_not_overwrite_it(sandbox, cli, tmp_path):
    state = tmp_path / "provision.state.json"
    state.write_text("{not json")
    result = cli("up", "--config", str(write_spec(tmp_path)), "--sandbox")
    assert result.returncode == 2 and "not valid JSON" in result.stderr
    assert state.read_text() == "{not json"
    assert counts(inventory(sandbox, account_id=ACCOUNT)) == {}


def test_resume_without_state_file_exits_2(cli):
    result = cli("resume")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_state_of_another_deployment_is_refused(sandbox, cli, tmp_path):
    cli("up", "--config", str(write_spec(tmp_path)), "--sandbox", env={"PROVISION_FAILPOINTS": "vpc:before_create=error"})
    other = write_spec(tmp_path, name="other-deploy")
    result = cli("up", "--config", str(other), "--sandbox")
    assert result.returncode == 2 and "acme-basic" in result.stderr and "--state" in result.stderr


def test_second_concurrent_up_exits_3(sandbox, cli, tmp_path, monkeypatch):
    from provision.sandbox import daemon

    daemon.configure(sandbox, {"workspace_provisioning_seconds": 30})
    spec = write_spec(tmp_path)
    first = subprocess.Popen([*provision_command(), "up", "--config", str(spec), "--sandbox"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "provision.state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        second = cli("up", "--config", str(spec), "--sandbox")
        assert second.returncode == 3
        assert "locked" in second.stderr and str(first.pid) in second.stderr
    finally:
        first.kill()
        first.wait()


def test_help_imports_no_cloud_sdk():
    code = (
        "import sys\n"
        "from provision import cli\n"
        "for args in (['--help'], ['up', '--help'], ['sandbox', '--help']):\n"
        "    try:\n"
        "        cli.main(args)\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 'moto', 'azure', 'msal') or m.startswith('databricks.sdk'))\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_sandbox_status_json_shape(sandbox, cli):
    data = json.loads(cli("sandbox", "status", "--output", "json", check=0).stdout)
    assert data == {
        "running": True,
        "aws_endpoint_url": sandbox.aws_endpoint_url,
        "databricks_host": sandbox.databricks_host,
        "databricks_account_id": sandbox.databricks_account_id,
        "databricks_token": sandbox.databricks_token,
        "azure_endpoint_url": sandbox.azure_endpoint_url,
        "azure_subscription_id": sandbox.azure_subscription_id,
        "azure_token": sandbox.azure_token,
    }
    assert data["azure_endpoint_url"].startswith("http://127.0.0.1:")


def test_unknown_command_and_missing_option_exit_2(cli):
    assert cli("frobnicate").returncode == 2
    assert cli("up").returncode == 2


def test_teardown_without_yes_off_a_terminal_refuses(sandbox, cli, tmp_path):
    cli("up", "--config", str(write_spec(tmp_path)), "--sandbox", env={"PROVISION_FAILPOINTS": "vpc:before_create=error"})
    result = cli("teardown")
    assert result.returncode == 2 and "--yes" in result.stderr


@pytest.mark.parametrize(
    "args, names",
    [
        (["up", "--config", "x.toml", "--parallelism", "0"], "--parallelism"),
        (["teardown", "--yes", "--parallelism", "100"], "--parallelism"),
        (["sandbox", "start", "--latency", "glacial"], "--latency"),
        (["sandbox", "start", "--latency", "realistic", "--time-scale", "0"], "--time-scale"),
    ],
)
def test_bad_option_values_exit_2_naming_the_option(cli, args, names):
    result = cli(*args, check=2)
    assert names in result.stderr and "Traceback" not in result.stderr
