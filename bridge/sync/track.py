"""Tracking by id: follow known LAPOR! reports through their detail and follow-ups.

The one public v3 integration never lists an inbox: it knows the ids of its reports and
polls ``GET /complaints/{id}/complaint`` and ``/complaints/{id}/followups``. The bridge
does the same for the cases in ``tracked_cases``:

- reports staff adopt from the LAPOR! admin panel (``lapor-bridge case track ID``, or
  "Lacak ID LAPOR!" on the queue page): the detail is read, the case created exactly as
  the pull creates one (:meth:`bridge.sync.pull.Puller.store`), and tracked;
- reports the bridge itself created on LAPOR! (the push's ``create`` rows);
- while the inbox is unavailable, every open case that has a LAPOR! id.

Each poll goes through the pull's merge path, so the rules of docs/sync.md hold: LAPOR!
owns its fields, local fields are never touched, a detail older than what is stored
never wins. New follow-ups of other parties become ``remote_followup`` history entries
and mark the case new in the queue; the bridge's own (they carry its ``[lb:N]`` marker)
are only noted as seen. When to poll is decided by the pure rules of
:mod:`bridge.sync.track_plan`. No database transaction is held across an HTTP call.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import BridgeError
from bridge.lapor.errors import AuthError, LaporError, NotFound
from bridge.lapor.models import Page, RejectedItem, RemoteComplaint, RemoteFollowup
from bridge.runs import NOT_IN_JSON, RunRecord
from bridge.store.models import Case, CaseEvent, SyncCursor, TrackedCase, utcnow
from bridge.sync import track_plan as plan
from bridge.sync.pull import INBOX, EventSink, Puller, PullResult

log = logging.getLogger("bridge.sync.track")

#: The stream name of tracking (quarantine rows, its sync_cursors row).
TRACKING = "tracking"
#: The sync_cursors row that exists while the inbox is unavailable (reason, since when).
NO_INBOX = "inbox_unavailable"
NO_INBOX_TEXT = "inbox not available: tracking known cases only"

#: The bridge's own follow-ups carry this marker (see bridge.sync.push).
_OWN = re.compile(r"\[lb:\d+\]")


class TrackSource(Protocol):
    """What tracking needs of the LAPOR! client."""

    def report(self, complaint_id: int) -> tuple[RemoteComplaint | None, RejectedItem | None,
                                                 dict[str, Any]]: ...
    def followup_listing(self, complaint_id: int) -> Page[RemoteFollowup]: ...


class AdoptError(BridgeError):
    """A report could not be adopted; nothing was stored (the reason is the message)."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        #: LAPOR! does not know the id (HTTP 404).
        self.not_found = not_found


@dataclass
class Adopted:
    lapor_id: int
    case_id: int
    register_no: str
    #: A new case was made (False: an existing case is now tracked, or already was).
    created: bool
    already: bool = False


@dataclass
class TrackResult(RunRecord):
    due: int = 0
    polled: int = 0
    changed: int = 0
    followups: int = 0
    stale: int = 0
    failed: int = 0
    quarantined: int = 0
    #: Due cases left for the next run (its time ran out, or it was told to stop).
    left: int = 0
    seconds: float = 0.0
    stopped: bool = False
    errors: list[str] = field(default_factory=list, metadata=NOT_IN_JSON)
    #: Why the run ended early (credentials refused, too many failures in a row).
    aborted: str | None = None

    def summary(self) -> str:
        text = (f"track: {self.polled} of {self.due} due polled, {self.changed} changed, "
                f"{self.followups} new follow-ups, {self.stale} stale, {self.failed} failed, "
                f"{self.left} left for the next run in {self.seconds:.2f}s")
        return text + (f" (stopped: {self.aborted})" if self.aborted else "")


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


def enrol(session: Session, case_id: int, lapor_id: int, origin: str, now: datetime,
          due_at: datetime | None = None) -> TrackedCase:
    """Track a case (in the caller's transaction), due at ``due_at`` (default: now);
    the existing row if it is tracked already."""
    row = session.get(TrackedCase, lapor_id)
    if row is None:
        row = TrackedCase(lapor_id=lapor_id, case_id=case_id, origin=origin, tracked_at=now,
                          next_due_at=due_at or now, failures=0, closed=False, polls=0,
                          seen_followups=None)
        session.add(row)
    return row


# -- the inbox's availability -------------------------------------------------------------


def inbox_unavailable(session: Session) -> SyncCursor | None:
    """The row saying why and since when the inbox is unavailable (None: it is fine)."""
    return session.get(SyncCursor, NO_INBOX)


def note_inbox_unavailable(sessions: sessionmaker[Session], reason: str) -> bool:
    """Record that the inbox is unavailable; tracking stands in for the pull, so the
    inbox stream counts as a success. True when this is news (logged once, here)."""
    now = utcnow()
    with sessions() as session, session.begin():
        row = inbox_unavailable(session)
        news = row is None
        if row is None:
            row = SyncCursor(stream=NO_INBOX, last_error_at=now)
            session.add(row)
        row.last_error = reason[:2000]
        inbox = session.get(SyncCursor, INBOX) or SyncCursor(stream=INBOX)
        inbox.last_success_at = now
        inbox.last_error = None
        session.add(inbox)
    if news:
        log.warning("%s (%s)", NO_INBOX_TEXT, reason)
    return news


def note_inbox_available(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        row = inbox_unavailable(session)
        if row is not None:
            session.delete(row)
            log.warning("the inbox answers again: pulling it (tracked cases stay tracked)")


# -- the tracker --------------------------------------------------------------------------


@dataclass
class _Fetched:
    item: RemoteComplaint | None
    rejected: RejectedItem | None
    raw: dict[str, Any]
    followups: Page[RemoteFollowup]


# Compared and shown as the object it is: its fields are live objects (sessions, a client).
@dataclass(eq=False, repr=False)
class Tracker:
    source: TrackSource
    sessions: sessionmaker[Session]
    puller: Puller
    cfg: plan.TrackingSettings
    _: KW_ONLY
    event_sink: EventSink | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], datetime] = utcnow
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- adopting ----------------------------------------------------------------------

    def adopt(self, lapor_id: int) -> Adopted:
        """Make a case of report ``lapor_id`` (read from LAPOR! now) and track it.
        Raises :class:`AdoptError` (nothing stored) when LAPOR! does not know the id or
        sends what cannot be accepted."""
        if isinstance(lapor_id, bool) or not isinstance(lapor_id, int) or lapor_id < 1:
            raise AdoptError(f"{lapor_id!r} is not a LAPOR! id (a positive number)")
        with self.sessions() as session:
            tracked = session.get(TrackedCase, lapor_id)
            if tracked is not None:
                case = session.get(Case, tracked.case_id)
                return Adopted(lapor_id, tracked.case_id, case.register_no if case else "?",
                               created=False, already=True)
        try:
            fetched = self._fetch(lapor_id)
        except NotFound:
            raise AdoptError(f"LAPOR! does not know report {lapor_id} (HTTP 404); "
                             "nothing was stored", not_found=True) from None
        except AuthError:
            raise
        except LaporError as exc:
            raise AdoptError(f"report {lapor_id} could not be read from LAPOR!: {exc}; "
                             "nothing was stored") from None
        if fetched.item is None:
            reason = fetched.rejected.reason if fetched.rejected else "unreadable"
            with self.sessions() as session, session.begin():
                self.puller.store(session, [], {}, PullResult(stream=TRACKING),
                                  [fetched.rejected] if fetched.rejected else [])
            raise AdoptError(f"report {lapor_id}: LAPOR!'s detail cannot be accepted "
                             f"({reason}); it is kept in quarantine, no case was made")
        if fetched.item.id != lapor_id:
            raise AdoptError(f"LAPOR! answered report {fetched.item.id} when asked for "
                             f"{lapor_id}; nothing was stored")
        now = self.clock()
        with self.sessions() as session, session.begin():
            result = PullResult(stream=TRACKING)
            self.puller.store(session, [fetched.item], {str(lapor_id): fetched.raw}, result)
            case = session.scalars(select(Case).where(Case.lapor_id == lapor_id)).one()
            tracked = enrol(session, case.id, lapor_id, "adopted", now)
            self._record_poll(session, tracked, case, fetched, now, first=True,
                              changed=False)
            return Adopted(lapor_id, case.id, case.register_no, created=bool(result.created))

    # -- polling -----------------------------------------------------------------------

    def due(self, refresh_all: bool = False) -> list[plan.Due]:
        """The tracked cases to poll now, most urgent first."""
        now = self.clock().timestamp()
        with self.sessions() as session:
            stmt = select(TrackedCase.lapor_id, TrackedCase.next_due_at,
                          TrackedCase.last_change_at, TrackedCase.closed, TrackedCase.failures)
            if not refresh_all:
                stmt = stmt.where(TrackedCase.next_due_at <= _dt(now))
            rows = session.execute(stmt).all()
        items = [plan.Due(lid, due.timestamp(), plan.interval(
            plan.TrackState(lid, _ts(changed), closed, failures), now, self.cfg))
            for lid, due, changed, closed, failures in rows]
        return plan.order_due(items, now, refresh_all=refresh_all)

    def poll(self, refresh_all: bool = False) -> TrackResult:
        """Poll the due tracked cases (``refresh_all``: every one), within the run's time
        (``tracking.run_seconds``; ``refresh_all`` polls them all)."""
        started = time.perf_counter()
        result = TrackResult()
        todo = deque(self.due(refresh_all))
        result.due = len(todo)
        streak = 0

        def take() -> int | None:
            with self._lock:
                if self.stop.is_set():
                    result.stopped = True
                    return None
                if result.aborted or not todo:
                    return None
                if not plan.fits(time.perf_counter() - started, self.cfg, refresh_all):
                    return None
                return todo.popleft().lapor_id

        def work() -> None:
            nonlocal streak
            while (lid := take()) is not None:
                try:
                    ok = self._poll_one(lid, result)
                except AuthError as exc:
                    with self._lock:
                        result.aborted = f"LAPOR! refused our credentials: {exc}"
                    return
                with self._lock:
                    streak = 0 if ok else streak + 1
                    if streak >= self.cfg.max_consecutive_failures and not result.aborted:
                        result.aborted = (f"{streak} polls in a row failed (last: "
                                          f"{result.errors[-1] if result.errors else '?'})")

        if todo:
            workers = max(1, min(self.cfg.concurrency, len(todo)))
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="track") as pool:
                for fut in [pool.submit(work) for _ in range(workers)]:
                    fut.result()
        result.left = len(todo)
        result.seconds = time.perf_counter() - started
        self._record_run(result)
        log.info(result.summary())
        return result

    def enrol_open_cases(self) -> int:
        """Track every open case with a LAPOR! id not tracked yet (the inbox is gone);
        their first polls are spread over their interval."""
        now = self.clock()
        with self.sessions() as session, session.begin():
            tracked = select(TrackedCase.case_id)
            rows = session.execute(
                select(Case.id, Case.lapor_id, Case.remote_updated_at)
                .where(Case.lapor_id.is_not(None), Case.closed_at.is_(None),
                       Case.id.not_in(tracked))).all()
            values = []
            for case_id, lapor_id, changed in rows:
                state = plan.TrackState(int(lapor_id or 0), _ts(changed))
                values.append({
                    "lapor_id": lapor_id, "case_id": case_id, "origin": "inbox",
                    "tracked_at": now, "last_change_at": changed, "failures": 0,
                    "closed": False, "polls": 0, "seen_followups": None,
                    "next_due_at": _dt(plan.first_due(state, now.timestamp(), self.cfg))})
            if values:
                session.execute(insert(TrackedCase), values)
        if values:
            log.info("tracking %d case(s) pulled from the inbox while it is unavailable",
                     len(values))
        return len(values)

    # -- one case ----------------------------------------------------------------------

    def _fetch(self, lapor_id: int) -> _Fetched:
        item, rejected, raw = self.source.report(lapor_id)
        followups = self.source.followup_listing(lapor_id) if item is not None else Page(
            items=[])
        return _Fetched(item, rejected, raw, followups)

    def _poll_one(self, lapor_id: int, result: TrackResult) -> bool:
        """Poll one case; False when the poll failed (recorded, backed off)."""
        try:
            fetched = self._fetch(lapor_id)
        except AuthError:
            raise
        except LaporError as exc:
            reason = ("LAPOR! answers 404: the report is unknown or no longer ours"
                      if isinstance(exc, NotFound) else str(exc))
            self._failed(lapor_id, reason, result)
            return False
        if fetched.item is None or fetched.item.id != lapor_id:
            reason = (f"detail cannot be accepted: {fetched.rejected.reason}"
                      if fetched.rejected else "detail names another report")
            self._failed(lapor_id, reason, result, fetched.rejected)
            return False
        now = self.clock()
        with self.sessions() as session, session.begin():
            tracked = session.get(TrackedCase, lapor_id)
            if tracked is None:  # no longer tracked meanwhile
                return True
            pulled = PullResult(stream=TRACKING)
            self.puller.store(session, [fetched.item], {str(lapor_id): fetched.raw}, pulled)
            case = session.get(Case, tracked.case_id)
            if case is None:
                return True
            new = self._record_poll(session, tracked, case, fetched, now, first=False,
                                    changed=bool(pulled.updated))
        with self._lock:
            result.polled += 1
            result.stale += pulled.stale
            result.followups += new
            if pulled.updated or new:
                result.changed += 1
        return True

    def _record_poll(self, session: Session, tracked: TrackedCase, case: Case,
                     fetched: _Fetched, now: datetime, *, first: bool, changed: bool) -> int:
        """Follow-ups into history, and the tracked row's schedule; returns how many new
        follow-ups of other parties were recorded."""
        assert fetched.item is not None
        seen = set(tracked.seen_followups or [])
        fresh = sorted((f for f in fetched.followups.items if str(f.id) not in seen),
                       key=lambda f: (f.created_at, f.id))
        theirs = [f for f in fresh if not _OWN.search(f.content)]
        if theirs:
            session.execute(insert(CaseEvent), [{
                "case_id": case.id, "at": now, "side": "remote",
                "actor": (f.institution_from.name if f.institution_from else "LAPOR!")[:200],
                "kind": "remote_followup",
                "changes": {"followup_id": [None, f.id],
                            "created_at": [None, f.created_at.isoformat()]},
                "note": f.content[:2000]} for f in theirs])
            if not first:
                case.is_new = True
                case.updated_at = now
                case.version += 1
                if self.event_sink is not None:
                    self.event_sink(session, "case_changed", case.id, {
                        "changes": {"followups": [None, [f.id for f in theirs]]},
                        "side": "remote"})
        rejected_new = [r for r in fetched.followups.rejected
                        if r.remote_id not in seen and (r.remote_id is not None or first)]
        if rejected_new:
            self.puller.store(session, [], {}, PullResult(stream=TRACKING), rejected_new)
        seen.update(str(f.id) for f in fresh)
        seen.update(r.remote_id for r in rejected_new if r.remote_id is not None)
        noticed = changed or bool(theirs and not first)
        item = fetched.item
        newest_followup = max((f.created_at for f in fetched.followups.items), default=None)
        last_change = plan.latest(_ts(tracked.last_change_at), _ts(item.updated_at),
                                  _ts(newest_followup), now.timestamp() if noticed else None)
        tracked.seen_followups = sorted(seen, key=lambda s: (len(s), s))
        tracked.last_change_at = None if last_change is None else _dt(last_change)
        if noticed:
            tracked.last_change_seen_at = now
        tracked.last_polled_at = now
        tracked.polls += 1
        tracked.failures = 0
        tracked.last_error = None
        tracked.closed = (item.status_code in self.cfg.closed_status_codes
                          or case.closed_at is not None)
        state = plan.TrackState(tracked.lapor_id, last_change, tracked.closed, 0)
        tracked.next_due_at = _dt(plan.next_due(state, now.timestamp(), self.cfg))
        return 0 if first else len(theirs)

    def _failed(self, lapor_id: int, reason: str, result: TrackResult,
                rejected: RejectedItem | None = None) -> None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            tracked = session.get(TrackedCase, lapor_id)
            if tracked is None:
                return
            # A malformed detail is quarantined once per streak of failures, not per poll.
            if rejected is not None and tracked.failures == 0:
                self.puller.store(session, [], {}, PullResult(stream=TRACKING), [rejected])
                with self._lock:
                    result.quarantined += 1
            tracked.failures += 1
            tracked.last_error = reason[:2000]
            tracked.last_polled_at = now
            state = plan.TrackState(lapor_id, _ts(tracked.last_change_at), tracked.closed,
                                    tracked.failures)
            tracked.next_due_at = _dt(plan.next_due(state, now.timestamp(), self.cfg))
        log.warning("tracked report %s: poll failed: %s", lapor_id, reason)
        with self._lock:
            result.failed += 1
            result.errors.append(f"{lapor_id}: {reason}")

    def _record_run(self, result: TrackResult) -> None:
        with self.sessions() as session, session.begin():
            row = session.get(SyncCursor, TRACKING) or SyncCursor(stream=TRACKING)
            now = utcnow()
            if result.aborted:
                row.last_error = result.aborted[:2000]
                row.last_error_at = now
            else:
                row.last_success_at = now
                row.last_error = None
            session.add(row)


__all__ = [
    "NO_INBOX",
    "NO_INBOX_TEXT",
    "TRACKING",
    "AdoptError",
    "Adopted",
    "TrackResult",
    "TrackSource",
    "Tracker",
    "enrol",
    "inbox_unavailable",
    "note_inbox_available",
    "note_inbox_unavailable",
]
