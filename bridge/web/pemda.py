"""The staff page of a Pemda (``[[bodies]]``): every body's pages in one site.

Each body is the one-body page on that body's runtime, under ``/b/<code>/`` (its queue
at ``/b/DLH/antrean``, a case at ``/b/DLH/kasus/12``). The accounts are the deployment's
(:class:`bridge.services.members.BodyAccounts`): one sign-in cookie for the whole site,
each body seeing the account with its roles there, and refusing (403) an account that is
no member of it. ``/`` leads to the first of the user's bodies.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.services.accounts import WebUser
from bridge.services.members import BodyAccounts
from bridge.web.app import SecurityHeaders, create_app
from bridge.web.sessions import CookieSessions
from bridge.web.settings import SigningKey, WebSettings, signing_key, web_settings

_BODY_PATH = re.compile(r"^/b/([A-Za-z0-9_-]{1,20})(?=/|$)")


class _Prefixed:
    """One body's page under ``/b/<code>``: Starlette routes below the root path, and a
    redirect the page answers with an absolute path of its own is kept under it."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope, root_path=scope.get("root_path", "") + self.prefix)

        async def send_prefixed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    if name.lower() == b"location":
                        value = self._under(value.decode("latin-1")).encode("latin-1")
                    headers.append((name, value))
                message = dict(message, headers=headers)
            await send(message)

        await self.app(scope, receive, send_prefixed)

    def _under(self, location: str) -> str:
        if location.startswith("/") and not location.startswith(("//", "/b/", "/static/")):
            return self.prefix + location
        return location


class PemdaSite:
    """Dispatches ``/b/<code>/...`` to that body's page, the rest to the site's own."""

    def __init__(self, bodies: dict[str, ASGIApp], site: ASGIApp) -> None:
        self.bodies = {code.lower(): (code, app) for code, app in bodies.items()}
        self.site = site

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            found = _BODY_PATH.match(scope["path"])
            if found and found.group(1).lower() in self.bodies:
                code, app = self.bodies[found.group(1).lower()]
                if found.group(1) != code:
                    scope = dict(scope, path=f"/b/{code}" + scope["path"][found.end():])
                await app(scope, receive, send)
                return
        await self.site(scope, receive, send)


def create_pemda_app(dep: Any, accounts_db: sessionmaker[Session], *,
                     web: WebSettings | None = None, key: SigningKey | None = None,
                     clock: Callable[[], float] = time.time) -> PemdaSite:
    """The staff page of the deployment ``dep`` (a :class:`bridge.app.deployment.Deployment`
    of several bodies); ``accounts_db``: sessions on the deployment's own database."""
    web = web or web_settings(dep.settings)
    key = key or signing_key(dep.settings, web)
    names = {body.code: body.name for body in dep.bodies}
    stores = [(body.code, body.name, rt.sessions) for body, rt in dep]

    def administered(user: WebUser) -> list[tuple[str, str, sessionmaker[Session]]]:
        # The summary lists the bodies where the account is an admin, and no other.
        return [(code, name, sessions) for code, name, sessions in stores
                if _admin_in(accounts_db, code, user.id)]

    apps: dict[str, ASGIApp] = {}
    for body, rt in dep:
        prefix = f"/b/{body.code}"
        apps[body.code] = _Prefixed(create_app(
            rt, web=web, key=key, clock=clock, accounts=BodyAccounts(accounts_db, body.code),
            base=prefix, bodies=names, overview=administered), prefix)
    first = dep.bodies[0].code
    anyone = BodyAccounts(accounts_db, first)

    def home(request: Request) -> Response:
        uid = request.session.get("uid")
        user = anyone.load(uid) if isinstance(uid, int) else None
        if user is not None and user.tag == request.session.get("pv"):
            mine = [code for code in anyone.bodies(user.id) if code in names]
            if mine:
                return RedirectResponse(f"/b/{mine[0]}/antrean", 303)
        return RedirectResponse(f"/b/{first}/masuk", 303)

    def sign_in(request: Request) -> Response:
        query = request.url.query
        return RedirectResponse(f"/b/{first}/masuk" + ("?" + query if query else ""), 303)

    def old_path(request: Request) -> Response:
        # A one-body address (/antrean) on a Pemda: the user's first body has it.
        return RedirectResponse("/?next=" + quote(request.url.path, safe="/"), 303)

    site = Starlette(routes=[
        Route("/", home), Route("/masuk", sign_in),
        Route("/antrean", old_path), Route("/kotak-keluar", old_path),
        Mount("/static", app=StaticFiles(directory=str(files("bridge.web") / "static"))),
    ])
    site.add_middleware(CookieSessions, secret=key.value, max_age=web.session_max_age,
                        secure=web.cookie_secure, clock=clock)
    site.add_middleware(SecurityHeaders)
    return PemdaSite(apps, site)


def _admin_in(accounts_db: sessionmaker[Session], code: str, user_id: int) -> bool:
    member = BodyAccounts(accounts_db, code).load(user_id)
    return member is not None and member.is_admin


__all__ = ["PemdaSite", "create_pemda_app"]
