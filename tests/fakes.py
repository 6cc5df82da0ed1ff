"""Test doubles shared by the unit tests."""

from __future__ import annotations


class FakeClock:
    """`clock` and `sleep` for retry and poll policies: sleeping only moves the clock, so retry and
    wait tests take no real time."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds
