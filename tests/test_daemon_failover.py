"""Two real daemons on one database: one syncs, the other takes over when it dies."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bridge.lapor.sandbox import SandboxServer
from tests.support.daemon import (
    FAST_DAEMON,
    Store,
    assert_store_matches_sandbox,
    holder_pid,
    kill_all,
    start_daemon,
    stop,
    wait_for,
    write_config,
)
from tests.support.settings import TEST_BEARER, TEST_TOKEN

#: Takeover happens within lease_ttl + standby_poll_interval; the rest is slack for a busy
#: CI machine (process start, scheduling), not part of the bound being tested.
BOUND = FAST_DAEMON["lease_ttl"] + FAST_DAEMON["standby_poll_interval"]
SLACK = 8.0


@pytest.mark.slow
@pytest.mark.postgres
def test_standby_takes_over_after_kill_9_and_after_sigterm(tmp_path: Path,
                                                           pg_url: str) -> None:
    # Several daemons need PostgreSQL: SQLite refuses a second worker (test_share.py).
    db_url = pg_url
    with SandboxServer(seed=13, reports=80, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization") as sandbox:
        config = write_config(tmp_path / "c.toml", sandbox.url, db_url)
        store = Store(db_url)
        logs = [tmp_path / f"daemon-{n}.log" for n in range(3)]
        procs = []
        try:
            a = start_daemon(config, logs[0])
            procs.append(a)
            wait_for("A to lead", lambda: holder_pid(store.lease_holder()) == a.pid,
                     procs=[a], log=logs[0])
            b = start_daemon(config, logs[1])
            procs.append(b)
            wait_for("B to stand by", lambda: store.roles().get(b.pid) == "standby",
                     procs=[b], log=logs[1])
            wait_for("A's first pull", lambda: store.case_count() == 80, procs=[a],
                     log=logs[0])
            time.sleep(1.0)
            assert "job pull ok" not in logs[1].read_text(), "a standby ran a sync job"

            # A dies without a word.
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
            died = time.monotonic()
            sandbox.state.add_report(title="Masuk setelah A mati")
            wait_for("B to lead", lambda: holder_pid(store.lease_holder()) == b.pid,
                     timeout=BOUND + SLACK, interval=0.05, procs=[b], log=logs[1])
            took = time.monotonic() - died
            wait_for("B to pull the new report", lambda: store.case_count() == 81,
                     procs=[b], log=logs[1])
            assert "leader: this daemon holds the sync lease" in logs[1].read_text()

            # A clean stop hands over at once (the lease is released, not left to expire).
            c = start_daemon(config, logs[2])
            procs.append(c)
            wait_for("C to stand by", lambda: store.roles().get(c.pid) == "standby",
                     procs=[c], log=logs[2])
            assert stop(b, signal.SIGTERM) == 0
            wait_for("C to lead", lambda: holder_pid(store.lease_holder()) == c.pid,
                     timeout=BOUND + SLACK, procs=[c], log=logs[2])
            sandbox.state.add_report(title="Masuk setelah B berhenti")
            wait_for("C to pull", lambda: store.case_count() == 82, procs=[c], log=logs[2])
            assert stop(c) == 0
            assert_store_matches_sandbox(db_url, sandbox)
            print(f"\ntakeover after kill -9 in {took:.1f} s (bound {BOUND:g} s)")
        finally:
            kill_all(procs)
            store.close()
