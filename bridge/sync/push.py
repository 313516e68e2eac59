"""Push: deliver the outbox to LAPOR!, in order per case, exactly once in effect.

Rows of one case are delivered strictly in id order: a follow-up never overtakes the
forward before it. Different cases are delivered concurrently, all through the client's
shared request budget. No database transaction is held open across an HTTP call.

Exactly once, although LAPOR! takes no idempotency key: every follow-up carries a marker
``[lb:<row id>]``. Just before a POST the row is committed as ``uncertain`` (in flight);
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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
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
from bridge.store.models import Case, CaseEvent, OutboxRow, StoredFile, utcnow

log = logging.getLogger("bridge.sync.push")

PENDING, DONE, DEAD = "pending", "done", "dead"

FileTuple = tuple[str, bytes, str]


class PushTarget(Protocol):
    """What the push needs of the LAPOR! client."""

    def add_followup(self, req: FollowupRequest, attachments: Any = ()) -> int: ...
    def followup_listing(self, complaint_id: int) -> Page[RemoteFollowup]: ...
    def forward(self, req: ForwardRequest) -> None: ...
    def complaint(self, complaint_id: int) -> ComplaintDetail: ...
    def create_complaint(self, req: NewComplaintRequest) -> int: ...
    def upload_attachments(self, files: Any) -> list[str]: ...
    def inbox_page(self, updated_since: datetime | None, page: int = 1,
                   page_size: int | None = None) -> Page[RemoteComplaint]: ...


EventSink = Callable[[Session, str, int, dict[str, Any]], None]


def marker(row_id: int) -> str:
    return f"[lb:{row_id}]"


def with_marker(content: str, row_id: int, enabled: bool = True) -> str:
    return f"{content}\n\n{marker(row_id)}" if enabled else content


@dataclass
class PushResult:
    delivered: int = 0
    confirmed_by_readback: int = 0
    retried: int = 0
    dead: int = 0
    requests: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"push: {self.delivered} delivered ({self.confirmed_by_readback} confirmed by "
                f"read-back), {self.retried} to retry, {self.dead} dead in {self.seconds:.2f}s")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class _Abort(Exception):
    """Stop the whole run: the problem is not the row's (bad credentials)."""


class Pusher:
    def __init__(
        self,
        target: PushTarget,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        event_sink: EventSink | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.target = target
        self.sessions = sessions
        self.settings = settings
        self.event_sink = event_sink
        self.stop = stop or threading.Event()
        self.clock = clock
        self.rng = rng or random.Random()
        self._lock = threading.Lock()
        self._aborted: str | None = None
        #: Rows whose POST was sent in this run (a 4xx answer to it means "not applied").
        self._posting: set[int] = set()

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
        while not self.stop.is_set() and self._aborted is None:
            row = self._head(case_id)
            if row is None:
                return
            try:
                ok = self._deliver(row, result)
            except _Abort as exc:
                with self._lock:
                    self._aborted = str(exc)
                return
            except Exception as exc:  # a bug or a database fault: keep the row, log loudly
                log.exception("push of outbox row %s failed unexpectedly", row.id)
                self._retry_later(row, f"{type(exc).__name__}: {exc}", None, result)
                return
            if not ok:
                return

    def _head(self, case_id: int) -> OutboxRow | None:
        now = self.clock()
        with self.sessions() as session:
            row = session.scalars(
                select(OutboxRow)
                .where(OutboxRow.case_id == case_id, OutboxRow.status.in_((PENDING, DEAD)))
                .order_by(OutboxRow.id)
                .limit(1)
            ).first()
            if row is None or row.status != PENDING:
                return None
            if row.next_attempt_at is not None and row.next_attempt_at > now:
                return None
            session.expunge(row)
            return row

    # -- one row ---------------------------------------------------------------------

    def _deliver(self, row: OutboxRow, result: PushResult) -> bool:
        with self.sessions() as session:
            case = session.get(Case, row.case_id)
            if case is None:  # the case was deleted: nothing left to tell LAPOR!
                return self._finish(row, None, result, note="case no longer exists")
            lapor_id = case.lapor_id
            files = self._files(session, row.payload.get("file_ids", []))
            case_snapshot = {"title": case.title, "content": case.content,
                             "channel": case.channel, "is_anonymous": case.is_anonymous,
                             "is_secret": case.is_secret, "received_at": case.received_at}
        try:
            if row.kind == "create":
                remote_id, confirmed = self._create(row, case_snapshot, files)
            elif lapor_id is None:
                return self._dead(row, "the case is not on LAPOR! (no LAPOR! id)", result)
            elif row.kind == "followup":
                remote_id, confirmed = self._followup(row, lapor_id, files)
            elif row.kind == "forward":
                remote_id, confirmed = self._forward(row, lapor_id)
            else:
                return self._dead(row, f"unknown outbox row kind {row.kind!r}", result)
        except AuthError as exc:
            raise _Abort(f"LAPOR! refused our credentials: {exc}") from exc
        except OutcomeUnknown as exc:
            self._retry_later(row, f"outcome unknown: {exc}", exc.retry_after, result,
                              uncertain=True)
            return False
        except TransientError as exc:
            self._retry_later(row, str(exc), exc.retry_after, result)
            return False
        except LaporError as exc:
            # LAPOR! refused this row itself (404, 422, other 4xx): a dead letter, with
            # LAPOR!'s own reason, for a person to look at. A refused POST was not applied,
            # so a retry after the fix posts without reading back.
            with self._lock:
                refused_post = row.id in self._posting
            return self._dead(row, str(exc), result, applied_unknown=not refused_post)
        if confirmed:
            result.confirmed_by_readback += 1
        return self._finish(row, remote_id, result)

    def _files(self, session: Session, ids: list[int]) -> list[FileTuple]:
        if not ids:
            return []
        rows = session.scalars(select(StoredFile).where(StoredFile.id.in_(ids))).all()
        by_id = {f.id: f for f in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise LookupError(f"stored files {missing} are missing")
        return [(by_id[i].name, by_id[i].content, by_id[i].mime) for i in ids]

    def _followup(self, row: OutboxRow, lapor_id: int, files: list[FileTuple]
                  ) -> tuple[str | None, bool]:
        lapor = self.settings.lapor
        if row.uncertain:
            found = self._find_followup(lapor_id, row.id)
            if found is not None:
                return str(found), True
        req = FollowupRequest(
            complaint_id=lapor_id,
            user_id=lapor.user_id,
            institution_from_id=lapor.institution_id,
            institution_to_id=int(row.payload.get("institution_to_id") or lapor.institution_id),
            content=with_marker(row.payload["content"], row.id, lapor.followup_marker),
            template_code=str(row.payload.get("template_code", "")),
            is_secret=bool(row.payload.get("is_secret", False)),
        )
        self._mark_in_flight(row)
        return str(self.target.add_followup(req, files)), False

    def _find_followup(self, lapor_id: int, row_id: int) -> str | None:
        # Search the rejected items' raw text too: our own post must be recognised even
        # if LAPOR! returns it in a shape we would otherwise skip.
        tag = marker(row_id)
        listing = self.target.followup_listing(lapor_id)
        for f in listing.items:
            if tag in f.content:
                return str(f.id)
        for r in listing.rejected:
            if tag in r.payload:
                return r.remote_id or "unknown"
        return None

    def _forward(self, row: OutboxRow, lapor_id: int) -> tuple[str | None, bool]:
        target = int(row.payload["institution_id"])
        if row.uncertain and self.target.complaint(lapor_id).disposition_id == target:
            return str(target), True
        self._mark_in_flight(row)
        self.target.forward(ForwardRequest(complaint_id=lapor_id, institution_id=target,
                                           reason_description=row.payload.get("reason", "")))
        return str(target), False

    def _create(self, row: OutboxRow, case: dict[str, Any], files: list[FileTuple]
                ) -> tuple[str | None, bool]:
        lapor = self.settings.lapor
        content = with_marker(case["content"], row.id, True)
        if row.uncertain:
            since = row.created_at - timedelta(seconds=lapor.lookback_seconds)
            page = 1
            while True:
                batch = self.target.inbox_page(since, page)
                for item in batch.items:
                    if marker(row.id) in item.content:
                        return str(item.id), True
                for rejected in batch.rejected:
                    if marker(row.id) in rejected.payload:
                        return rejected.remote_id, True
                if not batch.next_page_url or not (batch.items or batch.rejected):
                    break
                page += 1
        self._mark_in_flight(row)
        doc_ids = self.target.upload_attachments(files) if files else []
        new_id = self.target.create_complaint(NewComplaintRequest(
            title=case["title"], content=content, channel=case["channel"],
            disposition_id=lapor.institution_id, attachments=doc_ids,
            is_anonymous=case["is_anonymous"], is_secret=case["is_secret"],
            date_of_incident=case["received_at"].date().isoformat(),
        ))
        return str(new_id), False

    def _mark_in_flight(self, row: OutboxRow) -> None:
        """Commit "outcome unknown" *before* posting: if the process dies after LAPOR!
        applied the POST and before we record it done, the next attempt reads back
        first instead of posting a second time."""
        with self._lock:
            self._posting.add(row.id)
        if row.uncertain:
            return
        with self.sessions() as session, session.begin():
            db_row = session.get(OutboxRow, row.id)
            if db_row is not None:
                db_row.uncertain = True
        row.uncertain = True

    # -- outcomes --------------------------------------------------------------------

    def _finish(self, row: OutboxRow, remote_id: str | None, result: PushResult,
                note: str | None = None) -> bool:
        now = self.clock()
        with self.sessions() as session, session.begin():
            db_row = session.get(OutboxRow, row.id)
            if db_row is None:
                return True
            db_row.status = DONE
            db_row.remote_id = remote_id
            db_row.delivered_at = now
            db_row.uncertain = False
            db_row.attempts += 1
            db_row.last_error = note
            case = session.get(Case, row.case_id)
            if case is not None:
                if row.kind == "create" and remote_id is not None and case.lapor_id is None:
                    case.lapor_id = int(remote_id)
                session.add(CaseEvent(case_id=row.case_id, at=now, side="system",
                                      actor="bridge", kind=f"delivered_{row.kind}",
                                      changes={"outbox_id": [None, row.id],
                                               "remote_id": [None, remote_id]}))
                if self.event_sink is not None:
                    self.event_sink(session, "followup_delivered", row.case_id,
                                    {"outbox_id": row.id, "remote_id": remote_id})
        with self._lock:
            result.delivered += 1
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
