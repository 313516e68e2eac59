"""Moments in Asia/Jakarta (WIB), where every deadline and report period of the tests falls."""

from __future__ import annotations

from datetime import datetime

from bridge.workflow.calendar import JAKARTA


def wib(year: int, month: int, day: int, hour: int = 9, minute: int = 0,
        second: int = 0) -> datetime:
    """A moment in Asia/Jakarta (WIB)."""
    return datetime(year, month, day, hour, minute, second, tzinfo=JAKARTA)


def end_of(year: int, month: int, day: int) -> datetime:
    """The last second of a day in Jakarta: where every deadline falls."""
    return wib(year, month, day, 23, 59, 59)
