"""``lapor-bridge sync --once``: one pull, tracking poll and push."""

from __future__ import annotations

import json

import click

from bridge.cli.common import config_option, fail, runtime


@click.command("sync")
@click.option("--once", is_flag=True, required=True, help="Run one pull (then push) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--refresh-all", is_flag=True,
              help="Poll every tracked case now, due or not (see docs/sync.md).")
@config_option
@click.pass_context
def sync_cmd(ctx: click.Context, once: bool, as_json: bool, refresh_all: bool) -> None:
    """Pull new and changed LAPOR! reports, poll tracked ones, then push local actions."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.app.cycle import run_cycle
    from bridge.lapor.errors import LaporError

    with runtime(ctx) as rt:
        try:
            report = run_cycle(rt, refresh_all=refresh_all)
        except LaporError as exc:
            fail(f"LAPOR!: {exc}")
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        else:
            for line in report["lines"]:
                click.echo(line)
        if report.get("pull", {}).get("alarm"):
            # The run went on (push included), but a mostly quarantined pull is a failure.
            fail(report["pull"]["alarm"])


def commands() -> list[click.Command]:
    return [sync_cmd]
