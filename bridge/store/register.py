"""The buku register: numbers given to cases, gap-free and unique per scope."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bridge.store.models import RegisterCounter


def allocate(session: Session, scope: str, count: int = 1) -> int:
    """Reserve ``count`` consecutive numbers in ``scope``; returns the first.

    Runs in the caller's transaction, so numbers given to a page that rolls back are
    given again: the register has no gaps.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        insert(RegisterCounter).values(scope=scope, last_seq=0).on_conflict_do_nothing()
    )
    last = session.execute(
        update(RegisterCounter)
        .where(RegisterCounter.scope == scope)
        .values(last_seq=RegisterCounter.last_seq + count)
        .returning(RegisterCounter.last_seq)
    ).scalar_one()
    return int(last) - count + 1


def current(session: Session, scope: str) -> int:
    value = session.execute(
        select(RegisterCounter.last_seq).where(RegisterCounter.scope == scope)
    ).scalar_one_or_none()
    return int(value or 0)


class RegisterFormat:
    """Renders register numbers from a ``str.format`` pattern (the regency's own format).

    Fields: ``code``, ``year``, ``month``, ``seq``, ``channel``. The counter restarts each
    year when the pattern contains ``{year}``, as paper registers do.
    """

    def __init__(self, pattern: str, code: str, timezone: str = "Asia/Jakarta") -> None:
        self.pattern = pattern
        self.code = code
        self.tz = ZoneInfo(timezone)
        self.per_year = "{year" in pattern

    def scope(self, at: datetime) -> str:
        return f"{self.code}/{at.astimezone(self.tz).year}" if self.per_year else self.code

    def render(self, seq: int, at: datetime, channel: str) -> str:
        local = at.astimezone(self.tz)
        return self.pattern.format(
            code=self.code, year=local.year, month=local.month, seq=seq, channel=channel
        )
