"""How many steps may be working at once, and which waiting step goes next.

`--parallelism N` bounds the steps making API calls at the same moment, not the steps in flight: a step that
sleeps (between polls of a resource still pending, in a backoff, or paced under a rate limit) gives its slot
back and takes one again when it wakes. A 32-spoke run has 32 workspaces pending for minutes at once; held
slots would have queued them ten at a time behind one another. Free slots go to the waiting step with the
longest chain still ahead of it, so the critical path is never queued behind a short branch.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator

_held = threading.local()


class Slots:
    def __init__(self, count: int, interrupted: threading.Event, interrupt: Callable[[], BaseException]):
        self._cond = threading.Condition()
        self._free = max(1, count)
        self._waiting: list[tuple[float, int]] = []
        self._tickets = itertools.count()
        self._interrupted, self._interrupt = interrupted, interrupt

    def acquire(self, rank: float) -> None:
        """Block until this thread may work; `rank`: the step's remaining chain (higher goes first)."""
        ticket = (-rank, next(self._tickets))
        with self._cond:
            heapq.heappush(self._waiting, ticket)
            try:
                while not (self._free > 0 and self._waiting[0] == ticket):
                    if self._interrupted.is_set():
                        raise self._interrupt()
                    self._cond.wait(0.2)
                heapq.heappop(self._waiting)
                self._free -= 1
            except BaseException:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                    heapq.heapify(self._waiting)
                self._cond.notify_all()
                raise
        _held.slots, _held.rank = self, rank

    def release(self) -> None:
        _held.slots = None
        with self._cond:
            self._free += 1
            self._cond.notify_all()


@contextlib.contextmanager
def idle() -> Iterator[None]:
    """Give this thread's slot back for the duration (a sleep), if it holds one."""
    slots, rank = getattr(_held, "slots", None), getattr(_held, "rank", 0.0)
    if slots is None:
        yield
        return
    slots.release()
    try:
        yield
    finally:
        slots.acquire(rank)


def idle_sleep(seconds: float, sleep: Callable[[float], None]) -> None:
    with idle():
        sleep(seconds)
