"""What every area of the staff page shares: the settings, the signed-in user, rendering,
the labels and the errors. The areas are in :mod:`bridge.web.routes`; :class:`bridge.web.views.StaffPage` puts them together.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from bridge.errors import BridgeError
from bridge.locale import CHANNEL_LABELS, local_time, short_date
from bridge.services.accounts import WebUser, intake_roles, known_roles
from bridge.services.members import Accounts, LocalAccounts
from bridge.services.outbox import dead_letters
from bridge.sync.quarantine import AlarmState, alarm_state
from bridge.web import csrf, forms
from bridge.web.auth import LoginLimiter
from bridge.web.proxies import client_address, parse_networks
from bridge.web.settings import ADMIN_ROLE, WebSettings

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
    "Tindak lanjut", "files": "Berkas", "document": "Dokumen", "approval": "Persetujuan", "satisfied": "Puas",
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


class PageBase:
    """The state and helpers the route areas build on."""

    def __init__(self, rt: Any, web: WebSettings, templates: Jinja2Templates,
                 clock: Callable[[], float], auto_login: Mapping[str, str] | None,
                 accounts: Accounts | None = None, base: str = "",
                 bodies: Mapping[str, str] | None = None) -> None:
        self.rt = rt
        #: Where the accounts live: the body's own store, or a Pemda's database.
        self.accounts: Accounts = accounts or LocalAccounts(rt.sessions)
        #: The path this body's pages are under ("" for a one-body deployment; on a Pemda
        #: "/b/<code>") and the Pemda's bodies (code -> name) for the chooser.
        self.base = base
        self.pemda_bodies = dict(bodies or {})
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
                "channel_label": lambda k: CHANNEL_LABELS.get(k, k),
                "role_name": self.role_label}

    def _class_label(self, severity: str | None) -> str:
        if not severity:
            return "-"
        found = self.workflow.profile.classes.get(severity)
        return found.label if found else severity


    def client_address(self, request: Request) -> str:
        peer = request.client.host if request.client else "-"
        return client_address(peer, request.headers.get("x-forwarded-for"),
                              self.trusted_proxies)

    @property
    def intake_roles(self) -> frozenset[str]:
        """Who may take in a case (see :func:`bridge.services.accounts.intake_roles`)."""
        return intake_roles(self.workflow)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), ZoneInfo("UTC"))

    def current_user(self, request: Request) -> WebUser | None:
        uid = request.session.get("uid")
        if not isinstance(uid, int):
            return None
        user = self.accounts.load(uid)
        if user is None or user.tag != request.session.get("pv") \
                or not set(user.roles) <= set(self.roles):
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
        if self.base and not user.roles:
            # A Pemda account signed in, but not a member of this body.
            raise PageError(403, "Bukan badan Anda", (
                "Akun Anda bukan anggota badan ini. Pilih salah satu badan Anda di bagian "
                "atas halaman."))
        return user

    def body_choices(self, user: WebUser | None) -> list[tuple[str, str, str]]:
        """The Pemda bodies the user belongs to: (code, name, link), for the header."""
        if user is None or not self.base:
            return []
        return [(code, self.pemda_bodies[code], f"/b/{code}/antrean")
                for code in self.accounts.bodies(user.id) if code in self.pemda_bodies]

    def flash(self, request: Request, kind: str, text: str) -> None:
        messages = list(request.session.get("flash", []))[-4:]
        messages.append([kind, text])
        request.session["flash"] = messages

    def render(self, request: Request, name: str, context: dict[str, Any],
               status: int = 200, user: WebUser | None = None) -> Response:
        ctx = {
            "user": user,
            "role_label": self.roles_label(user) if user else "",
            "csrf_token": csrf.token(request.session),
            "flashes": request.session.pop("flash", []),
            "regency": self.settings.regency.name,
            "dead_count": self._dead_count() if user else 0,
            "quarantine_alarm": self._quarantine_alarm(user),
            "body_choices": self.body_choices(user),
            "body_code": self.rt.body_code if self.base else "",
            **context,
        }
        return self.templates.TemplateResponse(request, name, ctx, status_code=status,
                                               headers={"Cache-Control": "no-store"})

    def role_label(self, role: str) -> str:
        if role == ADMIN_ROLE:
            return "Admin"
        return self.workflow.role_label(role)

    def roles_label(self, user: WebUser) -> str:
        """The account's roles as staff read them (a Plt holds two or more)."""
        return " · ".join(self.role_label(r) for r in user.roles) or "-"

    def require_role(self, user: WebUser, roles: Iterable[str], doing: str) -> None:
        """403 unless ``user`` holds one of ``roles`` (named in that order), saying what
        the user was ``doing`` ("mengulang pengiriman") and who may."""
        roles = list(roles)
        if not user.holds_any(roles):
            who = ", ".join(self.role_label(r) for r in roles)
            raise PageError(403, "Tidak berwenang", (
                f"Peran Anda ({self.roles_label(user)}) tidak berwenang {doing}. "
                f"Yang berwenang: {who}."))

    async def staff_post(self, request: Request,
                         handler: Callable[[Request, FormData, WebUser], Response]) -> Response:
        """A staff member's posted form: read within the size limit, then, off the event
        loop, its CSRF token checked and its sender signed in before ``handler`` runs."""
        form = await self.read_form(request)
        return await run_in_threadpool(self._staff_post, request, form, handler)

    def _staff_post(self, request: Request, form: FormData,
                    handler: Callable[[Request, FormData, WebUser], Response]) -> Response:
        csrf.check(request.session, form.get(csrf.FIELD))
        return handler(request, form, self.require_user(request))

    def _dead_count(self) -> int:
        with self.rt.sessions() as s:
            return dead_letters(s)

    def _quarantine_alarm(self, user: WebUser | None) -> AlarmState | None:
        # Shown to the roles that look after the bridge (those that may retry deliveries):
        # reports LAPOR! sent are missing from the queue until someone corrects the config.
        if user is None or not user.holds_any(self.web.retry_roles):
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

    async def read_attachments(self, form: FormData) -> list[forms.Upload]:
        """The files posted as ``lampiran`` (none when nothing was attached), within the
        page's limits; :class:`forms.FormProblem` says which limit a file broke."""
        if not form.getlist("lampiran"):
            return []
        return await forms.read_uploads(form, "lampiran", self.web.max_upload_files,
                                        self.settings.outbox.max_attachment_bytes)

    def _too_large(self) -> str:
        limit = self.settings.outbox.max_attachment_bytes // (1024 * 1024)
        return (f"Kiriman melebihi batas. Setiap lampiran paling besar {limit} MB, paling "
                f"banyak {self.web.max_upload_files} lampiran. Tidak ada yang disimpan.")


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
