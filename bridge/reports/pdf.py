"""The recap as a PDF that can be sent as it is: surat pengantar + follow-ups per case."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from bridge.app.deployment import Deployment
from bridge.documents.render import write_atomic
from bridge.reports.recap import Recap
from bridge.reports.render import file_stem
from bridge.reports.settings import Recipient
from bridge.runtime import Runtime
from bridge.services.documents import CaseSource, Documents, RecapLetter
from bridge.workflow import build_workflow

if TYPE_CHECKING:  # bridge.reports.pemda builds on the recap jobs, which write PDFs
    from bridge.reports.pemda import BodyRecap


def write_recap_pdf(rt: Runtime, recap: Recap, out_dir: str | Path,
                    recipients: Sequence[Recipient], *, now: datetime,
                    mode: int = 0o600) -> Path:
    """Write ``<stem>.pdf`` beside the HTML and CSV files; returns its path."""
    letter = RecapLetter(Documents(rt.sessions, rt.settings, rt.workflow))
    doc = letter.make(recap, [r.salutation for r in recipients], now=now)
    path = Path(out_dir) / f"{file_stem(recap, rt.settings.regency.code)}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, doc.content, mode)
    return path


def write_pemda_recap_pdf(dep: Deployment, total: Recap, parts: Sequence[BodyRecap],
                          sessions: sessionmaker[Session], out_dir: str | Path,
                          recipients: Sequence[Recipient], *, now: datetime,
                          mode: int = 0o600) -> Path:
    """The Pemda's recap as a PDF for the Sekda and the Bupati: the surat pengantar of the
    deployment (its kop surat, signer and register, in its own database ``sessions``),
    then every body's complaints with their follow-ups, read in each body's store."""
    settings = dep.settings
    docs = Documents(sessions, settings, build_workflow(settings.section("workflow")))
    sources = [CaseSource(dep.runtime(part.code).sessions, dep.runtime(part.code).settings,
                          tuple(part.recap.lines)) for part in parts]
    doc = RecapLetter(docs).make(total, [r.salutation for r in recipients], now=now,
                                 sources=sources)
    path = Path(out_dir) / f"{file_stem(total, settings.regency.code)}.pdf"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, doc.content, mode)
    return path


__all__ = ["write_pemda_recap_pdf", "write_recap_pdf"]
