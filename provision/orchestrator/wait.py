"""Polling with explicit target and failure states: never a fixed sleep.

Intervals grow geometrically to a cap, so a long wait costs few calls while a short one still reacts
within one interval. Every read goes through the retry policy, so a throttled poll is not a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, TypeVar

from provision.errors import ResourceFailed, WaitTimeout

T = TypeVar("T")


@dataclass
class PollPolicy:
    initial_seconds: float = 2.0
    factor: float = 1.5
    max_seconds: float = 15.0
    timeout_seconds: float = 1800.0
    # How long a just-created resource may take to appear in listings (EC2 is eventually consistent).
    visibility_seconds: float = 15.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def intervals(self):
        interval = self.initial_seconds
        while True:
            yield interval
            interval = min(self.max_seconds, interval * self.factor)


def wait_for(
    read: Callable[[], T],
    *,
    status_of: Callable[[T], str],
    target: set[str],
    failure: set[str],
    what: str,
    policy: PollPolicy,
    detail_of: Callable[[T], str] | None = None,
    timeout_seconds: float | None = None,
    on_poll: Callable[[str], None] | None = None,
) -> T:
    """Read until status_of(value) is in `target`; raise ResourceFailed on a failure state and WaitTimeout
    (with the last status) when the time is up."""
    timeout = policy.timeout_seconds if timeout_seconds is None else timeout_seconds
    start = policy.clock()
    intervals = policy.intervals()
    while True:
        value = read()
        status = status_of(value)
        if on_poll:
            on_poll(status)
        if status in target:
            return value
        if status in failure:
            raise ResourceFailed(what, status, detail_of(value) if detail_of else "")
        elapsed = policy.clock() - start
        if elapsed >= timeout:
            raise WaitTimeout(what, "/".join(sorted(target)), status, elapsed)
        policy.sleep(min(next(intervals), max(0.0, timeout - elapsed)))


GONE = "<gone>"
