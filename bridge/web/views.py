"""The staff page's handlers: one mixin per area (:mod:`bridge.web.routes`) on the shared
:class:`bridge.web.page.PageBase`. Reads go through bridge.services.queue/outbox; every
write through bridge.services.actions/outbox (and, for "opened", :func:`mark_seen`).

GET handlers are plain functions (Starlette runs them in its thread pool, since the store
is synchronous); POST handlers read the form, then do their work in the thread pool.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.web.page import PageError, SignInRequired, template_filters
from bridge.web.routes.case import CaseRoutes
from bridge.web.routes.intake import IntakeRoutes
from bridge.web.routes.outbox import OutboxRoutes
from bridge.web.routes.overview import OverviewRoutes
from bridge.web.routes.queue import QueueRoutes
from bridge.web.routes.recap import RecapRoutes
from bridge.web.routes.signin import SignInRoutes


class StaffPage(SignInRoutes, QueueRoutes, IntakeRoutes, CaseRoutes, OutboxRoutes,
                RecapRoutes, OverviewRoutes):
    """The staff page: every area's routes on one object (see bridge.web.app)."""

    def home(self, request: Request) -> Response:
        return RedirectResponse("/antrean", 303)


__all__ = ["PageError", "SignInRequired", "StaffPage", "template_filters"]
