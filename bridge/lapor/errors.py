"""Typed failures of the LAPOR! client.

Every error names the request (``method`` and ``endpoint``, the path without the query)
and, where there was one, the HTTP ``status``. Messages are built by the client from
scrubbed text only: they never contain the bearer secret or the token, even when LAPOR!
echoes them back.

How a caller should react:

- :class:`AuthError`, :class:`ClientRequestError`, :class:`RemoteValidationError`,
  :class:`NotFound`: the request was refused and not applied; repeating it unchanged will
  fail again.
- :class:`MalformedResponse`: LAPOR! answered 2xx with something the bridge cannot read.
- :class:`TransientError`: retries are exhausted; the request was *not* applied (for a
  POST, every attempt failed in a way that proves it never took effect). Try again later,
  no earlier than ``retry_after`` seconds if set.
- :class:`OutcomeUnknown`: a POST may or may not have taken effect. Read back (the
  follow-ups of the complaint, looking for the bridge's marker) before posting again.
  It is a sibling of :class:`TransientError` (both are :class:`FailedAttempts`), never a
  subclass, so an ``except TransientError`` that sends again cannot catch it.

Every one is a :class:`bridge.errors.BridgeError`.
"""

from __future__ import annotations

from collections.abc import Mapping

from bridge.errors import BridgeError


class LaporError(BridgeError):
    """Base of every failure the LAPOR! client raises."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.endpoint = endpoint
        self.status = status


class AuthError(LaporError):
    """401 or 403: the credentials are wrong, expired, or lack the permission."""


class NotFound(LaporError):
    """404: LAPOR! does not know the complaint (or the path is wrong in the settings)."""


class RemoteValidationError(LaporError):
    """422: LAPOR! refused the input; ``errors`` maps each field to LAPOR!'s reasons."""

    def __init__(
        self,
        message: str,
        *,
        errors: Mapping[str, list[str]] | None = None,
        remote_message: str = "",
        method: str | None = None,
        endpoint: str | None = None,
        status: int | None = 422,
    ) -> None:
        super().__init__(message, method=method, endpoint=endpoint, status=status)
        self.errors: dict[str, list[str]] = dict(errors or {})
        self.remote_message = remote_message


class ClientRequestError(LaporError):
    """Any other refusal (other 4xx, an unexpected redirect): not retried."""


class MalformedResponse(LaporError):
    """LAPOR! answered 2xx, but the body is not JSON or not the expected envelope."""


class FailedAttempts(LaporError):
    """A request that got no usable answer after ``attempts`` attempts; ``retry_after`` is
    LAPOR!'s hint (seconds) when it gave one. The base of the two ways it can end, which
    a caller must tell apart: :class:`TransientError` (not applied, safe to send again)
    and :class:`OutcomeUnknown` (maybe applied: read back first)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        attempts: int = 1,
        method: str | None = None,
        endpoint: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, method=method, endpoint=endpoint, status=status)
        self.retry_after = retry_after
        self.attempts = attempts


class TransientError(FailedAttempts):
    """Network failure, 429 or 5xx that outlasted the retries; the request was not applied."""


class OutcomeUnknown(FailedAttempts):
    """A POST that may have been applied (read timeout, 5xx, connection dropped after
    sending). LAPOR! takes no idempotency key: read back before posting again.

    Not a :class:`TransientError`: an ``except TransientError`` that sends the request again
    must never catch an uncertain POST."""


class MalformedOutcome(OutcomeUnknown, MalformedResponse):
    """A POST answered 2xx with a body the bridge cannot read: it was most likely applied,
    but its new id is unknown. Both an :class:`OutcomeUnknown` (read back before posting
    again) and a :class:`MalformedResponse`."""


__all__ = [
    "AuthError",
    "ClientRequestError",
    "FailedAttempts",
    "LaporError",
    "MalformedOutcome",
    "MalformedResponse",
    "NotFound",
    "OutcomeUnknown",
    "RemoteValidationError",
    "TransientError",
]
