"""The daemon's job bodies: thin calls into the sync and the services.

Each body takes a :class:`JobContext` and returns a small dict of counts for the job's
log line and metrics. Bodies never hold a database transaction across a LAPOR! request
and stop at the next page (pull) or row (push) boundary once ``ctx.stop`` is set.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bridge.app.cycle import pull_and_track
from bridge.errors import BridgeError
from bridge.events import dispatch_pending
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_pending
from bridge.store.models import (
    RemoteInstitution,
    RemoteTemplate,
    SyncCursor,
    utcnow,
)
from bridge.sync.pull import INBOX
from bridge.sync.streams import PUSH_STREAM
from bridge.sync.streams import record_stream as _record_stream

if TYPE_CHECKING:
    from bridge.runtime import Runtime

log = logging.getLogger("bridge.daemon.jobs")



@dataclass(eq=False)
class JobContext:
    """One run of one job: the runtime and the run's own stop signal."""

    rt: Runtime
    job: str
    stop: threading.Event = field(default_factory=threading.Event)


Counts = dict[str, Any]


# -- pull, reconcile, push ---------------------------------------------------------------


def pull(ctx: JobContext, window: timedelta | None = None) -> Counts:
    """Read LAPOR!'s inbox from the cursor (or re-read ``window`` back: reconciliation),
    then poll the tracked cases that are due (an unavailable inbox leaves tracking alone)."""

    with ctx.rt.client() as client:
        result, tracked, _lines = pull_and_track(ctx.rt, client, stop=ctx.stop, window=window)
    counts: Counts = {"inbox": "unavailable"} if result is None else result.as_json()
    if tracked is not None:
        counts.update({"tracked_polled": tracked.polled, "tracked_changed": tracked.changed,
                       "tracked_failed": tracked.failed, "tracked_left": tracked.left})
        counts["stopped"] = bool(counts.get("stopped")) or tracked.stopped
    return counts


def reconcile(ctx: JobContext, days: float) -> Counts:
    return pull(ctx, window=timedelta(days=days))


def push(ctx: JobContext) -> Counts:
    """Deliver the outbox; record the run's outcome in ``sync_cursors`` row ``push``."""
    try:
        with ctx.rt.client() as client:
            pusher = ctx.rt.pusher(client)
            pusher.stop = ctx.stop
            result = pusher.run()
    except Exception as exc:
        record_stream(ctx.rt, PUSH_STREAM, error=f"{type(exc).__name__}: {exc}")
        raise
    if result.errors:
        # The run was aborted (LAPOR! refused our credentials): not a success.
        record_stream(ctx.rt, PUSH_STREAM, error="; ".join(result.errors))
        raise PushAborted("; ".join(result.errors))
    record_stream(ctx.rt, PUSH_STREAM)
    return {
        "delivered": result.delivered,
        "confirmed_by_readback": result.confirmed_by_readback,
        "retried": result.retried,
        "dead": result.dead,
        "stopped": ctx.stop.is_set(),
    }


class PushAborted(BridgeError):
    """The push run stopped before the outbox was worked through."""


def record_stream(rt: Runtime, stream: str, error: str | None = None) -> None:
    """Mark a success (``error=None``) or a failure of ``stream`` in ``sync_cursors``."""
    _record_stream(rt.sessions, stream, error)


# -- plugin events -----------------------------------------------------------------------


def events(ctx: JobContext, batch: int = 200) -> Counts:
    """Dispatch plugin events recorded by the sync and staff actions (leader only: one
    dispatcher per deployment keeps them in order)."""

    dispatched = dropped = failures = 0
    while not ctx.stop.is_set():
        result = dispatch_pending(ctx.rt.sessions, ctx.rt.plugins, limit=batch)
        dispatched += result.dispatched
        dropped += result.dropped
        failures += len(result.failures)
        if result.dispatched + result.dropped < batch:
            break
    return {"dispatched": dispatched, "dropped": dropped, "plugin_failures": failures}


# -- deadlines ---------------------------------------------------------------------------


def deadlines(ctx: JobContext, near_hours: float) -> Counts:
    """The deadline sweep of the services (near and missed deadlines, escalations).

    Each deadline is reported once (the sweep remembers it on the case); the plugin
    events it records are dispatched by the events job.
    """

    now = utcnow()
    # Cases that reached a stage where the system may act on a plugin's earlier advice.
    triage_pending(ctx.rt, now=now)
    result = sweep_deadlines(ctx.rt, now, near=timedelta(hours=near_hours), stop=ctx.stop)
    return {
        "checked": result.checked,
        "near": len(result.near),
        "missed": len(result.missed),
        "escalated": len(result.escalated),
        "blocked": len(result.blocked),
        "failures": len(result.failures),
    }


# -- LAPOR!'s directories ----------------------------------------------------------------


def refresh(ctx: JobContext) -> Counts:
    """Refresh LAPOR!'s institutions and reply templates into the local tables."""
    with ctx.rt.client() as client:
        institutions = client.institutions()
        templates = [] if ctx.stop.is_set() else client.templates()
    now = utcnow()
    counts: Counts = {"institutions": len(institutions), "templates": len(templates)}
    with ctx.rt.sessions() as session, session.begin():
        if institutions:
            _replace(session, RemoteInstitution, {i.id: {"name": i.name} for i in institutions},
                     now)
        if templates:
            _replace(session, RemoteTemplate,
                     {t.id: {"code": t.code, "name": t.name, "content": t.content}
                      for t in templates}, now)
    return counts


def _replace(session: Session, model: Any, rows: dict[int, dict[str, Any]], now: datetime) -> None:
    # An empty answer is more likely a LAPOR! hiccup than a real empty list: callers only
    # replace with a non-empty one, so staff never lose the list they forward with.
    existing = {row.id: row for row in session.scalars(select(model))}
    for rid, values in rows.items():
        row = existing.get(rid)
        if row is None:
            session.add(model(id=rid, refreshed_at=now, **values))
        else:
            for key, value in values.items():
                setattr(row, key, value)
            row.refreshed_at = now
    gone = [rid for rid in existing if rid not in rows]
    if gone:
        session.execute(delete(model).where(model.id.in_(gone)))


def refresh_age(rt: Runtime) -> timedelta | None:
    """How old the institution list is (``None``: never refreshed)."""
    with rt.sessions() as session:
        newest = session.scalar(select(func.max(RemoteInstitution.refreshed_at)))
    return None if newest is None else utcnow() - newest


# -- recaps ------------------------------------------------------------------------------


RecapHook = Callable[["Runtime", str], Any]


def recap_hook() -> RecapHook | None:
    """``bridge.reports.jobs.run_recap`` if the reports feature is installed, else None."""

    try:
        report_jobs = importlib.import_module("bridge.reports.jobs")
    except ModuleNotFoundError as exc:
        if exc.name in ("bridge.reports", "bridge.reports.jobs"):
            return None
        raise
    hook = getattr(report_jobs, "run_recap", None)
    return hook if callable(hook) else None


def recap(ctx: JobContext, kind: str, hook: RecapHook) -> Counts:
    result = hook(ctx.rt, kind)
    counts: Counts = {"period": kind}
    if isinstance(result, dict):
        counts.update({k: v for k, v in result.items() if isinstance(v, int | float | str)})
    elif isinstance(result, list | tuple):
        counts["files"] = len(result)
    return counts


def cursor_time(rt: Runtime) -> datetime | None:
    with rt.sessions() as session:
        row = session.get(SyncCursor, INBOX)
        return None if row is None else row.updated_since


__all__ = [
    "PUSH_STREAM",
    "JobContext",
    "PushAborted",
    "cursor_time",
    "deadlines",
    "events",
    "pull",
    "push",
    "recap",
    "recap_hook",
    "reconcile",
    "record_stream",
    "refresh",
    "refresh_age",
]
