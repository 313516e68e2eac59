"""What waits to be sent to LAPOR!, and sending it again."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.services.accounts import WebUser
from bridge.services.outbox import NoSuchRow, list_outbox, retry, retry_all_dead
from bridge.web.page import OUTBOX_KINDS, STATE_LABELS, PageBase


class OutboxRoutes(PageBase):
    # -- outbox ----------------------------------------------------------------------

    def outbox(self, request: Request) -> Response:
        user = self.require_user(request)
        with self.rt.sessions() as s:
            rows = list_outbox(s, limit=1000)
        counts = {"pending": 0, "waiting": 0, "dead": 0}
        for r in rows:
            counts[r.state] = counts.get(r.state, 0) + 1
        return self.render(request, "outbox.html", {
            "rows": rows, "counts": counts, "state_labels": STATE_LABELS,
            "kinds": OUTBOX_KINDS, "may_retry": user.holds_any(self.web.retry_roles),
        }, user=user)

    async def outbox_retry(self, request: Request) -> Response:
        return await self.staff_post(request, self._outbox_retry)

    def _outbox_retry(self, request: Request, form: FormData, user: WebUser) -> Response:
        self.require_role(user, self.web.retry_roles, "mengulang pengiriman")
        actor = f"{user.full_name} ({user.username})"
        row_id = request.path_params.get("row_id")
        try:
            with self.rt.sessions() as s, s.begin():
                if row_id is None:
                    ids = retry_all_dead(s, actor)
                    text = f"{len(ids)} kiriman yang gagal dimasukkan kembali ke antrean kirim."
                else:
                    retry(s, row_id, actor)
                    text = f"Kiriman {row_id} dimasukkan kembali ke antrean kirim."
        except NoSuchRow:
            self.flash(request, "error", f"Kiriman {row_id} tidak dalam keadaan gagal (mungkin "
                       "sudah diulang oleh pengguna lain). Tidak ada yang diubah.")
            return RedirectResponse("/kotak-keluar", 303)
        self.flash(request, "ok", text)
        return RedirectResponse("/kotak-keluar", 303)

