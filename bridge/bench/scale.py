"""The scale bench (issue #17): W ``lapor-bridge run`` workers over B bodies on PostgreSQL.

One sandbox process hosts B institutions, each with ``reports`` reports, and answers every
LAPOR! request after ``latency_ms``. A Pemda config with B bodies (one per institution)
points at it and at a throwaway PostgreSQL cluster. Three runs, each on a fresh database:

1. one worker process over the B bodies (the reference);
2. W worker processes (the speedup W over 1);
3. W worker processes again, one of which is killed with SIGKILL mid-sync: the failover
   time is the time from the kill until every body the dead worker held (and had not
   finished) stores a new report under another worker.

A run ends when every body's store holds all its sandbox's reports. The page size is small
so that each body needs many requests: the run is bound by LAPOR!'s latency, which is
where several workers help even on two cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bridge.errors import BridgeError

#: Issue #17's target: 3 workers over 30 bodies at least this many times 1 worker.
SPEEDUP_TARGET = 2.5
#: The first institution id; body k has FIRST_INSTITUTION + k.
FIRST_INSTITUTION = 1001
POLL_S = 0.05


class ScaleError(BridgeError, RuntimeError):
    """A run did not finish or its counts are wrong."""


@dataclass
class ScaleOptions:
    bodies: int
    workers: int
    reports: int = 300
    latency_ms: float = 50.0
    page_size: int = 10
    #: Each body's own budget of requests per second on LAPOR! (its own account).
    requests_per_second: float = 50.0
    pull_interval: float = 0.5
    lease_ttl: float = 3.0
    lease_renew_interval: float = 0.5
    standby_poll_interval: float = 0.5
    #: The worker is killed once this share of all reports is stored.
    kill_at: float = 0.3
    seed: int = 0
    #: A run that has not stored everything after this long fails.
    timeout: float = 900.0

    @property
    def lease_bound(self) -> float:
        return self.lease_ttl + self.standby_poll_interval


def body_code(k: int) -> str:
    return f"OPD{k + 1:02d}"


def pemda_toml(opts: ScaleOptions, base_url: str, db_url: str) -> str:
    """The Pemda's config: B bodies on one database, short intervals, no recaps."""
    lines = [
        "[regency]", 'name = "Kabupaten Bench"', 'code = "BENCH"',
        'register_format = "{code}/ADU/{year}/{seq:05d}"', 'timezone = "Asia/Jakarta"',
        "[lapor]", f'base_url = "{base_url}"', 'bearer_header = "auth"',
        f"page_size = {opts.page_size}", f"requests_per_second = {opts.requests_per_second}",
        "[database]", f'url = "{db_url}"',
        "[daemon]", f"pull_interval = {opts.pull_interval}",
        f"push_interval = {opts.pull_interval}", f"events_interval = {opts.pull_interval}", "deadline_interval = 3600.0", "refresh_interval = 3600.0",
        "reconcile_interval = 3600.0", "health_log_interval = 3600.0",
        f"lease_ttl = {opts.lease_ttl}", f"lease_renew_interval = {opts.lease_renew_interval}",
        f"standby_poll_interval = {opts.standby_poll_interval}", "stop_timeout = 10.0",
        "[daemon.recaps]",
    ]
    for k in range(opts.bodies):
        lines += ["[[bodies]]", f'code = "{body_code(k)}"', f'name = "OPD Bench {k + 1}"',
                  f"institution_id = {FIRST_INSTITUTION + k}"]
    return "\n".join(lines) + "\n"


def secrets_env(opts: ScaleOptions, bearer_prefix: str, token: str) -> dict[str, str]:
    """Each body's LAPOR! account by its secrets name (its code)."""
    env: dict[str, str] = {}
    for k in range(opts.bodies):
        code = body_code(k)
        env[f"LAPOR_BRIDGE_{code}_BEARER"] = f"{bearer_prefix}-{FIRST_INSTITUTION + k}"
        env[f"LAPOR_BRIDGE_{code}_TOKEN"] = token
    return env


class Counts:
    """Cases per body, read from each body's schema in one statement."""

    def __init__(self, engine: Engine, codes: list[str], reports: int) -> None:
        self.engine = engine
        self.codes = codes
        self.reports = reports
        self.sql = text(" UNION ALL ".join(
            f"SELECT '{code}', count(*) FROM body_{code.lower()}.cases" for code in codes))

    def read(self) -> dict[str, int]:
        try:
            with self.engine.connect() as conn:
                return {str(code): int(n) for code, n in conn.execute(self.sql)}
        except Exception:  # the schemas are created by the workers as they start
            return dict.fromkeys(self.codes, 0)


@contextmanager
def workers(n: int, config: Path, env: dict[str, str], log: Path
            ) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with log.open("ab") as fh:
            for _ in range(n):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bridge", "run", "--config", str(config)],
                    env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True))
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Its threads' stacks into the log first (the daemon's SIGUSR1), to see
                # what it was waiting for.
                proc.send_signal(signal.SIGUSR1)
                time.sleep(1)
                proc.kill()
                proc.wait()


def _held_by(engine: Engine, codes: list[str], pid: int) -> list[str]:
    from bridge.daemon.share import owners

    return [code for code, holder in owners(engine, codes).items()
            if holder is not None and f":{pid}:" in f"{holder}:"]


def run_once(opts: ScaleOptions, n_workers: int, db_url: str, config: Path,
             env: dict[str, str], log: Path, *, kill: bool = False,
             progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """One run: ``n_workers`` workers until every body holds all its reports."""
    from bridge.store.db import make_engine

    codes = [body_code(k) for k in range(opts.bodies)]
    total = opts.bodies * opts.reports
    engine = make_engine(db_url)
    counts = Counts(engine, codes, opts.reports)
    launched = time.monotonic()
    first: dict[str, float] = {}
    done: dict[str, float] = {}
    killed: dict[str, Any] | None = None
    try:
        with workers(n_workers, config, env, log) as procs:
            while len(done) < len(codes):
                now = time.monotonic()
                if now - launched > opts.timeout:
                    raise ScaleError(f"{n_workers} worker(s): only {len(done)} of "
                                     f"{len(codes)} bodies complete after {opts.timeout:g} s")
                alive = [p for p in procs if killed is None or p.pid != killed["pid"]]
                dead = [p for p in alive if p.poll() is not None]
                if dead:
                    raise ScaleError(f"a worker exited ({dead[0].returncode}) mid-run; "
                                     f"see {log}")
                seen = counts.read()
                for code, n in seen.items():
                    if n and code not in first:
                        first[code] = now
                    if n >= opts.reports and code not in done:
                        done[code] = now
                    if n > opts.reports:
                        raise ScaleError(f"body {code} holds {n} cases for {opts.reports} "
                                         "reports (a report stored twice)")
                if kill and killed is None and sum(seen.values()) >= opts.kill_at * total:
                    killed = _kill_one(engine, codes, procs, counts, done)
                    progress(f"  killed worker {killed['pid']} holding "
                             f"{len(killed['bodies'])} bodies")
                if killed is not None and killed["waiting"]:
                    _watch_failover(engine, killed, seen, now)
                time.sleep(POLL_S)
        stored = counts.read()  # with every worker stopped
    finally:
        engine.dispose()
    start = min(first.values())
    end = max(done.values())
    per_body = {code: opts.reports / max(done[code] - first[code], 1e-9) for code in codes}
    result: dict[str, Any] = {
        "workers": n_workers, "reports": total, "startup_s": start - launched,
        "seconds": end - start, "rate": total / max(end - start, 1e-9),
        "per_body": per_body, "stored": stored,
    }
    if killed is not None:
        result["failover"] = {k: v for k, v in killed.items() if k not in ("waiting", "at_wall")}
    return result


def _kill_one(engine: Engine, codes: list[str], procs: list[subprocess.Popen[bytes]],
              counts: Counts, done: dict[str, float]) -> dict[str, Any]:
    """SIGKILL the worker holding the most unfinished bodies."""
    held = {p.pid: [c for c in _held_by(engine, codes, p.pid) if c not in done]
            for p in procs}
    victim = max(procs, key=lambda p: len(held[p.pid]))
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    at = time.monotonic()
    # The same host's wall clock as the database's: a take-over is timed from the
    # lease's own acquired_at, not from when this loop happened to look.
    at_wall = datetime.now(UTC)
    # Read after the kill: the victim can commit nothing more.
    after = counts.read()
    bodies = [c for c in held[victim.pid] if after[c] < counts.reports]
    return {"pid": victim.pid, "at": at, "at_wall": at_wall, "bodies": bodies,
            "counts": {c: after[c] for c in bodies}, "waiting": set(bodies),
            "resumed": {}, "taken": {}}


def _watch_failover(engine: Engine, killed: dict[str, Any], seen: dict[str, int],
                    now: float) -> None:
    from bridge.daemon.lease import read_lease
    from bridge.daemon.share import body_lease

    # One read per body still held by the dead worker: who holds it now, and since when.
    for code in [c for c in killed["bodies"] if c not in killed["taken"]]:
        info = read_lease(engine, body_lease(code))
        if (info is not None and not info.expired
                and f":{killed['pid']}:" not in f"{info.holder}:"):
            killed["taken"][code] = (info.acquired_at - killed["at_wall"]).total_seconds()
    for code in list(killed["waiting"]):
        if seen[code] > killed["counts"][code]:
            killed["resumed"][code] = now - killed["at"]
            killed["waiting"].discard(code)


def run_scale(opts: ScaleOptions, cluster: Any, box: Any, workdir: Path,
              progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """The three runs on ``cluster`` (a :class:`bridge.tools.pg_cluster.PgCluster`) against
    ``box``, a sandbox hosting the bodies' institutions (``url``, ``bearer``: the bearers'
    prefix, ``token``); returns the ``scale`` section of the bench's JSON."""
    env = {**os.environ, **secrets_env(opts, box.bearer, box.token), "PYTHONUNBUFFERED": "1"}
    env.pop("LAPOR_BRIDGE_CONFIG", None)
    runs: dict[str, dict[str, Any]] = {}
    for name, n, kill in (("one", 1, False), ("many", opts.workers, False),
                          ("failover", opts.workers, True)):
        db_url = cluster.create_database(f"scale_{name}")
        config = workdir / f"pemda-{name}.toml"
        config.write_text(pemda_toml(opts, box.url, db_url), encoding="utf-8")
        progress(f"scale: {n} worker(s) over {opts.bodies} bodies"
                 f"{', one killed mid-sync' if kill else ''}...")
        runs[name] = run_once(opts, n, db_url, config, env, workdir / f"workers-{name}.log",
                              kill=kill, progress=progress)
    return summarize(opts, runs)


def sandbox_args(opts: ScaleOptions) -> list[str]:
    """``python -m bridge.bench.sandbox`` arguments of the bodies' institutions."""
    ids = ",".join(str(FIRST_INSTITUTION + k) for k in range(opts.bodies))
    return ["--institutions", ids, "--faults", json.dumps({"latency_ms": opts.latency_ms})]


def summarize(opts: ScaleOptions, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    one, many = runs["one"], runs["many"]
    speedup = many["rate"] / one["rate"] if one["rate"] else 0.0
    fail = runs.get("failover", {}).get("failover")
    # Failover: until a live worker holds the lease of every body the killed one held
    # (the lease's own acquired_at); the bound is about that. Each body's next stored
    # report comes one pull later (resumed_s). No figure when the killed worker held no
    # unfinished body (the run was over).
    failover_s = max(fail["taken"].values()) if fail and fail["taken"] else None
    resumed_s = max(fail["resumed"].values()) if fail and fail["resumed"] else None
    return {
        "options": {**asdict(opts), "lease_bound": opts.lease_bound},
        "runs": runs, "speedup": speedup, "failover_s": failover_s,
        "takeover_s": failover_s, "resumed_s": resumed_s,
        "failover_bodies": len(fail["bodies"]) if fail else 0,
        "targets": {
            "speedup": {"target": SPEEDUP_TARGET, "value": speedup,
                        "status": "PASS" if speedup >= SPEEDUP_TARGET else "MISS"},
            "failover": {"target": opts.lease_bound, "value": failover_s,
                         "status": "n/a" if failover_s is None else
                         ("PASS" if failover_s <= opts.lease_bound else "MISS")},
        },
    }


def scale_lines(scale: dict[str, Any]) -> list[str]:
    o = scale["options"]
    lines = [f"scale: {o['bodies']} bodies x {o['reports']} reports, LAPOR! latency "
             f"{o['latency_ms']:g} ms, page size {o['page_size']}, pull interval "
             f"{o['pull_interval']:g} s, lease_ttl {o['lease_ttl']:g} s", "",
             f"{'run':<10} {'workers':>7} {'reports':>8} {'start s':>8} {'seconds':>8} "
             f"{'reports/s':>10} {'per body min/median/max':>26}"]
    for name, run in scale["runs"].items():
        rates = sorted(run["per_body"].values())
        lines.append(f"{name:<10} {run['workers']:>7} {run['reports']:>8,} "
                     f"{run['startup_s']:>8.1f} {run['seconds']:>8.2f} {run['rate']:>10,.0f} "
                     f"{rates[0]:>8,.0f}/{rates[len(rates) // 2]:,.0f}/{rates[-1]:,.0f}")
    lines.append(f"speedup {scale['speedup']:.2f}x; failover "
                 + ("n/a" if scale["failover_s"] is None else
                    f"{scale['failover_s']:.2f} s (every lease of the killed worker held "
                    "by a live one; each body stored its next report after "
                    + ("-" if scale["resumed_s"] is None else f"{scale['resumed_s']:.2f} s")
                    + ")"))
    return lines
