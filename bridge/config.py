"""Deployment settings: one TOML file per deployment, validated on load.

Secrets never live in the TOML file itself. They come from environment variables
(``LAPOR_BRIDGE_BEARER``, ``LAPOR_BRIDGE_TOKEN``, ``LAPOR_BRIDGE_DB_PASSWORD``) or from a
secrets file that the config names; they are held as :class:`pydantic.SecretStr` so that
``repr`` and logs show ``**********``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from bridge.deployment import read_deployment

# ConfigError lives in bridge.errors so that bridge.deployment can raise it without
# importing this module, which builds on it.
from bridge.errors import ConfigError as ConfigError
from bridge.filemodes import open_to_others

ENV_BEARER = "LAPOR_BRIDGE_BEARER"
ENV_TOKEN = "LAPOR_BRIDGE_TOKEN"
ENV_DB_PASSWORD = "LAPOR_BRIDGE_DB_PASSWORD"
ENV_SECRETS_FILE = "LAPOR_BRIDGE_SECRETS_FILE"


def _positive_seconds(value: float) -> float:
    if value <= 0:
        raise ValueError(f"must be greater than 0 seconds, got {value:g}")
    return value


def _not_bool(value: Any) -> Any:
    # TOML `true` would otherwise pass as 1 second.
    if isinstance(value, bool):
        raise ValueError("expected a number of seconds, got a boolean")
    return value


#: A duration in seconds, > 0 (fractions allowed).
Seconds = Annotated[float, BeforeValidator(_not_bool), AfterValidator(_positive_seconds)]

#: A fraction from 0 to 1 (a share of items, a rate of requests).
Share = Annotated[float, Field(ge=0, le=1)]


class _Section(BaseModel):
    # Unknown keys are refused so that a typo never silently falls back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


def numbering_pattern(value: str, sample: dict[str, object], fields: str = "") -> str:
    """``value`` if it is a numbering pattern (a register number, a letter number): it has
    ``{seq}``, so that numbers are unique, and formats with the ``sample`` fields
    (``fields`` ends the message when it does not)."""
    if "{seq" not in value:
        raise ValueError("must contain {seq} so that numbers are unique")
    try:
        value.format(**sample)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"not a valid format pattern ({exc}){fields}") from None
    return value


def endpoint_path(value: str | None, empty: str | None = None) -> str | None:
    """``value`` if it is an endpoint path (None: not set). "" is accepted only where it
    switches the endpoint off, and ``empty`` then ends the message that says so."""
    if value is None or (value == "" and empty is not None):
        return value
    if not value.startswith("/"):
        raise ValueError("expected a path starting with /" + (empty or ""))
    return value


class RegencySettings(_Section):
    name: str
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$")
    #: ``str.format`` pattern; fields: code, year, month, seq, channel.
    register_format: str = "{code}/{year}/{seq:05d}"
    timezone: str = "Asia/Jakarta"
    #: The day the unit began taking complaints here: no date of receipt may be earlier.
    started_on: date | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("register_format")
    @classmethod
    def _format_has_seq(cls, value: str) -> str:
        return numbering_pattern(
            value, {"code": "X", "year": 2026, "month": 1, "seq": 1, "channel": "lapor"})


#: The ``[lapor]`` path settings and the profile endpoint each one overrides.
ENDPOINT_OF_PATH: dict[str, str] = {
    "inbox_path": "inbox", "complaint_path": "complaint", "followups_path": "followups",
    "followup_add_path": "followup_add", "reject_path": "forward", "create_path": "create",
    "upload_path": "upload", "institutions_path": "institutions",
    "templates_path": "templates",
}


class LaporSettings(_Section):
    """Where and how to reach LAPOR!. Every endpoint is a setting (see LAPOR-API.md)."""

    base_url: str
    bearer_header: Literal["auth", "Authorization"] = "auth"
    institution_id: int = Field(default=1, ge=1)
    user_id: int = Field(default=1, ge=1)
    #: The API profile: a shipped name (``lapor-v3``, ``lapor-flat``) or a TOML file. It
    #: holds every wire shape: endpoints, envelopes and each field's candidate paths.
    api_profile: str = "lapor-v3"
    #: Keys laid over the profile (same layout as a profile file), e.g.
    #: ``[lapor.api.fields.complaint] category = ["kategori.nama"]``.
    api: dict[str, Any] = Field(default_factory=dict)
    #: Endpoint paths: each overrides the profile's path when set ("" switches the inbox
    #: off: the bridge then tracks known ids alone).
    inbox_path: str | None = None
    complaint_path: str | None = None
    followups_path: str | None = None
    followup_add_path: str | None = None
    reject_path: str | None = None
    create_path: str | None = None
    upload_path: str | None = None
    institutions_path: str | None = None
    templates_path: str | None = None
    page_size: int = Field(default=100, ge=1, le=1000)
    requests_per_second: float = Field(default=5.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=50)
    backoff_initial: float = Field(default=0.5, gt=0)
    backoff_max: float = Field(default=30.0, gt=0)
    #: Re-read this far behind the cursor on every pull, against clock skew.
    lookback_seconds: int = Field(default=300, ge=0)
    #: Longest accepted report content; longer items are quarantined.
    max_content_chars: int = Field(default=100_000, ge=1)
    #: Largest answer, in bytes as sent (compressed); a larger one is refused unread.
    max_response_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    #: Largest answer once decompressed: a gzip bomb stops here. The answer is held in
    #: memory up to this size, so it bounds the client's memory too.
    max_decoded_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    #: Most items a page may hold when the request names no page size (when it does,
    #: more items than asked for is a malformed page).
    max_page_items: int = Field(default=1000, ge=1)
    #: Seconds one attempt may take in all, from connecting to the last byte of the
    #: answer; read_timeout bounds each read only.
    request_deadline: float = Field(default=60.0, gt=0)
    #: A pull that quarantines a whole page, or more than this share of the items it
    #: read, raises the quarantine alarm (sync --once exits 1, status is unhealthy).
    quarantine_alarm_share: Share = 0.2
    #: Local name of each LAPOR! status code; unknown codes keep LAPOR!'s own name.
    status_names: dict[str, str] = Field(default_factory=dict)
    #: A regular expression: the detail's status log whose note matches it (the last
    #: one) tells when a report reached our body, where its "received" clocks start.
    received_log_note: str = r"(?i)disposisi"
    #: Mark each follow-up with its outbox id, for exactly-once read-back.
    followup_marker: bool = True
    #: ``invisible`` (zero-width characters at the end of the text) or ``visible``
    #: (``[lb:<outbox id>]``, for a LAPOR! that drops zero-width characters).
    followup_marker_style: Literal["invisible", "visible"] = "invisible"

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected an http:// or https:// URL with a host")
        return value.rstrip("/")

    @field_validator("received_log_note")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        return value

    @field_validator(
        "inbox_path",
        "complaint_path",
        "followups_path",
        "followup_add_path",
        "reject_path",
        "create_path",
        "upload_path",
        "institutions_path",
        "templates_path",
    )
    @classmethod
    def _path(cls, value: str | None, info: ValidationInfo) -> str | None:
        # "" says there is no inbox: reports are found by tracking known ids only.
        no_inbox = ', or "" for no inbox' if info.field_name == "inbox_path" else None
        return endpoint_path(value, no_inbox)


class DatabaseSettings(_Section):
    # Dumped as written in the file (``schema``), so that settings survive a round trip
    # through model_dump() and model_validate().
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    url: str = "sqlite:///lapor-bridge.db"
    echo: bool = False
    #: PostgreSQL only: keep every table in this schema of the database (created when
    #: missing). Each body of a several-body deployment gets ``body_<code>``.
    #: (Written ``schema`` in the file: pydantic's BaseModel owns that attribute name.)
    db_schema: str | None = Field(default=None, alias="schema",
                                  pattern=r"^[a-z_][a-z0-9_]{0,62}$")

    @field_validator("db_schema")
    @classmethod
    def _schema_needs_postgresql(cls, value: str | None, info: ValidationInfo) -> str | None:
        url = str(info.data.get("url", ""))
        if value and not url.startswith("postgresql"):
            raise ValueError("a schema needs a postgresql:// URL (on SQLite each body has "
                             "its own file)")
        return value

    @field_validator("url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError("expected a SQLAlchemy database URL") from exc
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("expected a sqlite:// or postgresql:// URL")
        if url.password:
            raise ValueError(f"no password in the URL: set {ENV_DB_PASSWORD} instead")
        return value


class OutboxSettings(_Section):
    """How local actions are delivered to LAPOR!."""

    #: Cases delivered concurrently (each case's rows stay in order).
    concurrency: int = Field(default=4, ge=1, le=64)
    #: Attempts per row before it becomes a dead letter.
    max_attempts: int = Field(default=20, ge=1)
    backoff_initial: float = Field(default=2.0, gt=0)
    backoff_max: float = Field(default=600.0, gt=0)
    #: Push complaints that came by letter, box, phone... up to LAPOR! as new reports.
    push_local_cases: bool = True
    #: Largest attachment accepted by a staff action, in bytes.
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, ge=1)


class OpdSettings(_Section):
    """A regional office (OPD) or other body a case can be forwarded to."""

    code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    name: str
    #: Its institution id on LAPOR!; without one, a forward is recorded locally only.
    lapor_institution_id: int | None = None
    #: Inside the regency (a disposition to another OPD) or another body ("bukan wewenang").
    kind: Literal["opd", "body"] = "opd"
    email: str | None = None


class BodySecrets(BaseModel):
    """One body's LAPOR! credentials, found by its secrets name (bridge/bodies.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    bearer: SecretStr | None = None
    token: SecretStr | None = None


class Secrets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    bearer: SecretStr | None = None
    token: SecretStr | None = None
    database_password: SecretStr | None = None
    #: Credentials by secrets name (see :func:`secrets_name`): from
    #: ``LAPOR_BRIDGE_<NAME>_BEARER``/``_TOKEN`` or the secrets file's ``[bodies.<name>]``.
    bodies: dict[str, BodySecrets] = Field(default_factory=dict)


def secrets_name(name: str) -> str:
    """A secrets name as it appears in a variable: ``dinas-kes`` -> ``DINAS_KES``."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


_ENV_BODY_SECRET = re.compile(r"^LAPOR_BRIDGE_([A-Z0-9_]+)_(BEARER|TOKEN)$")


class Settings(_Section):
    """The whole deployment. Sections a plugin declares are kept raw in ``plugins``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    regency: RegencySettings
    lapor: LaporSettings
    database: DatabaseSettings = DatabaseSettings()
    outbox: OutboxSettings = OutboxSettings()
    opds: list[OpdSettings] = Field(default_factory=list)
    #: A Pemda's bodies (``[[bodies]]``), kept raw: bridge/bodies.py validates them and
    #: builds each body's own settings.
    bodies: list[dict[str, Any]] = Field(default_factory=list)
    secrets_file: str | None = None
    #: Where these settings were read from, for error messages.
    source: str = "<memory>"
    secrets: Secrets = Secrets()

    @field_validator("opds")
    @classmethod
    def _unique_opds(cls, value: list[OpdSettings]) -> list[OpdSettings]:
        seen: set[str] = set()
        for opd in value:
            if opd.code in seen:
                raise ValueError(f"OPD code {opd.code!r} appears twice")
            seen.add(opd.code)
        return value

    def opd(self, code: str) -> OpdSettings | None:
        return next((o for o in self.opds if o.code == code), None)

    def extra_sections(self) -> dict[str, Any]:
        """Sections that the core does not know (plugin and feature sections)."""
        return dict(self.model_extra or {})

    def section(self, name: str) -> dict[str, Any]:
        value = (self.model_extra or {}).get(name, {})
        return dict(value) if isinstance(value, Mapping) else {}

    def section_as(self, name: str, model: type[M]) -> M:
        """Section ``name`` validated with ``model`` (see :func:`section_settings`)."""
        return section_settings(self, name, model)


#: Sections that features other than the core read; anything else at top level is a typo
#: unless a plugin declares it.
KNOWN_EXTRA_SECTIONS: set[str] = {
    "workflow", "calendar", "plugins", "notifications", "daemon", "web", "reports", "logging",
    "files",
    "documents",
}


def register_section(name: str) -> None:
    """Let a built-in feature (scheduler, web, workflow...) own a top-level section."""
    KNOWN_EXTRA_SECTIONS.add(name)


M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """``(dotted key, problem)`` of the most telling error of ``exc``.

    A misspelt key shows up twice (the right key missing, the wrong one unknown); the
    unknown one is reported, since it points at the line to fix.
    """
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    # pydantic marks a bad dict key as "<key>.[key]" and validators as "function-...".
    loc = ".".join(str(p) for p in first["loc"]
                   if p != "[key]" and not str(p).startswith("function-"))
    kind = first["type"]
    if kind == "extra_forbidden":
        return loc, "unknown key"
    if kind == "missing":
        return loc, "missing required key"
    if kind == "literal_error":
        expected = (first.get("ctx") or {}).get("expected", "")
        return loc, f"unknown value {first.get('input')!r}; expected {expected}"
    return loc, str(first["msg"]).removeprefix("Value error, ")


def section_settings(settings: Settings, name: str, model: type[M],
                     data: Mapping[str, Any] | None = None) -> M:
    """Validate top-level section ``name`` with ``model``; a problem raises ConfigError
    naming ``<name>.<key>`` (every feature's section goes through here)."""
    try:
        return model.model_validate(dict(settings.section(name) if data is None else data))
    except ValidationError as exc:
        loc, problem = describe_validation_error(exc)
        raise ConfigError(settings.source, f"{name}.{loc}" if loc else name, problem) from None


def _read_secrets(path: Path, source: str) -> dict[str, Any]:
    try:
        problem = open_to_others(path)
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(source, "secrets_file", f"file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "(file)", f"not valid TOML: {exc}") from None
    if problem:
        raise ConfigError(source, "secrets_file", problem)
    allowed = {"bearer", "token", "database_password"}
    for key, value in data.items():
        if key == "bodies" and isinstance(value, Mapping):
            _check_body_secrets(path, value)
        elif key not in allowed:
            raise ConfigError(path, key, f"unknown key; expected one of {sorted(allowed)} "
                              "or [bodies.<name>] tables")
    return data


def _check_body_secrets(path: Path, tables: Mapping[str, Any]) -> None:
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(path, f"bodies.{name}", "expected a table with bearer and token")
        for key in table:
            if key not in ("bearer", "token"):
                raise ConfigError(path, f"bodies.{name}.{key}",
                                  "unknown key; expected bearer or token")


def _body_secrets(from_file: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Credentials by secrets name: the file's ``[bodies.<name>]``, then the variables."""
    found: dict[str, dict[str, str]] = {}
    for name, table in from_file.items():
        found.setdefault(secrets_name(name), {}).update({k: str(v) for k, v in table.items()})
    for var, value in env.items():
        match = _ENV_BODY_SECRET.match(var)
        if match and value and var not in (ENV_BEARER, ENV_TOKEN):
            found.setdefault(match.group(1), {})[match.group(2).lower()] = value
    return found


def settings_from_mapping(
    data: Mapping[str, Any],
    source: str = "<memory>",
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Validate ``data`` (a parsed TOML document) and attach secrets from ``env``."""
    env = os.environ if env is None else env
    raw = dict(data)
    if "secrets" in raw:
        raise ConfigError(source, "secrets", "secrets may not be written in the config file; "
                          f"use {ENV_BEARER}/{ENV_TOKEN} or secrets_file")
    secrets: dict[str, Any] = {}
    body_tables: Mapping[str, Any] = {}
    secrets_file = raw.get("secrets_file") or env.get(ENV_SECRETS_FILE)
    if secrets_file:
        path = Path(str(secrets_file))
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        from_file = _read_secrets(path, source)
        body_tables = from_file.pop("bodies", {})
        secrets.update({k: str(v) for k, v in from_file.items()})
    for key, var in (("bearer", ENV_BEARER), ("token", ENV_TOKEN),
                     ("database_password", ENV_DB_PASSWORD)):
        if env.get(var):
            secrets[key] = env[var]
    by_name = _body_secrets(body_tables, env)
    if by_name:
        secrets["bodies"] = by_name
    raw["secrets"] = secrets
    raw["source"] = source
    lapor = raw.get("lapor")
    if isinstance(lapor, Mapping) and base_dir is not None:
        ref = lapor.get("api_profile")
        # A profile file is found beside the config that names it, wherever one runs from.
        if isinstance(ref, str) and ref.endswith(".toml") and not Path(ref).is_absolute():
            raw["lapor"] = {**lapor, "api_profile": str(base_dir / ref)}
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        loc, problem = describe_validation_error(exc)
        raise ConfigError(source, loc or "(root)", problem) from None
    for name, value in settings.extra_sections().items():
        if not isinstance(value, Mapping):
            raise ConfigError(source, name, "unknown key")
    if settings.secrets.database_password is not None and \
            settings.database.url.startswith("sqlite"):
        raise ConfigError(source, "database.url", f"a SQLite database takes no password, but "
                          f"{ENV_DB_PASSWORD} (or the secrets file) sets one; unset it or "
                          "use a postgresql:// URL")
    return settings


def load_settings(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a deployment's TOML file, or a shipped config by name, with the
    profile it names merged in (:mod:`bridge.deployment`). Raises :class:`ConfigError`."""

    found = read_deployment(path)
    return settings_from_mapping(found.data, source=found.source, env=env,
                                 base_dir=found.base_dir)


def check_unknown_sections(settings: Settings, declared: set[str]) -> None:
    """Refuse top-level sections that neither the core nor a loaded plugin declares."""
    for name in settings.extra_sections():
        if name not in declared and name not in KNOWN_EXTRA_SECTIONS:
            raise ConfigError(settings.source, name, "unknown section (no feature or plugin "
                              "declares it)")
