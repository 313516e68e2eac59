"""The deadline sweep: tell people about near and missed deadlines, escalate what is due.

:func:`sweep_deadlines` looks at every open case (a stage that is not terminal) and

1. for each deadline of the case that is not met yet -- the SOP's overall deadline, the
   stage deadlines and LAPOR!'s national limits -- records a ``deadline_near`` plugin
   event when it is within ``near`` and a ``deadline_missed`` event once it has passed,
   each **once per deadline** (remembered in ``case.data["deadline_events"]`` under the
   deadline's name and due time, so a deadline that moves, e.g. once the files are
   complete, is a new deadline), with a notification to the roles of the case's stage;
2. escalates the case as role ``sistem`` through
   :class:`~bridge.services.actions.CaseActions` when the profile's escalation ladder has
   a level due (``Runtime.deadlines.escalation_due``) that the case has not reached, when
   its severity class needs a higher authority (``escalate_to``, e.g. the Walikota for a
   *berat* complaint), or when a plugin's ``decide_escalation`` says so; each escalation
   is notified to the role it goes to. The level reached is kept in
   ``case.data["escalation_level"]``, so no level is escalated to twice.

Only cases in stages that are not resolved get deadline events (an answered case waits
for the complainant, not for staff). A missed deadline is told to the next escalation
level as well as to the stage's roles. An escalation that is due goes up the chain from
any open stage, registered or not: where the profile gives no escalate rule from the
case's stage, the case stays in it, assigned to the level
(:meth:`~bridge.workflow.profile.Workflow.overdue_escalation`). One that is still refused
(a role the escalate rules do not name) is flagged on the case (``Case.attention``) once.

The daemon runs it periodically (its ``deadline_interval``); ``now`` is passed in so
tests and re-runs are deterministic.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.domain import CaseSnapshot, snapshot_from_row
from bridge.services.actions import ActionError, ActionNotAllowed
from bridge.services.triage import (
    SYSTEM_ACTOR,
    flag_failures,
    notify,
    renderer_for,
    stage_roles,
    system_actions,
)
from bridge.store.models import Case, CaseEvent
from bridge.workflow.calendar import format_tanggal
from bridge.workflow.deadlines import (
    Deadline,
    EscalationStep,
    compute_deadlines,
    escalation_due,
)
from bridge.workflow.profile import Workflow

if TYPE_CHECKING:
    from bridge.notify import NotificationRenderer
    from bridge.services.context import ServiceContext as Runtime

log = logging.getLogger("bridge.sweep")

#: ``case.data`` keys the sweep keeps.
MARKS_KEY = "deadline_events"
LEVEL_KEY = "escalation_level"
BLOCKED_KEY = "escalation_blocked"
#: Default warning threshold before a deadline (the daemon passes its own setting).
DEFAULT_NEAR = timedelta(hours=48)
_CHUNK = 200


@dataclass(frozen=True, slots=True)
class DeadlineMark:
    case_id: int
    register_no: str
    deadline: str  # "overall", "stage:<name>", "national:<key>"
    label: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class EscalationDone:
    case_id: int
    register_no: str
    level: int
    to: str
    reason: str
    source: str  # "profile", "class" or "plugin:<name>"


@dataclass
class SweepResult:
    checked: int = 0
    near: list[DeadlineMark] = field(default_factory=list)
    missed: list[DeadlineMark] = field(default_factory=list)
    escalated: list[EscalationDone] = field(default_factory=list)
    #: Escalations that were due but not allowed in the case's stage (flagged).
    blocked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"sweep: {self.checked} open cases, {len(self.near)} deadlines near, "
                f"{len(self.missed)} missed, {len(self.escalated)} escalations, "
                f"{len(self.blocked)} blocked, {len(self.failures)} plugin failures")

    def as_json(self) -> dict[str, Any]:
        def conv(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: conv(v) for k, v in value.items()}
            if isinstance(value, list):
                return [conv(v) for v in value]
            return value

        return {
            "checked": self.checked,
            "near": [conv(asdict(m)) for m in self.near],
            "missed": [conv(asdict(m)) for m in self.missed],
            "escalated": [conv(asdict(e)) for e in self.escalated],
            "blocked": list(self.blocked),
            "failures": list(self.failures),
        }


@dataclass
class _Plan:
    """What one case needs, worked out in a read-only pass."""

    case_id: int
    register_no: str
    stage: str
    due: list[tuple[str, str, Deadline, int | None]]  # (mark key, near|missed, deadline, left)
    step: EscalationStep | None
    reached: int
    class_target: tuple[str, str] | None  # (role, reason)
    snapshot: CaseSnapshot


def mark_key(deadline: Deadline) -> str:
    """The name under which a deadline's events are remembered."""
    assert deadline.due_at is not None
    return f"{deadline.name}@{deadline.due_at.astimezone(UTC).isoformat()}"


def reached_level(data: dict[str, Any] | None, workflow: Workflow) -> int:
    """The highest escalation level the case has reached.

    From ``escalation_level`` and, in case that was not written (a crash between the
    escalation and its bookkeeping), from the ladder levels named in its escalations.
    """
    data = data or {}
    value = data.get(LEVEL_KEY, 0)
    level = value if isinstance(value, int) and not isinstance(value, bool) else 0
    names = [lv.name for lv in workflow.profile.deadlines.escalation.levels]
    for entry in data.get("escalations") or []:
        name = entry.get("level") if isinstance(entry, dict) else None
        if name in names:
            level = max(level, names.index(name) + 1)
    return level


def _escalated_to(data: dict[str, Any] | None, name: str) -> bool:
    return any(isinstance(e, dict) and e.get("level") == name
               for e in (data or {}).get("escalations") or [])


def _open_stages(workflow: Workflow) -> list[str]:
    return [name for name, stage in workflow.stages.items() if not stage.terminal]


def _plan(rt: Runtime, session: Session, case: Case, now: datetime, near: timedelta) -> _Plan:
    workflow, calendar = rt.workflow, rt.calendar
    timeline = rt.deadlines.timeline(session, case)
    resolved = workflow.is_resolved(case.stage)
    marks = (case.data or {}).get(MARKS_KEY) or {}
    due: list[tuple[str, str, Deadline, int | None]] = []
    step: EscalationStep | None = None
    if not resolved:
        for deadline in compute_deadlines(workflow, calendar, timeline):
            if deadline.met or deadline.due_at is None:
                continue
            key = mark_key(deadline)
            state = marks.get(key) or {}
            if now > deadline.due_at:
                if "missed" not in state:
                    due.append((key, "missed", deadline, None))
            elif deadline.due_at - now <= near and "near" not in state:
                left = calendar.working_days_between(now, deadline.due_at)
                due.append((key, "near", deadline, left))
        step = escalation_due(workflow, calendar, timeline, now)
    class_target: tuple[str, str] | None = None
    cls = workflow.profile.classes.get(case.severity or "")
    if cls is not None and cls.escalate_to and not resolved \
            and not _escalated_to(case.data, cls.escalate_to):
        class_target = (cls.escalate_to,
                        f"{cls.label} memerlukan kewenangan "
                        f"{workflow.role_label(cls.escalate_to)}")
    return _Plan(case.id, case.register_no, case.stage, due, step,
                 reached_level(case.data, workflow), class_target, snapshot_from_row(case))


def _lock(session: Session, case: Case) -> None:
    if session.get_bind().dialect.name == "postgresql":
        # CaseActions locks the row too: the sweep's bookkeeping never overwrites an
        # action's change to case.data (SQLite's BEGIN IMMEDIATE already serialises).
        session.refresh(case, with_for_update=True)


def _record_deadlines(rt: Runtime, plan: _Plan, now: datetime,
                      renderer: NotificationRenderer | None, result: SweepResult) -> None:
    with rt.sessions() as session, session.begin():
        case = session.get(Case, plan.case_id)
        if case is None:
            return
        _lock(session, case)
        data = copy.deepcopy(dict(case.data or {}))
        marks = dict(data.get(MARKS_KEY) or {})
        todo = []
        for key, kind, deadline, left in plan.due:
            state = dict(marks.get(key) or {})
            if kind in state or "missed" in state:
                continue  # another sweep got there first
            state[kind] = now.isoformat()
            marks[key] = state
            todo.append((kind, deadline, left))
        if not todo:
            return
        data[MARKS_KEY] = marks
        case.data = data
        session.flush()
        view = snapshot_from_row(case)
        recipients = _recipients(rt, case)
        notices: dict[str, tuple[dict[str, Any], list[str]]] = {}
        for kind, deadline, left in todo:
            assert deadline.due_at is not None
            mark = DeadlineMark(case.id, case.register_no, deadline.name, deadline.label,
                                deadline.due_at)
            if kind == "missed":
                result.missed.append(mark)
                payload: dict[str, Any] = {"deadline_at": deadline.due_at}
            else:
                result.near.append(mark)
                payload = {"deadline_at": deadline.due_at, "working_days_left": left}
            session.add(CaseEvent(
                case_id=case.id, at=now, side="system", actor=SYSTEM_ACTOR.name,
                kind=f"deadline_{kind}",
                changes={"deadline": [None, deadline.name],
                         "due_at": [None, deadline.due_at.isoformat()]},
                note=f"{deadline.label}: {format_tanggal(deadline.due_at, rt.calendar.tz)}"))
            if rt.event_sink is not None:
                rt.event_sink(session, f"deadline_{kind}", case.id, payload)
            # One message per case and kind: a case past several deadlines at once (its
            # first sweep) is one "melewati batas waktu", not one per deadline.
            first = notices.setdefault(kind, (dict(payload), []))
            first[1].append(deadline.label)
            if deadline.due_at < first[0]["deadline_at"]:
                first[0].update(payload)
        for kind, (payload, labels) in notices.items():
            to = recipients
            above = _next_level_role(rt.workflow, case.data)
            if kind == "missed" and above is not None and above not in to:
                # A missed deadline is the next level's business too, not only the desk's.
                to = [*to, above]
            notify(session, rt, renderer, f"deadline_{kind}", view, to,
                   label=", ".join(labels), **payload)


def _next_level_role(workflow: Workflow, data: dict[str, Any] | None) -> str | None:
    """The role of the escalation level above the one the case has reached."""
    levels = workflow.profile.deadlines.escalation.levels
    reached = reached_level(data, workflow)
    return levels[reached].role if reached < len(levels) else None


def _recipients(rt: Runtime, case: Case) -> list[str]:
    roles = stage_roles(rt.workflow, case.stage)
    if case.assigned_to and case.assigned_to not in roles:
        roles.insert(0, case.assigned_to)
    return roles


def _escalate(rt: Runtime, plan: _Plan, now: datetime, level: int, name: str, to_role: str,
              reason: str, source: str, renderer: NotificationRenderer | None,
              result: SweepResult) -> bool:
    actions = system_actions(rt, now)
    try:
        actions.escalate(plan.case_id, SYSTEM_ACTOR, name, reason, overdue=True)
    except ActionNotAllowed as exc:
        _blocked(rt, plan, now, f"{source}:{name}", str(exc), result)
        return False
    except ActionError as exc:
        result.failures.append(f"{plan.register_no}: escalation to {name} failed: {exc}")
        return False
    with rt.sessions() as session, session.begin():
        case = session.get(Case, plan.case_id)
        if case is None:
            return True
        _lock(session, case)
        data = copy.deepcopy(dict(case.data or {}))
        entries = list(data.get("escalations") or [])
        last = entries[-1] if entries and isinstance(entries[-1], dict) else {}
        if (last.get("level"), last.get("at")) != (name, now.isoformat()):
            # CaseActions.escalate appends to the list it shares with the loaded row, so a
            # second escalation of a case can be lost on flush; keep the record whole.
            entries.append({"level": name, "reason": reason, "at": now.isoformat()})
            data["escalations"] = entries
        data[LEVEL_KEY] = max(reached_level(data, rt.workflow), level)
        case.data = data
        session.flush()
        notify(session, rt, renderer, "escalated", snapshot_from_row(case), [to_role],
               level=level, to_role=to_role, reason=reason)
    result.escalated.append(EscalationDone(plan.case_id, plan.register_no, level, to_role,
                                           reason, source))
    log.info("case %s escalated to %s (level %d, %s)", plan.register_no, to_role, level,
             source)
    return True


def _blocked(rt: Runtime, plan: _Plan, now: datetime, key: str, problem: str,
             result: SweepResult) -> None:
    with rt.sessions() as session, session.begin():
        case = session.get(Case, plan.case_id)
        if case is None or case.stage != plan.stage:
            return  # the case moved on meanwhile: the next sweep decides again
        _lock(session, case)
        data = copy.deepcopy(dict(case.data or {}))
        blocked = dict(data.get(BLOCKED_KEY) or {})
        result.blocked.append(f"{plan.register_no}: {problem}")
        if key in blocked:
            return
        blocked[key] = now.isoformat()
        data[BLOCKED_KEY] = blocked
        case.data = data
        note = (f"Eskalasi ({key}) sudah jatuh tempo tetapi tidak dapat dilakukan pada tahap "
                f"{rt.workflow.stage_label(case.stage)}; mohon ditangani petugas.")
        case.attention = note if not case.attention else f"{case.attention}\n{note}"
        session.add(CaseEvent(case_id=case.id, at=now, side="system",
                              actor=SYSTEM_ACTOR.name, kind="escalation_blocked",
                              changes={"escalation": [None, key]}, note=problem))


def _plugin_failures(rt: Runtime, plan: _Plan, now: datetime, failures: Any,
                     result: SweepResult) -> None:
    with rt.sessions() as session, session.begin():
        case = session.get(Case, plan.case_id)
        if case is None:
            return
        _lock(session, case)
        flag_failures(session, case, failures, "pemeriksaan batas waktu", now)
    result.failures.extend(str(f) for f in failures)


def _apply(rt: Runtime, plan: _Plan, now: datetime, renderer: NotificationRenderer | None,
           result: SweepResult) -> None:
    if plan.due:
        _record_deadlines(rt, plan, now, renderer, result)
    reached = plan.reached
    if plan.step is not None and plan.step.level > reached:
        reason = (f"Eskalasi tingkat {plan.step.level} kepada {plan.step.label}: "
                  f"{plan.step.basis}")
        if _escalate(rt, plan, now, plan.step.level, plan.step.name, plan.step.role, reason,
                     "profile", renderer, result):
            reached = plan.step.level
    if plan.class_target is not None:
        role, reason = plan.class_target
        level = max(reached, 1)
        _escalate(rt, plan, now, level, role, role, reason, "class", renderer, result)
    outcome = rt.plugins.escalation(plan.snapshot, now)
    if outcome.failures:
        _plugin_failures(rt, plan, now, outcome.failures, result)
    decision = outcome.value
    if decision is not None and decision.level > reached:
        reason = f"{decision.reason} (aturan {outcome.plugin})"
        _escalate(rt, plan, now, decision.level, decision.to_role, decision.to_role, reason,
                  f"plugin:{outcome.plugin}", renderer, result)


def sweep_deadlines(rt: Runtime, now: datetime, *, near: timedelta = DEFAULT_NEAR,
                    stop: threading.Event | None = None) -> SweepResult:
    """Check every open case at ``now`` (timezone-aware); see the module docstring."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    result = SweepResult()
    stages = _open_stages(rt.workflow)
    renderer = renderer_for(rt)
    last_id = 0
    while stages and not (stop is not None and stop.is_set()):
        # Read a chunk, then act with no read transaction open: on SQLite every
        # transaction holds the write lock, and the actions below need it.
        with rt.sessions() as session:
            cases = list(session.scalars(
                select(Case).where(Case.stage.in_(stages), Case.id > last_id)
                .order_by(Case.id).limit(_CHUNK)))
            plans = [_plan(rt, session, case, now, near) for case in cases]
        if not cases:
            break
        last_id = cases[-1].id
        for plan in plans:
            result.checked += 1
            try:
                _apply(rt, plan, now, renderer, result)
            except Exception as exc:  # one case must not stop the sweep of the others
                log.exception("sweep of case %s failed", plan.register_no)
                result.failures.append(f"{plan.register_no}: {type(exc).__name__}: {exc}")
    if result.near or result.missed or result.escalated or result.blocked or result.failures:
        log.info(result.summary())
    return result


__all__ = [
    "DEFAULT_NEAR",
    "DeadlineMark",
    "EscalationDone",
    "SweepResult",
    "mark_key",
    "reached_level",
    "sweep_deadlines",
]
