"""Recap reports (rekapitulasi): figures of a period as HTML (inline SVG charts) and CSV.

- :func:`bridge.reports.recap.compute_recap`: the figures, from the local store.
- :func:`bridge.reports.render.write_recap`: the HTML page and CSV files.
- :func:`bridge.reports.jobs.run_recap`: what the daemon's cron jobs call; writes the
  last complete period and notifies the ``[reports]`` recipients.
- ``lapor-bridge report --period 2026-10 --out DIR`` (:mod:`bridge.reports.cli`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from bridge.reports.period import Period, PeriodError, parse_period, previous_period
from bridge.reports.settings import ReportsSettings, recap_schedules, reports_settings


def web_figures(session: Any, start: date, end: date, settings: Any, workflow: Any,
                now: datetime | None = None) -> Any:
    """The staff page's recap figures (``bridge.web.recap.Recap``) from the official
    computation, so that the page and the recap files never disagree. ``None`` when the
    page's types are not available (the page then counts by itself)."""
    from datetime import UTC

    from bridge.reports.period import days
    from bridge.reports.recap import compute_recap
    from bridge.services.deadlines import CaseDeadlines
    from bridge.workflow.calendar import calendar_from_mapping

    try:
        from bridge.web import recap as page
    except ImportError:
        return None
    calendar = calendar_from_mapping(settings.section("calendar"),
                                     tz=settings.regency.timezone)
    period = days(start, end)
    recap = compute_recap(session, settings, CaseDeadlines(workflow, calendar), period,
                          as_of=now or datetime.now(UTC))
    try:
        groups = [page.Group(g.key, g.title, tuple(page.Bar(b.key, b.label, b.count)
                                                   for b in g.bars))
                  for g in recap.groups if g.key != "status"]
        return page.Recap(start, end, recap.received, recap.finished, recap.open_overdue,
                          groups, source="rekapitulasi resmi")
    except (AttributeError, TypeError):
        return None


__all__ = [
    "Period",
    "PeriodError",
    "ReportsSettings",
    "parse_period",
    "previous_period",
    "recap_schedules",
    "reports_settings",
    "web_figures",
]
