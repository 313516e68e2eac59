"""Is the deployment healthy? What ``lapor-bridge status``, ``/healthz`` and ``/metrics`` say.

:func:`collect` reads everything from the database, so it gives the same answer from any
machine: who holds the sync lease and which daemons are alive, the last successful pull
and push, the lag behind LAPOR!, the outbox (pending, waiting, dead), quarantined items,
plugin events waiting, and when each job runs next. It then applies the thresholds of
``[daemon.health]``; every threshold crossed is one line in ``problems``.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.daemon.lease import SYNC_LEASE, LeaseInfo, read_lease
from bridge.daemon.settings import DaemonSettings
from bridge.daemon.status import STOPPED, InstanceStatus, read_statuses
from bridge.filemodes import open_to_others
from bridge.locale import human_span
from bridge.services.store_health import (
    StoreState,
    StreamState,
    age,
    iso,
    read_store_state,
)
from bridge.store.models import utcnow

log = logging.getLogger("bridge.daemon.health")


# The store's part is read by the services; this module judges it and serves it.
_iso = iso
_age = age


@dataclass(kw_only=True)
class HealthReport(StoreState):
    """The store's state (:class:`StoreState`), the daemons around it, and the problems."""

    lease: LeaseInfo | None
    instances: list[InstanceStatus]
    alive: dict[str, bool]
    problems: list[str] = field(default_factory=list)
    #: Each body's own report, by code (one entry for a one-body deployment); its
    #: problems are its store's only (the daemon's are the deployment's).
    bodies: dict[str, HealthReport] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def leader(self) -> InstanceStatus | None:
        if self.lease is None or self.lease.expired:
            return None
        for inst in self.instances:
            if inst.instance == self.lease.holder:
                return inst
        return None

    def as_json(self) -> dict[str, Any]:
        now = self.checked_at
        leader = self.leader
        return {
            "healthy": self.healthy,
            "problems": list(self.problems),
            "checked_at": now.isoformat(),
            "leader": leader.instance if leader else None,
            "lease": None if self.lease is None else {
                "holder": self.lease.holder,
                "expires_at": self.lease.expires_at.isoformat(),
                "acquired_at": self.lease.acquired_at.isoformat(),
                "expired": self.lease.expired,
            },
            "instances": [dict(i.as_json(), alive=self.alive.get(i.instance, False),
                               heartbeat_age_seconds=_age(now, i.heartbeat_at))
                          for i in self.instances],
            **self._store_json(),
            "next_runs": dict(leader.next_runs) if leader else {},
            "bodies": {code: body.body_json() for code, body in self.bodies.items()},
        }

    def body_json(self) -> dict[str, Any]:
        """What ``status --json`` shows of one body: its store's state and problems."""
        return {"healthy": not self.problems, "problems": list(self.problems),
                **self._store_json(), "dead_letters": self.outbox.get("dead", 0)}

    def _store_json(self) -> dict[str, Any]:
        now = self.checked_at
        return {
            "pull": self.pull.as_json(now),
            "push": self.push.as_json(now),
            "cursor_at": _iso(self.cursor_at),
            "lag_seconds": self.lag_seconds,
            "outbox": dict(self.outbox,
                           oldest_pending_age_seconds=_age(now, self.oldest_pending_at)),
            "quarantined": self.quarantined,
            "quarantine_alarm": self.quarantine_alarm.as_json() if self.quarantine_alarm
            else None,
            "pending_events": self.pending_events,
            "inbox": self.inbox_note or "available",
            "tracked": dict(self.tracked),
        }


def collect(engine: Engine, sessions: sessionmaker[Session], cfg: DaemonSettings,
            now: datetime | None = None, body: str | None = None,
            lease_name: str = SYNC_LEASE) -> HealthReport:
    """Read the deployment's state and judge it against ``cfg.health``. ``body`` (the
    body's code) adds the store's state as the report's one body entry; ``lease_name`` is
    the lease that says a daemon syncs it (a Pemda's workers hold one per body)."""
    now = now or utcnow()
    lease = read_lease(engine, lease_name)
    instances = read_statuses(engine)
    # A daemon renews at least every lease_renew_interval; three missed beats is dead.
    beat = max(cfg.lease_renew_interval, cfg.standby_poll_interval) * 3 + 5
    alive = {i.instance: i.role != STOPPED and (now - i.heartbeat_at).total_seconds() <= beat
             for i in instances}
    with sessions() as session:
        store = read_store_state(session, now)
    report = HealthReport(**{f.name: getattr(store, f.name) for f in fields(StoreState)},
                          lease=lease, instances=instances, alive=alive)
    report.problems = judge(report, cfg)
    if body is not None:
        report.bodies = {body: replace(report, problems=judge_store(report, cfg), bodies={})}
    return report


def combine(reports: Mapping[str, HealthReport], cfg: DaemonSettings) -> HealthReport:
    """One report for a several-body deployment: each body's (``collect(body=...)``) kept
    under ``bodies``, the counts summed, the oldest pull, push and cursor shown; a body's
    problem names the body."""
    parts = list(reports.values())
    first = parts[0]
    outbox = {state: sum(r.outbox.get(state, 0) for r in parts)
              for state in ("pending", "waiting", "dead")}
    pendings = [r.oldest_pending_at for r in parts if r.oldest_pending_at is not None]
    cursors = [r.cursor_at for r in parts]
    tracked: dict[str, int] = {}
    for r in parts:
        for key, n in r.tracked.items():
            tracked[key] = tracked.get(key, 0) + n
    report = HealthReport(
        checked_at=first.checked_at, lease=first.lease, instances=first.instances,
        alive=first.alive,
        pull=_oldest_stream([r.pull for r in parts]),
        push=_oldest_stream([r.push for r in parts]),
        cursor_at=None if None in cursors else min(c for c in cursors if c is not None),
        outbox=outbox, oldest_pending_at=min(pendings) if pendings else None,
        quarantined=sum(r.quarantined for r in parts),
        pending_events=sum(r.pending_events for r in parts),
        quarantine_alarm=next((r.quarantine_alarm for r in parts if r.quarantine_alarm),
                              None),
        tracked=tracked)
    report.bodies = {code: next(iter(r.bodies.values()), r) for code, r in reports.items()}
    report.problems = judge_daemon(report) + [
        f"{code}: {problem}" for code, body in report.bodies.items()
        for problem in body.problems]
    return report


def _oldest_stream(streams: list[StreamState]) -> StreamState:
    # The body furthest behind speaks for the deployment: a failing one first.
    return min(streams, key=lambda s: (not s.failing, s.last_success_at is not None,
                                       s.last_success_at or datetime.min.replace(tzinfo=UTC)))


def judge(r: HealthReport, cfg: DaemonSettings) -> list[str]:
    return judge_daemon(r) + judge_store(r, cfg)


def judge_daemon(r: HealthReport) -> list[str]:
    """The daemons' problems: nobody holds the lease, or its holder stopped beating."""
    now = r.checked_at
    problems: list[str] = []
    if r.leader is None:
        if r.lease is None:
            problems.append("no daemon holds the sync lease (is `lapor-bridge run` running?)")
        else:
            problems.append(f"the sync lease expired {human_span(_age(now, r.lease.expires_at) or 0)}"
                            f" ago (holder {r.lease.holder}); no daemon is syncing")
    elif not r.alive.get(r.leader.instance, False):
        problems.append(f"the leader {r.leader.instance} has not written a heartbeat for "
                        f"{human_span(_age(now, r.leader.heartbeat_at) or 0)}")
    return problems


def judge_store(r: HealthReport, cfg: DaemonSettings) -> list[str]:
    """A store's problems against ``[daemon.health]``: pull, push, lag, outbox, quarantine."""
    h = cfg.health
    now = r.checked_at
    problems: list[str] = []
    for label, stream, limit in (("pull", r.pull, h.max_pull_age),
                                 ("push", r.push, h.max_push_age)):
        age = _age(now, stream.last_success_at)
        if age is None:
            why = f" (last error: {stream.last_error})" if stream.last_error else ""
            problems.append(f"no successful {label} yet{why}")
        elif age > limit:
            why = f"; failing: {stream.last_error}" if stream.failing else ""
            problems.append(f"last successful {label} was {human_span(age)} ago (limit "
                            f"{human_span(limit)}){why}")
    lag = r.lag_seconds
    # Without an inbox the pull cursor never moves: its age says nothing then.
    if lag is not None and lag > h.max_lag and r.inbox_note is None:
        problems.append(f"newest LAPOR! change seen is {human_span(lag)} old (limit {human_span(h.max_lag)})")
    if r.outbox["dead"] > h.max_dead:
        problems.append(f"{r.outbox['dead']} dead letter(s) in the outbox (limit {h.max_dead}); "
                        "see `lapor-bridge outbox`")
    oldest = _age(now, r.oldest_pending_at)
    if oldest is not None and oldest > h.max_outbox_age:
        problems.append(f"the oldest outbox row has waited {human_span(oldest)} (limit "
                        f"{human_span(h.max_outbox_age)})")
    if r.quarantine_alarm is not None:
        problems.append(r.quarantine_alarm.line())
    if h.max_quarantined is not None and r.quarantined > h.max_quarantined:
        problems.append(f"{r.quarantined} quarantined item(s) (limit {h.max_quarantined})")
    if r.pending_events > h.max_pending_events:
        problems.append(f"{r.pending_events} plugin events waiting (limit "
                        f"{h.max_pending_events})")
    return problems


# -- text --------------------------------------------------------------------------------


def render_text(report: HealthReport, tz: str) -> list[str]:
    zone = ZoneInfo(tz)
    now = report.checked_at

    def when(value: datetime | None) -> str:
        if value is None:
            return "never"
        return (f"{value.astimezone(zone).strftime('%Y-%m-%d %H:%M:%S')} "
                f"({human_span(_age(now, value) or 0)} ago)")

    def at(value: str | None) -> str:
        if value is None:
            return "paused"
        moment = datetime.fromisoformat(value)
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    lines = [f"health: {'OK' if report.healthy else 'UNHEALTHY'}"]
    lines += [f"  problem: {p}" for p in report.problems]
    leader = report.leader
    lines.append(f"leader: {leader.instance if leader else 'none'}")
    gone = 0
    for inst in report.instances:
        alive = report.alive.get(inst.instance, False)
        if not alive and not (leader and inst.instance == leader.instance):
            gone += 1  # stopped or died earlier; --json lists them
            continue
        state = "alive" if alive else "NOT alive"
        lines.append(f"  {inst.role:8} {inst.instance} (pid {inst.pid} on {inst.host}), "
                     f"heartbeat {when(inst.heartbeat_at)}, {state}")
    if gone:
        lines.append(f"  ({gone} stopped or dead daemon(s) of the last 7 days not shown; "
                     "see --json)")
    for label, stream in (("pull", report.pull), ("push", report.push)):
        lines.append(f"last successful {label}: {when(stream.last_success_at)}")
        if stream.failing:
            lines.append(f"  failing since {when(stream.last_error_at)}: {stream.last_error}")
    lag = report.lag_seconds
    lines.append(f"newest LAPOR! change seen: {when(report.cursor_at)}"
                 + ("" if lag is None else f" (lag {human_span(lag)})"))
    o = report.outbox
    lines.append(f"outbox: {o['pending']} pending, {o['waiting']} waiting, {o['dead']} dead")
    lines.append(f"quarantined items: {report.quarantined}")
    if report.inbox_note:
        lines.append(report.inbox_note)
    if report.tracked:
        lines.append(f"tracked cases: {report.tracked.get('open', 0)} open, "
                     f"{report.tracked.get('closed', 0)} closed")
    lines.append(f"plugin events waiting: {report.pending_events}")
    if len(report.bodies) > 1:
        lines.append("bodies:")
        for code, body in report.bodies.items():
            b_lag = body.lag_seconds
            b_out = body.outbox
            lines.append(f"  {code:12} {'OK' if not body.problems else 'UNHEALTHY'}, lag "
                         f"{'-' if b_lag is None else human_span(b_lag)}, outbox "
                         f"{b_out['pending']} pending, {b_out['waiting']} waiting, "
                         f"{b_out['dead']} dead, {body.quarantined} quarantined")
    if leader and leader.next_runs:
        lines.append("next runs:")
        for job, moment in sorted(leader.next_runs.items()):
            lines.append(f"  {job:24} {at(moment)}")
    return lines


# -- metrics -----------------------------------------------------------------------------


class Metrics:
    """Prometheus metrics of one daemon (its own registry, so tests can run several)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.pulled = Counter("lapor_bridge_pulled", "LAPOR! reports pulled, by result",
                              ["result"], registry=r)
        self.pushed = Counter("lapor_bridge_pushed", "Outbox rows pushed, by result",
                              ["result"], registry=r)
        self.quarantined = Counter("lapor_bridge_quarantined",
                                   "Remote items quarantined by the pull", registry=r)
        self.dead = Counter("lapor_bridge_dead_letters",
                            "Outbox rows that became dead letters", registry=r)
        self.job_runs = Counter("lapor_bridge_job_runs", "Job runs, by job and outcome",
                                ["job", "outcome"], registry=r)
        self.job_seconds = Gauge("lapor_bridge_job_last_duration_seconds",
                                 "Duration of the job's latest run", ["job"], registry=r)
        self.job_success = Gauge("lapor_bridge_job_last_success_timestamp_seconds",
                                 "Unix time of the job's latest successful run", ["job"],
                                 registry=r)
        self.leader = Gauge("lapor_bridge_leader", "1 while this daemon holds the sync lease",
                            registry=r)
        self.healthy = Gauge("lapor_bridge_healthy", "1 when no health threshold is crossed",
                             registry=r)
        self.outbox = Gauge("lapor_bridge_outbox_rows", "Outbox rows by state", ["state"],
                            registry=r)
        self.lag = Gauge("lapor_bridge_lag_seconds",
                         "Age of the newest LAPOR! change seen (pull cursor)", registry=r)
        self.quarantine_open = Gauge("lapor_bridge_quarantined_items",
                                     "Unresolved quarantined items", registry=r)
        self.quarantine_alarm = Gauge(
            "lapor_bridge_quarantine_alarm",
            "Items of a pull that quarantined a whole page or too large a share, waiting",
            registry=r)
        self.pending_events = Gauge("lapor_bridge_pending_events",
                                    "Plugin events waiting for dispatch", registry=r)
        self.last_success = Gauge("lapor_bridge_last_success_timestamp_seconds",
                                  "Unix time of the last successful run, by stream",
                                  ["stream"], registry=r)
        labels = ["body"]
        self.body_healthy = Gauge("lapor_bridge_body_healthy",
                                  "1 when no health threshold of the body's store is crossed",
                                  labels, registry=r)
        self.body_lag = Gauge("lapor_bridge_body_lag_seconds",
                              "Age of the newest LAPOR! change the body has seen", labels,
                              registry=r)
        self.body_outbox = Gauge("lapor_bridge_body_outbox_rows",
                                 "The body's outbox rows by state", [*labels, "state"],
                                 registry=r)
        self.body_dead = Gauge("lapor_bridge_body_dead_letters",
                               "The body's outbox rows that are dead letters", labels,
                               registry=r)
        self.body_quarantined = Gauge("lapor_bridge_body_quarantined_items",
                                      "The body's unresolved quarantined items", labels,
                                      registry=r)
        self.leader.set(0)

    def job_result(self, job: str, kind: str, counts: dict[str, Any], seconds: float) -> None:
        self.job_runs.labels(job, "ok").inc()
        self.job_seconds.labels(job).set(seconds)
        self.job_success.labels(job).set(time.time())
        if kind in ("pull", "reconcile"):
            for key in ("created", "updated", "unchanged", "stale"):
                self.pulled.labels(key).inc(int(counts.get(key, 0)))
            self.quarantined.inc(int(counts.get("quarantined", 0)))
        elif kind == "push":
            for key in ("delivered", "retried", "dead"):
                self.pushed.labels(key).inc(int(counts.get(key, 0)))
            self.dead.inc(int(counts.get("dead", 0)))

    def job_outcome(self, job: str, outcome: str, seconds: float | None = None) -> None:
        self.job_runs.labels(job, outcome).inc()
        if seconds is not None:
            self.job_seconds.labels(job).set(seconds)

    def observe(self, report: HealthReport) -> None:
        self.healthy.set(1 if report.healthy else 0)
        for state, n in report.outbox.items():
            self.outbox.labels(state).set(n)
        lag = report.lag_seconds
        if lag is not None:
            self.lag.set(lag)
        self.quarantine_open.set(report.quarantined)
        alarm = report.quarantine_alarm
        self.quarantine_alarm.set(alarm.items if alarm is not None else 0)
        self.pending_events.set(report.pending_events)
        for stream, st in (("inbox", report.pull), ("push", report.push)):
            if st.last_success_at is not None:
                self.last_success.labels(stream).set(st.last_success_at.timestamp())
        for code, body in report.bodies.items():
            self.body_healthy.labels(code).set(0 if body.problems else 1)
            body_lag = body.lag_seconds
            if body_lag is not None:
                self.body_lag.labels(code).set(body_lag)
            for state, n in body.outbox.items():
                self.body_outbox.labels(code, state).set(n)
            self.body_dead.labels(code).set(body.outbox.get("dead", 0))
            self.body_quarantined.labels(code).set(body.quarantined)

    def render(self) -> bytes:
        return generate_latest(self.registry)


# -- HTTP --------------------------------------------------------------------------------


class HealthServer:
    """``GET /healthz`` (200 or 503, JSON) and ``GET /metrics`` on a loopback port."""

    def __init__(self, host: str, port: int, report: Callable[[], HealthReport],
                 metrics: Metrics, extra: Callable[[], dict[str, Any]] | None = None,
                 token: str | None = None) -> None:
        self._report = report
        self._token = token
        self.metrics = metrics
        self._extra = extra or (lambda: {})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    outer._healthz(self)
                elif path == "/metrics":
                    outer._metrics(self)
                else:
                    self._send(404, "text/plain; charset=utf-8", b"not found\n")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("http: " + format, *args)

        self.Handler = Handler
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port: int = int(self.server.server_address[1])
        self._thread: threading.Thread | None = None

    def _authorized(self, h: Any) -> bool:
        if not self._token:
            return False
        given = str(h.headers.get("Authorization") or "")
        return hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode())

    def _healthz(self, h: Any) -> None:
        # Problems and last errors may name hosts, accounts and LAPOR!'s answers: only the
        # status is public; the details need the token.
        details = self._authorized(h)
        try:
            report = self._report()
        except Exception as exc:  # the database is down: that is the answer
            body: dict[str, Any] = {"healthy": False, "status": "unhealthy"}
            if details:
                body["problems"] = [f"cannot read the database: {type(exc).__name__}"]
            h._send(503, "application/json", json.dumps(body).encode())
            return
        self.metrics.observe(report)
        body = {"healthy": report.healthy, "status": "ok" if report.healthy else "unhealthy"}
        if details:
            body.update(report.as_json(), **self._extra())
        h._send(200 if report.healthy else 503, "application/json",
                json.dumps(body, default=str).encode())

    def _metrics(self, h: Any) -> None:
        try:
            self.metrics.observe(self._report())
        except Exception as exc:  # still serve the counters we have
            log.warning("metrics: cannot read the database: %s", type(exc).__name__)
            self.metrics.healthy.set(0)
        h._send(200, CONTENT_TYPE_LATEST, self.metrics.render())

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self.server.serve_forever, name="health-http",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout=5)
        self.server.server_close()


ENV_HEALTH_TOKEN = "LAPOR_BRIDGE_HEALTH_TOKEN"


def health_token(token_file: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """The token that shows /healthz's details: $LAPOR_BRIDGE_HEALTH_TOKEN, else the
    first line of ``daemon.health_token_file`` (which others may not read), else None."""
    env = os.environ if env is None else env
    value = env.get(ENV_HEALTH_TOKEN, "").strip()
    if value or not token_file:
        return value or None
    path = Path(token_file).expanduser()
    try:
        problem = open_to_others(path)
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
    if problem:
        raise ValueError(problem)
    if len(value) < 16:
        raise ValueError(f"{path}: token too short: use at least 16 characters")
    return value


def summary_line(report: HealthReport) -> str:
    o = report.outbox
    return (f"health: {'OK' if report.healthy else 'UNHEALTHY'}; outbox {o['pending']} pending,"
            f" {o['waiting']} waiting, {o['dead']} dead; {report.quarantined} quarantined"
            + ("" if report.healthy else "; problems: " + "; ".join(report.problems)))


__all__ = [
    "ENV_HEALTH_TOKEN",
    "HealthReport",
    "HealthServer",
    "Metrics",
    "StreamState",
    "collect",
    "health_token",
    "judge",
    "render_text",
    "summary_line",
]
