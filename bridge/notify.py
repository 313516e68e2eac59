"""Notifications: messages for staff, rendered from Jinja2 templates in Bahasa Indonesia.

The core builds a :class:`~bridge.domain.Notification` with :class:`NotificationRenderer`
and hands it to every channel plugin (``PluginHost.notify``), preferably after commit
through :func:`bridge.events.record_notification`.

Privacy: templates never see the reporter. They get a :class:`CaseView` built from the
case snapshot *without* the reporter's name, e-mail, phone, address or KTP number (only
``pelapor``: "Anonim", "Dirahasiakan" or "Tercatat di sistem"), and without the complaint
text, where a complainant often writes who they are. A regency template that asks for
anything else fails to render with a clear error instead of leaking it.

Templates live in ``bridge/templates/notifications/<kind>.j2``. The first line a template
renders is the subject, the rest the body (the built-in ones extend ``_base.j2`` and fill
its ``subject`` and ``message`` blocks). A regency overrides any of them by putting a file
of the same name in ``[notifications] template_dir``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.config import ConfigError, Settings, register_section
from bridge.domain import CaseSnapshot, Notification
from bridge.errors import BridgeError
from bridge.locale import BULAN, HARI, ZONE_ABBREV

register_section("notifications")

#: The built-in templates, read with importlib.resources wherever the package is installed.
BUILTIN_TEMPLATES = ("bridge", "templates/notifications")

#: The kinds of notification the core sends, each with its template.
KINDS: tuple[str, ...] = (
    "case_received",
    "assigned",
    "forwarded",
    "escalated",
    "deadline_near",
    "deadline_missed",
    "followup_delivered",
    "dead_letter",
    "plugin_failure",
)

#: Notifications about many cases at once, each with its template (``cases``, not ``case``).
DIGEST_KINDS: tuple[str, ...] = ("case_received_digest",)

#: More new cases than this arriving in one sync are announced by digests (one per
#: recipient group and triage batch) instead of one notification each.
DIGEST_THRESHOLD = 20

ROLE_LABELS: dict[str, str] = {
    "kabid": "Kepala Bidang",
    "kepala_dinas": "Kepala Dinas",
    "tim_penanganan_pengaduan": "Tim Penanganan Pengaduan",
    "kepala_daerah": "Kepala Daerah",
    "sekretaris": "Sekretaris Dinas",
    "kasi": "Kepala Seksi",
    "petugas": "Petugas Pengaduan",
    "analis": "JFT Analis Kebijakan",
}



class NotificationError(BridgeError):
    """A template is missing, does not parse, or asks for something it may not see."""


class NotificationSettings(BaseModel):
    """The ``[notifications]`` table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A directory whose ``<kind>.j2`` files replace the built-in templates.
    template_dir: str | None = None
    #: When more new cases than this arrive in one sync, their "Pengaduan baru" messages
    #: are sent as digests ("N pengaduan baru", one per recipient group and batch of up to
    #: 500 cases) instead of one each; 0 keeps one message per case however many arrive.
    digest_threshold: int = Field(default=DIGEST_THRESHOLD, ge=0)


@dataclass(frozen=True, slots=True)
class CaseView:
    """What a notification template may know about a case: no reporter, no complaint text."""

    id: int
    register_no: str
    tracking_id: str | None
    lapor_url: str | None
    title: str
    category: str | None
    location: str | None
    channel: str
    stage: str
    severity: str | None
    assigned_to: str | None
    forwarded_to: str | None
    received_at: datetime | None
    deadline_at: datetime | None
    is_anonymous: bool
    is_secret: bool
    pelapor: str

    @classmethod
    def of(cls, case: CaseSnapshot) -> CaseView:
        if case.is_anonymous:
            pelapor = "Anonim"
        elif case.is_secret:
            pelapor = "Dirahasiakan"
        else:
            pelapor = "Tercatat di sistem"
        return cls(
            id=case.id, register_no=case.register_no, tracking_id=case.tracking_id,
            lapor_url=case.lapor_url, title=case.title, category=case.category,
            location=case.location, channel=case.channel, stage=case.stage,
            severity=case.severity, assigned_to=case.assigned_to,
            forwarded_to=case.forwarded_to, received_at=case.received_at,
            deadline_at=case.deadline_at, is_anonymous=case.is_anonymous,
            is_secret=case.is_secret, pelapor=pelapor,
        )


def format_tanggal(value: date | datetime | None, tz: str = "Asia/Jakarta") -> str:
    """``Senin, 17 Agustus 2026 pukul 23.59 WIB`` (dates without the time)."""
    # ``fold`` is part of the key: in a zone's repeated hour the second pass equals its
    # fold-0 twin, yet is another instant.
    return _format_tanggal(value, tz, getattr(value, "fold", 0))


# Cached: a digest of a first sync writes a deadline per case, and deadlines fall on a
# handful of days (end of day, local time); the text was 2% of such a sync's CPU.
@lru_cache(maxsize=4096)
def _format_tanggal(value: date | datetime | None, tz: str, _fold: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise NotificationError(f"naive datetime {value.isoformat()} in a notification")
        local = value.astimezone(ZoneInfo(tz))
        zone = ZONE_ABBREV.get(tz, tz)
        return (f"{HARI[local.weekday()]}, {local.day} {BULAN[local.month - 1]} "
                f"{local.year} pukul {local:%H.%M} {zone}")
    return f"{HARI[value.weekday()]}, {value.day} {BULAN[value.month - 1]} {value.year}"


_ROLE_NAME = re.compile(r"[a-z][a-z_]*")


def role_label(role: str) -> str:
    """``kabid`` -> ``Kepala Bidang``; names and addresses are shown as they are."""
    if role in ROLE_LABELS:
        return ROLE_LABELS[role]
    if _ROLE_NAME.fullmatch(role):
        return role.replace("_", " ").title()
    return role


class NotificationRenderer:
    """Renders notifications from the built-in templates, or a regency's overrides."""

    def __init__(
        self,
        template_dir: str | Path | None = None,
        *,
        regency: str = "",
        timezone: str = "Asia/Jakarta",
        digest_threshold: int = DIGEST_THRESHOLD,
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            path = Path(template_dir)
            if not path.is_dir():
                raise NotificationError(f"template directory not found: {path}")
            loaders.append(jinja2.FileSystemLoader(str(path)))
        loaders.append(jinja2.PackageLoader(*BUILTIN_TEMPLATES))
        self.template_dir = None if template_dir is None else Path(template_dir)
        self.regency = regency
        self.timezone = timezone
        self.digest_threshold = digest_threshold
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            # Templates do not change while the bridge runs: no stat() of the file per
            # message to see whether it did (a first sync renders thousands).
            auto_reload=False,
        )
        self.env.filters["tanggal"] = lambda v: format_tanggal(v, timezone)
        self.env.filters["peran"] = role_label

    def check(self) -> None:
        """Compile every template (built-in and overrides); raise on the first bad one."""
        names = {f"{kind}.j2" for kind in (*KINDS, *DIGEST_KINDS)}
        if self.template_dir is not None:
            names |= {p.name for p in self.template_dir.glob("*.j2")}
        for name in sorted(names):
            try:
                self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise NotificationError(
                    f"template {exc.filename or name} line {exc.lineno}: {exc.message}"
                ) from None

    def render(
        self,
        kind: str,
        case: CaseSnapshot,
        recipients: Sequence[str],
        **context: Any,
    ) -> Notification:
        """Render notification ``kind`` about ``case`` for ``recipients``.

        ``context`` holds the kind's own facts (``unit``, ``target``, ``tembusan``,
        ``level``, ``to_role``, ``reason``, ``deadline_at``, ``working_days_left``,
        ``remote_id``, ``what``, ``error``, ``failures``); they also go to
        ``Notification.data`` for machine channels, made JSON-able.
        """
        return self._notification(
            kind, recipients, context, {"case": CaseView.of(case)},
            {"stage": case.stage, "severity": case.severity, "tracking_id": case.tracking_id},
            case.id, case.register_no)

    def render_digest(
        self,
        kind: str,
        cases: Sequence[CaseSnapshot],
        recipients: Sequence[str],
        **context: Any,
    ) -> Notification:
        """Render digest ``kind`` (one of :data:`DIGEST_KINDS`) about several ``cases``.

        Templates get ``cases`` (a list of :class:`CaseView`) and ``count``; the
        notification has no ``case_id`` and carries the cases' ids and register numbers
        in ``data`` (``case_ids``, ``register_nos``), so a channel that fails can still
        be charged to each of them."""
        if not cases:
            raise ValueError("a digest needs at least one case")
        views = [CaseView.of(c) for c in cases]
        return self._notification(
            kind, recipients, context, {"cases": views, "count": len(views)},
            {"count": len(views), "case_ids": [v.id for v in views],
             "register_nos": [v.register_no for v in views]},
            None, None)

    def _notification(self, kind: str, recipients: Sequence[str], context: Mapping[str, Any],
                      about: Mapping[str, Any], facts: Mapping[str, Any],
                      case_id: int | None, register_no: str | None) -> Notification:
        """Render ``kind`` with the template variables ``about`` (the case or cases) and
        build the notification, ``facts`` and ``context`` going to its ``data``."""
        self._check_call(recipients, context)
        template = self._template(kind)
        variables = {
            **about,
            "kind": kind,
            "regency": self.regency,
            "recipients": list(recipients),
            "recipients_text": _recipients_text(recipients),
            **context,
        }
        subject, body = self._text(template, variables)
        data = {"kind": kind, **facts, **{k: _jsonable(v) for k, v in context.items()}}
        return Notification(kind=kind, recipients=list(recipients), subject=subject,
                            body=body, case_id=case_id, register_no=register_no, data=data)

    @staticmethod
    def _check_call(recipients: Sequence[str], context: Mapping[str, Any]) -> None:
        if isinstance(recipients, str):
            raise TypeError("recipients must be a list of names, not a string")
        forbidden = {"reporter", "pelapor_name", "content"} & set(context)
        if forbidden:
            raise NotificationError(f"notification context may not contain {sorted(forbidden)}")

    def _template(self, kind: str) -> jinja2.Template:
        try:
            return self.env.get_template(f"{kind}.j2")
        except jinja2.TemplateNotFound:
            raise NotificationError(f"no template for notification kind {kind!r} "
                                    f"({kind}.j2)") from None
        except jinja2.TemplateSyntaxError as exc:
            raise NotificationError(f"template {exc.filename} line {exc.lineno}: "
                                    f"{exc.message}") from None

    @staticmethod
    def _text(template: jinja2.Template, variables: Mapping[str, Any]) -> tuple[str, str]:
        """The rendered subject (one line) and body."""
        try:
            text = template.render(variables)
        except jinja2.UndefinedError as exc:
            raise NotificationError(f"template {template.filename}: {exc.message} (a "
                                    "notification sees only the fields of CaseView and the "
                                    "context given)") from None
        subject, _, body = text.strip().partition("\n")
        if not subject.strip() or not body.strip():
            raise NotificationError(f"template {template.filename} must render the subject "
                                    "on its first line and the body below it")
        return " ".join(subject.split()), body.strip() + "\n"


def _recipients_text(recipients: Sequence[str]) -> str:
    return ", ".join(role_label(r) for r in recipients) or "Bapak/Ibu"


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def renderer_from_settings(settings: Settings) -> NotificationRenderer:
    """The deployment's renderer; raises :class:`ConfigError` naming the bad key."""
    try:
        options = NotificationSettings.model_validate(settings.section("notifications"))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(settings.source, f"notifications.{loc}", problem) from None
    template_dir = options.template_dir
    if template_dir is not None and not Path(template_dir).is_absolute() \
            and settings.source not in ("<memory>", ""):
        template_dir = str(Path(settings.source).parent / template_dir)
    try:
        renderer = NotificationRenderer(template_dir, regency=settings.regency.name,
                                        timezone=settings.regency.timezone,
                                        digest_threshold=options.digest_threshold)
        renderer.check()
    except NotificationError as exc:
        raise ConfigError(settings.source, "notifications.template_dir", str(exc)) from None
    return renderer


__all__ = [
    "DIGEST_KINDS",
    "DIGEST_THRESHOLD",
    "KINDS",
    "CaseView",
    "NotificationError",
    "NotificationRenderer",
    "NotificationSettings",
    "format_tanggal",
    "renderer_from_settings",
    "role_label",
]
