"""The Starlette application of the staff page.

Routes (paths are Indonesian, like the page):

==========================================  ==============================================
GET  /                                      to the queue
GET  /masuk, POST /masuk                    sign-in (rate-limited)
GET  /masuk/demo/{token}                    demo only: sign in with a printed link
POST /keluar                                sign-out
GET  /antrean                               the queue: filters, sorted by deadline
GET  /antrean/data                          the queue's rows (JSON + HTML, ETag) for polling
POST /antrean/lacak                         "Lacak ID LAPOR!": adopt a LAPOR! report by id
GET  /kasus/{id}                            a case: report, history, deadlines, actions
POST /kasus/{id}/aksi/{rule}                an SOP action (through CaseActions)
POST /kasus/{id}/kembalikan                 give a case forwarded in back to its sender
GET  /kotak-keluar                          the outbox: pending, waiting, dead
POST /kotak-keluar/{row}/ulang              retry one dead row
POST /kotak-keluar/ulang-semua              retry every dead row
GET  /rekap, GET /rekap.csv                 the period's figures, chart and CSV
GET  /static/...                            CSS and JS (no external resources)
==========================================  ==============================================
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from functools import partial
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.config import ConfigError
from bridge.services.accounts import known_roles
from bridge.services.members import Accounts
from bridge.web import csrf, documents
from bridge.web.routes.overview import OverviewSource
from bridge.web.sessions import CookieSessions
from bridge.web.settings import SigningKey, WebSettings, signing_key, web_settings
from bridge.web.views import PageError, SignInRequired, StaffPage, template_filters

log = logging.getLogger("bridge.web")

#: A page handler (GET handlers are plain functions, POST handlers coroutines).
Endpoint = Callable[[Request], Any]

#: No outside origin for anything; no inline script or style (the page has none).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


#: Sent with every answer, error pages included.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=()"),
)


class IdConvertor(Convertor[int]):
    """A row id in a path: at most 9 digits, so that no id reaches the database as a
    number it cannot hold (SQLite's 64 or PostgreSQL's 32 bits); a longer one is a 404."""

    regex = "[0-9]{1,9}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend((name.encode(), value.encode())
                               for name, value in SECURITY_HEADERS
                               if name.encode() not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _templates(tz: str, clock: Callable[[], float]) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bridge.web", "templates"),
        autoescape=True,  # every report field is citizen-written text
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(template_filters(tz, clock))
    return Jinja2Templates(env=env)


def create_app(rt: Any, *, web: WebSettings | None = None, key: SigningKey | None = None,
               clock: Callable[[], float] = time.time,
               auto_login: Mapping[str, str] | None = None,
               accounts: Accounts | None = None, base: str = "",
               bodies: Mapping[str, str] | None = None,
               overview: OverviewSource | None = None) -> Starlette:
    """The staff page for the deployment ``rt`` (a :class:`bridge.runtime.Runtime`).

    ``web``/``key`` default to the ``[web]`` section and its signing key. ``clock``
    (seconds since the epoch) drives session expiry and the sign-in limiter.
    ``auto_login`` maps a secret token to a username for ``/masuk/demo/{token}``; only the
    demo passes it. ``accounts``, ``base`` and ``bodies``: one body of a Pemda's page
    (see :mod:`bridge.web.pemda`); a one-body deployment leaves them out. ``overview``:
    the bodies an admin's ``/ringkasan`` lists (default: this one).
    """
    web = web or web_settings(rt.settings)
    roles = known_roles(rt.workflow.roles)
    for i, role in enumerate(web.retry_roles):
        if role not in roles:
            raise ConfigError(rt.settings.source, f"web.retry_roles[{i}]",
                              f"unknown role {role!r}; expected one of {', '.join(roles)}")
    key = key or signing_key(rt.settings, web)
    templates = _templates(rt.settings.regency.timezone, clock)
    page = StaffPage(rt, web, templates, clock, auto_login, accounts, base, bodies)
    page.overview_source = overview
    templates.env.globals.update(page.template_globals())
    templates.env.globals["base"] = base

    def error_page(request: Request, status: int, title: str, message: str) -> Response:
        user = None
        try:
            user = page.current_user(request)
        except Exception:  # noqa: BLE001 - the error page must render even without a DB
            log.exception("web: could not load the user for an error page")
        try:
            return page.render(request, "error.html", {"title": title, "message": message},
                               status=status, user=user)
        except Exception:  # noqa: BLE001
            log.exception("web: error page could not be rendered")
            return PlainTextResponse(f"{title}. {message}", status_code=status)

    def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return error_page(request, exc.status, exc.title, exc.message)

    def on_csrf(request: Request, exc: Exception) -> Response:
        log.warning("web: %s on %s %s", exc, request.method, request.url.path)
        return error_page(request, 403, "Permintaan ditolak", (
            "Formulir ini tidak dapat diterima karena token keamanannya tidak cocok atau "
            "sudah kedaluwarsa. Tidak ada yang diubah. Muat ulang halaman, lalu kirim lagi."))

    def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        target = exc.next_url
        if request.method != "GET":
            case_id = request.path_params.get("case_id")
            target = f"/kasus/{case_id}" if case_id is not None else "/antrean"
            page.flash(request, "error", "Sesi Anda telah berakhir; isian formulir belum "
                       "disimpan. Silakan masuk kembali.")
        elif exc.expired:
            request.session["expired"] = True
        return RedirectResponse("/masuk?next=" + quote(target, safe="/"), 303)

    def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_page(request, 404, "Halaman tidak ditemukan",
                              "Alamat yang Anda buka tidak ada.")
        if exc.status_code == 405:
            return error_page(request, 405, "Cara akses tidak diizinkan",
                              "Halaman ini tidak dapat dibuka dengan cara tersebut.")
        return error_page(request, exc.status_code, "Permintaan tidak dapat diproses",
                          "Permintaan tidak dapat diproses.")

    def on_error(request: Request, exc: Exception) -> Response:
        log.error("web: unexpected error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        # Answered outside the middleware (Starlette's ServerErrorMiddleware), so the
        # security headers are added here.
        return PlainTextResponse(
            "Terjadi kesalahan pada server. Kejadian ini telah dicatat; tidak ada data yang "
            "diubah sebagian. Silakan muat ulang halaman atau hubungi admin.",
            status_code=500, headers={**dict(SECURITY_HEADERS), "cache-control": "no-store"})

    static = StaticFiles(directory=str(files("bridge.web") / "static"))
    # One row a URL: its GET handler and its POST handler (None: that method is refused).
    pages: list[tuple[str, Endpoint | None, Endpoint | None]] = [
        ("/", page.home, None),
        ("/masuk", page.login_form, page.login),
        ("/masuk/demo/{token}", page.demo_login, None),
        ("/keluar", None, page.logout),
        ("/antrean", page.queue, None),
        ("/antrean/data", page.queue_data, None),
        ("/antrean/lacak", None, page.track),
        ("/kasus/baru", page.intake_form, page.intake),
        ("/kasus/{case_id:id}", page.case_page, None),
        ("/kasus/{case_id:id}/aksi/{key}", None, page.case_action),
        ("/kasus/{case_id:id}/kembalikan", None, page.return_case),
        ("/kasus/{case_id:id}/dokumen/{kind}", partial(documents.download, page), None),
        ("/kotak-keluar", page.outbox, None),
        ("/kotak-keluar/ulang-semua", None, page.outbox_retry),
        ("/kotak-keluar/{row_id:id}/ulang", None, page.outbox_retry),
        ("/rekap", page.recap_page, None),
        ("/rekap.csv", page.recap_csv, None),
        ("/ringkasan", page.overview_page, None),
    ]
    routes: list[BaseRoute] = [
        Route(path, handler, methods=[method])
        for path, get, post in pages
        for method, handler in (("GET", get), ("POST", post)) if handler is not None]
    routes.append(Mount("/static", app=static, name="static"))
    app = Starlette(
        routes=routes,
        exception_handlers={
            PageError: on_page_error,
            csrf.CsrfRefused: on_csrf,
            SignInRequired: on_sign_in,
            HTTPException: on_http,
            Exception: on_error,
        },
    )
    app.add_middleware(CookieSessions, secret=key.value, max_age=web.session_max_age,
                       secure=web.cookie_secure, clock=clock)
    app.add_middleware(SecurityHeaders)
    app.state.page = page
    app.state.web = web
    return app
