"""When a LAPOR! report reached our body: the moment every "received" clock starts.

LAPOR!'s ``created_at`` is when the citizen filed the report; it may reach us weeks later,
when LAPOR!'s admin verifies it and disposes it to us. The detail's status logs tell when
(the log whose note matches ``[lapor] received_log_note``, by default any note speaking of
a *disposisi*; the last such log, as a report disposed away and back reached us last at
its return). A listing that carries no logs leaves the time unknown: the first time the
bridge saw the report stands in for it until tracking reads the detail. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bridge.lapor.models import RemoteComplaint, parse_remote_time

#: Default ``[lapor] received_log_note``.
DISPOSITION_NOTE = r"(?i)disposisi"


def status_logs(item: RemoteComplaint) -> list[Mapping[str, Any]]:
    """The status logs a detail carried (kept by the wire model as an extra field)."""
    logs = (item.model_extra or {}).get("status_logs")
    if not isinstance(logs, list):
        return []
    return [log for log in logs if isinstance(log, Mapping)]


def disposed_at(logs: Iterable[Mapping[str, Any]], note: str = DISPOSITION_NOTE
                ) -> datetime | None:
    """The time of the last log whose note matches ``note`` (None when none does, or
    when its time cannot be read)."""
    pattern = re.compile(note)
    found: datetime | None = None
    for log in logs:
        text = log.get("note")
        if not isinstance(text, str) or not pattern.search(text):
            continue
        try:
            found = parse_remote_time(log.get("timestamp"))
        except (TypeError, ValueError):
            continue
    return found


def reached_at(item: RemoteComplaint, first_seen: datetime,
               note: str = DISPOSITION_NOTE) -> tuple[datetime, bool]:
    """When ``item`` reached us and whether LAPOR! said so (False: ``first_seen`` stands
    in). Never before the filing time: a log older than ``created_at`` is clock skew."""
    at = disposed_at(status_logs(item), note)
    if at is None:
        return first_seen, False
    return max(at, item.created_at), True


__all__ = ["DISPOSITION_NOTE", "disposed_at", "reached_at", "status_logs"]
