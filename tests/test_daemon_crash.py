"""kill -9 of a real daemon at random moments loses nothing and duplicates nothing."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from bridge.lapor.sandbox import SandboxServer
from tests.support.daemon import (
    Store,
    add_followups,
    assert_store_matches_sandbox,
    followup_markers,
    kill_all,
    start_daemon,
    stop,
    wait_for,
    write_config,
)
from tests.support.settings import TEST_BEARER, TEST_TOKEN

REPORTS = 2000


@pytest.mark.slow
def test_kill_9_mid_sync_five_times_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    with SandboxServer(seed=11, reports=REPORTS, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization",
                       faults={"latency_ms": 15, "jitter_ms": 10}) as sandbox:
        # No look-back: a cursor that ran ahead of what was committed would show as
        # missing reports instead of being papered over by the re-read.
        # The deadline sweep of thousands of cases would only slow the sync down here
        # (it has its own tests).
        config = write_config(tmp_path / "lapor-bridge.toml", sandbox.url, db_url,
                              lapor={"page_size": 25, "lookback_seconds": 0},
                              daemon={"deadline_interval": 3600.0})
        store = Store(db_url)
        procs = []
        try:
            kills = 0
            at_kill: list[int] = []
            while kills < 5:
                proc = start_daemon(config, log)
                procs.append(proc)
                before = store.case_count()
                # Wait for the daemon to be busy (cases arriving), then kill it at a random
                # moment of the sync.
                wait_for("the daemon to write cases",
                         lambda b=before: store.case_count() > b,
                         timeout=40, procs=[proc], log=log)
                if kills == 0:
                    # Follow-ups to push while the pull goes on: kills land in pushes too.
                    queued = add_followups(db_url, 150)
                time.sleep(rng.uniform(0.05, 0.6))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                kills += 1
                at_kill.append(store.case_count())
                # LAPOR! keeps changing while the bridge is down.
                sandbox.state.random_changes(15)
                sandbox.state.add_report(title=f"Laporan baru setelah kill {kills}")
            assert store.case_count() < REPORTS + 5, "the kills came too late to test anything"
            # A last daemon catches up; then the store must equal the sandbox.
            proc = start_daemon(config, log)
            procs.append(proc)
            expected = len(sandbox.state.reports(listed_only=True))
            wait_for("the final daemon to catch up", lambda: store.case_count() >= expected,
                     timeout=60, procs=[proc], log=log)
            # One more full pull after the catch-up, so that the last changes are in.
            store.wait_for_one_more_pull(proc, log)
            assert stop(proc) == 0
            n = assert_store_matches_sandbox(db_url, sandbox)
            assert n == expected
            # Every queued follow-up reached LAPOR!, once (a kill that lands exactly in
            # a POST is forced by the next test).
            posted = followup_markers(sandbox, sorted(set(queued.values())))
            assert {f"[lb:{i}]" for i in queued} == set(posted), "follow-ups lost"
            twice = {tag: n for tag, n in posted.items() if n > 1}
            assert not twice, f"follow-ups posted more than once: {twice}"
            print(f"\n{kills} kills (cases stored at each: {at_kill}); {n} cases match the "
                  "sandbox")
        finally:
            kill_all(procs)
            store.close()


@pytest.mark.slow
def test_kill_9_during_a_post_does_not_post_twice(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    log = tmp_path / "daemon.log"
    with SandboxServer(seed=5, reports=30, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization") as sandbox:
        config = write_config(tmp_path / "lapor-bridge.toml", sandbox.url, db_url,
                              outbox={"concurrency": 1})
        store = Store(db_url)
        procs = []
        try:
            proc = start_daemon(config, log)
            procs.append(proc)
            wait_for("the first pull", lambda: store.case_count() >= 30, procs=[proc], log=log)
            assert stop(proc) == 0
            rows: dict[int, int] = {}
            for attempt in range(10):
                queued = add_followups(db_url, 1, text=f"Tindak lanjut {attempt}")
                rows.update(queued)
                (row_id, lapor_id), = queued.items()
                tag = f"[lb:{row_id}]"
                # LAPOR! applies the follow-up, then (half of the time) answers only 20 s
                # later, else at once with a 500 (the row's attempt is then recorded as an
                # unknown outcome and read back, as it should: try again with another row).
                sandbox.state.set_faults({"apply_then_fail_rate": 1.0,
                                          "slow_after_apply_s": 20, "seed": attempt})
                proc = start_daemon(config, log)
                procs.append(proc)
                wait_for("the follow-up to reach the sandbox",
                         lambda lid=lapor_id, t=tag: followup_markers(sandbox, [lid])[t],
                         procs=[proc], log=log)
                time.sleep(0.5)
                if store.scalar(f"SELECT attempts FROM outbox WHERE id = {row_id}"):
                    assert stop(proc) == 0
                    continue
                # Applied on LAPOR!, not yet committed here: the worst moment to die.
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                break
            else:
                raise AssertionError("the sandbox never held an answer back")
            sandbox.state.set_faults(None)
            proc = start_daemon(config, log)
            procs.append(proc)
            wait_for("every row to be done", lambda: store.scalar(
                "SELECT count(*) FROM outbox WHERE status = 'done'") == len(rows),
                procs=[proc], log=log)
            assert stop(proc) == 0
            posted = followup_markers(sandbox, sorted(set(rows.values())))
            assert posted == Counter({f"[lb:{i}]": 1 for i in rows}), posted
        finally:
            kill_all(procs)
            store.close()
