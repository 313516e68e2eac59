"""One way to run a call on another thread and wait for it with a deadline: the daemon's
jobs and the plugin host's hook calls both go through :class:`BoundedCall`.

Python cannot stop a thread: a call that outlives its deadline is left to finish on its
own (a daemon thread), and the waiter that gave up marks it :attr:`BoundedCall.abandoned`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class BoundedCall:
    """``fn()`` run by :meth:`run` (on whichever thread calls it), its value or error kept
    for the waiter. ``finish`` replaces the plain ``done.set()`` at the end, for a caller
    that must update its own books in the same step (under its lock)."""

    def __init__(self, fn: Callable[[], Any],
                 finish: Callable[[BoundedCall], None] | None = None) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        #: Set by a waiter that stopped waiting (the deadline passed).
        self.abandoned = False
        #: ``time.monotonic()`` when :meth:`run` began (a call queued behind others
        #: starts later than it was handed over; its time limit counts from here).
        self.started: float | None = None
        self._finish = finish

    def run(self) -> None:
        self.started = time.monotonic()
        try:
            self.value = self.fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            self.error = exc
        finally:
            if self._finish is not None:
                self._finish(self)
            else:
                self.done.set()

    def wait(self, timeout: float | None) -> bool:
        """True when the call finished within ``timeout`` seconds."""
        return self.done.wait(timeout)
