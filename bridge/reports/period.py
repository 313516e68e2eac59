"""Recap periods: a month (``2026-10``), a semester (``2026-S1``), a year (``2026``) or
days (``2026-08-17``), as dates in the regency's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bridge.errors import BridgeError
from bridge.workflow.calendar import BULAN, WorkingCalendar, format_tanggal

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_SEMESTER = re.compile(r"^(\d{4})-[Ss]([12])$")
_YEAR = re.compile(r"^(\d{4})$")
_DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


class PeriodError(BridgeError, ValueError):
    """A period that cannot be read; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class Period:
    kind: str  # daily | monthly | semester | yearly
    start: date
    end: date  # inclusive
    code: str  # used in file names: 2026-10, 2026-S1, 2026, 2026-08-17
    label: str  # Bahasa Indonesia: "Oktober 2026", "Semester I Tahun 2026"

    def bounds(self, tz: str | ZoneInfo) -> tuple[datetime, datetime]:
        """``[start 00:00, day after end 00:00)`` in ``tz`` as aware datetimes."""
        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        return (datetime.combine(self.start, time.min, zone),
                datetime.combine(self.end + timedelta(days=1), time.min, zone))


def month(year: int, number: int) -> Period:
    if not 1 <= number <= 12:
        raise PeriodError(f"month {number} does not exist; expected 01 to 12")
    start = date(year, number, 1)
    nxt = date(year + (number == 12), number % 12 + 1, 1)
    return Period("monthly", start, nxt - timedelta(days=1), f"{year}-{number:02d}",
                  f"{BULAN[number - 1]} {year}")


def semester(year: int, number: int) -> Period:
    if number not in (1, 2):
        raise PeriodError(f"semester {number} does not exist; expected S1 or S2")
    if number == 1:
        return Period("semester", date(year, 1, 1), date(year, 6, 30), f"{year}-S1",
                      f"Semester I (Januari–Juni) Tahun {year}")
    return Period("semester", date(year, 7, 1), date(year, 12, 31), f"{year}-S2",
                  f"Semester II (Juli–Desember) Tahun {year}")


def year_period(year: int) -> Period:
    return Period("yearly", date(year, 1, 1), date(year, 12, 31), str(year), f"Tahun {year}")


def days(start: date, end: date) -> Period:
    if end < start:
        raise PeriodError(f"period ends ({end}) before it starts ({start})")
    if start == end:
        return Period("daily", start, end, start.isoformat(), format_tanggal(start))
    return Period("daily", start, end, f"{start.isoformat()}_{end.isoformat()}",
                  f"{format_tanggal(start)} s.d. {format_tanggal(end)}")


def parse_period(text: str) -> Period:
    """``2026-10`` (month), ``2026-S1``/``2026-S2`` (semester), ``2026`` (year) or
    ``2026-08-17`` (one day). Raises :class:`PeriodError` naming what was expected."""
    value = text.strip()
    try:
        if m := _MONTH.match(value):
            return month(int(m[1]), int(m[2]))
        if m := _SEMESTER.match(value):
            return semester(int(m[1]), int(m[2]))
        if m := _YEAR.match(value):
            return year_period(int(m[1]))
        if m := _DAY.match(value):
            day = date(int(m[1]), int(m[2]), int(m[3]))
            return days(day, day)
    except ValueError as exc:
        if isinstance(exc, PeriodError):
            raise
        raise PeriodError(f"{value!r}: {exc}") from None
    raise PeriodError(f"unknown period {value!r}; expected YYYY-MM (month), YYYY-S1 or "
                      "YYYY-S2 (semester), YYYY (year) or YYYY-MM-DD (day)")


def previous_period(kind: str, now: datetime, tz: str | ZoneInfo,
                    calendar: WorkingCalendar | None = None) -> Period | None:
    """The last complete period of ``kind`` before ``now`` (what a scheduled run reports).

    ``daily`` covers the days from the previous working day up to yesterday, so that a
    Monday run covers Friday to Sunday and every day is reported exactly once; on a day
    that is not a working day there is nothing to run (``None``).
    """
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    today = now.astimezone(zone).date()
    if kind == "monthly":
        first = today.replace(day=1)
        last = first - timedelta(days=1)
        return month(last.year, last.month)
    if kind == "semester":
        return semester(today.year - 1, 2) if today.month <= 6 else semester(today.year, 1)
    if kind == "yearly":
        return year_period(today.year - 1)
    if kind == "daily":
        if calendar is None:
            raise ValueError("a daily period needs the working-day calendar")
        if not calendar.is_working_day(today):
            return None
        previous = today - timedelta(days=1)
        while not calendar.is_working_day(previous):
            previous -= timedelta(days=1)
        return days(previous, today - timedelta(days=1))
    raise PeriodError(f"unknown period kind {kind!r}; expected daily, monthly, semester or "
                      "yearly")


__all__ = [
    "Period",
    "PeriodError",
    "days",
    "month",
    "parse_period",
    "previous_period",
    "semester",
    "year_period",
]
