"""The state: what exists, step by step.

Written whole after every transition through its backend (state/backend.py: a local file, atomically; or
an S3 object, compare-and-swap on its ETag), so a crash at any instant leaves the old or the new state,
never half of one. A state that fails to parse is never overwritten. The backend's lock is held for a run.

Schema 3 adds `lineage` (a uuid fixed when the state is created: which deployment's history this is) and
`serial` (+1 on every write): a saved plan or an import names the lineage and serial it expects.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from provision.errors import LineageError, StateFileError
from provision.state.backend import Backend, LocalBackend, StateLock

__all__ = ["SCHEMA_VERSION", "TARGETS", "StateFile", "StateLock", "StepRecord", "Status", "now_iso"]

SCHEMA_VERSION = 3
# Where a deployment runs: its cloud ("aws") and target, the real cloud or the local sandbox.
TARGETS = ("real", "sandbox")


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older file's data to SCHEMA_VERSION, in memory; the next save writes the new schema.
    v1 had one `target` field that mixed cloud and target: "aws" (real AWS) or "sandbox" (AWS in the sandbox)."""
    if data.get("schema_version") == 1:
        old = data.get("target")
        data = {**data, "schema_version": 2, "cloud": "aws", "target": "sandbox" if old == "sandbox" else "real"}
    if data.get("schema_version") == 2:
        # The lineage is derived from what the file already fixes (its deployment and creation time), so every
        # read of the same schema-2 file names the same lineage: a plan saved against it still applies, and the
        # next write keeps it.
        data = {**data, "schema_version": 3, "lineage": migrated_lineage(data), "serial": 0}
    return data


# uuid5 namespace of lineages derived for schema-2 states (fixed: changing it would change their lineages).
_MIGRATED_LINEAGE_NS = uuid.UUID("5b0f3c1e-8f7a-4d0e-9b53-2f6d7c1a9e40")


def migrated_lineage(data: dict[str, Any]) -> str:
    """The lineage of a schema-2 state: the same for every read of the same file."""
    return str(uuid.uuid5(_MIGRATED_LINEAGE_NS, json.dumps([data.get("deployment"), data.get("created_at")])))


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


class StateFile:
    """In-memory view of the state file; every mutation is persisted before it returns."""

    def __init__(self, where: Path | Backend, data: dict[str, Any], token: str | None = None):
        self.backend: Backend = LocalBackend(where) if isinstance(where, (str, Path)) else where
        # How messages name the state: the local Path, or s3://bucket/key.
        self.path: Path | str = self.backend.path if isinstance(self.backend, LocalBackend) else self.backend.describe()
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
        # Resources a step replaced (the API could not change them in place) that still exist until the engine
        # deletes them: [{"step": id, "outputs": {...}}], oldest first.
        self.retired: list[dict[str, Any]] = [dict(r) for r in data.get("retired") or []]
        self.lineage: str = data["lineage"]
        self.serial: int = data["serial"]
        if not isinstance(self.lineage, str) or not isinstance(self.serial, int) or self.serial < 0:
            raise ValueError("lineage must be a string and serial a non-negative integer")
        # The backend's version of what this view last read or wrote (an ETag); None: not written yet.
        self._token = token
        self._write_lock = threading.Lock()

    # construction -----------------------------------------------------------------------------
    @classmethod
    def new(
        cls, path: Path | Backend, *, deployment: str, cloud: str, target: str, spec: dict[str, Any], spec_path: str | None,
        replacing: "StateFile | None" = None,
    ) -> "StateFile":
        """A new state (a new lineage). `replacing`: the state loaded from the same place, which this one replaces
        (a torn-down deployment's): its first write is conditional on that state's version, not on there being
        none, so it fails (StateConflictError) only if the old state changed since it was read."""
        token = None
        if replacing is not None:
            if replacing.backend.describe() != (LocalBackend(path) if isinstance(path, (str, Path)) else path).describe():
                raise ValueError(f"a new state at {path} cannot replace the state at {replacing.path}")
            token = replacing._token
        return cls(path, {
            "deployment": deployment, "cloud": cloud, "target": target, "spec": spec, "spec_path": spec_path,
            "lineage": str(uuid.uuid4()), "serial": 0,
        }, token)

    @classmethod
    def load(cls, where: Path | Backend) -> "StateFile":
        backend = LocalBackend(where) if isinstance(where, (str, Path)) else where
        name = backend.describe()
        raw, token = backend.read()
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where_ = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
            raise StateFileError(f"state file {name} is not valid JSON{where_}; it was left untouched") from None
        if not isinstance(data, dict):
            raise StateFileError(f"state file {name} is not a JSON object; it was left untouched")
        data = _migrate(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StateFileError(
                f"state file {name} has schema_version {version!r}; this provision reads {SCHEMA_VERSION}"
            )
        try:
            state = cls(backend, data, token)
        except (KeyError, TypeError, ValueError) as exc:
            raise StateFileError(f"state file {name} is malformed ({type(exc).__name__}: {exc}); left untouched") from None
        return state

    def expect_lineage(self, lineage: str | None, why: str) -> None:
        """Refuse (LineageError, exit 2) a state of another lineage than `lineage` (None: any)."""
        if lineage is not None and lineage != self.lineage:
            raise LineageError(
                f"state {self.path} has lineage {self.lineage}, not {lineage} ({why}): it is another deployment's "
                "history; nothing was changed"
            )

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

    def retire(self, step_id: str, outputs: dict[str, Any]) -> None:
        with self._write_lock:
            entry = {"step": step_id, "outputs": dict(outputs)}
            if entry not in self.retired:
                self.retired.append(entry)
                self._save_locked()

    def release(self, step_id: str, outputs: dict[str, Any]) -> None:
        """A retired resource is gone: forget it."""
        with self._write_lock:
            entry = {"step": step_id, "outputs": dict(outputs)}
            if entry in self.retired:
                self.retired.remove(entry)
                self._save_locked()

    def retired_of(self, step_id: str) -> list[dict[str, Any]]:
        return [dict(r["outputs"]) for r in self.retired if r["step"] == step_id]

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
            "lineage": self.lineage,
            "serial": self.serial,
            "deployment": self.deployment,
            "cloud": self.cloud,
            "target": self.target,
            "spec_path": self.spec_path,
            "spec": self.spec,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "last_command": self.last_command,
            "facts": self.facts,
            "retired": self.retired,
            "steps": [rec.to_json() for rec in self.steps.values()],
        }

    def _save_locked(self) -> None:
        self.updated_at = now_iso()
        self.serial += 1
        payload = json.dumps(self.to_json(), indent=2, sort_keys=False).encode() + b"\n"
        try:
            self._token = self.backend.write(payload, self._token)
        except BaseException:
            self.serial -= 1  # not written: the serial names writes that landed
            raise
