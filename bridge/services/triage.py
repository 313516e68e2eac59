"""Triage: what the plugins say about a case when it arrives, applied or kept as advice.

When a case arrives (pulled from LAPOR! or entered by staff), :func:`triage_new_cases`
asks the plugin host's ``classify_case`` and ``route_case`` hooks. Each decision is
*applied* through :class:`~bridge.services.actions.CaseActions` as role ``sistem`` when
the profile lets that role take the action in the case's current stage (e.g. the default
profile lets ``sistem`` classify a verified case); otherwise it is *kept as a
suggestion* in ``case.data["triage"]`` for staff to see and take. As cases move on,
:func:`triage_pending` asks again for cases that have reached a stage where a suggestion
can now be applied (run it from the daemon's periodic job).

A plugin that fails (raises, times out, answers something the core refuses) never stops
triage: the failure is recorded in the case's history (``plugin_failed``) and
``Case.attention`` is set so a person looks at the case.

Nothing about the reporter goes into what is stored or sent here: plugins get the
privacy-filtered :class:`~bridge.domain.CaseSnapshot`, and notifications are rendered
from :class:`~bridge.notify.CaseView`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from bridge.config import OpdSettings
from bridge.domain import CaseSnapshot, Classification, RoutingDecision, snapshot_from_row
from bridge.events import record_notification
from bridge.plugins import PluginFailure
from bridge.services.actions import ActionError, Actor, CaseActions
from bridge.store.models import Case, CaseEvent, RemoteInstitution
from bridge.workflow.errors import TransitionNotAllowed
from bridge.workflow.profile import Workflow

if TYPE_CHECKING:
    from bridge.notify import NotificationRenderer
    from bridge.runtime import Runtime

log = logging.getLogger("bridge.triage")

#: The workflow role automatic decisions are taken as (profiles grant it transitions).
SYSTEM_ROLE = "sistem"
SYSTEM_ACTOR = Actor("Sistem (otomatis)", SYSTEM_ROLE)
#: Key of the triage record in ``case.data``.
TRIAGE_KEY = "triage"

APPLIED, SUGGESTED, NO_ANSWER, FAILED = "applied", "suggested", "no_answer", "failed"


@dataclass
class CaseTriage:
    """What triage did for one case."""

    case_id: int
    register_no: str = ""
    classification: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    failures: list[str] = field(default_factory=list)
    skipped: str | None = None
    #: Decisions applied by this very call (their notifications go out once).
    newly_applied: list[str] = field(default_factory=list)

    @property
    def applied(self) -> list[str]:
        return [name for name, d in (("classification", self.classification),
                                     ("routing", self.routing))
                if d is not None and d.get("status") == APPLIED]

    @property
    def suggested(self) -> list[str]:
        return [name for name, d in (("classification", self.classification),
                                     ("routing", self.routing))
                if d is not None and d.get("status") == SUGGESTED]


@dataclass
class TriageResult:
    cases: list[CaseTriage] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(len(c.applied) for c in self.cases)

    @property
    def suggested(self) -> int:
        return sum(len(c.suggested) for c in self.cases)

    @property
    def failed(self) -> int:
        return sum(1 for c in self.cases if c.failures)

    def summary(self) -> str:
        return (f"triage: {len(self.cases)} cases, {self.applied} decisions applied, "
                f"{self.suggested} suggested, {self.failed} with plugin failures")


# -- shared helpers (the sweep uses them too) --------------------------------------------


def system_actions(rt: Runtime, now: datetime | None) -> CaseActions:
    """The runtime's CaseActions, recording at ``now`` when given (sweeps, tests)."""
    actions = rt.actions()
    if now is not None:
        fixed = now
        actions.clock = lambda: fixed
    return actions


def stage_roles(workflow: Workflow, stage: str) -> list[str]:
    """The people's roles that may act on a case in ``stage``: who to tell about it."""
    roles: list[str] = []
    if stage not in workflow.stages:
        return roles
    for rule in workflow.rules_from(stage):
        for role in sorted(rule.roles):
            if role != SYSTEM_ROLE and role not in roles:
                roles.append(role)
    return roles


def allowed(workflow: Workflow, action: str, stage: str, fields: dict[str, Any] | None = None,
            role: str = SYSTEM_ROLE) -> bool:
    """Whether ``role`` may take ``action`` in ``stage`` (with ``fields``), per the profile."""
    try:
        workflow.plan(action, stage, role, fields=fields)
    except TransitionNotAllowed:
        return False
    return True


def flag_failures(session: Session, case: Case, failures: Sequence[PluginFailure],
                  when: str, at: datetime) -> None:
    """Record plugin failures on the case (history + attention) in the caller's transaction."""
    if not failures:
        return
    for failure in failures:
        session.add(CaseEvent(case_id=case.id, at=at, side="system",
                              actor=f"plugin:{failure.plugin}", kind="plugin_failed",
                              changes={"hook": failure.hook, "failure": failure.kind,
                                       "during": when},
                              note=failure.message))
    note = f"Plugin gagal saat {when}: " + "; ".join(str(f) for f in failures)
    case.attention = note if not case.attention else f"{case.attention}\n{note}"


def notify(session: Session, rt: Runtime, renderer: NotificationRenderer | None, kind: str,
           case: CaseSnapshot, recipients: Sequence[str], **context: Any) -> None:
    """Queue a notification for the channels (sent after the caller commits)."""
    if renderer is None or not recipients:
        return
    record_notification(session, renderer.render(kind, case, list(recipients), **context))


def renderer_for(rt: Runtime) -> NotificationRenderer | None:
    """The deployment's renderer, or ``None`` when no channel plugin would deliver."""
    if not rt.plugins.implementers("notify"):
        return None
    from bridge.notify import renderer_from_settings

    return renderer_from_settings(rt.settings)


# -- triage ------------------------------------------------------------------------------


def _opd_by(settings_opds: Sequence[OpdSettings], name: str | None = None,
            institution: int | None = None) -> OpdSettings | None:
    for opd in settings_opds:
        if name is not None and name in (opd.name, opd.code):
            return opd
        if institution is not None and opd.lapor_institution_id == institution:
            return opd
    return None


def _known_bodies(session: Session, opds: Sequence[OpdSettings]) -> list[int] | None:
    ids = list(session.scalars(select(RemoteInstitution.id)))
    if not ids:
        return None  # the institution list was never fetched: do not refuse on it
    ids.extend(o.lapor_institution_id for o in opds if o.lapor_institution_id is not None)
    return ids


def _should_ask(state: dict[str, Any] | None, stage: str, applicable: bool) -> bool:
    if state is None:
        return True
    if state.get("status") == APPLIED:
        return False
    # Asked before: ask again only where the answer could now be applied.
    return applicable and state.get("stage") != stage


def _route_possible(workflow: Workflow, stage: str) -> bool:
    mine = workflow.allowed_actions(stage, SYSTEM_ROLE) if SYSTEM_ROLE in workflow.roles else []
    return any(a in mine for a in ("dispose", "forward_opd", "forward_body"))


def _classification_record(value: Classification, plugin: str | None, stage: str,
                           at: datetime) -> dict[str, Any]:
    return {"severity": value.severity, "reason": value.reason, "plugin": plugin,
            "stage": stage, "at": at.isoformat()}


def _routing_record(value: RoutingDecision, plugin: str | None, stage: str, at: datetime,
                    opd: OpdSettings | None) -> dict[str, Any]:
    record: dict[str, Any] = {"ours": value.ours, "reason": value.reason, "plugin": plugin,
                              "stage": stage, "at": at.isoformat(),
                              "tembusan": list(value.tembusan)}
    if value.ours:
        record["unit"] = value.unit
        # For a case we handle, the tembusan are the others who take part (a handler set).
        record["handlers"] = [value.unit, *value.tembusan]
    elif opd is not None:
        record.update(opd=opd.code, opd_name=opd.name, kind=opd.kind,
                      institution_id=opd.lapor_institution_id)
    else:
        record.update(opd=value.opd, institution_id=value.body_id)
    return record


def triage_case(rt: Runtime, case_id: int, *, now: datetime | None = None,
                announce: bool = False) -> CaseTriage:
    """Ask the classify and route hooks about one case; apply or suggest what they say.

    ``announce``: also tell the roles of the case's stage that it arrived (a
    ``case_received`` notification). Safe to call repeatedly: a decision already applied
    is not asked again, and one already suggested is asked again only once the case is
    in a stage where it can be applied.
    """
    at = now or datetime.now(UTC)
    workflow = rt.workflow
    settings = rt.settings
    out = CaseTriage(case_id)
    with rt.sessions() as session:
        case = session.get(Case, case_id)
        if case is None:
            out.skipped = "case not found"
            return out
        out.register_no = case.register_no
        if case.stage not in workflow.stages or workflow.is_terminal(case.stage):
            out.skipped = f"stage {case.stage!r} is terminal or unknown"
            return out
        stage = case.stage
        severity = case.severity
        routed = case.assigned_to is not None or case.forwarded_to is not None
        state = copy.deepcopy(dict((case.data or {}).get(TRIAGE_KEY) or {}))
        original = copy.deepcopy(state)
        snapshot = snapshot_from_row(case)
        bodies = _known_bodies(session, settings.opds)
    actions = system_actions(rt, now)
    failures: list[PluginFailure] = []
    classes = tuple(workflow.profile.classes)

    # 1. Classification (only for profiles with classes).
    cls_state = state.get("classification")
    classify_here = allowed(workflow, "classify", stage, {"severity": "x"})
    if classes and severity is None and _should_ask(cls_state, stage, classify_here):
        outcome = rt.plugins.classify(snapshot, classes)
        failures.extend(outcome.failures)
        if outcome.value is None:
            cls_state = {"status": FAILED if outcome.failures else NO_ANSWER, "stage": stage,
                         "at": at.isoformat()}
        else:
            cls_state = _classification_record(outcome.value, outcome.plugin, stage, at)
            cls_state["status"] = SUGGESTED
            if classify_here:
                note = f"Klasifikasi otomatis ({outcome.plugin}): {outcome.value.reason}".strip()
                try:
                    done = actions.classify(case_id, SYSTEM_ACTOR, outcome.value.severity,
                                            note=note)
                except ActionError as exc:
                    cls_state["not_applied"] = str(exc)
                else:
                    cls_state["status"] = APPLIED
                    out.newly_applied.append("classification")
                    stage = done.stage
                    severity = outcome.value.severity
        state["classification"] = cls_state
    out.classification = cls_state

    # 2. Routing (kewenangan), with the class just decided or suggested.
    route_state = state.get("routing")
    route_here = _route_possible(workflow, stage)
    if not routed and _should_ask(route_state, stage, route_here):
        suggested = (cls_state or {}).get("severity") if severity is None else severity
        view = replace(snapshot, stage=stage, severity=suggested)
        # A rule may name an OPD by its code (as `case forward --to` does) or its name.
        known = [o.code for o in settings.opds] + [o.name for o in settings.opds]
        outcome_r = rt.plugins.route(view, known, bodies)
        failures.extend(outcome_r.failures)
        decision = outcome_r.value
        if decision is None:
            route_state = {"status": FAILED if outcome_r.failures else NO_ANSWER,
                           "stage": stage, "at": at.isoformat()}
        else:
            opd = (_opd_by(settings.opds, name=decision.opd) if decision.opd is not None
                   else _opd_by(settings.opds, institution=decision.body_id)
                   if decision.body_id is not None else None)
            route_state = _routing_record(decision, outcome_r.plugin, stage, at, opd)
            route_state["status"] = SUGGESTED
            new_stage, problem = _apply_route(actions, workflow, case_id, stage, decision,
                                              opd, outcome_r.plugin)
            if problem is not None:
                route_state["not_applied"] = problem
            elif new_stage is not None:
                route_state["status"] = APPLIED
                out.newly_applied.append("routing")
                stage = new_stage
        state["routing"] = route_state
    out.routing = route_state
    out.failures = [str(f) for f in failures]
    if state != original or failures or announce:
        _record(rt, case_id, state, failures, at, announce, out)
    return out


def _apply_route(actions: CaseActions, workflow: Workflow, case_id: int, stage: str,
                 decision: RoutingDecision, opd: OpdSettings | None,
                 plugin: str | None) -> tuple[str | None, str | None]:
    """Apply ``decision`` if ``sistem`` may here: ``(new stage, None)`` when applied,
    ``(None, why)`` when the action failed, ``(None, None)`` when not ours to take."""
    reason = decision.reason or f"keputusan otomatis ({plugin})"
    try:
        if decision.ours:
            unit = str(decision.unit)
            if not allowed(workflow, "dispose", stage, {"unit": unit}):
                return None, None
            others = ", ".join(decision.tembusan)
            note = f"{reason}. Tim penanganan: {unit}" + (f", {others}" if others else "")
            return actions.dispose(case_id, SYSTEM_ACTOR, unit, note=note).stage, None
        if opd is None:
            return None, None  # a LAPOR! institution with no [[opds]] entry: staff decide
        action = "forward_body" if opd.kind == "body" else "forward_opd"
        fields = {"target": opd.code, "institution_id": opd.lapor_institution_id or opd.code,
                  "reason": reason}
        if not allowed(workflow, action, stage, fields):
            return None, None
        return actions.forward(case_id, SYSTEM_ACTOR, opd.code, list(decision.tembusan),
                               note=reason).stage, None
    except ActionError as exc:
        return None, str(exc)


def _record(rt: Runtime, case_id: int, state: dict[str, Any],
            failures: Sequence[PluginFailure], at: datetime, announce: bool,
            out: CaseTriage) -> None:
    """Store the triage record, flag failures and queue notifications, in one transaction."""
    renderer = renderer_for(rt)
    with rt.sessions() as session, session.begin():
        case = session.get(Case, case_id)
        if case is None:
            return
        data = copy.deepcopy(dict(case.data or {}))
        before = data.get(TRIAGE_KEY)
        changed = before != state
        if changed:
            data[TRIAGE_KEY] = state
            case.data = data
            summary = {k: v.get("status") for k, v in state.items() if isinstance(v, dict)}
            session.add(CaseEvent(case_id=case.id, at=at, side="system",
                                  actor=SYSTEM_ACTOR.name, kind="triage",
                                  changes={"triage": [None, summary]},
                                  note=_note(state)))
        flag_failures(session, case, failures, "triase", at)
        session.flush()
        if (changed or failures) and rt.event_sink is not None:
            rt.event_sink(session, "case_changed", case.id,
                          {"changes": {"triage": [None, "updated"]}, "side": "system"})
        view = snapshot_from_row(case)
        roles = stage_roles(rt.workflow, case.stage)
        if announce:
            notify(session, rt, renderer, "case_received", view, roles)
        routing = out.routing or {}
        if "routing" in out.newly_applied:
            if routing.get("ours"):
                notify(session, rt, renderer, "assigned", view,
                       [str(h) for h in routing.get("handlers") or []],
                       unit=routing.get("unit"), reason=routing.get("reason") or "")
            else:
                notify(session, rt, renderer, "forwarded", view, roles,
                       target=routing.get("opd_name") or routing.get("opd"),
                       tembusan=list(routing.get("tembusan") or []),
                       reason=routing.get("reason") or "")
        if failures:
            notify(session, rt, renderer, "plugin_failure", view, roles,
                   failures=[str(f) for f in failures])


def _note(state: dict[str, Any]) -> str:
    """A line for the history, in Bahasa Indonesia (no reporter, no complaint text)."""
    parts: list[str] = []
    cls = state.get("classification") or {}
    if cls.get("severity"):
        verb = "diterapkan" if cls.get("status") == APPLIED else "disarankan"
        parts.append(f"klasifikasi {cls['severity']} {verb}")
    route = state.get("routing") or {}
    if route.get("status") in (APPLIED, SUGGESTED):
        verb = "diterapkan" if route.get("status") == APPLIED else "disarankan"
        target = route.get("unit") if route.get("ours") else (
            route.get("opd_name") or route.get("opd") or f"instansi {route.get('institution_id')}")
        parts.append(f"penanganan oleh {target} {verb}")
    return "Triase otomatis: " + ("; ".join(parts) if parts else "tidak ada saran plugin")


def triage_new_cases(rt: Runtime, case_ids: Iterable[int], *, now: datetime | None = None,
                     announce: bool = True) -> TriageResult:
    """Triage cases that have just arrived (call it after a pull commits, with
    ``PullResult.created_ids``, and after ``CaseActions.new_case``)."""
    result = TriageResult()
    for case_id in case_ids:
        try:
            result.cases.append(triage_case(rt, case_id, now=now, announce=announce))
        except Exception:  # one case must not stop the others; it is logged with its id
            log.exception("triage of case %s failed", case_id)
            result.cases.append(CaseTriage(case_id, skipped="error (see log)"))
    if result.cases:
        log.info(result.summary())
    return result


def triage_pending(rt: Runtime, *, now: datetime | None = None, limit: int = 500
                   ) -> TriageResult:
    """Ask again for cases now in a stage where ``sistem`` may take a decision that was
    only suggested before (e.g. classified by staff, so the class's handlers can be
    assigned). For the daemon's periodic job."""
    workflow = rt.workflow
    if SYSTEM_ROLE not in workflow.roles:
        return TriageResult()
    classify_stages = [s for s in workflow.stages
                       if workflow.profile.classes and allowed(workflow, "classify", s,
                                                               {"severity": "x"})]
    route_stages = [s for s in workflow.stages if _route_possible(workflow, s)]
    conditions = []
    if classify_stages:
        conditions.append(Case.stage.in_(classify_stages) & Case.severity.is_(None))
    if route_stages:
        conditions.append(Case.stage.in_(route_stages) & Case.assigned_to.is_(None)
                          & Case.forwarded_to.is_(None))
    if not conditions:
        return TriageResult()
    with rt.sessions() as session:
        ids = list(session.scalars(select(Case.id).where(or_(*conditions))
                                   .order_by(Case.id).limit(limit)))
    result = triage_new_cases(rt, ids, now=now, announce=False)
    return result


__all__ = [
    "SYSTEM_ACTOR",
    "SYSTEM_ROLE",
    "TRIAGE_KEY",
    "CaseTriage",
    "TriageResult",
    "allowed",
    "flag_failures",
    "notify",
    "renderer_for",
    "stage_roles",
    "system_actions",
    "triage_case",
    "triage_new_cases",
    "triage_pending",
]
