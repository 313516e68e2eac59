"""Fake clocks: time moves only when a test says so (no sleep racing the wall clock)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    """A ``time.time``-like callable that stands still until :meth:`advance`."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeLeaseClock:
    """Wall time (UTC) and monotonic time for a lease, moved together by :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self.wall = start or datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
        self.mono = 1000.0

    def utcnow(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds
