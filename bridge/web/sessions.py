"""Signed cookie sessions with an absolute sign-in lifetime and an injectable clock.

Like Starlette's SessionMiddleware (the session is a dict in ``scope["session"]``, kept in
a cookie signed with itsdangerous), except that expiry is counted from the moment of
signing in, by a clock the tests can move, and an expired sign-in is reported to the page
("your session has ended") instead of vanishing silently.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

COOKIE_NAME = "lapor_bridge_sesi"
#: Keys of a signed-in session; dropped together when it expires or on sign-out.
SIGN_IN_KEYS = ("uid", "iat", "pv")


class CookieSessions:
    def __init__(self, app: ASGIApp, secret: str, *, max_age: int, secure: bool = False,
                 clock: Callable[[], float], cookie_name: str = COOKIE_NAME) -> None:
        self.app = app
        self.serializer = URLSafeSerializer(secret, salt="lapor-bridge.web.session")
        self.max_age = max_age
        self.secure = secure
        self.clock = clock
        self.cookie_name = cookie_name

    def _load(self, raw: str | None) -> dict[str, Any]:
        if not raw:
            return {}
        try:
            data = self.serializer.loads(raw)
        except BadSignature:
            return {}
        if not isinstance(data, dict):
            return {}
        iat = data.get("iat")
        if "uid" in data and (not isinstance(iat, (int, float))
                              or self.clock() - iat > self.max_age):
            for key in SIGN_IN_KEYS:
                data.pop(key, None)
            data["expired"] = True
        return data

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        session = self._load(conn.cookies.get(self.cookie_name))
        scope["session"] = session
        before = json.dumps(session, sort_keys=True)

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                current: dict[str, Any] = scope["session"]
                if json.dumps(current, sort_keys=True) != before:
                    headers = MutableHeaders(scope=message)
                    headers.append("Set-Cookie", self._cookie(current))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _cookie(self, session: dict[str, Any]) -> str:
        attrs = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if self.secure else "")
        if not session:
            return f"{self.cookie_name}=; Max-Age=0{attrs}"
        value = self.serializer.dumps(session)
        return f"{self.cookie_name}={value}; Max-Age={self.max_age}{attrs}"
