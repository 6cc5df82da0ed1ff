"""Client-side pacing: our calls stay slightly under a service's documented rate limit, shared by every thread.

A `Pacer` is one service's limiter for one account (EC2 in one Region, one Databricks account, one workspace
host): a token bucket per kind of call, filled and refilled at the rates its cloud's clients give it, and one
pause that every thread honours once the service has said "retry after N seconds" (so thirty polling threads
do not each collect their own 429). Pacers are shared through the process-wide registry (`shared`), keyed by
what the service limits on, so every client of the same account draws on the same buckets.

`acquire` reserves a token under a short lock and sleeps *outside* it, so a thread waiting its turn never holds
up another that has a token. `clock` and `sleep` are injectable, as in wait.py and retry.py. Retrying a throttled
call is still retry.py's job alone: a pacer only spaces calls out and learns from refusals.

Why not a library: pyrate-limiter, limits and token-bucket (all on PyPI) answer "allowed now?" over sliding
windows or buckets, and pyrate-limiter sleeps inside itself. None offers the two things this needs: an
injectable sleep (tests run on a fake clock) and a pause shared by all threads when the service sends
Retry-After. What is left, a token bucket, is forty lines (provision/rate_limits.py), shared with the
sandbox that enforces the same figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from provision.orchestrator.slots import idle_sleep
from provision.rate_limits import TokenBucket

# (bucket name, (capacity, refill per second)) for a call, or None: not paced (it still honours pauses).
BucketOf = Callable[[str, Any], "tuple[str, tuple[float, float]] | None"]
# What a noticeable wait reports: pacer name, bucket name, seconds.
OnWait = Callable[[str, str, float], None]


def _log_wait(pacer: str, bucket: str, seconds: float) -> None:
    import structlog

    if structlog.is_configured():  # before the run's log exists structlog would print to stdout
        structlog.get_logger().debug("paced", service=pacer, bucket=bucket, waited_s=round(seconds, 3))


class Pacer:
    def __init__(
        self,
        name: str,
        bucket_of: BucketOf,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        log_over: float = 1.0,
        on_wait: OnWait = _log_wait,
    ) -> None:
        self.name = name
        self._bucket_of = bucket_of
        self.clock, self.sleep = clock, sleep
        self.log_over, self._on_wait = log_over, on_wait
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        self._paused_until = 0.0

    def _bucket(self, name: str, figures: tuple[float, float]) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(*figures, clock=self.clock)
            return bucket

    def acquire(self, operation: str, parameters: Any = ()) -> float:
        """Wait until a call of `operation` may go out (a token of its bucket, and no pause); the seconds waited."""
        found = self._bucket_of(operation, parameters)
        bucket_name = found[0] if found else ""
        wait = self._bucket(*found).reserve() if found else 0.0
        with self._lock:
            wait = max(wait, self._paused_until - self.clock())
        if wait <= 0:
            return 0.0
        idle_sleep(wait, self.sleep)  # a paced step gives its engine slot to another meanwhile (slots.py)
        if wait >= self.log_over:
            self._on_wait(self.name, bucket_name, wait)
        return wait

    def throttled(self, operation: str, parameters: Any = (), retry_after: float | None = None) -> None:
        """The service refused a call for rate: its bucket is empty, so ours is too; with Retry-After, no call
        of this pacer goes out before that has passed."""
        now = self.clock()
        until = now + (retry_after or 0.0)
        found = self._bucket_of(operation, parameters)
        if found:
            self._bucket(*found).empty_until(until)
        if retry_after:
            with self._lock:
                self._paused_until = max(self._paused_until, until)


class Registry:
    """The process's pacers by key, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pacers: dict[tuple, Pacer] = {}

    def get(self, key: tuple, make: Callable[[], Pacer]) -> Pacer:
        with self._lock:
            pacer = self._pacers.get(key)
            if pacer is None:
                pacer = self._pacers[key] = make()
            return pacer

    def clear(self) -> None:
        with self._lock:
            self._pacers.clear()


shared = Registry()


def under(figures: tuple[float, float], *, margin: float = 0.9, time_scale: float = 0.0) -> tuple[float, float]:
    """A documented (capacity, refill per real second) as our pacing figures: `margin` of both (at least one
    token), the rate divided by a time-scaled sandbox's scale (a run S times faster meets the limit in its own
    seconds)."""
    capacity, rate = figures
    return max(1.0, capacity * margin), rate * margin / (time_scale or 1.0)
