"""Forwarding inside the deployment: a case forwarded to another body the bridge serves.

A deployment may serve several bodies (the OPDs of a Pemda), each with its own store. A
forward to one of them must put the case in that body's queue, not only tell LAPOR!:

1. **Sender, one transaction.** :class:`InternalForwardHook` runs inside the forward
   action (``forward_opd`` / ``forward_body``): it writes an :class:`InternalForward` row
   beside the stage change and the outbox rows, and says what LAPOR! is told, as the API
   profile's ``internal_forward`` says (``followup`` or ``disposition``).
2. **Delivery, from the sync cycle.** :meth:`InternalForwarding.deliver` writes the case
   into the receiver's store (a new case, or the one it already has for the same LAPOR!
   report), then marks the row delivered. The receiver's :class:`InternalArrival` row is
   unique per (sender, forward id), so a crash between the two writes repeats nothing:
   the next attempt finds the arrival and only marks the row.
3. **Following.** :meth:`InternalForwarding.follow` reads the receiver's case through the
   link until it ends: its stage and answers are kept on the row (what
   :func:`forward_views` shows on the sender's case page). A case the receiver gives back
   (:func:`return_forward`: "not ours") reopens the sender's case, with the receiver's note.

The services never see the deployment: they get a narrow lookup ``receiver(code)`` that
answers a :class:`Receiver` for a body of the same deployment, else None.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import OpdSettings, Settings
from bridge.lapor.api_profile import profile_of
from bridge.runs import Deliveries
from bridge.services.actions import (
    SYSTEM,
    ActionNotAllowed,
    ActionResult,
    Actor,
    BadInput,
    CaseActions,
    DeadlineHook,
    EventSink,
)
from bridge.services.queue import find_case
from bridge.store import register
from bridge.store.models import (
    Case,
    CaseEvent,
    InternalArrival,
    InternalForward,
    OutboxRow,
    StoredFile,
    utcnow,
)
from bridge.sync.track import enrol
from bridge.workflow.profile import STAY, Move, Rule, Workflow

log = logging.getLogger("bridge.services.internal_forward")

PENDING, DELIVERED, RETURNED, FINISHED, DEAD = (
    "pending", "delivered", "returned", "finished", "dead")
#: The receiver's case history kinds that are answers the sender should see.
ANSWER_PURPOSES = ("followup", "answer")
#: The pseudo-action a receiver gives a case back with (not a profile action: any body
#: may refuse a case that is not its own, whatever its SOP).
RETURN_ACTION = "return_forward"


@dataclass(frozen=True)
class Receiver:
    """What a sender needs of a body of the same deployment."""

    code: str
    sessions: sessionmaker[Session]
    settings: Settings
    workflow: Workflow
    #: The receiver's deadline refresh and plugin event sink (as its Runtime wires them).
    after_change: DeadlineHook | None = None
    event_sink: EventSink | None = None


#: A body of the same deployment by code; None for any other code.
ReceiverLookup = Callable[[str], Receiver | None]


class InternalForwardHook:
    """The forward action's hook (see ``CaseActions(internal_forward=...)``)."""

    def __init__(self, own_code: str, settings: Settings, receivers: ReceiverLookup,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.own_code = own_code
        self.settings = settings
        self.receivers = receivers
        self.clock = clock

    def __call__(self, session: Session, case: Case, opd: OpdSettings, tembusan: list[str],
                 reason: str, actor: Actor) -> str | None:
        if opd.code == self.own_code:
            raise BadInput(f"{case.register_no}: cannot forward a case to our own body "
                           f"({opd.code})")
        if self.receivers(opd.code) is None:
            return None
        mode = profile_of(self.settings.lapor, self.settings.source).internal_forward
        session.add(InternalForward(
            case_id=case.id, to_body=opd.code, status=PENDING, attempts=0,
            created_at=self.clock(),
            payload={"tembusan": list(tembusan), "reason": reason, "actor": actor.name,
                     "from_stage": case.stage, "to_name": opd.name,
                     "from_name": self.settings.regency.name,
                     "from_institution_id": self.settings.lapor.institution_id,
                     "lapor_told": mode if case.lapor_id is not None else None}))
        return mode


# -- the receiver's case, as the sender sees it -----------------------------------------


def receiver_snapshot(receiver: Receiver, case_id: int) -> dict[str, Any]:
    """The receiver's case as the sender's page shows it: stage, its label, whether it
    has ended, and its answers (follow-ups and the answer to the complainant)."""
    with receiver.sessions() as session:
        case = session.get(Case, case_id)
        if case is None:
            return {"missing": True}
        arrival = session.scalars(select(InternalArrival).where(
            InternalArrival.case_id == case_id).order_by(InternalArrival.id.desc())).first()
        answers = _answers(session, case)
        stage = case.stage
        return {
            "register_no": case.register_no,
            "stage": stage,
            "stage_label": receiver.workflow.stage_label(stage),
            "ended": stage in receiver.workflow.stages and receiver.workflow.is_terminal(stage),
            "closed_at": case.closed_at.isoformat() if case.closed_at else None,
            "returned": bool(arrival and arrival.returned_at),
            "return_note": arrival.return_note if arrival else None,
            "answers": answers,
        }


def _answers(session: Session, case: Case) -> list[dict[str, Any]]:
    # The outbox keeps an answer's whole text when it goes to LAPOR!; the history keeps
    # the start of a follow-up otherwise.
    rows = session.scalars(select(OutboxRow).where(
        OutboxRow.case_id == case.id, OutboxRow.kind == "followup").order_by(OutboxRow.id)).all()
    picked = [{"at": r.created_at.isoformat(), "by": r.actor, "kind": r.payload.get("purpose"),
               "text": r.payload.get("content", "")}
              for r in rows if r.payload.get("purpose") in ANSWER_PURPOSES]
    if picked:
        return picked
    events = session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.kind.in_(("followup", "answer_delivered")))
        .order_by(CaseEvent.id)).all()
    out = []
    for e in events:
        text = (e.changes or {}).get("followup")
        if e.kind == "followup" and not (isinstance(text, list) and text[-1]):
            continue  # a recorded step, not an answer
        out.append({"at": e.at.isoformat(), "by": e.actor, "kind": e.kind,
                    "text": text[-1] if isinstance(text, list) else (e.note or "")})
    return out


@dataclass
class ForwardView:
    """One internal forward of a case, for the sender's case page."""

    id: int
    to_body: str
    to_name: str
    status: str
    tembusan: list[str]
    created_at: str
    register_no: str | None
    stage: str | None
    stage_label: str | None
    ended: bool
    returned: bool
    return_note: str | None
    answers: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None
    live: bool = False

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def forward_views(sessions: sessionmaker[Session], case_id: int,
                  receivers: ReceiverLookup | None = None) -> list[ForwardView]:
    """The case's internal forwards, newest first. While a forward is open its receiver
    is read live through ``receivers``; once it ended (or the receiver is not reachable)
    the last snapshot kept by :meth:`InternalForwarding.follow` is shown."""
    with sessions() as session:
        rows = session.scalars(select(InternalForward).where(
            InternalForward.case_id == case_id).order_by(InternalForward.id.desc())).all()
        session.expunge_all()
    views = []
    for row in rows:
        snap = dict(row.snapshot or {})
        live = False
        if row.status == DELIVERED and row.remote_case_id is not None and receivers:
            receiver = receivers(row.to_body)
            if receiver is not None:
                snap, live = receiver_snapshot(receiver, row.remote_case_id), True
        payload = row.payload or {}
        views.append(ForwardView(
            id=row.id, to_body=row.to_body, to_name=str(payload.get("to_name") or row.to_body),
            status=row.status, tembusan=list(payload.get("tembusan") or []),
            created_at=row.created_at.isoformat(),
            register_no=row.remote_register_no, stage=snap.get("stage"),
            stage_label=snap.get("stage_label"), ended=bool(snap.get("ended")),
            returned=row.status == RETURNED or bool(snap.get("returned")),
            return_note=snap.get("return_note"), answers=list(snap.get("answers") or []),
            last_error=row.last_error, live=live))
    return views


# -- the step of the sync cycle ----------------------------------------------------------


@dataclass
class ForwardRun(Deliveries):
    returned: int = 0
    finished: int = 0

    def summary(self) -> str:
        return (f"internal forwards: {self.delivered} delivered, {self.returned} returned, "
                f"{self.finished} finished, {self.retried} to retry, {self.dead} dead")


@dataclass(frozen=True)
class _Parcel:
    """What the receiver gets: a copy of the sender's case, read before any write."""

    forward_id: int
    from_case_id: int
    to_body: str
    payload: dict[str, Any]
    case: dict[str, Any]
    files: list[tuple[str, str, int, str, bytes]]


_CASE_COPIED = ("channel", "lapor_id", "tracking_id", "title", "content", "category",
                "location", "is_anonymous", "is_secret", "reporter", "attachments",
                "remote_status_code", "remote_status_name", "remote_disposition_id",
                "remote_disposition_name", "remote_updated_at", "filed_at", "severity", "data")


class InternalForwarding:
    """Deliver and follow one sender body's internal forwards (called from its cycle)."""

    def __init__(self, own_code: str, actions: CaseActions, receivers: ReceiverLookup,
                 *, clock: Callable[[], datetime] = utcnow) -> None:
        self.own_code = own_code
        self.actions = actions
        self.sessions = actions.sessions
        self.settings = actions.settings
        self.receivers = receivers
        self.clock = clock

    def run(self) -> ForwardRun:
        result = ForwardRun()
        self.deliver(result)
        self.follow(result)
        return result

    # -- delivery ---------------------------------------------------------------------

    def deliver(self, result: ForwardRun | None = None) -> ForwardRun:
        result = result or ForwardRun()
        now = self.clock()
        with self.sessions() as session:
            due = list(session.scalars(select(InternalForward.id).where(
                InternalForward.status == PENDING,
                (InternalForward.next_attempt_at.is_(None))
                | (InternalForward.next_attempt_at <= now)).order_by(InternalForward.id)))
        for forward_id in due:
            try:
                parcel = self._parcel(forward_id)
                if parcel is None:
                    continue
                receiver = self.receivers(parcel.to_body)
                if receiver is None:
                    raise LookupError(f"{parcel.to_body} is not a body of this deployment")
                case_id, register_no = self.receive(receiver, parcel)
                self._mark_delivered(forward_id, case_id, register_no,
                                     receiver_snapshot(receiver, case_id))
                result.delivered += 1
            except Exception as exc:  # the receiver's database, a bug: keep the row, retry
                log.warning("internal forward %s not delivered: %s", forward_id, exc)
                self._retry_later(forward_id, f"{type(exc).__name__}: {exc}", result)
        return result

    def _parcel(self, forward_id: int) -> _Parcel | None:
        with self.sessions() as session:
            row = session.get(InternalForward, forward_id)
            if row is None or row.status != PENDING:
                return None
            case = session.get(Case, row.case_id)
            if case is None:
                return None
            files = session.scalars(select(StoredFile).where(
                StoredFile.case_id == case.id).order_by(StoredFile.id)).all()
            return _Parcel(
                forward_id=row.id, from_case_id=case.id, to_body=row.to_body,
                payload=dict(row.payload or {}),
                case={**{k: getattr(case, k) for k in _CASE_COPIED},
                      "register_no": case.register_no},
                files=[(f"local-{f.id}", f.name, f.size, f.mime, f.content) for f in files])

    def receive(self, receiver: Receiver, parcel: _Parcel) -> tuple[int, str]:
        """Write the parcel into the receiver's store (one transaction); the receiver's
        case id and register number. Idempotent by (sender, forward id)."""
        now = self.clock()
        src = parcel.case
        with receiver.sessions() as session, session.begin():
            arrival = session.scalars(select(InternalArrival).where(
                InternalArrival.from_body == self.own_code,
                InternalArrival.forward_id == parcel.forward_id)).first()
            if arrival is not None:  # delivered before; the sender did not hear of it
                case = session.get(Case, arrival.case_id)
                if case is not None:
                    return case.id, case.register_no
                session.delete(arrival)  # its case was deleted since: deliver anew
                session.flush()
            case = self._earlier_case(session, parcel)
            reused = case is not None
            if case is None:
                case = self._new_case(session, receiver, src, now)
            else:
                # The same report again (pulled from LAPOR! already, or returned and
                # forwarded anew): back into the queue instead of a second case.
                case.stage = receiver.workflow.initial_stage
                case.closed_at = None
                case.forwarded_to = None
                case.is_new = True
                case.updated_at = now
                case.version += 1
            names = self._copy_files(session, case, parcel.files)
            case.attachments = _merged_attachments(case.attachments, src.get("attachments"),
                                                   names)
            data = dict(case.data or {})
            data["origin"] = {"body": self.own_code, "case_id": parcel.from_case_id,
                              "register_no": src["register_no"],
                              "forward_id": parcel.forward_id,
                              "name": parcel.payload.get("from_name"),
                              "institution_id": parcel.payload.get("from_institution_id"),
                              "tembusan": parcel.payload.get("tembusan") or [],
                              "reason": parcel.payload.get("reason") or "",
                              "documents": dict((src.get("data") or {}).get("documents") or {})}
            case.data = data
            session.add(InternalArrival(from_body=self.own_code, forward_id=parcel.forward_id,
                                        from_case_id=parcel.from_case_id, case_id=case.id,
                                        arrived_at=now))
            session.add(CaseEvent(
                case_id=case.id, at=now, side="system",
                actor=str(parcel.payload.get("from_name") or self.own_code),
                kind="internal_forward_received",
                changes={"from": [None, self.own_code],
                         "tembusan": [None, parcel.payload.get("tembusan") or []],
                         "files": [None, [n for n, _ in names.values()]],
                         **({"stage": [None, case.stage]} if reused else {})},
                note=parcel.payload.get("reason") or None))
            if case.lapor_id is not None and parcel.payload.get("lapor_told") == "disposition":
                # LAPOR! disposes the report to the receiver: it follows it there by id,
                # whether or not its inbox lists it.
                enrol(session, case.id, case.lapor_id, "forwarded", now)
            session.flush()
            if receiver.after_change is not None:
                receiver.after_change(session, case)
            if receiver.event_sink is not None:
                receiver.event_sink(session, "case_received", case.id,
                                    {"from_body": self.own_code})
            return case.id, case.register_no

    def _earlier_case(self, session: Session, parcel: _Parcel) -> Case | None:
        lapor_id = parcel.case.get("lapor_id")
        if lapor_id is not None:
            found = session.scalars(select(Case).where(Case.lapor_id == lapor_id)).first()
            if found is not None:
                return found
        earlier = session.scalars(select(InternalArrival.case_id).where(
            InternalArrival.from_body == self.own_code,
            InternalArrival.from_case_id == parcel.from_case_id)
            .order_by(InternalArrival.id.desc())).first()
        return session.get(Case, earlier) if earlier is not None else None

    def _new_case(self, session: Session, receiver: Receiver, src: dict[str, Any],
                  now: datetime) -> Case:
        r = receiver.settings.regency
        fmt = register.RegisterFormat(r.register_format, r.code, r.timezone)
        seq = register.allocate(session, fmt.scope(now))
        # A rahasia reporter is known to the sender's admin only: the receiver gets the
        # report, not the identity (an anonim one has none to give).
        reporter = None if src["is_anonymous"] or src["is_secret"] else src["reporter"]
        case = Case(
            register_no=fmt.render(seq, now, src["channel"]), channel=src["channel"],
            lapor_id=src["lapor_id"], tracking_id=src["tracking_id"], title=src["title"],
            content=src["content"], category=src["category"], location=src["location"],
            is_anonymous=src["is_anonymous"], is_secret=src["is_secret"], reporter=reporter,
            attachments=[], remote_status_code=src["remote_status_code"],
            remote_status_name=src["remote_status_name"],
            remote_disposition_id=src["remote_disposition_id"],
            remote_disposition_name=src["remote_disposition_name"],
            remote_updated_at=src["remote_updated_at"], filed_at=src["filed_at"],
            stage=receiver.workflow.initial_stage, received_at=now, updated_at=now,
            is_new=True, version=1, data={})
        session.add(case)
        session.flush()
        session.add(CaseEvent(case_id=case.id, at=now, side="system", actor="bridge",
                              kind="received",
                              changes={"register_no": [None, case.register_no],
                                       "channel": [None, case.channel]}))
        return case

    @staticmethod
    def _copy_files(session: Session, case: Case,
                    files: Sequence[tuple[str, str, int, str, bytes]]
                    ) -> dict[str, tuple[str, int]]:
        """The sender's stored files copied to the receiver's case: {sender's attachment
        id: (name, receiver's file id)}. A file the case already has is not copied again."""
        have = {f.sha256: f for f in session.scalars(
            select(StoredFile).where(StoredFile.case_id == case.id))}
        out: dict[str, tuple[str, int]] = {}
        for old_id, name, size, mime, content in files:
            digest = hashlib.sha256(content).hexdigest()
            stored = have.get(digest)
            if stored is None:
                stored = StoredFile(case_id=case.id, name=name, mime=mime, size=size,
                                    sha256=digest, content=content)
                session.add(stored)
                session.flush()
                have[digest] = stored
            out[old_id] = (stored.name, stored.id)
        return out

    def _mark_delivered(self, forward_id: int, case_id: int, register_no: str,
                        snapshot: dict[str, Any]) -> None:
        now = self.clock()
        with self.sessions() as session, session.begin():
            row = session.get(InternalForward, forward_id)
            if row is None or row.status != PENDING:
                return
            row.status = DELIVERED
            row.delivered_at = now
            row.attempts += 1
            row.last_error = None
            row.next_attempt_at = None
            row.remote_case_id = case_id
            row.remote_register_no = register_no
            row.snapshot = snapshot
            session.add(CaseEvent(case_id=row.case_id, at=now, side="system", actor="bridge",
                                  kind="internal_forward_delivered",
                                  changes={"to": [None, row.to_body],
                                           "remote_register_no": [None, register_no]}))

    def _retry_later(self, forward_id: int, reason: str, result: ForwardRun) -> None:
        box = self.settings.outbox
        with self.sessions() as session, session.begin():
            row = session.get(InternalForward, forward_id)
            if row is None:
                return
            row.attempts += 1
            row.last_error = reason[:2000]
            if row.attempts >= box.max_attempts:
                row.status = DEAD
                row.next_attempt_at = None
                case = session.get(Case, row.case_id)
                if case is not None:
                    case.attention = (f"Penerusan ke {row.to_body} gagal dikirim: "
                                      f"{reason[:300]}")
                session.add(CaseEvent(case_id=row.case_id, at=self.clock(), side="system",
                                      actor="bridge", kind="internal_forward_dead",
                                      changes={"to": [None, row.to_body]}, note=reason[:2000]))
                result.dead += 1
            else:
                delay = min(box.backoff_max, box.backoff_initial * 2 ** (row.attempts - 1))
                row.next_attempt_at = self.clock() + timedelta(seconds=delay)
                result.retried += 1
        result.errors.append(f"forward #{forward_id}: {reason}")

    # -- following --------------------------------------------------------------------

    def follow(self, result: ForwardRun | None = None) -> ForwardRun:
        """Read each delivered forward's receiver case: keep its stage and answers on the
        row; a returned one reopens our case, an ended one stops being followed."""
        result = result or ForwardRun()
        with self.sessions() as session:
            rows = [(r.id, r.to_body, r.remote_case_id, dict(r.payload or {}), r.snapshot)
                    for r in session.scalars(select(InternalForward).where(
                        InternalForward.status == DELIVERED).order_by(InternalForward.id))]
        for forward_id, to_body, remote_case_id, payload, old in rows:
            receiver = self.receivers(to_body)
            if receiver is None or remote_case_id is None:
                continue
            try:
                snap = receiver_snapshot(receiver, remote_case_id)
                if snap.get("returned"):
                    self._take_back(forward_id, payload, snap)
                    result.returned += 1
                elif snap.get("ended") or snap.get("missing"):
                    self._end(forward_id, FINISHED, snap)
                    result.finished += 1
                elif snap != old:
                    self._end(forward_id, DELIVERED, snap)
            except Exception as exc:
                log.warning("internal forward %s: cannot follow the receiver: %s",
                            forward_id, exc)
                result.errors.append(f"forward #{forward_id}: {type(exc).__name__}: {exc}")
        return result

    def _end(self, forward_id: int, status: str, snap: dict[str, Any]) -> None:
        with self.sessions() as session, session.begin():
            row = session.get(InternalForward, forward_id)
            if row is None or row.status != DELIVERED:
                return
            row.snapshot = snap
            if status != DELIVERED:
                row.status = status
                row.ended_at = self.clock()

    def _take_back(self, forward_id: int, payload: dict[str, Any], snap: dict[str, Any]
                   ) -> None:
        """The receiver gave the case back: our case returns to the queue (the profile's
        reopen rule from the forwarded stage, else the stage it was forwarded from)."""
        with self.sessions() as session:
            row = session.get(InternalForward, forward_id)
            if row is None or row.status != DELIVERED:
                return
            case_id, to_body = row.case_id, row.to_body
        who = str(payload.get("to_name") or to_body)
        note = f"Dikembalikan oleh {who}: {snap.get('return_note') or '-'}"
        back_to = str(payload.get("from_stage") or self.actions.rules.initial_stage)

        def apply(session: Session, case: Case, move: Move
                  ) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.forwarded_to
            case.forwarded_to = None
            case.closed_at = None
            case.attention = note[:1000]
            fwd = session.get(InternalForward, forward_id)
            if fwd is not None:
                fwd.status = RETURNED
                fwd.snapshot = snap
                fwd.ended_at = self.clock()
            # The receiver told LAPOR! when it gave the case back: nothing more from us.
            return {"forwarded_to": [old, None]}, []

        def fallback(case: Case, role: str) -> Move | None:
            return _move("reopen", case.stage, back_to, role, "Dikembalikan oleh tujuan")

        self.actions._act(case_id, "reopen", SYSTEM, apply, note=note,
                          fields={"reason": note}, fallback=fallback)


def _merged_attachments(current: list[dict[str, Any]] | None,
                        sent: list[dict[str, Any]] | None,
                        names: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """The sender's attachment list with its local files pointing at the receiver's
    copies; what the receiver had already is kept, nothing twice."""
    out = [dict(a) for a in current or []]
    seen = {str(a.get("id")) for a in out}
    for att in sent or []:
        item = dict(att)
        old = str(item.get("id"))
        if old in names:
            item["id"] = f"local-{names[old][1]}"
        if str(item["id"]) not in seen:
            seen.add(str(item["id"]))
            out.append(item)
    return out


def _move(action: str, stage: str, to: str, role: str, label: str) -> Move:
    rule = Rule(key=action, action=action, from_stages=(stage,), to=to, pending=STAY,
                roles=frozenset({role}), requires=(), step=None, document=None, label=label)
    return Move(action, stage, to, rule)


# -- the receiver gives a case back ------------------------------------------------------


def return_stage(workflow: Workflow) -> str:
    """Where a returned case goes in the receiver's workflow: the stage its forward to an
    OPD leads to (the case is passed on, to the sender), else its first terminal stage."""
    for action in ("forward_opd", "forward_body"):
        for rule in workflow.rules:
            if rule.action == action and rule.to in workflow.stages \
                    and workflow.is_terminal(rule.to):
                return rule.to
    for name, stage in workflow.stages.items():
        if stage.terminal:
            return name
    raise ActionNotAllowed("the workflow has no terminal stage to return a case to")


def return_roles(workflow: Workflow) -> frozenset[str]:
    """Who may give a case back: whoever decides a forward (kewenangan), and the bridge."""
    roles: set[str] = {SYSTEM.role}
    for rule in workflow.rules:
        if rule.action in ("forward_opd", "forward_body"):
            roles |= rule.roles
    return frozenset(roles)


def open_arrival(sessions: sessionmaker[Session], case_id: int) -> str | None:
    """The body the case came from, while it may still be given back; else None."""
    with sessions() as session:
        arrival = session.scalars(select(InternalArrival).where(
            InternalArrival.case_id == case_id).order_by(InternalArrival.id.desc())).first()
        if arrival is None or arrival.returned_at is not None:
            return None
        return arrival.from_body


def return_forward(actions: CaseActions, ref: str | int, actor: Actor, note: str,
                   expected_version: int | None = None) -> ActionResult:
    """The receiver says the case is not its own: it leaves the receiver's queue and goes
    back to the sender's (whose cycle reopens it, see :meth:`InternalForwarding.follow`).
    LAPOR! is told as the receiver's API profile says, addressed to the sender."""
    if not note.strip():
        raise BadInput("say why the case is given back")
    rules = actions.rules
    with actions.sessions() as session:
        case = find_case(session, ref)
        arrival = session.scalars(select(InternalArrival).where(
            InternalArrival.case_id == case.id).order_by(InternalArrival.id.desc())).first()
        if arrival is None or arrival.returned_at is not None:
            raise ActionNotAllowed(f"{case.register_no} did not come from another body of "
                                   "this deployment (or was given back already)")
        arrival_id = arrival.id
    target = return_stage(rules)
    roles = return_roles(rules)
    mode = profile_of(actions.settings.lapor, actions.settings.source).internal_forward

    def fallback(case: Case, role: str) -> Move | None:
        if case.stage in rules.stages and rules.is_terminal(case.stage):
            return None
        if role not in roles:
            return None
        return _move(RETURN_ACTION, case.stage, target, role, "Kembalikan kepada pengirim")

    def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
        row = session.get(InternalArrival, arrival_id)
        assert row is not None
        row.returned_at = actions.clock()
        row.return_note = note.strip()
        origin = dict((case.data or {}).get("origin") or {})
        old = case.forwarded_to
        case.forwarded_to = row.from_body
        rows: list[OutboxRow] = []
        institution = origin.get("institution_id")
        if institution and actions._on_lapor(session, case):
            text = (f"Pengaduan ini dikembalikan kepada {origin.get('name') or row.from_body} "
                    f"karena bukan kewenangan {actions.settings.regency.name}.\n"
                    f"Alasan: {note.strip()}")
            if mode == "disposition":
                rows = [OutboxRow(kind="forward", payload={"institution_id": int(institution),
                                                           "reason": text})]
            else:
                rows = actions._followup_row(session, case, text,
                                             institution_to_id=int(institution),
                                             purpose=RETURN_ACTION)
        return {"forwarded_to": [old, row.from_body]}, rows

    try:
        return actions._act(ref, RETURN_ACTION, actor, apply, note=note.strip(),
                            expected_version=expected_version, fallback=fallback)
    except ActionNotAllowed as exc:
        raise ActionNotAllowed(f"{exc} (giving a case back needs one of the roles "
                               f"{', '.join(sorted(roles))} and an open stage)") from None


__all__ = [
    "DEAD", "DELIVERED", "FINISHED", "PENDING", "RETURNED", "ForwardRun", "ForwardView",
    "InternalForwardHook", "InternalForwarding", "Receiver", "ReceiverLookup",
    "forward_views", "open_arrival", "receiver_snapshot", "return_forward", "return_roles", "return_stage",
]
