"""The local store: SQLAlchemy 2.x models. Schema changes go through Alembic migrations.

Times are stored as UTC (see :class:`UTCDateTime`); they are shown in Asia/Jakarta by the
faces, never converted here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store; times must be timezone-aware")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value).replace(tzinfo=None)

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite stores text. One step instead of two (process_bind_param, then the
        # DATETIME type's %-format): isoformat writes the very same text, always with six
        # digits (so stored times still sort as text), at a fifth of the cost; a first
        # pull writes seven per report. Most of them repeat (the page's write time, a
        # shared deadline): each distinct instant is written once and kept, up to 4,096,
        # for as long as SQLAlchemy keeps the compiled statement (dict reads and writes
        # are safe between threads under the GIL).
        memo: dict[datetime, str] = {}

        def process(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.fold:
                # Equal to its fold-0 twin in a zone's repeated hour, a different instant.
                return _sqlite_text(value)
            text = memo.get(value)
            if text is None:
                if len(memo) >= 4096:
                    memo.clear()
                text = memo[value] = _sqlite_text(value)
            return text

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


def _sqlite_text(value: datetime) -> str:
    """How SQLite stores a time: UTC, naive, always six digits of microseconds."""
    return _as_utc(value).isoformat(" ", "microseconds")[:26]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Case(Base):
    """A complaint in the regency's queue, whether it came from LAPOR! or another channel.

    Columns that mirror LAPOR! are unbounded text: a value LAPOR! sends must never stop
    the sync because a column is too short (PostgreSQL enforces lengths; SQLite does not).
    """

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    register_no: Mapped[str] = mapped_column(String(64), unique=True)
    channel: Mapped[str] = mapped_column(String(32), default="lapor")
    lapor_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    tracking_id: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(String(500))
    content: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    is_anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    is_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The complainant as given (name, phone, e-mail, address, KTP); hidden by the faces
    #: according to the privacy flags.
    reporter: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    remote_status_code: Mapped[str | None] = mapped_column(Text)
    remote_status_name: Mapped[str | None] = mapped_column(Text)
    remote_disposition_id: Mapped[int | None] = mapped_column(BigInteger)
    remote_disposition_name: Mapped[str | None] = mapped_column(Text)
    remote_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stage: Mapped[str] = mapped_column(String(64), default="received")
    severity: Mapped[str | None] = mapped_column(String(32))
    assigned_to: Mapped[str | None] = mapped_column(String(200))
    forwarded_to: Mapped[str | None] = mapped_column(String(200))
    #: When the report reached our body (LAPOR!'s disposition to us, the first time the
    #: bridge saw it where LAPOR! tells none, or the date of receipt of a letter/call).
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: When the citizen filed it on LAPOR! (created_at); None for a case entered here.
    filed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files_complete_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set when staff have not opened the case since it arrived or changed on LAPOR!.
    is_new: Mapped[bool] = mapped_column(Boolean, default=True)
    #: Why a person must look (a plugin failed, an escalation, ...); None when all is well.
    attention: Mapped[str | None] = mapped_column(Text)
    #: Extra per-profile data (approval numbers, handler sets, ...).
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    #: Optimistic concurrency: services refuse an action prepared against an older version.
    version: Mapped[int] = mapped_column(Integer, default=1)

    events: Mapped[list[CaseEvent]] = relationship(
        back_populates="case", order_by="CaseEvent.id", lazy="raise_on_sql"
    )

    __table_args__ = (
        Index("ix_cases_stage", "stage"),
        Index("ix_cases_deadline", "deadline_at"),
        Index("ix_cases_received", "received_at"),
    )


class CaseEvent(Base):
    """Append-only history of a case: what changed, from which side, by whom, when."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: "remote" (LAPOR!), "local" (staff), "system" (the bridge, a plugin).
    side: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    #: {field: [old, new]} for changes; free data for actions.
    changes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="events")


class SyncCursor(Base):
    """How far a pull stream has read: the (updated_at, id) of the last item committed."""

    __tablename__ = "sync_cursors"

    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    updated_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_id: Mapped[int | None] = mapped_column(BigInteger)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class QuarantinedItem(Base):
    """A remote item the bridge could not accept: kept whole, with the reason.

    A row is never deleted: ``quarantine retry`` resolves it (``outcome`` "accepted",
    ``case_id``) or keeps it with the new reason, the earlier ones in ``history``.
    """

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String(64))
    remote_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The same payload rejected again (a re-read) counts here instead of a new row.
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seen: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    #: Rejected in a run that raised the quarantine alarm; status is unhealthy while an
    #: unresolved row has it.
    alarm: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    retries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: "accepted" (a retry brought it in) or "dismissed" (a person set it aside).
    outcome: Mapped[str | None] = mapped_column(String(16))
    case_id: Mapped[int | None] = mapped_column(Integer)
    #: Earlier reasons, oldest first: [{"at": ISO time, "reason": text}].
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_quarantine_open", "resolved_at", "stream", "remote_id"),)


class RegisterCounter(Base):
    """The buku register: the last number given per regency and year."""

    __tablename__ = "register_counters"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, default=0)


class OutboxRow(Base):
    """Something LAPOR! must learn, delivered in order per case, exactly once in effect."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"))
    #: "followup", "forward", "create", ...
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    #: pending → done | dead. A pending row behind a dead one of its case is "waiting".
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Set when a POST's outcome is unknown (timeout): read back before posting again.
    uncertain: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_outbox_status", "status", "case_id", "id"),
        Index("ix_outbox_case", "case_id", "id"),
    )


class PendingEvent(Base):
    """Lifecycle events for plugins, written in the same transaction as the change.

    Dispatched after commit, at least once, in order; removed once every plugin ran.
    """

    __tablename__ = "pending_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


class Lease(Base):
    """Who is the active syncer of this deployment, until when (database clock)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RemoteInstitution(Base):
    """LAPOR!'s institutions (refreshed daily): where a "bukan wewenang" case can go."""

    __tablename__ = "remote_institutions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class RemoteTemplate(Base):
    __tablename__ = "remote_templates"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(300))
    content: Mapped[str | None] = mapped_column(Text)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class User(Base):
    """A staff account of the web page."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Part of every session's tag: raising it ends all of the account's sessions
    #: (sign-out, disable, enable, password or role change).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The account's roles, first the primary one (shown beside the name).
    role_rows: Mapped[list[UserRole]] = relationship(
        order_by="UserRole.position", cascade="all, delete-orphan", lazy="selectin")

    def __init__(self, *, role: str | None = None, roles: list[str] | None = None,
                 **fields: Any) -> None:
        super().__init__(**fields)
        if roles or role:
            self.set_roles(roles or [role or ""])

    @property
    def roles(self) -> list[str]:
        return [r.role for r in self.role_rows]

    @property
    def role(self) -> str:
        """The primary role (the first), shown beside the name."""
        return self.role_rows[0].role if self.role_rows else ""

    def set_roles(self, roles: list[str]) -> None:
        """Make ``roles`` (in order, no repeats) the account's roles, keeping the rows of
        roles it holds already (a row removed and added back in one flush would clash)."""
        have = {r.role: r for r in self.role_rows}
        rows = []
        for i, role in enumerate(roles):
            row = have.pop(role, None) or UserRole(role=role)
            row.position = i
            rows.append(row)
        self.role_rows = rows


class UserRole(Base):
    """One role an account holds (an acting official, Plt, holds two or more)."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class UserBodyRole(Base):
    """On a Pemda: one role an account holds in one body (the deployment's own database
    keeps the accounts; each body's store keeps its cases)."""

    __tablename__ = "user_body_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    #: The body's code as written in ``[[bodies]]``.
    body: Mapped[str] = mapped_column(String(20), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


__all__ = [
    "Base",
    "Case",
    "CaseEvent",
    "InternalArrival",
    "InternalForward",
    "Lease",
    "OutboxRow",
    "OutgoingLetter",
    "PendingEvent",
    "QuarantinedItem",
    "RegisterCounter",
    "RemoteInstitution",
    "RemoteTemplate",
    "StoredFile",
    "SyncCursor",
    "TrackedCase",
    "User",
    "UserBodyRole",
    "UserRole",
    "utcnow",
]


class StoredFile(Base):
    """An attachment given with a staff action, kept until LAPOR! has it (and after)."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DaemonStatus(Base):
    """One row per running daemon: its role, heartbeat and the next run of each job."""

    __tablename__ = "daemon_status"

    instance: Mapped[str] = mapped_column(String(200), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    pid: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_runs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Worker(Base):
    """One running ``lapor-bridge run`` process, seen by the others through its heartbeat
    (database clock): the bodies of a deployment are spread over the live ones."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TrackedCase(Base):
    """A LAPOR! report followed by id: its detail and follow-ups are polled on a schedule
    (see ``bridge.sync.track``), whether or not an inbox lists it."""

    __tablename__ = "tracked_cases"

    lapor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"),
                                         unique=True)
    #: How it came to be tracked: "adopted" (staff), "created" (pushed by the bridge),
    #: "inbox" (a pulled case, tracked while the inbox is unavailable).
    origin: Mapped[str] = mapped_column(String(16))
    tracked_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Latest change on LAPOR! known: its own timestamps, or when the bridge saw one.
    last_change_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: When the bridge last found something new in a poll.
    last_change_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    next_due_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Polls failed in a row (the schedule backs off), and the latest reason.
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Closed on LAPOR! (a closing status) or locally: polled seldom.
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    #: Ids of the follow-ups already recorded in the case history (strings).
    seen_followups: Mapped[list[str] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_tracked_due", "closed", "next_due_at"),)


class OutgoingLetter(Base):
    """The agenda surat keluar: every number an outgoing-letter register has given.

    A number is written here in the transaction that takes it from the register's counter,
    and the unique keys refuse a second letter with the same number or sequence, whatever
    path (a register, a number typed by hand) tries to give it.
    """

    __tablename__ = "outgoing_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    register: Mapped[str] = mapped_column(String(64))
    year: Mapped[int] = mapped_column(Integer)
    #: None for a number typed by hand (not taken from the counter).
    seq: Mapped[int | None] = mapped_column(Integer)
    number: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    #: What the number belongs to ("case:12:surat_jawaban", "recap:2026-10"): asking again
    #: for the same document gives the same number.
    subject: Mapped[str] = mapped_column(String(200), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id", ondelete="SET NULL"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    issued_by: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ux_outgoing_letters_seq", "register", "year", "seq", unique=True),
    )


class InternalForward(Base):
    """A forward to another body of the same deployment, on the sender's side.

    Written in the forward's own transaction, so a crash loses nothing: a step of the
    sync cycle delivers it into the receiver's store (``pending`` -> ``delivered``), then
    follows the receiver's case until it ends (``finished``) or comes back
    (``returned``). ``dead`` when the receiver refuses it for good.
    """

    __tablename__ = "internal_forwards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    #: The receiving body's code.
    to_body: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    #: What the receiver is given: tembusan, note, actor, sender's institution, ...
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: The receiver's case (its local id and register number there).
    remote_case_id: Mapped[int | None] = mapped_column(Integer)
    remote_register_no: Mapped[str | None] = mapped_column(String(64))
    #: The receiver's case as last seen (stage, label, answers); kept when it ends.
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_internal_forwards_status", "status", "id"),)


class InternalArrival(Base):
    """A case that came from another body of the deployment, on the receiver's side.

    The unique key (sender, sender's forward id) makes a delivery idempotent: delivering
    the same forward twice finds this row and makes no second case.
    """

    __tablename__ = "internal_arrivals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_body: Mapped[str] = mapped_column(String(40))
    forward_id: Mapped[int] = mapped_column(Integer)
    from_case_id: Mapped[int] = mapped_column(Integer)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: Set when the receiver gave it back ("not ours"), with its note.
    returned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    return_note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ux_internal_arrivals_forward", "from_body", "forward_id", unique=True),
    )
