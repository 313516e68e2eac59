"""The composition root: builds the store, the client and the sync parts from settings.

Every face (CLI, daemon, web, tests) starts here, so that they all wire the same pieces
the same way.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings, register_section
from bridge.lapor.budget import RequestBudget
from bridge.lapor.client import LaporClient
from bridge.services.actions import CaseActions
from bridge.store.db import ensure_schema, make_engine, session_factory
from bridge.store.register import RegisterFormat
from bridge.sync.pull import EventSink, Puller
from bridge.sync.push import Pusher
from bridge.workflow.defaults import build_workflow
from bridge.workflow.profile import Workflow

# Top-level config sections owned by built-in features (plugins declare their own).
for _section in ("workflow", "calendar", "plugins", "daemon", "web", "reports", "logging"):
    register_section(_section)

log = logging.getLogger("bridge")


class Runtime:
    """One deployment's live objects. Cheap to build; close() when done."""

    def __init__(self, settings: Settings, *, upgrade_schema: bool = True) -> None:
        self.settings = settings
        self.engine: Engine = make_engine(
            settings.database.url, settings.secrets.database_password, settings.database.echo
        )
        if upgrade_schema:
            ensure_schema(self.engine)
        self.sessions: sessionmaker[Session] = session_factory(self.engine)
        self.stop = threading.Event()
        # One budget per deployment: pull, push and refresh share LAPOR!'s rate limit.
        self.budget = RequestBudget(settings.lapor.requests_per_second)
        self.event_sink: EventSink | None = None

    @cached_property
    def register_format(self) -> RegisterFormat:
        r = self.settings.regency
        return RegisterFormat(r.register_format, r.code, r.timezone)

    def client(self) -> LaporClient:
        return LaporClient(self.settings.lapor, self.settings.secrets, budget=self.budget)

    @cached_property
    def workflow(self) -> Workflow:
        return build_workflow(self.settings.section("workflow"))

    def actions(self) -> CaseActions:
        return CaseActions(self.sessions, self.settings, self.workflow,
                           event_sink=self.event_sink)

    def pusher(self, client: LaporClient) -> Pusher:
        return Pusher(client, self.sessions, self.settings, event_sink=self.event_sink,
                      stop=self.stop)

    def dispatch_events(self) -> None:
        """Run plugin event hooks for what was committed (no-op without plugins)."""

    def puller(self, client: LaporClient) -> Puller:
        lapor = self.settings.lapor
        return Puller(
            client,
            self.sessions,
            self.register_format,
            page_size=lapor.page_size,
            lookback=timedelta(seconds=lapor.lookback_seconds),
            event_sink=self.event_sink,
            status_names=dict(lapor.status_names),
            stop=self.stop,
        )

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
