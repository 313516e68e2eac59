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
import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from bridge.config import OpdSettings
from bridge.domain import (
    CaseSnapshot,
    Classification,
    Notification,
    RoutingDecision,
    restaged,
    snapshot_from_row,
)
from bridge.events import event_row, notification_row, record_notification
from bridge.plugins import HookOutcome, PluginFailure
from bridge.services.actions import SYSTEM, ActionError, CaseActions
from bridge.store.bulk import execute_many
from bridge.store.models import Case, CaseEvent, PendingEvent, RemoteInstitution
from bridge.workflow.profile import Workflow

if TYPE_CHECKING:
    from bridge.notify import NotificationRenderer
    from bridge.services.context import ServiceContext as Runtime

log = logging.getLogger("bridge.triage")

#: The workflow role automatic decisions are taken as (profiles grant it transitions).
SYSTEM_ROLE = "sistem"
SYSTEM_ACTOR = SYSTEM
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
    #: Its arrival was queued for the stage's roles (on its own or in a digest).
    announced: bool = False

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

    @property
    def announced(self) -> int:
        return sum(1 for c in self.cases if c.announced)

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
    return workflow.permits(action, stage, role, fields)


def flag_failures(session: Session, case: Case, failures: Sequence[PluginFailure],
                  when: str, at: datetime) -> None:
    """Record plugin failures on the case (history + attention) in the caller's transaction."""
    if not failures:
        return
    for row in failure_rows(case.id, failures, when, at):
        session.add(CaseEvent(**row))
    case.attention = _with_note(case.attention, failures, when)


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


#: Cases triaged per transaction: a pull page's worth, so that a first sync of a backlog
#: costs a few hundred statements, not a few per case.
BATCH_SIZE = 500

#: The columns triage and its notifications read (not the raw payload, the attachments
#: or the reporter's contact beyond what a snapshot keeps).
_COLUMNS = (Case.id, Case.register_no, Case.channel, Case.lapor_id, Case.tracking_id,
            Case.title, Case.content, Case.category, Case.location, Case.is_anonymous,
            Case.is_secret, Case.reporter, Case.stage, Case.severity, Case.assigned_to,
            Case.forwarded_to, Case.received_at, Case.files_complete_at, Case.deadline_at,
            Case.remote_status_code, Case.remote_status_name, Case.attention, Case.data,
            Case.version)
#: What the write reads again inside its transaction: the columns it reads, changes and
#: writes back (so that nothing committed since the first read is lost), and the version
#: that tells whether the rest of the first read still holds.
_FRESH = (Case.id, Case.version, Case.attention, Case.data)
_CASES = cast(Table, Case.__table__)
_HISTORY = cast(Table, CaseEvent.__table__)
_PENDING = cast(Table, PendingEvent.__table__)
_UPDATE = (update(_CASES).where(_CASES.c.id == bindparam("b_id"))
           .values(data=bindparam("b_data"), attention=bindparam("b_attention")))


@dataclass
class _Context:
    """What every case of one triage call shares: read or built once, not per case."""

    rt: Runtime
    at: datetime
    actions: CaseActions
    renderer: NotificationRenderer | None
    bodies: list[int] | None
    known: list[str]
    classes: tuple[str, ...]
    #: ``case_changed`` rows are written here when the runtime's own recorder is the sink
    #: (and a plugin listens); another sink is called per case in the same transaction.
    own_sink: bool
    record_changed: bool
    #: Many cases arrived at once: announce them by digests (``[notifications]
    #: digest_threshold``), one per recipient group and batch.
    digest: bool = False
    _roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def roles_of(self, stage: str) -> tuple[str, ...]:
        """:func:`stage_roles`, worked out once per stage (a burst's cases share a few)."""
        roles = self._roles.get(stage)
        if roles is None:
            roles = self._roles[stage] = tuple(stage_roles(self.rt.workflow, stage))
        return roles


@dataclass
class _Decided:
    """One case after its plugins answered: what to store for it."""

    out: CaseTriage
    state: dict[str, Any]
    original: dict[str, Any]
    failures: list[PluginFailure]
    #: The case as first read (the batch's one full read), and its snapshot.
    row: Any = None
    snapshot: CaseSnapshot | None = None


def _context(rt: Runtime, now: datetime | None) -> _Context:
    with rt.sessions() as session:
        bodies = _known_bodies(session, rt.settings.opds)
    sink = rt.event_sink
    own = sink is not None and sink == getattr(rt, "_record_event", None)
    return _Context(rt=rt, at=now or datetime.now(UTC), actions=system_actions(rt, now),
                    renderer=renderer_for(rt), bodies=bodies,
                    # A rule may name an OPD by its code (as `case forward --to` does)
                    # or its name.
                    known=[o.code for o in rt.settings.opds] + [o.name for o in rt.settings.opds],
                    classes=tuple(rt.workflow.profile.classes), own_sink=own,
                    record_changed=own and bool(rt.plugins.implementers("case_changed")))


def _read(rt: Runtime, ids: Sequence[int]) -> dict[int, Any]:
    """The batch's cases in one query, as rows shaped like a Case (for snapshots)."""
    with rt.sessions() as session:
        rows = session.execute(select(*_COLUMNS).where(Case.id.in_(list(ids)))).all()
    return {row.id: row for row in rows}


@dataclass
class _Asking:
    """One case while its plugins are asked: where it stands between the two questions."""

    out: CaseTriage
    state: dict[str, Any]
    original: dict[str, Any]
    snapshot: CaseSnapshot
    stage: str
    severity: str | None
    routed: bool
    failures: list[PluginFailure] = field(default_factory=list)
    cls_state: dict[str, Any] | None = None


def _start(ctx: _Context, case_id: int, row: Any | None) -> _Asking | CaseTriage:
    """What there is to ask about one case; a finished :class:`CaseTriage` when nothing."""
    workflow = ctx.rt.workflow
    out = CaseTriage(case_id)
    if row is None:
        out.skipped = "case not found"
        return out
    out.register_no = row.register_no
    if row.stage not in workflow.stages or workflow.is_terminal(row.stage):
        out.skipped = f"stage {row.stage!r} is terminal or unknown"
        return out
    earlier = (row.data or {}).get(TRIAGE_KEY)
    # A new case has no triage state yet: nothing to copy (two deep copies a case).
    state = copy.deepcopy(dict(earlier)) if earlier else {}
    return _Asking(out, state, copy.deepcopy(state) if state else {}, snapshot_from_row(row),
                   row.stage, row.severity,
                   row.assigned_to is not None or row.forwarded_to is not None,
                   cls_state=state.get("classification"))


def _wants_class(ctx: _Context, a: _Asking) -> bool:
    classify_here = allowed(ctx.rt.workflow, "classify", a.stage, {"severity": "x"})
    return bool(ctx.classes) and a.severity is None and _should_ask(a.cls_state, a.stage,
                                                                    classify_here)


def _classified(ctx: _Context, a: _Asking, outcome: HookOutcome[Classification]) -> None:
    """Record (and apply, where ``sistem`` may) one case's classification answer."""
    at, stage = ctx.at, a.stage
    a.failures.extend(outcome.failures)
    if outcome.value is None:
        cls_state = {"status": FAILED if outcome.failures else NO_ANSWER, "stage": stage,
                     "at": at.isoformat()}
    else:
        cls_state = _classification_record(outcome.value, outcome.plugin, stage, at)
        cls_state["status"] = SUGGESTED
        if allowed(ctx.rt.workflow, "classify", stage, {"severity": "x"}):
            note = f"Klasifikasi otomatis ({outcome.plugin}): {outcome.value.reason}".strip()
            try:
                done = ctx.actions.classify(a.out.case_id, SYSTEM_ACTOR, outcome.value.severity,
                                            note=note)
            except ActionError as exc:
                cls_state["not_applied"] = str(exc)
            else:
                cls_state["status"] = APPLIED
                a.out.newly_applied.append("classification")
                a.stage = done.stage
                a.severity = outcome.value.severity
    a.state["classification"] = a.cls_state = cls_state


def _route_view(ctx: _Context, a: _Asking) -> CaseSnapshot | None:
    """The case as the route hook sees it (with the class just decided or suggested), or
    ``None`` when routing is not to be asked."""
    if a.routed or not _should_ask(a.state.get("routing"), a.stage,
                                   _route_possible(ctx.rt.workflow, a.stage)):
        return None
    suggested = (a.cls_state or {}).get("severity") if a.severity is None else a.severity
    return restaged(a.snapshot, stage=a.stage, severity=suggested)


def _routed(ctx: _Context, a: _Asking, outcome: HookOutcome[RoutingDecision]) -> None:
    """Record (and apply, where ``sistem`` may) one case's routing answer."""
    at, stage, settings = ctx.at, a.stage, ctx.rt.settings
    a.failures.extend(outcome.failures)
    decision = outcome.value
    if decision is None:
        route_state = {"status": FAILED if outcome.failures else NO_ANSWER, "stage": stage,
                       "at": at.isoformat()}
    else:
        opd = (_opd_by(settings.opds, name=decision.opd) if decision.opd is not None
               else _opd_by(settings.opds, institution=decision.body_id)
               if decision.body_id is not None else None)
        route_state = _routing_record(decision, outcome.plugin, stage, at, opd)
        route_state["status"] = SUGGESTED
        new_stage, problem = _apply_route(ctx.actions, ctx.rt.workflow, a.out.case_id, stage,
                                          decision, opd, outcome.plugin)
        if problem is not None:
            route_state["not_applied"] = problem
        elif new_stage is not None:
            route_state["status"] = APPLIED
            a.out.newly_applied.append("routing")
            a.stage = new_stage
    a.state["routing"] = route_state


def _decide(ctx: _Context, ids: Sequence[int], rows: dict[int, Any]
            ) -> list[_Decided | CaseTriage]:
    """Ask the classify hooks about the batch's cases, then the route hooks (each call
    isolated and timed on its own by the plugin host, the calls of one hook handed to
    each plugin together); apply what ``sistem`` may apply, case by case. One case's
    error (logged with its id) stops only that case."""
    results: dict[int, _Decided | CaseTriage] = {}
    asking: list[_Asking] = []

    def guarded(a: _Asking, step: Callable[[], None]) -> bool:
        try:
            step()
        except Exception:  # one case must not stop the others; it is logged with its id
            log.exception("triage of case %s failed", a.out.case_id)
            results[a.out.case_id] = CaseTriage(a.out.case_id, skipped="error (see log)")
            return False
        return True

    for case_id in ids:
        try:
            started = _start(ctx, case_id, rows.get(case_id))
        except Exception:
            log.exception("triage of case %s failed", case_id)
            started = CaseTriage(case_id, skipped="error (see log)")
        if isinstance(started, CaseTriage):
            results[case_id] = started
        else:
            asking.append(started)
    # 1. Classification (only for profiles with classes).
    ask = [a for a in asking if _wants_class(ctx, a)]
    if ask:
        outcomes = ctx.rt.plugins.classify_many([a.snapshot for a in ask], ctx.classes)
        failed = {id(a) for a, o in zip(ask, outcomes, strict=True)
                  if not guarded(a, functools.partial(_classified, ctx, a, o))}
        asking = [a for a in asking if id(a) not in failed]
    # 2. Routing (kewenangan), with the class just decided or suggested.
    views: list[tuple[_Asking, CaseSnapshot]] = []
    for a in asking:
        view: list[CaseSnapshot | None] = [None]

        def look(a: _Asking = a, view: list[CaseSnapshot | None] = view) -> None:
            view[0] = _route_view(ctx, a)

        if not guarded(a, look):
            continue
        if view[0] is not None:
            views.append((a, view[0]))
    failed = set()
    if views:
        routed = ctx.rt.plugins.route_many([v for _a, v in views], ctx.known, ctx.bodies)
        failed = {id(a) for (a, _v), o in zip(views, routed, strict=True)
                  if not guarded(a, functools.partial(_routed, ctx, a, o))}
    for a in asking:
        if id(a) in failed or a.out.case_id in results:
            continue
        a.out.classification = a.cls_state
        a.out.routing = a.state.get("routing")
        a.out.failures = [str(f) for f in a.failures]
        results[a.out.case_id] = _Decided(a.out, a.state, a.original, a.failures,
                                          rows.get(a.out.case_id), a.snapshot)
    return [results[i] for i in ids]


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




def failure_rows(case_id: int, failures: Sequence[PluginFailure], when: str, at: datetime
                 ) -> list[dict[str, Any]]:
    """The ``plugin_failed`` history rows of :func:`flag_failures`."""
    return [{"case_id": case_id, "at": at, "side": "system", "actor": f"plugin:{f.plugin}",
             "kind": "plugin_failed",
             "changes": {"hook": f.hook, "failure": f.kind, "during": when},
             "note": f.message} for f in failures]


def _with_note(attention: str | None, failures: Sequence[PluginFailure], when: str
               ) -> str | None:
    if not failures:
        return attention
    note = f"Plugin gagal saat {when}: " + "; ".join(str(f) for f in failures)
    return note if not attention else f"{attention}\n{note}"


@dataclass
class _Rows:
    """One case's share of the batch's statements, built before any is run."""

    case_id: int
    data: dict[str, Any] | None
    attention: str | None
    write_case: bool
    history: list[dict[str, Any]]
    pending: list[dict[str, Any]]
    changed_event: bool
    #: Its arrival, left for the batch's digest: the roles to tell and the case as shown.
    arrival: tuple[tuple[str, ...], CaseSnapshot] | None = None


def _case_rows(ctx: _Context, decided: _Decided, row: Any, announce: bool,
               view: CaseSnapshot | None = None) -> _Rows:
    """Build (not run) what recording one case's triage writes; the snapshot the
    notifications are rendered from is the case as it will be committed (``view``: the
    snapshot taken when the case was first read, when nothing has changed it since)."""
    at, state, failures, out = ctx.at, decided.state, decided.failures, decided.out
    # ``row.data`` was decoded from the database inside this transaction (``_current``):
    # no one else holds it, so no deep copy (it was a twentieth of a first sync).
    data = dict(row.data or {})
    changed = data.get(TRIAGE_KEY) != state
    history: list[dict[str, Any]] = []
    if changed:
        data[TRIAGE_KEY] = state
        summary = {k: v.get("status") for k, v in state.items() if isinstance(v, dict)}
        history.append({"case_id": row.id, "at": at, "side": "system",
                        "actor": SYSTEM_ACTOR.name, "kind": "triage",
                        "changes": {"triage": [None, summary]}, "note": _note(state)})
    if failures:
        history.extend(failure_rows(row.id, failures, "triase", at))
    attention = _with_note(row.attention, failures, "triase")
    pending: list[dict[str, Any]] = []
    changed_event = bool(changed or failures)
    if changed_event and ctx.record_changed:
        pending.append(event_row("case_changed", row.id,
                                 {"changes": {"triage": [None, "updated"]}, "side": "system"}))
    renderer = ctx.renderer
    arrival: tuple[tuple[str, ...], CaseSnapshot] | None = None
    if renderer is not None:
        if view is None:
            # Templates never see case.data (CaseView has no such field): the snapshot
            # is built without it rather than deep-copying the triage state once more.
            view = snapshot_from_row(SimpleNamespace(**{**row._asdict(), "data": None,
                                                        "attention": attention}))
        roles = ctx.roles_of(view.stage)
        notes: list[Notification] = []
        if announce and roles:
            if ctx.digest:
                arrival = (tuple(roles), view)
            else:
                notes.append(renderer.render("case_received", view, roles))
                out.announced = True
        routing = out.routing or {}
        if "routing" in out.newly_applied:
            if routing.get("ours"):
                handlers = [str(h) for h in routing.get("handlers") or []]
                if handlers:
                    notes.append(renderer.render("assigned", view, handlers,
                                                 unit=routing.get("unit"),
                                                 reason=routing.get("reason") or ""))
            elif roles:
                notes.append(renderer.render(
                    "forwarded", view, roles,
                    target=routing.get("opd_name") or routing.get("opd"),
                    tembusan=list(routing.get("tembusan") or []),
                    reason=routing.get("reason") or ""))
        if failures and roles:
            notes.append(renderer.render("plugin_failure", view, roles,
                                         failures=[str(f) for f in failures]))
        pending.extend(notification_row(n) for n in notes)
    return _Rows(row.id, data, attention, bool(changed or failures), history, pending,
                 changed_event, arrival)


def _arrivals(ctx: _Context, built: Sequence[_Rows], outs: dict[int, CaseTriage]
              ) -> list[dict[str, Any]]:
    """The batch's "Pengaduan baru" rows when many cases arrived at once: one digest per
    group of recipients (a group of one case gets the usual message). A digest that
    cannot be rendered (a regency's template) falls back to one message per case."""
    renderer = ctx.renderer
    groups: dict[tuple[str, ...], list[CaseSnapshot]] = {}
    for b in built:
        if b.arrival is not None:
            groups.setdefault(b.arrival[0], []).append(b.arrival[1])
    if renderer is None or not groups:
        return []
    rows: list[dict[str, Any]] = []
    for roles, views in groups.items():
        if len(views) > 1:
            try:
                rows.append(notification_row(renderer.render_digest(
                    "case_received_digest", views, list(roles))))
            except Exception:
                log.exception("the digest of %d new cases could not be rendered; "
                              "announcing them one by one", len(views))
            else:
                for view in views:
                    outs[view.id].announced = True
                continue
        for view in views:
            try:
                rows.append(notification_row(renderer.render("case_received", view,
                                                              list(roles))))
            except Exception:  # one case's message only
                log.exception("the arrival of case %s could not be announced", view.id)
            else:
                outs[view.id].announced = True
    return rows


def _current(session: Session, todo: Sequence[_Decided]
             ) -> dict[int, tuple[Any, CaseSnapshot | None]]:
    """The cases as they stand inside the write's transaction, each with the snapshot to
    render its notifications from (``None``: build it from the row).

    The columns the write changes (data, attention) are always read again. The rest of
    the batch's first read, and its snapshot, still hold when the case's version is the
    same and triage applied nothing to it (every action bumps the version); other cases
    are read again in full."""
    fresh = {r.id: r for r in session.execute(
        select(*_FRESH).where(Case.id.in_([d.out.case_id for d in todo]))).all()}
    out: dict[int, tuple[Any, CaseSnapshot | None]] = {}
    again: list[int] = []
    for d in todo:
        now = fresh.get(d.out.case_id)
        if now is None:
            continue
        first = d.row
        if first is None or d.out.newly_applied or first.version != now.version:
            again.append(d.out.case_id)
            continue
        # What the write uses of a case besides its snapshot: id, data, attention (the
        # fresh row holds them).
        out[now.id] = (now, d.snapshot)
    if again:
        for r in session.execute(select(*_COLUMNS).where(Case.id.in_(again))).all():
            out[r.id] = (r, None)
    return out


def _write(ctx: _Context, decided: Sequence[_Decided], announce: bool) -> None:
    """Record the decided cases in one transaction: one read of their current rows, then
    one executemany each for the cases, their history and their pending events."""
    rt = ctx.rt
    todo = [d for d in decided if d.state != d.original or d.failures or announce]
    if not todo:
        return
    with rt.sessions() as session, session.begin():
        current = _current(session, todo)
        built: list[_Rows] = []
        for d in todo:
            found = current.get(d.out.case_id)
            if found is None:
                continue  # deleted since it was read: nothing to record on it
            row, view = found
            try:
                built.append(_case_rows(ctx, d, row, announce, view))
            except Exception:  # one case's rows (a template, a plugin's odd value) only
                log.exception("triage of case %s could not be recorded", d.out.case_id)
                d.out.skipped = "error (see log)"
        updates = [{"b_id": b.case_id, "b_data": b.data, "b_attention": b.attention}
                   for b in built if b.write_case]
        if updates:
            execute_many(session, _UPDATE, updates)
        history = [h for b in built for h in b.history]
        if history:
            execute_many(session, insert(_HISTORY), history)
        # Arrivals first: "Pengaduan baru" before what triage then did to each case.
        pending = _arrivals(ctx, built, {d.out.case_id: d.out for d in todo})
        pending.extend(p for b in built for p in b.pending)
        if pending:
            execute_many(session, insert(_PENDING), pending)
        if not ctx.own_sink and rt.event_sink is not None:
            for b in built:
                if b.changed_event:
                    rt.event_sink(session, "case_changed", b.case_id,
                                  {"changes": {"triage": [None, "updated"]}, "side": "system"})


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




def _triage_batch(ctx: _Context, ids: Sequence[int], announce: bool) -> list[CaseTriage]:
    ids = list(dict.fromkeys(ids))
    rows = _read(ctx.rt, ids)
    outs: list[CaseTriage] = []
    decided: list[_Decided] = []
    for result in _decide(ctx, ids, rows):
        if isinstance(result, _Decided):
            decided.append(result)
            outs.append(result.out)
        else:
            outs.append(result)
    try:
        _write(ctx, decided, announce)
    except Exception:
        # The batch's transaction failed as a whole (a database error): record the cases
        # one by one, so that one case's problem costs only that case. The plugins are
        # not asked again.
        log.exception("recording the triage of %d cases failed; retrying case by case",
                      len(decided))
        for d in decided:
            try:
                _write(ctx, [d], announce)
            except Exception:
                log.exception("triage of case %s could not be recorded", d.out.case_id)
                d.out.skipped = "error (see log)"
    return outs


def triage_new_cases(rt: Runtime, case_ids: Iterable[int], *, now: datetime | None = None,
                     announce: bool = True, batch_size: int = BATCH_SIZE) -> TriageResult:
    """Triage cases that have just arrived (call it after a pull commits, with
    ``PullResult.created_ids``, and after ``CaseActions.new_case``).

    Cases go in batches of ``batch_size``: one query reads a batch, each case's plugins
    are asked one case at a time (each call isolated and timed by the plugin host; a
    failure is flagged on that case only), and what the batch records (triage state,
    history, notifications, events) is written in one transaction. A decision ``sistem``
    may apply goes through :class:`CaseActions` as before, case by case.
    """
    result = TriageResult()
    ids = list(dict.fromkeys(case_ids))
    if not ids:
        return result
    ctx = _context(rt, now)
    threshold = ctx.renderer.digest_threshold if ctx.renderer is not None else 0
    ctx.digest = announce and 0 < threshold < len(ids)
    for start in range(0, len(ids), max(1, batch_size)):
        result.cases.extend(_triage_batch(ctx, ids[start:start + batch_size], announce))
    log.info(result.summary())
    return result


def triage_case(rt: Runtime, case_id: int, *, now: datetime | None = None,
                announce: bool = False) -> CaseTriage:
    """Ask the classify and route hooks about one case; apply or suggest what they say.

    ``announce``: also tell the roles of the case's stage that it arrived (a
    ``case_received`` notification). Safe to call repeatedly: a decision already applied
    is not asked again, and one already suggested is asked again only once the case is
    in a stage where it can be applied.
    """
    return triage_new_cases(rt, [case_id], now=now, announce=announce).cases[0]


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
    "failure_rows",
    "flag_failures",
    "notify",
    "renderer_for",
    "stage_roles",
    "system_actions",
    "triage_case",
    "triage_new_cases",
    "triage_pending",
]
