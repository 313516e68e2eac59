"""Running one scheduled job: in its own thread, bounded by its deadline, with the
errors the daemon reports (:class:`JobRunner`, called by APScheduler).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from apscheduler.triggers.base import BaseTrigger
from sqlalchemy.exc import DBAPIError

from bridge.bounded import BoundedCalls
from bridge.daemon import jobs
from bridge.errors import BridgeError
from bridge.lapor.errors import LaporError
from bridge.sync.pull import PaginationError

if TYPE_CHECKING:
    pass


if TYPE_CHECKING:
    from bridge.daemon.scheduler import Daemon

log = logging.getLogger("bridge.daemon")

Counts = dict[str, Any]
Body = Callable[[jobs.JobContext], Counts | None]


class JobFailed(BridgeError):
    """A job run raised; carries how long it ran (for the failure's log line)."""

    def __init__(self, job: str, seconds: float, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {_first_line(cause)}")
        self.job = job
        self.seconds = seconds
        self.cause = cause


class JobTimedOut(BridgeError):
    def __init__(self, job: str, seconds: float, message: str) -> None:
        super().__init__(message)
        self.job = job
        self.seconds = seconds


class JobOverrun(BridgeError):
    """The previous run of the job is still going (past its deadline); this one skipped."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:500]


def _expected(exc: BaseException) -> bool:
    """Failures an operator can act on from the message alone (no traceback needed)."""


    return isinstance(exc, LaporError | DBAPIError | PaginationError | jobs.PushAborted
                      | JobTimedOut | JobOverrun | OSError)


@dataclass
class ScheduledJob:
    """One job the daemon schedules: its own (pull, push, ...) or a plugin's
    :class:`bridge.domain.JobSpec`, wrapped with its kind, trigger and lock."""

    id: str
    #: Which ``[daemon.timeouts]`` entry applies, and the metrics label.
    kind: str
    trigger: BaseTrigger
    body: Body
    leader_only: bool = True
    #: Jobs sharing a lock never run at the same time (pull and reconcile).
    lock: threading.Lock | None = None
    #: Run as soon as this daemon becomes leader (instead of one interval later).
    run_on_promotion: bool = False
    #: Log the per-run line at DEBUG (the health job writes its own summary).
    quiet: bool = False


@dataclass
class _Streak:
    failures: int = 0
    since: datetime | None = None


@dataclass
class JobRunner:
    """What APScheduler calls: runs the body in its own thread, bounded by a deadline."""

    daemon: Daemon
    spec: ScheduledJob
    timeout: float
    thread: threading.Thread | None = None
    last: dict[str, Any] = field(default_factory=dict)

    def __call__(self) -> Counts | None:
        d = self.daemon
        if d.stopping.is_set() or (self.spec.leader_only and not d.is_leader):
            return None
        prev = self.thread
        if prev is not None and prev.is_alive():
            raise JobOverrun(f"the previous run is still finishing past its deadline of "
                             f"{self.timeout:g} s; this run is skipped")
        assert d.rt is not None
        ctx = jobs.JobContext(rt=d.rt, job=self.spec.id)
        call = BoundedCalls([lambda: self._body(ctx)])
        started = time.monotonic()
        thread = threading.Thread(target=call.run, name=f"job:{self.spec.id}", daemon=True)
        d.register(ctx)
        self.thread = thread
        thread.start()
        try:
            finished = self._wait(thread, started + self.timeout)
            if not finished:
                ctx.stop.set()
                log.error("job %s passed its deadline of %g s; told to stop at the next "
                          "page or row", self.spec.id, self.timeout,
                          extra={"job": self.spec.id, "event": "job_deadline"})
                self._wait(thread, time.monotonic() + d.cfg.stop_timeout)
        finally:
            if not thread.is_alive():
                d.unregister(ctx)
        seconds = time.monotonic() - started
        if not finished:
            state = "still running" if thread.is_alive() else "stopped"
            raise JobTimedOut(self.spec.id, seconds,
                              f"did not finish within its deadline of {self.timeout:g} s "
                              f"({state})")
        if call.error is not None:
            raise JobFailed(self.spec.id, seconds, call.error) from call.error
        counts: Counts = call.value or {}
        d.job_succeeded(self, counts, seconds)
        return counts

    def _wait(self, thread: threading.Thread, until: float) -> bool:
        d = self.daemon
        while thread.is_alive():
            now = time.monotonic()
            if now >= until or (d.stopping.is_set() and now >= d.stop_deadline):
                return False
            thread.join(min(0.25, until - now))
        return True

    def _body(self, ctx: jobs.JobContext) -> Counts | None:
        lock = self.spec.lock
        if lock is None:
            return self.spec.body(ctx)
        while not lock.acquire(timeout=0.2):
            if ctx.stop.is_set():
                return {"skipped": "stopped while another inbox job ran"}
        try:
            return self.spec.body(ctx)
        finally:
            lock.release()


