"""One way to run calls on another thread and wait for each with a deadline: the daemon's
jobs and the plugin host's hook calls both go through :class:`BoundedCalls`.

Python cannot stop a thread: a call that outlives its deadline is left to finish on its
own (a daemon thread), and the waiter that gave up marks it abandoned; the calls queued
behind it are then not run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any


class BoundedCalls:
    """``fns`` run back to back by :meth:`run` (on whichever thread calls it), each value
    or error kept for the waiter, who awaits them in order with :meth:`wait`.

    One condition serves the whole batch: a lock and an event per call cost more than
    most plugin hooks' own work. ``late(i)`` is called (under the batch's lock) when call
    ``i``, abandoned by its waiter, finally returns."""

    def __init__(self, fns: Sequence[Callable[[], Any]],
                 late: Callable[[int], None] | None = None) -> None:
        self.fns = list(fns)
        count = len(self.fns)
        self.values: list[Any] = [None] * count
        self.errors: list[BaseException | None] = [None] * count
        #: ``time.monotonic()`` when each call began (a call queued behind others starts
        #: later than it was handed over; its time limit counts from here).
        self.started: list[float | None] = [None] * count
        #: How many calls have returned (always the first ones: they run in order).
        self.finished = 0
        #: The call a waiter gave up on, if any; no call after it is run.
        self.abandoned: int | None = None
        self._cond = threading.Condition()
        self._late = late

    @property
    def value(self) -> Any:
        """The first call's value (a batch of one)."""
        return self.values[0]

    @property
    def error(self) -> BaseException | None:
        """The first call's error (a batch of one)."""
        return self.errors[0]

    def run(self) -> None:
        with self._cond:
            if self.abandoned is not None or not self.fns:
                return
            self.started[0] = time.monotonic()
        for i, fn in enumerate(self.fns):
            try:
                self.values[i] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                self.errors[i] = exc
            with self._cond:
                # The next call's start is recorded with this one's end, so a waiter that
                # wakes for this end never sees the next call as not yet started.
                self.finished = i + 1
                if self.abandoned == i and self._late is not None:
                    self._late(i)
                last = self.abandoned is not None or i + 1 == len(self.fns)
                if not last:
                    self.started[i + 1] = time.monotonic()
                self._cond.notify_all()
            if last:
                return

    def wait(self, i: int, limit: float | None,
             on_give_up: Callable[[int], None] | None = None) -> bool:
        """Wait for call ``i`` until ``limit`` seconds after it started (a call still queued
        behind another gets its whole limit once it starts, but waits at most one limit
        to start); True if it returned. On False the call is marked abandoned and
        ``on_give_up(i)`` is called under the batch's lock (so that it cannot race the
        call's end)."""
        with self._cond:
            since = time.monotonic()
            while self.finished <= i:
                now = time.monotonic()
                began = self.started[i]
                if limit is None:
                    remaining: float | None = None
                elif began is None:
                    remaining = since + limit - now
                else:
                    remaining = began + limit - now
                if remaining is not None and remaining <= 0:
                    self.abandoned = i
                    if on_give_up is not None:
                        on_give_up(i)
                    return False
                self._cond.wait(remaining)
            return True
