"""What waits to be sent to LAPOR!, and sending it again."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.services.outbox import NoSuchRow, list_outbox, retry, retry_all_dead
from bridge.web import csrf
from bridge.web.page import OUTBOX_KINDS, STATE_LABELS, PageBase, PageError


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
        form = await self.read_form(request)
        return await run_in_threadpool(self._outbox_retry, request, form)

    def _outbox_retry(self, request: Request, form: FormData) -> Response:
        csrf.check(request.session, form.get(csrf.FIELD))
        user = self.require_user(request)
        if not user.holds_any(self.web.retry_roles):
            who = ", ".join(self.role_label(r) for r in self.web.retry_roles)
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.roles_label(user)}) tidak berwenang mengulang "
                f"pengiriman. Yang berwenang: {who}."))
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

