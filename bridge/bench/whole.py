"""Bench phases that time what users run: whole commands in processes of their own.

- :func:`run_sync_once`: ``lapor-bridge sync --once --json`` into an empty store (pull,
  deadlines, triage with the plugins of :mod:`bridge.bench.userconfig`, notifications,
  event dispatch), timed from outside as a whole process; peak RSS and CPU from the
  kernel's accounting of the finished child.
- :func:`run_time_to_queue`: ``lapor-bridge run`` (the daemon) at its pull interval while
  reports are added to the sandbox at a steady rate; how long until each shows in
  ``lapor-bridge queue --json`` and in the staff page's data endpoint (``/antrean/data``).

The tracked-case polling phase (a simulation, not a command) lives in ``run.py``.
"""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bridge.bench.userconfig import bench_env, write_bench_config

#: Title prefix of the reports the time-to-queue phase adds (what both views search for).
TTQ_TAG = "BENCHTTQ"
_TTQ_TITLE = re.compile(TTQ_TAG + r"-(\d{5})")


def _children_usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _bridge_cmd(*args: str, config: Path) -> list[str]:
    return [sys.executable, "-m", "bridge", *args, "--config", str(config)]


def run_sync_once(box: Any, workdir: Path, name: str, page_size: int) -> dict[str, Any]:
    """``sync --once`` of the whole sandbox into a new SQLite store, as a user runs it.

    Called in a process that has started no other child since it began (the bench's
    phase process): the children's peak RSS is then this command's."""
    db = workdir / f"{name}.db"
    for stale in workdir.glob(f"{name}.db*"):
        stale.unlink()
    config = write_bench_config(workdir / f"{name}.toml", base_url=box["url"],
                                db_url=f"sqlite:///{db}", page_size=page_size)
    env = {**os.environ, **bench_env(box["bearer"], box["token"])}
    cpu0, _ = _children_usage()
    started = time.perf_counter()
    proc = subprocess.run(_bridge_cmd("sync", "--once", "--json", config=config), env=env,
                          capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    cpu1, rss = _children_usage()
    if proc.returncode != 0:
        raise RuntimeError(f"sync --once exited {proc.returncode}: {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    counts = _store_counts(f"sqlite:///{db}")
    pull = report.get("pull", {})
    triage = report.get("triage", {})
    return {"seconds": seconds, "cpu_seconds": cpu1 - cpu0, "peak_rss_mb": round(rss, 1),
            "requests": pull.get("pages", 0), "received": pull.get("received", 0),
            "created": pull.get("created", 0), "quarantined": pull.get("quarantined", 0),
            "triage_cases": triage.get("cases", 0), "triage_failed": triage.get("failed", 0),
            "triage_announced": triage.get("announced", 0),
            "triage_seconds": triage.get("seconds", 0.0),
            "triage_cpu_seconds": triage.get("cpu_seconds", 0.0),
            "events_dispatched": report.get("events", 0),
            "events_seconds": report.get("events_seconds", 0.0), **counts}


def _store_counts(db_url: str) -> dict[str, int]:
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            def one(sql: str) -> int:
                return int(conn.execute(text(sql)).scalar_one())

            return {"stored": one("SELECT count(*) FROM cases"),
                    "triaged": one("SELECT count(*) FROM case_events WHERE kind = 'triage'"),
                    "pending_left": one("SELECT count(*) FROM pending_events"),
                    "flagged": one("SELECT count(*) FROM cases WHERE attention IS NOT NULL")}
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- time to queue


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[k]


def latency_summary(values: list[float]) -> dict[str, float]:
    return {"p50": round(_percentile(values, 0.5), 3), "p95": round(_percentile(values, 0.95), 3),
            "max": round(max(values), 3) if values else 0.0,
            "mean": round(statistics.fmean(values), 3) if values else 0.0}


def _vm_hwm_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _count_cases(db_url: str) -> int:
    try:
        return _store_counts(db_url)["stored"]
    except Exception:  # noqa: BLE001 - the daemon has not created the schema yet
        return -1


def run_time_to_queue(box: Any, workdir: Path, *, seeded: int, reports: int, rate: float,
                      pull_interval: float | None, page_size: int,
                      progress: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """The daemon at its pull interval; ``reports`` added at ``rate`` per second."""
    db = workdir / "ttq.db"
    for stale in workdir.glob("ttq.db*"):
        stale.unlink()
    db_url = f"sqlite:///{db}"
    extra = ""
    if pull_interval is not None:
        extra = f"\n[daemon]\npull_interval = {float(pull_interval)}\n"
    config = write_bench_config(workdir / "ttq.toml", base_url=box["url"], db_url=db_url,
                                page_size=page_size, extra=extra)
    env = {**os.environ, **bench_env(box["bearer"], box["token"])}
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from bridge.config import load_settings
    from bridge.daemon.settings import daemon_settings

    interval = daemon_settings(load_settings(str(config), env=env)).pull_interval
    log = (workdir / "ttq-daemon.log").open("w")
    daemon = subprocess.Popen(_bridge_cmd("run", config=config), env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    web: Any = None
    page: httpx.Client | None = None
    try:
        deadline = time.monotonic() + 120 + interval
        while _count_cases(db_url) < seeded:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the daemon did not finish its first sync; see "
                                   f"{workdir / 'ttq-daemon.log'}")
            time.sleep(0.2)
        progress(f"time to queue: daemon caught up; adding {reports} reports at "
                 f"{rate:g}/s (pull interval {interval:g} s)")
        web, page = _start_web(config, env)
        added: dict[int, float] = {}
        seen_web: dict[int, float] = {}
        seen_cli: dict[int, float] = {}
        stop = threading.Event()
        cli_calls: list[float] = []

        def poll_cli() -> None:
            while not stop.is_set():
                began = time.monotonic()
                proc = subprocess.run(
                    _bridge_cmd("queue", "--json", "--text", TTQ_TAG, "--limit", "100000",
                                config=config),
                    env=env, capture_output=True, text=True, timeout=300)
                now = time.monotonic()
                cli_calls.append(now - began)
                if proc.returncode == 0:
                    for row in json.loads(proc.stdout):
                        match = _TTQ_TITLE.search(str(row.get("title", "")))
                        if match:
                            seen_cli.setdefault(int(match.group(1)), now)

        def poll_web() -> None:
            while not stop.wait(0.25):
                assert page is not None
                response = page.get("/antrean/data", params={"cari": TTQ_TAG})
                now = time.monotonic()
                if response.status_code == 200:
                    for match in _TTQ_TITLE.finditer(response.json()["html"]):
                        seen_web.setdefault(int(match.group(1)), now)

        threads = [threading.Thread(target=poll_cli, daemon=True),
                   threading.Thread(target=poll_web, daemon=True)]
        for t in threads:
            t.start()
        with httpx.Client(timeout=60) as admin:
            start = time.monotonic()
            for n in range(reports):
                time.sleep(max(0.0, start + n / rate - time.monotonic()))
                response = admin.post(f"{box['admin_url']}/reports", json={
                    "title": f"{TTQ_TAG}-{n:05d} Lampu jalan padam",
                    "content": "Lampu jalan di depan pasar padam sejak tiga hari."})
                response.raise_for_status()
                added[n] = time.monotonic()
        wait_until = time.monotonic() + interval * 2 + 60
        while time.monotonic() < wait_until and (len(seen_web) < reports
                                                  or len(seen_cli) < reports):
            time.sleep(0.25)
        stop.set()
        for t in threads:
            t.join(timeout=300)
        daemon_rss = _vm_hwm_mb(daemon.pid)
    finally:
        if page is not None:
            page.close()
        if web is not None:
            web[0].stop()
            web[1].close()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        log.close()
    web_lat = [seen_web[n] - added[n] for n in added if n in seen_web]
    cli_lat = [seen_cli[n] - added[n] for n in added if n in seen_cli]
    return {"pull_interval": interval, "added": len(added), "rate": rate,
            "seen_web": len(web_lat), "seen_cli": len(cli_lat),
            "web": latency_summary(web_lat), "cli": latency_summary(cli_lat),
            "cli_call_seconds": latency_summary(cli_calls),
            "daemon_peak_rss_mb": round(daemon_rss, 1), "daemon_exit": daemon.returncode}


def _start_web(config: Path, env: dict[str, str]) -> tuple[Any, httpx.Client]:
    """The staff page on the daemon's database, signed in (the demo's sign-in links)."""
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from bridge.config import load_settings
    from bridge.runtime import Runtime
    from bridge.web.demo import start_demo_web

    rt = Runtime(load_settings(str(config), env=env), upgrade_schema=False)
    handle = start_demo_web(rt, None, echo=False, push=False)
    page = httpx.Client(base_url=handle.url, timeout=60, follow_redirects=True)
    page.get(next(iter(handle.links.values()))).raise_for_status()
    return (handle, rt), page
