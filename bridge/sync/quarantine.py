"""The quarantine: remote items the bridge could not accept, kept whole until a person acts.

The pull writes here (:func:`record_rejected`) and raises the alarm when a whole page, or
more than ``lapor.quarantine_alarm_share`` of a run, was rejected (:class:`RunTally`).
``lapor-bridge quarantine`` lists the items grouped by reason (:func:`list_groups`),
``quarantine retry`` parses the stored payloads again (:func:`retry`) and brings in those
that now pass, and ``quarantine dismiss`` sets items aside. Rows are never deleted: a
resolved row keeps its payload, its last reason, its earlier reasons and its outcome.

Nothing here talks to LAPOR! or knows the pull: the parser and the store are passed in,
so that a retry validates exactly as the client does and stores exactly as the pull does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from bridge.errors import BridgeError
from bridge.lapor.models import RejectedItem, RemoteComplaint
from bridge.store.models import Case, QuarantinedItem, utcnow

ACCEPTED, DISMISSED = "accepted", "dismissed"

#: Rows read or updated per statement: keeps ``IN (...)`` lists well under every
#: driver's parameter limit.
_CHUNK = 500

#: Returns the item, or why it is refused (the client's validation of a listing item).
Parse = Callable[[Any], tuple[RemoteComplaint | None, RejectedItem | None]]
#: Upserts valid items in the given transaction, as the pull does with a page; the dict
#: holds the raw JSON object of each item by its id.
Store = Callable[[Session, list[RemoteComplaint], dict[str, Any]], None]


class QuarantineError(BridgeError):
    """A request about the quarantine that cannot be carried out (an unknown id)."""


# -- reasons -----------------------------------------------------------------------------

_MORE = re.compile(r" \(and \d+ more problems?\)$")
_GOT = re.compile(r" \(got .*\)$")
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"\d[\d,.]*")


def reason_group(reason: str) -> str:
    """The reason with the quoted value taken out, so that the same field and problem
    group together: ``category: input should be a valid string (got …)``."""
    text = _MORE.sub("", reason.strip())
    text = _GOT.sub(" (got …)", text)
    text = _QUOTED.sub("'…'", text)
    return _NUMBER.sub("N", text)


# -- the pull's side ---------------------------------------------------------------------


def record_rejected(session: Session, stream: str, rejected: Sequence[RejectedItem],
                    now: datetime) -> tuple[list[int], list[RejectedItem]]:
    """Quarantine ``rejected`` in the caller's transaction; return the ids of the rows
    now waiting for them, and those of ``rejected`` that count (for the alarm).

    An item already waiting with the very same payload (the pull re-reads: the cursor
    does not move past a rejected page, and every run looks back) is counted on its row,
    not added again. One a person dismissed is counted on the dismissed row and does not
    count: it would otherwise come back, and raise the alarm, at every run.
    """
    keyed = [r.remote_id for r in rejected if r.remote_id is not None]
    known = (QuarantinedItem.stream == stream,
             or_(QuarantinedItem.resolved_at.is_(None), QuarantinedItem.outcome == DISMISSED))
    found: list[QuarantinedItem] = []
    for start in range(0, len(keyed), _CHUNK):
        found.extend(session.scalars(select(QuarantinedItem).where(
            *known, QuarantinedItem.remote_id.in_(keyed[start:start + _CHUNK]))))
    if len(keyed) < len(rejected):
        # Items without an id are matched on their payload alone.
        found.extend(session.scalars(select(QuarantinedItem).where(
            *known, QuarantinedItem.remote_id.is_(None))))
    # A waiting row wins over a dismissed one of the same payload.
    found.sort(key=lambda row: row.resolved_at is None)
    rows = {(row.remote_id, row.payload): row for row in found}
    ids: list[int] = []
    counted: list[RejectedItem] = []
    fresh: dict[tuple[str | None, str], dict[str, Any]] = {}
    for r in rejected:
        key = (r.remote_id, r.payload)
        row = rows.get(key)
        if row is None:
            counted.append(r)
            if key in fresh:
                fresh[key]["seen"] += 1
            else:
                fresh[key] = {"stream": stream, "remote_id": r.remote_id, "reason": r.reason,
                              "payload": r.payload, "at": now, "last_seen_at": now, "seen": 1}
            continue
        row.seen += 1
        row.last_seen_at = now
        if row.resolved_at is not None:
            continue
        counted.append(r)
        if row.reason != r.reason:
            _remember(row, now)
            row.reason = r.reason
        ids.append(row.id)
    if fresh:
        ids.extend(session.scalars(insert(QuarantinedItem).returning(QuarantinedItem.id),
                                   list(fresh.values())))
    return ids, counted


def _remember(row: QuarantinedItem, now: datetime, **extra: Any) -> None:
    row.history = [*(row.history or []), {"at": now.isoformat(), "reason": row.reason,
                                          **extra}]


@dataclass
class RunTally:
    """What one pull run quarantined, for the alarm at its end."""

    ids: list[int] = field(default_factory=list)
    whole_pages: int = 0
    #: reason group -> [count, the latest full reason]
    reasons: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(int(c) for c, _ in self.reasons.values())

    def add(self, ids: Iterable[int], rejected: Sequence[RejectedItem],
            whole_page: bool = False) -> None:
        """Count one page's rejections (``whole_page``: the page accepted none)."""
        self.ids.extend(ids)
        if whole_page and rejected:
            self.whole_pages += 1
        for r in rejected:
            entry = self.reasons.setdefault(reason_group(r.reason), [0, r.reason])
            entry[0] += 1
            entry[1] = r.reason

    def alarm(self, received: int, share: float) -> str | None:
        """The one-line alarm, or None: raised by a whole page quarantined, or by more
        than ``share`` of the items the run read."""
        count = self.count
        total = received + count
        if not count or (not self.whole_pages and count / total <= share):
            return None
        pages = (f", {self.whole_pages} whole page{'s' if self.whole_pages > 1 else ''}"
                 if self.whole_pages else "")
        top, example = top_reason(self.reasons)
        return (f"quarantine alarm: {count} of {total} items quarantined in this pull{pages};"
                f" top reason ({top} item{'s' if top > 1 else ''}): {example}")


def top_reason(reasons: dict[str, list[Any]]) -> tuple[int, str]:
    count, example = max(reasons.values(), key=lambda entry: int(entry[0]))
    return int(count), str(example)


def flag_alarm(session: Session, ids: Sequence[int]) -> None:
    for start in range(0, len(ids), _CHUNK):
        session.execute(update(QuarantinedItem)
                        .where(QuarantinedItem.id.in_(ids[start:start + _CHUNK]))
                        .values(alarm=True))


# -- what status and the staff page show -------------------------------------------------


@dataclass(frozen=True)
class AlarmState:
    """Unresolved items rejected in a run that raised the alarm."""

    items: int
    top_count: int
    top_reason: str
    since: datetime

    def line(self) -> str:
        return (f"quarantine alarm: {self.items} item(s) rejected by the pull wait; top reason"
                f" ({self.top_count}): {self.top_reason}; correct [lapor] then run "
                "`lapor-bridge quarantine retry --all` (see `lapor-bridge quarantine`)")

    def as_json(self) -> dict[str, Any]:
        return {"items": self.items, "top_count": self.top_count,
                "top_reason": self.top_reason, "since": self.since.isoformat()}


def alarm_state(session: Session) -> AlarmState | None:
    open_alarm = (QuarantinedItem.alarm.is_(True), QuarantinedItem.resolved_at.is_(None))
    items, since = session.execute(
        select(func.count(), func.min(QuarantinedItem.at)).where(*open_alarm)).one()
    if not items:
        return None
    # The commonest exact reasons, regrouped: enough to name the top one without reading
    # every row of a large quarantine.
    reasons: dict[str, list[Any]] = {}
    for reason, count in session.execute(
            select(QuarantinedItem.reason, func.count()).where(*open_alarm)
            .group_by(QuarantinedItem.reason).order_by(func.count().desc()).limit(50)):
        entry = reasons.setdefault(reason_group(reason), [0, reason])
        entry[0] += int(count)
    top, example = top_reason(reasons)
    return AlarmState(int(items), top, example, since)


# -- the listing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    id: int
    stream: str
    remote_id: str | None
    reason: str
    at: datetime
    last_seen_at: datetime
    seen: int
    alarm: bool
    retries: int
    outcome: str | None
    case_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "stream": self.stream, "remote_id": self.remote_id,
                "reason": self.reason, "at": self.at.isoformat(),
                "last_seen_at": self.last_seen_at.isoformat(), "seen": self.seen,
                "alarm": self.alarm, "retries": self.retries, "outcome": self.outcome,
                "case_id": self.case_id}


@dataclass
class Group:
    reason: str
    items: list[ItemView] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def newest(self) -> datetime:
        return self.items[0].last_seen_at

    def as_json(self, limit: int | None = None) -> dict[str, Any]:
        shown = self.items if limit is None else self.items[:limit]
        return {"reason": self.reason, "count": self.count,
                "newest": self.newest.isoformat(), "example": self.items[0].reason,
                "items": [i.as_json() for i in shown]}


def list_groups(session: Session, *, resolved: bool = False) -> list[Group]:
    """Quarantined items grouped by :func:`reason_group`, the group with the newest item
    first and newest first within a group. Only waiting items unless ``resolved``."""
    q = QuarantinedItem
    stmt = select(q.id, q.stream, q.remote_id, q.reason, q.at, q.last_seen_at, q.seen, q.alarm,
                  q.retries, q.outcome, q.case_id)
    if not resolved:
        stmt = stmt.where(q.resolved_at.is_(None))
    groups: dict[str, Group] = {}
    for r in session.execute(stmt):
        view = ItemView(r.id, r.stream, r.remote_id, r.reason, r.at, r.last_seen_at or r.at,
                        r.seen, r.alarm, r.retries, r.outcome, r.case_id)
        groups.setdefault(reason_group(r.reason), Group(reason_group(r.reason))).items.append(
            view)
    for g in groups.values():
        g.items.sort(key=lambda i: (i.last_seen_at, i.id), reverse=True)
    return sorted(groups.values(), key=lambda g: (g.newest, g.items[0].id), reverse=True)


# -- retry and dismiss -------------------------------------------------------------------


@dataclass
class RetryResult:
    tried: int = 0
    accepted: int = 0
    #: Given by id but resolved already, or of a stream that cannot be parsed again.
    skipped: list[str] = field(default_factory=list)
    #: reason group -> [count, the latest full reason] of the items that still fail.
    failing: dict[str, list[Any]] = field(default_factory=dict)
    accepted_ids: list[int] = field(default_factory=list)

    @property
    def still_failing(self) -> int:
        return sum(int(c) for c, _ in self.failing.values())

    def summary(self) -> str:
        return (f"retried {self.tried} quarantined item(s): {self.accepted} brought in, "
                f"{self.still_failing} still failing"
                + (f", {len(self.skipped)} skipped" if self.skipped else ""))

    def as_json(self) -> dict[str, Any]:
        return {"tried": self.tried, "accepted": self.accepted,
                "still_failing": self.still_failing, "skipped": list(self.skipped),
                "accepted_ids": list(self.accepted_ids),
                "failing": [{"reason": g, "count": c, "example": e}
                            for g, (c, e) in self.failing.items()]}


def _select_ids(session: Session, ids: Sequence[int] | None) -> list[int]:
    """The rows a command acts on: ``ids`` (each must exist) or every waiting row."""
    if ids is None:
        return list(session.scalars(select(QuarantinedItem.id)
                                    .where(QuarantinedItem.resolved_at.is_(None))
                                    .order_by(QuarantinedItem.id)))
    wanted = list(dict.fromkeys(ids))
    known: set[int] = set()
    for start in range(0, len(wanted), _CHUNK):
        known.update(session.scalars(select(QuarantinedItem.id).where(
            QuarantinedItem.id.in_(wanted[start:start + _CHUNK]))))
    unknown = [str(i) for i in wanted if i not in known]
    if unknown:
        raise QuarantineError(f"no quarantined item with id {', '.join(unknown)}")
    return wanted


def retry(sessions: sessionmaker[Session], parse: Parse, store: Store,
          ids: Sequence[int] | None = None, *, streams: Iterable[str] = ("inbox",),
          now: Callable[[], datetime] = utcnow) -> RetryResult:
    """Parse the payloads of ``ids`` (every waiting item when None) again; store those
    that pass, resolved as "accepted" with their case, and keep the others with their
    new reason (the earlier one goes to ``history``). One transaction per chunk."""
    retryable = set(streams)
    result = RetryResult()
    with sessions() as session:
        chosen = _select_ids(session, ids)
    for start in range(0, len(chosen), _CHUNK):
        with sessions() as session, session.begin():
            rows = session.scalars(select(QuarantinedItem).where(
                QuarantinedItem.id.in_(chosen[start:start + _CHUNK]))
                .order_by(QuarantinedItem.id)).all()
            _retry_chunk(session, rows, parse, store, retryable, now(), result)
    return result


def _retry_chunk(session: Session, rows: Sequence[QuarantinedItem], parse: Parse,
                 store: Store, retryable: set[str], at: datetime, result: RetryResult) -> None:
    passed: list[tuple[QuarantinedItem, RemoteComplaint]] = []
    sources: dict[str, Any] = {}
    for row in rows:
        if row.resolved_at is not None:
            result.skipped.append(f"{row.id}: resolved already ({row.outcome or 'resolved'})")
            continue
        if row.stream not in retryable:
            result.skipped.append(f"{row.id}: items of stream {row.stream!r} cannot be retried")
            continue
        result.tried += 1
        row.retries += 1
        row.retried_at = at
        item: RemoteComplaint | None = None
        refusal: RejectedItem | None = None
        try:
            raw = json.loads(row.payload)
        except ValueError:
            refusal = RejectedItem(remote_id=row.remote_id, payload=row.payload,
                                   reason="payload: not JSON")
        else:
            item, refusal = parse(raw)
        if item is None:
            reason = refusal.reason if refusal is not None else "refused"
            if reason != row.reason:
                _remember(row, at)
                row.reason = reason
            entry = result.failing.setdefault(reason_group(reason), [0, reason])
            entry[0] += 1
            continue
        passed.append((row, item))
        sources[str(item.id)] = raw
    if not passed:
        return
    store(session, [item for _, item in passed], sources)
    lapor_ids = list({item.id for _, item in passed})
    cases = dict(session.execute(select(Case.lapor_id, Case.id)
                                 .where(Case.lapor_id.in_(lapor_ids))).all())
    for row, item in passed:
        row.resolved_at = at
        row.outcome = ACCEPTED
        row.case_id = cases.get(item.id)
        result.accepted += 1
        result.accepted_ids.append(row.id)


def dismiss(sessions: sessionmaker[Session], ids: Sequence[int] | None = None,
            now: Callable[[], datetime] = utcnow) -> int:
    """Set waiting items aside ("dismissed": LAPOR! sent something no config will make
    valid); they stay in the table. Returns how many were dismissed."""
    done = 0
    with sessions() as session, session.begin():
        chosen = _select_ids(session, ids)
        for start in range(0, len(chosen), _CHUNK):
            outcome = session.execute(
                update(QuarantinedItem)
                .where(QuarantinedItem.id.in_(chosen[start:start + _CHUNK]),
                       QuarantinedItem.resolved_at.is_(None))
                .values(resolved_at=now(), outcome=DISMISSED))
            done += int(getattr(outcome, "rowcount", 0) or 0)
    return done


__all__ = [
    "AlarmState",
    "Group",
    "ItemView",
    "Parse",
    "QuarantineError",
    "RetryResult",
    "RunTally",
    "Store",
    "alarm_state",
    "dismiss",
    "flag_alarm",
    "list_groups",
    "reason_group",
    "record_rejected",
    "retry",
]
