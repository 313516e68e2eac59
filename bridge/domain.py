"""What plugins see and return: immutable snapshots of cases and typed decisions.

Nothing here imports the store, the sync or the LAPOR! client. Plugins get a
:class:`CaseSnapshot` (a frozen copy taken from committed state), never an ORM object, so a
plugin cannot change a case behind the services' back; what a plugin wants done comes back
as a value (:class:`Classification`, :class:`RoutingDecision`, ...) that the core checks
and applies.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Literal, Protocol, runtime_checkable

#: Roles an escalation may go to in the five seed SOPs. Profiles may use their own names;
#: these are the ones the reference plugins and templates know.
ROLE_KABID = "kabid"
ROLE_KEPALA_DINAS = "kepala_dinas"
ROLE_TIM_PENANGANAN_PENGADUAN = "tim_penanganan_pengaduan"
ROLE_KEPALA_DAERAH = "kepala_daerah"
KNOWN_ROLES: tuple[str, ...] = (
    ROLE_KABID,
    ROLE_KEPALA_DINAS,
    ROLE_TIM_PENANGANAN_PENGADUAN,
    ROLE_KEPALA_DAERAH,
)

#: Prabumulih's classes; a profile may declare others (see ``PluginHost.classify``).
DEFAULT_SEVERITIES: tuple[str, ...] = ("ringan", "sedang", "berat")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    # A deep copy, so that nothing a plugin does to nested values reaches the ORM row.
    return MappingProxyType(copy.deepcopy(dict(value or {})))


def _require_text(cls: str, name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{cls}.{name} must be a non-empty string, got {value!r}")


@dataclass(frozen=True, slots=True)
class ReporterInfo:
    """The complainant as recorded. Absent (``None``) on snapshots of anonymous cases."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    id_number: str | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ReporterInfo | None:
        if not data:
            return None

        def text(*keys: str) -> str | None:
            for key in keys:
                value = data.get(key)
                if value not in (None, ""):
                    return str(value)
            return None

        return cls(
            name=text("name"),
            email=text("email", "e-mail"),
            phone=text("phone"),
            address=text("address"),
            id_number=text("id_number", "ktp", "nik"),
        )


@dataclass(frozen=True, slots=True)
class CaseSnapshot:
    """A case as committed in the store when the hook was called.

    ``reporter`` is ``None`` whenever ``is_anonymous`` is true, whatever the store holds.
    Times are timezone-aware (UTC). ``data`` is a read-only copy of the profile's extra data.
    """

    id: int
    register_no: str
    title: str
    content: str
    channel: str = "lapor"
    lapor_id: int | None = None
    tracking_id: str | None = None
    category: str | None = None
    location: str | None = None
    is_anonymous: bool = False
    is_secret: bool = False
    reporter: ReporterInfo | None = None
    stage: str = "received"
    severity: str | None = None
    assigned_to: str | None = None
    forwarded_to: str | None = None
    received_at: datetime | None = None
    files_complete_at: datetime | None = None
    deadline_at: datetime | None = None
    remote_status_code: str | None = None
    remote_status_name: str | None = None
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", _frozen_mapping(self.data))
        if self.is_anonymous and self.reporter is not None:
            # Defence in depth: the converter should never pass one, but an anonymous
            # reporter must not reach plugin code even if it does.
            object.__setattr__(self, "reporter", None)
        for name in ("received_at", "files_complete_at", "deadline_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"CaseSnapshot.{name} must be timezone-aware")

    @property
    def lapor_url(self) -> str | None:
        """The public LAPOR! page of the report, when it came from LAPOR!."""
        if self.tracking_id:
            return f"https://www.lapor.go.id/pengaduan/{self.tracking_id}"
        return None


#: Fields :func:`restaged` may change: plain values with no invariant of their own.
_RESTAGE_FIELDS = frozenset({"stage", "severity", "assigned_to", "forwarded_to"})


def restaged(snapshot: CaseSnapshot, **changes: str | None) -> CaseSnapshot:
    """``dataclasses.replace`` for the fields triage moves (stage, class, handlers),
    sharing the snapshot's already frozen data instead of deep-copying it again."""
    unknown = set(changes) - _RESTAGE_FIELDS
    if unknown:
        raise TypeError(f"restaged() cannot change {', '.join(sorted(unknown))}")
    new = object.__new__(CaseSnapshot)
    for name in CaseSnapshot.__slots__:
        object.__setattr__(new, name, changes[name] if name in changes
                           else getattr(snapshot, name))
    return new


def snapshot_from_row(row: Any) -> CaseSnapshot:
    """Build a :class:`CaseSnapshot` from anything shaped like ``bridge.store.models.Case``.

    Duck-typed (attribute access only) so that this module never imports the store.
    """
    is_anonymous = bool(getattr(row, "is_anonymous", False))
    reporter = None if is_anonymous else ReporterInfo.from_mapping(getattr(row, "reporter", None))
    tracking = getattr(row, "tracking_id", None)
    return CaseSnapshot(
        id=int(row.id),
        register_no=str(row.register_no),
        title=str(row.title),
        content=str(row.content),
        channel=str(getattr(row, "channel", None) or "lapor"),
        lapor_id=getattr(row, "lapor_id", None),
        tracking_id=None if tracking is None else str(tracking),
        category=getattr(row, "category", None),
        location=getattr(row, "location", None),
        is_anonymous=is_anonymous,
        is_secret=bool(getattr(row, "is_secret", False)),
        reporter=reporter,
        stage=str(getattr(row, "stage", None) or "received"),
        severity=getattr(row, "severity", None),
        assigned_to=getattr(row, "assigned_to", None),
        forwarded_to=getattr(row, "forwarded_to", None),
        received_at=getattr(row, "received_at", None),
        files_complete_at=getattr(row, "files_complete_at", None),
        deadline_at=getattr(row, "deadline_at", None),
        remote_status_code=getattr(row, "remote_status_code", None),
        remote_status_name=getattr(row, "remote_status_name", None),
        data=getattr(row, "data", None) or {},
    )


# -- what plugins return ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification:
    """The class of a case (``ringan``/``sedang``/``berat`` or the profile's own) and why."""

    severity: str
    reason: str = ""

    def __post_init__(self) -> None:
        _require_text("Classification", "severity", self.severity)


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Whose business a case is (kewenangan) and where it goes.

    - ``ours=True``: ``unit`` names the unit or person inside our office that handles it.
    - ``ours=False``: exactly one of ``opd`` (an OPD of the regency, by its configured name:
      the case is forwarded by letter) or ``body_id`` (a LAPOR! institution id: the case is
      passed on in LAPOR! as "bukan wewenang").
    ``tembusan`` lists who gets a copy of the forwarding letter (the complainant is
    ``"pelapor"``).
    """

    ours: bool
    unit: str | None = None
    opd: str | None = None
    body_id: int | None = None
    tembusan: Sequence[str] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.ours, bool):
            raise ValueError(f"RoutingDecision.ours must be a bool, got {self.ours!r}")
        if isinstance(self.tembusan, str):
            raise ValueError("RoutingDecision.tembusan must be a list of names, not a string")
        tembusan = tuple(self.tembusan)
        for item in tembusan:
            _require_text("RoutingDecision", "tembusan[]", item)
        object.__setattr__(self, "tembusan", tembusan)
        if self.ours:
            _require_text("RoutingDecision", "unit", self.unit)
            if self.opd is not None or self.body_id is not None:
                raise ValueError("RoutingDecision(ours=True) must not name an opd or body_id")
        else:
            if self.unit is not None:
                raise ValueError("RoutingDecision(ours=False) must not name a unit")
            if (self.opd is None) == (self.body_id is None):
                raise ValueError(
                    "RoutingDecision(ours=False) must name exactly one of opd or body_id"
                )
            if self.opd is not None:
                _require_text("RoutingDecision", "opd", self.opd)
            if self.body_id is not None and (
                isinstance(self.body_id, bool) or not isinstance(self.body_id, int)
            ):
                raise ValueError(f"RoutingDecision.body_id must be an int, got {self.body_id!r}")

    @property
    def target(self) -> str:
        """A short human description: the unit, the OPD or ``body:<id>``."""
        if self.ours:
            return str(self.unit)
        return self.opd if self.opd is not None else f"body:{self.body_id}"


@dataclass(frozen=True, slots=True)
class EscalationDecision:
    """Raise the case to ``to_role`` (escalation level ``level``, 1 = first step) because ..."""

    level: int
    to_role: str
    reason: str

    def __post_init__(self) -> None:
        if isinstance(self.level, bool) or not isinstance(self.level, int) or self.level < 1:
            raise ValueError(f"EscalationDecision.level must be an int >= 1, got {self.level!r}")
        _require_text("EscalationDecision", "to_role", self.to_role)
        _require_text("EscalationDecision", "reason", self.reason)


NotificationKind = str


@dataclass(frozen=True, slots=True)
class Notification:
    """A message for people, handed to every notification channel plugin.

    ``recipients`` are role names (``kabid``, ``petugas``...), user names or addresses; each
    channel maps them to its own addresses. By construction a notification carries no
    reporter identity (see :mod:`bridge.notify`).
    """

    kind: NotificationKind
    recipients: Sequence[str]
    subject: str
    body: str
    case_id: int | None = None
    register_no: str | None = None
    #: Extra structured facts for machine channels (webhook): JSON-able values only.
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    #: Files the message carries (paths on the bridge's machine), e.g. a recap's PDF; a
    #: channel that can attach files (e-mail) attaches them, the others may ignore them.
    attachments: Sequence[str] = ()

    def __post_init__(self) -> None:
        _require_text("Notification", "kind", self.kind)
        if isinstance(self.recipients, str):
            raise ValueError("Notification.recipients must be a list, not a string")
        if isinstance(self.attachments, str):
            raise ValueError("Notification.attachments must be a list, not a string")
        object.__setattr__(self, "recipients", tuple(self.recipients))
        object.__setattr__(self, "attachments", tuple(str(a) for a in self.attachments))
        object.__setattr__(self, "data", _frozen_mapping(self.data))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "recipients": list(self.recipients),
            "subject": self.subject,
            "body": self.body,
            "case_id": self.case_id,
            "register_no": self.register_no,
            "data": copy.deepcopy(dict(self.data)),
            "attachments": list(self.attachments),
        }

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Notification:
        return cls(
            kind=value["kind"],
            recipients=list(value.get("recipients") or ()),
            subject=value.get("subject", ""),
            body=value.get("body", ""),
            case_id=value.get("case_id"),
            register_no=value.get("register_no"),
            data=value.get("data") or {},
            attachments=list(value.get("attachments") or ()),
        )


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """A plugin's own top-level config table, ``[name]``, validated by ``model`` at start.

    ``model`` is a pydantic model class; give it ``model_config = ConfigDict(extra="forbid")``
    so that a misspelt key is refused instead of silently ignored (the host refuses models
    that allow unknown keys).
    """

    name: str
    model: type[Any]

    def __post_init__(self) -> None:
        _require_text("ConfigSection", "name", self.name)


TriggerKind = Literal["interval", "cron", "date"]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """A periodic job a plugin asks the scheduler to run (APScheduler 3.x trigger).

    ``trigger`` is ``"interval"`` (args such as ``minutes=15``), ``"cron"`` (``hour=7,
    minute=30, day_of_week="mon-fri"``) or ``"date"`` (``run_date=...``). ``func`` takes no
    arguments. The host prefixes ``id`` with the plugin name.
    """

    id: str
    trigger: TriggerKind
    func: Callable[[], object]
    trigger_args: Mapping[str, Any] = field(default_factory=dict)
    #: Filled by the host: the plugin that asked for the job.
    plugin: str = ""

    def __post_init__(self) -> None:
        _require_text("JobSpec", "id", self.id)
        if self.trigger not in ("interval", "cron", "date"):
            raise ValueError(
                f"JobSpec.trigger must be 'interval', 'cron' or 'date', got {self.trigger!r}"
            )
        if not callable(self.func):
            raise ValueError("JobSpec.func must be callable")
        object.__setattr__(self, "trigger_args", MappingProxyType(dict(self.trigger_args)))

    def make_trigger(self) -> Any:
        """The APScheduler trigger object; raises ``ValueError``/``TypeError`` on bad args."""
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.date import DateTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        kinds: dict[str, Any] = {
            "interval": IntervalTrigger,
            "cron": CronTrigger,
            "date": DateTrigger,
        }
        return kinds[self.trigger](**dict(self.trigger_args))


@runtime_checkable
class WorkingDays(Protocol):
    """The working-day calendar a profile uses (``bridge.workflow.calendar.WorkingCalendar``).

    Declared here as a protocol so that plugins and this module need not import workflow.
    """

    def add_working_days(self, start: Any, days: int) -> Any: ...

    def working_days_between(self, start: Any, end: Any) -> int: ...

    def is_working_day(self, day: date) -> bool: ...


__all__ = [
    "location_places",
    "DEFAULT_SEVERITIES",
    "KNOWN_ROLES",
    "ROLE_KABID",
    "ROLE_KEPALA_DAERAH",
    "ROLE_KEPALA_DINAS",
    "ROLE_TIM_PENANGANAN_PENGADUAN",
    "CaseSnapshot",
    "Classification",
    "ConfigSection",
    "EscalationDecision",
    "JobSpec",
    "Notification",
    "ReporterInfo",
    "RoutingDecision",
    "WorkingDays",
    "snapshot_from_row",
]


_PLACE = re.compile(r"\b(Kel(?:urahan)?|Desa|Kec(?:amatan)?)\.?\s+([^,;]+)", re.IGNORECASE)


def location_places(location: str | None) -> dict[str, str]:
    """The named places of a complaint's location, for handler sets and tembusan lists.

    ``"Kel. Sukamaju, Kec. Tengah"`` -> ``{"kelurahan": "Sukamaju", "kecamatan": "Tengah"}``;
    a village (``Desa X``) is ``desa``. The first of each kind wins.
    """
    found: dict[str, str] = {}
    for kind, name in _PLACE.findall(location or ""):
        lowered = kind.lower()
        key = "kecamatan" if lowered.startswith("kec") else (
            "desa" if lowered == "desa" else "kelurahan")
        found.setdefault(key, " ".join(name.split()))
    return found
