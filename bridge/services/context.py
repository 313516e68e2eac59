"""What the services need from the application, as a protocol.

Triage and the deadline sweep take a :class:`ServiceContext` rather than the runtime, so
the services sit below :mod:`bridge.runtime` (which satisfies the protocol) and never
import it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from bridge.config import Settings
    from bridge.plugins import PluginHost
    from bridge.services.actions import CaseActions
    from bridge.services.deadlines import CaseDeadlines
    from bridge.workflow.calendar import WorkingCalendar
    from bridge.workflow.profile import Workflow

#: Records one case event in the caller's transaction: (session, name, case id, data).
EventSink = Callable[["Session", str, int, dict[str, Any]], None]


class ServiceContext(Protocol):
    """The settings, database, workflow and plugins a service works with."""

    settings: Settings
    sessions: sessionmaker[Session]
    calendar: WorkingCalendar
    workflow: Workflow
    plugins: PluginHost
    event_sink: EventSink | None

    @property
    def deadlines(self) -> CaseDeadlines: ...

    def actions(self, clock: Callable[[], datetime] | None = None) -> CaseActions: ...
