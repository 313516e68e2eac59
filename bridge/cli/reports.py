"""``lapor-bridge report``: write a recap (rekapitulasi) for a period as HTML and CSV."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from bridge.cli.common import config_option, deployment, fail, runtime
from bridge.config import ConfigError
from bridge.documents import DocumentError

if TYPE_CHECKING:
    from pathlib import Path

    from bridge.reports.period import Period
    from bridge.reports.recap import Recap


@click.command("report")
@click.option("--period", "period_text", required=True, metavar="PERIOD",
              help="2026-10 (month), 2026-S1 / 2026-S2 (semester), 2026 (year) or "
                   "2026-08-17 (day).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory to write into. Default: [reports] out_dir.")
@click.option("--notify", is_flag=True,
              help="Also tell the [reports] recipients of the period's kind.")
def report_cmd(period_text: str, out_dir: str | None, notify: bool) -> None:
    """Write the recap of PERIOD: received; by channel, category, class and OPD;
    follow-ups; finished on time or late; still open."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.filemodes import file_mode
    from bridge.reports.jobs import build_recap, recap_notification
    from bridge.reports.pdf import write_recap_pdf
    from bridge.reports.render import write_recap
    from bridge.reports.settings import output_dir, reports_settings

    ctx = click.get_current_context()
    period = _period(period_text)
    with runtime(ctx) as rt:
        try:
            cfg = reports_settings(rt.settings)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        now = datetime.now(UTC)
        recap = build_recap(rt, period, now=now, cfg=cfg)
        target = out_dir or str(output_dir(rt.settings, cfg))
        try:
            paths = write_recap(recap, target, rt.settings.regency.code,
                                file_mode(rt.settings))
            paths.append(write_recap_pdf(rt, recap, target, cfg.recipients_for(period.kind),
                                         now=now, mode=file_mode(rt.settings)))
        except OSError as exc:
            fail(f"cannot write the recap into {target}: {exc}")
        except (DocumentError, ConfigError) as exc:
            fail(f"recap PDF: {exc}")
        _written(paths, f"{recap.period.label}: {_figures(recap)}")
        if notify:
            recipients = cfg.recipients_for(period.kind)
            if not recipients:
                fail(f"no [[reports.recipients]] for {period.kind} recaps")
            failures = rt.plugins.notify(recap_notification(
                rt, recap, recipients, paths, cfg.note_for(period.kind)))
            if failures:
                fail("; ".join(str(f) for f in failures))


@click.command("recap")
@click.option("--pemda", is_flag=True,
              help="Sum every body of the deployment (a Pemda's [[bodies]]) into one recap.")
@click.option("--period", "period_text", required=True, metavar="PERIOD",
              help="2026-10 (month), 2026-S1 / 2026-S2 (semester), 2026 (year) or "
                   "2026-08-17 (day).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory to write into. Default: [reports] out_dir.")
@click.pass_context
def recap_cmd(ctx: click.Context, pemda: bool, period_text: str, out_dir: str | None) -> None:
    """Write a recap of PERIOD. With --pemda: the whole Pemda, every body's recap summed
    (HTML, CSV of the figures and of the complaints, and one row per body in -opd.csv).
    Without: one body's recap, as `report` writes it."""
    if not pemda:
        ctx.invoke(report_cmd, period_text=period_text, out_dir=out_dir, notify=False)
        return
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.accounts_db import deployment_database
    from bridge.filemodes import file_mode
    from bridge.reports.pdf import write_pemda_recap_pdf
    from bridge.reports.pemda import build_pemda_recap, write_pemda_recap
    from bridge.reports.settings import output_dir, reports_settings

    period = _period(period_text)
    with deployment(ctx) as dep:
        settings = dep.settings
        now = datetime.now(UTC)
        try:
            cfg = reports_settings(settings)
            target = out_dir or str(output_dir(settings, cfg))
            total, parts = build_pemda_recap(dep, period, now=now)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        try:
            paths = write_pemda_recap(total, parts, target, settings.regency.code,
                                      file_mode(settings))
            # The cover letter is the Pemda's own: numbered in its own database.
            with deployment_database(settings) as sessions:
                paths.append(write_pemda_recap_pdf(
                    dep, total, parts, sessions, target, cfg.recipients_for(period.kind),
                    now=now, mode=file_mode(settings)))
        except OSError as exc:
            fail(f"cannot write the recap into {target}: {exc}")
        except (DocumentError, ConfigError) as exc:
            fail(f"recap PDF: {exc}")
    _written(paths, f"{total.period.label}: {len(parts)} perangkat daerah, {_figures(total)}")


def _figures(recap: Recap) -> str:
    return (f"{recap.received} pengaduan diterima, {recap.finished} selesai "
            f"({recap.finished_late} terlambat), {recap.still_open} masih dalam proses.")


def _written(paths: list[Path], line: str) -> None:
    for path in paths:
        click.echo(str(path))
    click.echo(line, err=True)


def _period(text: str) -> Period:
    """The period ``--period`` names, or exit 2 with why not."""
    from bridge.reports.period import PeriodError, parse_period

    try:
        return parse_period(text)
    except PeriodError as exc:
        click.echo(f"error: --period: {exc}", err=True)
        sys.exit(2)


def commands() -> list[click.Command]:
    return [config_option(report_cmd), config_option(recap_cmd)]


__all__ = ["commands", "recap_cmd", "report_cmd"]
