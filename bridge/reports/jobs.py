"""Scheduled recaps: what the daemon's cron jobs call (``run_recap(rt, "monthly")``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2

from bridge.domain import Notification
from bridge.filemodes import file_mode
from bridge.locale import local_time
from bridge.reports.pdf import write_recap_pdf
from bridge.reports.period import Period, previous_period
from bridge.reports.recap import Recap, compute_recap
from bridge.reports.render import TEMPLATES, write_recap
from bridge.reports.settings import (
    PERIOD_KINDS,
    Recipient,
    ReportsSettings,
    output_dir,
    reports_settings,
)
from bridge.runtime import Runtime

log = logging.getLogger("bridge.reports")

NOTIFICATION_KIND = "recap"


def build_recap(rt: Runtime, period: Period, *, now: datetime | None = None,
                cfg: ReportsSettings | None = None) -> Recap:
    """The recap of ``period`` as the store stands at ``now`` (default: the clock)."""
    cfg = cfg or reports_settings(rt.settings)
    as_of = now or datetime.now(UTC)
    with rt.sessions() as session:
        return compute_recap(session, rt.settings, rt.deadlines, period, as_of=as_of,
                             office=cfg.office, title=cfg.title)


def recap_notification(rt: Runtime, recap: Recap, recipients: Sequence[Recipient],
                       paths: Sequence[Path], note: str | None = None) -> Notification:
    """The message that tells the recipients a recap is ready (figures only, no names),
    with the recap's PDF attached."""
    env = jinja2.Environment(loader=TEMPLATES,
                             undefined=jinja2.StrictUndefined, autoescape=False)
    text = env.get_template("notifikasi.txt.j2").render(
        regency=rt.settings.regency.name, recap=recap, note=note,
        salutations=", ".join(r.salutation for r in recipients),
        as_of=local_time(recap.as_of, recap.timezone),
        attached=[p.name for p in paths if p.suffix == ".pdf"],
        kept=[p.name for p in paths if p.suffix != ".pdf"])
    subject, _, body = text.strip().partition("\n")
    return Notification(
        kind=NOTIFICATION_KIND,
        recipients=[r.address for r in recipients],
        subject=" ".join(subject.split()),
        body=body.strip() + "\n",
        data={"period": recap.period.code, "period_kind": recap.period.kind,
              "received": recap.received, "finished_on_time": recap.finished_on_time,
              "finished_late": recap.finished_late, "still_open": recap.still_open,
              "files": [p.name for p in paths]},
        # The PDF (cover letter, figures, follow-ups) travels with the message; the HTML
        # and CSV stay on the bridge's machine for whoever works with the figures.
        attachments=[str(p) for p in paths if p.suffix == ".pdf"],
    )


def run_recap(rt: Runtime, period_kind: str, *, now: datetime | None = None) -> list[Path]:
    """Write the recap of the last complete ``period_kind`` period and notify its recipients.

    ``period_kind``: ``daily``, ``monthly``, ``semester`` or ``yearly``. Returns the files
    written (none for a daily recap on a day that is not a working day). Recipients are
    the ``[[reports.recipients]]`` whose ``periods`` include the kind; they are told
    through every notification channel plugin. A channel that fails is logged (the host
    records it); the files are written regardless.
    """
    if period_kind not in PERIOD_KINDS:
        raise ValueError(f"unknown recap kind {period_kind!r}; expected one of "
                         f"{', '.join(PERIOD_KINDS)}")
    cfg = reports_settings(rt.settings)
    now = now or datetime.now(UTC)
    tz = ZoneInfo(rt.settings.regency.timezone)
    period = previous_period(period_kind, now, tz, rt.calendar)
    if period is None:
        log.info("recap %s: %s is not a working day; nothing to report", period_kind,
                 now.astimezone(tz).date().isoformat())
        return []
    recap = build_recap(rt, period, now=now, cfg=cfg)
    paths = write_recap(recap, output_dir(rt.settings, cfg), rt.settings.regency.code,
                        file_mode(rt.settings))
    paths.append(write_recap_pdf(rt, recap, paths[0].parent, cfg.recipients_for(period_kind),
                                 now=now, mode=file_mode(rt.settings)))
    log.info("recap %s %s: %d complaints, written to %s", period_kind, period.code,
             recap.received, paths[0].parent)
    recipients = cfg.recipients_for(period_kind)
    if recipients:
        message = recap_notification(rt, recap, recipients, paths, cfg.note_for(period_kind))
        failures = rt.plugins.notify(message)
        if not rt.plugins.implementers("notify"):
            log.warning("recap %s %s: no notification channel plugin is loaded; recipients "
                        "were not told", period_kind, period.code)
        for failure in failures:
            log.error("recap %s %s: %s", period_kind, period.code, failure)
    return paths


__all__ = ["NOTIFICATION_KIND", "build_recap", "recap_notification", "run_recap"]
