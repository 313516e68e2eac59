"""Making a document: what it says (from the case and its history), its number, its PDF.

One transaction per document: the number is taken (if the document's kind has one), the
template rendered and the PDF laid out before the commit, so a template with an unknown
field, a missing font or any other failure leaves no number used up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bridge.config import Settings
from bridge.documents import CASE_KINDS, KINDS, DocumentError, numbering
from bridge.documents.render import environment, html_to_pdf, render_html
from bridge.documents.settings import (
    DocumentsSettings,
    Signer,
    city_of,
    documents_settings,
    resolve_path,
)
from bridge.services.deadlines import FOLLOWUP_KINDS
from bridge.services.queue import find_case
from bridge.store.models import Case, CaseEvent, OutboxRow
from bridge.workflow.calendar import format_tanggal
from bridge.workflow.profile import KIND_LABELS, Workflow

CHANNELS = {
    "lapor": "SP4N-LAPOR!", "surat": "surat", "kotak": "kotak pengaduan",
    "telepon": "telepon", "langsung": "datang langsung", "email": "e-mail", "sms": "SMS",
    "fax": "faksimile", "website": "situs web",
}
ANONYMOUS = "Pelapor (anonim)"
SECRET = "Pelapor (identitas dirahasiakan)"
#: Documents that go outside the office: never a rahasia reporter's name.
_LEAVE_THE_OFFICE = ("surat_penerusan", "lembar_disposisi", "surat_pengantar")
_DISPOSITIONS = {"dispose": "assigned_to", "forward_opd": "forwarded_to",
                 "forward_body": "forwarded_to", "escalate": "escalated_to"}


@dataclass(frozen=True)
class Document:
    kind: str
    filename: str
    content: bytes
    number: str | None


def check_kind(kind: str, allowed: Sequence[str] = CASE_KINDS) -> str:
    if kind not in allowed:
        raise DocumentError(
            f"unknown document kind {kind!r}; known: {', '.join(allowed)}",
            f"Jenis dokumen {kind!r} tidak dikenal. Yang tersedia: "
            + ", ".join(KINDS[k] for k in allowed) + ".")
    return kind


class Documents:
    """Makes the SOP's documents of one deployment."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings,
                 workflow: Workflow) -> None:
        self.sessions = sessions
        self.settings = settings
        self.workflow = workflow
        self.cfg: DocumentsSettings = documents_settings(settings)
        self.tz = settings.regency.timezone
        templates = resolve_path(settings, self.cfg.templates_dir) if self.cfg.templates_dir \
            else None
        self.env = environment(templates, unicode_font=self.cfg.font is not None)

    # -- common pieces -----------------------------------------------------------------

    def _day(self, value: datetime | None) -> str:
        return format_tanggal(value, ZoneInfo(self.tz), weekday=False) if value else "-"

    def _base(self, now: datetime) -> dict[str, Any]:
        kop = self.cfg.kop
        lines = kop.lines or [self.settings.regency.name.upper()]
        return {"kop": {"lines": lines, "address": kop.address},
                "place_date": f"{city_of(self.settings, self.cfg)}, {self._day(now)}",
                "today": self._day(now),
                "today_long": format_tanggal(now, ZoneInfo(self.tz)),
                "regency": self.settings.regency.name}

    def _pdf(self, kind: str, pages: Sequence[str], register_no: str) -> bytes:
        cfg = self.cfg
        return html_to_pdf(
            pages, cfg, title=f"{KINDS[kind]} {register_no}".strip(),
            font=resolve_path(self.settings, cfg.font) if cfg.font else None,
            font_bold=resolve_path(self.settings, cfg.font_bold) if cfg.font_bold else None,
            logo=resolve_path(self.settings, cfg.kop.logo) if cfg.kop.logo else None)

    # -- one case ----------------------------------------------------------------------

    def case_document(self, ref: str | int, kind: str, *, now: datetime,
                      reveal_secret: bool = False, actor: str | None = None) -> Document:
        """The PDF of ``kind`` for case ``ref``. Raises DocumentError or CaseNotFound."""
        check_kind(kind)
        with self.sessions() as session, session.begin():
            return self.render(session, find_case(session, ref), kind, now=now,
                               reveal_secret=reveal_secret, actor=actor)

    def render(self, session: Session, case: Case, kind: str, *, now: datetime,
               reveal_secret: bool = False, actor: str | None = None,
               answer: str | None = None, reason: str | None = None) -> Document:
        """The PDF of ``kind`` inside the caller's transaction (an action that sends it to
        LAPOR!): a number it takes is rolled back with the action. ``answer`` and
        ``reason``: the text being delivered or the forward's reason, which the action
        has not written to the history yet."""
        number = self._case_number(session, case, kind, now, actor)
        context = self.case_context(session, case, kind, now=now, number=number,
                                    reveal_secret=reveal_secret)
        if answer is not None:
            context["answer"] = answer
        if reason is not None:
            context["forward"] = {**context["forward"], "reason": _short(reason, 300)}
        html = render_html(self.env, f"{kind}.html.j2", context)
        content = self._pdf(kind, [html], case.register_no)
        safe = "".join(ch if ch.isalnum() else "-" for ch in case.register_no)
        return Document(kind, f"{kind}-{safe}.pdf", content, number)

    def _case_number(self, session: Session, case: Case, kind: str, now: datetime,
                     actor: str | None) -> str | None:
        signed = ((case.data or {}).get("documents") or {}).get(kind)
        if signed:
            return str(signed)
        subject = numbering.case_subject(case.id, kind)
        if kind in self.workflow.profile.approvals:
            # A document with an approval chain is numbered when it is signed, not when
            # a draft is printed.
            found = numbering.issued(session, subject)
            return found.number if found else None
        return numbering.issue(session, self.cfg, kind, subject, at=now, tz=self.tz,
                               case_id=case.id, actor=actor)

    def reporter_text(self, case: Case, kind: str, reveal_secret: bool) -> str:
        if case.is_anonymous:
            return ANONYMOUS
        if case.is_secret and (not reveal_secret or kind in _LEAVE_THE_OFFICE):
            return SECRET
        name = (case.reporter or {}).get("name") if isinstance(case.reporter, dict) else None
        return f"Sdr. {name}" if name else "Pelapor"

    def case_context(self, session: Session, case: Case, kind: str, *, now: datetime,
                     number: str | None, reveal_secret: bool) -> dict[str, Any]:
        wf = self.workflow
        data = case.data or {}
        events = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                      .order_by(CaseEvent.id)))
        approvals = [a for a in data.get("approvals", []) if a.get("document") == kind]
        # Only the current round of the chain (a revised draft starts it again).
        rounds = [i for i, a in enumerate(approvals) if a.get("step") == 1]
        if rounds:
            approvals = approvals[rounds[-1]:]
        signer = self._signer(kind, approvals)
        forward = data.get("forward") or {}
        own = list(forward.get("tembusan") or []) if kind == "surat_penerusan" else []
        copies = [*own, *self.cfg.tembusan.get(kind, [])]
        severity = case.severity
        classes = wf.profile.classes
        received_by = next((e.actor for e in events if e.kind == "received" and e.actor),
                           None)
        return {
            **self._base(now),
            "kind": kind, "kind_label": KINDS[kind],
            "number": number or ("(konsep, belum bernomor)" if kind in wf.profile.approvals
                                 else "-"),
            "reporter": self.reporter_text(case, kind, reveal_secret),
            "case": {
                "register_no": case.register_no,
                "tracking_id": case.tracking_id or (str(case.lapor_id) if case.lapor_id
                                                    else ""),
                "title": case.title, "summary": _short(case.content, 600),
                "received": self._day(case.received_at),
                "channel": CHANNELS.get(case.channel, case.channel),
                "category": case.category or "", "location": case.location or "",
                "stage": wf.stage_label(case.stage),
                "severity": classes[severity].label if severity in classes
                else (severity or ""),
                "deadline": self._day(case.deadline_at) if case.deadline_at else "",
                "attachments_count": len(case.attachments or []),
            },
            "attachments": [str(a.get("name") or a.get("id") or "") for a in
                            case.attachments or [] if isinstance(a, Mapping)],
            "answer": self._answer(session, case),
            "approvals": [{"step": a.get("step"), "kind": KIND_LABELS.get(a.get("kind", ""),
                                                                          a.get("kind", "")),
                           "role": wf.role_label(str(a.get("role", ""))),
                           "name": a.get("by", ""),
                           "date": self._day(_when(a.get("at")))} for a in approvals],
            "signer": signer,
            "tembusan": copies,
            "forward": {"name": forward.get("name") or case.forwarded_to or "-",
                        "code": forward.get("to") or case.forwarded_to or "",
                        "reason": _forward_reason(events)},
            "dispositions": self._dispositions(events),
            "received_by": received_by or "Petugas",
        }

    def _signer(self, kind: str, approvals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        chain = self.workflow.profile.approvals.get(kind)
        if chain is not None:
            last = chain.steps[-1]
            title = self.workflow.role_label(last.role)
            signed = [a for a in approvals if a.get("kind") == "tanda_tangan"
                      and a.get("step") == len(chain.steps)]
            name = str(signed[-1].get("by")) if signed else "(belum ditandatangani)"
            nip = None
            cfg_signer = self.cfg.signer
            if cfg_signer and cfg_signer.name and signed and cfg_signer.name in name:
                nip = cfg_signer.nip
            return {"title": title, "name": name, "nip": nip}
        signer = self.cfg.signer or Signer(title="Kepala " + self.settings.regency.name)
        return signer.model_dump()

    def _answer(self, session: Session, case: Case) -> str:
        rows = list(session.scalars(select(OutboxRow).where(
            OutboxRow.case_id == case.id, OutboxRow.kind == "followup").order_by(OutboxRow.id)))
        for purpose in ("answer", "followup"):
            texts = [r.payload.get("content") for r in rows
                     if r.payload.get("purpose", "followup") == purpose]
            if texts and texts[-1]:
                return str(texts[-1])
        return "Pengaduan Saudara telah kami tindak lanjuti sesuai ketentuan yang berlaku."

    def _dispositions(self, events: Sequence[CaseEvent]) -> list[dict[str, str]]:
        out = []
        for e in events:
            field = _DISPOSITIONS.get(e.kind)
            if field is None:
                continue
            change = (e.changes or {}).get(field) or [None, None]
            to = change[1] if isinstance(change, list) and len(change) == 2 else None
            label = self.settings.opd(str(to)) if to else None
            out.append({"date": self._day(e.at), "by": e.actor or "-",
                        "to": label.name if label else str(to or "-"),
                        "note": _short(e.note or "", 200)})
        return out


class RecapLetter:
    """The recap as it is sent: the surat pengantar with its signature block, then the
    follow-ups of each complaint (register number, date, a short summary; no reporter)."""

    def __init__(self, documents: Documents) -> None:
        self.docs = documents

    def make(self, recap: Any, recipients: Sequence[str], *, now: datetime,
             actor: str | None = None, sources: Sequence[CaseSource] | None = None
             ) -> Document:
        """``recap``: a :class:`bridge.reports.recap.Recap`. Numbered from the register
        that counts ``surat_pengantar`` (one number per period, kept on reprint).

        ``sources``: where the follow-ups of the recap's complaints are read, each store
        with the lines that are its own (a Pemda's recap sums several bodies' stores);
        by default this store, for every line."""
        docs = self.docs
        follow = self._followups(sources or [CaseSource(docs.sessions, docs.settings,
                                                        tuple(recap.lines))], recap.as_of)
        with docs.sessions() as session, session.begin():
            number = numbering.issue(session, docs.cfg, "surat_pengantar",
                                     f"recap:{recap.period.code}", at=now, tz=docs.tz,
                                     actor=actor)
            cases = []
            for line in recap.lines:
                cases.append({
                    "register_no": line.register_no, "title": _short(line.title, 120),
                    "received": docs._day(line.received_at), "channel": line.channel,
                    "stage": line.stage, "status": _STATUS.get(line.status, line.status),
                    "deadline": docs._day(line.deadline_at) if line.deadline_at else "",
                    "followups": [{"date": docs._day(at), "summary": text}
                                  for at, text in follow.get(id(line), [])]})
            context = {
                **docs._base(now),
                "number": number or "-",
                "recipients": list(recipients) or ["Kepala Daerah"],
                "recap": {"title": recap.title, "office": recap.office,
                          "period": recap.period.label,
                          "figures": [(label, count) for _, label, count in
                                      recap.summary_rows()]},
                "signer": (docs.cfg.signer or Signer(
                    title="Kepala " + recap.office)).model_dump(),
                "tembusan": docs.cfg.tembusan.get("surat_pengantar", []),
                "cases": cases,
            }
            pages = [render_html(docs.env, "surat_pengantar.html.j2", context),
                     render_html(docs.env, "lampiran_rekap.html.j2", context)]
            content = docs._pdf("surat_pengantar", pages, recap.period.label)
        return Document("surat_pengantar", "", content, number)

    @staticmethod
    def _followups(sources: Sequence[CaseSource], as_of: datetime
                   ) -> dict[int, list[tuple[datetime, str]]]:
        """Each line's follow-ups (by ``id(line)``), read in the store the line is from."""
        out: dict[int, list[tuple[datetime, str]]] = {}
        for source in sources:
            with source.sessions() as session:
                by_register = {c.register_no: c for c in session.scalars(select(Case).where(
                    Case.register_no.in_([line.register_no for line in source.lines])))}
                for line in source.lines:
                    case = by_register.get(line.register_no)
                    if case is not None:
                        out[id(line)] = followup_summaries(session, case, as_of,
                                                           source.settings)
        return out


@dataclass(frozen=True)
class CaseSource:
    """A store and the recap lines that are its complaints (see :meth:`RecapLetter.make`)."""

    sessions: sessionmaker[Session]
    settings: Settings
    lines: Sequence[Any]


_STATUS = {"tepat_waktu": "selesai tepat waktu", "terlambat": "selesai melewati batas waktu",
           "proses": "masih dalam proses", "proses_lewat": "dalam proses, melewati batas waktu"}


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _forward_reason(events: Sequence[CaseEvent]) -> str:
    found = [e.note for e in events if e.kind in ("forward_opd", "forward_body") and e.note]
    return _short(found[-1], 300) if found else ""


def followup_summaries(session: Session, case: Case, as_of: datetime,
                       settings: Settings) -> list[tuple[datetime, str]]:
    """(time, short text) of each follow-up of ``case`` up to ``as_of``, for the recap.

    An anonim or rahasia reporter's name is blanked out of the texts.
    """
    events = session.scalars(select(CaseEvent).where(
        CaseEvent.case_id == case.id, CaseEvent.at <= as_of).order_by(CaseEvent.id))
    hide = (case.is_anonymous or case.is_secret) and isinstance(case.reporter, dict)
    names = [str(v) for k, v in (case.reporter or {}).items()
             if hide and v and k in ("name", "phone", "email", "address", "ktp")
             and len(str(v)) > 2]
    out = []
    for e in events:
        changes = e.changes or {}
        if e.kind not in FOLLOWUP_KINDS or changes.get("step"):
            continue
        if e.kind == "followup":
            value = changes.get("followup")
            text = str(value[1]) if isinstance(value, list) and len(value) == 2 else (
                e.note or "Tindak lanjut")
        elif e.kind == "answer_delivered":
            text = "Jawaban disampaikan kepada pelapor"
        elif e.kind == "forward_opd":
            to = changes.get("forwarded_to") or [None, None]
            opd = settings.opd(str(to[1])) if isinstance(to, list) and to[1] else None
            text = "Diteruskan kepada " + (opd.name if opd else str(to[1] if to else "-"))
        else:
            text = "Berkas dikembalikan untuk dilengkapi" + (f": {e.note}" if e.note else "")
        for name in names:
            text = text.replace(name, "(pelapor)")
        out.append((e.at, _short(text, 160)))
    return out


__all__ = ["Document", "Documents", "RecapLetter", "check_kind", "followup_summaries"]
