"""Shared fixtures: one sandbox daemon per test worker, reset before each test that uses it, and a helper
that runs the real `provision` CLI in a subprocess against it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cli_support import provision_command
from provision.sandbox import daemon

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
# Short delays keep the suite fast while every wait and retry path still runs.
FAST = {
    "iam_propagation_seconds": 0.5,
    "workspace_provisioning_seconds": 0.5,
    "workspace_warmup_seconds": 0.2,
    "identity_federation_seconds": 0.2,
    "nat_gateway_pending_seconds": 0.2,
    "nat_gateway_deleting_seconds": 0.2,
    "nat_gateway_failed_seconds": 2.0,  # the default (a test may keep a failed NAT gateway longer)
    "vpc_endpoint_pending_seconds": 0.1,
    "azure_workspace_provisioning_seconds": 0.5,
    "azure_workspace_deleting_seconds": 0.2,
    "azure_resource_seconds": 0.05,
    "azure_endpoint_seconds": 0.1,
    "azure_resource_group_deleting_seconds": 0.1,
    "refuse": {},  # no terminal refusal survives from an earlier test
}


@pytest.fixture(scope="session")
def sandbox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sandbox-runtime")


@pytest.fixture(scope="session")
def sandbox_session(sandbox_dir: Path):
    info, _ = daemon.start(sandbox_dir, FAST)
    yield info
    daemon.stop(sandbox_dir)


@pytest.fixture
def sandbox(sandbox_session, sandbox_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """A running sandbox with nothing in it and the fast default delays."""
    daemon.request(sandbox_session.databricks_host, "/_sandbox/reset", "POST", {})
    daemon.configure(sandbox_session, FAST)
    monkeypatch.setenv("PROVISION_SANDBOX_DIR", str(sandbox_dir))
    return sandbox_session


@pytest.fixture
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """For unit tests whose waits and retries run on a FakeClock: a real sleep is a bug."""
    import time

    def forbidden(seconds: float) -> None:
        raise AssertionError(f"real time.sleep({seconds}) in a test that runs on a fake clock")

    monkeypatch.setattr(time, "sleep", forbidden)


@pytest.fixture
def cli(tmp_path: Path, sandbox_dir: Path):
    """Run `provision ARGS` in tmp_path (the state file lives there) against this worker's sandbox."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 180, check: int | None = None) -> subprocess.CompletedProcess:
        # Failpoints only when a test asks for them.
        full_env = {k: v for k, v in os.environ.items() if k != "PROVISION_FAILPOINTS"}
        full_env.update({"PROVISION_SANDBOX_DIR": str(sandbox_dir), **(env or {})})
        result = subprocess.run(
            [*provision_command(), *args], cwd=tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout,
        )
        if check is not None:
            assert result.returncode == check, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        return result

    return run
