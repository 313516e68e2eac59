"""Pull: LAPOR!'s inbox into the local queue, incrementally, one committed page at a time.

The inbox is read in (updated_at, id) order from a cursor. After each page, the page's
upserts and the cursor advance are committed in one transaction, so a crash loses nothing
and a restart re-reads at most one page. The next request starts again from the last key
committed (``updated_since`` = its time) rather than asking for "page 2": a report that
changes while we read moves to the end of the ordering, and is read there, instead of
shifting the next page under our feet. Only when more than a page of reports share one
timestamp do we step through page numbers at that timestamp.

Each run starts ``lookback_seconds`` behind the cursor, against clock skew between LAPOR!
and the database; what that re-reads is recognised by the idempotent upsert and changes
nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import BridgeError
from bridge.lapor.models import Page, RejectedItem, RemoteComplaint
from bridge.runs import NOT_IN_JSON, RunRecord
from bridge.store import register
from bridge.store.bulk import execute_many
from bridge.store.models import Case, CaseEvent, SyncCursor, utcnow
from bridge.sync.quarantine import RunTally, flag_alarm, record_rejected
from bridge.sync.receipt import DISPOSITION_NOTE, reached_at

log = logging.getLogger("bridge.sync.pull")

INBOX = "inbox"

# Bulk inserts go to the tables themselves: the drivers' executemany, no ORM bulk path.
_CASES = cast(Table, Case.__table__)
_EVENTS = cast(Table, CaseEvent.__table__)

#: Fields LAPOR! owns: a remote change to these is applied and recorded in history.
REMOTE_FIELDS: tuple[str, ...] = (
    "tracking_id",
    "title",
    "content",
    "category",
    "location",
    "is_anonymous",
    "is_secret",
    "reporter",
    "attachments",
    "remote_status_code",
    "remote_status_name",
    "remote_disposition_id",
    "remote_disposition_name",
)


class InboxSource(Protocol):
    """What the pull needs of the LAPOR! client."""

    def inbox_page(
        self, updated_since: datetime | None, page: int = 1, page_size: int | None = None
    ) -> Page[RemoteComplaint]: ...


#: Called inside a page's transaction for each case event (name, case id, data), so that
#: plugin events are recorded atomically with the change they describe.
EventSink = Callable[[Session, str, int, dict[str, Any]], None]


class DeadlineFor(Protocol):
    """The overall deadline of a new case (services' ``CaseDeadlines.for_new``)."""

    def __call__(self, received_at: datetime, via_lapor: bool = ...,
                 filed_at: datetime | None = ...) -> datetime | None: ...


class PaginationError(BridgeError):
    """LAPOR!'s paging went wrong (a loop, an empty page with a next link)."""


@dataclass
class PullResult(RunRecord):
    stream: str
    requests: int = 0
    pages: int = 0
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    #: Told to stop before the end of the inbox (shutdown, job deadline): not a success.
    stopped: bool = False
    #: The quarantine alarm's one line, when a whole page or more than
    #: ``lapor.quarantine_alarm_share`` of the run was quarantined.
    alarm: str | None = None
    created_ids: list[int] = field(default_factory=list, metadata=NOT_IN_JSON)
    updated_ids: list[int] = field(default_factory=list, metadata=NOT_IN_JSON)

    def summary(self) -> str:
        return (
            f"pull {self.stream}: {self.pages} pages, {self.received} items, "
            f"{self.created} new, {self.updated} changed, {self.unchanged} unchanged, "
            f"{self.stale} stale, {self.quarantined} quarantined in {self.seconds:.2f}s"
        )


def remote_values(item: RemoteComplaint) -> dict[str, Any]:
    """The case columns that mirror a LAPOR! report."""
    return {
        "tracking_id": str(item.tracking_id),
        "title": item.title,
        "content": item.content,
        "category": item.category,
        "location": item.location,
        "is_anonymous": item.is_anonymous,
        "is_secret": item.is_secret,
        # An anonim report keeps no identity locally either, whatever LAPOR! sent.
        "reporter": None
        if item.is_anonymous or item.reporter is None
        else item.reporter.model_dump(exclude_none=True),
        "attachments": [a.model_dump(mode="json", exclude_none=True) for a in item.attachments],
        "remote_status_code": item.status_code,
        "remote_status_name": item.status_name,
        "remote_disposition_id": item.disposition_id,
        "remote_disposition_name": item.disposition_name,
    }


def raw_payload(item: RemoteComplaint, source: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The payload kept on the case: ``source``, the object LAPOR! sent, as it sent it
    (the model serialised when there is none); an anonim report keeps no identity even
    here."""
    raw = source if source is not None else item.model_dump(mode="json")
    if item.is_anonymous and raw.get("reporter") is not None:
        raw = {**raw, "reporter": None}
    return raw


def _key(item: RemoteComplaint) -> tuple[datetime, int]:
    return (item.updated_at, item.id)


class PageWalker:
    """The walk through LAPOR!'s inbox, without I/O: which page to ask for next, which
    items of a page are new to this run, and which shared seconds must be read again.

    :meth:`step` takes each page as it comes and raises :class:`PaginationError` when the
    paging loops; :attr:`since` and :attr:`page` are then the next request.
    """

    def __init__(self, since: datetime | None) -> None:
        self.since = since
        self.page = 1
        self._prev_ids: list[int] | None = None
        # The largest key taken in this run: each new request starts at that key's
        # timestamp, so its first items repeat what was just read and are skipped.
        self._run_key: tuple[datetime, int] | None = None
        # Stepping through page numbers at one shared second is offset paging: a report
        # read there that changes meanwhile leaves the second, the later pages shift left,
        # and one report is skipped. We remember who was read at each such second; seeing
        # one of them again, newer, means that second must be read once more.
        self.tie_ids: dict[datetime, set[int]] = {}
        self.rescan: set[datetime] = set()

    @property
    def taken_up_to(self) -> tuple[datetime, int] | None:
        """The largest (updated_at, id) this run has taken so far."""
        return self._run_key

    def step(self, batch: Page[RemoteComplaint]) -> tuple[list[RemoteComplaint], bool]:
        """The items of ``batch`` new to this run, and whether it was the last page."""
        page, since = self.page, self.since
        ids = [item.id for item in batch.items]
        if page > 1 and self._prev_ids is not None and ids and ids == self._prev_ids:
            raise PaginationError(
                f"page {page} repeats the previous page's items (looping pagination)"
            )
        run_key = self._run_key
        fresh = [i for i in batch.items if run_key is None or _key(i) > run_key]
        if self.tie_ids:
            self.rescan.update(t for i in fresh for t, seen in self.tie_ids.items()
                               if i.id in seen and i.updated_at > t)
        if since is not None and batch.items and (
                page > 1 or batch.items[-1].updated_at == since):
            self.tie_ids.setdefault(since, set()).update(
                i.id for i in batch.items if i.updated_at == since)
        last = not batch.next_page_url
        if not last:
            if not batch.items:
                if not batch.rejected:
                    raise PaginationError(
                        f"an empty page {page} with a next link (since={since})"
                    )
                self.page += 1
            elif batch.items[-1].updated_at == since:
                # More than a page of reports share this timestamp: step through.
                self.page += 1
            else:
                self.since = batch.items[-1].updated_at
                self.page = 1
        if fresh:
            self._run_key = max(run_key or _key(fresh[0]), *(_key(i) for i in fresh))
        self._prev_ids = ids
        return fresh, last


# Compared and shown as the object it is: its fields are live objects (sessions, a client).
@dataclass(eq=False, repr=False)
class Puller:
    """Reads one stream of LAPOR! reports into the store."""

    source: InboxSource
    sessions: sessionmaker[Session]
    register_format: register.RegisterFormat
    _: KW_ONLY
    page_size: int
    lookback: timedelta
    stream: str = INBOX
    event_sink: EventSink | None = None
    deadline_for: DeadlineFor | None = None
    status_names: dict[str, str] = field(default_factory=dict)
    max_pages: int = 100_000
    stop: threading.Event = field(default_factory=threading.Event)
    alarm_share: float = 0.2
    received_log_note: str = DISPOSITION_NOTE
    _tally: RunTally = field(default_factory=RunTally, init=False, repr=False)

    # -- the loop ---------------------------------------------------------------------

    def run(self, window: timedelta | None = None) -> PullResult:
        """Read everything new since the cursor (or, with ``window``, re-read that far back
        without moving the cursor backwards: the periodic wide reconciliation)."""
        started = time.perf_counter()
        result = PullResult(stream=self.stream)
        self._tally = RunTally()
        cursor_key = self._load_cursor()
        since: datetime | None = None
        if cursor_key is not None:
            since = cursor_key[0] - (window if window is not None else self.lookback)
        walk = PageWalker(since)
        # The next page is asked for while this one is written: LAPOR!'s time to answer
        # and the database's time to write overlap (both wait outside the GIL). The
        # request for a page depends only on the page before it, never on the commit, so
        # asking early changes nothing but when; a page fetched ahead and not committed
        # (stop, error) is simply read again by the next run.
        ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pull-{self.stream}")
        try:
            pending: Future[Page[RemoteComplaint]] | None = None
            while True:
                if self.stop.is_set():
                    result.stopped = True
                    break
                if result.pages >= self.max_pages:
                    raise PaginationError(
                        f"more than {self.max_pages} pages in one run; stopping (looping next link?)"
                    )
                batch = (pending.result() if pending is not None
                         else self.source.inbox_page(walk.since, walk.page, self.page_size))
                pending = None
                result.requests += 1
                result.pages += 1
                fresh, last = walk.step(batch)
                if not last and not self.stop.is_set() and result.pages < self.max_pages:
                    pending = ahead.submit(self.source.inbox_page, walk.since, walk.page,
                                           self.page_size)
                self._commit_page(fresh, batch.rejected, result, batch.sources,
                                  whole_page=not batch.items)
                if last:
                    break
            for moment in sorted(walk.rescan):
                if self.stop.is_set():
                    result.stopped = True
                    break
                self._rescan_second(moment, walk.tie_ids[moment], result, walk.taken_up_to)
        except Exception as exc:
            self._record_error(exc)
            raise
        finally:
            # A page asked for ahead and not used is left to finish on its own; nothing
            # waits for it (its result is dropped).
            ahead.shutdown(wait=False, cancel_futures=True)
            result.seconds = time.perf_counter() - started
        self._check_alarm(result)
        if not result.stopped:
            self._record_success()
        log.info(result.summary() + (" (stopped early)" if result.stopped else ""))
        return result

    def _rescan_second(self, moment: datetime, seen: set[int], result: PullResult,
                       taken_up_to: tuple[datetime, int] | None) -> None:
        """Read the reports of one shared second again and take those not yet read.

        A report that left the second while its pages were read shifted the next page by
        one, so the report skipped may also stand just after the second: the page that
        reaches past it is taken too, up to what the run has read (storing a version
        again changes nothing; what is newer is the next run's)."""
        page = 1
        while page <= self.max_pages:
            batch = self.source.inbox_page(moment, page, self.page_size)
            result.requests += 1
            result.pages += 1
            at_moment = [i for i in batch.items if i.updated_at == moment]
            missed = [i for i in at_moment if i.id not in seen]
            past = not batch.items or batch.items[-1].updated_at != moment
            after = self._not_stored([i for i in batch.items if i.updated_at > moment and (
                taken_up_to is None or _key(i) <= taken_up_to)]) if past else []
            if missed:
                log.info("pull %s: %d report(s) at %s read on a second pass", self.stream,
                         len(missed), moment.isoformat())
            self._commit_page(missed + after, [], result, batch.sources)
            seen.update(i.id for i in at_moment)
            if not batch.next_page_url or past:
                return
            page += 1

    def _not_stored(self, items: list[RemoteComplaint]) -> list[RemoteComplaint]:
        """Those of ``items`` whose version the store does not hold (a second pass takes
        only those, so that nothing is counted as received twice)."""
        if not items:
            return items
        with self.sessions() as session:
            held = {lapor_id: at for lapor_id, at in session.execute(
                select(Case.lapor_id, Case.remote_updated_at)
                .where(Case.lapor_id.in_([i.id for i in items])))}
        return [i for i in items if held.get(i.id) != i.updated_at]

    # -- one page, one transaction ----------------------------------------------------

    def _commit_page(self, items: list[RemoteComplaint], rejected: list[RejectedItem],
                     result: PullResult, sources: dict[str, Any],
                     whole_page: bool = False) -> None:
        if not items and not rejected:
            return
        with self.sessions() as session, session.begin():
            self.store(session, items, sources, result, rejected, whole_page=whole_page)
            if items:
                self._advance_cursor(session, max(_key(i) for i in items))

    def store(self, session: Session, items: list[RemoteComplaint], sources: dict[str, Any],
              result: PullResult, rejected: Iterable[RejectedItem] = (), *,
              whole_page: bool = False) -> None:
        """Upsert valid reports and quarantine rejected ones in the caller's transaction,
        as a page of the pull is (the cursor is the caller's business): what tracking by
        id and ``quarantine retry`` store with, under the same rules."""
        if rejected:
            rejected = list(rejected)
            self._quarantine(session, rejected, whole_page)
            result.quarantined += len(rejected)
        if items:
            result.received += len(items)
            self._upsert(session, items, result, sources)

    def _quarantine(self, session: Session, rejected: list[RejectedItem],
                    whole_page: bool) -> None:
        self._tally.add(*record_rejected(session, self.stream, rejected, utcnow()),
                        whole_page=whole_page)
        for r in rejected:
            log.warning("quarantined %s item %s: %s", self.stream, r.remote_id or "?", r.reason)

    def _check_alarm(self, result: PullResult) -> None:
        """Raise the quarantine alarm when the run's rejections call for it: its rows are
        flagged, so that status stays unhealthy until they are retried or dismissed."""
        result.alarm = self._tally.alarm(result.received, self.alarm_share)
        if result.alarm is None:
            return
        log.error("pull %s: %s", self.stream, result.alarm)
        with self.sessions() as session, session.begin():
            flag_alarm(session, self._tally.ids)

    def _upsert(self, session: Session, items: list[RemoteComplaint], result: PullResult,
                sources: dict[str, Any]) -> None:
        # The last version of an id within one page wins (a page may repeat an id).
        latest: dict[int, RemoteComplaint] = {}
        for item in items:
            if item.id not in latest or _key(item) >= _key(latest[item.id]):
                latest[item.id] = item
        existing = {
            case.lapor_id: case
            for case in session.scalars(select(Case).where(Case.lapor_id.in_(list(latest))))
        }
        now = utcnow()
        new_items = [item for lid, item in latest.items() if lid not in existing]
        events: list[dict[str, Any]] = []
        changed_ids: list[int] = []
        changed_fields: dict[int, dict[str, Any]] = {}
        for lid, item in latest.items():
            case = existing.get(lid)
            if case is None:
                continue
            if case.remote_updated_at is not None and item.updated_at < case.remote_updated_at:
                # A stale page never overwrites newer data.
                result.stale += 1
                continue
            values = remote_values(item)
            values["remote_status_name"] = self._status_name(item)
            self._received_from_logs(case, item, values)
            changes = {
                name: [getattr(case, name), value]
                for name, value in values.items()
                if getattr(case, name) != value
            }
            if case.remote_updated_at != item.updated_at:
                case.remote_updated_at = item.updated_at
            if not changes:
                result.unchanged += 1
                continue
            for name, (_old, value) in changes.items():
                setattr(case, name, value)
            case.raw = raw_payload(item, sources.get(str(lid)))
            case.updated_at = now
            case.is_new = True
            case.version += 1
            events.append(
                {
                    "case_id": case.id,
                    "at": now,
                    "side": "remote",
                    "actor": "LAPOR!",
                    "kind": "remote_changed",
                    "changes": _jsonable(changes),
                }
            )
            changed_ids.append(case.id)
            changed_fields[case.id] = events[-1]["changes"]
        result.updated += len(changed_ids)
        result.updated_ids.extend(changed_ids)
        if new_items:
            self._insert_new(session, new_items, now, events, result, sources)
        if events:
            execute_many(session, insert(_EVENTS), events)
        if self.event_sink is not None:
            for case_id in changed_ids:
                self.event_sink(session, "case_changed", case_id,
                                {"changes": changed_fields[case_id], "side": "remote"})

    def _insert_new(
        self,
        session: Session,
        new_items: list[RemoteComplaint],
        now: datetime,
        events: list[dict[str, Any]],
        result: PullResult,
        sources: dict[str, Any],
    ) -> None:
        fmt = self.register_format
        by_scope: dict[str, list[RemoteComplaint]] = {}
        for item in new_items:
            by_scope.setdefault(fmt.scope(item.created_at), []).append(item)
        rows: list[dict[str, Any]] = []
        for scope, scoped in by_scope.items():
            first = register.allocate(session, scope, len(scoped))
            for offset, item in enumerate(scoped):
                values = remote_values(item)
                values["remote_status_name"] = self._status_name(item)
                received, _ = reached_at(item, now, self.received_log_note)
                rows.append(
                    {
                        **values,
                        "register_no": fmt.render(first + offset, item.created_at, "lapor"),
                        "channel": "lapor",
                        "lapor_id": item.id,
                        "remote_updated_at": item.updated_at,
                        "stage": "received",
                        "received_at": received,
                        "filed_at": item.created_at,
                        "deadline_at": self.deadline_for(received, True, item.created_at)
                        if self.deadline_for is not None
                        else None,
                        "updated_at": now,
                        "is_new": True,
                        "version": 1,
                        "raw": raw_payload(item, sources.get(str(item.id))),
                    }
                )
        # A plain executemany on the table (no RETURNING, no ORM unit of work): the
        # drivers' fast path, one statement parsed once (psycopg pipelines it). The ids
        # are then read back by LAPOR! id, which is unique.
        execute_many(session, insert(_CASES), rows)
        registers = {row["lapor_id"]: row["register_no"] for row in rows}
        inserted = session.execute(
            select(Case.id, Case.lapor_id).where(Case.lapor_id.in_(list(registers)))
            .order_by(Case.id)
        ).all()
        for case_id, lapor_id in inserted:
            register_no = registers[lapor_id]
            events.append(
                {
                    "case_id": case_id,
                    "at": now,
                    "side": "remote",
                    "actor": "LAPOR!",
                    "kind": "received",
                    "changes": {"register_no": [None, register_no]},
                }
            )
            result.created_ids.append(case_id)
        result.created += len(inserted)
        if self.event_sink is not None:
            for case_id, _ in inserted:
                self.event_sink(session, "case_received", case_id, {})

    def _received_from_logs(self, case: Case, item: RemoteComplaint,
                            values: dict[str, Any]) -> None:
        """When LAPOR!'s logs tell when the report reached us, that time replaces the
        stand-in (the first time the bridge saw it), and the untouched deadline of a
        case nobody has handled yet moves with it; a handled case's deadline is
        recomputed by services on its next action."""
        received, told = reached_at(item, case.received_at, self.received_log_note)
        if not told or received == case.received_at:
            return
        values["received_at"] = received
        if case.filed_at is None:
            values["filed_at"] = item.created_at
        if (self.deadline_for is not None and case.deadline_at is not None
                and case.stage == "received" and case.severity is None):
            values["deadline_at"] = self.deadline_for(received, True, item.created_at)

    def _status_name(self, item: RemoteComplaint) -> str:
        return self.status_names.get(item.status_code, item.status_name)

    # -- cursor -----------------------------------------------------------------------

    def _load_cursor(self) -> tuple[datetime, int] | None:
        with self.sessions() as session:
            row = session.get(SyncCursor, self.stream)
            if row is None or row.updated_since is None:
                return None
            return (row.updated_since, int(row.last_id or 0))

    def _advance_cursor(self, session: Session, key: tuple[datetime, int]) -> None:
        row = session.get(SyncCursor, self.stream)
        if row is None:
            row = SyncCursor(stream=self.stream)
            session.add(row)
        current = (row.updated_since, int(row.last_id or 0)) if row.updated_since else None
        # The cursor never moves backwards (a reconciliation re-reads older pages).
        if current is None or key > current:
            row.updated_since, row.last_id = key

    def _record_success(self) -> None:
        with self.sessions() as session, session.begin():
            row = session.get(SyncCursor, self.stream) or SyncCursor(stream=self.stream)
            row.last_success_at = utcnow()
            row.last_error = None
            session.add(row)

    def _record_error(self, exc: BaseException) -> None:
        try:
            with self.sessions() as session, session.begin():
                row = session.get(SyncCursor, self.stream) or SyncCursor(stream=self.stream)
                row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
                row.last_error_at = utcnow()
                session.add(row)
        except Exception:  # the database itself may be what failed
            log.exception("could not record the pull error")


def _jsonable(changes: dict[str, list[Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (old, new) in changes.items():
        out[name] = [_j(old), _j(new)]
    return out


def _j(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and len(value) > 2000:
        # Keep history small; the full text is on the case and in its raw payload.
        return value[:2000] + "…"
    return value
