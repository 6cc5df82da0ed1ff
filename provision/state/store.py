"""The state: what exists, step by step.

Every change is durable before the call that made it returns, through its backend (state/backend.py). Local: a
line appended and fsynced to the journal beside the snapshot (state/journal.py: what changed since the last
write, so bytes stay linear in the transitions), the snapshot rewritten atomically only to compact it (at the
end of a command, `compact`, and when the journal outgrows it). S3: the whole object, compare-and-swap on its
ETag. Either way a crash at any instant leaves the old or the new state, never half of one; a state that fails
to parse is never overwritten. The backend's lock is held for a run.

A write sends only what differs from what was last written; nothing differing, nothing is written (a no-op
`resume` writes nothing). Concurrent changes from parallel steps commit as a group: a change that a write in
flight already carries waits for that write instead of making another.

Schema 3 adds `lineage` (a uuid fixed when the state is created: which deployment's history this is) and
`serial` (+1 on every write): a saved plan or an import names the lineage and serial it expects.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from provision.errors import LineageError, StateFileError
from provision.state import journal
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

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        # Its StateFile's hook: a record changed in place (not only through update) is written with the next write.
        touched: Callable[[str], None] | None = self.__dict__.get("_touched")
        if touched is not None:
            touched(self.id)

    def to_json(self) -> dict[str, Any]:
        # By hand, in field order: dataclasses.asdict's deep copy was most of a 700-record state's write time.
        return {
            "id": self.id, "kind": self.kind, "status": self.status.value, "outputs": dict(self.outputs),
            "external": self.external, "create_attempted": self.create_attempted, "attempts": self.attempts,
            "started_at": self.started_at, "finished_at": self.finished_at, "last_error": self.last_error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StepRecord":
        return cls(**{**data, "status": Status(data["status"])})


@dataclass
class _Write:
    """One write being made: what it sends, and what is written once it lands (see StateFile._prepare)."""

    snapshot: bool
    payload: bytes
    first: bytes  # a new journal's header
    bumped: bool  # the serial was raised for it (a compaction alone keeps the serial)
    taken: dict[str, None]  # the dirty step ids it took
    steps: dict[str, str]  # step id -> its record's JSON text, as written
    header: dict[str, str]
    facts: dict[str, str]
    unset: list[str]
    facts_all: str


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
        # What this process sent the backend (the benchmark reports them).
        self.writes = 0
        self.bytes_written = 0
        # Guards the in-memory state and the one write in flight (reentrant: a record's hook runs inside update).
        self._cond = threading.Condition(threading.RLock())
        self._writing = False
        self._changes = 0  # changes made in memory, counted
        self._durable = 0  # of those, how many a landed write holds
        self._dirty: dict[str, None] = {}  # step ids changed since the last write, in order (new records last)
        # What was last written, as JSON text per step, header field and fact; unknown until read or written whole.
        self._known = False
        self._written_steps: dict[str, str] = {}
        self._written_header: dict[str, str] = {}
        self._written_facts: dict[str, str] = {}
        self._written_facts_all = ""
        # Local: the snapshot on disk plus this view's journal lines are exactly what it last wrote, so a write may
        # append; else (a state new, migrated, or loaded with a journal left by a killed run) it writes a snapshot.
        self._journaled = isinstance(self.backend, LocalBackend)
        self._journal_ready = False
        self._journal_bytes = 0  # appended since the last snapshot
        self._snapshot_bytes = 0
        self._leftover = False  # loaded with a journal: a lock holder's compact folds it in even if it wrote nothing
        for record in self.steps.values():
            self._adopt(record)

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
        """The state as last written: local, the snapshot with its journal replayed over it."""
        backend = LocalBackend(where) if isinstance(where, (str, Path)) else where
        name = backend.describe()
        if isinstance(backend, LocalBackend):
            (raw, lines), token = backend.read_journaled(), None
        else:
            (raw, token), lines = backend.read(), b""
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            where_ = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})" if isinstance(exc, json.JSONDecodeError) else ""
            raise StateFileError(f"state file {name} is not valid JSON{where_}; it was left untouched") from None
        if not isinstance(data, dict):
            raise StateFileError(f"state file {name} is not a JSON object; it was left untouched")
        current = data.get("schema_version") == SCHEMA_VERSION
        data = _migrate(data)
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StateFileError(
                f"state file {name} has schema_version {version!r}; this provision reads {SCHEMA_VERSION}"
            )
        if lines:
            assert isinstance(backend, LocalBackend)
            data = journal.replay(data, lines, str(backend.journal))
        try:
            state = cls(backend, data, token)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StateFileError(f"state file {name} is malformed ({type(exc).__name__}: {exc}); left untouched") from None
        if current:  # a migrated state differs from its file: its first write writes it whole, in the new schema
            state._remember_all()
            state._journal_ready = not lines
        state._leftover = bool(lines)
        state._snapshot_bytes = len(raw)
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
        with self._cond:
            for step_id, kind in steps:
                if step_id not in self.steps:
                    record = self.steps[step_id] = StepRecord(id=step_id, kind=kind)
                    self._adopt(record)
                    self._touch(step_id)

    def record(self, step_id: str) -> StepRecord:
        return self.steps[step_id]

    def update(self, step_id: str, **changes: Any) -> StepRecord:
        with self._cond:
            record = self.steps[step_id]
            for key, value in changes.items():
                setattr(record, key, value)
            mine = self._changed()
        self._commit(mine)
        return record

    def remember(self, key: str, value: Any) -> None:
        with self._cond:
            self.facts[key] = value
            mine = self._changed()
        self._commit(mine)

    def retire(self, step_id: str, outputs: dict[str, Any]) -> None:
        with self._cond:
            entry = {"step": step_id, "outputs": dict(outputs)}
            if entry in self.retired:
                return
            self.retired.append(entry)
            mine = self._changed()
        self._commit(mine)

    def release(self, step_id: str, outputs: dict[str, Any]) -> None:
        """A retired resource is gone: forget it."""
        with self._cond:
            entry = {"step": step_id, "outputs": dict(outputs)}
            if entry not in self.retired:
                return
            self.retired.remove(entry)
            mine = self._changed()
        self._commit(mine)

    def retired_of(self, step_id: str) -> list[dict[str, Any]]:
        return [dict(r["outputs"]) for r in self.retired if r["step"] == step_id]

    def live_records(self) -> list[StepRecord]:
        """Records whose resource may exist."""
        return [r for r in self.steps.values() if r.status not in (Status.PENDING, Status.DELETED)]

    def outputs(self) -> dict[str, dict[str, Any]]:
        return {sid: rec.outputs for sid, rec in self.steps.items()}

    def save(self) -> None:
        """Persist whatever changed in memory (set directly on the view); nothing changed, nothing is written."""
        with self._cond:
            mine = self._changed()
        self._commit(mine)

    def compact(self) -> None:
        """Local: fold the journal into a new snapshot (same serial unless something changed: only the layout does),
        leaving the state file one complete JSON document. Only a journal this view wrote, or, while this process
        holds the lock, one a killed run left: a reader without the lock (plan, status) never writes."""
        if self._journaled:
            with self._cond:
                mine = self._changed()
            self._commit(mine, snapshot=True)

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
            "facts": dict(self.facts),
            "retired": list(self.retired),
            "steps": [rec.to_json() for rec in self.steps.values()],
        }

    def _adopt(self, record: StepRecord) -> None:
        object.__setattr__(record, "_touched", self._touch)

    def _touch(self, step_id: str) -> None:
        with self._cond:
            self._dirty[step_id] = None

    def _changed(self) -> int:
        self._changes += 1
        return self._changes

    def _remember_all(self) -> None:
        """What is in memory is what is written (just read, or the data of a whole write)."""
        self._written_steps = {sid: journal.dumps(rec.to_json()) for sid, rec in self.steps.items()}
        self._written_header = {f: journal.dumps(getattr(self, f)) for f in journal.HEADER_FIELDS}
        self._written_facts = {k: journal.dumps(v) for k, v in self.facts.items()}
        self._written_facts_all = journal.dumps(self.facts)
        self._known = True

    def _commit(self, mine: int, snapshot: bool = False) -> None:
        """Return once a landed write holds change `mine`: the one in flight if it took it, else one this thread
        makes (with every change made so far: a group commit)."""
        with self._cond:
            while self._writing and (snapshot or self._durable < mine):
                self._cond.wait()
            if snapshot and not self._journal_bytes and not (self._leftover and getattr(self.backend, "held", None) is not None):
                return  # no journal to fold in (or not ours to fold)
            if self._durable >= mine and not snapshot:
                return
            self._writing = True
            upto = self._changes
            try:
                write = self._prepare(snapshot)
            except BaseException:
                self._writing = False
                self._cond.notify_all()
                raise
        try:
            sent = self._send(write) if write is not None else None
        except BaseException:
            with self._cond:
                assert write is not None
                if write.bumped:
                    self.serial -= 1  # not written: the serial names writes that landed
                self._dirty = {**write.taken, **self._dirty}
                self._writing = False
                self._cond.notify_all()
            raise
        with self._cond:
            if write is not None:
                self._landed(write, sent)
            self._durable = max(self._durable, upto)
            self._writing = False
            self._cond.notify_all()

    def _prepare(self, force_snapshot: bool) -> _Write | None:
        """The write of what differs from what was last written (None: nothing does); under the lock."""
        taken, self._dirty = self._dirty, {}
        changed = False
        try:
            steps, records = {}, []
            for sid in taken:
                record = self.steps[sid].to_json()
                text = journal.dumps(record)
                if self._written_steps.get(sid) != text:
                    steps[sid] = text
                    records.append(record)
            header = {f: text for f in journal.HEADER_FIELDS if (text := journal.dumps(getattr(self, f))) != self._written_header.get(f)}
            facts_all, facts, unset = journal.dumps(self.facts), {}, []
            if facts_all != self._written_facts_all:
                facts = {k: text for k, v in self.facts.items() if (text := journal.dumps(v)) != self._written_facts.get(k)}
                unset = [k for k in self._written_facts if k not in self.facts]
            changed = bool(steps or header or facts or unset) or not self._known
            if not changed and not force_snapshot:
                return None
            if changed:
                self.serial += 1
                self.updated_at = now_iso()
            if not self._known:  # the whole state is written: it is all known from here on
                steps = {sid: journal.dumps(rec.to_json()) for sid, rec in self.steps.items()}
                header = {f: journal.dumps(getattr(self, f)) for f in journal.HEADER_FIELDS}
                facts = {k: journal.dumps(v) for k, v in self.facts.items()}
            limit = max(journal.RATIO * self._snapshot_bytes, journal.FLOOR)
            if force_snapshot or not self._journaled or not self._journal_ready or self._journal_bytes > limit:
                payload, first = json.dumps(self.to_json(), indent=2, sort_keys=False).encode() + b"\n", b""
                snapshot = True
            else:
                entry: dict[str, Any] = {"serial": self.serial, "updated_at": self.updated_at}
                if records:
                    entry["steps"] = records
                if header:
                    entry["set"] = {f: getattr(self, f) for f in header}
                if facts:
                    entry["facts"] = {k: self.facts[k] for k in facts}
                if unset:
                    entry["unset"] = unset
                payload, first = journal.line(entry), journal.header(self.lineage, self.serial - 1)
                snapshot = False
        except BaseException:
            if changed:
                self.serial -= 1
            self._dirty = {**taken, **self._dirty}
            raise
        return _Write(snapshot, payload, first, changed, taken, steps, header, facts, unset, facts_all)

    def _send(self, write: _Write) -> int:
        """Outside the lock (changes go on meanwhile): the bytes sent."""
        if write.snapshot:
            self._token = self.backend.write(write.payload, self._token)
            return len(write.payload)
        assert isinstance(self.backend, LocalBackend)
        return self.backend.append(write.payload, write.first)

    def _landed(self, write: _Write, sent: int | None) -> None:
        self.writes += 1
        self.bytes_written += sent or 0
        self._written_steps.update(write.steps)
        self._written_header.update(write.header)
        self._written_facts.update(write.facts)
        for key in write.unset:
            self._written_facts.pop(key, None)
        self._written_facts_all = write.facts_all
        self._known = True
        if write.snapshot:
            self._journal_ready, self._journal_bytes, self._snapshot_bytes, self._leftover = True, 0, len(write.payload), False
        else:
            self._journal_bytes += sent or 0
