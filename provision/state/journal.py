"""The local state's journal: `<state>.journal`, one JSON line per write, beside the snapshot (`<state>`).

Rewriting the whole snapshot on every transition costs bytes quadratic in the deployment's size (a 700-step
state is ~450 KB; 2100 transitions wrote 700 MB). Instead a write appends what changed since the last write
(the step records, header fields and facts that differ), fsynced before it returns, so a change is as durable
as a snapshot write was; the snapshot is rewritten (atomically, see backend.py) only to compact: at the end
of a command and when the journal outgrows the snapshot.

    {"journal": 1, "lineage": "<uuid>", "base": 41}                       first line: the snapshot it extends
    {"serial": 42, "updated_at": "...", "steps": [{...record...}], "set": {"last_command": "up"},
     "facts": {"key": value}, "unset": ["key"]}                           then one line per write

On load the lines are replayed over the snapshot. The final line, if it has no newline, may be a crash mid-append
(never acknowledged): it is ignored. Any other line that does not parse is corruption: StateFileError, and the
files are left untouched. Lines whose serial the snapshot already holds are skipped (a crash between a compaction's
rename and the journal's removal), and so is a journal of another lineage (a new state replaced the old).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from provision.errors import StateFileError

FORMAT = 1
SUFFIX = ".journal"
# Header fields of the state document a journal line may set (everything but steps, facts, serial, updated_at).
HEADER_FIELDS = ("deployment", "cloud", "target", "spec_path", "spec", "created_at", "last_command", "retired")
# Compact when the journal passes RATIO x the snapshot (and FLOOR bytes): each compaction writes at most half
# the journal bytes that preceded it, so total bytes stay linear in the transitions, and replay stays cheap.
RATIO = 2
FLOOR = 64 * 1024


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def header(lineage: str, base: int) -> bytes:
    return (dumps({"journal": FORMAT, "lineage": lineage, "base": base}) + "\n").encode()


def line(entry: dict[str, Any]) -> bytes:
    return (dumps(entry) + "\n").encode()


def path_of(state_path: Path) -> Path:
    return state_path.with_name(state_path.name + SUFFIX)


def append(path: Path, payload: bytes, first: bytes) -> int:
    """Append `payload` to the journal at `path` and make it durable; `first` (the header) goes before it when the
    journal is new. Returns the bytes written."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # Empty: new, or created by a run killed before its header landed.
        created = os.fstat(fd).st_size == 0
        data = first + payload if created else payload
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        # fdatasync also flushes the file's new size: what a reader after a crash needs.
        getattr(os, "fdatasync", os.fsync)(fd)
    finally:
        os.close(fd)
    if created:
        # The new name itself must survive a crash, or the lines in it would vanish with it.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return len(data)


def replay(data: dict[str, Any], raw: bytes, name: str) -> dict[str, Any]:
    """`data` (the snapshot's document) with the journal `raw` applied; StateFileError naming `name` and the line
    for a corrupt journal."""
    lines = raw.split(b"\n")
    # A final segment with no newline was cut mid-append: never acknowledged, so ignored if it does not parse.
    torn = lines.pop() if lines else b""
    parsed: list[tuple[int, dict[str, Any]]] = []
    for number, text in enumerate(lines, start=1):
        parsed.append((number, _parse(text, number, name)))
    if torn.strip():
        try:
            parsed.append((len(lines) + 1, _parse(torn, len(lines) + 1, name)))
        except StateFileError:
            pass
    if not parsed:
        return data
    (_, head), entries = parsed[0], parsed[1:]
    if head.get("journal") != FORMAT or not isinstance(head.get("base"), int):
        raise StateFileError(f"state journal {name} line 1 is not a journal header of format {FORMAT}; it was left untouched")
    if head.get("lineage") != data.get("lineage"):
        return data  # a replaced lineage's journal whose removal a crash prevented
    serial = data.get("serial")
    if not isinstance(serial, int) or head["base"] > serial:
        raise StateFileError(
            f"state journal {name} extends serial {head['base']}, but its snapshot is at serial {serial}; it was left untouched"
        )
    expected = head["base"] + 1
    steps = data.setdefault("steps", [])
    index = {s.get("id"): i for i, s in enumerate(steps) if isinstance(s, dict)}
    for number, entry in entries:
        if entry.get("serial") != expected:
            raise StateFileError(
                f"state journal {name} line {number} has serial {entry.get('serial')!r}, expected {expected}; it was left untouched"
            )
        expected += 1
        if entry["serial"] <= serial:
            continue  # already in the snapshot
        _apply(data, entry, steps, index, name, number)
    return data


def _parse(text: bytes, number: int, name: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        value = None
    if not isinstance(value, dict):
        raise StateFileError(f"state journal {name} line {number} is corrupt (not a JSON object); it was left untouched")
    return value


def _apply(data: dict[str, Any], entry: dict[str, Any], steps: list[Any], index: dict[Any, int], name: str, number: int) -> None:
    try:
        data["serial"] = entry["serial"]
        if "updated_at" in entry:
            data["updated_at"] = entry["updated_at"]
        for key, value in (entry.get("set") or {}).items():
            if key not in HEADER_FIELDS:
                raise ValueError(f"it sets {key!r}")
            data[key] = value
        facts = data.setdefault("facts", {})
        facts.update(entry.get("facts") or {})
        for key in entry.get("unset") or ():
            facts.pop(key, None)
        for record in entry.get("steps") or ():
            step_id = record["id"]
            if step_id in index:
                steps[index[step_id]] = record
            else:
                index[step_id] = len(steps)
                steps.append(record)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise StateFileError(f"state journal {name} line {number} is malformed ({type(exc).__name__}: {exc}); it was left untouched") from None
