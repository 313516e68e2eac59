"""The ``[reports]`` section: where recaps are written, when, and who receives them.

Example (Prabumulih: a monthly recap to the Walikota through the Sekda, a semester
report)::

    [reports]
    out_dir = "/var/lib/lapor-bridge/rekap"      # relative paths: beside the config file
    office = "DPM-PTSP Kota Prabumulih"           # headings; default: the regency's name
    title = "Rekapitulasi Pengaduan dan Tindak Lanjut"

    [reports.schedules]                           # kind -> crontab (regency time zone)
    monthly = "0 7 1 * *"
    semester = "30 7 1 1,7 *"

    [[reports.recipients]]
    name = "Walikota Prabumulih"
    via = "Sekretaris Daerah Kota Prabumulih"     # "melalui ..." in the letter
    email = "setda@prabumulihkota.go.id"          # or role = "kepala_daerah"
    periods = ["monthly", "semester"]

Kinds: ``daily`` (the working days since the previous working day), ``monthly``,
``semester`` and ``yearly``. A recipient is notified through the notification channel
plugins with its e-mail address if given, else its role, else its name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bridge.config import ConfigError, Settings, section_settings

PeriodKind = Literal["daily", "monthly", "semester", "yearly"]
PERIOD_KINDS: tuple[str, ...] = ("daily", "monthly", "semester", "yearly")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _standard_periods() -> list[PeriodKind]:
    return ["monthly", "semester", "yearly"]


class Recipient(_Model):
    """Who receives a recap: a person or office, by role, e-mail address or name."""

    name: str = Field(min_length=1)
    role: str | None = None
    email: str | None = None
    #: The recap goes to ``name`` through this office ("melalui Sekretaris Daerah").
    via: str | None = None
    periods: list[PeriodKind] = Field(default_factory=_standard_periods)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and ("@" not in value or value.startswith("@")
                                  or value.endswith("@")):
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @property
    def address(self) -> str:
        """What the notification channels get: the e-mail, else the role, else the name."""
        return self.email or self.role or self.name

    @property
    def salutation(self) -> str:
        return f"{self.name} (melalui {self.via})" if self.via else self.name


class ReportsSettings(_Model):
    out_dir: str = "rekap"
    office: str | None = None
    title: str = "Rekapitulasi Pengaduan dan Tindak Lanjut"
    schedules: dict[PeriodKind, str] = Field(default_factory=dict)
    recipients: list[Recipient] = Field(default_factory=list)
    #: An extra paragraph in the notification of a kind (e.g. the daily box reminder).
    notes: dict[PeriodKind, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _crontabs(self) -> Self:
        for kind, expr in self.schedules.items():
            try:
                CronTrigger.from_crontab(expr)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"schedules.{kind}: {expr!r} is not a crontab expression "
                                 f"(minute hour day-of-month month day-of-week): {exc}"
                                 ) from None
        return self

    def recipients_for(self, kind: str) -> list[Recipient]:
        return [r for r in self.recipients if kind in r.periods]

    def note_for(self, kind: str) -> str | None:
        return next((text for k, text in self.notes.items() if k == kind), None)


def reports_settings(settings: Settings) -> ReportsSettings:
    """Validate ``[reports]``; raises :class:`ConfigError` naming ``reports.<key>``."""
    try:
        return section_settings(settings, "reports", ReportsSettings)
    except ConfigError as exc:
        # A problem found by the whole-section check names its own sub-key.
        if exc.key == "reports" and exc.problem.startswith("schedules.") and ": " in exc.problem:
            sub, _, rest = exc.problem.partition(": ")
            raise ConfigError(settings.source, f"reports.{sub}", rest) from None
        raise


def output_dir(settings: Settings, cfg: ReportsSettings) -> Path:
    """``out_dir``; a relative path is relative to the config file's directory."""
    path = Path(cfg.out_dir)
    if not path.is_absolute() and settings.source not in ("<memory>", "", "<test>"):
        source = Path(settings.source)
        if source.exists():
            path = source.parent / path
    return path


def recap_schedules(settings: Settings) -> dict[str, str]:
    """Kind -> crontab of the recaps this deployment runs (for the daemon's scheduler)."""
    return {str(kind): expr for kind, expr in reports_settings(settings).schedules.items()}


__all__ = [
    "PERIOD_KINDS",
    "PeriodKind",
    "Recipient",
    "ReportsSettings",
    "output_dir",
    "recap_schedules",
    "reports_settings",
]
