"""The working-day calendar (hari kerja) that SOP deadlines are counted in.

A day is a working day unless it is a weekend day (Saturday and Sunday by default), a
national holiday of Indonesia according to the ``holidays`` package, or one of the
calendar's extra holidays (the *cuti bersama* decreed each year and any local holiday,
both from config).

Counting rule (``add_working_days``)
------------------------------------
Only the date counts, in the calendar's time zone (Asia/Jakarta unless configured); the
hour of receipt does not.

* A complaint received on a working day D with ``n`` working days is due at the end
  (23:59:59 local time) of the n-th working day after D. D itself is not counted, so a
  complaint received on Monday with 1 working day is due at the end of Tuesday.
* A complaint received on a non-working day is treated as received on the next working
  day W, and the n working days are counted after W: received on Saturday with 1 working
  day, it is due at the end of Tuesday (as if received on Monday).
* ``n = 0`` means the end of the (effective) day of receipt.

``working_days_between(a, b)`` is the inverse: the number of working days after the
effective day of ``a`` up to and including the day of ``b``, so that
``working_days_between(d, add_working_days(d, n)) == n`` for every ``d`` and ``n >= 0``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Re-exported: the calendar's date words live in bridge.locale, one place for all.
from bridge.locale import BULAN as BULAN
from bridge.locale import HARI as HARI
from bridge.locale import JAKARTA as JAKARTA
from bridge.locale import format_tanggal as format_tanggal
from bridge.locale import local_date as local_date
from bridge.locale import zone as _zone
from bridge.workflow.errors import WorkflowProfileError

#: Deadlines fall at the last second of their day, local time.
END_OF_DAY = time(23, 59, 59)

_WEEKDAY_NAMES = {
    "monday": 0, "tuesday": 1, "wednesday": 2, "thursday": 3, "friday": 4,
    "saturday": 5, "sunday": 6,
    "senin": 0, "selasa": 1, "rabu": 2, "kamis": 3, "jumat": 4, "sabtu": 5, "minggu": 6,
}
CUTI_BERSAMA = "Cuti bersama"


def end_of_day(day: date, tz: str | tzinfo = JAKARTA) -> datetime:
    """23:59:59 of ``day`` in ``tz``, as an aware datetime."""
    return datetime.combine(day, END_OF_DAY, tzinfo=_zone(tz))


class WorkingCalendar:
    """Working days of one regency. Thread-safe; holiday sets are built once per year.

    ``extra_holidays``: cuti bersama and local holidays from config (a mapping gives each a
    name, a plain iterable names them "Cuti bersama"). ``years``: years to build up front
    (others are built on first use). ``package_joint_holidays``: also take the cuti
    bersama that the ``holidays`` package knows (its "government" category) -- off by
    default, since config is the authority and the decree changes after the package ships.
    """

    def __init__(
        self,
        extra_holidays: Iterable[date] | Mapping[date, str] = (),
        years: Iterable[int] = (),
        *,
        tz: str | tzinfo = JAKARTA,
        weekend: Iterable[int] = (5, 6),
        package_joint_holidays: bool = False,
        country: str = "ID",
    ) -> None:
        self.tz = _zone(tz)
        self.weekend = frozenset(weekend)
        if not self.weekend <= set(range(7)):
            raise ValueError("weekend days are numbered 0 (Monday) to 6 (Sunday)")
        if len(self.weekend) == 7:
            raise ValueError("a week needs at least one working day")
        if isinstance(extra_holidays, Mapping):
            extra = {_as_date(d): str(name) for d, name in extra_holidays.items()}
        else:
            extra = {_as_date(d): CUTI_BERSAMA for d in extra_holidays}
        self._extra: dict[date, str] = extra
        self._country = country
        self._categories: tuple[str, ...] = (
            ("public", "government") if package_joint_holidays else ("public",)
        )
        self._years: dict[int, dict[date, str]] = {}
        self._lock = threading.Lock()
        for year in years:
            self._holidays_of(year)

    def __repr__(self) -> str:
        return (f"WorkingCalendar(tz={self.tz}, weekend={sorted(self.weekend)}, "
                f"extra_holidays={len(self._extra)}, categories={self._categories})")

    # -- holiday sets ------------------------------------------------------------------

    def _holidays_of(self, year: int) -> dict[date, str]:
        found = self._years.get(year)
        if found is not None:
            return found
        with self._lock:
            found = self._years.get(year)
            if found is None:
                # Lazy: the package costs 35-70 ms to import, and commands that never
                # count working days (queue, status, the staff page's list) need not pay.
                import holidays

                table = holidays.country_holidays(
                    self._country, years=year, categories=self._categories, language="id"
                )
                found = {d: str(name) for d, name in table.items() if d.year == year}
                for d, name in self._extra.items():
                    if d.year == year:
                        found.setdefault(d, name)
                self._years[year] = found
            return found

    def holidays_in(self, year: int) -> dict[date, str]:
        """Non-working weekdays and weekend holidays of ``year``: national plus extra."""
        return dict(self._holidays_of(year))

    def non_working_reason(self, day: date) -> str | None:
        """Why ``day`` is not a working day, in Bahasa Indonesia; ``None`` if it is one."""
        name = self._holidays_of(day.year).get(day)
        if name is not None:
            return name
        if day.weekday() in self.weekend:
            return HARI[day.weekday()]
        return None

    # -- the questions -----------------------------------------------------------------

    def local_date(self, moment: date | datetime) -> date:
        return local_date(moment, self.tz)

    def end_of_day(self, day: date) -> datetime:
        return end_of_day(day, self.tz)

    def is_working_day(self, day: date | datetime) -> bool:
        d = self.local_date(day)
        return d.weekday() not in self.weekend and d not in self._holidays_of(d.year)

    def next_working_day(self, day: date | datetime, *, inclusive: bool = True) -> date:
        """The first working day on (``inclusive``) or after ``day``."""
        d = self.local_date(day)
        if not inclusive:
            d += timedelta(days=1)
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    def effective_day(self, start: date | datetime) -> date:
        """The day counting starts from: the day of ``start`` or the next working day."""
        return self.next_working_day(start)

    def add_working_days(self, start: date | datetime, days: int) -> datetime:
        """End (23:59:59 local) of the ``days``-th working day after ``start``.

        See the module docstring for the counting rule.
        """
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        d = self.effective_day(start)
        one = timedelta(days=1)
        remaining = days
        while remaining:
            d += one
            if self.is_working_day(d):
                remaining -= 1
        return self.end_of_day(d)

    def add_calendar_days(self, start: date | datetime, days: int, *,
                          roll_to_working_day: bool = False) -> datetime:
        """End of the ``days``-th calendar day after the day of ``start``.

        With ``roll_to_working_day`` a due day that is not a working day moves to the next
        working day (as a "14 hari" deadline ending on a Sunday is read in practice).
        """
        if days < 0:
            raise ValueError(f"days must be >= 0, got {days}")
        d = self.local_date(start) + timedelta(days=days)
        if roll_to_working_day:
            d = self.next_working_day(d)
        return self.end_of_day(d)

    def working_days_between(self, start: date | datetime, end: date | datetime) -> int:
        """Working days after the effective day of ``start`` up to and including ``end``'s.

        Zero when ``end`` falls on or before that effective day; negative
        (``-working_days_between(end, start)``) when ``end`` is before ``start``.
        """
        a = self.local_date(start)
        b = self.local_date(end)
        if b < a:
            return -self.working_days_between(b, a)
        d = self.effective_day(a)
        one = timedelta(days=1)
        count = 0
        while d < b:
            d += one
            if self.is_working_day(d):
                count += 1
        return count

    def non_working_days_between(self, start: date | datetime,
                                 end: date | datetime) -> list[tuple[date, str]]:
        """Holidays (not plain weekends) from the day of ``start`` to the day of ``end``."""
        a = self.local_date(start)
        b = self.local_date(end)
        out: list[tuple[date, str]] = []
        d = a
        while d <= b:
            name = self._holidays_of(d.year).get(d)
            if name is not None:
                out.append((d, name))
            d += timedelta(days=1)
        return out


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        raise ValueError(f"expected a date, got a date and time {value.isoformat()}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        return date.fromisoformat(value)
    raise ValueError(f"expected a date (YYYY-MM-DD), got {value!r}")


def calendar_from_mapping(data: Mapping[str, Any], *, section: str = "calendar",
                          tz: str | tzinfo | None = None) -> WorkingCalendar:
    """Build a calendar from a config section such as::

        [calendar]
        cuti_bersama = [2026-02-16, 2026-03-18, 2026-03-20, 2026-03-23, 2026-03-24]
        local_holidays = { 2026-06-28 = "Hari Jadi Kabupaten" }   # or a list of dates
        weekend = ["saturday", "sunday"]      # default; Indonesian day names work too
        package_joint_holidays = false        # also use the holidays package's cuti bersama
        timezone = "Asia/Jakarta"             # default: the ``tz`` argument, else Jakarta

    Raises :class:`WorkflowProfileError` naming ``section.key`` on bad input.
    """
    allowed = {"cuti_bersama", "local_holidays", "weekend", "package_joint_holidays",
               "timezone"}
    for key in data:
        if key not in allowed:
            raise WorkflowProfileError(f"{section}.{key}",
                                       f"unknown key; expected one of {sorted(allowed)}")
    extra: dict[date, str] = {}

    def read_dates(key: str, default_name: str) -> None:
        value = data.get(key, [])
        items: Iterable[tuple[Any, Any]]
        if isinstance(value, Mapping):
            items = value.items()
        elif isinstance(value, list):
            items = ((v, default_name) for v in value)
        else:
            raise WorkflowProfileError(f"{section}.{key}", "expected a list of dates")
        for i, (raw, name) in enumerate(items):
            try:
                day = _as_date(raw)
            except ValueError as exc:
                where = f"{section}.{key}[{i}]" if isinstance(value, list) else \
                    f"{section}.{key}.{raw}"
                raise WorkflowProfileError(where, str(exc)) from None
            extra[day] = str(name)

    read_dates("cuti_bersama", CUTI_BERSAMA)
    read_dates("local_holidays", "Hari libur daerah")

    weekend_raw = data.get("weekend", ["saturday", "sunday"])
    if not isinstance(weekend_raw, list):
        raise WorkflowProfileError(f"{section}.weekend", "expected a list of day names")
    weekend: set[int] = set()
    for i, name in enumerate(weekend_raw):
        number = _WEEKDAY_NAMES.get(str(name).lower())
        if number is None:
            raise WorkflowProfileError(f"{section}.weekend[{i}]",
                                       f"unknown day {name!r}; expected e.g. 'saturday'")
        weekend.add(number)
    if len(weekend) == 7:
        raise WorkflowProfileError(f"{section}.weekend", "a week needs at least one "
                                   "working day")

    joint = data.get("package_joint_holidays", False)
    if not isinstance(joint, bool):
        raise WorkflowProfileError(f"{section}.package_joint_holidays",
                                   "expected true or false")
    zone: str | tzinfo = data.get("timezone") or tz or JAKARTA
    if isinstance(zone, str):
        try:
            zone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise WorkflowProfileError(f"{section}.timezone",
                                       f"unknown time zone {zone!r}") from None
    return WorkingCalendar(extra, tz=zone, weekend=weekend, package_joint_holidays=joint)
