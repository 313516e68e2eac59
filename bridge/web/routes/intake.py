"""Taking in a complaint that did not come through LAPOR! (``/kasus/baru``).

A letter, the complaint box, a phone call or a visit: the same service as
``lapor-bridge case new``, with attachments, the anonim and rahasia flags and the date
of receipt (the deadline clock starts there, not when the form is typed in). The new
case's register number is shown at once.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.locale import CHANNEL_LABELS
from bridge.services.accounts import WebUser
from bridge.services.actions import LOCAL_CHANNELS, ActionError, Actor, NewCase, Upload
from bridge.services.receipt import BadReceipt, check_received_at, parse_received_at
from bridge.services.triage import triage_new_cases
from bridge.web import csrf, forms
from bridge.web.page import PageBase, log

#: The form's text fields.
FIELDS = ("kanal", "judul", "isi", "kategori", "lokasi", "nama", "telepon", "email",
          "tanggal_terima", "jam_terima")


class IntakeRoutes(PageBase):
    def _may_take_in(self, user: WebUser) -> None:
        self.require_role(user, sorted(self.intake_roles), "mencatat pengaduan baru")

    def _form(self, request: Request, user: WebUser, values: dict[str, str],
              problem: str | None = None, status: int = 200) -> Response:
        channels = [(c, CHANNEL_LABELS.get(c, c)) for c in LOCAL_CHANNELS]
        return self.render(request, "intake.html", {
            "values": values, "problem": problem, "channels": channels,
            "max_files": self.web.max_upload_files,
            "anonim": values.get("anonim") == "1", "rahasia": values.get("rahasia") == "1",
        }, user=user, status=status)

    def intake_form(self, request: Request) -> Response:
        user = self.require_user(request)
        self._may_take_in(user)
        today = self.now().astimezone(ZoneInfo(self.settings.regency.timezone)).date()
        blank = {k: "" for k in FIELDS} | {"anonim": "", "rahasia": ""}
        return self._form(request, user, blank | {"kanal": "surat",
                                                  "tanggal_terima": today.isoformat()})

    async def intake(self, request: Request) -> Response:
        form = await self.read_form(request)
        csrf.check(request.session, form.get(csrf.FIELD))
        uploads: list[Upload] = []
        problem: str | None = None
        try:
            uploads = await self.read_attachments(form)
        except forms.FormProblem as exc:
            problem = str(exc)
        return await run_in_threadpool(self._intake, request, form, uploads, problem)

    def _intake(self, request: Request, form: FormData, uploads: list[Upload],
                problem: str | None) -> Response:
        user = self.require_user(request)
        self._may_take_in(user)
        values = {k: str(form.get(k) or "").strip() for k in FIELDS}
        values["anonim"] = "1" if form.get("anonim") else ""
        values["rahasia"] = "1" if form.get("rahasia") else ""
        if problem is None:
            problem = self._check(values)
        if problem is None:
            try:
                new = self._new_case(values, uploads)
            except BadReceipt as exc:
                problem = _receipt_problem(exc)
        if problem is not None:
            return self._form(request, user, values, problem, status=422)
        acting = next(r for r in user.roles if r in self.intake_roles)  # checked on entry
        actor = Actor(f"{user.full_name} ({user.username})", acting)
        try:
            result = self.rt.actions().new_case(new, actor)
        except ActionError as exc:
            log.info("web: intake refused: %s", exc)
            return self._form(request, user, values,
                              f"Pengaduan tidak dapat dicatat: {exc}. Tidak ada yang disimpan.",
                              status=422)
        triage_new_cases(self.rt, [result.case_id])
        self.rt.dispatch_events()
        self.flash(request, "ok", f"Pengaduan dicatat dengan nomor register "
                   f"{result.register_no}.")
        return RedirectResponse(f"/kasus/{result.case_id}", 303)

    @staticmethod
    def _check(values: dict[str, str]) -> str | None:
        if values["kanal"] not in LOCAL_CHANNELS:
            return "Pilih kanal pengaduan dari daftar."
        if not values["judul"]:
            return "Judul pengaduan wajib diisi."
        if len(values["judul"]) > 500:
            return "Judul pengaduan paling panjang 500 karakter."
        if not values["isi"]:
            return "Isi pengaduan wajib diisi."
        if not values["tanggal_terima"]:
            return "Tanggal terima wajib diisi (hari surat, kotak, telepon atau kunjungan)."
        return None

    def _new_case(self, values: dict[str, str], uploads: list[Upload]) -> NewCase:
        regency = self.settings.regency
        when = values["tanggal_terima"] + (f"T{values['jam_terima']}"
                                           if values["jam_terima"] else "")
        received = parse_received_at(when, regency.timezone)
        # Checked here too, so that the form can say it in Bahasa Indonesia.
        check_received_at(received, self.now(), regency.timezone, regency.started_on)
        anonymous = values["anonim"] == "1"
        reporter: dict[str, Any] | None = None
        if not anonymous:
            reporter = {k: values[f] for k, f in (("name", "nama"), ("phone", "telepon"),
                                                  ("email", "email")) if values[f]} or None
        return NewCase(
            title=values["judul"], content=values["isi"], channel=values["kanal"],
            category=values["kategori"] or None, location=values["lokasi"] or None,
            reporter=reporter, is_anonymous=anonymous, is_secret=values["rahasia"] == "1",
            received_at=received, attachments=uploads)


def _receipt_problem(exc: BadReceipt) -> str:
    text = str(exc)
    if "future" in text:
        return "Tanggal terima tidak boleh di masa depan."
    if "start date" in text:
        return ("Tanggal terima lebih awal dari tanggal mulai layanan pengaduan di "
                "kabupaten ini.")
    return "Tanggal terima tidak dapat dibaca: tulis sebagai TTTT-BB-HH (jam JJ:MM)."


__all__ = ["IntakeRoutes"]
