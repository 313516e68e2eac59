"""The staff page's handlers. Reads go through bridge.services.queue/outbox; every write
through bridge.services.actions/outbox (and, for "opened", :func:`mark_seen`).

GET handlers are plain functions (Starlette runs them in its thread pool, since the store
is synchronous); POST handlers read the form, then do their work in the thread pool.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from bridge.app.cycle import adopt
from bridge.errors import BridgeError
from bridge.lapor.errors import LaporError
from bridge.locale import CHANNEL_LABELS, local_time, short_date
from bridge.reports.recap import month_of, page_csv, recap_of_days
from bridge.services.actions import (
    ActionError,
    ActionNotAllowed,
    Actor,
    BadInput,
    StaleCase,
)
from bridge.services.outbox import NoSuchRow, list_outbox, retry, retry_all_dead
from bridge.services.queue import (
    HIDDEN_ANONYMOUS,
    CaseDetail,
    CaseNotFound,
    QueueFilter,
    QueueRow,
    case_detail,
    list_queue,
    mark_seen,
)
from bridge.store.models import Case, OutboxRow
from bridge.sync.quarantine import AlarmState, alarm_state
from bridge.sync.track import Adopted
from bridge.web import csrf, forms
from bridge.web.auth import (
    LoginLimiter,
    WebUser,
    authenticate,
    end_sessions_of,
    find_user,
    known_roles,
    load_user,
)
from bridge.web.proxies import client_address, parse_networks
from bridge.web.settings import ADMIN_ROLE, WebSettings
from bridge.workflow.errors import MissingFields

log = logging.getLogger("bridge.web")

#: The largest form accepted apart from attachments (all text fields together).
TEXT_BODY_MAX = 512 * 1024

STATE_LABELS = {"pending": "Menunggu dikirim", "waiting": "Tertahan",
                "dead": "Gagal (perlu tindakan)", "done": "Terkirim"}
OUTBOX_KINDS = {"followup": "Tindak lanjut", "forward": "Penerusan (bukan wewenang)",
                "create": "Laporan baru ke LAPOR!"}
SIDE_LABELS = {"remote": "LAPOR!", "local": "Petugas", "system": "Sistem"}
EVENT_LABELS = {
    "received": "Pengaduan diterima", "remote_changed": "Perubahan di LAPOR!",
    "delivered_followup": "Terkirim ke LAPOR!", "delivered_forward": "Penerusan terkirim "
    "ke LAPOR!", "delivered_create": "Laporan baru terkirim ke LAPOR!",
    "dead_letter": "Gagal dikirim ke LAPOR!", "outbox_retry": "Pengiriman diulang",
    "plugin_failed": "Plugin gagal", "remote_followup": "Tindak lanjut di LAPOR!",
}
CHANGE_LABELS = {
    "stage": "Tahap", "severity": "Klasifikasi", "assigned_to": "Disposisi",
    "forwarded_to": "Diteruskan ke", "tembusan": "Tembusan", "files_complete_at":
    "Berkas lengkap", "closed_at": "Ditutup", "register_no": "No. register", "channel":
    "Kanal", "remote_status_code": "Kode status LAPOR!", "remote_status_name": "Status LAPOR!",
    "remote_disposition_id": "ID disposisi LAPOR!", "remote_disposition_name":
    "Disposisi LAPOR!", "title": "Judul", "content": "Isi", "category": "Kategori",
    "location": "Lokasi", "reporter": "Pelapor", "attachments": "Lampiran", "followup":
    "Tindak lanjut", "files": "Berkas", "approval": "Persetujuan", "satisfied": "Puas",
    "escalated_to": "Eskalasi ke", "step": "Langkah", "outbox_id": "Baris kotak keluar",
    "is_anonymous": "Anonim", "is_secret": "Rahasia", "followup_id": "ID tindak lanjut LAPOR!",
    "created_at": "Waktu di LAPOR!",
}

STALE_MESSAGE = ("Pengaduan ini baru saja diubah oleh pengguna lain atau oleh LAPOR! "
                 "sejak halaman ini dibuka. Tindakan Anda belum disimpan. Periksa keadaan "
                 "terbaru di bawah, lalu kirim lagi bila masih perlu.")


class PageError(BridgeError):
    """Show an Indonesian error page with this status (nothing was changed)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


class SignInRequired(BridgeError):
    def __init__(self, next_url: str, expired: bool = False) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.expired = expired


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/antrean"


def _int(value: str | None, default: int, lo: int = 1, hi: int = 10**6) -> int:
    try:
        n = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(n, lo), hi)


@dataclass(frozen=True)
class DeadlineView:
    label: str
    due_at: datetime | None
    met_at: datetime | None
    basis: str
    state: str  # "lewat", "dekat", "terpenuhi", "terlambat", ""


#: The recap's widest period: the time zone arithmetic stays far from date's limits.
RECAP_FIRST_DAY = date(2000, 1, 1)
RECAP_LAST_DAY = date(2199, 12, 31)


class StaffPage:
    def __init__(self, rt: Any, web: WebSettings, templates: Jinja2Templates,
                 clock: Callable[[], float], auto_login: Mapping[str, str] | None) -> None:
        self.rt = rt
        self.settings = rt.settings
        self.workflow = rt.workflow
        self.web = web
        self.templates = templates
        self.clock = clock
        self.limiter = LoginLimiter(web.login_max_failures, web.login_window_seconds, clock)
        self.trusted_proxies = parse_networks(web.trusted_proxies)
        self.roles = known_roles(self.workflow.roles)
        self.auto_login = dict(auto_login or {})
        self.tz = self.settings.regency.timezone
        max_files = web.max_upload_files
        self.max_body = TEXT_BODY_MAX + max_files * (self.settings.outbox.max_attachment_bytes
                                                     + 4096)

    # -- helpers -------------------------------------------------------------------

    def template_globals(self) -> dict[str, Callable[..., str]]:
        return {"stage_label": self.workflow.stage_label, "class_label": self._class_label,
                "channel_label": lambda k: CHANNEL_LABELS.get(k, k)}

    def client_address(self, request: Request) -> str:
        peer = request.client.host if request.client else "-"
        return client_address(peer, request.headers.get("x-forwarded-for"),
                              self.trusted_proxies)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), ZoneInfo("UTC"))

    def current_user(self, request: Request) -> WebUser | None:
        uid = request.session.get("uid")
        if not isinstance(uid, int):
            return None
        with self.rt.sessions() as s:
            user = load_user(s, uid)
        if user is None or user.tag != request.session.get("pv") \
                or user.role not in self.roles:
            # Disabled, password changed or role gone: that sign-in is over.
            for key in ("uid", "iat", "pv"):
                request.session.pop(key, None)
            return None
        return user

    def require_user(self, request: Request) -> WebUser:
        user = self.current_user(request)
        if user is None:
            path = request.url.path
            if request.method == "GET" and request.url.query:
                path += "?" + request.url.query
            raise SignInRequired(path, expired=bool(request.session.pop("expired", False)))
        return user

    def flash(self, request: Request, kind: str, text: str) -> None:
        messages = list(request.session.get("flash", []))[-4:]
        messages.append([kind, text])
        request.session["flash"] = messages

    def render(self, request: Request, name: str, context: dict[str, Any],
               status: int = 200, user: WebUser | None = None) -> Response:
        ctx = {
            "user": user,
            "role_label": self.role_label(user.role) if user else "",
            "csrf_token": csrf.token(request.session),
            "flashes": request.session.pop("flash", []),
            "regency": self.settings.regency.name,
            "dead_count": self._dead_count() if user else 0,
            "quarantine_alarm": self._quarantine_alarm(user),
            **context,
        }
        return self.templates.TemplateResponse(request, name, ctx, status_code=status,
                                               headers={"Cache-Control": "no-store"})

    def role_label(self, role: str) -> str:
        if role == ADMIN_ROLE:
            return "Admin"
        return self.workflow.role_label(role)

    def _dead_count(self) -> int:
        with self.rt.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(OutboxRow)
                                .where(OutboxRow.status == "dead")) or 0)

    def _quarantine_alarm(self, user: WebUser | None) -> AlarmState | None:
        # Shown to the roles that look after the bridge (those that may retry deliveries):
        # reports LAPOR! sent are missing from the queue until someone corrects the config.
        if user is None or user.role not in self.web.retry_roles:
            return None
        with self.rt.sessions() as s:
            return alarm_state(s)

    def deadline_state(self, due: datetime | None) -> str:
        if due is None:
            return ""
        now = self.now()
        if due < now:
            return "lewat"
        if due - now <= timedelta(hours=self.web.near_deadline_hours):
            return "dekat"
        return ""

    # -- sign-in -------------------------------------------------------------------

    def login_form(self, request: Request) -> Response:
        if self.current_user(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), 303)
        notice = None
        if request.session.pop("expired", False):
            notice = "Sesi Anda telah berakhir. Silakan masuk kembali."
        return self.render(request, "login.html", {
            "next": _safe_next(request.query_params.get("next")), "notice": notice,
            "username": ""})

    async def login(self, request: Request) -> Response:
        form = await self.read_form(request)
        return await run_in_threadpool(self._login, request, form)

    def _login(self, request: Request, form: FormData) -> Response:
        csrf.check(request.session, form.get(csrf.FIELD))
        username = str(form.get("username") or "").strip()[:100]
        password = str(form.get("password") or "")[:1024]
        next_url = _safe_next(str(form.get("next") or ""))
        address = self.client_address(request)
        ctx = {"next": next_url, "username": username, "notice": None}
        wait = self.limiter.retry_after(username)
        if wait is not None:
            minutes = max(1, math.ceil(wait / 60))
            log.warning("web: sign-in refused (rate limit) for %r from %s", username, address)
            return self.render(request, "login.html", {**ctx, "error": (
                "Terlalu banyak percobaan masuk yang gagal. Coba lagi dalam "
                f"{minutes} menit.")}, status=429)
        if not username or not password:
            return self.render(request, "login.html", {
                **ctx, "error": "Isi nama pengguna dan kata sandi."}, status=400)
        with self.rt.sessions() as s, s.begin():
            user = authenticate(s, username, password)
        if user is None:
            self.limiter.failed(username, address)
            log.warning("web: failed sign-in for %r from %s", username, address)
            if self.limiter.address_over_budget(address):
                return self.render(request, "login.html", {**ctx, "error": (
                    "Terlalu banyak percobaan masuk yang gagal dari alamat ini. Periksa "
                    "nama pengguna dan kata sandi Anda.")}, status=429)
            return self.render(request, "login.html", {
                **ctx, "error": "Nama pengguna atau kata sandi salah."}, status=401)
        if user.role not in self.roles:
            return self.render(request, "login.html", {**ctx, "error": (
                f"Peran akun ini ({user.role}) tidak dikenal dalam alur kerja yang berlaku. "
                "Hubungi admin.")}, status=403)
        self.limiter.succeeded(username)
        self._sign_in(request, user)
        return RedirectResponse(next_url, 303)

    def _sign_in(self, request: Request, user: WebUser) -> None:
        request.session.clear()
        request.session.update({"uid": user.id, "iat": self.clock(), "pv": user.tag})
        csrf.rotate(request.session)
        log.info("web: %s signed in (%s)", user.username, user.role)

    def demo_login(self, request: Request) -> Response:
        username = self.auto_login.get(request.path_params["token"])
        if username is None:
            raise PageError(404, "Tautan tidak berlaku",
                            "Tautan masuk ini tidak dikenal atau sudah tidak berlaku.")
        with self.rt.sessions() as s:

            found = find_user(s, username)
            user = load_user(s, found.id) if found else None
        if user is None:
            raise PageError(404, "Akun tidak ada", "Akun demo tidak ditemukan.")
        self._sign_in(request, user)
        return RedirectResponse("/antrean", 303)

    async def logout(self, request: Request) -> Response:
        form = await self.read_form(request)
        csrf.check(request.session, form.get(csrf.FIELD))
        user = await run_in_threadpool(self.current_user, request)
        if user is not None:
            # A copy of the cookie must not outlive the sign-out: end every session of
            # the account (other browsers too), not only this one.
            await run_in_threadpool(self._end_sessions, user.id)
        request.session.clear()
        csrf.rotate(request.session)
        self.flash(request, "ok", "Anda telah keluar.")
        return RedirectResponse("/masuk", 303)

    def _end_sessions(self, uid: int) -> None:
        with self.rt.sessions() as s, s.begin():
            end_sessions_of(s, uid)

    # -- forms -----------------------------------------------------------------------

    async def read_form(self, request: Request) -> FormData:
        """The posted form, refusing bodies over the limit before parsing them."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            raise PageError(413, "Kiriman terlalu besar", self._too_large())
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > self.max_body:
                raise PageError(413, "Kiriman terlalu besar", self._too_large())
            chunks.append(chunk)
        body = b"".join(chunks)

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        parsed = Request(request.scope, replay)
        try:
            return await parsed.form(max_files=self.web.max_upload_files, max_fields=100,
                                     max_part_size=forms.CONTENT_MAX * 4 + 1024)
        except HTTPException:
            raise PageError(400, "Formulir tidak dapat dibaca",
                            "Formulir tidak dapat dibaca: terlalu banyak isian atau berkas, "
                            "atau isian terlalu panjang.") from None

    def _too_large(self) -> str:
        limit = self.settings.outbox.max_attachment_bytes // (1024 * 1024)
        return (f"Kiriman melebihi batas. Setiap lampiran paling besar {limit} MB, paling "
                f"banyak {self.web.max_upload_files} lampiran. Tidak ada yang disimpan.")

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
            "may_track": user.role in self.track_roles,
            "poll_seconds": self.web.poll_seconds,
            "poll_url": "/antrean/data?" + urlencode(
                {**{k: v for k, v in params.items() if v}, "hal": str(page)}),
        }
        return self.render(request, "queue.html", ctx, user=user)

    def queue_data(self, request: Request) -> Response:
        """The queue's rows as an HTML fragment in JSON, for the page's short polling."""
        user = self.current_user(request)
        if user is None:
            return JSONResponse({"error": "Sesi berakhir; silakan masuk kembali.",
                                 "login": "/masuk?next=/antrean"}, status_code=401)
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

    @property
    def track_roles(self) -> frozenset[str]:
        """Who may adopt a LAPOR! report: the roles that take in new cases (those that
        may act on the workflow's first stage), and the page's administrators."""
        first = self.workflow.initial_stage
        return frozenset({ADMIN_ROLE}.union(*(r.roles for r in self.workflow.rules
                                             if first in r.from_stages)))

    async def track(self, request: Request) -> Response:
        form = await self.read_form(request)
        return await run_in_threadpool(self._track, request, form)

    def _track(self, request: Request, form: FormData) -> Response:

        csrf.check(request.session, form.get(csrf.FIELD))
        user = self.require_user(request)
        if user.role not in self.track_roles:
            who = ", ".join(self.role_label(r) for r in sorted(self.track_roles))
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.role_label(user.role)}) tidak berwenang melacak laporan "
                f"LAPOR!. Yang berwenang: {who}."))
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
                detail = case_detail(s, case_id, self.workflow.may_see_secret_reporter(
                    user.role))
            except CaseNotFound:
                raise PageError(404, "Pengaduan tidak ditemukan",
                                f"Tidak ada pengaduan dengan nomor {case_id}.") from None
            if detail.case.id != case_id:  # find_case also matches register/LAPOR! ids
                raise PageError(404, "Pengaduan tidak ditemukan",
                                f"Tidak ada pengaduan dengan nomor {case_id}.")
            case = s.get(Case, case_id)
            outbox = list_outbox(s, case_id=case_id)
            deadlines = self._deadlines(s, case)
            return detail, {"case_obj": case, "outbox": outbox, "deadlines": deadlines}

    def _deadlines(self, session: Session, case: Case | None) -> list[DeadlineView]:
        calc = getattr(self.rt, "deadlines", None)
        if case is None or calc is None:
            return []
        try:
            found = calc.all(session, case)
        except Exception:  # noqa: BLE001 - a broken calendar must not hide the case
            log.exception("web: deadlines of case %s could not be computed", case.id)
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
        action_forms = forms.build_forms(self.workflow, self.settings, c.stage, user.role,
                                         done, on_lapor)
        ctx = {
            "d": detail, "c": c, "forms": action_forms, "error": error,
            "version": extra["case_obj"].version if extra["case_obj"] else 0,
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
            "safe_url": _safe_url,
        }
        return self.render(request, "case.html", ctx, status=status, user=user)

    @staticmethod
    def _approvals_done(data: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
        raw = data.get("approvals_done") or {}
        if not isinstance(raw, Mapping):
            return {}
        return {str(k): tuple(str(r) for r in v) for k, v in raw.items()
                if isinstance(v, list)}

    def _class_label(self, severity: str | None) -> str:
        if not severity:
            return "-"
        found = self.workflow.profile.classes.get(severity)
        return found.label if found else severity

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
        uploads: list[Any] = []
        csrf.check(request.session, form.get(csrf.FIELD))
        if form.getlist("lampiran"):
            try:
                uploads = await forms.read_uploads(
                    form, "lampiran", self.web.max_upload_files,
                    self.settings.outbox.max_attachment_bytes)
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
        found = forms.build_forms(self.workflow, self.settings, c.stage, user.role,
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
            current = s.get(Case, case_id)
            current_version = current.version if current else None
        if current_version != version:
            return again(409, STALE_MESSAGE)
        if user.role not in rule.roles:
            who = ", ".join(self.role_label(r) for r in sorted(rule.roles)) or "-"
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.role_label(user.role)}) tidak berwenang melakukan "
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
        actor = Actor(f"{user.full_name} ({user.username})", user.role)
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
            "kinds": OUTBOX_KINDS, "may_retry": user.role in self.web.retry_roles,
        }, user=user)

    async def outbox_retry(self, request: Request) -> Response:
        form = await self.read_form(request)
        return await run_in_threadpool(self._outbox_retry, request, form)

    def _outbox_retry(self, request: Request, form: FormData) -> Response:
        csrf.check(request.session, form.get(csrf.FIELD))
        user = self.require_user(request)
        if user.role not in self.web.retry_roles:
            who = ", ".join(self.role_label(r) for r in self.web.retry_roles)
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.role_label(user.role)}) tidak berwenang mengulang "
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

    # -- recap -----------------------------------------------------------------------

    def _period(self, request: Request) -> tuple[date, date, str | None, int]:
        """The recap's period, or this month with the problem and the status to answer
        (400 a date that is none, 422 a range that cannot be: reversed, or so far out that
        the time zone arithmetic would overflow)."""
        today = self.now().astimezone(ZoneInfo(self.tz)).date()
        default = month_of(today)
        q = request.query_params
        try:
            start = date.fromisoformat(q["dari"]) if q.get("dari") else default[0]
            end = date.fromisoformat(q["sampai"]) if q.get("sampai") else default[1]
        except ValueError:
            return (*default, "Tanggal tidak sah: gunakan format TTTT-BB-HH. Ditampilkan "
                    "bulan ini.", 400)
        if end < start:
            return (*default, "Tanggal akhir sebelum tanggal awal. Ditampilkan bulan ini.",
                    422)
        if start < RECAP_FIRST_DAY or end > RECAP_LAST_DAY:
            return (*default, f"Periode di luar rentang {RECAP_FIRST_DAY.year}–"
                    f"{RECAP_LAST_DAY.year}. Ditampilkan bulan ini.", 422)
        return start, end, None, 200

    def recap_page(self, request: Request) -> Response:
        user = self.require_user(request)
        start, end, problem, status = self._period(request)
        with self.rt.sessions() as s:
            # As of the wall clock, as the recap files are (the page clock is for deadlines).
            figures = recap_of_days(s, self.settings, self.workflow, start, end)
        return self.render(request, "recap.html", {
            "r": figures, "problem": problem,
            "csv_url": "/rekap.csv?" + urlencode({"dari": start.isoformat(),
                                                  "sampai": end.isoformat()}),
        }, status=status, user=user)

    def recap_csv(self, request: Request) -> Response:
        self.require_user(request)
        start, end, problem, status = self._period(request)
        if problem:
            raise PageError(status, "Periode tidak sah", problem)
        with self.rt.sessions() as s:
            figures = recap_of_days(s, self.settings, self.workflow, start, end)
        name = f"rekap-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(page_csv(figures), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "no-store"})

    def home(self, request: Request) -> Response:
        return RedirectResponse("/antrean", 303)


def _safe_url(value: object) -> str | None:
    """Only http(s) links are shown as links (a javascript: URL from a payload is not)."""
    text = str(value or "")
    return text if text.startswith(("https://", "http://")) else None


_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _show(value: Any, tz: str) -> str:
    """A changed value as staff read it (times in the regency's zone)."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "ya" if value else "tidak"
    if isinstance(value, list):
        return "; ".join(_show(v, tz) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v, tz)}" for k, v in value.items())
    text = str(value)
    if _ISO_TIME.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return local_time(moment, tz)
    return text if len(text) <= 300 else text[:300] + "…"


def template_filters(tz: str, clock: Callable[[], float]) -> dict[str, Callable[..., Any]]:
    def waktu(dt: datetime | None) -> str:
        return local_time(dt, tz)

    def tanggal(dt: datetime | None) -> str:
        return short_date(dt, tz)

    def ukuran(n: object) -> str:
        try:
            size = int(str(n))
        except ValueError:
            return "-"
        return forms._size(size)

    def sisa(dt: datetime | None) -> str:
        if dt is None:
            return ""
        delta = dt - datetime.fromtimestamp(clock(), ZoneInfo("UTC"))
        future = delta.total_seconds() >= 0
        secs = abs(delta.total_seconds())
        if secs >= 86400:
            text = f"{int(secs // 86400)} hari"
        elif secs >= 3600:
            text = f"{int(secs // 3600)} jam"
        else:
            text = f"{max(1, int(secs // 60))} menit"
        return f"{text} lagi" if future else f"lewat {text}"

    def tojson_attr(value: object) -> str:
        return json.dumps(value, ensure_ascii=False)

    return {"waktu": waktu, "tanggal": tanggal, "ukuran": ukuran, "sisa": sisa,
            "json_attr": tojson_attr}
