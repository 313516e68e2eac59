"""How times are shown: stored in UTC, shown in the regency's zone (Asia/Jakarta)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

JAKARTA = ZoneInfo("Asia/Jakarta")
_ABBREV = {"Asia/Jakarta": "WIB", "Asia/Pontianak": "WIB", "Asia/Makassar": "WITA",
           "Asia/Jayapura": "WIT"}


def local_time(dt: datetime | None, tz: str = "Asia/Jakarta") -> str:
    if dt is None:
        return "-"
    zone = ZoneInfo(tz)
    return f"{dt.astimezone(zone):%d-%m-%Y %H:%M} {_ABBREV.get(tz, tz)}"


def local_date(dt: datetime | None, tz: str = "Asia/Jakarta") -> str:
    if dt is None:
        return "-"
    return f"{dt.astimezone(ZoneInfo(tz)):%d-%m-%Y}"
