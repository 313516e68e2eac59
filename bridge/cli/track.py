"""``lapor-bridge case track LAPOR_ID...``: adopt reports seen in the LAPOR! admin panel."""

from __future__ import annotations

import json
import sys

import click

from bridge.cli.common import config_option, fail, runtime


def add_track_command(case_group: click.Group) -> None:

    @case_group.command("track")
    @click.argument("lapor_ids", nargs=-1, required=True, metavar="LAPOR_ID...")
    @click.option("--json", "as_json", is_flag=True, help="Print the outcomes as JSON.")
    @config_option
    @click.pass_context
    def case_track(ctx: click.Context, lapor_ids: tuple[str, ...], as_json: bool) -> None:
        """Adopt LAPOR! reports by id: read each one's detail now, make its case (as the
        pull would) and follow it from then on through its detail and follow-ups.

        An id LAPOR! does not know is named, and nothing is stored for it. Exit 1 when
        any id could not be adopted."""
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from bridge.app.cycle import adopt
        from bridge.lapor.errors import LaporError
        from bridge.sync.track import Adopted

        ids: list[int] = []
        for text in lapor_ids:
            if not text.isdigit() or int(text) < 1:
                fail(f"{text!r} is not a LAPOR! id (a positive number); nothing was stored", 2)
            ids.append(int(text))
        with runtime(ctx) as rt:
            try:
                outcomes = adopt(rt, ids)
            except LaporError as exc:
                fail(f"LAPOR!: {exc}")
        failed = 0
        out: list[dict[str, object]] = []
        for lapor_id, outcome in zip(ids, outcomes, strict=True):
            if isinstance(outcome, Adopted):
                out.append({"lapor_id": lapor_id, "case_id": outcome.case_id,
                            "register_no": outcome.register_no, "created": outcome.created,
                            "already_tracked": outcome.already})
                if not as_json:
                    what = ("already tracked" if outcome.already else
                            "new case, tracked" if outcome.created else "existing case, tracked")
                    click.echo(f"{lapor_id}: {outcome.register_no} ({what})")
            else:
                failed += 1
                out.append({"lapor_id": lapor_id, "error": str(outcome)})
                if not as_json:
                    click.echo(f"error: {outcome}", err=True)
        if as_json:
            click.echo(json.dumps(out, ensure_ascii=False, indent=2))
        sys.exit(1 if failed else 0)
