"""The state file, its lock and failpoints."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provision.errors import InjectedFault, StateFileError, StateLockedError, UsageError
from provision.orchestrator.failpoints import Failpoints
from provision.state.store import SCHEMA_VERSION, StateFile, StateLock, Status

REPO = Path(__file__).resolve().parent.parent
SPEC = {"name": "acme-basic", "region": "us-east-1", "network": {"vpc_cidr": "10.40.0.0/16"}}


def new_state(path: Path) -> StateFile:
    state = StateFile.new(path, deployment="acme-basic", cloud="aws", target="real", spec=SPEC, spec_path="examples/basic.toml")
    state.ensure_steps([("vpc", "aws.vpc"), ("bucket", "aws.s3_bucket")])
    return state


# --- StateFile ---------------------------------------------------------------------------------


def test_new_and_save_writes_a_private_json_file(tmp_path):
    path = tmp_path / "nested" / "provision.state.json"
    new_state(path).save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION == 3
    assert data["serial"] == 1 and len(data["lineage"]) == 36
    assert data["deployment"] == "acme-basic"
    assert (data["cloud"], data["target"]) == ("aws", "real")
    assert data["spec"] == SPEC
    assert data["spec_path"] == "examples/basic.toml"
    assert [(s["id"], s["kind"], s["status"]) for s in data["steps"]] == [("vpc", "aws.vpc", "pending"), ("bucket", "aws.s3_bucket", "pending")]


def test_update_persists_immediately(tmp_path):
    path = tmp_path / "state.json"
    state = new_state(path)
    state.save()
    state.update("vpc", status=Status.DONE, outputs={"vpc_id": "vpc-123"}, attempts=1)
    again = StateFile.load(path)
    assert again.record("vpc").status is Status.DONE
    assert again.record("vpc").outputs == {"vpc_id": "vpc-123"}
    assert again.record("vpc").attempts == 1
    assert again.record("bucket").status is Status.PENDING
    assert again.outputs() == {"vpc": {"vpc_id": "vpc-123"}, "bucket": {}}


def test_round_trip_preserves_everything(tmp_path):
    path = tmp_path / "state.json"
    state = new_state(path)
    state.last_command = "create"
    state.update("bucket", status=Status.FAILED, last_error="AccessDenied", external=True, started_at="t0", finished_at="t1")
    assert StateFile.load(path).to_json() == state.to_json()


def test_update_of_unknown_step_raises_and_writes_nothing(tmp_path):
    path = tmp_path / "state.json"
    with pytest.raises(KeyError):
        new_state(path).update("nope", status=Status.DONE)
    assert not path.exists()


def test_atomic_writes_leave_no_temp_files(tmp_path):
    path = tmp_path / "state.json"
    state = new_state(path)
    for i in range(5):
        state.update("vpc", attempts=i)
    # Between snapshots the writes are journal lines (state/journal.py); compacting folds them in.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.journal"]
    assert StateFile.load(path).record("vpc").attempts == 4
    state.compact()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    assert StateFile.load(path).record("vpc").attempts == 4


def test_a_snapshot_replaces_the_file_rather_than_rewriting_it(tmp_path):
    path = tmp_path / "state.json"
    state = new_state(path)
    state.save()
    before = path.stat().st_ino
    state.update("vpc", attempts=1)
    state.compact()
    assert path.stat().st_ino != before


def test_load_missing_file(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(StateFileError, match="does not exist") as info:
        StateFile.load(path)
    assert str(path) in str(info.value)


def _valid() -> dict:
    return {"schema_version": 2, "deployment": "acme-basic", "cloud": "aws", "target": "real", "spec": SPEC, "steps": []}


def _without(key: str) -> dict:
    data = _valid()
    del data[key]
    return data


@pytest.mark.parametrize(
    "content, why",
    [
        (json.dumps(_valid())[:40], "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('"state"', "not a JSON object"),
        (json.dumps({**_valid(), "schema_version": 99}), "schema_version 99"),
        (json.dumps({**_valid(), "schema_version": 3}), "malformed"),  # schema 3 without a lineage
        (json.dumps({**_valid(), "target": "aws"}), "malformed"),
        (json.dumps(_without("cloud")), "malformed"),
        (json.dumps(_without("schema_version")), "schema_version None"),
        (json.dumps(_without("deployment")), "malformed"),
        (json.dumps(_without("spec")), "malformed"),
        (json.dumps({**_valid(), "steps": [{"id": "vpc", "kind": "aws.vpc", "status": "exploded"}]}), "malformed"),
        (json.dumps({**_valid(), "steps": [{"id": "vpc", "kind": "aws.vpc", "status": "done", "colour": 1}]}), "malformed"),
        (json.dumps({**_valid(), "steps": ["vpc"]}), "malformed"),
        (json.dumps({**_valid(), "steps": 3}), "malformed"),
    ],
)
def test_corrupt_file_raises_and_is_left_untouched(tmp_path, content, why):
    path = tmp_path / "state.json"
    path.write_bytes(content.encode())
    with pytest.raises(StateFileError) as info:
        StateFile.load(path)
    assert str(path) in str(info.value)
    assert why in str(info.value)
    assert path.read_bytes() == content.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_state_file_error_is_exit_code_2(tmp_path):
    path = tmp_path / "provision.state.json"
    path.write_text("{truncated")
    with pytest.raises(StateFileError) as err:
        StateFile.load(path)
    assert err.value.exit_code == 2 and str(path) in str(err.value)


# --- StateLock ---------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from provision.state.store import StateLock
    StateLock(Path(sys.argv[1])).acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)


def _hold_lock(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_held_by_another_process_names_its_pid_and_is_freed_by_sigkill(tmp_path):
    path = tmp_path / "state.json"
    holder = _hold_lock(path)
    try:
        with pytest.raises(StateLockedError) as info:
            StateLock(path).acquire()
        assert f"pid {holder.pid}" in str(info.value)
        assert str(path) in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    lock = StateLock(path)
    lock.acquire()
    try:
        assert (tmp_path / "state.json.lock").read_text() == str(os.getpid())
    finally:
        lock.release()


def test_lock_is_exclusive_within_a_process_and_reusable_after_release(tmp_path):
    path = tmp_path / "state.json"
    with StateLock(path):
        with pytest.raises(StateLockedError):
            StateLock(path).acquire()
    with StateLock(path):
        pass


def test_lock_file_is_private(tmp_path):
    path = tmp_path / "state.json"
    with StateLock(path) as lock:
        assert lock.path == tmp_path / "state.json.lock"
        assert stat.S_IMODE(lock.path.stat().st_mode) == 0o600


# --- Failpoints --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [None, "", "  ", ";;"])
def test_unset_failpoints_do_nothing(spec):
    fp = Failpoints(spec)
    for _ in range(3):
        fp.hit("vpc", "before_create")
        fp.hit("*", "after_delete")


def test_from_env(monkeypatch):
    monkeypatch.setenv("PROVISION_FAILPOINTS", "vpc:before_create=error")
    with pytest.raises(InjectedFault):
        Failpoints.from_env().hit("vpc", "before_create")
    monkeypatch.delenv("PROVISION_FAILPOINTS")
    Failpoints.from_env().hit("vpc", "before_create")


def test_valid_specs_parse_and_fire_only_where_armed():
    fp = Failpoints(" nat.0:after_create=transient ; dbx.workspace:before_create=error, vpc-1:after_checkpoint=transient*3 ")
    fp.hit("nat.0", "before_create")
    fp.hit("nat.1", "after_create")
    fp.hit("vpc", "after_checkpoint")
    with pytest.raises(InjectedFault) as info:
        fp.hit("nat.0", "after_create")
    assert info.value.transient
    assert "nat.0:after_create" in str(info.value)
    with pytest.raises(InjectedFault):
        fp.hit("dbx.workspace", "before_create")
    with pytest.raises(InjectedFault):
        fp.hit("vpc-1", "after_checkpoint")


@pytest.mark.parametrize(
    "spec",
    [
        "garbage",
        "vpc:before_create",
        "vpc:before_create=explode",
        "vpc:during_create=kill",
        "vpc:before_create=kill*",
        "vpc:before_create=error*x",
        "vpc before_create=error",
        "vpc:before_create=error; nonsense",
    ],
)
def test_bad_spec_raises_usage_error(spec):
    with pytest.raises(UsageError, match="step:point=action"):
        Failpoints(spec)


def test_transient_n_fires_n_times_then_stops():
    fp = Failpoints("vpc:before_create=transient*2")
    for _ in range(2):
        with pytest.raises(InjectedFault) as info:
            fp.hit("vpc", "before_create")
        assert info.value.transient
    for _ in range(3):
        fp.hit("vpc", "before_create")


def test_error_is_terminal_and_fires_every_time():
    fp = Failpoints("vpc:after_create=error")
    for _ in range(3):
        with pytest.raises(InjectedFault) as info:
            fp.hit("vpc", "after_create")
        assert info.value.transient is False
        assert "terminal" in str(info.value)


def test_wildcard_step_matches_every_step_at_its_point():
    fp = Failpoints("*:before_delete=error")
    for step in ("vpc", "nat.0", "dbx.workspace"):
        with pytest.raises(InjectedFault, match=f"{step}:before_delete"):
            fp.hit(step, "before_delete")
    fp.hit("vpc", "before_create")


def test_specific_entry_takes_precedence_over_wildcard():
    fp = Failpoints("*:before_create=error; vpc:before_create=transient*1")
    with pytest.raises(InjectedFault) as info:
        fp.hit("vpc", "before_create")
    assert info.value.transient
    with pytest.raises(InjectedFault) as info:
        fp.hit("bucket", "before_create")
    assert not info.value.transient


def test_kill_really_sigkills_the_process():
    code = (
        "from provision.orchestrator.failpoints import Failpoints\n"
        "Failpoints('x:before_create=kill').hit('x', 'before_create')\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == -9
    assert "survived" not in result.stdout


def test_kill_does_not_fire_at_other_points():
    code = (
        "from provision.orchestrator.failpoints import Failpoints\n"
        "Failpoints('x:before_create=kill').hit('x', 'after_create')\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == "survived"


# --- schema 1 (cloud and target in one field) ---------------------------------------------------


@pytest.mark.parametrize("old_target, cloud, target", [("aws", "aws", "real"), ("sandbox", "aws", "sandbox")])
def test_a_schema_1_file_is_read_with_cloud_and_target_apart_and_saved_as_schema_2(tmp_path, old_target, cloud, target):
    path = tmp_path / "provision.state.json"
    step = {"id": "vpc", "kind": "aws.vpc", "status": "done", "outputs": {"vpc_id": "vpc-1"}}
    path.write_text(json.dumps({"schema_version": 1, "deployment": "acme-basic", "target": old_target, "spec": SPEC, "steps": [step]}))
    state = StateFile.load(path)
    assert (state.cloud, state.target) == (cloud, target)
    assert state.record("vpc").outputs == {"vpc_id": "vpc-1"}
    assert json.loads(path.read_text())["schema_version"] == 1  # reading alone rewrites nothing
    state.save()
    saved = json.loads(path.read_text())
    assert (saved["schema_version"], saved["cloud"], saved["target"]) == (3, cloud, target)
    assert saved["serial"] == 1 and saved["lineage"] == state.lineage
