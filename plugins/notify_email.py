"""Reference plugin: deliver notifications by e-mail (SMTP, with the standard library).

Recipients of a notification are roles (``kabid``), user names or addresses; this plugin
maps roles and names to addresses with its ``addresses`` table and uses anything containing
``@`` as it is. A notification none of whose recipients has an address raises, so the
failure is flagged on the case instead of being lost.

The SMTP password is a secret: it never goes in the TOML file. Name the environment
variable that holds it with ``password_env``.

Configuration::

    [plugins]
    enable = ["notify_email"]
    timeouts = { notify_email = 30 }   # SMTP can be slow; default limit is 5 s

    [notify_email]
    host = "smtp.kab.go.id"
    port = 587
    security = "starttls"            # "none", "starttls" or "ssl"
    username = "pengaduan"           # optional
    password_env = "LAPOR_BRIDGE_SMTP_PASSWORD"
    from_addr = "pengaduan@dpmptsp.kab.go.id"
    timeout_seconds = 20
    kinds = []                       # only these notification kinds; empty: all

    [notify_email.addresses]
    kabid = ["kabid.pengaduan@dpmptsp.kab.go.id"]
    kepala_dinas = ["kadis@dpmptsp.kab.go.id"]
    petugas = ["pengaduan@dpmptsp.kab.go.id"]
"""

from __future__ import annotations

import mimetypes
import os
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.domain import Notification
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password_env: str | None = None
    from_addr: str
    timeout_seconds: float = Field(default=20.0, gt=0)
    kinds: list[str] = Field(default_factory=list)
    addresses: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("from_addr")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise ValueError("expected an e-mail address")
        return value

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, addrs in value.items():
            for addr in addrs:
                if "@" not in addr:
                    raise ValueError(f"{role}: {addr!r} is not an e-mail address")
        return value


def resolve(recipients: Sequence[str], config: Config) -> list[str]:
    """The addresses of ``recipients``, in order, without duplicates."""
    out: list[str] = []
    for recipient in recipients:
        found = [recipient] if "@" in recipient else config.addresses.get(recipient, [])
        for addr in found:
            if addr not in out:
                out.append(addr)
    return out


def build_message(notification: Notification, to: list[str], config: Config) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = notification.subject
    message["From"] = config.from_addr
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain=config.from_addr.rsplit("@", 1)[1])
    message["X-Lapor-Bridge-Kind"] = notification.kind
    if notification.register_no:
        message["X-Lapor-Bridge-Case"] = notification.register_no
    message.set_content(notification.body)
    for name in notification.attachments:
        path = Path(name)
        try:
            content = path.read_bytes()
        except OSError as exc:
            # Never send the message without what it says is attached.
            raise RuntimeError(f"attachment {path.name} cannot be read: {exc.strerror}"
                               ) from None
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, _, subtype = kind.partition("/")
        message.add_attachment(content, maintype=maintype, subtype=subtype,
                               filename=path.name)
    return message


config_section = declare_section("notify_email", Config)


@hookimpl
def notify(notification: Notification, config: Config) -> None:
    if config.kinds and notification.kind not in config.kinds:
        return
    to = resolve(notification.recipients, config)
    if not to:
        raise ValueError(f"no e-mail address for recipients {list(notification.recipients)}; "
                         "add them to [notify_email.addresses]")
    message = build_message(notification, to, config)
    password = None
    if config.password_env:
        password = os.environ.get(config.password_env)
        if password is None:
            raise RuntimeError(f"environment variable {config.password_env} (SMTP password) "
                               "is not set")
    smtp: smtplib.SMTP
    if config.security == "ssl":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout_seconds,
                                context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
    with smtp:
        if config.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        if config.username:
            smtp.login(config.username, password or "")
        refused = smtp.send_message(message)
    if refused:
        raise RuntimeError(f"SMTP server refused {sorted(refused)}")
