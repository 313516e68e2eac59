"""``/ringkasan``: each body's sync at a glance for admins (the lag behind LAPOR!, the
outbox still to go, dead letters and quarantined items). A one-body page shows its own
row; on a Pemda each body's page shows every body the admin administers."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from bridge.locale import SPAN_UNITS_ID, human_span
from bridge.services.accounts import WebUser
from bridge.services.store_health import bodies_figures
from bridge.web.page import PageBase, PageError

#: The bodies an admin may see: (code, name, that body's store sessions).
OverviewSource = Callable[[WebUser], Sequence[tuple[str, str, sessionmaker[Session]]]]


def span(seconds: float | None) -> str:
    """A lag as staff read it: "-" when nothing was pulled yet."""
    return "-" if seconds is None else human_span(seconds, SPAN_UNITS_ID)


class OverviewRoutes(PageBase):
    #: Set by create_app on a Pemda; None: this body alone.
    overview_source: OverviewSource | None = None

    def overview_page(self, request: Request) -> Response:
        user = self.require_user(request)
        if not user.is_admin:
            raise PageError(403, "Tidak berwenang", (
                f"Ringkasan sinkronisasi hanya untuk admin. Peran Anda: "
                f"{self.roles_label(user)}."))
        if self.overview_source is not None:
            bodies = list(self.overview_source(user))
        else:
            regency = self.settings.regency
            bodies = [(self.rt.body_code or regency.code, regency.name, self.rt.sessions)]
        rows = bodies_figures(bodies, self.now())
        totals = {"outbox": sum(r.outbox_depth for r in rows),
                  "dead": sum(r.dead_letters for r in rows),
                  "quarantined": sum(r.state.quarantined for r in rows)}
        return self.render(request, "overview.html", {
            "rows": rows, "totals": totals, "span": span,
        }, user=user)
