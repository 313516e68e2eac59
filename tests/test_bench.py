"""`lapor-bridge bench` at tiny sizes: the JSON's shape and that every count is right.

No timing is asserted (the machine decides those); the figures only have to be there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from bridge.bench.run import BenchReport, text_lines

PHASE_KEYS = {"name", "db", "size", "seconds", "cpu_seconds", "requests", "peak_rss_mb",
              "items", "rate"}


def bench(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bridge", "bench", "--json", *args],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def phases(report: dict[str, Any], name: str, db: str = "sqlite") -> list[dict[str, Any]]:
    return [p for p in report["phases"] if p["name"] == name and p["db"] == db]


def check_common(report: dict[str, Any]) -> None:
    assert set(report) >= {"config", "machine", "phases", "checks", "targets", "notes", "ok"}
    assert report["ok"] is True
    assert report["checks"] and all(c["ok"] for c in report["checks"]), report["checks"]
    for p in report["phases"]:
        assert set(p) >= PHASE_KEYS, p
        assert p["seconds"] > 0 and p["cpu_seconds"] >= 0 and p["peak_rss_mb"] > 10
        # The time-to-queue phase counts reports seen, not requests of its own.
        assert p["requests"] >= 1 or p["name"] == "time to queue"
    for t in report["targets"]:
        assert t["status"] in ("PASS", "MISS", "n/a", "info") and t["shown"]


@pytest.mark.slow
def test_bench_tiny_sizes_counts_are_right() -> None:
    report = bench("--sizes", "200,400", "--followups", "60", "--page-size", "100",
                   "--sync-size", "300", "--pairs", "2", "--ttq-reports", "3",
                   "--ttq-rate", "10", "--pull-interval", "0.3", "--tracked", "2000")
    check_common(report)
    assert report["config"]["sizes"] == [200, 400]
    assert report["config"]["databases"] == ["sqlite"]
    assert report["machine"]["cpus"] >= 1

    for size in (200, 400):
        (pull,) = [p for p in phases(report, "pull") if p["size"] == size]
        assert pull["created"] == pull["stored"] == pull["items"] == size
        assert pull["quarantined"] == pull["stale"] == 0
        # page_size 100; a new request starts at the last timestamp read, so at least
        # size / 100 requests, and never more than one per page plus the last.
        assert size // 100 <= pull["requests"] <= size // 100 + 2
        (base,) = [p for p in phases(report, "baseline") if p["size"] == size]
        assert base["stored"] == size and base["requests"] == size // 100

    (same,) = phases(report, "incremental, nothing changed")
    assert same["size"] == 400 and same["requests"] == 1
    assert same["created"] == same["updated"] == 0

    (moved,) = phases(report, "incremental, 1% changed")
    assert moved["changed_remotely"] >= 1  # distinct reports the sandbox changed
    assert moved["updated"] == moved["changed_remotely"] and moved["created"] == 0

    (push,) = phases(report, "push")
    assert push["size"] == 200  # the smallest store is the one pushed from
    assert push["delivered"] == push["sandbox_received"] == 60
    assert push["left"] == push["dead"] == 0
    assert push["requests"] == 60  # no faults: one POST per follow-up, no read-back
    assert push["cases"] == 6  # 10 follow-ups per case, in per-case order

    # The whole command, in alternating pairs with the baseline (whole processes).
    syncs = phases(report, "sync --once (demo plugins)")
    bases = phases(report, "baseline (whole process)")
    assert [p["pair"] for p in syncs] == [p["pair"] for p in bases] == [0, 1]
    order = [p["name"] for p in report["phases"] if p["name"] in (
        "sync --once (demo plugins)", "baseline (whole process)")]
    assert order == ["baseline (whole process)", "sync --once (demo plugins)"] * 2
    for sync in syncs:
        assert sync["size"] == 300 and sync["created"] == sync["stored"] == 300
        assert sync["triage_cases"] == sync["triaged"] == 300  # one triage entry each
        assert sync["triage_failed"] == sync["flagged"] == sync["pending_left"] == 0
        # Every case announced; 300 arrivals (over the digest threshold) in one triage
        # batch go out as one "N pengaduan baru" digest.
        assert sync["triage_announced"] == 300 and sync["events_dispatched"] == 1
        assert 3 <= sync["requests"] <= 5 and sync["baseline_share"] > 0
        assert sync["triage_cpu_seconds"] > 0
    for base in bases:
        assert base["stored"] == 300 and base["seconds"] >= base["loop_seconds"]
    (puller,) = phases(report, "  puller only")
    assert puller["created"] == puller["stored"] == 300 and "baseline_share" in puller
    share = report["summary"]["sync_share"]
    assert share["min"] <= share["median"] <= share["max"]

    # Time to the queue: each added report seen once on each view.
    (ttq,) = phases(report, "time to queue")
    assert ttq["added"] == ttq["seen_web"] == ttq["seen_cli"] == 3
    assert ttq["pull_interval"] == 0.3
    for view in ("web", "cli"):
        assert 0 < ttq[view]["p50"] <= ttq[view]["p95"] <= ttq[view]["max"]
    assert ttq["daemon_exit"] == 0 and ttq["daemon_peak_rss_mb"] > 10

    # Tracked-case polling (the schedule on a virtual clock): every poll is two requests,
    # changes of both kinds are seen, and the budget is not overspent.
    (tracked,) = phases(report, "tracked polling (simulated)", db="-")
    assert tracked["size"] == 2000 and tracked["requests"] == 2 * tracked["items"] > 0
    for kind in ("active", "quiet"):
        d = tracked["delays"][kind]
        assert d["changes"] > 0 and 0 <= d["p50"] <= d["p95"] <= d["max"]
    assert 0 < tracked["budget_used"] <= 1

    names = [t["target"] for t in report["targets"]]
    assert any("tracked active case" in n for n in names)
    assert any("tracked quiet case" in n for n in names)
    assert any("sync --once" in n for n in names) and any("triage" in n for n in names)
    assert any("time to queue" in n for n in names)
    assert any("reports/s" in n for n in names) and any("baseline" in n for n in names)
    assert any("flat" in n for n in names) and any("follow-ups/s" in n for n in names)
    assert any("no-change sync" in n for n in names)

    lines = text_lines(BenchReport(**{k: report[k] for k in (
        "config", "machine", "phases", "checks", "targets", "notes", "summary")}))
    assert any(line.startswith("pull ") for line in lines)
    assert any(line.strip().startswith(("PASS", "MISS")) for line in lines)


@pytest.mark.slow
@pytest.mark.postgres
def test_bench_on_postgresql_too() -> None:
    pytest.importorskip("psycopg")
    from bridge.tools.pg_cluster import find_bin

    if not find_bin("initdb"):
        pytest.skip("no PostgreSQL server binaries")
    report = bench("--sizes", "150", "--followups", "20", "--page-size", "50", "--postgres",
                   "--sync-size", "0", "--ttq-reports", "0", "--tracked", "0")
    check_common(report)
    assert report["config"]["databases"] == ["sqlite", "postgresql"]
    for db in ("sqlite", "postgresql"):
        (pull,) = phases(report, "pull", db)
        assert pull["created"] == pull["stored"] == 150
        (base,) = phases(report, "baseline", db)
        assert base["stored"] == 150
        (same,) = phases(report, "incremental, nothing changed", db)
        assert same["requests"] == 1 and same["updated"] == 0
        (moved,) = phases(report, "incremental, 1% changed", db)
        assert moved["updated"] == moved["changed_remotely"] == 1
        (push,) = phases(report, "push", db)
        assert push["delivered"] == push["sandbox_received"] == 20
    flat = [t for t in report["targets"] if "flat" in t["target"]]
    assert len(flat) == 2 and {t["status"] for t in flat} == {"n/a"}  # one size each
    # The share of the baseline is a target on SQLite, a figure on PostgreSQL.
    share = {t["target"].split(" ")[2].rstrip(","): t["status"]
             for t in report["targets"] if "baseline" in t["target"]}
    assert share["postgresql"] == "info" and share["sqlite"] in ("PASS", "MISS")
