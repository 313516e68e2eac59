"""Leader election: the sync lease taken, renewed and lost, the watchdog that demotes a
leader whose renewal no longer covers the present, and what promotion and demotion do
to the scheduled jobs. A mixin of :class:`bridge.daemon.scheduler.Daemon`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.blocking import BlockingScheduler

from bridge.daemon import jobs
from bridge.daemon.health import HealthServer, Metrics
from bridge.daemon.lease import LeaseManager
from bridge.daemon.settings import DaemonSettings
from bridge.daemon.share import Membership
from bridge.daemon.status import LEADER, STANDBY, STARTING, write_status
from bridge.runtime import Runtime

if TYPE_CHECKING:
    from bridge.runtime import Runtime

from bridge.daemon.runner import JobRunner, _first_line

log = logging.getLogger("bridge.daemon")


def _now() -> datetime:
    return datetime.now(UTC)


class LeaderElection:
    """The lease side of the daemon: who runs the jobs."""

    cfg: DaemonSettings
    holder: str
    started_at: datetime
    rt: Runtime | None
    metrics: Metrics
    stopping: threading.Event
    role: str
    scheduler: BlockingScheduler | None
    lease: LeaseManager | None
    membership: Membership | None
    http: HealthServer | None
    runners: dict[str, JobRunner]
    became_leader: threading.Event
    _role_lock: threading.RLock
    _db_trouble_since: float | None
    _db_trouble_logged: float

    @property
    def is_leader(self) -> bool:
        raise NotImplementedError

    def _stop_all_runs(self, include_rt: bool = True) -> None:
        raise NotImplementedError

    def _shutdown_scheduler(self) -> None:
        raise NotImplementedError

    def _lease_loop(self) -> None:
        while not self.stopping.is_set():
            self._lease_tick()
            wait = (self.cfg.lease_renew_interval if self.is_leader
                    else self.cfg.standby_poll_interval)
            self.stopping.wait(wait)
        self._shutdown_scheduler()

    def _lease_tick(self) -> None:
        lease = self.lease
        assert lease is not None
        try:
            held = lease.acquire()
        except Exception as exc:
            self._db_trouble(exc)
            return
        if self._db_trouble_since is not None:
            log.info("the database is reachable again", extra={"event": "database_back"})
            self._db_trouble_since = None
        if held and not self.is_leader:
            self._promote()
        elif not held and self.is_leader:
            self._demote("another daemon holds the lease")
        elif not held and self.role == STARTING:
            current = lease.current()
            with self._role_lock:
                self.role = STANDBY
            log.info("standby: %s holds the sync lease; polling every %g s",
                     current.holder if current else "another daemon",
                     self.cfg.standby_poll_interval, extra={"event": "standby"})
        self._heartbeat()

    def _db_trouble(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._db_trouble_since is None:
            self._db_trouble_since = now
            self._db_trouble_logged = 0.0
        if now - self._db_trouble_logged >= 60:
            self._db_trouble_logged = now
            log.error("cannot reach the database to renew the sync lease (%s: %s); "
                      "failing for %.0f s", type(exc).__name__, _first_line(exc),
                      now - self._db_trouble_since, extra={"event": "lease_error"})
        if self.is_leader and self.lease is not None and not self.lease.still_valid():
            self._demote("the lease could not be renewed")

    def _membership_loop(self) -> None:
        # Its own thread: a slow write here (SQLite busy with a pull) must never delay
        # the renewal of the sync lease.
        while not self.stopping.wait(self.cfg.lease_renew_interval):
            if self.membership is not None:
                try:
                    self.membership.heartbeat()
                except Exception as exc:
                    log.debug("worker heartbeat not written: %s", exc)

    def _watchdog_loop(self) -> None:
        tick = min(0.5, self.cfg.lease_renew_interval / 4)
        while not self.stopping.wait(tick):
            if self.is_leader and self.lease is not None and not self.lease.still_valid():
                self._demote("the lease could not be renewed in time")

    def _promote(self) -> None:
        rt = self.rt
        sched = self.scheduler
        assert rt is not None and sched is not None
        with self._role_lock:
            if self.stopping.is_set() or self.is_leader:
                return
            self.role = LEADER
            self.metrics.leader.set(1)
            log.info("leader: this daemon holds the sync lease; sync jobs start",
                     extra={"event": "leader", "instance": self.holder})
            now = _now()
            stale_refresh = self._refresh_is_stale()
            for job_id, runner in self.runners.items():
                if not runner.spec.leader_only:
                    continue
                try:
                    sched.resume_job(job_id)
                    if runner.spec.run_on_promotion or (job_id == "refresh" and stale_refresh):
                        sched.modify_job(job_id, next_run_time=now)
                except Exception:  # the scheduler is shutting down
                    log.debug("could not resume job %s", job_id, exc_info=True)
        self.became_leader.set()

    def _refresh_is_stale(self) -> bool:
        assert self.rt is not None
        try:
            age = jobs.refresh_age(self.rt)
        except Exception:
            return True
        return age is None or age.total_seconds() >= self.cfg.refresh_interval

    def _demote(self, reason: str) -> None:
        sched = self.scheduler
        with self._role_lock:
            if not self.is_leader:
                return
            self.role = STANDBY
            self.metrics.leader.set(0)
            log.error("lost the sync lease (%s): sync jobs stopped, standby now", reason,
                      extra={"event": "lost_lease"})
            if sched is not None:
                for job_id, runner in self.runners.items():
                    if runner.spec.leader_only:
                        try:
                            sched.pause_job(job_id)
                        except Exception:
                            log.debug("could not pause job %s", job_id, exc_info=True)
        self._stop_all_runs(include_rt=False)

    def _heartbeat(self) -> None:
        rt = self.rt
        if rt is None:
            return
        try:
            write_status(rt.engine, self.holder, self.role, self.started_at,
                         self.next_runs(), self._info())
        except Exception as exc:
            log.debug("heartbeat not written: %s", exc)

    def next_runs(self) -> dict[str, str | None]:
        sched = self.scheduler
        if sched is None:
            return {}
        out: dict[str, str | None] = {}
        for job in sched.get_jobs():
            moment = getattr(job, "next_run_time", None)
            out[job.id] = moment.astimezone(UTC).isoformat() if moment else None
        return out

    def _info(self) -> dict[str, Any]:
        return {
            "http_port": self.http.port if self.http else None,
            "last_runs": {job: r.last for job, r in self.runners.items() if r.last},
        }

