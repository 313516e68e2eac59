"""Several workers on one database: the assignment, the leases, failover and hand-back."""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from bridge.daemon.lease import LeaseManager
from bridge.daemon.share import (
    Membership,
    SecondWorker,
    Share,
    assign,
    body_lease,
    lease_names,
    owners,
    read_workers,
    sqlite_worker_at,
)
from bridge.lapor.budget import RequestBudget
from bridge.store.db import make_engine
from tests.support.clock import FakeLeaseClock
from tests.support.daemon import ROOT, daemon_env, kill_all, wait_for
from tests.support.share_worker import SHARE_DAEMON, body_codes, cycles, meta


@pytest.fixture
def pg_engine(pg_url: str) -> Any:
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


# -- assign: pure ------------------------------------------------------------------------


def _owner_of(split: dict[str, list[str]]) -> dict[str, str]:
    return {body: worker for worker, bodies in split.items() for body in bodies}


def test_assign_spreads_every_body_once_and_evenly() -> None:
    rng = random.Random(7)
    for _ in range(300):
        bodies = [f"b{i}" for i in range(rng.randint(0, 70))]
        workers = [f"host{rng.random():.8f}:{i}" for i in range(rng.randint(1, 9))]
        split = assign(bodies, workers)
        assert set(split) == set(workers)
        given = [b for bs in split.values() for b in bs]
        assert sorted(given) == sorted(bodies)  # each body once
        sizes = [len(bs) for bs in split.values()]
        assert max(sizes) - min(sizes) <= 1, (len(bodies), sizes)
        # Every worker computes it alone: the order it reads the rows in must not matter.
        assert assign(reversed(bodies), reversed(workers)) == split


def test_assign_without_workers_gives_nothing() -> None:
    assert assign(["a", "b"], []) == {}


def _moved(before: dict[str, list[str]], after: dict[str, list[str]]) -> int:
    a, b = _owner_of(before), _owner_of(after)
    return sum(a[body] != b[body] for body in a)


def test_a_worker_joining_or_leaving_moves_few_bodies() -> None:
    rng = random.Random(11)
    extra: list[int] = []
    for round_ in range(300):
        bodies = [f"opd{i}" for i in range(rng.randint(5, 60))]
        workers = [f"w{rng.random():.8f}" for _ in range(rng.randint(2, 8))]
        before = assign(bodies, workers)

        # Joining: the newcomer's share has to move, and a few more to even the counts
        # out (sorted round-robin would move most of them).
        grown = [*workers, f"new{round_}"]
        after = assign(bodies, grown)
        needed = len(after[grown[-1]])
        assert _moved(before, after) <= 2 * needed + 4
        extra.append(_moved(before, after) - needed)

        # Leaving: the leaver's bodies have to move; the others keep nearly all theirs.
        shrunk = workers[1:]
        after = assign(bodies, shrunk)
        needed = len(before[workers[0]])
        assert _moved(before, after) <= 2 * needed + 4
        extra.append(_moved(before, after) - needed)
    mean = sum(extra) / len(extra)
    print(f"\nbodies moved beyond the minimum: {mean:.2f} on average, {max(extra)} at most")
    assert mean <= 2.5


def test_the_case_of_the_issue_three_workers_twelve_bodies() -> None:
    bodies = body_codes(12)
    split = assign(bodies, ["a", "b", "c"])
    assert sorted(len(v) for v in split.values()) == [4, 4, 4]
    back = assign(bodies, ["a", "b"])
    assert sorted(len(v) for v in back.values()) == [6, 6]
    # a and b keep what they had and share c's four.
    for worker in ("a", "b"):
        assert set(split[worker]) <= set(back[worker])


def test_one_body_keeps_the_sync_lease() -> None:
    assert lease_names(["dpmptsp"]) == {"dpmptsp": "sync"}
    assert lease_names(["a", "b"]) == {"a": body_lease("a"), "b": "body:b"}


# -- the request budget -------------------------------------------------------------------


def test_a_drained_budget_waits_a_full_interval() -> None:
    now = [100.0]
    slept: list[float] = []
    budget = RequestBudget(4.0, clock=lambda: now[0], sleep=slept.append)
    budget.drain()
    assert budget.acquire() == pytest.approx(0.25)  # no burst left to spend
    fresh = RequestBudget(4.0, clock=lambda: now[0], sleep=slept.append)
    assert [fresh.acquire() for _ in range(4)] == [0.0] * 4  # a full bucket: the burst


# -- Share.tick on a fake clock ------------------------------------------------------------


class FakeBody:
    """A body handle whose cycle ends when the test says so."""

    def __init__(self, log: list[tuple[str, str, str]], worker: str, code: str) -> None:
        self.log, self.worker, self.code = log, worker, code
        self.cycle_open = True
        self.back = self.stopped = False
        log.append(("start", code, worker))

    def hand_back(self) -> None:
        self.back = True

    def stop_now(self) -> None:
        self.stopped = True
        self.cycle_open = False

    def end_cycle(self) -> None:
        self.cycle_open = False

    def finished(self) -> bool:
        done = (self.back or self.stopped) and not self.cycle_open
        if done and ("end", self.code, self.worker) not in self.log:
            self.log.append(("end", self.code, self.worker))
        return done

    def join(self, timeout: float) -> None:
        return None


class Node:
    """One worker's Share with fake bodies, all on one fake clock."""

    def __init__(self, engine: Engine, name: str, bodies: list[str], clock: FakeLeaseClock,
                 log: list[tuple[str, str, str]]) -> None:
        self.bodies: dict[str, FakeBody] = {}
        self.name = name

        def start(code: str, lease: LeaseManager) -> FakeBody:
            body = self.bodies[code] = FakeBody(log, name, code)
            return body

        self.membership = Membership(engine, 10.0, worker_id=name, clock=clock)
        self.membership.join()
        self.share = Share(engine, bodies, self.membership, start, ttl=10.0, clock=clock)

    def running(self) -> set[str]:
        return set(self.share.running())


def _no_overlap(log: list[tuple[str, str, str]]) -> None:
    """Replay the start/end log: a body never starts while another worker runs it."""
    running: dict[str, str] = {}
    for what, code, worker in log:
        if what == "start":
            assert code not in running, f"{code} started on {worker} while {running.get(code)} ran it"
            running[code] = worker
        else:
            assert running.pop(code) == worker


@pytest.mark.postgres
def test_share_failover_and_return_step_by_step(pg_engine: Engine) -> None:
    clock = FakeLeaseClock()
    log: list[tuple[str, str, str]] = []
    bodies = body_codes(12)
    a, b, c = (Node(pg_engine, n, bodies, clock, log) for n in ("A", "B", "C"))
    for node in (a, b, c, a, b, c):
        node.share.tick()
    assert sorted(len(n.running()) for n in (a, b, c)) == [4, 4, 4]
    assert set().union(*(n.running() for n in (a, b, c))) == set(bodies)
    held = owners(pg_engine, bodies, clock=clock)
    assert {code: held[code] for code in c.running()} == dict.fromkeys(c.running(), "C")

    # C dies: no release, no more heartbeats. Until its lease runs out, nobody runs its
    # bodies (A and B already count it out once its heartbeat expires, at the same time).
    c_bodies = c.running()
    for body in c.bodies.values():  # a dead process runs nothing
        body.stop_now()
        body.finished()
    clock.advance(5)
    a.share.tick()
    b.share.tick()
    assert not (a.running() | b.running()) & c_bodies
    clock.advance(5.01)  # past C's heartbeat and leases: ttl after its last tick
    a.share.tick()
    b.share.tick()
    assert a.running() | b.running() == set(bodies)
    assert sorted(len(n.running()) for n in (a, b)) == [6, 6]

    # C comes back (a new process, a new id): A and B hand its share back once their
    # cycle in hand ends; until then it waits.
    d = Node(pg_engine, "D", bodies, clock, log)
    for node in (d, a, b, d):
        node.share.tick()
    want = set(d.share.share)
    assert len(want) == 4 and not d.running()
    handing = [body for n in (a, b) for code, body in n.bodies.items()
               if code in want and body.back]
    assert len(handing) == 4
    for body in handing:
        body.end_cycle()
    for node in (a, b, d):
        node.share.tick()
    assert d.running() == want
    assert sorted(len(n.running()) for n in (a, b, d)) == [4, 4, 4]
    _no_overlap(log)


@pytest.mark.postgres
def test_a_lost_renewal_stops_the_body_before_the_lease_can_pass(pg_engine: Engine) -> None:
    clock = FakeLeaseClock()
    log: list[tuple[str, str, str]] = []
    a = Node(pg_engine, "A", body_codes(3), clock, log)
    a.share.tick()
    assert len(a.running()) == 3
    # No renewal for 0.8 ttl (the database is unreachable): the watchdog stops them all,
    # 2 s before another worker could take any.
    clock.advance(8.0)
    a.share.watchdog()
    assert all(body.stopped for body in a.bodies.values())
    assert a.running() == set()


def test_sqlite_refuses_a_second_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    engine = make_engine(url)
    try:
        from bridge.store.schema import ensure_schema

        ensure_schema(engine)
        first = Membership(engine, 30.0)
        first.join()
        second = Membership(engine, 30.0)
        with pytest.raises(SecondWorker) as refused:
            second.join()
        assert "pid" in str(refused.value) and str(first.pid) in str(refused.value)
        assert sqlite_worker_at(url) is not None
        # A worker killed without a word (its process is gone) does not count.
        with engine.begin() as conn:
            from bridge.daemon.share import _workers

            conn.execute(_workers.update().values(pid=_dead_pid()))
        second.join()
        first.leave()
    finally:
        engine.dispose()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- real worker processes -----------------------------------------------------------------


def _start(db_url: str, log: Path, n: int = 12) -> subprocess.Popen[bytes]:
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.share_worker", db_url, str(n), "0.1"],
            cwd=ROOT, env=daemon_env(), stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True)


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(cycles).order_by(cycles.c.start)))


def _overlaps(rows: list[Any]) -> list[str]:
    by_body: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_body[row.body].append(row)
    bad = []
    for body, runs in by_body.items():
        runs.sort(key=lambda r: r.start)
        for one, two in itertools.pairwise(runs):
            if two.start < one.end:
                bad.append(f"{body}: {one.worker} until {one.end:.3f}, "
                           f"{two.worker} from {two.start:.3f}")
    return bad


@pytest.mark.slow
@pytest.mark.postgres
def test_three_workers_twelve_bodies_kill_one_and_return(tmp_path: Path, pg_url: str,
                                                        pg_engine: Engine) -> None:
    meta.create_all(pg_engine)
    bodies = body_codes(12)
    logs = [tmp_path / f"worker-{i}.log" for i in range(4)]
    procs = [_start(pg_url, logs[i]) for i in range(3)]
    try:
        def spread() -> bool:
            held = owners(pg_engine, bodies)
            per = defaultdict(int)
            for holder in held.values():
                if holder is not None:
                    per[holder] += 1
            return sorted(per.values()) == [4, 4, 4]

        wait_for("the bodies spread 4/4/4", spread, timeout=30, procs=procs, log=logs[0])
        wait_for("every body to run", lambda: {r.body for r in _rows(pg_engine)} == set(bodies),
                 procs=procs, log=logs[0])

        # SIGKILL the worker of opd00, mid-cycle: its bodies go to the two others.
        victim_id = owners(pg_engine, bodies)["opd00"]
        assert victim_id is not None
        victim = next(p for p in procs if f":{p.pid}:" in victim_id)
        orphans = [code for code, holder in owners(pg_engine, bodies).items()
                   if holder == victim_id]
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        killed = time.time()
        alive = [p for p in procs if p is not victim]

        def resumed() -> float | None:
            after = [r for r in _rows(pg_engine) if r.body in orphans and r.start > killed]
            if {r.body for r in after} != set(orphans):
                return None
            return max(min(r.start for r in after if r.body == code) for code in orphans)

        last = wait_for("the orphans to run elsewhere", resumed, timeout=30, interval=0.05,
                        procs=alive, log=logs[1])
        failover = last - killed
        bound = SHARE_DAEMON.lease_ttl + SHARE_DAEMON.standby_poll_interval + 0.1
        print(f"\nfailover after SIGKILL: {failover:.2f} s (lease bound {bound:.2f} s)")
        assert failover <= bound + 3.0  # the slack is process scheduling on a busy machine

        # A worker (re)joins: it gets a third of the bodies back, without overlap.
        procs.append(_start(pg_url, logs[3]))
        back = procs[-1]
        alive.append(back)
        wait_for("the bodies spread 4/4/4 again", spread, timeout=30, procs=alive,
                 log=logs[3])
        wait_for("the returning worker to run its share", lambda: len(
            {r.body for r in _rows(pg_engine) if r.pid == back.pid}) == 4, procs=alive,
            log=logs[3])
        for proc in alive:
            proc.send_signal(signal.SIGTERM)
        assert [p.wait(timeout=30) for p in alive] == [0, 0, 0]

        rows = _rows(pg_engine)
        assert _overlaps(rows) == []
        assert {r.body for r in rows} == set(bodies)
        # A clean stop gives everything back: no lease and no worker row is left.
        assert set(owners(pg_engine, bodies).values()) == {None}
        # The killed worker's row stays until it is forgotten; the others left theirs.
        assert {w.pid for w in read_workers(pg_engine)} == {victim.pid}
    finally:
        kill_all(procs)


# -- SQLite: one worker, said at start -------------------------------------------------------


@pytest.mark.slow
def test_a_second_daemon_on_sqlite_is_refused_with_one_line(tmp_path: Path) -> None:
    from bridge.lapor.sandbox import SandboxServer
    from tests.support.cli import ENV, run_cli
    from tests.support.daemon import Store, holder_pid, start_daemon, stop, write_config
    from tests.support.settings import TEST_BEARER, TEST_TOKEN

    db_url = f"sqlite:///{tmp_path / 'bridge.db'}"
    with SandboxServer(seed=3, reports=5, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization") as sandbox:
        config = write_config(tmp_path / "c.toml", sandbox.url, db_url)
        assert run_cli("check-config", "--config", str(config), env=ENV).returncode == 0
        store = Store(db_url)
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        first = start_daemon(config, first_log)
        procs = [first]
        try:
            wait_for("the first daemon to lead",
                     lambda: holder_pid(store.lease_holder()) == first.pid, procs=procs,
                     log=first_log)
            second = start_daemon(config, second_log)
            procs.append(second)
            assert second.wait(timeout=60) == 2
            said = [line for line in second_log.read_text().splitlines()
                    if "another worker runs on this SQLite database" in line]
            assert len(said) == 1 and f"pid {first.pid}" in said[0], second_log.read_text()

            checked = run_cli("check-config", "--config", str(config), env=ENV)
            assert checked.returncode == 2
            assert checked.stderr.count("\n") == 1, checked.stderr
            assert "database.url" in checked.stderr and f"pid {first.pid}" in checked.stderr

            # Once it stops, the next one starts (and check-config is content again).
            assert stop(first) == 0
            assert run_cli("check-config", "--config", str(config), env=ENV).returncode == 0
            third = start_daemon(config, tmp_path / "third.log")
            procs.append(third)
            wait_for("the next daemon to lead",
                     lambda: holder_pid(store.lease_holder()) == third.pid, procs=[third],
                     log=tmp_path / "third.log")
            assert stop(third) == 0
        finally:
            kill_all(procs)


# -- real bodies: a Runtime each, one thread each ----------------------------------------------


@pytest.mark.slow
def test_a_slow_body_does_not_hold_up_the_others(tmp_path: Path) -> None:
    """One worker, three bodies (each its own store and its own LAPOR! account): the body
    whose LAPOR! answers in 400 ms is still pulling when the two others are done."""
    import threading

    from sqlalchemy import func

    from bridge.daemon.bodyrun import runtime_work
    from bridge.daemon.settings import DaemonSettings
    from bridge.daemon.worker import SharedWorker
    from bridge.lapor.sandbox import SandboxServer
    from bridge.runtime import Runtime
    from bridge.store.models import Case
    from bridge.store.schema import ensure_schema
    from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings

    cfg = DaemonSettings(pull_interval=0.3, push_interval=0.3, events_interval=0.3,
                         lease_ttl=3.0, lease_renew_interval=0.5, standby_poll_interval=0.3,
                         stop_timeout=10.0)
    share_url = f"sqlite:///{tmp_path / 'deployment.db'}"
    share_engine = make_engine(share_url)
    ensure_schema(share_engine)
    faults = {"slow": {"latency_ms": 400}, "fast1": {}, "fast2": {}}
    servers = {code: SandboxServer(seed=i + 1, reports=30, bearer=TEST_BEARER,
                                   token=TEST_TOKEN, bearer_header="Authorization",
                                   faults=faults[code] or None)
               for i, code in enumerate(faults)}
    runtimes: dict[str, Runtime] = {}
    try:
        for code, server in servers.items():
            server.__enter__()
            runtimes[code] = Runtime(make_settings(
                f"sqlite:///{tmp_path / (code + '.db')}", server.url,
                lapor={"page_size": 5}))
        worker = SharedWorker(share_engine, {c: runtime_work(rt, cfg)
                                             for c, rt in runtimes.items()},
                              cfg, install_signals=False)
        codes: list[int] = []
        thread = threading.Thread(target=lambda: codes.append(worker.run()))
        thread.start()

        def count(code: str) -> int:
            with runtimes[code].sessions() as session:
                return int(session.scalar(select(func.count()).select_from(Case)) or 0)

        try:
            wait_for("both fast bodies pulled", lambda: count("fast1") == 30
                     and count("fast2") == 30, timeout=60)
            assert count("slow") < 30  # 6 pages x 400 ms and more: still at it
            wait_for("the slow body pulled too", lambda: count("slow") == 30, timeout=60)
            assert set(worker.share.running()) == set(faults)
        finally:
            worker.request_stop("test over")
            thread.join(30)
        assert codes == [0]
        assert owners(share_engine, list(faults)) == dict.fromkeys(faults)
    finally:
        for rt in runtimes.values():
            rt.close()
        for server in servers.values():
            server.__exit__(None, None, None)
        share_engine.dispose()
