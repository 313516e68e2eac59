"""CSRF protection: one random token per browser session, checked on every POST.

The token lives in the signed session cookie (which another site can neither read nor
forge) and is echoed by every form in a hidden ``csrf_token`` field. A POST whose field
does not match is refused before anything else is read from it. The cookie is also
``SameSite=Lax``, so another site's form posts arrive without it in modern browsers.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import MutableMapping
from typing import Any

from bridge.errors import BridgeError

FIELD = "csrf_token"
SESSION_KEY = "csrf"


class CsrfRefused(BridgeError):
    """A POST without the session's token."""


def token(session: MutableMapping[str, Any]) -> str:
    """The session's token, made on first use."""
    value = session.get(SESSION_KEY)
    if not isinstance(value, str) or len(value) < 32:
        value = secrets.token_urlsafe(32)
        session[SESSION_KEY] = value
    return value


def rotate(session: MutableMapping[str, Any]) -> str:
    """A fresh token (on sign-in and sign-out, so a token seen before does not carry over)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)
    return str(session[SESSION_KEY])


def check(session: MutableMapping[str, Any], submitted: object) -> None:
    expected = session.get(SESSION_KEY)
    if not isinstance(expected, str) or not isinstance(submitted, str) or not submitted:
        raise CsrfRefused("missing CSRF token")
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRefused("CSRF token does not match")
