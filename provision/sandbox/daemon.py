"""Start, find and stop the sandbox daemon of a directory.

Runtime files live in `.provision/` of the current directory (or $PROVISION_SANDBOX_DIR), so two
directories run two independent sandboxes. Only the standard library is imported here: the CLI's
start-up path stays light.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provision.errors import SandboxError
from provision.procs import alive

INFO_FILE = "sandbox.json"
LOG_FILE = "sandbox.log"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class SandboxInfo:
    pid: int
    aws_endpoint_url: str
    databricks_host: str
    databricks_account_id: str
    databricks_token: str
    # The ARM emulator, its one subscription and its fixed local bearer token (it opens only 127.0.0.1).
    azure_endpoint_url: str
    azure_subscription_id: str
    azure_token: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def runtime_dir() -> Path:
    override = os.environ.get("PROVISION_SANDBOX_DIR")
    return Path(override) if override else Path.cwd() / ".provision"


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our own exited child, which would otherwise linger as a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    return alive(pid)


def request(host: str, path: str, method: str = "GET", body: dict | None = None, timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{host}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


def status(directory: Path | None = None) -> SandboxInfo | None:
    """The running sandbox of `directory`, or None if there is none (a stale info file is ignored)."""
    directory = directory or runtime_dir()
    try:
        info = SandboxInfo(**json.loads((directory / INFO_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _alive(info.pid):
        return None
    try:
        request(info.databricks_host, "/_sandbox/health", timeout=2.0)
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return info


def start(directory: Path | None = None, settings: dict[str, Any] | None = None) -> tuple[SandboxInfo, bool]:
    """Start the sandbox unless one runs. Returns (info, started_now). Settings apply to a new daemon,
    or are pushed to a running one."""
    directory = directory or runtime_dir()
    directory.mkdir(parents=True, exist_ok=True)
    # Serialise concurrent starters (two `up --sandbox` at once) on a lock file.
    with open(directory / "sandbox.start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        running = status(directory)
        if running:
            if settings:
                configure(running, settings)
            return running, False
        (directory / INFO_FILE).unlink(missing_ok=True)
        log = open(directory / LOG_FILE, "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "provision.app.server", "--runtime-dir", str(directory), "--settings", json.dumps(settings or {})],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.05
        while time.monotonic() < deadline:
            info = status(directory)
            if info and info.pid == process.pid:
                return info, True
            if process.poll() is not None:
                tail = (directory / LOG_FILE).read_text(errors="replace")[-2000:]
                raise SandboxError(f"the sandbox exited with code {process.returncode} while starting:\n{tail}")
            time.sleep(delay)  # bounded start-up poll of a local process, not a cloud wait
            delay = min(0.5, delay * 1.5)
        process.kill()
        raise SandboxError(f"the sandbox did not answer within {START_TIMEOUT:.0f}s; see {directory / LOG_FILE}")


def configure(info: SandboxInfo, settings: dict[str, Any]) -> dict[str, Any]:
    try:
        return request(info.databricks_host, "/_sandbox/config", "POST", settings)
    except urllib.error.HTTPError as exc:
        raise SandboxError(f"sandbox refused settings: {exc.read().decode(errors='replace')}") from None


def stop(directory: Path | None = None) -> bool:
    """Stop the sandbox of `directory`; False if none was running."""
    directory = directory or runtime_dir()
    info = status(directory)
    if info is None:
        (directory / INFO_FILE).unlink(missing_ok=True)
        return False
    os.kill(info.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.05)  # bounded wait for a local process to exit
    if _alive(info.pid):
        os.kill(info.pid, signal.SIGKILL)
    (directory / INFO_FILE).unlink(missing_ok=True)
    return True
