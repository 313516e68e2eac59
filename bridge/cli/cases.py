"""``queue`` and ``case show``: the staff's queue and one case (the case actions are in
:mod:`bridge.cli.actions`, :mod:`bridge.cli.track` and :mod:`bridge.cli.documents`)."""

from __future__ import annotations

import json

import click

from bridge.cli.common import config_option, fail, runtime


@click.command("queue")
@click.option("--stage", help="Only cases in this stage.")
@click.option("--text", help="Search title, register number, location, category.")
@click.option("--overdue", is_flag=True, help="Only cases past their deadline.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@config_option
@click.pass_context
def queue_cmd(ctx: click.Context, stage: str | None, text: str | None, overdue: bool,
              limit: int, as_json: bool) -> None:
    """The staff's queue: register no., LAPOR! id, received, title, stage, deadline."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.render import print_queue
    from bridge.services.queue import QueueFilter, list_queue

    with runtime(ctx) as rt, rt.sessions() as session:
        if stage is not None and stage not in rt.workflow.stages:
            fail(f"unknown stage {stage!r}; stages: {', '.join(rt.workflow.stages)}", 2)
        rows = list_queue(session, QueueFilter(stage=stage, text=text, overdue=overdue,
                                               limit=limit))
        if as_json:
            click.echo(json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False))
        else:
            print_queue(rows, rt.settings.regency.timezone, stage_label=rt.workflow.stage_label)


@click.group("case")
def case_group() -> None:
    """Look at and act on one case."""


@case_group.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@config_option
@click.pass_context
def case_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A case's detail and history (REF: local id, register number or LAPOR! id)."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.render import print_case
    from bridge.services.queue import CaseNotFound, case_detail

    with runtime(ctx) as rt, rt.sessions() as session:
        try:
            detail = case_detail(session, ref)
        except CaseNotFound as exc:
            fail(str(exc))
        if as_json:
            click.echo(json.dumps(detail.as_json(), indent=2, ensure_ascii=False, default=str))
        else:
            print_case(detail, rt.settings.regency.timezone, rt.workflow.stage_label)


def commands() -> list[click.Command]:
    return [queue_cmd, case_group]
