"""The state file: what exists, step by step.

Written atomically after every transition (temp file in the same directory, fsync, rename, fsync of the
directory) with mode 0600, so a crash at any instant leaves either the old or the new file, never half of
one. A file that fails to parse is never overwritten. An exclusive lock (flock on `<state>.lock`) is held
for a whole run; the kernel drops it when the holder dies, so a SIGKILLed run never leaves a stale lock.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from provision.errors import StateFileError, StateLockedError
from provision.procs import alive

SCHEMA_VERSION = 2
# Where a deployment runs: its cloud ("aws") and target, the real cloud or the local sandbox.
TARGETS = ("real", "sandbox")


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older file's data to SCHEMA_VERSION, in memory; the next save writes the new schema.
    v1 had one `target` field that mixed cloud and target: "aws" (real AWS) or "sandbox" (AWS in the sandbox)."""
    if data.get("schema_version") == 1:
        old = data.get("target")
        data = {**data, "schema_version": 2, "cloud": "aws", "target": "sandbox" if old == "sandbox" else "real"}
    return data


class Status(str, Enum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    FAILED = "failed"
    DELETED = "deleted"


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class StepRecord:
    id: str
    kind: str
    status: Status = Status.PENDING
    outputs: dict[str, Any] = field(default_factory=dict)
    external: bool = False
    # Set, and saved, just before the create call: from then on the resource may exist even if no
    # outputs were recorded, so find may adopt an untagged resource of our deterministic name.
    create_attempted: bool = False
    attempts: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StepRecord":
        return cls(**{**data, "status": Status(data["status"])})


class StateLock:
    """Exclusive, non-blocking lock beside the state file; the holder's pid is written for the message."""

    def __init__(self, state_path: Path):
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None
        self.taken_over_from: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateLockedError(
                    f"state file {self.path.with_suffix('')} is locked by another run (pid {holder}); "
                    "wait for it to finish"
                ) from None
            raise
        previous = os.read(fd, 64).decode(errors="replace").strip()
        # The kernel dropped a dead holder's lock; say so, since its run ended without finishing.
        self.taken_over_from = int(previous) if previous.isdigit() and int(previous) != os.getpid() and not alive(int(previous)) else None
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            # A run that ends, however it ends, clears its pid: only a killed run leaves one for the next to report.
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "StateLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class StateFile:
    """In-memory view of the state file; every mutation is persisted before it returns."""

    def __init__(self, path: Path, data: dict[str, Any]):
        self.path = path
        self.deployment: str = data["deployment"]
        self.cloud: str = data["cloud"]
        self.target: str = data["target"]
        if self.target not in TARGETS:
            raise ValueError(f"target {self.target!r} is not one of {', '.join(TARGETS)}")
        self.spec: dict[str, Any] = data["spec"]
        self.spec_path: str | None = data.get("spec_path")
        self.created_at: str = data.get("created_at") or now_iso()
        self.updated_at: str = data.get("updated_at") or self.created_at
        # The operation a `resume` continues: "up" or "teardown".
        self.last_command: str | None = data.get("last_command")
        # Facts resolved on the first run and fixed for the deployment's life (availability zones).
        self.facts: dict[str, Any] = dict(data.get("facts") or {})
        self.steps: dict[str, StepRecord] = {
            s["id"]: StepRecord.from_json(s) for s in data.get("steps", [])
        }
        self._write_lock = threading.Lock()

    # construction -----------------------------------------------------------------------------
    @classmethod
    def new(cls, path: Path, *, deployment: str, cloud: str, target: str, spec: dict[str, Any], spec_path: str | None) -> "StateFile":
        return cls(path, {"deployment": deployment, "cloud": cloud, "target": target, "spec": spec, "spec_path": spec_path})

    @classmethod
    def load(cls, path: Path) -> "StateFile":
        try:
            raw = path.read_text()
        except FileNotFoundError:
            raise StateFileError(f"state file {path} does not exist") from None
        except OSError as exc:
            raise StateFileError(f"state file {path} cannot be read: {exc.strerror}") from None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StateFileError(
                f"state file {path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "it was left untouched"
            ) from None
        if not isinstance(data, dict):
            raise StateFileError(f"state file {path} is not a JSON object; it was left untouched")
        data = _migrate(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StateFileError(
                f"state file {path} has schema_version {version!r}; this provision reads {SCHEMA_VERSION}"
            )
        try:
            state = cls(path, data)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"state file {path} is malformed ({type(exc).__name__}: {exc}); left untouched") from None
        return state

    # records -----------------------------------------------------------------------------------
    def ensure_steps(self, steps: list[tuple[str, str]]) -> None:
        """Add a pending record for each (id, kind) the topology declares and the file lacks."""
        for step_id, kind in steps:
            if step_id not in self.steps:
                self.steps[step_id] = StepRecord(id=step_id, kind=kind)

    def record(self, step_id: str) -> StepRecord:
        return self.steps[step_id]

    def update(self, step_id: str, **changes: Any) -> StepRecord:
        with self._write_lock:
            record = self.steps[step_id]
            for key, value in changes.items():
                setattr(record, key, value)
            self._save_locked()
            return record

    def remember(self, key: str, value: Any) -> None:
        with self._write_lock:
            self.facts[key] = value
            self._save_locked()

    def live_records(self) -> list[StepRecord]:
        """Records whose resource may exist."""
        return [r for r in self.steps.values() if r.status not in (Status.PENDING, Status.DELETED)]

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {sid: rec.outputs for sid, rec in self.steps.items()}

    def save(self) -> None:
        with self._write_lock:
            self._save_locked()

    # persistence -------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "deployment": self.deployment,
            "cloud": self.cloud,
            "target": self.target,
            "spec_path": self.spec_path,
            "spec": self.spec,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_command": self.last_command,
            "facts": self.facts,
            "steps": [rec.to_json() for rec in self.steps.values()],
        }

    def _save_locked(self) -> None:
        self.updated_at = now_iso()
        payload = json.dumps(self.to_json(), indent=2, sort_keys=False).encode() + b"\n"
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
