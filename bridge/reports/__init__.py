"""Recap reports (rekapitulasi): figures of a period as HTML (inline SVG charts) and CSV.

- :func:`bridge.reports.recap.compute_recap`: the figures, from the local store; the
  staff page shows the same model (:func:`bridge.reports.recap.recap_of_days`).
- :func:`bridge.reports.render.write_recap`: the HTML page and CSV files.
- :func:`bridge.reports.jobs.run_recap`: what the daemon's cron jobs call; writes the
  last complete period and notifies the ``[reports]`` recipients.
- ``lapor-bridge report --period 2026-10 --out DIR`` (:mod:`bridge.cli.reports`).
"""

from __future__ import annotations

from bridge.reports.period import Period, PeriodError, parse_period, previous_period
from bridge.reports.settings import ReportsSettings, recap_schedules, reports_settings

__all__ = [
    "Period",
    "PeriodError",
    "ReportsSettings",
    "parse_period",
    "previous_period",
    "recap_schedules",
    "reports_settings",
]
