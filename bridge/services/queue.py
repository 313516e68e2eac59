"""Read side of the queue: what staff see, with privacy applied."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from bridge.errors import BridgeError
from bridge.services.history import unescape
from bridge.store.models import Case, CaseEvent, utcnow

#: What every face shows in place of a hidden identity.
HIDDEN_ANONYMOUS = "(anonim)"
HIDDEN_SECRET = "(rahasia)"


class CaseNotFound(BridgeError, LookupError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"no case {ref!r} (give a local id, a register number, a LAPOR! "
                         "tracking id or lapor:<LAPOR! id>)")
        self.ref = ref


@dataclass(frozen=True)
class QueueFilter:
    stage: str | None = None
    text: str | None = None
    overdue: bool = False
    severity: str | None = None
    channel: str | None = None
    opd: str | None = None
    limit: int = 200
    offset: int = 0


@dataclass(frozen=True)
class QueueRow:
    id: int
    register_no: str
    lapor_id: int | None
    tracking_id: str | None
    channel: str
    title: str
    stage: str
    severity: str | None
    received_at: datetime
    deadline_at: datetime | None
    remote_status_name: str | None
    is_new: bool
    attention: str | None
    assigned_to: str | None
    forwarded_to: str | None

    def overdue(self, now: datetime | None = None) -> bool:
        return self.deadline_at is not None and self.deadline_at < (now or utcnow())

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("received_at", "deadline_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        return data


def reporter_view(case: Case, may_see_secret: bool = False) -> dict[str, Any] | str | None:
    """The complainant's identity as a face may show it: never for anonim, for rahasia only
    to those allowed."""
    if case.is_anonymous:
        return HIDDEN_ANONYMOUS
    if case.is_secret and not may_see_secret:
        return HIDDEN_SECRET
    return case.reporter


def queue_query(flt: QueueFilter, now: datetime | None = None) -> Select[Case]:
    stmt = select(Case)
    if flt.stage:
        stmt = stmt.where(Case.stage == flt.stage)
    if flt.severity:
        stmt = stmt.where(Case.severity == flt.severity)
    if flt.channel:
        stmt = stmt.where(Case.channel == flt.channel)
    if flt.opd:
        stmt = stmt.where(or_(Case.assigned_to == flt.opd, Case.forwarded_to == flt.opd))
    if flt.overdue:
        stmt = stmt.where(Case.deadline_at.is_not(None), Case.deadline_at < (now or utcnow()))
    if flt.text:
        # What staff type is text: % and _ are literal, not LIKE wildcards.
        typed = flt.text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        like = f"%{typed}%"

        stmt = stmt.where(
            or_(
                func.lower(Case.title).like(like, escape="\\"),
                func.lower(Case.register_no).like(like, escape="\\"),
                func.lower(Case.location).like(like, escape="\\"),
                func.lower(Case.category).like(like, escape="\\"),
                Case.tracking_id == flt.text,
            )
        )
    # Sorted by deadline (the most urgent first), then by arrival.
    stmt = stmt.order_by(
        Case.deadline_at.is_(None), Case.deadline_at, Case.received_at.desc(), Case.id.desc()
    )
    return stmt.limit(flt.limit).offset(flt.offset)


def list_queue(session: Session, flt: QueueFilter) -> list[QueueRow]:
    return [_row(c) for c in session.scalars(queue_query(flt))]


def _row(c: Case) -> QueueRow:
    return QueueRow(
        id=c.id,
        register_no=c.register_no,
        lapor_id=c.lapor_id,
        tracking_id=c.tracking_id,
        channel=c.channel,
        title=unescape(c.title),
        stage=c.stage,
        severity=c.severity,
        received_at=c.received_at,
        deadline_at=c.deadline_at,
        remote_status_name=c.remote_status_name,
        is_new=c.is_new,
        attention=c.attention,
        assigned_to=c.assigned_to,
        forwarded_to=c.forwarded_to,
    )


def mark_seen(session: Session, case_id: int) -> bool:
    """Clear a case's "new" mark (someone opened it). Not an action: no history entry and
    no version bump, so forms that others have open stay valid."""
    result = session.execute(
        update(Case).where(Case.id == case_id, Case.is_new.is_(True)).values(is_new=False)
    )
    return bool(getattr(result, "rowcount", 0))


def case_version(session: Session, case_id: int) -> int | None:
    """The case's version (its optimistic lock), or None if there is no such case."""
    return session.scalar(select(Case.version).where(Case.id == case_id))


def find_case(session: Session, ref: str | int) -> Case:
    """A case by register number, local id, LAPOR! tracking id, or ``lapor:<id>``.

    A bare number is a local id first (what the queue shows staff), then a tracking id
    (what lapor.go.id shows the public).
    """
    text = str(ref).strip()
    case: Case | None = None
    if text.startswith("lapor:") and text[6:].isdigit():
        case = session.scalars(select(Case).where(Case.lapor_id == int(text[6:]))).first()
    else:
        case = session.scalars(select(Case).where(Case.register_no == text)).first()
        if case is None and text.isdigit():
            case = session.get(Case, int(text)) or session.scalars(
                select(Case).where(Case.tracking_id == text)).first()
    if case is None:
        raise CaseNotFound(text)
    return case


@dataclass
class CaseDetail:
    case: QueueRow
    content: str
    category: str | None
    location: str | None
    reporter: dict[str, Any] | str | None
    is_anonymous: bool
    is_secret: bool
    attachments: list[dict[str, Any]]
    remote_status_code: str | None
    remote_disposition_name: str | None
    files_complete_at: datetime | None
    closed_at: datetime | None
    data: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["case"] = self.case.as_json()
        for key in ("files_complete_at", "closed_at"):
            if out[key] is not None:
                out[key] = out[key].isoformat()
        return out


def case_detail(session: Session, ref: str | int, may_see_secret: bool = False) -> CaseDetail:
    c = find_case(session, ref)
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == c.id).order_by(CaseEvent.id)
    ).all()
    return CaseDetail(
        case=_row(c),
        content=unescape(c.content),
        category=unescape(c.category) or None,
        location=unescape(c.location) or None,
        reporter=reporter_view(c, may_see_secret),
        is_anonymous=c.is_anonymous,
        is_secret=c.is_secret,
        attachments=list(c.attachments or []),
        remote_status_code=c.remote_status_code,
        remote_disposition_name=c.remote_disposition_name,
        files_complete_at=c.files_complete_at,
        closed_at=c.closed_at,
        data=dict(c.data or {}),
        history=[
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "side": e.side,
                "actor": e.actor,
                "kind": e.kind,
                "changes": _redact(e.changes, c, may_see_secret),
                "note": e.note,
            }
            for e in events
        ],
    )


def _redact(changes: dict[str, Any] | None, c: Case, may_see_secret: bool) -> dict[str, Any] | None:
    if not changes or "reporter" not in changes:
        return changes
    if c.is_anonymous or (c.is_secret and not may_see_secret):
        hidden = HIDDEN_ANONYMOUS if c.is_anonymous else HIDDEN_SECRET
        return {**changes, "reporter": [hidden, hidden]}
    return changes
