"""Push: deliver the outbox to LAPOR!, in order per case, exactly once in effect.

Rows of one case are delivered strictly in id order: a follow-up never overtakes the
forward before it. Different cases are delivered concurrently, all through the client's
shared request budget. No database transaction is held open across an HTTP call.

Exactly once, although LAPOR! takes no idempotency key: every follow-up carries a marker
of its outbox row id, invisible to readers (zero-width characters at the end of the text,
see :func:`marker`). Just before a POST the row is committed as ``uncertain`` (in flight);
it stays so unless the POST is known to have succeeded. Before an uncertain row is
posted again -- after a timeout, a 5xx, a dropped connection, or a crash of this process
mid-POST -- the case's follow-ups are read back from LAPOR!: if the marker is there, the
row is done.

A row that LAPOR! refuses (a 4xx other than 401/403/429), or that fails too many times,
becomes a dead letter with LAPOR!'s own reason; the rows after it in its case wait
(visibly, with why) until it is retried.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.lapor.errors import AuthError, LaporError, OutcomeUnknown, TransientError
from bridge.lapor.models import (
    ComplaintDetail,
    FollowupRequest,
    ForwardRequest,
    NewComplaintRequest,
    Page,
    RemoteComplaint,
    RemoteFollowup,
)
from bridge.runs import Deliveries
from bridge.store.models import Case, CaseEvent, OutboxRow, StoredFile, UTCDateTime, utcnow
from bridge.sync.track import enrol

log = logging.getLogger("bridge.sync.push")

PENDING, DONE, DEAD = "pending", "done", "dead"

FileTuple = tuple[str, bytes, str]


class PushTarget(Protocol):
    """What the push needs of the LAPOR! client."""

    def add_followup(self, req: FollowupRequest, attachments: Any = ()) -> int | None: ...
    def followup_listing(self, complaint_id: int) -> Page[RemoteFollowup]: ...
    def forward(self, req: ForwardRequest) -> None: ...
    def complaint(self, complaint_id: int) -> ComplaintDetail: ...
    def create_complaint(self, req: NewComplaintRequest) -> int: ...
    def upload_attachments(self, files: Any) -> list[str]: ...
    def inbox_page(self, updated_since: datetime | None, page: int = 1,
                   page_size: int | None = None) -> Page[RemoteComplaint]: ...


EventSink = Callable[[Session, str, int, dict[str, Any]], None]

# The push's statements, built once: building a statement costs more than running it.
_OUTBOX = cast(Table, OutboxRow.__table__)
_EVENTS = cast(Table, CaseEvent.__table__)
#: A case's first undelivered row (pending, or the dead letter it waits behind).
_HEAD_ROW = (select(OutboxRow)
             .where(OutboxRow.case_id == bindparam("case_id"),
                    OutboxRow.status.in_((PENDING, DEAD)))
             .order_by(OutboxRow.id).limit(1))
#: What a delivery needs of its case (not the whole case: that decodes its raw payload).
_CASE_SNAPSHOT = select(Case.lapor_id, Case.title, Case.content, Case.channel,
                        Case.is_anonymous, Case.is_secret,
                        Case.received_at).where(Case.id == bindparam("case_id"))
_MARK_IN_FLIGHT = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id"))
                   .values(uncertain=True))
_DONE = (update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row_id"))
         .values(status=DONE, remote_id=bindparam("p_remote_id"),
                 delivered_at=bindparam("p_at", type_=UTCDateTime()), uncertain=False,
                 attempts=_OUTBOX.c.attempts + 1, last_error=bindparam("p_note")))
_CREATED = (update(cast(Table, Case.__table__))
            .where(Case.id == bindparam("case_id"), Case.lapor_id.is_(None))
            .values(lapor_id=bindparam("p_lapor_id")))


@dataclass
class _Head:
    """A claimed row and what its delivery needs of the case (None: the case is gone)."""

    row: OutboxRow
    case: dict[str, Any] | None


@dataclass
class _Delivered:
    """A row LAPOR! has (posted, or found by read-back), to be recorded as done."""

    row: OutboxRow
    remote_id: str | None
    note: str | None
    case_exists: bool


def _will_post(row: OutboxRow, case: dict[str, Any] | None) -> bool:
    """Whether delivering ``row`` posts to LAPOR! (as ``Pusher._deliver`` dispatches)."""
    return case is not None and (
        row.kind == "create"
        or (row.kind in ("followup", "forward") and case["lapor_id"] is not None))


#: The invisible marker: a frame of WORD JOINER + ZERO WIDTH JOINER around the row id in
#: binary, written with ZERO WIDTH SPACE (0) and ZERO WIDTH NON-JOINER (1). None of these
#: is whitespace (a server's trim keeps them) and none is drawn, so the citizen reads the
#: follow-up exactly as staff wrote it. The frame's characters never occur among the
#: digits, so the marker of row 1 is never found inside the marker of row 10.
_ZW_OPEN, _ZW_CLOSE = "\u2060\u200d", "\u200d\u2060"
_ZW_DIGITS = ("\u200b", "\u200c")
_ZW_BITS = str.maketrans({"\u200b": "0", "\u200c": "1"})
_ZW_RE = re.compile("\u2060\u200d([\u200b\u200c]+)\u200d\u2060")
_VISIBLE_RE = re.compile(r"\[lb:(\d+)\]")
_VISIBLE_GAP_RE = re.compile(r"(?:\n\n)?\[lb:\d+\]")
MarkerStyle = Literal["invisible", "visible"]


def marker(row_id: int, style: MarkerStyle = "invisible") -> str:
    """The read-back marker of outbox row ``row_id``.

    ``visible`` is the older ``[lb:<id>]`` text, kept for a LAPOR! that drops zero-width
    characters (``lapor.followup_marker_style``); read-back recognises both styles, so
    rows posted before a change of style are still found.
    """
    if row_id < 0:
        raise ValueError("outbox row ids are not negative")
    if style == "visible":
        return f"[lb:{row_id}]"
    return _ZW_OPEN + "".join(_ZW_DIGITS[int(b)] for b in format(row_id, "b")) + _ZW_CLOSE


def with_marker(content: str, row_id: int, enabled: bool = True,
                style: MarkerStyle = "invisible") -> str:
    if not enabled:
        return content
    if style == "visible":
        return f"{content}\n\n{marker(row_id, style)}"
    # Straight after the text: no blank line that the citizen would see either.
    return content + marker(row_id, style)


def has_marker(text: str, row_id: int) -> bool:
    """Whether ``text`` carries the marker of ``row_id`` in either style."""
    return marker(row_id) in text or marker(row_id, "visible") in text


def markers_in(text: str) -> list[int]:
    """Every outbox row id marked in ``text`` (either style), in order of appearance."""
    found = [(m.start(), int(m.group(1).translate(_ZW_BITS), 2))
             for m in _ZW_RE.finditer(text)]
    found += [(m.start(), int(m.group(1))) for m in _VISIBLE_RE.finditer(text)]
    return [row_id for _, row_id in sorted(found)]


def strip_markers(text: str) -> str:
    """``text`` as the citizen reads it: without any marker (and the visible one's gap)."""
    return _VISIBLE_GAP_RE.sub("", _ZW_RE.sub("", text))


@dataclass
class PushResult(Deliveries):
    confirmed_by_readback: int = 0
    requests: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"push: {self.delivered} delivered ({self.confirmed_by_readback} confirmed by "
                f"read-back), {self.retried} to retry, {self.dead} dead in {self.seconds:.2f}s")

class _Abort(Exception):
    """Stop the whole run: the problem is not the row's (bad credentials)."""


# Compared and shown as the object it is: its fields are live objects (sessions, a client).
@dataclass(eq=False, repr=False)
class Pusher:
    target: PushTarget
    sessions: sessionmaker[Session]
    settings: Settings
    _: KW_ONLY
    event_sink: EventSink | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utcnow
    rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _aborted: str | None = field(default=None, init=False, repr=False)
    #: Rows whose POST was sent in this run (a 4xx answer to it means "not applied").
    _posting: set[int] = field(default_factory=set, init=False, repr=False)

    # -- the run ---------------------------------------------------------------------

    def run(self, limit_cases: int | None = None) -> PushResult:
        started = time.perf_counter()
        result = PushResult()
        cases = self.due_cases(limit_cases)
        workers = max(1, min(self.settings.outbox.concurrency, len(cases)))
        if cases:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
                for fut in [pool.submit(self._drain_case, cid, result) for cid in cases]:
                    fut.result()
        result.seconds = time.perf_counter() - started
        if self._aborted:
            result.errors.append(self._aborted)
        log.info(result.summary())
        return result

    def due_cases(self, limit: int | None = None) -> list[int]:
        """Cases whose first undelivered row is pending and due (not behind a dead one)."""
        now = self.clock()
        with self.sessions() as session:
            heads = (
                select(OutboxRow.case_id, func.min(OutboxRow.id).label("head"))
                .where(OutboxRow.status.in_((PENDING, DEAD)))
                .group_by(OutboxRow.case_id)
                .subquery()
            )
            stmt = (
                select(OutboxRow.case_id)
                .join(heads, OutboxRow.id == heads.c.head)
                .where(OutboxRow.status == PENDING)
                .where((OutboxRow.next_attempt_at.is_(None)) | (OutboxRow.next_attempt_at <= now))
                .order_by(OutboxRow.id)
            )
            if limit:
                stmt = stmt.limit(limit)
            return list(session.scalars(stmt))

    def _drain_case(self, case_id: int, result: PushResult) -> None:
        # Each row's outcome is recorded in the same transaction that claims the next row
        # of the case: one write per follow-up instead of three sessions.
        delivered: _Delivered | None = None
        while True:
            go_on = not self.stop.is_set() and self._aborted is None
            head = self._claim(case_id, delivered, result, go_on)
            delivered = None
            if head is None:
                return
            try:
                delivered = self._deliver(head, result)
            except _Abort as exc:
                with self._lock:
                    self._aborted = str(exc)
                return
            except Exception as exc:  # a bug or a database fault: keep the row, log loudly
                log.exception("push of outbox row %s failed unexpectedly", head.row.id)
                self._retry_later(head.row, f"{type(exc).__name__}: {exc}", None, result)
                return
            if delivered is None:
                return

    def _claim(self, case_id: int, delivered: _Delivered | None, result: PushResult,
               go_on: bool) -> _Head | None:
        """In one transaction: record the delivery of the case's previous row, then take
        the case's next row if it is due, with what its delivery needs of the case, and
        commit it as in flight if it is going to be posted."""
        if delivered is None and not go_on:
            return None
        now = self.clock()
        head: _Head | None = None
        recorded = False
        with self.sessions() as session, session.begin():
            if delivered is not None:
                recorded = self._record_delivery(session, delivered, now)
            row = session.scalars(_HEAD_ROW, {"case_id": case_id}).first() if go_on else None
            if row is not None and row.status == PENDING and (
                    row.next_attempt_at is None or row.next_attempt_at <= now):
                session.expunge(row)
                found = session.execute(_CASE_SNAPSHOT, {"case_id": row.case_id}
                                        ).mappings().first()
                case = dict(found) if found is not None else None
                # Committed in flight here, before its POST: if the process dies after
                # LAPOR! applied the POST and before the row is recorded done, the next
                # attempt reads back first instead of posting a second time. A row already
                # uncertain is read back before any POST and needs no new mark; a row that
                # will not be posted (its case gone, no LAPOR! id) gets none.
                if not row.uncertain and _will_post(row, case):
                    session.execute(_MARK_IN_FLIGHT, {"row_id": row.id})
                head = _Head(row, case)
        if recorded:
            with self._lock:
                result.delivered += 1
        return head

    # -- one row ---------------------------------------------------------------------

    def _deliver(self, head: _Head, result: PushResult) -> _Delivered | None:
        """Deliver one row; what was delivered (to be recorded), or None when the row was
        left to retry or made a dead letter (the case then waits)."""
        row, case = head.row, head.case
        if case is None:  # the case was deleted: nothing left to tell LAPOR!
            return _Delivered(row, None, note="case no longer exists", case_exists=False)
        lapor_id = case["lapor_id"]
        files: list[FileTuple] = []
        if row.payload.get("file_ids"):
            with self.sessions() as session:
                files = self._files(session, row.payload["file_ids"])
        try:
            if row.kind == "create":
                remote_id, confirmed = self._create(head, case, files)
            elif lapor_id is None:
                self._dead(row, "the case is not on LAPOR! (no LAPOR! id)", result)
                return None
            elif row.kind == "followup":
                remote_id, confirmed = self._followup(head, lapor_id, files)
            elif row.kind == "forward":
                remote_id, confirmed = self._forward(head, lapor_id)
            else:
                self._dead(row, f"unknown outbox row kind {row.kind!r}", result)
                return None
        except AuthError as exc:
            raise _Abort(f"LAPOR! refused our credentials: {exc}") from exc
        except OutcomeUnknown as exc:
            self._retry_later(row, f"outcome unknown: {exc}", exc.retry_after, result,
                              uncertain=True)
            return None
        except TransientError as exc:
            self._retry_later(row, str(exc), exc.retry_after, result)
            return None
        except LaporError as exc:
            # LAPOR! refused this row itself (404, 422, other 4xx): a dead letter, with
            # LAPOR!'s own reason, for a person to look at. A refused POST was not applied,
            # so a retry after the fix posts without reading back.
            with self._lock:
                refused_post = row.id in self._posting
            self._dead(row, str(exc), result, applied_unknown=not refused_post)
            return None
        if confirmed:
            with self._lock:
                result.confirmed_by_readback += 1
        return _Delivered(row, remote_id, note=None, case_exists=True)

    def _files(self, session: Session, ids: list[int]) -> list[FileTuple]:
        if not ids:
            return []
        rows = session.scalars(select(StoredFile).where(StoredFile.id.in_(ids))).all()
        by_id = {f.id: f for f in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise LookupError(f"stored files {missing} are missing")
        return [(by_id[i].name, by_id[i].content, by_id[i].mime) for i in ids]

    def _followup(self, head: _Head, lapor_id: int, files: list[FileTuple]
                  ) -> tuple[str | None, bool]:
        row, lapor = head.row, self.settings.lapor
        if row.uncertain:
            found = self._find_followup(lapor_id, row.id)
            if found is not None:
                return str(found), True
        req = FollowupRequest(
            complaint_id=lapor_id,
            user_id=lapor.user_id,
            institution_from_id=lapor.institution_id,
            institution_to_id=int(row.payload.get("institution_to_id") or lapor.institution_id),
            content=with_marker(row.payload["content"], row.id, lapor.followup_marker,
                                lapor.followup_marker_style),
            template_code=str(row.payload.get("template_code", "")),
            rating=int(row.payload.get("rating") or 0),
            is_secret=bool(row.payload.get("is_secret", False)),
        )
        self._note_posting(head)
        new_id = self.target.add_followup(req, files)
        return (str(new_id) if new_id is not None else None), False

    def _find_followup(self, lapor_id: int, row_id: int) -> str | None:
        # Search the rejected items' raw text too: our own post must be recognised even
        # if LAPOR! returns it in a shape we would otherwise skip.
        listing = self.target.followup_listing(lapor_id)
        for f in listing.items:
            if has_marker(f.content, row_id):
                return str(f.id)
        for r in listing.rejected:
            if has_marker(r.payload, row_id):
                return r.remote_id or "unknown"
        return None

    def _forward(self, head: _Head, lapor_id: int) -> tuple[str | None, bool]:
        row = head.row
        target = int(row.payload["institution_id"])
        if row.uncertain and self.target.complaint(lapor_id).disposition_id == target:
            return str(target), True
        self._note_posting(head)
        self.target.forward(ForwardRequest(complaint_id=lapor_id, institution_id=target,
                                           reason_description=row.payload.get("reason", "")))
        return str(target), False

    def _create(self, head: _Head, case: dict[str, Any], files: list[FileTuple]
                ) -> tuple[str | None, bool]:
        row, lapor = head.row, self.settings.lapor
        content = with_marker(case["content"], row.id, True, lapor.followup_marker_style)
        if row.uncertain:
            since = row.created_at - timedelta(seconds=lapor.lookback_seconds)
            page = 1
            while True:
                batch = self.target.inbox_page(since, page)
                for item in batch.items:
                    if has_marker(item.content, row.id):
                        return str(item.id), True
                for rejected in batch.rejected:
                    if has_marker(rejected.payload, row.id):
                        return rejected.remote_id, True
                if not batch.next_page_url or not (batch.items or batch.rejected):
                    break
                page += 1
        self._note_posting(head)
        doc_ids = self.target.upload_attachments(files) if files else []
        new_id = self.target.create_complaint(NewComplaintRequest(
            title=case["title"], content=content, channel=case["channel"],
            disposition_id=lapor.institution_id, attachments=doc_ids,
            is_anonymous=case["is_anonymous"], is_secret=case["is_secret"],
            date_of_incident=case["received_at"].date().isoformat(),
        ))
        return str(new_id), False

    def _note_posting(self, head: _Head) -> None:
        """Note that the row's POST goes out now (a 4xx answer to it means "not
        applied"). The claim committed the row in flight already (see _claim)."""
        with self._lock:
            self._posting.add(head.row.id)

    # -- outcomes --------------------------------------------------------------------

    def _record_delivery(self, session: Session, done: _Delivered, now: datetime) -> bool:
        """Record a delivered row as done, with its history line; False if the row is
        gone. Plain statements, no objects loaded: this runs once per row."""
        row = done.row
        updated = session.execute(_DONE, {
            "row_id": row.id, "p_remote_id": done.remote_id, "p_at": now,
            "p_note": done.note})
        if not updated.rowcount:  # type: ignore[attr-defined]
            return False
        if done.case_exists:
            if row.kind == "create" and done.remote_id is not None:
                session.execute(_CREATED, {"case_id": row.case_id,
                                           "p_lapor_id": int(done.remote_id)})
                # What the bridge made on LAPOR! is followed there by itself.
                enrol(session, row.case_id, int(done.remote_id), "created", now)
            session.execute(insert(_EVENTS), [{
                "case_id": row.case_id, "at": now, "side": "system", "actor": "bridge",
                "kind": f"delivered_{row.kind}",
                "changes": {"outbox_id": [None, row.id], "remote_id": [None, done.remote_id]},
            }])
            if self.event_sink is not None:
                self.event_sink(session, "followup_delivered", row.case_id,
                                {"outbox_id": row.id, "remote_id": done.remote_id})
        return True

    def _retry_later(self, row: OutboxRow, reason: str, retry_after: float | None,
                     result: PushResult, uncertain: bool = False) -> None:
        box = self.settings.outbox
        with self.sessions() as session, session.begin():
            db_row = session.get(OutboxRow, row.id)
            if db_row is None:
                return
            db_row.attempts += 1
            db_row.last_error = reason[:2000]
            if uncertain:
                db_row.uncertain = True
            if db_row.attempts >= box.max_attempts:
                self._mark_dead(session, db_row,
                                f"gave up after {db_row.attempts} attempts: {reason}")
                with self._lock:
                    result.dead += 1
                return
            delay = min(box.backoff_max, box.backoff_initial * 2 ** (db_row.attempts - 1))
            delay = delay * (0.5 + self.rng.random() / 2)
            if retry_after is not None:
                delay = max(delay, retry_after)
            db_row.next_attempt_at = self.clock() + timedelta(seconds=delay)
        log.warning("outbox row %s (case %s) will be retried: %s", row.id, row.case_id, reason)
        with self._lock:
            result.retried += 1

    def _dead(self, row: OutboxRow, reason: str, result: PushResult,
              applied_unknown: bool = True) -> bool:
        with self.sessions() as session, session.begin():
            db_row = session.get(OutboxRow, row.id)
            if db_row is not None:
                db_row.attempts += 1
                if not applied_unknown:
                    db_row.uncertain = False
                self._mark_dead(session, db_row, reason)
        with self._lock:
            result.dead += 1
        return False

    def _mark_dead(self, session: Session, row: OutboxRow, reason: str) -> None:
        row.status = DEAD
        row.last_error = reason[:2000]
        row.next_attempt_at = None
        session.add(CaseEvent(case_id=row.case_id, at=self.clock(), side="system",
                              actor="bridge", kind="dead_letter",
                              changes={"outbox_id": [None, row.id]}, note=reason[:2000]))
        case = session.get(Case, row.case_id)
        if case is not None:
            case.attention = f"Pengiriman ke LAPOR! gagal: {reason[:300]}"
        if self.event_sink is not None:
            self.event_sink(session, "dead_letter", row.case_id,
                            {"outbox_id": row.id, "kind": row.kind, "error": reason[:500]})
        log.error("outbox row %s (case %s) is a dead letter: %s", row.id, row.case_id, reason)
