"""The daemon in-process against the real sandbox: jobs, leadership, deadlines, health."""

from __future__ import annotations

import itertools
import json
import logging
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text, update

from bridge.daemon import jobs
from bridge.daemon.health import collect
from bridge.daemon.lease import LeaseManager, read_lease
from bridge.daemon.scheduler import Daemon
from bridge.daemon.status import LEADER, STANDBY, STOPPED, read_statuses
from bridge.lapor.sandbox import SandboxServer
from bridge.store.models import Case, Lease, RemoteInstitution, RemoteTemplate, SyncCursor
from tests.support.daemon import (
    FAST_DAEMON,
    add_followups,
    assert_store_matches_sandbox,
    wait_for,
)
from tests.support.settings import TEST_BEARER, TEST_TOKEN

sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
_module_no = itertools.count()

PLUGIN = '''
from bridge.domain import JobSpec
from bridge.hookspecs import hookimpl

TICKS = []
NEAR = []
MISSED = []


@hookimpl
def scheduler_jobs(config):
    return [JobSpec(id="tick", trigger="interval", func=lambda: TICKS.append(1),
                    trigger_args={"seconds": 0.2})]


@hookimpl
def deadline_near(case, deadline_at, working_days_left, event_id, config):
    NEAR.append((case.id, deadline_at, working_days_left))


@hookimpl
def deadline_missed(case, deadline_at, event_id, config):
    MISSED.append((case.id, deadline_at))
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh plugin module (own counters) importable by name."""
    name = f"daemon_test_plugin_{next(_module_no)}"
    (tmp_path / f"{name}.py").write_text(PLUGIN, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))

    class Handle:
        module_name = name

        @property
        def module(self) -> Any:
            return sys.modules[name]

    return Handle()


pytestmark = pytest.mark.sandbox(seed=4, reports=60, bearer_header="Authorization")


def daemon_sections(**daemon: Any) -> dict[str, Any]:
    # Lag and ages are checked by their own tests; the seeded reports are weeks old.
    health = {"max_lag": 1e9, **daemon.pop("health", {})}
    return {"daemon": {**FAST_DAEMON, **daemon, "health": health}}


@contextmanager
def running(daemon: Daemon) -> Iterator[Daemon]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(daemon.run()), name="test-daemon")
    thread.start()
    try:
        yield daemon
    finally:
        daemon.request_stop("test over")
        thread.join(30)
        assert not thread.is_alive(), "the daemon did not stop"
    assert codes == [0]


def cases(rt: Any) -> int:
    with rt.sessions() as s:
        return len(list(s.scalars(select(Case.id))))


def wait_leader(daemon: Daemon, timeout: float = 20) -> None:
    wait_for("leadership", daemon.became_leader.is_set, timeout=timeout)


# -- the whole daemon --------------------------------------------------------------------


def test_syncs_reports_health_and_stops_cleanly(runtime_factory: Any, db_url: str,
                                                sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, **daemon_sections())
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    with running(daemon):
        wait_leader(daemon)
        wait_for("the first pull", lambda: cases(rt) == 60)
        # The cases are committed before the pull run is recorded (triage runs in between):
        # on a busy machine the health check can come between the two.
        wait_for("the pull run recorded", lambda: collect(rt.engine, rt.sessions,
                                                          daemon.cfg).pull.last_success_at)
        wait_for("a push run", lambda: collect(rt.engine, rt.sessions,
                                               daemon.cfg).push.last_success_at)
        wait_for("a heartbeat with next runs", lambda: any(
            s.role == LEADER and s.next_runs.get("pull") for s in read_statuses(rt.engine)))
        report = collect(rt.engine, rt.sessions, daemon.cfg)
        assert report.healthy, report.problems
        assert report.leader is not None and report.leader.instance == daemon.holder
        assert set(report.leader.next_runs) >= {"pull", "push", "events", "deadlines",
                                                "refresh", "reconcile", "health"}
        body = report.as_json()
        assert body["outbox"]["dead"] == 0 and body["pull"]["failing"] is False
        # The pull job records its counts once it finished (triage runs after the commit).
        wait_for("the pull job's metrics", lambda: 'lapor_bridge_pulled_total{result="created"} '
                 '60.0' in daemon.metrics.render().decode())
        assert "lapor_bridge_leader 1.0" in daemon.metrics.render().decode()
    assert_store_matches_sandbox(db_url, sandbox)
    assert read_lease(rt.engine) is None, "a clean stop releases the lease"
    (row,) = read_statuses(rt.engine)
    assert row.role == STOPPED
    with rt.sessions() as s:
        assert len(list(s.scalars(select(RemoteInstitution)))) > 0
        assert len(list(s.scalars(select(RemoteTemplate)))) > 0


@sqlite_only
def test_standby_runs_nothing_until_the_lease_is_free(runtime_factory: Any,
                                                      sandbox: SandboxServer,
                                                      plugin: Any) -> None:
    rt = runtime_factory(sandbox.url, plugins={"modules": [plugin.module_name],
                                               "entry_points": False}, **daemon_sections())
    other = LeaseManager(rt.engine, 30, holder="other-host:1:abc")
    assert other.acquire()
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    with running(daemon):
        wait_for("standby", lambda: daemon.role == STANDBY)
        time.sleep(1.0)  # several pull and plugin intervals
        assert cases(rt) == 0
        assert plugin.module.TICKS == []
        assert all(moment is None for moment in daemon.next_runs().values())
        other.release()
        wait_leader(daemon, timeout=10)
        wait_for("the pull", lambda: cases(rt) == 60)
        wait_for("the plugin's job", lambda: len(plugin.module.TICKS) >= 2)


@sqlite_only
def test_a_lost_lease_stops_the_sync_jobs(runtime_factory: Any, sandbox: SandboxServer,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.daemon")
    rt = runtime_factory(sandbox.url, **daemon_sections())
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    with running(daemon):
        wait_leader(daemon)
        wait_for("the pull", lambda: cases(rt) == 60)
        # Another daemon took the lease over (as after a long pause of this one), and
        # renews it: with the old expiry it lapsed a moment later, and on a loaded machine
        # this daemon, demoted late, took it straight back and pulled the report below.
        with rt.sessions() as s, s.begin():
            s.execute(update(Lease).values(holder="thief:2:x",
                                           expires_at=datetime.now(UTC) + timedelta(hours=1)))
        wait_for("demotion", lambda: daemon.role == STANDBY)
        # Usually the renewal finds the thief; on a loaded machine the watchdog may see the
        # renewal late first. Either way the daemon stands down.
        assert ("lost the sync lease (another daemon holds the lease)" in caplog.text
                or "lost the sync lease (the lease could not be renewed" in caplog.text)
        assert daemon.next_runs()["pull"] is None
        # A pull that started before the demotion finishes its page: wait for it, so
        # that the report below can only come in through a standby's pull.
        wait_for("the runs in hand", lambda: daemon.jobs_in_hand() == 0)
        sandbox.state.add_report(title="Datang saat standby")
        time.sleep(1.0)
        assert cases(rt) == 60, "a standby must not pull"
        with rt.engine.begin() as conn:
            conn.execute(text("DELETE FROM leases"))
        wait_for("leadership again", lambda: daemon.role == LEADER)
        wait_for("the new report", lambda: cases(rt) == 61)


@sqlite_only
def test_a_hung_lease_renewal_demotes_through_the_watchdog(
        runtime_factory: Any, sandbox: SandboxServer,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.daemon")
    rt = runtime_factory(sandbox.url, **daemon_sections())
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    hang = threading.Event()
    with running(daemon):
        wait_leader(daemon)
        assert daemon.lease is not None
        real = daemon.lease.acquire

        def stuck() -> bool:  # a database call that never answers
            hang.wait(60)
            return False

        daemon.lease.acquire = stuck  # type: ignore[method-assign]
        try:
            wait_for("demotion", lambda: daemon.role == STANDBY, timeout=10)
            assert "could not be renewed in time" in caplog.text
        finally:
            daemon.lease.acquire = real  # type: ignore[method-assign]
            hang.set()
        wait_for("leadership again", lambda: daemon.role == LEADER)


@sqlite_only
def test_a_job_past_its_deadline_stops_at_a_page_boundary(
        runtime_factory: Any, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.daemon")
    with SandboxServer(seed=8, reports=120, bearer=TEST_BEARER, token=TEST_TOKEN,
                       faults={"latency_ms": 150}) as slow:
        rt = runtime_factory(slow.url, lapor={"page_size": 10},
                             **daemon_sections(timeouts={"pull": 0.5}))
        daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
        with running(daemon):
            wait_for("a pull past its deadline",
                     lambda: "did not finish within its deadline of 0.5 s" in caplog.text)
            first = cases(rt)
            assert 0 < first < 120
            # Later runs go on from the committed cursor: everything arrives.
            wait_for("all reports", lambda: cases(rt) == 120, timeout=40)
        assert "job pull passed its deadline of 0.5 s; told to stop" in caplog.text
        assert_store_matches_sandbox(db_url, slow)


@sqlite_only
def test_lapor_down_is_reported_while_it_lasts_then_caught_up(
        runtime_factory: Any, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="bridge.daemon")
    monkeypatch.setenv("LAPOR_BRIDGE_HEALTH_TOKEN", "token-kesehatan-uji-123")
    first = SandboxServer(seed=2, reports=40, bearer=TEST_BEARER, token=TEST_TOKEN).start()
    servers = [first]
    rt = runtime_factory(first.url, **daemon_sections(
        http_port=0, health={"max_pull_age": 1.0}))
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    try:
        with running(daemon):
            wait_leader(daemon)
            wait_for("the pull", lambda: cases(rt) == 40)
            assert daemon.http is not None
            url = f"http://127.0.0.1:{daemon.http.port}"
            wait_for("healthy", lambda: _get(url + "/healthz")[0] == 200)
            first.stop()
            wait_for("three failed pulls in a row",
                     lambda: "(3 failed runs in a row since" in caplog.text)
            wait_for("an unhealthy health line", lambda: "health: UNHEALTHY" in caplog.text)
            code, body = _get(url + "/healthz")
            assert code == 503 and json.loads(body) == {"healthy": False,
                                                        "status": "unhealthy"}
            code, body = _get(url + "/healthz", token="token-kesehatan-uji-123")
            assert code == 503
            problems = json.loads(body)["problems"]
            assert any("last successful pull was" in p for p in problems), problems
            metrics = _get(url + "/metrics")[1].decode()
            assert 'lapor_bridge_job_runs_total{job="pull",outcome="error"}' in metrics
            # LAPOR! comes back on the same address, with news.
            first.state.add_report(title="Masuk saat LAPOR! mati")
            servers.append(SandboxServer(port=first.port, state=first.state,
                                         bearer=TEST_BEARER, token=TEST_TOKEN).start())
            wait_for("the catch-up", lambda: cases(rt) == 41)
            wait_for("healthy again", lambda: _get(url + "/healthz")[0] == 200)
            # The pull records its success (what health reads) before the job that ran it
            # ends and logs the recovery: under load the page can be healthy first.
            wait_for("the recovery logged", lambda: "job pull recovered after" in caplog.text)
    finally:
        for server in servers:
            server.stop()


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@sqlite_only
def test_recap_jobs_use_the_reports_hook_when_present(
        runtime_factory: Any, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.daemon")
    calls: list[tuple[Any, str]] = []

    def run_recap(rt: Any, period: str) -> dict[str, Any]:
        calls.append((rt, period))
        return {"cases": 3}

    rt = runtime_factory(sandbox.url, **daemon_sections(recaps={"monthly": "0 7 1 * *"}))
    monkeypatch.setattr(jobs, "recap_hook", lambda: None)
    absent = Daemon(rt.settings, runtime=rt, install_signals=False)
    absent._build()
    assert not any(j.startswith("recap:") for j in absent.runners)
    assert "recap jobs not scheduled" in caplog.text

    monkeypatch.setattr(jobs, "recap_hook", lambda: run_recap)
    daemon = Daemon(rt.settings, runtime=rt, install_signals=False)
    with running(daemon):
        wait_leader(daemon)
        wait_for("the recap job scheduled", lambda: daemon.next_runs().get("recap:monthly"))
        assert daemon.runners["recap:monthly"]() == {"period": "monthly", "cases": 3}
    assert calls == [(rt, "monthly")]


# -- job bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite", pytest.param(
    "postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_deadline_job_tells_plugins_of_each_deadline_once(runtime_factory: Any,
                                                          sandbox: SandboxServer,
                                                          plugin: Any) -> None:
    # Counted from the citizen's filing (the listing has no disposition log: counted from
    # receipt, every deadline would start today).
    rt = runtime_factory(sandbox.url, plugins={"modules": [plugin.module_name],
                                               "entry_points": False},
                         workflow={"deadlines": {"overall": {"counted_from": "filed"}}})
    ctx = jobs.JobContext(rt=rt, job="deadlines")
    jobs.pull(ctx)
    first = jobs.deadlines(ctx, near_hours=48)
    # The seeded reports arrived up to 60 days ago: many deadlines have passed.
    assert first["checked"] == 60 and first["missed"] > 0
    again = jobs.deadlines(ctx, near_hours=48)
    assert (again["missed"], again["near"]) == (0, 0)
    dispatched = jobs.events(ctx)
    assert dispatched["plugin_failures"] == 0
    assert len(plugin.module.MISSED) == first["missed"]
    assert len(plugin.module.NEAR) == first["near"]
    assert jobs.events(ctx)["dispatched"] == 0


@sqlite_only
def test_refresh_replaces_institutions_and_templates(runtime_factory: Any,
                                                     sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url)
    ctx = jobs.JobContext(rt=rt, job="refresh")
    assert jobs.refresh_age(rt) is None
    counts = jobs.refresh(ctx)
    remote = dict(sandbox.state.institutions)
    assert counts["institutions"] == len(remote) and counts["templates"] > 0
    gone = next(iter(remote))
    del sandbox.state.institutions[gone]
    sandbox.state.institutions[987654] = "Badan Baru"
    jobs.refresh(ctx)
    with rt.sessions() as s:
        local = {i.id: i.name for i in s.scalars(select(RemoteInstitution))}
    assert gone not in local and local[987654] == "Badan Baru"
    assert len(local) == len(remote)
    age = jobs.refresh_age(rt)
    assert age is not None and age < timedelta(minutes=5)


@sqlite_only
def test_push_records_its_runs(runtime_factory: Any, db_url: str,
                               sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url)
    ctx = jobs.JobContext(rt=rt, job="push")
    jobs.pull(ctx)
    add_followups(db_url, 2)
    counts = jobs.push(ctx)
    assert counts["delivered"] == 2
    with rt.sessions() as s:
        row = s.get(SyncCursor, jobs.PUSH_STREAM)
        assert row is not None and row.last_success_at is not None and row.last_error is None
    # LAPOR! refuses our credentials: the run is aborted and recorded as failed.
    with SandboxServer(seed=4, reports=60, bearer=TEST_BEARER, token="{other}") as wrong:
        rt2 = runtime_factory(wrong.url)
        add_followups(db_url, 1, text="Lagi")
        with pytest.raises(jobs.PushAborted, match="credentials"):
            jobs.push(jobs.JobContext(rt=rt2, job="push"))
    with rt.sessions() as s:
        row = s.get(SyncCursor, jobs.PUSH_STREAM)
        assert row is not None and row.last_error and "credentials" in row.last_error
    report = collect(rt.engine, rt.sessions, Daemon(rt.settings, runtime=rt).cfg)
    assert report.push.failing
