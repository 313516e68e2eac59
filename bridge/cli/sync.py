"""``lapor-bridge sync --once``: one pull, tracking poll and push (for every body)."""

from __future__ import annotations

import json
from typing import Any

import click

from bridge.cli.common import chosen_body, config_option, deployment, fail


@click.command("sync")
@click.option("--once", is_flag=True, required=True, help="Run one pull (then push) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--refresh-all", is_flag=True,
              help="Poll every tracked case now, due or not (see docs/sync.md).")
@config_option
@click.pass_context
def sync_cmd(ctx: click.Context, once: bool, as_json: bool, refresh_all: bool) -> None:
    """Pull new and changed LAPOR! reports, poll tracked ones, then push local actions.

    A several-body deployment syncs every body (or the one --body names); a body that
    fails does not stop the others, and the exit code is 1 when any failed."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.app.cycle import run_cycle
    from bridge.app.deployment import run_bodies
    from bridge.lapor.errors import LaporError

    with deployment(ctx, only=chosen_body(ctx)) as dep:
        if not dep.several:
            try:
                report = run_cycle(dep.runtime(), refresh_all=refresh_all)
            except LaporError as exc:
                fail(f"LAPOR!: {exc}")
            _print(report, as_json)
            if report.get("pull", {}).get("alarm"):
                # The run went on (push included), but a mostly quarantined pull is a failure.
                fail(report["pull"]["alarm"])
            return
        done = run_bodies(dep, refresh_all=refresh_all)
    if as_json:
        click.echo(json.dumps(done.as_json(), indent=2, default=str))
    else:
        for code, report in done.reports.items():
            for line in report["lines"]:
                click.echo(f"[{code}] {line}")
    for code, why in done.failures.items():
        click.echo(f"error: body {code}: {why}", err=True)
    for code, alarm in done.alarms.items():
        click.echo(f"error: body {code}: {alarm}", err=True)
    if not done.ok:
        raise SystemExit(1)


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    for line in report["lines"]:
        click.echo(line)


def commands() -> list[click.Command]:
    return [sync_cmd]
