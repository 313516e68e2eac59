"""The outbox as staff and operators see it: pending, waiting (behind a dead letter), dead."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.errors import BridgeError
from bridge.store.models import Case, CaseEvent, OutboxRow, utcnow


@dataclass(frozen=True)
class OutboxView:
    id: int
    case_id: int
    register_no: str
    kind: str
    state: str  # pending | waiting | dead | done
    attempts: int
    next_attempt_at: datetime | None
    reason: str | None
    created_at: datetime
    delivered_at: datetime | None
    remote_id: str | None

    def as_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("next_attempt_at", "created_at", "delivered_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


class NoSuchRow(BridgeError, LookupError):
    pass


def list_outbox(session: Session, states: tuple[str, ...] = ("pending", "waiting", "dead"),
                case_id: int | None = None, limit: int = 500) -> list[OutboxView]:
    first_dead = dict(
        session.execute(
            select(OutboxRow.case_id, func.min(OutboxRow.id))
            .where(OutboxRow.status == "dead")
            .group_by(OutboxRow.case_id)
        ).all()
    )
    stmt = select(OutboxRow, Case.register_no).join(Case, Case.id == OutboxRow.case_id)
    wanted_status = {"pending" if s == "waiting" else s for s in states}
    stmt = stmt.where(OutboxRow.status.in_(wanted_status))
    if case_id is not None:
        stmt = stmt.where(OutboxRow.case_id == case_id)
    out: list[OutboxView] = []
    for row, register_no in session.execute(stmt.order_by(OutboxRow.id).limit(limit)):
        state = row.status
        reason = row.last_error
        dead_before = first_dead.get(row.case_id)
        if row.status == "pending" and dead_before is not None and dead_before < row.id:
            state = "waiting"
            reason = f"menunggu baris {dead_before} yang gagal (dead letter) pada kasus ini"
        if state not in states:
            continue
        out.append(OutboxView(row.id, row.case_id, register_no, row.kind, state, row.attempts,
                              row.next_attempt_at, reason, row.created_at, row.delivered_at,
                              row.remote_id))
    return out


def dead_letters(session: Session) -> int:
    """How many rows LAPOR! refused for good (waiting for a person), counted in SQL."""
    return int(session.scalar(select(func.count()).select_from(OutboxRow)
                              .where(OutboxRow.status == "dead")) or 0)


def counts(session: Session) -> dict[str, int]:
    views = list_outbox(session, limit=1_000_000)
    result = {"pending": 0, "waiting": 0, "dead": 0}
    for v in views:
        result[v.state] += 1
    return result


def retry(session: Session, row_id: int, actor: str) -> OutboxRow:
    """Put a dead letter back in line (after its cause was fixed)."""
    row = session.get(OutboxRow, row_id)
    if row is None:
        raise NoSuchRow(f"no outbox row {row_id}")
    if row.status != "dead":
        raise NoSuchRow(f"outbox row {row_id} is {row.status}, not dead")
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = None
    session.add(CaseEvent(case_id=row.case_id, at=utcnow(), side="local", actor=actor,
                          kind="outbox_retry", changes={"outbox_id": [None, row.id]},
                          note=row.last_error))
    case = session.get(Case, row.case_id)
    if case is not None and case.attention and case.attention.startswith("Pengiriman"):
        case.attention = None
    return row


def retry_all_dead(session: Session, actor: str) -> list[int]:
    ids = list(session.scalars(select(OutboxRow.id).where(OutboxRow.status == "dead")))
    for row_id in ids:
        retry(session, row_id, actor)
    return ids
