"""One store's sync state, read from the database: the last pull and push, the lag behind
LAPOR!, the outbox (pending, waiting, dead), quarantined items, plugin events waiting and
tracked cases.

Pure reading, no thresholds: the daemon's health report (:mod:`bridge.daemon.health`)
judges it for ``status`` and ``/metrics``; the staff page shows it per body to admins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.services.outbox import list_outbox
from bridge.store.models import PendingEvent, QuarantinedItem, SyncCursor, TrackedCase, utcnow
from bridge.sync.pull import INBOX
from bridge.sync.quarantine import AlarmState, alarm_state
from bridge.sync.streams import PUSH_STREAM
from bridge.sync.track import NO_INBOX_TEXT, inbox_unavailable


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def age(now: datetime, value: datetime | None) -> float | None:
    return None if value is None else max(0.0, (now - value).total_seconds())


@dataclass
class StreamState:
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """The latest outcome is an error (newer than the last success)."""
        if self.last_error is None or self.last_error_at is None:
            return False
        return self.last_success_at is None or self.last_error_at > self.last_success_at

    def as_json(self, now: datetime) -> dict[str, Any]:
        return {"last_success_at": iso(self.last_success_at),
                "age_seconds": age(now, self.last_success_at),
                "failing": self.failing,
                "last_error": self.last_error if self.failing else None,
                "last_error_at": iso(self.last_error_at)}


@dataclass
class StoreState:
    """What one store says of its sync, as of ``checked_at``."""

    checked_at: datetime
    pull: StreamState
    push: StreamState
    cursor_at: datetime | None
    outbox: dict[str, int]
    oldest_pending_at: datetime | None
    quarantined: int
    pending_events: int
    #: Items of a pull that quarantined a whole page or too large a share, still waiting.
    quarantine_alarm: AlarmState | None = None
    #: Set while the inbox is unavailable (the bridge tracks known cases by id only).
    inbox_note: str | None = None
    #: Tracked cases: open and closed.
    tracked: dict[str, int] = field(default_factory=dict)

    @property
    def lag_seconds(self) -> float | None:
        return age(self.checked_at, self.cursor_at)


def _stream(session: Session, name: str) -> tuple[StreamState, SyncCursor | None]:
    row = session.get(SyncCursor, name)
    if row is None:
        return StreamState(), None
    return StreamState(row.last_success_at, row.last_error, row.last_error_at), row


def read_store_state(session: Session, now: datetime | None = None) -> StoreState:
    """The store's sync state now (``now`` defaults to the wall clock)."""
    now = now or utcnow()
    pull, inbox_row = _stream(session, INBOX)
    push, _ = _stream(session, PUSH_STREAM)
    cursor_at = inbox_row.updated_since if inbox_row is not None else None
    pending = list_outbox(session, ("pending", "waiting", "dead"), limit=10_000_000)
    outbox = {"pending": 0, "waiting": 0, "dead": 0}
    oldest: datetime | None = None
    for view in pending:
        outbox[view.state] += 1
        if view.state == "pending" and (oldest is None or view.created_at < oldest):
            oldest = view.created_at
    quarantined = int(session.scalar(
        select(func.count()).select_from(QuarantinedItem)
        .where(QuarantinedItem.resolved_at.is_(None))) or 0)
    events = int(session.scalar(select(func.count()).select_from(PendingEvent)) or 0)
    no_inbox = inbox_unavailable(session)
    tracked = {("closed" if closed else "open"): int(n) for closed, n in session.execute(
        select(TrackedCase.closed, func.count()).group_by(TrackedCase.closed))}
    return StoreState(now, pull, push, cursor_at, outbox, oldest, quarantined, events,
                      quarantine_alarm=alarm_state(session),
                      inbox_note=None if no_inbox is None
                      else f"{NO_INBOX_TEXT} ({no_inbox.last_error})",
                      tracked=tracked)


@dataclass(frozen=True)
class BodyFigures:
    """One body's row of the staff page's summary (``Ringkasan``)."""

    code: str
    name: str
    state: StoreState

    @property
    def dead_letters(self) -> int:
        return self.state.outbox.get("dead", 0)

    @property
    def outbox_depth(self) -> int:
        """Rows still to go to LAPOR! (pending and waiting; the dead ones are counted apart)."""
        return self.state.outbox.get("pending", 0) + self.state.outbox.get("waiting", 0)


def bodies_figures(bodies: Sequence[tuple[str, str, sessionmaker[Session]]],
                   now: datetime | None = None) -> list[BodyFigures]:
    """Each body's (code, name, its store's sessions) state, all as of one moment."""
    now = now or utcnow()
    out: list[BodyFigures] = []
    for code, name, sessions in bodies:
        with sessions() as session:
            out.append(BodyFigures(code, name, read_store_state(session, now)))
    return out


__all__ = ["BodyFigures", "StoreState", "StreamState", "bodies_figures", "read_store_state"]
