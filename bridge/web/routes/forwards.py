"""A case forwarded between bodies of one deployment (a Pemda): the sender's case page
shows where it stands at the receiver; the receiver may give it back to the sender."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.services.accounts import WebUser
from bridge.services.actions import ActionError, ActionNotAllowed, Actor, BadInput, StaleCase
from bridge.services.internal_forward import (
    forward_views,
    open_arrival,
    return_forward,
    return_roles,
)
from bridge.web import csrf
from bridge.web.page import STALE_MESSAGE, PageBase, PageError, _int, log

#: The longest reason for giving a case back.
NOTE_MAX = 4000


class ForwardRoutes(PageBase):
    def forward_context(self, user: WebUser, case_id: int, stage: str) -> dict[str, Any]:
        """What case.html's forward parts need: the case's forwards to other bodies (the
        receiver read live while open) and whether this user may give it back."""
        forwards = forward_views(self.rt.sessions, case_id, self.rt.receivers)
        from_body = open_arrival(self.rt.sessions, case_id)
        terminal = stage in self.workflow.stages and self.workflow.is_terminal(stage)
        may_return = [r for r in user.roles if r in return_roles(self.workflow)]
        return {"forwards": forwards,
                "return_to": from_body if from_body and may_return and not terminal else None,
                "return_as": may_return[0] if may_return else ""}

    async def return_case(self, request: Request) -> Response:
        form = await self.read_form(request)
        return await run_in_threadpool(self._return_case, request, form)

    def _return_case(self, request: Request, form: FormData) -> Response:
        user = self.require_user(request)
        csrf.check(request.session, form.get(csrf.FIELD))
        case_id: int = request.path_params["case_id"]
        note = str(form.get("alasan") or "").strip()[:NOTE_MAX]
        version = _int(str(form.get("versi") or ""), 0, lo=0, hi=2**31)
        roles = [r for r in user.roles if r in return_roles(self.workflow)]
        if not roles:
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.roles_label(user)}) tidak berwenang mengembalikan "
                "pengaduan kepada pengirim. Tidak ada yang diubah."))
        if not note:
            self.flash(request, "error", "Tuliskan alasan pengembalian. Tidak ada yang diubah.")
            return RedirectResponse(f"/kasus/{case_id}", 303)
        actor = Actor(f"{user.full_name} ({user.username})", roles[0], also=tuple(roles[1:]))
        try:
            return_forward(self.rt.actions(), case_id, actor, note,
                           expected_version=version or None)
        except StaleCase:
            self.flash(request, "error", STALE_MESSAGE)
            return RedirectResponse(f"/kasus/{case_id}", 303)
        except (ActionNotAllowed, BadInput, ActionError) as exc:
            log.info("web: return refused: %s", exc)
            self.flash(request, "error", "Pengaduan ini tidak dapat dikembalikan kepada "
                       "pengirim saat ini. Tidak ada yang diubah.")
            return RedirectResponse(f"/kasus/{case_id}", 303)
        self.flash(request, "ok", "Pengaduan dikembalikan kepada pengirim. Akan kembali ke "
                   "antrean pengirim pada sinkronisasi berikutnya.")
        return RedirectResponse(f"/kasus/{case_id}", 303)
