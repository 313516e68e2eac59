"""Reference plugin: POST every notification as JSON to a webhook (chat bridge, dashboard).

Transient failures (connection errors, time-outs, HTTP 429 and 5xx) are retried with
exponential back-off (tenacity) inside the hook call; other HTTP errors (a 4xx: the
receiver refuses the message) are not retried. When every attempt fails the hook raises
and the failure is flagged on the case. Keep ``attempts`` x ``timeout_seconds`` plus the
back-off under the plugin's time limit (``[plugins] timeouts``).

The JSON body is ``Notification.to_dict()`` plus ``sent_at``: kind, recipients, subject,
body, case_id, register_no, data -- no reporter identity. With ``secret_env`` set, the
request carries ``X-Lapor-Bridge-Signature: sha256=<hex HMAC of the body>`` computed with
that secret, so the receiver can check it came from the bridge.

Configuration::

    [plugins]
    enable = ["notify_webhook"]
    timeouts = { notify_webhook = 30 }

    [notify_webhook]
    url = "https://chat.kab.go.id/hooks/pengaduan"
    timeout_seconds = 5
    attempts = 4
    backoff_seconds = 0.5
    secret_env = "LAPOR_BRIDGE_WEBHOOK_SECRET"   # optional
    kinds = []                                    # only these kinds; empty: all
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from bridge.domain import Notification
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    timeout_seconds: float = Field(default=5.0, gt=0)
    attempts: int = Field(default=4, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, ge=0)
    secret_env: str | None = None
    kinds: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http:// or https:// URL")
        return value


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code == 429 or exc.response.status_code >= 500
    return False


def payload(notification: Notification) -> bytes:
    body = notification.to_dict()
    body["sent_at"] = datetime.now(UTC).isoformat()
    return json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")


config_section = declare_section("notify_webhook", Config)


@hookimpl
def notify(notification: Notification, config: Config) -> None:
    if config.kinds and notification.kind not in config.kinds:
        return
    content = payload(notification)
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": "lapor-bridge notify_webhook"}
    if config.secret_env:
        secret = os.environ.get(config.secret_env)
        if secret is None:
            raise RuntimeError(f"environment variable {config.secret_env} (webhook secret) "
                               "is not set")
        digest = hmac.new(secret.encode(), content, hashlib.sha256).hexdigest()
        headers["X-Lapor-Bridge-Signature"] = f"sha256={digest}"
    retrying = Retrying(
        stop=stop_after_attempt(config.attempts),
        wait=wait_exponential(multiplier=config.backoff_seconds, max=10),
        retry=retry_if_exception(_transient),
        reraise=True,
    )
    with httpx.Client(timeout=config.timeout_seconds) as client:
        for attempt in retrying:
            with attempt:
                response = client.post(config.url, content=content, headers=headers)
                response.raise_for_status()
