"""Deadlines of stored cases: builds each case's timeline from its history and asks the
pure workflow functions (bridge.workflow.deadlines) what is due when."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.models import Case, CaseEvent
from bridge.workflow import deadlines as wd
from bridge.workflow.calendar import WorkingCalendar
from bridge.workflow.deadlines import CaseTimeline, Deadline, EscalationStep, StageVisit
from bridge.workflow.profile import Workflow

#: History kinds that are follow-ups LAPOR! shows (they meet "first follow-up" limits).
FOLLOWUP_KINDS = ("followup", "answer_delivered", "forward_opd", "return_incomplete")


class CaseDeadlines:
    def __init__(self, workflow: Workflow, calendar: WorkingCalendar) -> None:
        self.workflow = workflow
        self.calendar = calendar
        self._new_by_day: dict[tuple[date, date | None, bool], datetime | None] = {}

    def timeline(self, session: Session, case: Case) -> CaseTimeline:
        events = session.execute(
            select(CaseEvent.at, CaseEvent.kind, CaseEvent.changes)
            .where(CaseEvent.case_id == case.id)
            .order_by(CaseEvent.id)
        ).all()
        history = [StageVisit(self.workflow.initial_stage, case.received_at)]
        followups: list[datetime] = []
        registered: datetime | None = None
        for at, kind, changes in events:
            if kind == "register" and registered is None:
                registered = at
            stage = (changes or {}).get("stage")
            if stage and isinstance(stage, list) and len(stage) == 2:
                # An action may be recorded a moment "before" receipt when received_at is
                # LAPOR!'s filing time; never let the history run backwards.
                history.append(StageVisit(stage[1], max(at, history[-1].entered_at)))
            if kind in FOLLOWUP_KINDS and not (changes or {}).get("step"):
                followups.append(at)
        return CaseTimeline(
            received_at=case.received_at,
            history=tuple(history),
            filed_at=case.filed_at,
            registered_at=registered,
            files_complete_at=case.files_complete_at,
            first_followup_at=followups[0] if followups else None,
            last_followup_at=followups[-1] if followups else None,
            severity=case.severity if case.severity in self.workflow.profile.classes else None,
            via_lapor=case.lapor_id is not None or case.channel == "lapor",
        )

    def all(self, session: Session, case: Case) -> list[Deadline]:
        return wd.compute_deadlines(self.workflow, self.calendar, self.timeline(session, case))

    def of_case(self, session: Session, case_id: int) -> list[Deadline]:
        """Every deadline of the case with id ``case_id`` (none if there is no such case)."""
        case = session.get(Case, case_id)
        return [] if case is None else self.all(session, case)

    def refresh(self, session: Session, case: Case) -> None:
        """Store the overall deadline on the case (None once it is met), for the queue."""
        due = wd.overall_deadline(self.workflow, self.calendar, self.timeline(session, case))
        case.deadline_at = None if due.met else due.due_at

    def for_new(self, received_at: datetime, via_lapor: bool = True,
                filed_at: datetime | None = None) -> datetime | None:
        """The overall deadline of a case that has just arrived (no history yet).

        Deadlines count whole days in the calendar's zone, so the answer depends only on
        the days of receipt and filing: a first pull of 100,000 reports computes it once
        per pair of days.
        """
        filed_day = None if filed_at is None else self.calendar.local_date(filed_at)
        key = (self.calendar.local_date(received_at), filed_day, via_lapor)
        if key not in self._new_by_day:
            due = wd.overall_deadline(self.workflow, self.calendar,
                                      CaseTimeline(received_at=received_at, filed_at=filed_at,
                                                   via_lapor=via_lapor))
            self._new_by_day[key] = due.due_at
        return self._new_by_day[key]

    def escalation_due(self, session: Session, case: Case, at: datetime
                       ) -> EscalationStep | None:
        return wd.escalation_due(self.workflow, self.calendar, self.timeline(session, case), at)
