"""Reference plugin: escalate open cases up a chain of roles after N working days.

Implements ``decide_escalation`` and, when ``deadlines`` are configured, ``stage_deadline``.
Working days come from the profile's calendar (the host passes it), or from this
plugin's own ``calendar`` table (same keys as the profile's ``[calendar]``: cuti bersama,
local holidays, weekend) when the host has none.

A case is escalated to the highest level whose threshold has passed and that it has not
reached yet (``case.data["escalation_level"]``, which the core records), so a case that
was forgotten for 12 days goes straight to the Kepala Dinas rather than to the Kabid first.
Closed cases are never escalated.

Configuration (Prabumulih-like: 10 working days, grave cases need the Kepala Daerah)::

    [plugins]
    enable = ["escalation_chain"]

    [escalation_chain]
    count_from = "received"          # or "files_complete" (seed 001: from complete files)

    [[escalation_chain.levels]]
    after_working_days = 7
    to_role = "kabid"

    [[escalation_chain.levels]]
    after_working_days = 10
    to_role = "kepala_dinas"

    [[escalation_chain.levels]]
    after_working_days = 10
    to_role = "kepala_daerah"
    severities = ["berat"]           # only for these classes

    [escalation_chain.deadlines]     # optional: stage -> working days from its start
    case = 10
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from bridge.domain import (
    CaseSnapshot,
    EscalationDecision,
    WorkingDays,
)
from bridge.hookspecs import declare_section, hookimpl

__version__ = "1.0"

DEFAULT_CLOSED_STAGES = ("closed", "archived", "satisfied", "forwarded")


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_working_days: int = Field(ge=0, le=365)
    to_role: str = Field(min_length=1)
    severities: list[str] = Field(default_factory=list)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    levels: list[Level] = Field(min_length=1)
    count_from: Literal["received", "files_complete"] = "received"
    closed_stages: list[str] = Field(default_factory=lambda: list(DEFAULT_CLOSED_STAGES))
    deadlines: dict[str, int] = Field(default_factory=dict)
    calendar: dict[str, Any] = Field(default_factory=dict)

    _calendar: WorkingDays | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self) -> Self:
        thresholds = [level.after_working_days for level in self.levels]
        if thresholds != sorted(thresholds):
            raise ValueError("levels must be in increasing order of after_working_days")
        for stage, days in self.deadlines.items():
            if days < 0:
                raise ValueError(f"deadlines.{stage} must be >= 0 working days")
        from bridge.workflow.calendar import calendar_from_mapping
        from bridge.workflow.errors import WorkflowProfileError

        try:
            self._calendar = calendar_from_mapping(self.calendar, section="calendar")
        except WorkflowProfileError as exc:
            raise ValueError(str(exc)) from None
        return self

    def working_days(self, given: WorkingDays | None) -> WorkingDays:
        calendar = given if given is not None else self._calendar
        assert calendar is not None  # set by the validator
        return calendar


def _start(case: CaseSnapshot, config: Config) -> datetime | None:
    if config.count_from == "files_complete":
        return case.files_complete_at
    return case.received_at


def _reached(case: CaseSnapshot) -> int:
    value = case.data.get("escalation_level", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


config_section = declare_section("escalation_chain", Config)


@hookimpl
def decide_escalation(
    case: CaseSnapshot, now: datetime, calendar: WorkingDays | None, config: Config
) -> EscalationDecision | None:
    if case.stage in config.closed_stages:
        return None
    start = _start(case, config)
    if start is None:
        return None  # counting has not started (files not complete yet)
    elapsed = config.working_days(calendar).working_days_between(start, now)
    chosen: tuple[int, Level] | None = None
    for number, level in enumerate(config.levels, start=1):
        if level.severities and case.severity not in level.severities:
            continue
        if elapsed >= level.after_working_days:
            chosen = (number, level)
    if chosen is None or chosen[0] <= _reached(case):
        return None
    number, level = chosen
    since = "berkas lengkap" if config.count_from == "files_complete" else "pengaduan diterima"
    return EscalationDecision(
        level=number,
        to_role=level.to_role,
        reason=(f"{elapsed} hari kerja sejak {since} tanpa penyelesaian "
                f"(batas tingkat {number}: {level.after_working_days} hari kerja)"),
    )


@hookimpl
def stage_deadline(
    case: CaseSnapshot, stage: str, started_at: datetime, calendar: WorkingDays | None,
    config: Config,
) -> datetime | None:
    days = config.deadlines.get(stage)
    if days is None:
        return None
    due: datetime = config.working_days(calendar).add_working_days(started_at, days)
    return due
