"""Deadlines of a case, computed from its timeline, its profile and the calendar. Pure.

Three kinds, all returned together by :func:`compute_deadlines`:

* ``overall``: the SOP's completion deadline (``[workflow.deadlines.overall]``, or the
  severity class's own ``deadline``), counted from receipt or from complete files.
* ``stage:<name>``: how long a case may stay in a stage, counted from its latest entry into
  that stage; met when it left.
* ``national:<name>``: the national limits (LAPOR! verification 3 working days, first
  follow-up 5, closing after 10 of silence; Perpres 76/2013 60 days), alongside the SOP's.

A deadline counted from something that has not happened yet (files not complete, no
follow-up) is listed with ``due_at = None`` and a basis saying what it waits for.

Which event *meets* a deadline: the first entry, at or after the deadline's start, into a
stage of its ``met_on`` list (default: any resolved or terminal stage), or into any stage
outside its ``pending_in`` list; with ``met_by_followup`` also the first follow-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from bridge.workflow.calendar import WorkingCalendar, format_tanggal
from bridge.workflow.profile import UNIT_LABELS, DeadlineSpec, StageDeadline, Workflow

DeadlineKind = Literal["overall", "stage", "national"]

_FROM_LABELS = {
    "received": "pengaduan diterima",
    "filed": "pengaduan diajukan di LAPOR!",
    "registered": "pengaduan diregistrasi",
    "files_complete": "berkas dinyatakan lengkap",
    "last_followup": "tindak lanjut terakhir",
}
_WAITING = {
    "registered": "belum berjalan: menunggu registrasi",
    "files_complete": "belum berjalan: menunggu berkas dinyatakan lengkap",
    "last_followup": "belum berjalan: belum ada tindak lanjut",
}


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} is a naive datetime; times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class StageVisit:
    """The case entered ``stage`` at ``entered_at``."""

    stage: str
    entered_at: datetime

    def __post_init__(self) -> None:
        _aware("StageVisit.entered_at", self.entered_at)


@dataclass(frozen=True, slots=True)
class CaseTimeline:
    """What deadlines are computed from; built by services from the case and its events.

    ``history``: stage entries in order, the current stage last. Empty means the case is
    still in the initial stage, entered at ``received_at``.

    ``received_at``: when the report reached our body; ``filed_at``: when the citizen
    filed it (LAPOR!'s created_at; ``None`` for a case that came to us directly, which
    counts as filed when received); ``registered_at``: the first register action.
    """

    received_at: datetime
    history: Sequence[StageVisit] = ()
    filed_at: datetime | None = None
    registered_at: datetime | None = None
    files_complete_at: datetime | None = None
    first_followup_at: datetime | None = None
    last_followup_at: datetime | None = None
    severity: str | None = None
    #: The case is on LAPOR! (pulled from it, or pushed to it): LAPOR!'s limits apply.
    via_lapor: bool = True

    def __post_init__(self) -> None:
        _aware("received_at", self.received_at)
        _aware("filed_at", self.filed_at)
        _aware("registered_at", self.registered_at)
        _aware("files_complete_at", self.files_complete_at)
        _aware("first_followup_at", self.first_followup_at)
        _aware("last_followup_at", self.last_followup_at)
        history = tuple(self.history)
        object.__setattr__(self, "history", history)
        for before, after in zip(history, history[1:], strict=False):
            if after.entered_at < before.entered_at:
                raise ValueError(f"history out of order: {after.stage!r} at "
                                 f"{after.entered_at.isoformat()} before {before.stage!r} at "
                                 f"{before.entered_at.isoformat()}")

    def visits(self, initial_stage: str) -> tuple[StageVisit, ...]:
        if self.history:
            return tuple(self.history)
        return (StageVisit(initial_stage, self.received_at),)

    def current_stage(self, initial_stage: str) -> str:
        return self.visits(initial_stage)[-1].stage

    def clock_start(self, counted_from: str) -> datetime | None:
        """The moment a clock counted from ``counted_from`` starts (None: not yet)."""
        return {
            "received": self.received_at,
            "filed": self.filed_at or self.received_at,
            "registered": self.registered_at,
            "files_complete": self.files_complete_at,
            "last_followup": self.last_followup_at,
        }[counted_from]


@dataclass(frozen=True, slots=True)
class Deadline:
    name: str  # "overall", "stage:<stage>", "national:<key>"
    kind: DeadlineKind
    label: str  # Bahasa Indonesia, for staff
    due_at: datetime | None
    basis: str  # Bahasa Indonesia: how due_at was reached
    started_at: datetime | None
    met_at: datetime | None = None
    amount: int = 0
    unit: str = "working_days"
    holidays: tuple[tuple[date, str], ...] = field(default=())

    @property
    def met(self) -> bool:
        return self.met_at is not None

    @property
    def met_late(self) -> bool:
        return (self.met_at is not None and self.due_at is not None
                and self.met_at > self.due_at)

    def is_overdue(self, at: datetime) -> bool:
        """Unmet and past due at ``at``."""
        _aware("at", at)
        return self.met_at is None and self.due_at is not None and at > self.due_at


@dataclass(frozen=True, slots=True)
class EscalationStep:
    level: int  # 1 = first level
    name: str
    label: str
    role: str
    due_at: datetime | None
    basis: str


def _due(calendar: WorkingCalendar, start: datetime, amount: int, unit: str,
         roll: bool) -> datetime:
    if unit == "working_days":
        return calendar.add_working_days(start, amount)
    return calendar.add_calendar_days(start, amount, roll_to_working_day=roll)


def _basis(calendar: WorkingCalendar, start: datetime, due: datetime, amount: int,
           unit: str, since: str, roll: bool) -> tuple[str, tuple[tuple[date, str], ...]]:
    text = f"{amount} {UNIT_LABELS[unit]} sejak {since} ({format_tanggal(start, calendar.tz)})"
    if unit == "working_days" and not calendar.is_working_day(start):
        text += (f"; diterima pada hari libur, dihitung dari hari kerja berikutnya "
                 f"({format_tanggal(calendar.effective_day(start), calendar.tz)})")
    if unit == "calendar_days" and roll:
        plain = calendar.local_date(start).toordinal() + amount
        if calendar.local_date(due).toordinal() != plain:
            text += "; jatuh pada hari libur, diundur ke hari kerja berikutnya"
    skipped: tuple[tuple[date, str], ...] = ()
    if unit == "working_days" and amount > 0:
        first = calendar.effective_day(start)
        skipped = tuple(calendar.non_working_days_between(first, due))
        if skipped:
            names = ", ".join(f"{format_tanggal(d, weekday=False)} ({n})" for d, n in skipped)
            text += f"; hari libur dilewati: {names}"
    return text, skipped


def _met(workflow: Workflow, tl: CaseTimeline, start: datetime | None,
         spec: DeadlineSpec) -> datetime | None:
    visits = tl.visits(workflow.initial_stage)
    if spec.pending_in is not None:
        pending = set(spec.pending_in)

        def meets(stage: str) -> bool:
            return stage not in pending
    else:
        targets = set(spec.met_on) if spec.met_on is not None else {
            name for name in workflow.stages if workflow.is_resolved(name)}

        def meets(stage: str) -> bool:
            return stage in targets
    found = [v.entered_at for v in visits
             if meets(v.stage) and (start is None or v.entered_at >= start)]
    if spec.met_by_followup and tl.first_followup_at is not None and (
            start is None or tl.first_followup_at >= start):
        found.append(tl.first_followup_at)
    return min(found, default=None)


def _from_spec(workflow: Workflow, calendar: WorkingCalendar, tl: CaseTimeline, name: str,
               kind: DeadlineKind, spec: DeadlineSpec, default_label: str,
               note: str = "") -> Deadline:
    start = tl.clock_start(spec.counted_from)
    label = spec.label or default_label
    met_at = _met(workflow, tl, start, spec)
    if start is None:
        return Deadline(name=name, kind=kind, label=label, due_at=None,
                        basis=_WAITING[spec.counted_from] + note, started_at=None,
                        met_at=met_at, amount=spec.amount, unit=spec.unit)
    due = _due(calendar, start, spec.amount, spec.unit, spec.roll_to_working_day)
    basis, skipped = _basis(calendar, start, due, spec.amount, spec.unit,
                            _FROM_LABELS[spec.counted_from], spec.roll_to_working_day)
    return Deadline(name=name, kind=kind, label=label, due_at=due, basis=basis + note,
                    started_at=start, met_at=met_at, amount=spec.amount, unit=spec.unit,
                    holidays=skipped)


def overall_spec(workflow: Workflow, severity: str | None) -> tuple[DeadlineSpec, str]:
    """The overall deadline rule for a case of ``severity``, and a note naming its source."""
    profile = workflow.profile
    if severity is not None:
        cls = profile.classes.get(severity)
        if cls is not None and cls.deadline is not None:
            return cls.deadline, f" (ketentuan {cls.label})"
    return profile.deadlines.overall, ""


def overall_deadline(workflow: Workflow, calendar: WorkingCalendar,
                     timeline: CaseTimeline) -> Deadline:
    """The SOP's completion deadline of the case (what services store as ``deadline_at``)."""
    spec, note = overall_spec(workflow, timeline.severity)
    return _from_spec(workflow, calendar, timeline, "overall", "overall", spec,
                      "Batas waktu penyelesaian", note)


def _stage_deadline(workflow: Workflow, calendar: WorkingCalendar, stage: str,
                    spec: StageDeadline, visit: StageVisit,
                    left_at: datetime | None) -> Deadline:
    label = spec.label or f"Batas waktu tahap {workflow.stage_label(stage)}"
    due = _due(calendar, visit.entered_at, spec.amount, spec.unit, spec.roll_to_working_day)
    basis, skipped = _basis(calendar, visit.entered_at, due, spec.amount, spec.unit,
                            f"masuk tahap {workflow.stage_label(stage)}",
                            spec.roll_to_working_day)
    return Deadline(name=f"stage:{stage}", kind="stage", label=label, due_at=due,
                    basis=basis, started_at=visit.entered_at, met_at=left_at,
                    amount=spec.amount, unit=spec.unit, holidays=skipped)


def compute_deadlines(workflow: Workflow, calendar: WorkingCalendar,
                      timeline: CaseTimeline) -> list[Deadline]:
    """Every deadline of the case: overall, then stages (in order of entry), then national.

    National limits marked ``lapor_only`` are left out when ``timeline.via_lapor`` is false.
    """
    out = [overall_deadline(workflow, calendar, timeline)]
    visits = timeline.visits(workflow.initial_stage)
    latest: dict[str, int] = {}
    for i, visit in enumerate(visits):
        latest[visit.stage] = i
    for i, visit in enumerate(visits):
        if latest[visit.stage] != i:
            continue
        stage = workflow.stages.get(visit.stage)
        if stage is None or stage.deadline is None:
            continue
        left_at = visits[i + 1].entered_at if i + 1 < len(visits) else None
        out.append(_stage_deadline(workflow, calendar, visit.stage, stage.deadline, visit,
                                   left_at))
    for key, spec in workflow.profile.national.items():
        if spec.lapor_only and not timeline.via_lapor:
            continue
        out.append(_from_spec(workflow, calendar, timeline, f"national:{key}", "national",
                              spec, f"Batas waktu nasional ({key})"))
    return out


def _last_entry(visits: Sequence[StageVisit], stage: str) -> datetime | None:
    for visit in reversed(visits):
        if visit.stage == stage:
            return visit.entered_at
    return None


def escalation_schedule(workflow: Workflow, calendar: WorkingCalendar,
                        timeline: CaseTimeline) -> list[EscalationStep]:
    """When each escalation level falls due (``due_at = None`` while its basis is unknown).

    A level with ``after = 0`` is due at the basis moment itself; otherwise at the end of
    the ``after``-th (working) day after it.
    """
    esc = workflow.profile.deadlines.escalation
    basis_name = esc.counted_from
    start: datetime | None
    if basis_name in _FROM_LABELS:
        start, since = timeline.clock_start(basis_name), _FROM_LABELS[basis_name]
    elif basis_name == "deadline":
        start = overall_deadline(workflow, calendar, timeline).due_at
        since = "batas waktu penyelesaian"
    else:
        stage = basis_name.split(":", 1)[1]
        start = _last_entry(timeline.visits(workflow.initial_stage), stage)
        since = f"masuk tahap {workflow.stage_label(stage)}"
    steps: list[EscalationStep] = []
    for i, level in enumerate(esc.levels, start=1):
        if start is None:
            steps.append(EscalationStep(i, level.name, level.label, level.role, None,
                                        f"belum berjalan: menunggu {since}"))
            continue
        if level.after == 0:
            due, text = start, f"segera setelah {since} ({format_tanggal(start, calendar.tz)})"
        else:
            due = _due(calendar, start, level.after, level.unit, False)
            text, _ = _basis(calendar, start, due, level.after, level.unit, since, False)
        steps.append(EscalationStep(i, level.name, level.label, level.role, due, text))
    return steps


def escalation_due(workflow: Workflow, calendar: WorkingCalendar, timeline: CaseTimeline,
                   at: datetime) -> EscalationStep | None:
    """The highest escalation level due at ``at``, or ``None``.

    Nothing is due for a case in a resolved or terminal stage. Services compare the level
    with the case's current escalation level to decide whether to escalate now.
    """
    _aware("at", at)
    stage = timeline.current_stage(workflow.initial_stage)
    if stage in workflow.stages and workflow.is_resolved(stage):
        return None
    found: EscalationStep | None = None
    for step in escalation_schedule(workflow, calendar, timeline):
        if step.due_at is None:
            continue
        level = workflow.profile.deadlines.escalation.levels[step.level - 1]
        if at >= step.due_at if level.after == 0 else at > step.due_at:
            found = step
    return found
