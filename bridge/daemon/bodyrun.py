"""Running one owned body: its own thread, its own cycle, its own request budget.

A worker of a several-body deployment runs each body it owns in a :class:`BodyRunner`
thread, so a body whose LAPOR! is slow or failing delays nobody else. The runner repeats
the body's *cycle* (the jobs that are due: pull and tracking, push, events, deadlines,
refresh, reconcile), pausing between cycles, until the share asks it to stop now (the
lease is lost, the process stops) or to hand the body back (after the cycle in hand).

What a body is to the runner is a :class:`BodyWork`: two callables, so that the runner
needs nothing of how the deployment builds its bodies. :func:`runtime_work` makes one from
a body's :class:`bridge.runtime.Runtime`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.daemon import jobs
from bridge.daemon.lease import LeaseManager
from bridge.daemon.runner import _first_line
from bridge.daemon.settings import DaemonSettings

if TYPE_CHECKING:
    from bridge.runtime import Runtime

log = logging.getLogger("bridge.daemon.bodies")

Counts = dict[str, Any]


def _nothing() -> None:
    return None


@dataclass
class BodyWork:
    """One body, as a worker runs it."""

    #: One cycle; stops at the next page or row once the event is set.
    cycle: Callable[[threading.Event], Counts]
    #: Called when this worker takes the body, before its first cycle.
    taken: Callable[[], None] = _nothing
    #: Pause between two cycles (seconds).
    pause: float = 1.0


class BodyRunner:
    """The thread running one body while this worker holds its lease."""

    def __init__(self, code: str, work: BodyWork, lease: LeaseManager) -> None:
        self.code = code
        self.work = work
        self.lease = lease
        self._stop = threading.Event()
        self._back = threading.Event()
        self._wake = threading.Event()
        self._done = threading.Event()
        self.cycles = 0
        self.failures = 0
        self.last: Counts = {}
        self.thread = threading.Thread(target=self._loop, name=f"body:{code}", daemon=True)

    def start(self) -> BodyRunner:
        self.thread.start()
        return self

    # -- BodyHandle ----------------------------------------------------------------------

    def hand_back(self) -> None:
        # The cycle in hand ends at its next page or row (as on SIGTERM), not after a
        # whole catch-up: the body's rightful owner takes it a moment later.
        self._back.set()
        self._stop.set()
        self._wake.set()

    def stop_now(self) -> None:
        self._stop.set()
        self._wake.set()

    def finished(self) -> bool:
        return self._done.is_set()

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)

    # -- the loop ------------------------------------------------------------------------

    def _go_on(self) -> bool:
        # Never start a cycle without a renewal that covers the present: the lease could
        # be someone else's by the time the first request leaves.
        return not (self._stop.is_set() or self._back.is_set()) and self.lease.still_valid()

    def _loop(self) -> None:
        try:
            self.work.taken()
            while self._go_on():
                started = time.monotonic()
                try:
                    self.last = self.work.cycle(self._stop) or {}
                    self.cycles += 1
                except Exception as exc:
                    self.failures += 1
                    log.error("body %s: cycle failed after %.2fs: %s: %s", self.code,
                              time.monotonic() - started, type(exc).__name__, _first_line(exc),
                              extra={"event": "body_cycle_error", "body": self.code})
                self._wake.wait(self.work.pause)
        except Exception as exc:  # taken() failed: the share takes the body up again
            log.error("body %s: could not start: %s: %s", self.code, type(exc).__name__,
                      _first_line(exc), extra={"event": "body_cycle_error", "body": self.code})
        finally:
            self._done.set()


# -- a body's cycle from its Runtime -----------------------------------------------------


@dataclass
class _Job:
    name: str
    interval: float
    timeout: float
    body: Callable[[jobs.JobContext], Counts | None]
    #: Run at once when the body is taken (else one interval later).
    at_take: bool = True


class _Plan:
    """The jobs of one body with their intervals: a cycle runs those that are due."""

    def __init__(self, rt: Runtime, cfg: DaemonSettings,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rt = rt
        self.clock = clock
        t = cfg.timeouts
        self.jobs = [
            _Job("pull", cfg.pull_interval, t.pull, jobs.pull),
            _Job("push", cfg.push_interval, t.push, jobs.push),
            _Job("events", cfg.events_interval, t.events, jobs.events),
            _Job("deadlines", cfg.deadline_interval, t.deadlines,
                 lambda ctx: jobs.deadlines(ctx, cfg.deadline_near_hours)),
            _Job("refresh", cfg.refresh_interval, t.refresh, jobs.refresh, at_take=False),
            _Job("reconcile", cfg.reconcile_interval, t.reconcile,
                 lambda ctx: jobs.reconcile(ctx, cfg.reconcile_window_days), at_take=False),
        ]
        self.due: dict[str, float] = {}

    def taken(self) -> None:
        # The worker that had this body may have spent its burst a moment ago: starting
        # empty keeps the body's rate whoever runs it.
        self.rt.budget.drain()
        now = self.clock()
        self.due = {j.name: now if j.at_take else now + j.interval for j in self.jobs}
        try:
            age = jobs.refresh_age(self.rt)
        except Exception:
            age = None
        if age is None or age.total_seconds() >= self._job("refresh").interval:
            self.due["refresh"] = now

    def _job(self, name: str) -> _Job:
        return next(j for j in self.jobs if j.name == name)

    def cycle(self, stop: threading.Event) -> Counts:
        out: Counts = {}
        failed: list[str] = []
        for job in self.jobs:
            if stop.is_set():
                break
            if self.clock() < self.due.get(job.name, 0.0):
                continue
            self.due[job.name] = self.clock() + job.interval
            try:
                out[job.name] = _bounded(self.rt, job, stop)
            except Exception as exc:
                failed.append(job.name)
                log.error("job %s failed: %s: %s", job.name, type(exc).__name__,
                          _first_line(exc), extra={"event": "job_run", "job": job.name,
                                                   "ok": False})
        if failed:
            out["failed"] = failed
        return out

    def pause(self, cfg: DaemonSettings) -> float:
        return max(0.05, min(cfg.pull_interval, cfg.push_interval, cfg.events_interval))


def _bounded(rt: Runtime, job: _Job, stop: threading.Event) -> Counts | None:
    """Run ``job`` in this thread; its own stop is set at its deadline or when ``stop``
    is (the jobs stop at their next page or row)."""
    ctx = jobs.JobContext(rt=rt, job=job.name)
    done = threading.Event()
    until = time.monotonic() + job.timeout

    def watch() -> None:
        while not done.is_set():
            left = until - time.monotonic()
            if left <= 0 or stop.is_set():
                ctx.stop.set()
                return
            done.wait(min(0.2, left))

    watcher = threading.Thread(target=watch, name=f"deadline:{job.name}", daemon=True)
    watcher.start()
    try:
        return job.body(ctx)
    finally:
        done.set()


def runtime_work(rt: Runtime, cfg: DaemonSettings) -> BodyWork:
    """The :class:`BodyWork` of a body's Runtime: the daemon's jobs at their intervals."""
    plan = _Plan(rt, cfg)
    return BodyWork(cycle=plan.cycle, taken=plan.taken, pause=plan.pause(cfg))


__all__ = ["BodyRunner", "BodyWork", "runtime_work"]
