"""The composition root: builds the store, the client and the sync parts from settings.

Every face (CLI, daemon, web, tests) starts here, so that they all wire the same pieces
the same way.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import ConfigError, Settings
from bridge.events import dispatch_pending, record_event
from bridge.filemodes import file_mode
from bridge.lapor.budget import RequestBudget
from bridge.lapor.client import LaporClient
from bridge.plugins import PluginHost, load_plugins
from bridge.services.actions import CaseActions
from bridge.services.deadlines import CaseDeadlines
from bridge.services.internal_forward import (
    InternalForwardHook,
    InternalForwarding,
    Receiver,
    ReceiverLookup,
)
from bridge.store.db import make_engine, session_factory
from bridge.store.models import utcnow
from bridge.store.register import RegisterFormat
from bridge.store.schema import ensure_schema
from bridge.sync.pull import EventSink, Puller
from bridge.sync.push import Pusher
from bridge.sync.track import Tracker
from bridge.sync.track_plan import TrackingSettings, tracking_settings
from bridge.workflow.calendar import WorkingCalendar, calendar_from_mapping
from bridge.workflow.defaults import build_workflow
from bridge.workflow.errors import WorkflowProfileError
from bridge.workflow.profile import Workflow

log = logging.getLogger("bridge")


class Runtime:
    """One deployment's live objects. Cheap to build; close() when done."""

    def __init__(self, settings: Settings, *, upgrade_schema: bool = True) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(
            settings.database.url, settings.secrets.database_password, settings.database.echo,
            file_mode=file_mode(settings), schema=settings.database.db_schema,
        )
        try:
            self._build(settings, upgrade_schema)
        except BaseException:
            # Nothing else will close the store of a runtime that failed to build (a
            # locked or broken database, a bad workflow, a plugin that raises on load).
            self.engine.dispose()
            raise

    def _build(self, settings: Settings, upgrade_schema: bool) -> None:
        if upgrade_schema:
            ensure_schema(self.engine)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.stop = threading.Event()
        # One budget per deployment: pull, push and refresh share LAPOR!'s rate limit.
        self.budget = RequestBudget(settings.lapor.requests_per_second)
        try:
            self.calendar: WorkingCalendar = calendar_from_mapping(
                settings.section("calendar"), tz=settings.regency.timezone)
            self.workflow: Workflow = build_workflow(settings.section("workflow"))
        except WorkflowProfileError as exc:
            raise ConfigError(settings.source, exc.key, exc.problem) from None
        self.tracking: TrackingSettings = tracking_settings(settings)
        self.plugins: PluginHost = load_plugins(settings, calendar=self.calendar)
        self.event_sink: EventSink | None = self._record_event
        #: This body's code among the bodies of its deployment, and the lookup of the
        #: others (set by whoever builds the deployment): with it, a forward to one of
        #: them puts the case in its queue (bridge/services/internal_forward.py).
        self.body_code: str = settings.regency.code
        self.receivers: ReceiverLookup | None = None

    @cached_property
    def register_format(self) -> RegisterFormat:
        r = self.settings.regency
        return RegisterFormat(r.register_format, r.code, r.timezone)

    def client(self) -> LaporClient:
        return LaporClient(self.settings.lapor, self.settings.secrets, budget=self.budget)

    def _record_event(self, session: Session, name: str, case_id: int,
                      data: dict[str, Any]) -> None:
        # Only events some plugin listens to are stored: a 100,000-report first pull
        # should not write 100,000 rows nobody reads.
        if self.plugins.implementers(name):
            record_event(session, name, case_id, data)

    @cached_property
    def deadlines(self) -> CaseDeadlines:
        return CaseDeadlines(self.workflow, self.calendar)

    def actions(self, clock: Callable[[], datetime] | None = None) -> CaseActions:
        from bridge.services.notices import action_notices

        hook = (InternalForwardHook(self.body_code, self.settings, self.receivers)
                if self.receivers is not None else None)
        return CaseActions(self.sessions, self.settings, self.workflow,
                           event_sink=self.event_sink, after_change=self.deadlines.refresh,
                           clock=clock or utcnow, notice=action_notices(self),
                           internal_forward=hook)

    def as_receiver(self) -> Receiver:
        """This body as other bodies of its deployment forward to it."""
        return Receiver(self.body_code, self.sessions, self.settings, self.workflow,
                        after_change=self.deadlines.refresh, event_sink=self.event_sink)

    def forwarding(self) -> InternalForwarding | None:
        """Delivery and following of this body's internal forwards (None: a body alone)."""
        if self.receivers is None:
            return None
        return InternalForwarding(self.body_code, self.actions(), self.receivers)

    def pusher(self, client: LaporClient) -> Pusher:
        return Pusher(client, self.sessions, self.settings, event_sink=self.event_sink,
                      stop=self.stop)

    def dispatch_events(self, limit: int = 1000) -> int:
        """Run plugin event hooks for what was committed; returns how many ran."""
        total = 0
        while True:
            result = dispatch_pending(self.sessions, self.plugins, limit=limit)
            done = result.dispatched + result.dropped
            total += done
            if done < limit:
                return total

    def puller(self, client: LaporClient) -> Puller:
        lapor = self.settings.lapor
        return Puller(
            client,
            self.sessions,
            self.register_format,
            page_size=lapor.page_size,
            lookback=timedelta(seconds=lapor.lookback_seconds),
            event_sink=self.event_sink,
            deadline_for=self.deadlines.for_new,
            status_names=dict(lapor.status_names),
            stop=self.stop,
            alarm_share=lapor.quarantine_alarm_share,
            received_log_note=lapor.received_log_note,
        )

    def tracker(self, client: LaporClient) -> Tracker:
        return Tracker(client, self.sessions, self.puller(client), self.tracking,
                       event_sink=self.event_sink, stop=self.stop)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
