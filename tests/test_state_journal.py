"""The local state's journal (state/journal.py): replay, torn and corrupt lines, compaction, crash safety, bytes
linear in the transitions, and writes only of what changed (a no-op writes nothing). No sandbox."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from provision.errors import StateFileError
from provision.state.backend import LocalBackend
from provision.state.store import StateFile, Status

REPO = Path(__file__).resolve().parent.parent
SPEC = {"name": "acme-basic", "region": "us-east-1", "network": {"vpc_cidr": "10.40.0.0/16"}}


def new_state(path: Path, steps: int = 3) -> StateFile:
    state = StateFile.new(path, deployment="acme-basic", cloud="aws", target="sandbox", spec=SPEC, spec_path="spec.toml")
    state.ensure_steps([(f"step{i}", "aws.subnet") for i in range(steps)])
    state.save()
    return state


def journal_of(path: Path) -> Path:
    return path.with_name(path.name + ".journal")


def outputs(i: int) -> dict[str, Any]:
    return {"subnet_id": f"subnet-0{i:016x}", "arn": f"arn:aws:ec2:us-east-1:123456789012:subnet/subnet-0{i:016x}",
            "cidr": f"10.{i // 200}.{i % 200}.0/24", "availability_zone": "us-east-1a", "name": f"acme-basic-step{i}"}


def test_replay_gives_back_the_state_in_memory(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.last_command = "up"
    state.update("step0", status=Status.IN_PROGRESS, attempts=1, started_at="t0")
    state.remember("availability_zones", ["us-east-1a", "us-east-1b"])
    state.update("step0", status=Status.DONE, outputs=outputs(0), finished_at="t1")
    state.retire("step1", {"subnet_id": "subnet-old"})
    state.ensure_steps([("added", "aws.vpc")])
    state.update("step1", status=Status.FAILED, last_error="boom")
    state.release("step1", {"subnet_id": "subnet-old"})
    state.facts.pop("availability_zones")
    state.save()
    assert journal_of(path).exists() and json.loads(path.read_text())["serial"] == 1  # still the first snapshot
    again = StateFile.load(path)
    assert again.to_json() == state.to_json()
    assert again.serial == state.serial == 8


def test_a_torn_last_line_is_ignored_and_the_next_write_rewrites_the_snapshot(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.update("step0", attempts=1)
    acknowledged = state.to_json()
    with open(journal_of(path), "ab") as handle:  # a crash mid-append: part of a line, no newline
        handle.write(b'{"serial": 3, "steps": [{"id": "step0", "kind"')
    again = StateFile.load(path)
    assert again.to_json() == acknowledged
    again.update("step1", attempts=2)  # a journal a killed run left is folded in by a snapshot, never appended to
    assert not journal_of(path).exists()
    assert json.loads(path.read_text())["serial"] == 3 == StateFile.load(path).serial


def test_a_corrupt_line_elsewhere_is_an_error_naming_the_journal_and_line(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.update("step0", attempts=1)
    state.update("step0", attempts=2)
    lines = journal_of(path).read_bytes().split(b"\n")
    lines[1] = b"#" + lines[1][1:]
    journal_of(path).write_bytes(b"\n".join(lines))
    before = (path.read_bytes(), journal_of(path).read_bytes())
    with pytest.raises(StateFileError, match=r"state journal .*provision\.state\.json\.journal line 2 is corrupt") as info:
        StateFile.load(path)
    assert info.value.exit_code == 2
    assert (path.read_bytes(), journal_of(path).read_bytes()) == before  # left untouched


def test_a_gap_in_the_serials_is_an_error(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    for i in range(3):
        state.update("step0", attempts=i + 1)
    lines = journal_of(path).read_bytes().splitlines(keepends=True)
    journal_of(path).write_bytes(b"".join(lines[:2] + lines[3:]))
    with pytest.raises(StateFileError, match="line 3 has serial 4, expected 3"):
        StateFile.load(path)


def test_compaction_leaves_one_snapshot_at_the_same_serial_and_no_journal(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    for i in range(3):
        state.update(f"step{i}", status=Status.DONE, outputs=outputs(i))
    serial, writes = state.serial, state.writes
    state.compact()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["provision.state.json"]
    assert json.loads(path.read_text()) == state.to_json() and state.serial == serial
    assert state.writes == writes + 1
    state.compact()  # nothing left to fold in
    assert state.writes == writes + 1


def test_files_are_private(tmp_path):
    path = tmp_path / "provision.state.json"
    new_state(path).update("step0", attempts=1)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(journal_of(path).stat().st_mode) == 0o600


def test_nothing_changed_nothing_written(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.update("step0", status=Status.DONE, outputs=outputs(0))
    state.compact()
    before, writes = path.read_bytes(), state.writes
    state.save()
    state.update("step0", status=Status.DONE, outputs=outputs(0))  # the same values
    assert state.writes == writes
    loaded = StateFile.load(path)  # as a no-op resume sees it
    loaded.ensure_steps([("step0", "aws.subnet")])
    loaded.last_command = loaded.last_command
    loaded.save()
    loaded.compact()
    assert (loaded.writes, loaded.bytes_written) == (0, 0)
    assert path.read_bytes() == before and not journal_of(path).exists()


def test_a_record_changed_in_place_is_written_with_the_next_write(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.record("step2").external = True  # as the engine marks an external step, saved with the next transition
    state.update("step0", attempts=1)
    assert StateFile.load(path).record("step2").external is True


def test_bytes_written_grow_linearly_with_transitions(tmp_path, monkeypatch):
    """700 records, 3 transitions each: the whole-file rewrite wrote ~700 MB here (2100 x ~330 KB); the journal writes
    a few times the final snapshot, and half the records cost half the bytes."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # bytes are counted all the same; the disk is not the point here
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
    written = {}
    for records in (350, 700):
        path = tmp_path / f"{records}" / "provision.state.json"
        state = new_state(path, steps=records)
        for i in range(records):
            state.update(f"step{i}", status=Status.IN_PROGRESS, attempts=1, started_at="2025-01-01T00:00:00.000+00:00")
            state.update(f"step{i}", outputs=outputs(i))
            state.update(f"step{i}", status=Status.DONE, outputs=outputs(i), finished_at="2025-01-01T00:00:01.000+00:00")
        state.compact()
        written[records] = state.bytes_written
        assert StateFile.load(path).to_json() == state.to_json()
        assert state.bytes_written < 6 * path.stat().st_size
    assert written[700] < 2.3 * written[350]
    assert written[700] < 3_000_000  # vs 2100 whole-file writes of ~330 KB


def test_a_killed_writer_loses_no_acknowledged_update(tmp_path):
    path = tmp_path / "provision.state.json"
    new_state(path, steps=50)
    code = textwrap.dedent(f"""
        import os, sys
        from provision.state.store import StateFile, Status
        state = StateFile.load({str(path)!r})
        for i in range(50):
            state.update(f"step{{i}}", status=Status.DONE, outputs={{"id": i}})
            print(i, flush=True)  # acknowledged: update returned
            if i == 29:
                os.kill(os.getpid(), 9)  # mid-run: no compaction
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == -9, result.stderr
    acknowledged = [int(line) for line in result.stdout.split()]
    state = StateFile.load(path)
    assert acknowledged == list(range(30))
    assert [state.record(f"step{i}").status for i in acknowledged] == [Status.DONE] * 30
    assert state.record("step30").status is Status.PENDING and journal_of(path).exists()


def test_a_crash_between_a_compaction_and_the_journal_removal_replays_nothing_twice(tmp_path):
    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.update("step0", attempts=1)
    state.update("step0", attempts=2)
    left = journal_of(path).read_bytes()
    state.compact()
    journal_of(path).write_bytes(left)  # its removal lost
    again = StateFile.load(path)
    assert again.to_json() == state.to_json()
    again.update("step0", attempts=3)
    assert StateFile.load(path).record("step0").attempts == 3 and StateFile.load(path).serial == again.serial


def test_a_journal_of_a_replaced_lineage_is_ignored(tmp_path):
    path = tmp_path / "provision.state.json"
    old = new_state(path)
    old.update("step0", status=Status.DONE, outputs=outputs(0))
    left = journal_of(path).read_bytes()
    fresh = StateFile.new(path, deployment="acme-basic", cloud="aws", target="sandbox", spec=SPEC, spec_path=None,
                          replacing=StateFile.load(path))
    fresh.save()
    journal_of(path).write_bytes(left)
    assert StateFile.load(path).to_json() == fresh.to_json()


def test_a_journal_left_by_a_killed_run_is_folded_in_only_under_the_lock(tmp_path):
    path = tmp_path / "provision.state.json"
    new_state(path).update("step0", attempts=1)  # never compacted: as a killed run leaves it
    backend = LocalBackend(path)
    reader = StateFile.load(backend)
    reader.compact()  # no lock (plan, status): no write
    assert journal_of(path).exists() and reader.writes == 0
    with backend.lock("resume"):
        holder = StateFile.load(backend)
        holder.compact()
    assert not journal_of(path).exists() and holder.writes == 1
    assert json.loads(path.read_text())["steps"][0]["attempts"] == 1


def test_a_reader_racing_a_compaction_reads_again(tmp_path, monkeypatch):
    path = tmp_path / "provision.state.json"
    writer = new_state(path)
    writer.update("step0", attempts=1)
    reader = LocalBackend(path)
    real = reader.journal

    class Racing:
        calls = 0

        def read_bytes(self) -> bytes:
            Racing.calls += 1
            if Racing.calls == 1:
                writer.update("step1", attempts=5)
                writer.compact()  # the snapshot read is now stale and the journal gone
            return real.read_bytes()

    monkeypatch.setattr(reader, "journal", Racing())
    loaded = StateFile.load(reader)
    assert Racing.calls == 2 and loaded.to_json() == writer.to_json()


class SlowBackend:
    """A whole-object store like S3 (no journal): each write takes a while, so parallel changes pile up behind it."""

    def __init__(self) -> None:
        self.payload: bytes | None = None
        self.puts = 0

    def exists(self) -> bool:
        return self.payload is not None

    def read(self) -> tuple[bytes, str | None]:
        assert self.payload is not None
        return self.payload, str(self.puts)

    def write(self, payload: bytes, expected: str | None) -> str:
        time.sleep(0.01)
        self.payload, self.puts = payload, self.puts + 1
        return str(self.puts)

    def describe(self) -> str:
        return "slow://state"


def test_parallel_changes_to_a_whole_object_state_commit_as_a_group(tmp_path):
    where = SlowBackend()
    state = new_state(where, steps=40)  # type: ignore[arg-type]
    start = threading.Barrier(8)

    def run(worker: int) -> None:
        start.wait()
        for i in range(worker, 40, 8):
            state.update(f"step{i}", status=Status.DONE, outputs={"n": i})
            # Durable when update returns: the object already holds it.
            assert StateFile.load(where).record(f"step{i}").outputs == {"n": i}  # type: ignore[arg-type]

    threads = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert StateFile.load(where).to_json() == state.to_json()  # type: ignore[arg-type]
    assert state.writes == where.puts < 1 + 40  # fewer PUTs than changes
    assert state.serial == where.puts


def test_finish_compacts_and_logs_the_state_counters(tmp_path):
    from structlog.testing import CapturingLogger

    from provision.app.runner import finish

    path = tmp_path / "provision.state.json"
    state = new_state(path)
    state.update("step0", attempts=1)
    logger = CapturingLogger()
    engine = SimpleNamespace(state=state, ctx=SimpleNamespace(clients=SimpleNamespace(stats=SimpleNamespace(summary=dict))))
    finish(None, logger, engine, "succeeded")  # type: ignore[arg-type]
    [event] = [c for c in logger.calls if c.args == ("run finished",)]
    assert event.kwargs["state_writes"] == 3 and event.kwargs["state_bytes_written"] == state.bytes_written > 0
    assert not journal_of(path).exists()


def test_the_journal_survives_only_as_long_as_it_must(tmp_path, monkeypatch):
    """Past 2x the snapshot, a write is a snapshot instead of a line: a long run's journal stays bounded."""
    monkeypatch.setattr(os, "fsync", lambda fd: None)
    monkeypatch.setattr(os, "fdatasync", lambda fd: None)
    path = tmp_path / "provision.state.json"
    state = new_state(path, steps=20)
    biggest = 0
    for i in range(1000):
        state.update(f"step{i % 20}", attempts=i)
        biggest = max(biggest, journal_of(path).stat().st_size if journal_of(path).exists() else 0)
    assert biggest <= 2 * path.stat().st_size + 64 * 1024 + 4096
    assert StateFile.load(path).to_json() == state.to_json()
    assert os.path.getsize(path) < 20_000
