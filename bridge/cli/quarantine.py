"""``lapor-bridge quarantine`` (list), ``quarantine retry`` and ``quarantine dismiss``.

Attached to the main command group by :mod:`bridge.cli`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

import click

from bridge.cli.common import config_option, fail, runtime


def _chosen(ids: Sequence[int], all_: bool) -> list[int] | None:
    if all_ and ids:
        raise click.UsageError("give either --all or IDs, not both")
    if not all_ and not ids:
        raise click.UsageError("give the IDs to act on (see `lapor-bridge quarantine`) or --all")
    return None if all_ else list(ids)


@click.group("quarantine", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--resolved", is_flag=True,
              help="Include resolved items (brought in by a retry, or dismissed).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=0),
              help="Items shown per reason (0: all).")
@config_option
@click.pass_context
def quarantine_group(ctx: click.Context, as_json: bool, resolved: bool, limit: int) -> None:
    """Items LAPOR! sent that the bridge could not accept, grouped by reason.

    Reasons that differ only in the quoted value are one group; the group with the newest
    item comes first. Correct the [lapor] config, then `quarantine retry`.
    """
    if ctx.invoked_subcommand is not None:
        return
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.locale import local_time
    from bridge.sync.quarantine import alarm_state, list_groups

    with runtime(ctx) as rt, rt.sessions() as session:
        groups = list_groups(session, resolved=resolved)
        alarm = alarm_state(session)
        tz = rt.settings.regency.timezone
    shown = limit or None
    if as_json:
        click.echo(json.dumps({
            "items": sum(g.count for g in groups),
            "alarm": alarm.as_json() if alarm else None,
            "groups": [g.as_json(shown) for g in groups],
        }, indent=2, ensure_ascii=False))
        return
    total = sum(g.count for g in groups)
    state = "item(s)" if resolved else "waiting item(s)"
    click.echo(f"quarantine: {total} {state} in {len(groups)} group(s)")
    if alarm:
        click.echo(f"ALARM: {alarm.line()}")
    for g in groups:
        click.echo("")
        click.echo(f"{g.count} x {g.reason}")
        if g.items[0].reason != g.reason:
            click.echo(f"    e.g. {g.items[0].reason}")
        for item in g.items[:shown]:
            marks = [f"seen {item.seen}x"] if item.seen > 1 else []
            if item.retries:
                marks.append(f"retried {item.retries}x")
            if item.alarm and item.outcome is None:
                marks.append("alarm")
            if item.outcome:
                marks.append(item.outcome + (f" as case {item.case_id}" if item.case_id else ""))
            click.echo(f"  #{item.id:<7} {item.stream} {item.remote_id or '(no id)':<12} "
                       f"{local_time(item.last_seen_at, tz)}"
                       + (f"  ({', '.join(marks)})" if marks else ""))
        if shown is not None and g.count > shown:
            click.echo(f"  ... and {g.count - shown} more (--limit 0 shows all)")


@quarantine_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Every waiting item.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@config_option
@click.pass_context
def retry_cmd(ctx: click.Context, ids: tuple[int, ...], all_: bool, as_json: bool) -> None:
    """Parse stored payloads again (after the [lapor] config was corrected).

    Items that now pass are stored exactly as the pull stores them and marked accepted;
    the others stay with their new reason. Exit 0 when every item passed, 1 when some
    still fail.
    """
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.app.quarantine_cycle import retry_quarantined
    from bridge.sync.quarantine import QuarantineError

    chosen = _chosen(ids, all_)
    with runtime(ctx) as rt:
        try:
            result, stored = retry_quarantined(rt, chosen)
        except QuarantineError as exc:
            fail(str(exc))
    if as_json:
        click.echo(json.dumps(dict(result.as_json(), stored={
            "created": stored.created, "updated": stored.updated,
            "unchanged": stored.unchanged, "stale": stored.stale}), indent=2,
            ensure_ascii=False))
    else:
        click.echo(result.summary())
        if result.accepted:
            click.echo(f"  stored: {stored.created} new, {stored.updated} changed, "
                       f"{stored.unchanged} unchanged, {stored.stale} older than the case")
        for reason, (count, example) in result.failing.items():
            click.echo(f"  still failing: {count} x {example if count == 1 else reason}")
        for line in result.skipped:
            click.echo(f"  skipped {line}")
    sys.exit(1 if result.still_failing else 0)


@quarantine_group.command("dismiss")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "all_", is_flag=True, help="Every waiting item.")
@config_option
@click.pass_context
def dismiss_cmd(ctx: click.Context, ids: tuple[int, ...], all_: bool) -> None:
    """Set items aside that no config will make valid (kept, marked dismissed)."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.sync.quarantine import QuarantineError, dismiss

    chosen = _chosen(ids, all_)
    with runtime(ctx) as rt:
        try:
            done = dismiss(rt.sessions, chosen)
        except QuarantineError as exc:
            fail(str(exc))
    click.echo(f"dismissed {done} quarantined item(s)")


def commands() -> list[click.Command]:
    return [quarantine_group]


__all__ = ["commands", "quarantine_group"]
