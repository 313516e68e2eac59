"""The recap as a PDF that can be sent as it is: surat pengantar + follow-ups per case."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bridge.documents.render import write_atomic
from bridge.reports.recap import Recap
from bridge.reports.render import file_stem
from bridge.reports.settings import Recipient
from bridge.runtime import Runtime
from bridge.services.documents import Documents, RecapLetter


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


__all__ = ["write_recap_pdf"]
