"""Signing in and out."""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from bridge.services.accounts import WebUser
from bridge.web import csrf
from bridge.web.page import (
    PageBase,
    PageError,
    _safe_next,
    log,
)


class SignInRoutes(PageBase):
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
        user = self.accounts.authenticate(username, password)
        if user is None:
            self.limiter.failed(username, address)
            log.warning("web: failed sign-in for %r from %s", username, address)
            if self.limiter.address_over_budget(address):
                return self.render(request, "login.html", {**ctx, "error": (
                    "Terlalu banyak percobaan masuk yang gagal dari alamat ini. Periksa "
                    "nama pengguna dan kata sandi Anda.")}, status=429)
            return self.render(request, "login.html", {
                **ctx, "error": "Nama pengguna atau kata sandi salah."}, status=401)
        elsewhere = self.body_choices(user) if self.base and not user.roles else []
        if elsewhere:
            # A Pemda account signing in on a body it is not a member of: to its own.
            next_url = elsewhere[0][2]
        unknown = [r for r in user.roles if r not in self.roles] or (
            [] if user.roles or elsewhere else ["-"])
        if unknown:
            return self.render(request, "login.html", {**ctx, "error": (
                f"Peran akun ini ({', '.join(unknown)}) tidak dikenal dalam alur kerja yang berlaku. "
                "Hubungi admin.")}, status=403)
        self.limiter.succeeded(username)
        self._sign_in(request, user)
        return RedirectResponse(next_url, 303)

    def _sign_in(self, request: Request, user: WebUser) -> None:
        request.session.clear()
        request.session.update({"uid": user.id, "iat": self.clock(), "pv": user.tag})
        csrf.rotate(request.session)
        log.info("web: %s signed in (%s)", user.username, ", ".join(user.roles))

    def demo_login(self, request: Request) -> Response:
        username = self.auto_login.get(request.path_params["token"])
        if username is None:
            raise PageError(404, "Tautan tidak berlaku",
                            "Tautan masuk ini tidak dikenal atau sudah tidak berlaku.")
        user = self.accounts.find(username)
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
            await run_in_threadpool(self.accounts.end_sessions, user.id)
        request.session.clear()
        csrf.rotate(request.session)
        self.flash(request, "ok", "Anda telah keluar.")
        return RedirectResponse("/masuk", 303)

