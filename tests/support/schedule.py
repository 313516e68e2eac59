"""The order the suite runs in: the longest test files first, so that the xdist workers end
together (longest-processing-time-first scheduling).

pytest-xdist's ``--dist loadfile`` hands out whole files in the order they were collected
(``--no-loadscope-reorder``; its default re-sorts them by test count, which put the few long
end-to-end tests last, each keeping one worker busy after the other had finished). A file's
cost is what it took last time, kept in pytest's cache (``.pytest_cache``) by the controller
at the end of each run; a file never timed (a fresh clone) is estimated from its ``slow``
tests. Only the order changes: nothing is deselected or skipped.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

CACHE_KEY = "lapor-bridge/file-seconds"
#: Estimates for a file with no timing yet: a `slow` test is an end-to-end run with real
#: processes (tens of seconds), any other test a fraction of a second.
SLOW_SECONDS = 30.0
TEST_SECONDS = 0.3


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _cache(config: pytest.Config) -> Any:
    return getattr(config, "cache", None)  # None with -p no:cacheprovider


def order_longest_first(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Sort ``items`` in place: files by their cost, longest first; a file's tests stay
    together in their collected order."""
    cache = _cache(config)
    timed: dict[str, float] = (cache.get(CACHE_KEY, {}) if cache is not None else {}) or {}
    estimate: dict[str, float] = defaultdict(float)
    for item in items:
        slow = item.get_closest_marker("slow") is not None
        estimate[file_of(item.nodeid)] += SLOW_SECONDS if slow else TEST_SECONDS
    cost = {name: float(timed.get(name, guess)) for name, guess in estimate.items()}
    items.sort(key=lambda item: -cost[file_of(item.nodeid)])  # stable: file order kept


class FileTimer:
    """Adds up each file's setup, call and teardown seconds (in the controller, from every
    worker's reports) and stores them for the next run's order."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = _cache(session.config)
        if cache is None or not self.seconds or hasattr(session.config, "workerinput"):
            return
        stored = dict(cache.get(CACHE_KEY, {}) or {})
        stored.update({name: round(s, 2) for name, s in self.seconds.items()})
        cache.set(CACHE_KEY, stored)
