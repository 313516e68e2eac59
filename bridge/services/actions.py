"""Staff actions on cases: the only writer of local case state.

Every action runs in one transaction that (1) checks the action is allowed in the case's
stage for the actor's role, (2) changes the case, (3) appends a history entry naming the
actor and (4) queues in the outbox whatever LAPOR! must learn. Either all of it is
committed or none of it: nothing is half-written.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import OpdSettings, Settings
from bridge.errors import BridgeError
from bridge.services import enclosures
from bridge.services.queue import CaseNotFound, find_case
from bridge.services.receipt import BadReceipt, check_received_at
from bridge.store import register
from bridge.store.models import Case, CaseEvent, OutboxRow, StoredFile, utcnow
from bridge.workflow.errors import WorkflowError
from bridge.workflow.profile import Move, Workflow


class ActionError(BridgeError):
    """An action that cannot be done as asked; the message says why, for staff and logs."""


class ActionNotAllowed(ActionError):
    pass


class StaleCase(ActionError):
    """Another user moved the case on since this action was prepared."""


class BadInput(ActionError):
    pass


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    #: Other roles the account holds, tried in order when the workflow does not let
    #: ``role`` do the action (an acting official, Plt, who did not say which role).
    also: tuple[str, ...] = ()


#: The bridge itself, acting where the profile gives role ``sistem`` an action.
SYSTEM = Actor("Sistem (otomatis)", "sistem")


#: Called inside the action's transaction: (session, event name, case id, data).
EventSink = Callable[[Session, str, int, dict[str, Any]], None]
#: Called inside the action's transaction once the change is flushed (deadlines refresh).
DeadlineHook = Callable[[Session, Case], None]
#: Queues a notification inside the action's transaction: (session, kind, case,
#: recipient roles, context). Runtime wires it to the deployment's renderer.
NoticeHook = Callable[[Session, str, Case, list[str], dict[str, Any]], None]
#: Called inside a forward's transaction: (session, case, target, tembusan, reason,
#: actor). When the target is a body of the same deployment it records the delivery and
#: says what LAPOR! is told ("followup" or "disposition"); None for any other target.
#: See bridge/services/internal_forward.py.
ForwardHook = Callable[[Session, Case, OpdSettings, list[str], str, "Actor"], str | None]


@dataclass(frozen=True)
class Upload:
    """A file given with an action (read from disk by the CLI, from a form by the web)."""

    name: str
    content: bytes
    mime: str | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> Upload:
        p = Path(path)
        if not p.is_file():
            raise BadInput(f"attachment not found: {p}")
        return cls(name=p.name, content=p.read_bytes(), mime=mimetypes.guess_type(p.name)[0])


@dataclass
class ActionResult:
    case_id: int
    register_no: str
    action: str
    stage: str
    version: int
    outbox_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class NewCase:
    """A complaint that came by letter, box, phone, walk-in, e-mail, SMS or fax."""

    title: str
    content: str
    channel: str
    category: str | None = None
    location: str | None = None
    reporter: dict[str, Any] | None = None
    is_anonymous: bool = False
    is_secret: bool = False
    received_at: datetime | None = None
    attachments: Sequence[Upload] = ()


LOCAL_CHANNELS = ("surat", "kotak", "telepon", "langsung", "email", "sms", "fax", "website")


# Compared and shown as the object it is: its fields are live objects (sessions, a client).
@dataclass(eq=False, repr=False)
class CaseActions:
    """Every staff action of the SOPs. Used by the CLI, the web page and plugins alike."""

    sessions: sessionmaker[Session]
    settings: Settings
    rules: Workflow
    _: KW_ONLY
    event_sink: EventSink | None = None
    after_change: DeadlineHook | None = None
    clock: Callable[[], datetime] = utcnow
    notice: NoticeHook | None = None
    internal_forward: ForwardHook | None = None
    register_format: register.RegisterFormat = field(init=False, repr=False)

    def __post_init__(self) -> None:
        r = self.settings.regency
        self.register_format = register.RegisterFormat(r.register_format, r.code, r.timezone)

    # -- the one path every action takes ---------------------------------------------

    def _act(
        self,
        ref: str | int,
        action: str,
        actor: Actor,
        apply: Callable[[Session, Case, Move], tuple[dict[str, Any], list[OutboxRow]]],
        *,
        note: str | None = None,
        expected_version: int | None = None,
        step: str | None = None,
        document: str | None = None,
        fields: dict[str, Any] | None = None,
        fallback: Callable[[Case, str], Move | None] | None = None,
    ) -> ActionResult:
        with self.sessions() as session, session.begin():
            case = self._load(session, ref)
            if expected_version is not None and case.version != expected_version:
                raise StaleCase(
                    f"case {case.register_no} was changed by someone else (now at stage "
                    f"{case.stage!r}); reload it and try again"
                )
            done = approvals_done(case, document) if document else ()
            roles = (actor.role, *actor.also)
            move, refusal = None, None
            for role in roles:
                try:
                    move = self.rules.plan(action, case.stage, role, step=step,
                                           document=document, approvals_done=done,
                                           fields=fields or {})
                    break
                except WorkflowError as exc:
                    refusal = refusal or exc
            # What the action may still do where the profile's rules do not reach
            # (an overdue escalation, a reclassification).
            if move is None and fallback is not None:
                for role in roles:
                    move = fallback(case, role)
                    if move is not None:
                        break
            if move is None:
                raise ActionNotAllowed(f"{case.register_no}: {refusal}") from refusal
            next_stage = move.to_stage
            old_stage = case.stage
            changes, rows = apply(session, case, move)
            if next_stage != old_stage:
                case.stage = next_stage
                changes["stage"] = [old_stage, next_stage]
            now = self.clock()
            case.updated_at = now
            case.version += 1
            session.add(CaseEvent(case_id=case.id, at=now, side="local", actor=actor.name,
                                  kind=action, changes=_jsonable(changes), note=note))
            if self.after_change is not None:
                session.flush()
                self.after_change(session, case)
            for row in rows:
                row.case_id = case.id
                row.actor = actor.name
                row.created_at = now
                session.add(row)
            session.flush()
            if self.event_sink is not None:
                self.event_sink(session, "case_changed", case.id,
                                {"changes": _jsonable(changes), "side": "local"})
            return ActionResult(case.id, case.register_no, action, case.stage, case.version,
                                [r.id for r in rows])

    def _load(self, session: Session, ref: str | int) -> Case:
        case = find_case(session, ref)
        if session.get_bind().dialect.name == "postgresql":
            # Serialise concurrent actions on one case (SQLite's BEGIN IMMEDIATE already does).
            session.refresh(case, with_for_update=True)
        return case

    # -- outbox rows -----------------------------------------------------------------

    def _on_lapor(self, session: Session, case: Case) -> bool:
        """Whether LAPOR! knows (or will know) this case, so updates should go there."""
        if case.lapor_id is not None:
            return True
        return session.scalar(
            select(OutboxRow.id).where(OutboxRow.case_id == case.id, OutboxRow.kind == "create")
        ) is not None

    def _followup_row(self, session: Session, case: Case, content: str,
                      files: Sequence[StoredFile] = (), institution_to_id: int | None = None,
                      purpose: str = "followup") -> list[OutboxRow]:
        if not self._on_lapor(session, case):
            return []
        lapor = self.settings.lapor
        payload = {
            "content": content,
            "institution_to_id": institution_to_id or lapor.institution_id,
            "file_ids": [f.id for f in files],
            "purpose": purpose,
        }
        return [OutboxRow(kind="followup", payload=payload)]

    def _ending_row(self, session: Session, case: Case, move: Move, note: str | None
                    ) -> list[OutboxRow]:
        """The follow-up the profile words for ``action`` (close, archive, satisfied,
        not_satisfied, reopen), with its template code and rating; none when the
        profile sends nothing or LAPOR! does not know the case."""
        post = self.rules.lapor_message(move.action, move.from_stage, case.register_no, note)
        if post is None:
            return []
        rows = self._followup_row(session, case, post.content, purpose=move.action)
        for row in rows:
            row.payload = {**row.payload, "template_code": post.template_code,
                           "rating": post.rating}
        return rows

    def _store_files(self, session: Session, case: Case, uploads: Sequence[Upload]) -> list[StoredFile]:
        limit = self.settings.outbox.max_attachment_bytes
        stored = []
        for up in uploads:
            if not up.content:
                raise BadInput(f"attachment {up.name!r} is empty")
            if len(up.content) > limit:
                raise BadInput(
                    f"attachment {up.name!r} is {len(up.content):,} bytes, over the limit of "
                    f"{limit:,} (outbox.max_attachment_bytes)"
                )
            f = StoredFile(case_id=case.id, name=up.name[:255],
                           mime=up.mime or "application/octet-stream", size=len(up.content),
                           sha256=hashlib.sha256(up.content).hexdigest(), content=up.content)
            session.add(f)
            stored.append(f)
        session.flush()
        return stored

    def _store_scans(self, session: Session, case: Case, uploads: Sequence[Upload]
                     ) -> list[StoredFile]:
        """Scans and signed copies: PDF or images only (judged by content, as on the web
        page), within the attachment limit."""
        checked = []
        for up in uploads:
            problem = enclosures.scan_problem(up.name, up.content)
            if problem is not None:
                raise BadInput(problem)
            name, mime = enclosures.stored_as(up.name, up.content)
            checked.append(Upload(name, up.content, mime))
        return self._store_files(session, case, checked)

    def _letter(self, session: Session, case: Case, kind: str | None, actor: Actor, *,
                answer: str | None = None, reason: str | None = None
                ) -> tuple[str | None, list[StoredFile]]:
        """The number of the document ``kind`` and, where the profile attaches documents,
        its PDF stored for the follow-up, with the scans signed with it. Rendered in the
        action's transaction: a failure writes nothing and uses no number up."""
        if kind is None:
            return None, []
        # Lazy: the documents service loads the templates and the PDF library.
        from bridge.documents import DocumentError
        from bridge.services.documents import Documents

        data = case.data or {}
        signed = str((data.get("documents") or {}).get(kind) or "") or None
        if not self.rules.profile.attach_documents and (
                signed or kind in self.rules.profile.approvals):
            return signed, []
        try:
            doc = Documents(self.sessions, self.settings, self.rules).render(
                session, case, kind, now=self.clock(), actor=actor.name, answer=answer,
                reason=reason)
        except DocumentError as exc:
            raise BadInput(f"{case.register_no}: {exc}") from exc
        if not self.rules.profile.attach_documents:
            return doc.number, []
        files = self._store_files(session, case, [Upload(doc.filename, doc.content,
                                                         "application/pdf")])
        scans = enclosures.signed_scans(data, kind)
        if scans:
            files += list(session.scalars(select(StoredFile).where(
                StoredFile.id.in_(scans), StoredFile.case_id == case.id)))
        return doc.number, files

    # -- intake ----------------------------------------------------------------------

    def new_case(self, new: NewCase, actor: Actor) -> ActionResult:
        """Enter a complaint that came through another channel; push it up when configured."""
        if not new.title.strip() or not new.content.strip():
            raise BadInput("a case needs a title and a content")
        if new.channel not in LOCAL_CHANNELS:
            raise BadInput(f"unknown channel {new.channel!r}; expected one of "
                           f"{', '.join(LOCAL_CHANNELS)}")
        now = self.clock()
        received = new.received_at or now
        regency = self.settings.regency
        try:
            check_received_at(received, now, regency.timezone, regency.started_on)
        except BadReceipt as exc:
            raise BadInput(str(exc)) from None
        with self.sessions() as session, session.begin():
            seq = register.allocate(session, self.register_format.scope(received))
            case = Case(
                register_no=self.register_format.render(seq, received, new.channel),
                channel=new.channel, title=new.title.strip()[:500], content=new.content,
                category=new.category, location=new.location,
                reporter=None if new.is_anonymous else new.reporter,
                is_anonymous=new.is_anonymous, is_secret=new.is_secret,
                stage="received", received_at=received, updated_at=now, is_new=True,
                version=1, attachments=[],
            )
            session.add(case)
            session.flush()
            files = self._store_files(session, case, new.attachments)
            case.attachments = [{"id": f"local-{f.id}", "name": f.name, "size": f.size,
                                 "mime": f.mime} for f in files]
            session.add(CaseEvent(case_id=case.id, at=now, side="local", actor=actor.name,
                                  kind="received", changes={"register_no": [None, case.register_no],
                                                            "channel": [None, new.channel]}))
            rows: list[OutboxRow] = []
            if self.settings.outbox.push_local_cases:
                rows.append(OutboxRow(case_id=case.id, kind="create", actor=actor.name,
                                      created_at=now, payload={"file_ids": [f.id for f in files]}))
                session.add_all(rows)
            if self.after_change is not None:
                session.flush()
                self.after_change(session, case)
            session.flush()
            if self.event_sink is not None:
                self.event_sink(session, "case_received", case.id, {})
            return ActionResult(case.id, case.register_no, "new", case.stage, case.version,
                                [r.id for r in rows])

    # -- the SOP actions ---------------------------------------------------------------

    def register(self, ref: str | int, actor: Actor, note: str | None = None,
                 expected_version: int | None = None) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            case.is_new = False
            return {}, []

        return self._act(ref, "register", actor, apply, note=note,
                         expected_version=expected_version)

    def files_complete(self, ref: str | int, actor: Actor, note: str | None = None,
                       expected_version: int | None = None) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.files_complete_at
            case.files_complete_at = self.clock()
            return {"files_complete_at": [old, case.files_complete_at]}, []

        return self._act(ref, "files_complete", actor, apply, note=note,
                         expected_version=expected_version)

    def return_incomplete(self, ref: str | int, actor: Actor, missing: str,
                          expected_version: int | None = None) -> ActionResult:
        if not missing.strip():
            raise BadInput("say what is missing from the files")

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            text = ("Berkas pengaduan Anda belum lengkap. Mohon dilengkapi: "
                    f"{missing.strip()}")
            return {}, self._followup_row(session, case, text, purpose="return_incomplete")

        return self._act(ref, "return_incomplete", actor, apply, note=missing,
                         expected_version=expected_version, fields={"missing": missing})

    def classify(self, ref: str | int, actor: Actor, severity: str, note: str | None = None,
                 expected_version: int | None = None) -> ActionResult:
        """Classify (or reclassify) the case. The class must be one of the profile's; a
        classified case may be reclassified in any handling stage. In the same
        transaction the class's team (its handler roles) is recorded on the case; a
        change to a class that needs a higher authority (``escalate_to``) escalates the
        case at once, as the system, telling that authority."""
        severity = severity.strip()
        if not severity:
            raise BadInput("a classification is required")
        classes = self.rules.profile.classes
        if classes and severity not in classes:
            raise BadInput(f"unknown class {severity!r}; known classes: "
                           f"{', '.join(classes)}")
        before: list[str | None] = []

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.severity
            before.append(old)
            case.severity = severity
            changes: dict[str, Any] = {"severity": [old, severity]}
            cls = classes.get(severity)
            if cls is not None:
                data = dict(case.data or {})
                old_team = data.get("team")
                data["team"] = list(cls.handlers)
                if old_team != data["team"]:
                    changes["team"] = [old_team, data["team"]]
                case.data = data
            return changes, []

        def again(case: Case, role: str) -> Move | None:
            if case.severity is None:
                return None
            return self.rules.reclassification(case.stage, role)

        result = self._act(ref, "classify", actor, apply, note=note,
                           expected_version=expected_version, fields={"severity": severity},
                           fallback=again)
        cls = classes.get(severity)
        old_cls = classes.get(before[0] or "") if before else None
        if cls is not None and cls.escalate_to and (
                old_cls is None or old_cls.escalate_to != cls.escalate_to):
            escalated = self._class_escalation(result.case_id, cls.escalate_to, cls.label)
            if escalated is not None:
                return escalated
        return result

    def _notify(self, session: Session, kind: str, case: Case, roles: list[str],
                context: dict[str, Any]) -> None:
        if self.notice is not None and roles:
            session.flush()
            self.notice(session, kind, case, roles, context)

    def _class_escalation(self, case_id: int, to_role: str, label: str
                          ) -> ActionResult | None:
        """Escalate to the authority a class needs, unless the case already went there;
        ``None`` when it did, or when the profile does not let the system escalate here
        (the deadline sweep then flags it)."""
        with self.sessions() as session:
            case = session.get(Case, case_id)
            if case is None or any(isinstance(e, dict) and e.get("level") == to_role
                                   for e in (case.data or {}).get("escalations") or []):
                return None
        reason = f"{label} memerlukan kewenangan {self.rules.role_label(to_role)}"
        try:
            return self.escalate(case_id, SYSTEM, to_role, reason, overdue=True, tell=True)
        except ActionError:
            return None

    def dispose(self, ref: str | int, actor: Actor, to: str, note: str | None = None,
                expected_version: int | None = None) -> ActionResult:
        """Internal disposition (to a unit or a person): stays inside our body."""
        if not to.strip():
            raise BadInput("say to whom the case is disposed")

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.assigned_to
            case.assigned_to = to.strip()
            return {"assigned_to": [old, case.assigned_to]}, []

        return self._act(ref, "dispose", actor, apply, note=note,
                         expected_version=expected_version, fields={"unit": to})

    def forward(self, ref: str | int, actor: Actor, to: str, tembusan: Sequence[str] = (),
                note: str | None = None, expected_version: int | None = None,
                attachments: Sequence[Upload] = ()) -> ActionResult:
        """Forward a case outside our authority, with a tembusan (copy) list.

        To an OPD of the regency: a disposition on LAPOR! to its institution, as a
        follow-up carrying the surat penerusan (its number quoted) and the scans. To
        another body: LAPOR!'s "bukan wewenang", whose reason quotes the number; the
        letter and scans go first as a follow-up on our side. No reporter identity is
        ever written into what is sent: a rahasia reporter stays known to our admin only.
        """
        opd = self._opd(to)
        copies = [t.strip() for t in tembusan if t.strip()]
        action = "forward_body" if opd.kind == "body" else "forward_opd"
        reason = (note or "").strip()

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.forwarded_to
            case.forwarded_to = opd.code
            data = dict(case.data or {})
            data["forward"] = {"to": opd.code, "name": opd.name, "tembusan": copies}
            case.data = data
            scans = self._store_scans(session, case, attachments)
            rows: list[OutboxRow] = []
            changes: dict[str, Any] = {"forwarded_to": [old, opd.code],
                                       "tembusan": [None, copies]}
            if scans:
                changes["files"] = [None, [f.name for f in scans]]
            # A body of this deployment: its queue gets the case; LAPOR! hears of it as
            # the API profile says.
            tell = (self.internal_forward(session, case, opd, copies, reason, actor)
                    if self.internal_forward is not None else None)
            disposition = opd.kind == "body" if tell is None else tell == "disposition"
            if opd.lapor_institution_id is None or not self._on_lapor(session, case):
                return changes, rows
            kind = enclosures.forward_kind(self.rules, data)
            number, files = self._letter(session, case, kind, actor, reason=reason)
            line = enclosures.document_line(kind, number, bool(files), "Penerusan")
            if kind is not None:
                changes["document"] = [None, enclosures.document_line(kind, number, False)]
            files += scans
            text = forward_text(opd, copies, reason, line)
            if disposition:
                if files:
                    rows = self._followup_row(session, case, text, files,
                                              purpose="forward_letter")
                rows.append(OutboxRow(kind="forward", payload={
                    "institution_id": opd.lapor_institution_id, "reason": text}))
            else:
                rows = self._followup_row(session, case, text, files,
                                          institution_to_id=opd.lapor_institution_id,
                                          purpose="forward")
            return changes, rows

        fields = {"target": opd.code, "institution_id": opd.lapor_institution_id or opd.code,
                  "reason": reason}
        return self._act(ref, action, actor, apply, note=note, expected_version=expected_version,
                         fields=fields)

    def followup(self, ref: str | int, actor: Actor, text: str,
                 attachments: Sequence[Upload] = (), expected_version: int | None = None
                 ) -> ActionResult:
        """Post a tindak lanjut: what LAPOR! shows the complainant."""
        if not text.strip():
            raise BadInput("a follow-up needs a text")

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            files = self._store_files(session, case, attachments)
            rows = self._followup_row(session, case, text.strip(), files)
            return {"followup": [None, text.strip()[:200]],
                    "files": [None, [f.name for f in files]]}, rows

        return self._act(ref, "followup", actor, apply, expected_version=expected_version,
                         fields={"content": text})

    def approve(self, ref: str | int, actor: Actor, document: str,
                number: str | None = None, note: str | None = None,
                expected_version: int | None = None,
                attachments: Sequence[Upload] = ()) -> ActionResult:
        """Record the next approval step (paraf or tanda tangan) of a document's chain.

        Whose turn it is comes from the profile's approval chain; a numbered document
        (BAPP, surat jawaban) gets its number from the register at its last step unless
        one is given by hand. ``attachments``: scans or the signed copy (PDF or images),
        which go to LAPOR! with the document when it is delivered or forwarded.
        """
        if not document.strip():
            raise BadInput("name the document being approved")
        document = document.strip()

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            position = move.approval
            scans = self._store_scans(session, case, attachments)
            if position is None:  # the profile's approve rule names no chain
                return {"approval": [None, {"document": document, "by": actor.name}],
                        **({"files": [None, [f.name for f in scans]]} if scans else {})}, []
            data = dict(case.data or {})
            done = dict(data.get("approvals_done") or {})
            done[document] = [*done.get(document, []), position.role]
            data["approvals_done"] = done
            doc_number = self._document_number(session, case, document, number,
                                               position.assigns_number, actor)
            entry = {"document": document, "step": position.index + 1, "kind": position.kind,
                     "by": actor.name, "role": position.role, "at": self.clock().isoformat()}
            if scans:
                entry["file_ids"] = [f.id for f in scans]
                entry["files"] = [f.name for f in scans]
            if doc_number:
                entry["number"] = doc_number
                data["documents"] = {**data.get("documents", {}), document: doc_number}
            data["approvals"] = [*data.get("approvals", []), entry]
            case.data = data
            return {"approval": [None, entry]}, []

        return self._act(ref, "approve", actor, apply, note=note, document=document,
                         expected_version=expected_version, fields={"document": document})

    def answer_delivered(self, ref: str | int, actor: Actor, text: str,
                         expected_version: int | None = None,
                         attachments: Sequence[Upload] = ()) -> ActionResult:
        """The answer (letter or BAPP) reached the complainant; LAPOR! gets it as follow-up.

        The follow-up quotes the signed answer document's number (or says there is no
        numbered letter) and carries its PDF, the signed scans and ``attachments``."""
        if not text.strip():
            raise BadInput("give the answer's text (what LAPOR! shows the complainant)")
        answer = text.strip()

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            scans = self._store_scans(session, case, attachments)
            changes: dict[str, Any] = {}
            if scans:
                changes["files"] = [None, [f.name for f in scans]]
            if not self._on_lapor(session, case):
                return changes, []
            kind = enclosures.answer_kind(self.rules, case.data or {})
            number, files = self._letter(session, case, kind, actor, answer=answer)
            line = enclosures.document_line(kind, number, bool(files))
            if kind is not None:
                changes["document"] = [None, enclosures.document_line(kind, number, False)]
            content = enclosures.with_line(line, answer, number)
            return changes, self._followup_row(session, case, content, [*files, *scans],
                                               purpose="answer")

        return self._act(ref, "answer_delivered", actor, apply,
                         expected_version=expected_version)

    def satisfaction(self, ref: str | int, actor: Actor, satisfied: bool,
                     note: str | None = None, expected_version: int | None = None
                     ) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            data = dict(case.data or {})
            data["satisfied"] = satisfied
            case.data = data
            return {"satisfied": [None, satisfied]}, self._ending_row(session, case, move, note)

        return self._act(ref, "satisfied" if satisfied else "not_satisfied", actor, apply,
                         note=note, expected_version=expected_version,
                         fields={"reason": note})

    def escalate(self, ref: str | int, actor: Actor, level: str, reason: str,
                 expected_version: int | None = None, *, overdue: bool = False,
                 tell: bool = False) -> ActionResult:
        """Send the case up to ``level``. With ``overdue`` (the deadline sweep), a case in
        an open stage the profile's escalate rules do not start from (one nobody
        registered) is escalated all the same, staying in its stage."""
        if not level.strip():
            raise BadInput("name the escalation level")

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            data = dict(case.data or {})
            # A new list, not an in-place append: the JSON column only sees reassignment.
            data["escalations"] = [*data.get("escalations", []),
                                   {"level": level, "reason": reason,
                                    "at": self.clock().isoformat()}]
            case.data = data
            old = case.assigned_to
            case.assigned_to = level
            if tell:
                reached = int((case.data or {}).get("escalation_level") or 0)
                self._notify(session, "escalated", case, [level],
                             {"level": max(1, reached), "to_role": level, "reason": reason})
            return {"escalated_to": [old, level]}, []

        return self._act(ref, "escalate", actor, apply, note=reason,
                         expected_version=expected_version, fields={"reason": reason},
                         fallback=(lambda case, role: self.rules.overdue_escalation(
                             case.stage, role)) if overdue else None)

    def close(self, ref: str | int, actor: Actor, note: str | None = None,
              expected_version: int | None = None) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            case.closed_at = self.clock()
            return ({"closed_at": [None, case.closed_at]},
                    self._ending_row(session, case, move, note))

        return self._act(ref, "close", actor, apply, note=note,
                         expected_version=expected_version, fields={"reason": note})

    def archive(self, ref: str | int, actor: Actor, note: str | None = None,
                expected_version: int | None = None) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            return {}, self._ending_row(session, case, move, note)

        return self._act(ref, "archive", actor, apply, note=note,
                         expected_version=expected_version, fields={"reason": note})

    def reopen(self, ref: str | int, actor: Actor, note: str | None = None,
               expected_version: int | None = None) -> ActionResult:
        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            old = case.closed_at
            case.closed_at = None
            return {"closed_at": [old, None]}, self._ending_row(session, case, move, note)

        return self._act(ref, "reopen", actor, apply, note=note,
                         expected_version=expected_version, fields={"reason": note})

    def record_step(self, ref: str | int, actor: Actor, step: str, note: str | None = None,
                    expected_version: int | None = None) -> ActionResult:
        """A recorded handling step of the profile (study, permit-data check, field
        inspection, coordination meeting, drafting the answer...). Stays local: LAPOR!
        hears of the outcome through a follow-up or the answer."""

        def apply(session: Session, case: Case, move: Move) -> tuple[dict[str, Any], list[OutboxRow]]:
            data = dict(case.data or {})
            steps = [*data.get("steps", []), {"step": step, "by": actor.name,
                                             "at": self.clock().isoformat(), "note": note}]
            data["steps"] = steps
            # A new or revised draft starts its approval chains again.
            data["approvals_done"] = {}
            case.data = data
            return {"step": [None, step]}, []

        return self._act(ref, "followup", actor, apply, note=note, step=step,
                         expected_version=expected_version,
                         fields={"content": note, "reason": note})

    # -- helpers -----------------------------------------------------------------------

    def _document_number(self, session: Session, case: Case, document: str,
                         by_hand: str | None, assigns: bool, actor: Actor) -> str | None:
        """A signed document's number: typed by hand, else from the outgoing-letter
        register that counts its kind ([documents.registers]), else from its own counter
        (the approval chain's number_format). Taken in the action's transaction."""
        from bridge.documents import DocumentError, numbering
        from bridge.documents.settings import documents_settings

        docs = documents_settings(self.settings)
        now = self.clock()
        tz = self.settings.regency.timezone
        subject = numbering.case_subject(case.id, document)
        try:
            if by_hand is not None:
                numbering.record_manual(session, docs, document, subject, by_hand, at=now,
                                        tz=tz, case_id=case.id, actor=actor.name)
                return by_hand
            if not assigns:
                return None
            shared = numbering.issue(session, docs, document, subject, at=now, tz=tz,
                                     case_id=case.id, actor=actor.name)
        except DocumentError as exc:
            raise BadInput(f"{case.register_no}: {exc}") from exc
        if shared is not None:
            return shared
        local = now.astimezone(self.register_format.tz)
        seq = register.allocate(session, f"doc:{document}:{local.year}")
        return self.rules.format_document_number(
            document, seq, code=self.settings.regency.code, year=local.year, month=local.month)

    def _opd(self, code: str) -> OpdSettings:
        opd = self.settings.opd(code.strip())
        if opd is None:
            known = ", ".join(o.code for o in self.settings.opds) or "none configured"
            raise BadInput(f"unknown OPD {code!r} (known: {known})")
        return opd

    def case_exists(self, ref: str | int) -> bool:
        with self.sessions() as session:
            try:
                find_case(session, ref)
            except CaseNotFound:
                return False
            return True


def approvals_done(case: Case, document: str) -> tuple[str, ...]:
    """Roles that approved ``document`` since its current draft."""
    done = ((case.data or {}).get("approvals_done") or {}).get(document, [])
    return tuple(str(r) for r in done)


def forward_text(opd: OpdSettings, tembusan: Sequence[str], reason: str,
                 letter: str | None = None) -> str:
    """What LAPOR! and the complainant read about a forward (Bahasa Indonesia);
    ``letter``: the sentence naming the surat penerusan."""
    lines = [f"Pengaduan ini diteruskan kepada {opd.name} sesuai kewenangannya."]
    if letter:
        lines.append(letter)
    if reason:
        lines.append(f"Alasan: {reason}")
    if tembusan:
        lines.append("Tembusan: " + "; ".join(tembusan))
    return "\n".join(lines)


def _jsonable(changes: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    return {k: conv(v) for k, v in changes.items()}
