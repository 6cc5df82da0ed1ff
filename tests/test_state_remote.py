"""Remote state on S3 (provision/state/s3.py), lineage and serial, saved plans, and the sandbox's conditional
writes (clouds/aws/sandbox/s3.py, rule 18). Units against the sandbox's AWS app served in-process: cheap, no daemon."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from werkzeug.serving import make_server

from provision.clouds.aws.sandbox import make_aws_app
from provision.errors import (
    LineageError,
    LockLostError,
    StateConflictError,
    StateFileError,
    StateLockedError,
    UsageError,
)
from provision.sandbox.settings import SandboxSettings
from provision.state import plans
from provision.state.backend import open_backend
from provision.state.s3 import S3Backend, force_unlock
from provision.state.store import StateFile, Status

SPEC = {"name": "acme-basic", "region": "us-east-1", "network": {"vpc_cidr": "10.40.0.0/16"}}


@pytest.fixture(scope="module")
def aws_url() -> Iterator[str]:
    server = make_server("127.0.0.1", 0, make_aws_app(SandboxSettings()), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="module")
def s3(aws_url: str) -> Any:
    return boto3.client("s3", endpoint_url=aws_url, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"state-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def backend(aws_url: str, bucket: str, key: str = "acme/state.json", **options: Any) -> S3Backend:
    made = open_backend(f"s3://{bucket}/{key}", endpoint_url=aws_url, sandbox=True, **options)
    assert isinstance(made, S3Backend)
    return made


def new_state(where: Any) -> StateFile:
    state = StateFile.new(where, deployment="acme-basic", cloud="aws", target="sandbox", spec=SPEC, spec_path="spec.toml")
    state.ensure_steps([("vpc", "aws.vpc"), ("bucket", "aws.s3_bucket")])
    return state


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# --- the S3 backend -------------------------------------------------------------------------------------


def test_state_object_holds_the_state_json_encrypted_and_counts_serials(aws_url, bucket, s3):
    where = backend(aws_url, bucket, kms_key_id="alias/state")
    assert not where.exists()
    state = new_state(where)
    state.save()
    state.update("vpc", status=Status.DONE, outputs={"vpc_id": "vpc-1"})
    head = s3.head_object(Bucket=bucket, Key="acme/state.json")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith("alias/state")
    again = StateFile.load(backend(aws_url, bucket))
    assert (again.lineage, again.serial) == (state.lineage, 2)
    assert again.record("vpc").outputs == {"vpc_id": "vpc-1"}
    assert again.path == f"s3://{bucket}/acme/state.json"


def test_a_second_new_state_never_overwrites_the_first(aws_url, bucket):
    new_state(backend(aws_url, bucket)).save()
    with pytest.raises(StateConflictError, match="changed since this run read it"):
        new_state(backend(aws_url, bucket)).save()


def test_a_missing_bucket_or_state_is_named(aws_url):
    where = backend(aws_url, "no-such-state-bucket")
    with pytest.raises(StateFileError, match="state bucket no-such-state-bucket does not exist"):
        where.exists()
    with pytest.raises(StateFileError, match="no-such-state-bucket does not exist"):
        StateFile.load(where)


def test_missing_state_object_is_a_state_file_error(aws_url, bucket):
    with pytest.raises(StateFileError, match="does not exist") as info:
        StateFile.load(backend(aws_url, bucket))
    assert info.value.exit_code == 2


def test_an_unversioned_bucket_is_a_warning(aws_url, bucket, s3):
    assert "not versioned" in backend(aws_url, bucket).warnings()[0]
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    assert backend(aws_url, bucket).warnings() == []


def test_two_runs_racing_never_lose_a_write(aws_url, bucket, s3):
    """Acceptance 2: run A loses its lock (removed while A is alive); B takes the state and writes; A's next
    write fails on the ETag check and B's write stands."""
    new_state(backend(aws_url, bucket)).save()
    a_backend = backend(aws_url, bucket, lock_ttl_seconds=3600)  # no heartbeat before A writes: the ETag alone decides
    with a_backend.lock("up") as a_lock:
        a = StateFile.load(a_backend)
        force_unlock(backend(aws_url, bucket), a_lock.id)
        b_backend = backend(aws_url, bucket)
        with b_backend.lock("resume") as b_lock:
            b = StateFile.load(b_backend)
            b.update("bucket", status=Status.DONE, outputs={"bucket": "b-wrote-this"})
            with pytest.raises(StateConflictError, match="another run wrote serial 2") as info:
                a.update("vpc", status=Status.DONE, outputs={"vpc_id": "a-wrote-this"})
            assert info.value.exit_code == 1
            assert a.serial == 1  # the refused write counted nothing
            held = json.loads(s3.get_object(Bucket=bucket, Key="acme/state.json.lock")["Body"].read())
            assert held["id"] == b_lock.id
        # A's release leaves B's (already released) lock alone and deletes nothing of B's state.
    final = StateFile.load(backend(aws_url, bucket))
    assert final.record("bucket").outputs == {"bucket": "b-wrote-this"}
    assert final.record("vpc").status is Status.PENDING and final.serial == 2


def test_a_refused_heartbeat_loses_the_lock_and_stops_writes(aws_url, bucket, s3):
    where = backend(aws_url, bucket, lock_ttl_seconds=1)  # a beat every 0.25 s
    state = new_state(where)
    with where.lock("up") as lock:
        state.save()
        # Another run takes the lock over (as after a TTL): the holder's next conditional refresh is refused.
        s3.put_object(Bucket=bucket, Key="acme/state.json.lock", Body=b'{"id": "other"}')
        wait_until(lambda: lock.lost is not None)
        with pytest.raises(LockLostError, match="lost its lock"):
            state.update("vpc", attempts=1)
    assert json.loads(s3.get_object(Bucket=bucket, Key="acme/state.json.lock")["Body"].read()) == {"id": "other"}


def test_a_held_lock_is_refused_naming_its_holder_then_released(aws_url, bucket, s3):
    with backend(aws_url, bucket).lock("up") as held:
        with pytest.raises(StateLockedError) as info:
            backend(aws_url, bucket).lock("teardown").acquire()
        message = str(info.value)
        for part in (socket.gethostname(), f"pid {os.getpid()}", "`up`", held.id, f"force-unlock {held.id}", held.holder["started"]):
            assert part in message
        assert info.value.exit_code == 3
    with pytest.raises(ClientError):  # released: the lock object is gone
        s3.head_object(Bucket=bucket, Key="acme/state.json.lock")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_dead_holder_on_this_host_is_taken_over_with_a_message(aws_url, bucket, s3):
    pid = _dead_pid()
    left = {"id": "dead-run", "host": socket.gethostname(), "pid": pid, "command": "up", "started": "t0", "heartbeat": "t0"}
    s3.put_object(Bucket=bucket, Key="acme/state.json.lock", Body=json.dumps(left).encode())
    with backend(aws_url, bucket).lock("resume") as lock:
        assert lock.taken_over is not None and f"pid {pid}" in lock.taken_over and "dead-run" in lock.taken_over


def test_another_hosts_lock_is_taken_over_only_past_the_ttl(aws_url, bucket):
    lock = backend(aws_url, bucket, lock_ttl_seconds=300).lock("up")
    other = {"id": "x", "host": "ci-runner-7", "pid": os.getpid(), "command": "up"}
    assert lock._stale(other, age=299) is None
    assert "past the lock TTL of 300s" in (lock._stale(other, age=301) or "")
    # On this host a live pid holds it, whatever the clock says, until the TTL.
    assert lock._stale({**other, "host": socket.gethostname()}, age=10) is None


def test_force_unlock_removes_only_the_named_lock(aws_url, bucket, s3):
    with pytest.raises(UsageError, match="not locked"):
        force_unlock(backend(aws_url, bucket), "any")
    held = backend(aws_url, bucket).lock("up")
    held.acquire()
    try:
        with pytest.raises(UsageError, match=f"locked with id {held.id}"):
            force_unlock(backend(aws_url, bucket), "wrong-id")
        assert force_unlock(backend(aws_url, bucket), held.id)["command"] == "up"
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key="acme/state.json.lock")
    finally:
        held.release()


def test_a_retried_write_that_had_landed_is_recognised(aws_url, bucket):
    """A conditional PUT whose answer was lost is retried and refused (the ETag moved on: to our own bytes)."""
    where = backend(aws_url, bucket)
    state = new_state(where)
    state.save()
    original = where.put
    calls = []

    def landed_then_lost(key: str, payload: bytes, expected: str | None) -> str:
        calls.append(key)
        original(key, payload, expected)
        if len(calls) == 1:
            return original(key, payload, expected)  # the retry: 412 (the first try landed)
        raise AssertionError("unreachable")

    where.put = landed_then_lost  # type: ignore[method-assign]
    state.update("vpc", attempts=3)
    assert StateFile.load(backend(aws_url, bucket)).record("vpc").attempts == 3


# --- rule 18: conditional writes as S3 answers them ------------------------------------------------------


def test_if_none_match_other_than_star_is_not_implemented(s3, bucket):
    """Plain moto ignores the value and writes."""
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"1")["ETag"]
    with pytest.raises(ClientError) as info:
        s3.put_object(Bucket=bucket, Key="k", Body=b"2", IfNoneMatch=etag)
    assert info.value.response["Error"]["Code"] == "NotImplemented"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"1"


def test_conditional_writes_answer_412(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="k", Body=b"1", IfNoneMatch="*")["ETag"]
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"0000"'}):
        with pytest.raises(ClientError) as info:
            s3.put_object(Bucket=bucket, Key="k", Body=b"2", **condition)
        assert (info.value.response["Error"]["Code"], info.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as info:
        s3.delete_object(Bucket=bucket, Key="k", IfMatch='"0000"')
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.delete_object(Bucket=bucket, Key="k", IfMatch=etag)


def test_concurrent_creates_have_exactly_one_winner(s3, bucket, monkeypatch):
    """Plain moto checks If-None-Match, then writes, unlocked: with its lookup slowed down, both creates win."""
    from moto.s3.models import S3Backend as MotoS3

    original = MotoS3.get_object

    def slow_lookup(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = original(self, *args, **kwargs)
        time.sleep(0.2)  # widen the window between moto's check and its write
        return found

    monkeypatch.setattr(MotoS3, "get_object", slow_lookup)
    outcomes: list[str] = []

    def create(body: bytes) -> None:
        try:
            s3.put_object(Bucket=bucket, Key="lock", Body=body, IfNoneMatch="*")
            outcomes.append("won")
        except ClientError as exc:
            outcomes.append(exc.response["Error"]["Code"])

    threads = [threading.Thread(target=create, args=(str(i).encode(),)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert sorted(outcomes) == ["PreconditionFailed", "won"]


# --- lineage, serial and saved plans ---------------------------------------------------------------------


def test_a_schema_2_file_gets_a_lineage_kept_from_its_next_write(tmp_path):
    path = tmp_path / "provision.state.json"
    path.write_text(json.dumps({"schema_version": 2, "deployment": "acme-basic", "cloud": "aws", "target": "real", "spec": SPEC, "steps": []}))
    state = StateFile.load(path)
    assert json.loads(path.read_text())["schema_version"] == 2  # reading alone rewrites nothing
    state.save()
    saved = json.loads(path.read_text())
    assert (saved["schema_version"], saved["lineage"], saved["serial"]) == (3, state.lineage, 1)
    assert StateFile.load(path).lineage == state.lineage


def test_another_lineage_is_refused(tmp_path):
    state = new_state(tmp_path / "s.json")
    state.expect_lineage(state.lineage, "import")
    state.expect_lineage(None, "import")
    with pytest.raises(LineageError) as info:
        state.expect_lineage(str(uuid.uuid4()), "the import was made against it")
    assert info.value.exit_code == 2


def _plan(lineage: str | None, serial: int) -> plans.SavedPlan:
    return plans.SavedPlan("acme-basic", lineage, serial, SPEC, "spec.toml", "sandbox", [{"step_id": "vpc", "action": "create"}])


def test_saved_plan_round_trip_and_its_checks(tmp_path):
    path = tmp_path / "plan.json"
    plans.write(path, _plan(None, 0))
    assert plans.read(path) == _plan(None, 0)
    assert json.loads(path.read_text())["format"] == 1
    plans.check(plans.read(path), path, None, "s")  # no state then, none now: applies
    state = new_state(tmp_path / "s.json")
    state.save()
    with pytest.raises(LineageError, match="no state"):
        plans.check(_plan(None, 0), path, state, "s")
    plans.check(_plan(state.lineage, 1), path, state, "s")
    state.update("vpc", attempts=1)
    with pytest.raises(LineageError, match="moved on"):
        plans.check(_plan(state.lineage, 1), path, state, "s")
    with pytest.raises(LineageError, match="lineage"):
        plans.check(_plan(str(uuid.uuid4()), 2), path, state, "s")
    with pytest.raises(LineageError, match="no longer exists"):
        plans.check(_plan(state.lineage, 2), path, None, "s")


@pytest.mark.parametrize("content", ["", "{}", '{"format": 1}', "[1]"])
def test_a_bad_plan_file_is_a_usage_error(tmp_path, content):
    path = tmp_path / "plan.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=str(path)):
        plans.read(path)


# --- where the state lives ----------------------------------------------------------------------------------


def test_state_location_is_the_flag_then_the_specs_state_table_then_the_default(tmp_path):
    import specs as example_specs

    from provision import topologies
    from provision.app.state_location import DEFAULT_STATE, locate
    from provision.state.backend import LocalBackend

    table = {"backend": "s3://team-state/acme.json", "kms_key_id": "alias/state", "lock_ttl_seconds": 60}
    spec = topologies.from_dict(example_specs.merged(example_specs.example(), state=table))
    remote = locate(None, spec, sandbox=False)
    assert isinstance(remote, S3Backend) and remote.describe() == "s3://team-state/acme.json"
    assert (remote.options.kms_key_id, remote.options.lock_ttl_seconds, remote.options.region) == ("alias/state", 60.0, spec.region)
    explicit = locate(str(tmp_path / "mine.json"), spec, sandbox=False)
    assert isinstance(explicit, LocalBackend) and explicit.path == tmp_path / "mine.json"
    default = locate(None, topologies.from_dict(example_specs.example()), sandbox=False)
    assert isinstance(default, LocalBackend) and default.path == DEFAULT_STATE
    assert topologies.changed_fields(spec, topologies.from_dict(example_specs.example())) == []  # where the state lives is no resource


# --- review fixes: retried conditional writes, release races, replacing a torn-down state ----------------------


def _lands_then_refused(original: Any, when: Any) -> Any:
    """A put that, when `when(key)`, lands and is then retried (as botocore does when the answer is lost): the
    retry is refused (412), though the first try wrote."""

    def put(key: str, payload: bytes, expected: str | None) -> str:
        if not when(key):
            return original(key, payload, expected)
        original(key, payload, expected)
        # The retry's answer. (Not the sandbox's own: its ETag is the body's MD5, and a refresh within the same
        # second as the last write has the same bytes, so the retry could pass.)
        error = {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions you specified did not hold"}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 412}}, "PutObject")

    return put


def _lock_of(s3: Any, bucket: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key="acme/state.json.lock")["Body"].read())


def _no_lock(s3: Any, bucket: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key="acme/state.json.lock")
        return False
    except ClientError:
        return True


def test_a_retried_lock_create_that_had_landed_is_ours(aws_url, bucket, s3):
    where = backend(aws_url, bucket, lock_ttl_seconds=3600)
    where.put = _lands_then_refused(where.put, lambda key: key.endswith(".lock"))  # type: ignore[method-assign]
    with where.lock("up") as lock:  # not refused as "locked by another run" naming this very run
        assert _lock_of(s3, bucket)["id"] == lock.id and lock.taken_over is None
        assert lock.etag == s3.head_object(Bucket=bucket, Key="acme/state.json.lock")["ETag"]
    assert _no_lock(s3, bucket)  # released: not orphaned


def test_a_retried_lock_takeover_that_had_landed_is_ours(aws_url, bucket, s3):
    left = {"id": "dead-run", "host": socket.gethostname(), "pid": _dead_pid(), "command": "up"}
    s3.put_object(Bucket=bucket, Key="acme/state.json.lock", Body=json.dumps(left).encode())
    where = backend(aws_url, bucket, lock_ttl_seconds=3600)
    where.put = _lands_then_refused(where.put, lambda key: key.endswith(".lock"))  # type: ignore[method-assign]
    with where.lock("resume") as lock:
        assert _lock_of(s3, bucket)["id"] == lock.id and "dead-run" in (lock.taken_over or "")
    assert _no_lock(s3, bucket)


def test_a_retried_heartbeat_that_had_landed_keeps_the_lock(aws_url, bucket, s3):
    where = backend(aws_url, bucket, lock_ttl_seconds=0.4)  # a beat every 0.1 s
    beats: list[str] = []
    original = where.put

    def put(key: str, payload: bytes, expected: str | None) -> str:
        if threading.current_thread().name != "state-lock-heartbeat":
            return original(key, payload, expected)
        beats.append(key)
        if len(beats) == 1:
            return _lands_then_refused(original, lambda _: True)(key, payload, expected)
        return original(key, payload, expected)

    where.put = put  # type: ignore[method-assign]
    state = new_state(where)
    with where.lock("up") as lock:
        wait_until(lambda: len(beats) >= 3)
        assert lock.lost is None
        state.save()  # still held: the write goes through
    assert _no_lock(s3, bucket)


def test_release_waits_for_a_heartbeat_in_flight(aws_url, bucket, s3):
    """The heartbeat's PUT has landed but not yet answered when release starts: release must delete at the
    ETag that PUT made, not the one before it (refused, and the lock orphaned)."""
    where = backend(aws_url, bucket, lock_ttl_seconds=0.4)
    landed, answer = threading.Event(), threading.Event()
    original = where.put

    def put(key: str, payload: bytes, expected: str | None) -> str:
        if threading.current_thread().name != "state-lock-heartbeat" or landed.is_set():
            return original(key, payload, expected)
        # Other bytes than the lock's (whose heartbeat may be of the same second): another ETag, as on S3.
        etag = original(key, payload + b" ", expected)
        landed.set()
        answer.wait(5)
        return etag

    where.put = put  # type: ignore[method-assign]
    lock = where.lock("up")
    lock.acquire()
    assert landed.wait(5)
    assert lock._thread is not None
    lock._thread.join = lambda timeout=None: None  # type: ignore[method-assign]  # as a join that timed out
    releasing = threading.Thread(target=lock.release)
    releasing.start()
    time.sleep(0.2)
    answer.set()
    releasing.join(timeout=10)
    assert _no_lock(s3, bucket)


def test_release_deletes_its_lock_rewritten_by_its_own_lost_refresh(aws_url, bucket, s3):
    where = backend(aws_url, bucket, lock_ttl_seconds=3600)
    lock = where.lock("up")
    lock.acquire()
    # A refresh landed whose answer never came: the lock still names us, at an ETag we never saw.
    s3.put_object(Bucket=bucket, Key="acme/state.json.lock", Body=json.dumps({**lock.holder, "heartbeat": "later"}).encode())
    lock.release()
    assert _no_lock(s3, bucket)


def test_release_leaves_another_runs_lock_alone(aws_url, bucket, s3):
    lock = backend(aws_url, bucket, lock_ttl_seconds=3600).lock("up")
    lock.acquire()
    s3.put_object(Bucket=bucket, Key="acme/state.json.lock", Body=b'{"id": "other"}')
    lock.release()
    assert _lock_of(s3, bucket) == {"id": "other"}


def test_a_release_error_does_not_mask_the_runs_own(aws_url, bucket, s3, monkeypatch, capsys):
    where = backend(aws_url, bucket, lock_ttl_seconds=3600)

    def denied(**kwargs: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "DeleteObject")

    with pytest.raises(RuntimeError, match="the run failed") as info, where.lock("up") as lock:
        monkeypatch.setattr(where.client, "delete_object", denied)
        raise RuntimeError("the run failed")
    assert any(f"force-unlock {lock.id}" in note for note in getattr(info.value, "__notes__", []))
    assert "could not be released" in capsys.readouterr().err
    # With no failure of its own, the run reports the release error.
    with pytest.raises(StateFileError, match="denied"), backend(aws_url, bucket, key="other.json", lock_ttl_seconds=3600, client=where.client).lock("up"):
        pass


def test_a_new_state_replaces_a_torn_down_one_it_read(aws_url, bucket):
    old = new_state(backend(aws_url, bucket))
    old.update("vpc", status=Status.DELETED)
    loaded = StateFile.load(backend(aws_url, bucket))
    where = backend(aws_url, bucket)
    fresh = StateFile.new(where, deployment="acme-basic", cloud="aws", target="sandbox", spec=SPEC, spec_path="spec.toml", replacing=loaded)
    fresh.save()
    again = StateFile.load(backend(aws_url, bucket))
    assert (again.lineage, again.serial) == (fresh.lineage, 1) and again.lineage != old.lineage
    # Replacing a state that changed since it was read is refused, as any stale write.
    stale = StateFile.load(backend(aws_url, bucket))
    StateFile.load(backend(aws_url, bucket)).remember("zones", ["a"])
    with pytest.raises(StateConflictError, match="another run wrote serial 2"):
        StateFile.new(backend(aws_url, bucket), deployment="acme-basic", cloud="aws", target="sandbox", spec=SPEC,
                      spec_path=None, replacing=stale).save()


def test_replacing_names_the_same_state(aws_url, bucket, tmp_path):
    loaded = new_state(backend(aws_url, bucket))
    loaded.save()
    with pytest.raises(ValueError, match="cannot replace"):
        StateFile.new(backend(aws_url, bucket, key="elsewhere.json"), deployment="d", cloud="aws", target="sandbox",
                      spec=SPEC, spec_path=None, replacing=loaded)
    local = new_state(tmp_path / "s.json")
    local.save()
    StateFile.new(tmp_path / "s.json", deployment="d", cloud="aws", target="sandbox", spec=SPEC, spec_path=None,
                  replacing=StateFile.load(tmp_path / "s.json")).save()
    assert StateFile.load(tmp_path / "s.json").deployment == "d"


def test_a_schema_2_file_names_the_same_lineage_on_every_read(tmp_path, aws_url, bucket, s3):
    old = {"schema_version": 2, "deployment": "acme-basic", "cloud": "aws", "target": "real", "spec": SPEC, "steps": [],
           "created_at": "2024-05-01T10:00:00.000+00:00"}
    path = tmp_path / "provision.state.json"
    path.write_text(json.dumps(old))
    first = StateFile.load(path)
    assert StateFile.load(path).lineage == first.lineage
    # A plan saved against it applies to the next read.
    plans.check(_plan(first.lineage, first.serial), tmp_path / "plan.json", StateFile.load(path), str(path))
    # The same on S3; another deployment (or another creation) is another lineage.
    s3.put_object(Bucket=bucket, Key="acme/state.json", Body=json.dumps(old).encode())
    assert StateFile.load(backend(aws_url, bucket)).lineage == first.lineage
    path.write_text(json.dumps({**old, "created_at": "2024-05-02T10:00:00.000+00:00"}))
    assert StateFile.load(path).lineage != first.lineage
    path.write_text(json.dumps({**old, "deployment": "other"}))
    assert StateFile.load(path).lineage != first.lineage
