"""Lifecycle events for plugins: recorded in the change's transaction, dispatched after commit.

Recording (:func:`record_event`, :func:`record_notification`) adds a
:class:`~bridge.store.models.PendingEvent` row in the caller's session, so the event exists
if and only if the change it describes was committed. :func:`dispatch_pending` later reads
the rows in id order (the order they were recorded), calls the hook with a snapshot of the
case as committed, and deletes each row once every plugin ran.

Guarantees and the choices behind them:

* **After commit.** Plugins never see a change that may still roll back.
* **In order.** One event is finished before the next is started; run one dispatcher per
  deployment (the daemon's lease holder).
* **At least once.** A row is deleted only after all plugins ran. If the process dies in
  between, the event is dispatched again with the same ``event_id``; plugins that have
  side effects outside the bridge should remember the ids they handled.
* **A failing plugin is not retried.** Plugin failures (exception, time-out, wrong return)
  are logged with the plugin's name and *flagged on the case* (a ``plugin_failed``
  history entry and ``Case.attention``), then the event is deleted. Re-dispatching would
  run the plugins that succeeded a second time (a second e-mail to the Kepala Dinas) and a
  deterministic bug would fail forever and hold up every later event; a person looking at
  the flagged case is the better retry. Channels that expect transient failures
  (``notify_webhook``) retry inside their own call.
* **Poison events.** Each row's ``attempts`` is counted up and committed *before* the
  plugins run. A row found with ``attempts >= max_attempts`` has crashed the dispatcher
  that many times (e.g. a plugin that kills the process); it is flagged and dropped
  without calling the plugins again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, defer, sessionmaker

from bridge.domain import CaseSnapshot, Notification, snapshot_from_row
from bridge.hookspecs import EVENT_HOOKS, event_arguments
from bridge.plugins import PluginFailure, PluginHost
from bridge.store.models import Case, CaseEvent, PendingEvent, utcnow

log = logging.getLogger("bridge.events")

#: The pending-event name of a notification waiting to be handed to the channels.
NOTIFY_EVENT = "notify"

_DATETIME_TAG = "$datetime"
_DATE_TAG = "$date"

#: ``(session, event, failures)``: flag a case whose plugins failed, in the row's transaction.
FailureHandler = Callable[[Session, PendingEvent, list[PluginFailure]], None]
#: ``(session, case_id)``: the committed case as plugins see it, or ``None`` if it is gone.
CaseLoader = Callable[[Session, int], CaseSnapshot | None]


def encode(value: Any) -> Any:
    """Make event data JSON-able, keeping datetimes recognisable for :func:`decode`."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("event data: naive datetime; times must be timezone-aware")
        return {_DATETIME_TAG: value.isoformat()}
    if isinstance(value, date):
        return {_DATE_TAG: value.isoformat()}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"event data: {type(value).__name__} is not JSON-able")


def decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_DATETIME_TAG}:
            return datetime.fromisoformat(value[_DATETIME_TAG])
        if set(value) == {_DATE_TAG}:
            return date.fromisoformat(value[_DATE_TAG])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def record_event(
    session: Session, name: str, case_id: int | None, data: Mapping[str, Any] | None = None
) -> None:
    """Record lifecycle event ``name`` of ``case_id`` in the caller's transaction.

    ``name`` is a lifecycle hook (``case_received``, ``case_changed``, ...) and ``data``
    its own arguments (see :mod:`bridge.hookspecs`); unknown names or arguments raise
    ``ValueError`` now rather than fail later in the dispatcher. Matches the sync's
    ``EventSink`` signature.
    """
    session.add(PendingEvent(**event_row(name, case_id, data)))


def event_row(name: str, case_id: int | None, data: Mapping[str, Any] | None = None,
              at: datetime | None = None) -> dict[str, Any]:
    """The ``pending_events`` row of :func:`record_event`, checked the same way, for a
    caller that inserts many at once (``session.execute(insert(PendingEvent), rows)``)."""
    if name not in EVENT_HOOKS:
        raise ValueError(f"unknown event {name!r}; known: {', '.join(EVENT_HOOKS)}")
    if case_id is None:
        raise ValueError(f"event {name!r} needs a case id")
    payload = dict(data or {})
    allowed = event_arguments(name)
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise ValueError(f"event {name!r} takes {allowed}, not {unknown}")
    return {"name": name, "case_id": case_id, "data": encode(payload),
            "created_at": at or utcnow(), "attempts": 0}


def notification_row(notification: Notification, at: datetime | None = None
                     ) -> dict[str, Any]:
    """The ``pending_events`` row that queues ``notification`` (see :func:`event_row`)."""
    return {"name": NOTIFY_EVENT, "case_id": notification.case_id,
            "data": encode(notification.to_dict()), "created_at": at or utcnow(),
            "attempts": 0}


def record_notification(session: Session, notification: Notification) -> None:
    """Queue ``notification`` for the channels, to be sent after the caller commits."""
    session.add(PendingEvent(**notification_row(notification)))


def load_snapshot(session: Session, case_id: int) -> CaseSnapshot | None:
    case = session.get(Case, case_id)
    return None if case is None else snapshot_from_row(case)


def flag_case(session: Session, event: PendingEvent, failures: list[PluginFailure]) -> None:
    """Default failure handler: a ``plugin_failed`` history entry and ``Case.attention``.

    A digest notification (no case of its own) is charged to every case it lists.
    The services layer may pass its own handler to :func:`dispatch_pending` instead.
    """
    note = "; ".join(str(f) for f in failures)
    for case_id in event_cases(event):
        case = session.get(Case, case_id)
        if case is None:
            continue
        for failure in failures:
            session.add(CaseEvent(case_id=case.id, at=utcnow(), side="system",
                                  actor=f"plugin:{failure.plugin}", kind="plugin_failed",
                                  changes={"hook": failure.hook, "failure": failure.kind,
                                           "event": event.name, "event_id": event.id},
                                  note=failure.message))
        attention = f"Plugin gagal saat {event.name} (event {event.id}): {note}"
        case.attention = attention if not case.attention else f"{case.attention}\n{attention}"


def event_cases(event: PendingEvent) -> list[int]:
    """The cases a pending event is about: its own, or those a digest notification lists."""
    if event.case_id is not None:
        return [event.case_id]
    if event.name != NOTIFY_EVENT or not isinstance(event.data, dict):
        return []
    listed = (event.data.get("data") or {}).get("case_ids") or []
    return [int(i) for i in listed if isinstance(i, int)]


@dataclass
class DispatchResult:
    dispatched: int = 0
    failures: list[PluginFailure] = field(default_factory=list)
    #: Events dropped without running plugins (case gone, poison event).
    dropped: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.dropped


def dispatch_pending(
    sessions: sessionmaker[Session],
    host: PluginHost,
    *,
    limit: int = 100,
    max_attempts: int = 3,
    on_failure: FailureHandler = flag_case,
    load_case: CaseLoader = load_snapshot,
) -> DispatchResult:
    """Dispatch up to ``limit`` pending events in id order; see the module docstring.

    Events never tried before are claimed together (their attempts counted in one
    statement), their cases read in one query, their plugins called one event at a time,
    and the finished rows deleted together. An event already claimed once (a dispatcher
    died while it ran) is taken on its own, so that a poison event's attempts are its own
    and never charged to the events claimed beside it.
    """
    result = DispatchResult()
    with sessions() as session:
        head = session.execute(select(PendingEvent.id, PendingEvent.attempts)
                               .order_by(PendingEvent.id).limit(limit)).all()
    run: list[int] = []
    for event_id, attempts in head:
        if attempts:
            _dispatch_claimed(sessions, host, run, max_attempts, on_failure, load_case,
                              result)
            run = []
            _dispatch_claimed(sessions, host, [event_id], max_attempts, on_failure,
                              load_case, result)
        else:
            run.append(event_id)
    _dispatch_claimed(sessions, host, run, max_attempts, on_failure, load_case, result)
    return result


def _dispatch_claimed(
    sessions: sessionmaker[Session],
    host: PluginHost,
    ids: list[int],
    max_attempts: int,
    on_failure: FailureHandler,
    load_case: CaseLoader,
    result: DispatchResult,
) -> None:
    if not ids:
        return
    with sessions() as session, session.begin():
        # Counted and committed before any plugin runs (poison events, see above).
        session.execute(update(PendingEvent).where(PendingEvent.id.in_(ids))
                        .values(attempts=PendingEvent.attempts + 1)
                        .execution_options(synchronize_session=False))
        rows = session.execute(select(PendingEvent.id, PendingEvent.name, PendingEvent.case_id,
                                      PendingEvent.data, PendingEvent.attempts)
                               .where(PendingEvent.id.in_(ids))
                               .order_by(PendingEvent.id)).all()
        wanted = {r.case_id for r in rows if r.name != NOTIFY_EVENT and r.case_id is not None}
        cases = _load_cases(session, wanted, load_case)
    finished: list[int] = []
    failed: dict[int, list[PluginFailure]] = {}
    for event_id, name, case_id, raw, attempts in rows:
        data = decode(raw or {})
        failures: list[PluginFailure] = []
        dropped = False
        if attempts > max_attempts:
            failures = [PluginFailure("(dispatcher)", name, "error",
                                      f"event {event_id} dropped after {attempts - 1} "
                                      "dispatch attempts that never finished", case_id)]
            log.error("%s", failures[0])
            dropped = True
        elif name == NOTIFY_EVENT:
            failures = host.notify(Notification.from_dict(data))
        elif (case := cases.get(case_id) if case_id is not None else None) is None:
            log.error("event %s %r: case %s not found; dropped", event_id, name, case_id)
            dropped = True
        else:
            try:
                failures = host.emit(name, case, event_id=event_id, **data)
            except ValueError as exc:  # recorded by an older version with other arguments
                failures = [PluginFailure("(dispatcher)", name, "error", str(exc), case_id)]
                log.error("event %s: %s", event_id, exc)
        finished.append(event_id)
        if failures:
            failed[event_id] = failures
        result.dispatched += 0 if dropped else 1
        result.dropped += 1 if dropped else 0
        result.failures.extend(failures)
    with sessions() as session, session.begin():
        for event_id, failures in failed.items():
            event = session.get(PendingEvent, event_id)
            if event is not None:
                on_failure(session, event, failures)
        session.execute(delete(PendingEvent).where(PendingEvent.id.in_(finished))
                        .execution_options(synchronize_session=False))


def _load_cases(session: Session, ids: set[int], load_case: CaseLoader
                ) -> dict[int, CaseSnapshot]:
    """The committed cases of a claimed run of events: one query with the default loader."""
    if load_case is not load_snapshot:
        found = {cid: load_case(session, cid) for cid in ids}
        return {cid: snap for cid, snap in found.items() if snap is not None}
    if not ids:
        return {}
    rows = session.scalars(select(Case).where(Case.id.in_(list(ids)))
                           .options(defer(Case.raw), defer(Case.attachments)))
    return {row.id: snapshot_from_row(row) for row in rows}


def pending_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(PendingEvent)) or 0)


__all__ = [
    "NOTIFY_EVENT",
    "DispatchResult",
    "decode",
    "dispatch_pending",
    "encode",
    "event_cases",
    "event_row",
    "flag_case",
    "load_snapshot",
    "notification_row",
    "pending_count",
    "record_event",
    "record_notification",
]
