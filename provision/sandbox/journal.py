"""What the sandbox made callers wait for: the benchmark's physical bound is built from it.

Each resource draws its pending time once (settings.delay); the journal keeps every distinct draw, by
setting name and resource key, and the latency each API call was given, per kind of app. Only the
provider's side is in here: how late a caller noticed, or how many calls it made, is the caller's own
overhead, which is exactly what the benchmark sets against this.
"""

from __future__ import annotations

import threading


class Journal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delays: dict[tuple[str, str], float] = {}
        self._calls: dict[str, list[float]] = {}

    def delay(self, name: str, key: str, seconds: float) -> None:
        pair = (name, key)
        if pair not in self._delays:  # a draw never moves, so the first is the one
            with self._lock:
                self._delays.setdefault(pair, seconds)

    def call(self, kind: str, seconds: float) -> None:
        with self._lock:
            entry = self._calls.setdefault(kind, [0, 0.0])
            entry[0] += 1
            entry[1] += seconds

    def snapshot(self) -> dict:
        with self._lock:
            return {
                "delays": [{"name": n, "key": k, "seconds": round(s, 4)} for (n, k), s in self._delays.items()],
                "calls": {kind: {"count": int(c), "seconds": round(s, 4)} for kind, (c, s) in self._calls.items()},
            }

    def reset(self) -> None:
        with self._lock:
            self._delays.clear()
            self._calls.clear()
