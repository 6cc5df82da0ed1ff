"""Remote state in S3: the object holds the same JSON as a local state file; S3's conditional writes do the rest.

- Every write is compare-and-swap: `IfMatch=<ETag read or last written>` (the first `IfNoneMatch="*"`), so
  a run that lost its lock can never overwrite a newer state: S3 answers 412 PreconditionFailed (409
  ConditionalRequestConflict when another write to the key is in flight) and we raise StateConflictError.
- The lock is a second object, `<key>.lock`, created with `IfNoneMatch="*"`. It names its holder (id, host,
  pid, command, started) and a heartbeat that a daemon thread rewrites, conditional on the lock's own ETag.
  A refresh refused means someone took the lock over: the run has lost it, and its next state write fails.
  (Unless the lock still names this run: botocore retried a conditional PUT whose first try had landed, so
  the refusal was of our own write. The lock is then re-read and its ETag adopted, on acquire and on refresh.)
- A lock whose holder is a dead process on this host is taken over at once; any other only once it has
  not been refreshed for the lock TTL (S3's LastModified, so the holder's clock does not matter).
- Every object is written with SSE-KMS (the customer key when given, else the AWS managed key).
- S3 cannot append, so unlike the local journal (state/journal.py) every write PUTs the whole object: bytes per run
  are PUTs x object size, which grows with the deployment (a 100-step state is ~45 KB; 300 transitions one at a time
  PUT 11 MB). StateFile keeps the PUTs down: a write of nothing changed is not made, and changes from parallel steps
  commit as a group (a change a PUT in flight already carries waits for that PUT): with 10 steps at once those 300
  transitions took 62 PUTs, 2.3 MB.

boto3 is imported lazily and honours its standard configuration (profiles, AWS_ENDPOINT_URL_S3 and
AWS_ENDPOINT_URL); the sandbox passes its endpoint and fixed dummy keys.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provision.errors import (
    CredentialsError,
    LockLostError,
    StateConflictError,
    StateFileError,
    StateLockedError,
    UsageError,
)
from provision.procs import alive

DEFAULT_LOCK_TTL = 300.0
# A conditional write can meet another in flight (409): S3 asks to re-read and retry; a few times is plenty.
_CONFLICT_RETRIES = 3
_PRECONDITION = ("PreconditionFailed", "412")
_CONFLICT = ("ConditionalRequestConflict", "409")
_MISSING = ("NoSuchKey", "404", "NotFound")


@dataclass
class S3Options:
    endpoint_url: str | None = None  # the sandbox's; None: boto3's own configuration decides
    sandbox: bool = False
    region: str | None = None
    kms_key_id: str | None = None
    lock_ttl_seconds: float = DEFAULT_LOCK_TTL
    client: Any = None  # an S3 client made elsewhere (tests)


def parse_location(location: str) -> tuple[str, str]:
    bucket, _, key = location.removeprefix("s3://").partition("/")
    if not bucket or not key or key.endswith("/"):
        raise UsageError(f"--state {location!r}: an S3 state is s3://BUCKET/KEY, with a key that names an object")
    return bucket, key


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class S3Backend:
    def __init__(self, location: str, options: S3Options):
        self.bucket, self.key = parse_location(location)
        self.options = options
        self._client = options.client
        self._client_lock = threading.Lock()
        self.held: S3Lock | None = None

    @property
    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                if self.options.sandbox:
                    # Fixed dummy keys, as the sandbox's other AWS clients: never a user's real credentials.
                    session = boto3.session.Session(aws_access_key_id="sandbox", aws_secret_access_key="sandbox", region_name="us-east-1")
                else:
                    session = boto3.session.Session(region_name=self.options.region)
                # State I/O is not a step: botocore's standard retries ride out a throttle, and a retried
                # conditional write whose first try landed is recognised in `_settle`.
                config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=10, read_timeout=30)
                self._client = session.client("s3", endpoint_url=self.options.endpoint_url, config=config)
            return self._client

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def log_dir(self) -> Path:
        return Path.cwd() / "provision-logs"

    def _bucket_error(self, exc: Exception) -> Exception:
        if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError", "TokenRetrievalError"):
            # Before the run's own credentials preflight, which needs the state first: the same exit 2 and help.
            return CredentialsError("aws", f"no AWS credentials to read the state {self.describe()} ({exc}); boto3 looked in "
                                           "the environment (AWS_ACCESS_KEY_ID), the profile (AWS_PROFILE) in ~/.aws/credentials "
                                           "and ~/.aws/config, SSO, and container and instance roles")
        if _code(exc) == "NoSuchBucket":
            return StateFileError(f"the state bucket {self.bucket} does not exist (state {self.describe()}); create it, versioned, first")
        if _code(exc) in ("AccessDenied", "403"):
            return StateFileError(f"access to the state {self.describe()} was denied: {exc}")
        return exc

    def exists(self) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key)
            return True
        except Exception as exc:
            if _code(exc) in _MISSING:
                # HEAD has no body: a missing bucket also answers 404. Tell them apart with one more call.
                try:
                    self.client.head_bucket(Bucket=self.bucket)
                except Exception as bucket_exc:
                    if _code(bucket_exc) in ("404", "NoSuchBucket", "NotFound"):
                        raise StateFileError(f"the state bucket {self.bucket} does not exist (state {self.describe()}); create it, versioned, first") from None
                    raise self._bucket_error(bucket_exc) from None
                return False
            raise self._bucket_error(exc) from None

    def read(self) -> tuple[bytes, str | None]:
        try:
            got = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except Exception as exc:
            if _code(exc) in _MISSING:
                raise StateFileError(f"state file {self.describe()} does not exist") from None
            raise self._bucket_error(exc) from None
        return got["Body"].read(), got["ETag"]

    def _encryption(self) -> dict[str, str]:
        sse = {"ServerSideEncryption": "aws:kms"}
        if self.options.kms_key_id:
            sse["SSEKMSKeyId"] = self.options.kms_key_id
        return sse

    def put(self, key: str, payload: bytes, expected: str | None) -> str:
        """One conditional PUT of `key`; the new ETag. Raises the client's error as S3 answered it."""
        condition = {"IfMatch": expected} if expected else {"IfNoneMatch": "*"}
        answer = self.client.put_object(
            Bucket=self.bucket, Key=key, Body=payload, ContentType="application/json", **condition, **self._encryption()
        )
        return str(answer["ETag"])

    def write(self, payload: bytes, expected: str | None) -> str:
        if self.held is not None and self.held.lost:
            raise LockLostError(f"this run lost its lock on {self.describe()} ({self.held.lost}); the state was not written")
        for _ in range(_CONFLICT_RETRIES):
            try:
                return self.put(self.key, payload, expected)
            except Exception as exc:
                code = _code(exc)
                if code not in (*_PRECONDITION, *_CONFLICT, *_MISSING):
                    raise self._bucket_error(exc) from None
                settled = self._settle(payload, expected, code)
                if settled is not None:
                    return settled
        raise StateConflictError(f"state {self.describe()}: writes kept meeting another write in flight; nothing was overwritten")

    def _settle(self, payload: bytes, expected: str | None, code: str) -> str | None:
        """After a refused write: our own write that landed on an earlier try (its ETag); None to try again
        (409, the state unchanged); else StateConflictError."""
        try:
            current, etag = self.read()
        except StateFileError:
            current, etag = None, None
        if current == payload and etag is not None:
            return etag
        if code in _CONFLICT and etag == expected:
            return None
        serial = _serial(current)
        raise StateConflictError(
            f"state {self.describe()} changed since this run read it ("
            + (f"another run wrote serial {serial}" if serial is not None else "it was removed")
            + "); this run's write was refused and nothing was overwritten. Check who holds the state before resuming."
        )

    def lock(self, command: str) -> "S3Lock":
        return S3Lock(self, command)

    def warnings(self) -> list[str]:
        try:
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except Exception as exc:
            raise self._bucket_error(exc) from None
        if status != "Enabled":
            return [f"the state bucket {self.bucket} is not versioned: an overwritten or deleted state cannot be recovered; "
                    f"turn versioning on (aws s3api put-bucket-versioning --bucket {self.bucket} --versioning-configuration Status=Enabled)"]
        return []


def _serial(payload: bytes | None) -> int | None:
    try:
        return int(json.loads(payload or b"")["serial"])
    except (ValueError, KeyError, TypeError):
        return None


class S3Lock:
    """`<key>.lock`, held for one run (a context manager); see the module docstring."""

    def __init__(self, backend: S3Backend, command: str):
        self.backend = backend
        self.key = backend.key + ".lock"
        self.ttl = float(backend.options.lock_ttl_seconds)
        self.id = str(uuid.uuid4())
        self.holder = {"id": self.id, "host": socket.gethostname(), "pid": os.getpid(), "command": command, "started": _now()}
        self.etag: str | None = None
        self.taken_over: str | None = None
        self.lost: str | None = None  # why, once the lock is no longer ours
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Held for each heartbeat PUT and for the release: release never deletes with an ETag a PUT in flight
        # is about to replace, and no refresh starts once release has begun.
        self._beat_lock = threading.Lock()

    def _body(self) -> bytes:
        return json.dumps({**self.holder, "heartbeat": _now()}).encode()

    def _ours(self, current: tuple[dict[str, Any], str, float] | None) -> bool:
        return current is not None and current[0].get("id") == self.id

    def acquire(self) -> None:
        b = self.backend
        takeover: str | None = None  # the message of a takeover tried, should a retry of it have landed
        for _ in range(5):
            try:
                self.etag = b.put(self.key, self._body(), None)
                break
            except Exception as exc:
                if _code(exc) not in (*_PRECONDITION, *_CONFLICT):
                    raise b._bucket_error(exc) from None
            current = self._current()
            if current is None:
                continue  # released meanwhile: try to create it again
            holder, etag, age = current
            if self._ours(current):
                # Our own write refused: botocore retried a PUT whose first try had landed. The lock is ours.
                self.etag = etag
                self.taken_over = takeover
                break
            why = self._stale(holder, age)
            if why is None:
                raise StateLockedError(
                    f"state {b.describe()} is locked by another run: `{holder.get('command')}` on host {holder.get('host')}, "
                    f"pid {holder.get('pid')}, started {holder.get('started')}, lock id {holder.get('id')}; wait for it to "
                    f"finish, or if that run is gone: provision force-unlock {holder.get('id')} --state {b.describe()}"
                )
            takeover = (
                f"took over the lock of {holder.get('command')!r} (host {holder.get('host')}, pid {holder.get('pid')}, "
                f"lock id {holder.get('id')}): {why}; that run ended without finishing"
            )
            try:
                self.etag = b.put(self.key, self._body(), etag)
            except Exception as exc:
                if _code(exc) in (*_PRECONDITION, *_CONFLICT, *_MISSING):
                    continue  # another run took it over first (or a retry of ours landed): look again
                raise b._bucket_error(exc) from None
            self.taken_over = takeover
            break
        else:
            raise StateLockedError(f"state {b.describe()}: its lock kept changing hands; try again")
        b.held = self
        self._thread = threading.Thread(target=self._beat, name="state-lock-heartbeat", daemon=True)
        self._thread.start()

    def _current(self) -> tuple[dict[str, Any], str, float] | None:
        """The lock as it is: holder, ETag and seconds since it was last written; None if there is none."""
        try:
            got = self.backend.client.get_object(Bucket=self.backend.bucket, Key=self.key)
        except Exception as exc:
            if _code(exc) in _MISSING:
                return None
            raise self.backend._bucket_error(exc) from None
        try:
            holder = json.loads(got["Body"].read())
            holder = holder if isinstance(holder, dict) else {}
        except ValueError:
            holder = {}  # unreadable: judged by its age alone
        age = (dt.datetime.now(dt.timezone.utc) - got["LastModified"]).total_seconds()
        return holder, got["ETag"], age

    def _stale(self, holder: dict[str, Any], age: float) -> str | None:
        pid = holder.get("pid")
        if holder.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() and not alive(pid):
            return f"its process {pid} on this host is gone"
        if age > self.ttl:
            return f"its heartbeat is {age:.0f}s old, past the lock TTL of {self.ttl:.0f}s"
        return None

    def _beat(self) -> None:
        interval = self.ttl / 4
        refreshed = time.monotonic()
        while not self._stop.wait(interval):
            with self._beat_lock:
                if self._stop.is_set():
                    return  # release began while this beat waited for the lock
                try:
                    self.etag = self.backend.put(self.key, self._body(), self.etag)
                    refreshed = time.monotonic()
                    continue
                except Exception as exc:
                    error: Exception = exc
                if _code(error) in (*_PRECONDITION, *_CONFLICT, *_MISSING):
                    try:
                        current = self._current()
                    except Exception as exc:
                        error = exc  # cannot tell yet: judged as a passing error below
                    else:
                        if self._ours(current):
                            # A retried refresh whose first try landed: the lock is still ours, at this ETag.
                            assert current is not None
                            self.etag = current[1]
                            refreshed = time.monotonic()
                            continue
                        self.lost = "it was taken over or removed by another run"
                        return
                # A passing network or throttling error: try again next beat, until the TTL lets others take over.
                if time.monotonic() - refreshed > self.ttl:
                    self.lost = f"its heartbeat could not be refreshed for {self.ttl:.0f}s ({error})"
                    return

    def release(self) -> None:
        self._stop.set()
        try:
            # A heartbeat PUT in flight finishes first (and records its ETag); none starts after.
            with self._beat_lock:
                if self.backend.held is self:
                    self.backend.held = None
                if self.lost is None and self.etag is not None:
                    self._delete()
        finally:
            self.etag = None
            if self._thread is not None and self._thread is not threading.current_thread():
                self._thread.join(timeout=30)

    def _delete(self) -> None:
        """Delete the lock while it is ours: conditional on its ETag; refused, it is re-read and, if it still names
        this run (a refresh whose answer was lost), deleted at its new ETag. Another run's lock is left alone."""
        for _ in range(3):
            try:
                self.backend.client.delete_object(Bucket=self.backend.bucket, Key=self.key, IfMatch=self.etag)
                return
            except Exception as exc:
                code = _code(exc)
                if code in _MISSING:
                    return
                if code not in (*_PRECONDITION, *_CONFLICT):
                    raise self.backend._bucket_error(exc) from None
            current = self._current()
            if not self._ours(current):
                return  # taken over (or removed) by another run: not ours to delete
            assert current is not None
            self.etag = current[1]
        raise StateLockedError(
            f"the lock of {self.backend.describe()} (id {self.id}) kept changing while this run released it; "
            f"if no run holds the state: provision force-unlock {self.id} --state {self.backend.describe()}"
        )

    def __enter__(self) -> "S3Lock":
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.release()
            return
        # The run already failed: a lock that could not be released is reported, never in place of that failure.
        try:
            self.release()
        except Exception as release_error:
            note = (
                f"warning: the lock of {self.backend.describe()} (id {self.id}) could not be released ({release_error}); "
                f"if no run holds the state: provision force-unlock {self.id} --state {self.backend.describe()}"
            )
            print(note, file=sys.stderr)
            exc.add_note(note)


def force_unlock(backend: S3Backend, lock_id: str) -> dict[str, Any]:
    """Delete the state's lock if it is `lock_id` (UsageError otherwise); the holder it named."""
    lock = S3Lock(backend, "force-unlock")
    current = lock._current()
    if current is None:
        raise UsageError(f"state {backend.describe()} is not locked")
    holder, etag, _ = current
    if holder.get("id") != lock_id:
        raise UsageError(
            f"state {backend.describe()} is locked with id {holder.get('id')} (`{holder.get('command')}` on host "
            f"{holder.get('host')}, pid {holder.get('pid')}), not {lock_id}; nothing was unlocked"
        )
    try:
        backend.client.delete_object(Bucket=backend.bucket, Key=lock.key, IfMatch=etag)
    except Exception as exc:
        if _code(exc) in (*_PRECONDITION, *_MISSING):
            raise UsageError(f"the lock of {backend.describe()} changed while it was being removed; nothing was unlocked") from None
        raise backend._bucket_error(exc) from None
    return holder
