"""Time and words as Indonesian staff read them, in one place.

Times are stored in UTC and shown in the regency's zone (``Asia/Jakarta`` unless the
config says otherwise). Here: the zone, its abbreviation (WIB, WITA, WIT), the day and
month names, the date formats, and the labels of the complaint channels.
"""

from __future__ import annotations

from datetime import date, datetime, tzinfo
from zoneinfo import ZoneInfo

JAKARTA = ZoneInfo("Asia/Jakarta")
#: The abbreviation staff read after a time.
ZONE_ABBREV = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA",
               "Asia/Jayapura": "WIT"}

HARI = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
BULAN = (
    "Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
    "September", "Oktober", "November", "Desember",
)

#: How a complaint came in, as the queue, the recap and the staff page name it.
CHANNEL_LABELS: dict[str, str] = {
    "lapor": "SP4N-LAPOR!", "surat": "Surat", "kotak": "Kotak pengaduan",
    "telepon": "Telepon", "langsung": "Datang langsung", "email": "E-mail", "sms": "SMS",
    "fax": "Faksimile", "website": "Situs web",
}


def zone(tz: str | tzinfo) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def local_date(moment: date | datetime, tz: str | tzinfo = JAKARTA) -> date:
    """The calendar date of ``moment`` in ``tz`` (a ``date`` is returned unchanged).

    Naive datetimes are refused: a deadline computed from one would silently shift by the
    server's offset.
    """
    if isinstance(moment, datetime):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime {moment.isoformat()}: times must be "
                             "timezone-aware")
        return moment.astimezone(zone(tz)).date()
    if isinstance(moment, date):
        return moment
    raise TypeError(f"expected a date or datetime, got {type(moment).__name__}")


def format_tanggal(day: date | datetime, tz: str | tzinfo = JAKARTA, *,
                   weekday: bool = True) -> str:
    """A date as staff read it: ``"Senin, 17 Agustus 2026"`` (or without the weekday)."""
    d = local_date(day, tz)
    text = f"{d.day} {BULAN[d.month - 1]} {d.year}"
    return f"{HARI[d.weekday()]}, {text}" if weekday else text


def local_time(dt: datetime | None, tz: str = "Asia/Jakarta") -> str:
    """``17-08-2026 09:30 WIB``; ``-`` for none."""
    if dt is None:
        return "-"
    return f"{dt.astimezone(ZoneInfo(tz)):%d-%m-%Y %H:%M} {ZONE_ABBREV.get(tz, tz)}"


def short_date(dt: datetime | None, tz: str = "Asia/Jakarta") -> str:
    """``17-08-2026`` (the local date of ``dt``); ``-`` for none."""
    if dt is None:
        return "-"
    return f"{dt.astimezone(ZoneInfo(tz)):%d-%m-%Y}"


#: The units of :func:`human_span`: for operators (logs, status) and for staff (the page).
SPAN_UNITS_EN = ("s", "min", "h", "days")
SPAN_UNITS_ID = ("detik", "menit", "jam", "hari")


def human_span(seconds: float, units: tuple[str, str, str, str] = SPAN_UNITS_EN) -> str:
    """A duration in seconds, minutes, hours or days: with one decimal for hours and days
    in the operators' English units, whole numbers (rounded down) in the staff's."""
    whole = units is SPAN_UNITS_ID
    for limit, size, unit in ((120, 1, units[0]), (7200, 60, units[1]),
                              (172800, 3600, units[2]), (float("inf"), 86400, units[3])):
        if seconds < limit:
            value = seconds / size
            if whole:
                return f"{int(value)} {unit}"
            return f"{value:.1f} {unit}" if size >= 3600 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")

