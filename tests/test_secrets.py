"""Secrets never leave memory except into Secrets Manager: with a service principal's distinctive client
secret really in use (OAuth M2M against the emulator's token endpoint) and workspace tokens created, neither
appears in the state file, the log files, or the stdout/stderr of any command, including failed ones."""

from __future__ import annotations

import hashlib
import json
import stat

import boto3

import specs
from provision.sandbox import daemon
from sandbox_inventory import counts, inventory

CLIENT_ID = "sp-provision-ci"
CLIENT_SECRET = "dose7-Qx9-distinctive-CLIENT-secret-b41f"  # appears nowhere but the environment
ACCOUNT = specs.example("hub-spoke")["databricks"]["account_id"]


def test_no_secret_in_state_logs_or_any_output(sandbox, cli, tmp_path):
    daemon.configure(sandbox, {"oauth_clients": {CLIENT_ID: hashlib.sha256(CLIENT_SECRET.encode()).hexdigest()}})
    env = {"DATABRICKS_CLIENT_ID": CLIENT_ID, "DATABRICKS_CLIENT_SECRET": CLIENT_SECRET}
    spec = str(specs.write(tmp_path / "spec.toml", specs.example("hub-spoke")))
    loud = ("--verbose", "--log-format", "json")
    runs = [
        cli("validate", "--config", spec, env=env, check=0),
        cli("plan", "--config", spec, "--sandbox", env=env, check=0),
    ]
    # The secret is really what signs in: a wrong one is refused by the token endpoint, in the credentials preflight.
    wrong = cli("plan", "--config", spec, "--sandbox", env={**env, "DATABRICKS_CLIENT_SECRET": "not-it"}, check=2)
    assert "invalid_client" in wrong.stderr
    # A failure right after a token is minted (its value in memory, its secret refused), then the resume.
    daemon.configure(sandbox, {"refuse": {"CreateSecret": "access_denied"}})
    try:
        runs.append(cli("up", "--config", spec, "--sandbox", *loud, env=env, check=1, timeout=400))
    finally:
        daemon.configure(sandbox, {"refuse": {}})
    runs.append(cli("resume", *loud, env=env, check=0, timeout=400))
    runs += [cli(*args, env=env, check=0) for args in (("status",), ("status", "--output", "json"), ("output",), ("output", "--output", "json"))]
    runs.append(cli("up", "--config", spec, "--sandbox", *loud, env=env, check=0, timeout=400))

    state_file = tmp_path / "provision.state.json"
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    state_text = state_file.read_text()
    secrets = boto3.client("secretsmanager", endpoint_url=sandbox.aws_endpoint_url, region_name="us-east-1",
                           aws_access_key_id="t", aws_secret_access_key="t")
    tokens = [secrets.get_secret_value(SecretId=s["ARN"])["SecretString"] for s in secrets.list_secrets()["SecretList"]]
    assert len(tokens) == 2 and all(t.startswith("dapi") for t in tokens)
    # The token minted before the refused CreateSecret was revoked by the resume: one live token a workspace.
    assert counts(inventory(sandbox, account_id=ACCOUNT))["databricks_tokens"] == 2

    runs.append(cli("teardown", "--yes", *loud, env=env, check=0, timeout=400))
    logs = [p.read_text() for p in (tmp_path / "provision-logs").glob("*.log")]
    assert len(logs) >= 5  # plan, up, resume, up, teardown (the refused sign-in stops before any log)
    texts = [state_text, *logs, *(r.stdout for r in runs), *(r.stderr for r in runs), wrong.stdout, wrong.stderr,
             json.dumps(daemon.request(sandbox.databricks_host, "/_sandbox/config"))]
    for secret in (CLIENT_SECRET, *tokens):
        leaks = [text[max(0, text.find(secret) - 80):text.find(secret) + 80] for text in texts if secret in text]
        assert not leaks, leaks


def test_a_principal_the_sandbox_does_not_know_leaves_sandbox_runs_on_its_local_token(sandbox, cli, tmp_path):
    """A user's real service principal in the environment must not break `--sandbox` runs."""
    spec = str(specs.write(tmp_path / "spec.toml", specs.example()))
    env = {"DATABRICKS_CLIENT_ID": "a-real-principal", "DATABRICKS_CLIENT_SECRET": "not-registered-here"}
    cli("plan", "--config", spec, "--sandbox", env=env, check=0)
