"""``lapor-bridge run``: the scheduled sync daemon.

Threads and what they do:

* **main**: APScheduler's ``BlockingScheduler`` (in-memory job store: what must survive a
  crash lives in our own cursor and outbox tables). Jobs are added paused; the leader
  resumes them.
* **lease**: takes or renews the sync lease (:mod:`bridge.daemon.lease`) every
  ``lease_renew_interval`` (leader) or ``standby_poll_interval`` (standby), writes this
  daemon's heartbeat row, and on a stop request shuts the scheduler down.
* **watchdog**: demotes the leader as soon as its last renewal no longer covers the
  present, even while the lease thread is stuck in a database call.
* **job bodies**: each run of a job executes in its own thread, watched by the APScheduler
  worker that started it. Past the job's deadline (``[daemon.timeouts]``) the run's stop
  event is set, so the pull stops at the next page and the push at the next row; the
  client's own timeouts bound every request.

Stopping (SIGTERM, SIGINT): every run is told to stop at its next boundary, the scheduler
shuts down, running bodies get up to ``stop_timeout`` to commit what they hold, the lease
is released (a standby takes over at its next poll) and the process exits 0 -- also when
a job that cannot be interrupted (the deadline sweep, a plugin's job) is still running
then: nothing is lost by leaving it, as nothing is by a harder stop, because every page,
outbox row and swept case is committed on its own.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_STARTED,
    JobExecutionEvent,
    JobSubmissionEvent,
    SchedulerEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bridge.config import ConfigError, Settings
from bridge.daemon import jobs
from bridge.daemon.health import HealthServer, Metrics, collect, health_token, summary_line
from bridge.daemon.lease import LeaseManager, make_holder
from bridge.daemon.settings import DaemonSettings, daemon_settings
from bridge.daemon.share import Membership, SecondWorker
from bridge.daemon.status import LEADER, STARTING, STOPPED, forget_old
from bridge.plugins import PluginError
from bridge.reports.settings import recap_schedules
from bridge.runtime import Runtime
from bridge.store.models import utcnow

if TYPE_CHECKING:
    from bridge.runtime import Runtime

from bridge.daemon.leader import LeaderElection, _now
from bridge.daemon.runner import (
    Counts,
    JobFailed,
    JobOverrun,
    JobRunner,
    JobTimedOut,
    ScheduledJob,
    _expected,
    _first_line,
    _Streak,
)

log = logging.getLogger("bridge.daemon")


class Daemon(LeaderElection):
    """One ``lapor-bridge run`` process. ``run()`` blocks and returns the exit code."""

    def __init__(self, settings: Settings, *, cfg: DaemonSettings | None = None,
                 runtime: Runtime | None = None, install_signals: bool = True) -> None:
        self.settings = settings
        self.cfg = cfg or daemon_settings(settings)
        self.holder = make_holder()
        self.started_at = utcnow()
        self.rt: Runtime | None = runtime
        self._own_runtime = runtime is None
        self.install_signals = install_signals
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.stop_deadline = float("inf")
        self.role = STARTING
        self.scheduler: BlockingScheduler | None = None
        self.lease: LeaseManager | None = None
        self.membership: Membership | None = None
        self.http: HealthServer | None = None
        self.runners: dict[str, JobRunner] = {}
        self._role_lock = threading.RLock()
        self._contexts: set[jobs.JobContext] = set()
        self._contexts_lock = threading.Lock()
        self._streaks: dict[str, _Streak] = {}
        self._skipping: set[str] = set()
        self._threads: list[threading.Thread] = []
        self._main_done = threading.Event()
        self._signals = 0
        self._db_trouble_since: float | None = None
        self._db_trouble_logged = 0.0
        #: Set once this daemon has been leader at least once (for tests and status).
        self.became_leader = threading.Event()

    # -- public ----------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.role == LEADER

    def request_stop(self, reason: str = "requested") -> None:
        """Begin a clean stop (thread-safe; what SIGTERM and SIGINT do)."""
        if self.stopping.is_set():
            return
        self.stop_deadline = time.monotonic() + self.cfg.stop_timeout
        log.info("stopping (%s): finishing the page or row in hand, at most %g s", reason,
                 self.cfg.stop_timeout, extra={"event": "stopping"})
        self.stopping.set()
        self._stop_all_runs()

    def run(self) -> int:
        """Start, serve until stopped, return the process exit code (0: clean stop)."""
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

        try:
            try:
                if self.rt is None:
                    self.rt = self._open_runtime()
                    if self.rt is None:
                        return 1
                self._build()
                self._join()
            except (ConfigError, PluginError, SecondWorker) as exc:
                log.error("%s", exc)
                return 2
            if self.cfg.http_port is not None:
                try:
                    self._start_http()
                except ValueError as exc:  # the health token file
                    log.error("%s", ConfigError(self.rt.settings.source if self.rt else "?",
                                                "daemon.health_token_file", str(exc)))
                    return 2
                except OSError as exc:
                    log.error("cannot serve /healthz on %s:%s: %s", self.cfg.http_host,
                              self.cfg.http_port, exc)
                    return 1
            assert self.scheduler is not None
            log.info("daemon %s started (%d jobs); asking for the sync lease", self.holder,
                     len(self.runners), extra={"event": "started", "instance": self.holder})
            if not self.stopping.is_set():
                self.scheduler.start()
            # From here on nobody needs to (or can) shut the scheduler down.
            self._main_done.set()
            return self._finish()
        finally:
            self._main_done.set()
            if self._own_runtime and self.rt is not None:
                self.rt.close()

    # -- start -------------------------------------------------------------------------

    def _open_runtime(self) -> Runtime | None:
        """The Runtime, retrying an unreachable database with backoff for start_timeout."""


        where = make_url(self.settings.database.url).render_as_string(hide_password=True)
        give_up = time.monotonic() + self.cfg.start_timeout
        delay = min(1.0, self.cfg.start_retry_max_delay)
        attempt = 0
        while True:
            attempt += 1
            try:
                return Runtime(self.settings)
            except (DBAPIError, OSError) as exc:
                left = give_up - time.monotonic()
                reason = f"{type(exc).__name__}: {_first_line(exc)}"
                if left <= 0:
                    log.error("giving up: the database %s could not be reached for %g s "
                              "(%d attempts); last error: %s", where, self.cfg.start_timeout,
                              attempt, reason, extra={"event": "database_unreachable"})
                    return None
                pause = min(delay, left)
                log.warning("the database %s cannot be reached (%s); retrying in %.1f s "
                            "(giving up in %.0f s)", where, reason, pause, left,
                            extra={"event": "database_retry", "attempt": attempt})
                if self.stopping.wait(pause):
                    return None
                delay = min(delay * 2, self.cfg.start_retry_max_delay)

    def _join(self) -> None:
        """Be one of the deployment's workers (on SQLite: the only one, else SecondWorker)."""
        assert self.rt is not None
        self.membership = Membership(self.rt.engine, self.cfg.lease_ttl, worker_id=self.holder)
        self.membership.join()

    def _build(self) -> None:
        rt = self.rt
        assert rt is not None
        tz = ZoneInfo(self.settings.regency.timezone)
        specs = self._job_specs(rt, tz)
        workers = len(specs) + 2
        self.scheduler = BlockingScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": ThreadPoolExecutor(max_workers=workers)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                # APScheduler wants whole seconds here.
                "misfire_grace_time": max(1, int(-(-self.cfg.misfire_grace_time // 1))),
            },
            timezone=tz,
        )
        self.scheduler.add_listener(self._on_job_event,
                                    EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        self.scheduler.add_listener(self._on_started, EVENT_SCHEDULER_STARTED)
        timeouts = self.cfg.timeouts.model_dump()
        for spec in specs:
            runner = JobRunner(self, spec, float(timeouts[spec.kind]))
            self.runners[spec.id] = runner
            self.scheduler.add_job(runner, trigger=spec.trigger, id=spec.id, name=spec.id,
                                   next_run_time=None if spec.leader_only else _now())
        self.lease = LeaseManager(rt.engine, self.cfg.lease_ttl, holder=self.holder)

    def _job_specs(self, rt: Runtime, tz: ZoneInfo) -> list[ScheduledJob]:
        c = self.cfg

        def every(seconds: float) -> IntervalTrigger:
            return IntervalTrigger(seconds=seconds, timezone=tz)

        inbox = threading.Lock()
        specs = [
            ScheduledJob("pull", "pull", every(c.pull_interval), jobs.pull, lock=inbox,
                    run_on_promotion=True),
            ScheduledJob("push", "push", every(c.push_interval), jobs.push, run_on_promotion=True),
            ScheduledJob("events", "events", every(c.events_interval), jobs.events,
                    run_on_promotion=True),
            ScheduledJob("deadlines", "deadlines", every(c.deadline_interval),
                    lambda ctx: jobs.deadlines(ctx, c.deadline_near_hours),
                    run_on_promotion=True),
            ScheduledJob("refresh", "refresh", every(c.refresh_interval), jobs.refresh),
            ScheduledJob("reconcile", "reconcile", every(c.reconcile_interval),
                    lambda ctx: jobs.reconcile(ctx, c.reconcile_window_days), lock=inbox),
            ScheduledJob("health", "health", every(c.health_log_interval), self._health_job,
                    quiet=True),
        ]
        hook = jobs.recap_hook()
        if hook is None:
            if c.recaps:
                log.info("recap jobs not scheduled: the reports feature (bridge.reports.jobs"
                         ".run_recap) is not installed")
        else:
            for kind, expr in self._recap_schedules(c).items():
                specs.append(ScheduledJob(
                    f"recap:{kind}", "recap", CronTrigger.from_crontab(expr, timezone=tz),
                    lambda ctx, kind=kind: jobs.recap(ctx, kind, hook)))  # type: ignore[misc]
        if c.plugin_jobs:
            for pj in rt.plugins.scheduler_jobs():
                func = pj.func
                specs.append(ScheduledJob(pj.id, "plugin", pj.make_trigger(),
                                     lambda ctx, func=func: _plugin_run(func)))  # type: ignore[misc]
        return specs

    def _start_http(self) -> None:
        rt = self.rt
        assert rt is not None
        self.http = HealthServer(
            self.cfg.http_host, int(self.cfg.http_port or 0),
            lambda: collect(rt.engine, rt.sessions, self.cfg,
                            body=rt.settings.regency.code), self.metrics,
            extra=lambda: {"instance": self.holder, "role": self.role},
            token=health_token(self.cfg.health_token_file)).start()
        log.info("serving /healthz and /metrics on http://%s:%d", self.cfg.http_host,
                 self.http.port, extra={"event": "http", "port": self.http.port})

    def _on_started(self, _event: SchedulerEvent) -> None:
        for name, target in (("lease", self._lease_loop), ("watchdog", self._watchdog_loop),
                             ("members", self._membership_loop)):
            thread = threading.Thread(target=target, name=f"daemon-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()

    # -- job outcomes ------------------------------------------------------------------

    def register(self, ctx: jobs.JobContext) -> None:
        with self._contexts_lock:
            self._contexts.add(ctx)
        if self.stopping.is_set() or (not self.is_leader and ctx.job in self.runners
                                      and self.runners[ctx.job].spec.leader_only):
            ctx.stop.set()

    def unregister(self, ctx: jobs.JobContext) -> None:
        with self._contexts_lock:
            self._contexts.discard(ctx)

    def jobs_in_hand(self) -> int:
        """How many job runs are under way (a demoted leader finishes the page in hand)."""
        with self._contexts_lock:
            return len(self._contexts)

    def _stop_all_runs(self, include_rt: bool = True) -> None:
        if include_rt and self.rt is not None:
            self.rt.stop.set()
        with self._contexts_lock:
            contexts = list(self._contexts)
        for ctx in contexts:
            ctx.stop.set()

    def job_succeeded(self, runner: JobRunner, counts: Counts, seconds: float) -> None:
        job = runner.spec.id
        self._skipping.discard(job)
        self.metrics.job_result(job, runner.spec.kind, counts, seconds)
        runner.last = {"at": utcnow().isoformat(), "ok": True, "seconds": round(seconds, 3),
                       "counts": counts}
        streak = self._streaks.pop(job, None)
        detail = " ".join(f"{k}={v}" for k, v in counts.items())
        log.log(logging.DEBUG if runner.spec.quiet else logging.INFO,
                "job %s ok in %.2fs%s", job, seconds, f": {detail}" if detail else "",
                extra={"event": "job_run", "job": job, "ok": True,
                       "duration_s": round(seconds, 3), "counts": counts})
        if streak is not None and streak.failures:
            log.info("job %s recovered after %d failed run(s)", job, streak.failures,
                     extra={"event": "job_recovered", "job": job})

    def _on_job_event(self, event: SchedulerEvent) -> None:
        job = getattr(event, "job_id", "?")
        if isinstance(event, JobExecutionEvent) and event.code == EVENT_JOB_ERROR:
            self._skipping.discard(job)
            exc = event.exception
            cause: BaseException = exc.cause if isinstance(exc, JobFailed) else exc
            seconds = getattr(exc, "seconds", None)
            streak = self._streaks.setdefault(job, _Streak())
            streak.failures += 1
            streak.since = streak.since or utcnow()
            outcome = ("timeout" if isinstance(exc, JobTimedOut)
                       else "overrun" if isinstance(exc, JobOverrun) else "error")
            runner = self.runners.get(job)
            self.metrics.job_outcome(job, outcome, seconds)
            if runner is not None:
                runner.last = {"at": utcnow().isoformat(), "ok": False,
                               "error": f"{type(cause).__name__}: {_first_line(cause)}"}
            took = f" after {seconds:.2f}s" if seconds is not None else ""
            again = (f" ({streak.failures} failed runs in a row since "
                     f"{streak.since.isoformat(timespec='seconds')})"
                     if streak.failures > 1 else "")
            log.error("job %s failed%s: %s: %s%s", job, took, type(cause).__name__,
                      _first_line(cause), again,
                      exc_info=None if _expected(cause) else (type(cause), cause,
                                                              cause.__traceback__),
                      extra={"event": "job_failed", "job": job, "ok": False,
                             "duration_s": seconds, "failures": streak.failures})
        elif event.code == EVENT_JOB_MISSED:
            when = getattr(event, "scheduled_run_time", None)
            self.metrics.job_outcome(job, "missed")
            log.warning("job %s missed its run at %s (more than %g s late); the next run "
                        "catches up", job, when, self.cfg.misfire_grace_time,
                        extra={"event": "job_missed", "job": job})
        elif isinstance(event, JobSubmissionEvent) and event.code == EVENT_JOB_MAX_INSTANCES:
            self.metrics.job_outcome(job, "skipped")
            # Once per long run (a first pull of a big inbox takes hours), not per interval.
            first = job not in self._skipping
            self._skipping.add(job)
            log.log(logging.WARNING if first else logging.DEBUG,
                    "job %s: run skipped, the previous run is still going", job,
                    extra={"event": "job_skipped", "job": job})

    def _recap_schedules(self, c: DaemonSettings) -> dict[str, str]:
        """The profile's own recap schedule ([reports] schedules) when it names one;
        otherwise [daemon] recaps."""
        if "schedules" in self.settings.section("reports"):
            return recap_schedules(self.settings)
        return dict(c.recaps)

    def _health_job(self, ctx: jobs.JobContext) -> Counts:
        rt = ctx.rt
        report = collect(rt.engine, rt.sessions, self.cfg, body=rt.settings.regency.code)
        self.metrics.observe(report)
        if report.healthy:
            log.info(summary_line(report), extra={"event": "health", "healthy": True})
        else:
            log.error(summary_line(report), extra={"event": "health", "healthy": False,
                                                   "problems": report.problems})
        forget_old(rt.engine, timedelta(days=7))
        return {"problems": len(report.problems)}

    # -- stopping ----------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        name = signal.Signals(signum).name
        if self._signals > 1:
            log.error("%s again: exiting now (the store stays consistent: every page and "
                      "row is committed on its own)", name)
            logging.shutdown()
            os._exit(1)
        self.request_stop(name)

    def _shutdown_scheduler(self) -> None:
        sched = self.scheduler
        while sched is not None and not self._main_done.is_set():
            if sched.state != STATE_STOPPED:
                try:
                    sched.shutdown(wait=False)
                except Exception:
                    log.debug("scheduler shutdown", exc_info=True)
                return
            time.sleep(0.05)

    def _finish(self) -> int:
        if not self.stopping.is_set():
            self.request_stop("scheduler ended")
        for thread in self._threads:
            thread.join(max(0.0, self.stop_deadline - time.monotonic()))
        running = []
        for job_id, runner in self.runners.items():
            body = runner.thread
            if body is not None and body.is_alive():
                body.join(max(0.0, self.stop_deadline - time.monotonic()))
                if body.is_alive():
                    running.append(job_id)
        was_leader = self.is_leader
        with self._role_lock:
            self.role = STOPPED
        self.metrics.leader.set(0)
        if self.lease is not None:
            try:
                if self.lease.release() and was_leader:
                    log.info("sync lease released", extra={"event": "lease_released"})
            except Exception as exc:
                log.warning("could not release the sync lease (%s); a standby takes over "
                            "when it expires", _first_line(exc))
        self._heartbeat()
        if self.membership is not None:
            try:
                self.membership.leave()
            except Exception as exc:
                log.debug("worker row not removed: %s", exc)
        if self.http is not None:
            self.http.stop()
        if running:
            # Still a clean stop as far as the data goes: each step of every job (an inbox
            # page, an outbox row, one case of the sweep) commits on its own, and the next
            # run does what this one left.
            log.warning("stopped after %g s without waiting any longer for job(s) %s; "
                        "nothing is lost: the next run goes on from what was committed",
                        self.cfg.stop_timeout, ", ".join(running),
                        extra={"event": "stopped", "abandoned": running})
        else:
            log.info("stopped cleanly", extra={"event": "stopped"})
        return 0


def _plugin_run(func: Callable[[], object]) -> Counts:
    func()
    return {}


__all__ = ["Daemon", "JobFailed", "JobOverrun", "JobRunner", "ScheduledJob", "JobTimedOut"]
