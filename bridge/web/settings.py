"""The ``[web]`` config section and the key that signs session cookies.

The signing key is a secret, so it never lives in the TOML file. It comes from (first
found wins):

1. the environment variable ``LAPOR_BRIDGE_WEB_SECRET``;
2. ``web.secret_file``: a file holding the key. When the file does not exist yet the
   bridge creates it (mode 0600) with a fresh random key, so that sessions survive
   restarts without anyone having to generate one by hand;
3. otherwise a random key made at start-up and held in memory only: every restart signs
   everyone out (fine for the demo and a single-process test; say ``secret_file`` in
   production).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.config import ConfigError, Settings, section_settings
from bridge.filemodes import file_mode, open_to_others
from bridge.services.accounts import ADMIN_ROLE
from bridge.web.proxies import parse_networks

log = logging.getLogger("bridge.web")

ENV_WEB_SECRET = "LAPOR_BRIDGE_WEB_SECRET"
#: Shorter keys are refused: the key is all that stands between a cookie and a session.
MIN_SECRET_LENGTH = 32
#: The role of accounts that run the page but take no part in the SOP.


class WebSettings(BaseModel):
    """``[web]``: where the page listens and how sign-in behaves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Seconds a sign-in lasts (absolute, counted from signing in).
    session_max_age: int = Field(default=8 * 3600, ge=60)
    #: File holding the cookie-signing key (created with a random key when missing).
    secret_file: str | None = None
    #: Mark the session cookie Secure (set true when the page is served over HTTPS).
    cookie_secure: bool = False
    #: Failed sign-ins allowed per account within ``login_window_seconds`` (an address
    #: may fail four times as often across accounts).
    login_max_failures: int = Field(default=5, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    #: Reverse proxies (addresses or networks) whose X-Forwarded-For is believed; empty:
    #: the header is ignored and the connection's address counts.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: How often an open queue page asks for new tickets.
    poll_seconds: float = Field(default=10.0, ge=0.5, le=600)
    #: A deadline closer than this stands out as "near".
    near_deadline_hours: int = Field(default=24, ge=0)
    #: Roles that may put a dead outbox row back in line.
    retry_roles: list[str] = Field(default_factory=lambda: [ADMIN_ROLE, "kasi", "kabid"])
    #: Rows per queue page.
    page_size: int = Field(default=100, ge=10, le=1000)
    #: Files one form may carry (each at most outbox.max_attachment_bytes).
    max_upload_files: int = Field(default=5, ge=0, le=50)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        parse_networks(value)
        return value


def web_settings(settings: Settings) -> WebSettings:
    """Parse ``[web]``; raises :class:`ConfigError` naming ``web.<key>``."""
    raw: Mapping[str, Any] = settings.section("web")
    if "secret" in raw or "secret_key" in raw:
        key = "secret" if "secret" in raw else "secret_key"
        raise ConfigError(settings.source, f"web.{key}",
                          "the signing key may not be written in the config file; set "
                          f"{ENV_WEB_SECRET} or name a file with web.secret_file")
    return section_settings(settings, "web", WebSettings, raw)


@dataclass(frozen=True)
class SigningKey:
    value: str
    #: Where it came from ("env", "file", "memory"), for the start-up line; never the key.
    origin: str

    def __repr__(self) -> str:
        return f"SigningKey(origin={self.origin!r}, value='**********')"


def _config_dir(settings: Settings) -> Path | None:
    src = Path(settings.source)
    return src.parent if src.suffix == ".toml" and src.exists() else None


def _secret_path(settings: Settings, web: WebSettings) -> Path | None:
    if not web.secret_file:
        return None
    path = Path(web.secret_file).expanduser()
    base = _config_dir(settings)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def check_secret_file(settings: Settings, web: WebSettings) -> None:
    """``check-config``: refuse a signing-key file that others can read or write."""
    path = _secret_path(settings, web)
    if path is not None and path.exists():
        problem = open_to_others(path)
        if problem:
            raise ConfigError(settings.source, "web.secret_file", problem)


def signing_key(settings: Settings, web: WebSettings,
                env: Mapping[str, str] | None = None) -> SigningKey:
    """The cookie-signing key (see the module docstring for the order)."""
    env = os.environ if env is None else env
    value = env.get(ENV_WEB_SECRET, "").strip()
    if value:
        if len(value) < MIN_SECRET_LENGTH:
            raise ConfigError(settings.source, ENV_WEB_SECRET,
                              f"too short: use at least {MIN_SECRET_LENGTH} characters")
        return SigningKey(value, "env")
    path = _secret_path(settings, web)
    if path is not None:
        return SigningKey(_read_or_create(path, settings.source, file_mode(settings)), "file")
    log.warning("web: no %s and no web.secret_file: sessions end when the page restarts",
                ENV_WEB_SECRET)
    return SigningKey(secrets.token_urlsafe(48), "memory")


def _read_or_create(path: Path, source: str, mode: int) -> str:
    try:
        problem = open_to_others(path)
        if problem:
            raise ConfigError(source, "web.secret_file", problem)
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(48)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # another process made it first: use theirs
            return _read_or_create(path, source, mode)
        except OSError as exc:
            raise ConfigError(source, "web.secret_file",
                              f"cannot create {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), mode)  # whatever the umask took away
            fh.write(value + "\n")
        log.warning("web: created a new signing key in %s", path)
        return value
    except OSError as exc:
        raise ConfigError(source, "web.secret_file", f"cannot read {path}: {exc.strerror}"
                          ) from None
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(source, "web.secret_file",
                          f"{path}: key too short: use at least {MIN_SECRET_LENGTH} characters")
    return value
