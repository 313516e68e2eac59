"""`lapor-bridge run` and `lapor-bridge status` as real processes."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.daemon.status import read_statuses
from bridge.lapor.sandbox import SandboxServer
from tests.support.cli import ENV, run_cli
from tests.support.daemon import (
    Store,
    add_followups,
    assert_store_matches_sandbox,
    cli,
    followup_markers,
    kill_all,
    start_daemon,
    stop,
    wait_for,
    write_config,
)
from tests.support.ports import refused_port
from tests.support.settings import TEST_BEARER, TEST_TOKEN


def status(config: Path) -> tuple[int, dict[str, object]]:
    # In-process (polled many times while the daemon runs); the test below still runs
    # `status` once as a real process.
    proc = run_cli("status", "--json", "--config", str(config), env=ENV)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.slow
def test_sigterm_mid_sync_finishes_the_page_and_exits_0(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    with SandboxServer(seed=21, reports=1500, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization", faults={"latency_ms": 40}) as sandbox:
        config = write_config(tmp_path / "c.toml", sandbox.url, db_url,
                              lapor={"page_size": 20, "lookback_seconds": 0},
                              daemon={"deadline_interval": 3600.0})
        store = Store(db_url)
        procs = []
        try:
            proc = start_daemon(config, log)
            procs.append(proc)
            wait_for("the pull to be under way", lambda: store.case_count() >= 100,
                     procs=[proc], log=log)
            # An operator's look inside: every thread's stack, and the daemon goes on.
            proc.send_signal(signal.SIGUSR1)
            wait_for("the threads' stacks", lambda: "most recent call first" in
                     log.read_text(errors="replace"), procs=[proc], log=log)
            assert proc.poll() is None
            assert stop(proc) == 0
            stopped_at = store.case_count()
            text = log.read_text()
            assert "stopping (SIGTERM)" in text and "stopped cleanly" in text
            assert "sync lease released" in text
            assert stopped_at < 1500, "the pull had finished before the signal"
            assert store.scalar("SELECT count(*) FROM leases") == 0
            # What was committed is whole: a restart goes on from the cursor, no gaps.
            proc = start_daemon(config, log)
            procs.append(proc)
            wait_for("the rest", lambda: store.case_count() == 1500, timeout=50,
                     procs=[proc], log=log)
            assert stop(proc) == 0
            assert_store_matches_sandbox(db_url, sandbox)
            print(f"\nSIGTERM after {stopped_at} of 1500 reports; the rest after restart")
        finally:
            kill_all(procs)
            store.close()


def test_no_secret_in_the_logs(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    with SandboxServer(seed=3, reports=30, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization") as sandbox:
        config = write_config(tmp_path / "c.toml", sandbox.url, db_url,
                              logging={"format": "json", "level": "DEBUG"})
        store = Store(db_url)
        procs = []
        try:
            proc = start_daemon(config, log)
            procs.append(proc)
            wait_for("the pull", lambda: store.case_count() == 30, procs=[proc], log=log)
            queued = add_followups(db_url, 3)
            wait_for("the push", lambda: store.scalar(
                "SELECT count(*) FROM outbox WHERE status = 'done'") == 3, procs=[proc],
                log=log)
            # Faults make the client log retries and LAPOR!'s error bodies too.
            sandbox.state.set_faults({"error_rate": 1.0})
            wait_for("a failed pull", lambda: "job pull failed" in log.read_text(),
                     procs=[proc], log=log)
            sandbox.state.set_faults(None)
            assert stop(proc) == 0
        finally:
            kill_all(procs)
            store.close()
        assert len(followup_markers(sandbox, sorted(set(queued.values())))) == 3
    text = log.read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) > 20
    for line in lines:
        json.loads(line)  # every line is one JSON object
    inner = TEST_TOKEN.strip("{}")
    for secret in (TEST_BEARER, TEST_TOKEN, inner, inner.lower()):
        assert secret not in text
    assert '"event": "job_run"' in text and '"duration_s"' in text


@pytest.fixture
def refused() -> Iterator[int]:
    with refused_port() as port:
        yield port


def test_unreachable_database_retries_then_exits_1(tmp_path: Path, refused: int) -> None:
    port = refused
    config = write_config(tmp_path / "c.toml", "http://127.0.0.1:9",
                          f"postgresql+psycopg://bridge@127.0.0.1:{port}/bridge",
                          daemon={"start_timeout": 2.0, "start_retry_max_delay": 0.4})
    log = tmp_path / "daemon.log"
    started = time.monotonic()
    proc = start_daemon(config, log)
    try:
        code = proc.wait(timeout=40)
    finally:
        kill_all([proc])
    text = log.read_text()
    assert code == 1, text
    retries = text.count("cannot be reached")
    assert retries >= 2, text
    assert f"127.0.0.1:{port}/bridge" in text
    assert "giving up: the database" in text
    assert "Traceback" not in text
    print(f"\n{retries} retries, gave up after {time.monotonic() - started:.1f} s")


@pytest.mark.slow
def test_lapor_down_for_a_while_status_says_so_then_catches_up(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    first = SandboxServer(seed=9, reports=50, bearer=TEST_BEARER, token=TEST_TOKEN).start()
    servers = [first]
    config = write_config(tmp_path / "c.toml", first.url, db_url,
                          daemon={"health": {"max_pull_age": 2.0, "max_lag": 1e9}})
    store = Store(db_url)
    procs = []
    try:
        proc = start_daemon(config, log)
        procs.append(proc)
        wait_for("the first pull", lambda: store.case_count() == 50, procs=[proc], log=log)
        code, body = wait_for("a healthy status", lambda: (lambda r: r if r[0] == 0 else None)(
            status(config)), procs=[proc], log=log)
        assert body["leader"] and body["pull"]["failing"] is False  # type: ignore[index]

        first.stop()
        code, body = wait_for("an unhealthy status", lambda: (
            lambda r: r if r[0] == 1 else None)(status(config)), procs=[proc], log=log)
        problems = body["problems"]
        assert any("pull" in str(p) for p in problems), problems  # type: ignore[union-attr]
        assert body["pull"]["failing"] is True  # type: ignore[index]
        text = cli("status", "--config", str(config)).stdout
        assert "UNHEALTHY" in text and "failing since" in text
        assert proc.poll() is None, "the daemon keeps running while LAPOR! is down"
        # It goes on trying: more failed pulls, however slowly this machine runs them.
        wait_for("three failed pulls", lambda: log.read_text().count("job pull failed") >= 3,
                 procs=[proc], log=log)

        first.state.add_report(title="Laporan saat LAPOR! tidak bisa dihubungi")
        servers.append(SandboxServer(port=first.port, state=first.state, bearer=TEST_BEARER,
                                     token=TEST_TOKEN).start())
        wait_for("the catch-up", lambda: store.case_count() == 51, procs=[proc], log=log)
        wait_for("a healthy status again", lambda: status(config)[0] == 0, procs=[proc],
                 log=log)
        assert "job pull recovered after" in log.read_text()
        assert stop(proc) == 0
        code, body = status(config)
        assert code == 1 and body["leader"] is None  # nobody syncs after the stop
    finally:
        kill_all(procs)
        store.close()
        for server in servers:
            server.stop()


def test_a_paused_daemon_reports_missed_runs_and_goes_on(tmp_path: Path) -> None:
    """SIGSTOP over a run time (a frozen VM, a suspended laptop): the run is reported as
    missed through APScheduler's event, and the daemon carries on."""
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    with SandboxServer(seed=5, reports=20, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        config = write_config(tmp_path / "c.toml", sandbox.url, db_url, daemon={
            "deadline_interval": 4.0, "misfire_grace_time": 1.0, "lease_ttl": 10.0,
            "lease_renew_interval": 0.5})
        store = Store(db_url)
        proc = start_daemon(config, log)
        try:
            wait_for("the first pull", lambda: store.case_count() == 20, procs=[proc],
                     log=log)

            def upcoming() -> float | None:
                for row in read_statuses(store.engine):
                    moment = row.next_runs.get("deadlines") if row.pid == proc.pid else None
                    if moment:
                        left = (datetime.fromisoformat(moment)
                                - datetime.now(UTC)).total_seconds()
                        if left > 1.0:
                            return left
                return None

            left = wait_for("a known next run of the sweep", upcoming, procs=[proc], log=log)
            time.sleep(left - 0.3)
            os.kill(proc.pid, signal.SIGSTOP)
            time.sleep(2.8)  # past the run time by more than misfire_grace_time
            os.kill(proc.pid, signal.SIGCONT)
            wait_for("the missed run reported",
                     lambda: "job deadlines missed its run" in log.read_text(),
                     timeout=15, procs=[proc], log=log)
            sandbox.state.add_report(title="Sesudah jeda")
            wait_for("the daemon to go on", lambda: store.case_count() == 21, procs=[proc],
                     log=log)
            assert stop(proc) == 0
        finally:
            kill_all([proc])
            store.close()
