"""The queue, and tracking a LAPOR! id from it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from bridge.app.cycle import adopt
from bridge.lapor.errors import LaporError
from bridge.locale import CHANNEL_LABELS
from bridge.services.accounts import WebUser
from bridge.services.queue import (
    QueueFilter,
    QueueRow,
    list_queue,
)
from bridge.sync.track import Adopted
from bridge.web.page import (
    PageBase,
    _int,
    log,
)


class QueueRoutes(PageBase):
    # -- queue -----------------------------------------------------------------------

    def _filter(self, request: Request) -> tuple[QueueFilter, dict[str, str], int]:
        q = request.query_params
        params = {k: q.get(k, "").strip()[:200] for k in
                  ("tahap", "klasifikasi", "kanal", "opd", "cari")}
        params["lewat"] = "1" if q.get("lewat") in ("1", "on", "ya") else ""
        page = _int(q.get("hal"), 1)
        flt = QueueFilter(
            stage=params["tahap"] or None, severity=params["klasifikasi"] or None,
            channel=params["kanal"] or None, opd=params["opd"] or None,
            text=params["cari"] or None, overdue=bool(params["lewat"]),
            limit=self.web.page_size + 1, offset=(page - 1) * self.web.page_size)
        return flt, params, page

    def _rows(self, flt: QueueFilter) -> list[QueueRow]:
        with self.rt.sessions() as s:
            return list_queue(s, flt)

    def _rows_context(self, rows: Sequence[QueueRow]) -> dict[str, Any]:
        shown = list(rows[: self.web.page_size])
        return {
            "rows": shown,
            "row_state": {r.id: self.deadline_state(r.deadline_at) for r in shown},
            "new_count": sum(1 for r in shown if r.is_new),
        }

    def queue(self, request: Request) -> Response:
        user = self.require_user(request)
        flt, params, page = self._filter(request)
        rows = self._rows(flt)
        query = urlencode({k: v for k, v in params.items() if v})
        ctx = {
            **self._rows_context(rows), "params": params, "page": page,
            "has_next": len(rows) > self.web.page_size, "query": query,
            "stages": [(n, s.label) for n, s in self.workflow.stages.items()],
            "classes": [(n, c.label) for n, c in self.workflow.profile.classes.items()],
            "channels": list(CHANNEL_LABELS.items()),
            "opds": [(o.code, o.name) for o in self.settings.opds],
            "may_track": user.holds_any(self.intake_roles),
            "poll_seconds": self.web.poll_seconds,
            "poll_url": self.base + "/antrean/data?" + urlencode(
                {**{k: v for k, v in params.items() if v}, "hal": str(page)}),
        }
        return self.render(request, "queue.html", ctx, user=user)

    def queue_data(self, request: Request) -> Response:
        """The queue's rows as an HTML fragment in JSON, for the page's short polling."""
        user = self.current_user(request)
        if user is None:
            return JSONResponse({"error": "Sesi berakhir; silakan masuk kembali.",
                                 "login": self.base + "/masuk?next=/antrean"}, status_code=401)
        flt, _params, _page = self._filter(request)
        ctx = self._rows_context(self._rows(flt))
        template = self.templates.get_template("_queue_rows.html")
        html = template.render({**ctx, "tz": self.tz})
        etag = '"' + hashlib.sha256(html.encode()).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return JSONResponse({"html": html, "count": len(ctx["rows"]),
                             "new": ctx["new_count"],
                             "ids": [r.id for r in ctx["rows"]]}, headers=headers)

    # -- tracking a LAPOR! id ----------------------------------------------------------

    async def track(self, request: Request) -> Response:
        return await self.staff_post(request, self._track)

    def _track(self, request: Request, form: FormData, user: WebUser) -> Response:
        self.require_role(user, sorted(self.intake_roles), "melacak laporan LAPOR!")
        text = str(form.get("lapor_id") or "").strip()
        if not text.isdigit() or int(text) < 1 or len(text) > 18:
            self.flash(request, "error", "ID LAPOR! berupa angka (misalnya 1916449). "
                       "Tidak ada yang disimpan.")
            return RedirectResponse("/antrean", 303)
        lapor_id = int(text)
        try:
            [outcome] = adopt(self.rt, [lapor_id])
        except LaporError as exc:
            log.warning("web: tracking %s failed: %s", lapor_id, exc)
            self.flash(request, "error", "LAPOR! tidak dapat dihubungi sekarang. Tidak ada "
                       "yang disimpan; coba lagi nanti.")
            return RedirectResponse("/antrean", 303)
        if not isinstance(outcome, Adopted):
            log.info("web: tracking %s refused: %s", lapor_id, outcome)
            self.flash(request, "error", (
                f"LAPOR! tidak mengenal ID {lapor_id}. Tidak ada yang disimpan."
                if outcome.not_found else
                f"Laporan LAPOR! {lapor_id} tidak dapat dibaca ({outcome}). Tidak ada yang "
                "disimpan."))
            return RedirectResponse("/antrean", 303)
        self.flash(request, "ok", (
            f"Laporan LAPOR! {lapor_id} sudah dilacak sebagai {outcome.register_no}."
            if outcome.already else
            f"Laporan LAPOR! {lapor_id} dilacak sebagai {outcome.register_no}; perubahan dan "
            "tindak lanjut di LAPOR! akan masuk otomatis."))
        return RedirectResponse(f"/kasus/{outcome.case_id}", 303)

