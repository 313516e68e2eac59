"""The date of receipt of a letter, a box item or a phone call, as staff give it.

Staff type the day the letter was received (``2026-11-02``) or the day and the time
(``2026-11-02T09:30``), in the regency's time zone; the deadline clock starts there, not
when the case was typed in. A date in the future, or before the day the unit began taking
complaints here (``[regency] started_on``), is refused with one line saying why.
"""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from bridge.errors import BridgeError


class BadReceipt(BridgeError, ValueError):
    """A date of receipt that cannot be accepted; the message says why."""


def parse_received_at(text: str, tz: str) -> datetime:
    """``DATE`` or ``DATE THH:MM`` in zone ``tz``, as an aware datetime. A bare date
    stands for the start of that day."""
    value = text.strip()
    try:
        if "T" in value or " " in value:
            moment = datetime.fromisoformat(value)
        else:
            moment = datetime.combine(date.fromisoformat(value), time())
    except ValueError:
        raise BadReceipt(f"date of receipt {text!r} is not YYYY-MM-DD or "
                         "YYYY-MM-DDTHH:MM") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment


def check_received_at(received: datetime, now: datetime, tz: str,
                      started_on: date | None) -> datetime:
    """``received`` if it is a possible date of receipt, else :class:`BadReceipt`."""
    if received.tzinfo is None:
        raise BadReceipt("date of receipt has no time zone")
    zone = ZoneInfo(tz)
    if received > now:
        raise BadReceipt(f"date of receipt {received.astimezone(zone):%Y-%m-%d %H:%M} is in "
                         "the future")
    if started_on is not None and received.astimezone(zone).date() < started_on:
        raise BadReceipt(f"date of receipt {received.astimezone(zone):%Y-%m-%d} is before "
                         f"the regency's start date {started_on.isoformat()} "
                         "(regency.started_on)")
    return received


__all__ = ["BadReceipt", "check_received_at", "parse_received_at"]
