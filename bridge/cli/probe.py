"""``lapor-bridge probe``: check a LAPOR! server's answers against the API profile."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bridge.cli.common import config_option, load
from bridge.config import ConfigError


@click.command("probe")
@click.option("--case", "case_id", type=click.IntRange(min=1), default=None,
              help="Also read this LAPOR! complaint's detail and follow-ups.")
@click.option("--save", "save", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write each answer here, identities and secrets removed.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per endpoint.")
@config_option
@click.pass_context
def probe(ctx: click.Context, case_id: int | None, save: Path | None, as_json: bool) -> None:
    """Call each read endpoint once and say whether its shape matches the API profile.

    Never writes to LAPOR!. Exit 0 when every call matched, 1 when some did not, 2 on a
    bad config."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.lapor.client import LaporClient
    from bridge.lapor.probe import Prober, format_result

    settings = load(ctx)
    try:
        client = LaporClient(settings.lapor, settings.secrets)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    with client:
        click.echo(f"probing {settings.lapor.base_url} with profile "
                   f"{client.profile.name}", err=True)
        results = Prober(client, save).run(case_id)
    if as_json:
        for r in results:
            click.echo(json.dumps(r.as_json(), ensure_ascii=False))
    else:
        for r in results:
            click.echo(format_result(r))
        if save is not None:
            click.echo(f"answers saved in {save} (identities and secrets removed)")
    sys.exit(0 if all(r.matched for r in results) else 1)


def commands() -> list[click.Command]:
    return [probe]
