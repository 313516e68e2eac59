"""Numbers from the office's outgoing-letter registers (agenda surat keluar).

A register is one counter per year that several document kinds share, e.g. the surat
jawaban, the surat penerusan and the recap's surat pengantar all take the next
``{seq}/{code}/{unit}/{month_roman}/{year}``.

A number is taken from the counter and written into the agenda (``outgoing_letters``) in
the caller's transaction, before anything that carries it leaves the bridge (a PDF is
rendered from the committed number, or inside the same transaction). So a failed attempt
uses up no number and leaves no trace, and a number that was ever handed out is in the
agenda for good: the agenda's unique keys refuse it a second time, and the counter steps
over a number that someone typed by hand.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.documents import DocumentError
from bridge.documents.settings import DocumentsSettings
from bridge.store import register
from bridge.store.models import OutgoingLetter

#: Counter scopes of the outgoing-letter registers (apart from the case register's).
SCOPE_PREFIX = "letters"


def case_subject(case_id: int, kind: str) -> str:
    return f"case:{case_id}:{kind}"


def issued(session: Session, subject: str) -> OutgoingLetter | None:
    return session.scalars(select(OutgoingLetter).where(OutgoingLetter.subject == subject)
                           ).first()


def issue(session: Session, cfg: DocumentsSettings, kind: str, subject: str, *, at: datetime,
          tz: str, case_id: int | None = None, actor: str | None = None) -> str | None:
    """The number of ``subject`` (e.g. ``case:12:surat_jawaban``): the one it already has,
    else the next of the register that counts ``kind``; None when no register counts it.

    Runs in the caller's transaction (see the module's note on failed attempts).
    """
    found = issued(session, subject)
    if found is not None:
        return found.number
    entry = cfg.register_for(kind)
    if entry is None:
        return None
    name, reg = entry
    year = at.astimezone(ZoneInfo(tz)).year
    scope = f"{SCOPE_PREFIX}:{name}:{year}"
    while True:
        seq = register.allocate(session, scope)
        number = reg.render(seq, at, kind, tz)
        if _holder(session, number) is None:
            break
        # Typed by hand earlier: that number is taken, the counter moves past it.
    session.add(OutgoingLetter(register=name, year=year, seq=seq, number=number, kind=kind,
                               subject=subject, case_id=case_id, issued_at=at,
                               issued_by=actor))
    session.flush()
    return number


def record_manual(session: Session, cfg: DocumentsSettings, kind: str, subject: str,
                  number: str, *, at: datetime, tz: str, case_id: int | None = None,
                  actor: str | None = None) -> None:
    """Enter a number typed by hand into the agenda of ``kind``'s register (if any);
    refuses a number the agenda already holds for another document."""
    number = number.strip()
    holder = _holder(session, number)
    if holder is not None and holder.subject != subject:
        raise DocumentError(
            f"number {number!r} was already given to {holder.kind} ({holder.subject})",
            f"Nomor {number} sudah dipakai untuk dokumen lain ({holder.kind}).")
    entry = cfg.register_for(kind)
    if entry is None or holder is not None:
        return
    mine = issued(session, subject)
    if mine is not None:
        raise DocumentError(f"{subject} already has number {mine.number!r}",
                            f"Dokumen ini sudah bernomor {mine.number}.")
    session.add(OutgoingLetter(register=entry[0], year=at.astimezone(ZoneInfo(tz)).year,
                               seq=None, number=number, kind=kind, subject=subject,
                               case_id=case_id, issued_at=at, issued_by=actor))
    session.flush()


def _holder(session: Session, number: str) -> OutgoingLetter | None:
    return session.scalars(select(OutgoingLetter).where(OutgoingLetter.number == number)
                           ).first()


__all__ = ["case_subject", "issue", "issued", "record_manual"]
