"""One case: its page and the staff actions on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.locale import CHANNEL_LABELS
from bridge.services.accounts import WebUser
from bridge.services.actions import (
    ActionError,
    ActionNotAllowed,
    Actor,
    BadInput,
    StaleCase,
)
from bridge.services.outbox import list_outbox
from bridge.services.queue import (
    HIDDEN_ANONYMOUS,
    CaseDetail,
    CaseNotFound,
    case_detail,
    case_version,
    mark_seen,
)
from bridge.web import csrf, forms
from bridge.web.page import (
    CHANGE_LABELS,
    EVENT_LABELS,
    OUTBOX_KINDS,
    SIDE_LABELS,
    STALE_MESSAGE,
    STATE_LABELS,
    DeadlineView,
    PageError,
    _int,
    _safe_url,
    _show,
    log,
)
from bridge.web.routes.forwards import ForwardRoutes
from bridge.workflow.errors import MissingFields


class CaseRoutes(ForwardRoutes):
    # -- case ------------------------------------------------------------------------

    def case_page(self, request: Request) -> Response:
        user = self.require_user(request)
        case_id = request.path_params["case_id"]
        with self.rt.sessions() as s, s.begin():
            mark_seen(s, case_id)
        return self.render_case(request, user, case_id)

    def _load_case(self, user: WebUser, case_id: int) -> tuple[CaseDetail, Any]:
        with self.rt.sessions() as s:
            try:
                detail = case_detail(s, case_id, any(
                    self.workflow.may_see_secret_reporter(r) for r in user.roles))
            except CaseNotFound:
                raise PageError(404, "Pengaduan tidak ditemukan",
                                f"Tidak ada pengaduan dengan nomor {case_id}.") from None
            if detail.case.id != case_id:  # find_case also matches register/LAPOR! ids
                raise PageError(404, "Pengaduan tidak ditemukan",
                                f"Tidak ada pengaduan dengan nomor {case_id}.")
            outbox = list_outbox(s, case_id=case_id)
            deadlines = self._deadlines(s, case_id)
            return detail, {"version": case_version(s, case_id) or 0, "outbox": outbox,
                            "deadlines": deadlines}

    def _deadlines(self, session: Session, case_id: int) -> list[DeadlineView]:
        calc = getattr(self.rt, "deadlines", None)
        if calc is None:
            return []
        try:
            found = calc.of_case(session, case_id)
        except Exception:  # noqa: BLE001 - a broken calendar must not hide the case
            log.exception("web: deadlines of case %s could not be computed", case_id)
            return []
        out = []
        for d in found:
            if d.met_at is not None:
                state = "terlambat" if d.met_late else "terpenuhi"
            else:
                state = self.deadline_state(d.due_at)
            out.append(DeadlineView(d.label, d.due_at, d.met_at, d.basis, state))
        return out

    def render_case(self, request: Request, user: WebUser, case_id: int, *,
                    status: int = 200, error: str | None = None,
                    failed_form: str | None = None,
                    values: Mapping[str, str] | None = None) -> Response:
        detail, extra = self._load_case(user, case_id)
        c = detail.case
        done = self._approvals_done(detail.data)
        on_lapor = c.lapor_id is not None or c.channel == "lapor" or any(
            r.kind == "create" for r in extra["outbox"])
        action_forms = forms.forms_for_roles(self.workflow, self.settings, c.stage,
                                             user.roles, done, on_lapor)
        ctx = {
            "d": detail, "c": c, "forms": action_forms, "error": error,
            "version": extra["version"],
            "failed_form": failed_form, "values": dict(values or {}),
            "outbox": extra["outbox"], "deadlines": extra["deadlines"],
            "deadline_state": self.deadline_state(c.deadline_at),
            "approvals": forms.approval_status(self.workflow, done, c.stage),
            "history": [self._event_view(e) for e in reversed(detail.history)],
            "reporter_hidden": isinstance(detail.reporter, str),
            "reporter_is_anon": detail.reporter == HIDDEN_ANONYMOUS,
            "stage_label": self.workflow.stage_label(c.stage),
            "severity_label": self._class_label(c.severity),
            "state_labels": STATE_LABELS, "outbox_kinds": OUTBOX_KINDS,
            "is_terminal": c.stage in self.workflow.stages and self.workflow.is_terminal(
                c.stage),
            "max_files": self.web.max_upload_files,
            "safe_url": _safe_url, "role_field": forms.ROLE_FIELD,
            **self.forward_context(user, case_id, c.stage),
        }
        return self.render(request, "case.html", ctx, status=status, user=user)

    @staticmethod
    def _approvals_done(data: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        raw = data.get("approvals_done") or {}
        if not isinstance(raw, Mapping):
            return {}
        return {str(k): tuple(str(r) for r in v) for k, v in raw.items()
                if isinstance(v, list)}

    def _event_view(self, e: Mapping[str, Any]) -> dict[str, Any]:
        kind = str(e.get("kind"))
        changes = e.get("changes") or {}
        label = EVENT_LABELS.get(kind)
        if label is None:
            rule = next((r for r in self.workflow.rules if r.action == kind), None)
            label = rule.label if rule and rule.label else kind
        step = changes.get("step") if isinstance(changes, Mapping) else None
        if isinstance(step, list) and len(step) == 2 and step[1]:
            kinds = self.workflow.profile.step_kinds
            label = kinds[step[1]].label if step[1] in kinds else str(step[1])
        lines = []
        if isinstance(changes, Mapping):
            for key, pair in changes.items():
                if key == "step":
                    continue
                if isinstance(pair, list) and len(pair) == 2:
                    old, new = pair
                else:
                    old, new = None, pair
                if key == "stage":
                    old = self.workflow.stage_label(old) if old else old
                    new = self.workflow.stage_label(new) if new else new
                elif key == "channel":
                    new = CHANNEL_LABELS.get(str(new), new)
                elif key == "approval" and isinstance(new, Mapping):
                    new = self._approval_text(new)
                lines.append((CHANGE_LABELS.get(key, key), _show(old, self.tz),
                              _show(new, self.tz)))
        try:
            at = datetime.fromisoformat(str(e.get("at")))
        except ValueError:
            at = None
        return {"at": at, "side": SIDE_LABELS.get(str(e.get("side")), e.get("side")),
                "side_key": e.get("side"), "actor": e.get("actor"), "label": label,
                "changes": lines, "note": e.get("note")}

    def _approval_text(self, entry: Mapping[str, Any]) -> str:
        document = str(entry.get("document") or "")
        chains = self.workflow.profile.approvals
        doc_label = chains[document].label if document in chains else document
        kind = "Tanda tangan" if entry.get("kind") == "tanda_tangan" else "Paraf"
        text = f"{kind} {doc_label} oleh {entry.get('by') or '-'}"
        if entry.get("number"):
            text += f", nomor {entry['number']}"
        return text

    async def case_action(self, request: Request) -> Response:
        form = await self.read_form(request)
        csrf.check(request.session, form.get(csrf.FIELD))
        try:
            uploads = await self.read_attachments(form)
        except forms.FormProblem as exc:
            return await run_in_threadpool(self._action_problem, request, form, exc)
        return await run_in_threadpool(self._case_action, request, form, uploads)

    def _action_problem(self, request: Request, form: FormData,
                        problem: forms.FormProblem) -> Response:
        user = self.require_user(request)
        case_id = request.path_params["case_id"]
        key = request.path_params["key"]
        spec = self._spec_for(user, case_id, key)
        return self.render_case(request, user, case_id, status=400, error=str(problem),
                                failed_form=key,
                                values=forms.prefill(form, spec) if spec else None)

    def _spec_for(self, user: WebUser, case_id: int, key: str) -> forms.ActionForm | None:
        detail, extra = self._load_case(user, case_id)
        c = detail.case
        on_lapor = c.lapor_id is not None or c.channel == "lapor"
        found = forms.forms_for_roles(self.workflow, self.settings, c.stage, user.roles,
                                      self._approvals_done(detail.data), on_lapor)
        return next((f for f in found if f.key == key), None)

    def _case_action(self, request: Request, form: FormData, uploads: list[Any]) -> Response:
        user = self.require_user(request)
        case_id: int = request.path_params["case_id"]
        key: str = request.path_params["key"]
        rule = next((r for r in self.workflow.rules if r.key == key), None)
        if rule is None:
            raise PageError(404, "Tindakan tidak dikenal",
                            "Tindakan ini tidak ada dalam alur kerja yang berlaku.")
        version = _int(str(form.get("versi") or ""), 0, lo=0, hi=2**31)
        if version == 0:
            raise PageError(400, "Formulir tidak lengkap",
                            "Formulir tidak lengkap (versi pengaduan tidak ada). Muat ulang "
                            "halaman, lalu coba lagi.")
        detail, _extra = self._load_case(user, case_id)
        c = detail.case
        label = rule.label or rule.action

        def again(status: int, message: str, spec: forms.ActionForm | None = None) -> Response:
            kept = forms.prefill(form, spec) if spec else {
                k: v for k, v in form.items() if isinstance(v, str) and k not in (
                    csrf.FIELD, "versi")}
            return self.render_case(request, user, case_id, status=status, error=message,
                                    failed_form=key, values=kept)

        with self.rt.sessions() as s:
            current_version = case_version(s, case_id)
        if current_version != version:
            return again(409, STALE_MESSAGE)
        chosen = str(form.get(forms.ROLE_FIELD) or "")
        if chosen and chosen not in user.roles:
            raise PageError(403, "Tidak berwenang", (
                f"Akun Anda tidak memegang peran «{self.role_label(chosen)}». Peran Anda: "
                f"{self.roles_label(user)}. Tidak ada yang diubah."))
        if not user.holds_any(rule.roles):
            who = ", ".join(self.role_label(r) for r in sorted(rule.roles)) or "-"
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.roles_label(user)}) tidak berwenang melakukan "
                f"«{label}». Menurut SOP, tindakan ini dilakukan oleh: {who}."))
        spec = self._spec_for(user, case_id, key)
        if spec is None:
            if c.stage not in rule.from_stages:
                return again(409, (f"«{label}» tidak dapat dilakukan pada tahap "
                                   f"«{self.workflow.stage_label(c.stage)}». Tidak ada yang "
                                   "diubah."))
            raise PageError(403, "Tidak berwenang", (
                f"«{label}» belum dapat Anda lakukan pada pengaduan ini sekarang (misalnya "
                "belum giliran Anda dalam rantai paraf/tanda tangan). Tidak ada yang diubah."))
        if spec.unavailable:
            return again(400, spec.unavailable, spec)
        try:
            values = forms.read_values(form, spec)
        except forms.FormProblem as exc:
            return again(400, str(exc), spec)
        if chosen and chosen not in spec.roles:
            return again(403, (f"Sebagai {self.role_label(chosen)}, Anda tidak berwenang "
                               f"melakukan «{label}» pada pengaduan ini sekarang. Pilih "
                               "peran lain. Tidak ada yang diubah."), spec)
        # Several of the user's roles may do it and none was picked: the first one acts
        # (the account's order, its primary role first).
        actor = Actor(f"{user.full_name} ({user.username})", chosen or spec.roles[0])
        try:
            result = forms.run_action(self.rt.actions(), spec, case_id, actor, values,
                                      uploads, version)
        except StaleCase:
            return again(409, STALE_MESSAGE, spec)
        except ActionNotAllowed as exc:
            if isinstance(exc.__cause__, MissingFields):
                return again(400, "Isian wajib belum lengkap untuk «" + label + "». "
                             "Tidak ada yang disimpan.", spec)
            log.info("web: action refused: %s", exc)
            return again(403, (f"«{label}» tidak diizinkan untuk pengaduan ini saat ini "
                               "menurut alur kerja. Tidak ada yang diubah."), spec)
        except BadInput as exc:
            return again(400, f"Isian tidak dapat diterima: {exc}. Tidak ada yang disimpan.",
                         spec)
        except (ActionError, CaseNotFound) as exc:
            log.warning("web: action failed: %s", exc)
            return again(400, "Tindakan tidak dapat dilakukan. Tidak ada yang disimpan.",
                         spec)
        self._dispatch_events()
        msg = (f"«{spec.label}» tersimpan. Tahap sekarang: "
               f"{self.workflow.stage_label(result.stage)}.")
        if result.outbox_ids:
            msg += " Akan dikirim ke LAPOR! oleh proses sinkronisasi."
        self.flash(request, "ok", msg)
        return RedirectResponse(f"/kasus/{case_id}", 303)

    def _dispatch_events(self) -> None:
        try:
            self.rt.dispatch_events()
        except Exception:  # noqa: BLE001 - the action is committed; plugins retry later
            log.exception("web: plugin events could not be dispatched now")

