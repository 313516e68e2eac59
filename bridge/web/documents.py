"""``GET /kasus/{id}/dokumen/{kind}``: a case's SOP document as PDF, for signed-in staff.

Role-checked like the other pages: a signed-in account, and (when ``[documents] roles`` is
set) one of those roles. A rahasia reporter's name appears only for a role that may see it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from bridge.config import ConfigError
from bridge.documents import CASE_KINDS, KINDS, DocumentError
from bridge.services.documents import Documents
from bridge.services.queue import CaseNotFound
from bridge.web.views import PageError


def download(page: Any, request: Request) -> Response:
    user = page.require_user(request)
    case_id = int(request.path_params["case_id"])
    kind = str(request.path_params["kind"])
    if kind not in CASE_KINDS:
        raise PageError(404, "Jenis dokumen tidak dikenal", (
            f"Jenis dokumen \"{kind}\" tidak dikenal. Yang tersedia: "
            + ", ".join(KINDS[k] for k in CASE_KINDS) + "."))
    rt = page.rt
    try:
        docs = Documents(rt.sessions, rt.settings, page.workflow)
    except ConfigError as exc:
        raise PageError(500, "Pengaturan dokumen tidak sah", str(exc)) from None
    if docs.cfg.roles and not user.holds_any(docs.cfg.roles):
        who = ", ".join(page.role_label(r) for r in docs.cfg.roles)
        raise PageError(403, "Tidak berwenang", (
            f"Peran Anda ({page.roles_label(user)}) tidak berwenang mengunduh dokumen. "
            f"Peran yang berwenang: {who}."))
    try:
        doc = docs.case_document(
            case_id, kind, now=page.now(), actor=f"{user.full_name} ({user.username})",
            reveal_secret=any(page.workflow.may_see_secret_reporter(r) for r in user.roles))
    except CaseNotFound:
        raise PageError(404, "Pengaduan tidak ditemukan",
                        f"Tidak ada pengaduan dengan nomor {case_id}.") from None
    except DocumentError as exc:
        raise PageError(400, "Dokumen tidak dapat dibuat", exc.pesan) from None
    return Response(doc.content, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{doc.filename}"',
        "Cache-Control": "no-store"})


__all__ = ["download"]
