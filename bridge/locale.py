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


def human_span(seconds: float) -> str:
    """A duration as operators read it: seconds, minutes, hours or days."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"

