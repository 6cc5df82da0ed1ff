"""Where a state lives: a local file, or an S3 object (state/s3.py). Both hold the same JSON.

A backend reads the whole state with a version token and writes it whole, compare-and-swap on that token,
so a write lands whole or not at all and never over a newer state. Its `lock(command)` is held for a run.

Local: a snapshot is written atomically (temp file in the same directory, fsync, rename, fsync of the
directory) with mode 0600, so a crash at any instant leaves the old or the new file, never half of one; between
snapshots each write is a line appended (and fsynced) to `<state>.journal` (state/journal.py), which a snapshot
write then removes. The lock is a flock on `<state>.lock`, guarding both files; the kernel drops it when the
holder dies, so a killed run never leaves a stale lock, and a lock held cannot be lost while its process lives:
local writes need no token check.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from provision.errors import StateFileError, StateLockedError
from provision.procs import alive
from provision.state import journal


class Lock(Protocol):
    """A run's hold on its state; `taken_over` says, once acquired, whose dead or stale lock it replaced."""

    taken_over: str | None

    def __enter__(self) -> "Lock": ...

    def __exit__(self, *exc: object) -> None: ...


class Backend(Protocol):
    def exists(self) -> bool: ...

    def read(self) -> tuple[bytes, str | None]:
        """The state's bytes and version token; StateFileError when there is none."""
        ...

    def write(self, payload: bytes, expected: str | None) -> str:
        """Replace the state if its version is still `expected` (None: there is none yet); the new token."""
        ...

    def lock(self, command: str) -> Lock: ...

    def describe(self) -> str:
        """How messages name the state: a path or s3://bucket/key."""
        ...

    def log_dir(self) -> Path:
        """Where a run's log files go."""
        ...

    def warnings(self) -> list[str]:
        """What the user should fix about where the state lives (an unversioned bucket)."""
        ...


class StateLock:
    """Exclusive, non-blocking lock beside the state file; the holder's pid is written for the message."""

    def __init__(self, state_path: Path, owner: LocalBackend | None = None):
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None
        self.taken_over_from: int | None = None
        self._owner = owner  # told while the lock is held (LocalBackend.held)

    @property
    def taken_over(self) -> str | None:
        if self.taken_over_from is None:
            return None
        return f"the previous run (pid {self.taken_over_from}) died without finishing; its lock was released and this run takes over"

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
        if self._owner is not None:
            self._owner.held = self

    def release(self) -> None:
        if self._owner is not None and self._owner.held is self:
            self._owner.held = None
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


class LocalBackend:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.journal = journal.path_of(self.path)
        self.held: StateLock | None = None  # this process's lock on the state, while it holds it

    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> tuple[bytes, str | None]:
        """The snapshot alone (StateFile.load replays the journal over it: read_journaled)."""
        return self.read_journaled()[0], None

    def read_journaled(self) -> tuple[bytes, bytes]:
        """The snapshot and its journal (b"" if none), as one consistent pair even while a run writes: a snapshot
        replaced (compacted) while the journal was read is read again."""
        for _ in range(10):
            try:
                with open(self.path, "rb") as handle:
                    snapshot, identity = handle.read(), os.fstat(handle.fileno()).st_ino
                try:
                    lines = self.journal.read_bytes()
                except FileNotFoundError:
                    lines = b""
                if os.stat(self.path).st_ino == identity:
                    return snapshot, lines
            except FileNotFoundError:
                raise StateFileError(f"state file {self.path} does not exist") from None
            except OSError as exc:
                raise StateFileError(f"state file {self.path} cannot be read: {exc.strerror}") from None
        raise StateFileError(f"state file {self.path} kept being replaced while it was read; try again")

    def append(self, payload: bytes, first: bytes) -> int:
        """Append a journal line, durably (`first`: the header of a new journal); the bytes written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return journal.append(self.journal, payload, first)

    def write(self, payload: bytes, expected: str | None) -> str:
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
        # The snapshot holds every line of the journal now. Were this removal lost in a crash, the lines left have
        # serials the snapshot holds and are skipped on load.
        try:
            os.unlink(self.journal)
        except FileNotFoundError:
            pass
        return ""

    def lock(self, command: str) -> StateLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return StateLock(self.path, self)

    def describe(self) -> str:
        return str(self.path)

    def log_dir(self) -> Path:
        return self.path.resolve().parent / "provision-logs"

    def warnings(self) -> list[str]:
        return []


def is_remote(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def open_backend(location: str | Path, **s3_options: Any) -> Backend:
    """A path, or s3://bucket/key (`s3_options`: see state.s3.S3Options)."""
    if not is_remote(location):
        return LocalBackend(Path(location))
    from provision.state.s3 import S3Backend, S3Options

    return S3Backend(str(location), S3Options(**s3_options))
