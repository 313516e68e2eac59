"""``lapor-bridge bench``: how fast the bridge pulls, syncs and pushes, against the sandbox.

Kept light: the command line imports this module at start-up; the work is in
:mod:`bridge.bench.run` (orchestration), :mod:`bridge.bench.phases` (one phase per
process) and :mod:`bridge.bench.sandbox` (the sandbox in its own process).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


def _sizes(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {value!r}"
                                 ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise click.BadParameter("expected positive numbers of reports")
    return sizes


@click.command("bench")
@click.option("--sizes", default="10000,100000", show_default=True, callback=_sizes,
              help="Inbox sizes to pull (reports), comma-separated. The largest also gets "
                   "the incremental syncs, the smallest store the push.")
@click.option("--followups", default=10_000, show_default=True, type=click.IntRange(0),
              help="Follow-ups to push (0: skip the push).")
@click.option("--page-size", default=1000, show_default=True, type=click.IntRange(1, 1000),
              help="Inbox page size of the pulls.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Cases pushed concurrently (outbox.concurrency; 4 is its default).")
@click.option("--postgres", is_flag=True,
              help="Also run every phase on a throwaway PostgreSQL cluster.")
@click.option("--inprocess-sandbox", is_flag=True,
              help="Run the sandbox inside each phase's process (to compare; the default, "
                   "a sandbox process of its own, keeps it off the measured GIL).")
@click.option("--seed", default=0, show_default=True, type=int, help="Sandbox seed.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the SQLite files here (default: a temporary directory).")
@click.option("--profile", "profile_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write a cProfile file per phase into this directory.")
@click.option("--sync-size", default=20_000, show_default=True, type=click.IntRange(0),
              help="Reports of the whole `sync --once` phases (0: skip them).")
@click.option("--pairs", default=5, show_default=True, type=click.IntRange(1, 20),
              help="Alternating (baseline, sync --once) pairs, for the median and spread.")
@click.option("--ttq-reports", default=40, show_default=True, type=click.IntRange(0),
              help="Reports the time-to-queue phase adds while `run` runs (0: skip it).")
@click.option("--ttq-rate", default=0.25, show_default=True, type=click.FloatRange(0.01, 100),
              help="Reports added per second in the time-to-queue phase.")
@click.option("--pull-interval", type=click.FloatRange(0.1), default=None,
              help="The daemon's pull interval in the time-to-queue phase (default: the "
                   "deployment default).")
@click.option("--tracked", "tracked_cases", default=10_000, show_default=True,
              type=click.IntRange(0),
              help="Tracked open cases in the polling simulation (0: skip it).")
@click.option("--bodies", default=0, show_default=True, type=click.IntRange(0, 500),
              help="The scale bench (needs --postgres): `lapor-bridge run` workers over this "
                   "many bodies, 1 worker against --workers, and a SIGKILL failover; every "
                   "other phase is skipped.")
@click.option("--workers", default=3, show_default=True, type=click.IntRange(1, 32),
              help="Worker processes of the scale bench.")
@click.option("--body-reports", default=300, show_default=True, type=click.IntRange(1),
              help="Reports of each body's institution in the scale bench.")
@click.option("--latency-ms", default=50.0, show_default=True, type=click.FloatRange(0),
              help="The sandbox's latency per LAPOR! request in the scale bench.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_cmd(sizes: list[int], followups: int, page_size: int, concurrency: int,
              postgres: bool, inprocess_sandbox: bool, seed: int, workdir: Path | None,
              profile_dir: Path | None, sync_size: int, pairs: int, ttq_reports: int,
              ttq_rate: float, pull_interval: float | None, tracked_cases: int,
              bodies: int, workers: int, body_reports: int, latency_ms: float,
              as_json: bool) -> None:
    """Benchmark pull, incremental sync and push against the sandbox on loopback, and
    what users run: the whole `sync --once` command (triage, notifications, events, the
    demo's plugins) in alternating pairs with the baseline, and the time from a new LAPOR!
    report to the queue while `lapor-bridge run` runs, and the polling of tracked cases
    under the request budget (the tracking schedule on a virtual clock).

    Prints reports/s, follow-ups/s, requests and peak RSS per phase, each phase in a
    fresh process, beside a minimal baseline (plain HTTP paging and bulk inserts), and
    each target with PASS or MISS. Exits 1 if a count is wrong (a lost or doubled report
    or follow-up); a missed target only shows as MISS.
    """
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.bench.run import BenchError, BenchOptions, run_bench, text_lines

    scale = None
    if bodies:
        if not postgres:
            raise click.UsageError("--bodies needs --postgres: several workers share the "
                                   "bodies through PostgreSQL (SQLite stays single-worker)")
        from bridge.bench.scale import ScaleOptions

        scale = ScaleOptions(bodies=bodies, workers=workers, reports=body_reports,
                             latency_ms=latency_ms, seed=seed,
                             pull_interval=pull_interval or ScaleOptions.pull_interval)
    opts = BenchOptions(sizes=sizes, followups=followups, page_size=page_size,
                        concurrency=concurrency, seed=seed, postgres=postgres,
                        inprocess_sandbox=inprocess_sandbox, workdir=workdir,
                        profile_dir=profile_dir, sync_size=sync_size, pairs=pairs,
                        ttq_reports=ttq_reports, ttq_rate=ttq_rate,
                        pull_interval=pull_interval, tracked_cases=tracked_cases,
                        scale=scale)

    def progress(message: str) -> None:
        if not as_json:
            click.echo(message, err=True)

    try:
        report = run_bench(opts, progress)
    except BenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        for line in text_lines(report):
            click.echo(line)
    if not report.ok:
        sys.exit(1)


def commands() -> list[click.Command]:
    return [bench_cmd]
