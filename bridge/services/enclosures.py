"""What travels with a delivered answer or a forward: the signed document as PDF, its
number quoted in the follow-up LAPOR! shows, and the scans staff attach.

Pure choices here (which document, what the text says, which scans); the actions render
and store inside their own transaction, so a failure leaves nothing written and no
number used up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.documents import KINDS
from bridge.documents.filetypes import checked
from bridge.workflow.profile import Workflow

#: Documents that may carry the answer, in no order: the one signed last goes.
ANSWER_KINDS = ("bapp", "surat_jawaban")
FORWARD_KIND = "surat_penerusan"


def scan_problem(name: str, content: bytes) -> str | None:
    """Why a scan cannot be taken (one line), or None: scans are PDF or images, judged by
    their content as on the web page."""
    if not content:
        return f"attachment {name!r} is empty"
    if checked(name, content) is None:
        return (f"attachment {name!r} is not a PDF or an image (JPEG, PNG, GIF, WebP); "
                "the type is judged by the content, not the name")
    return None


def stored_as(name: str, content: bytes) -> tuple[str, str]:
    """``(name, mime)`` of an accepted scan (see :func:`scan_problem`)."""
    found = checked(name[:240], content)
    assert found is not None, "checked by scan_problem first"
    return found


def _signed(rules: Workflow, data: Mapping[str, Any], kind: str) -> bool:
    """Whether ``kind``'s approval chain was completed on the case (its current round)."""
    if kind not in rules.profile.approvals:
        return False
    if ((data.get("documents") or {}).get(kind)):
        return True
    last = len(rules.profile.approvals[kind].steps)
    return any(a.get("document") == kind and a.get("step") == last
               for a in _current_round(data, kind))


def _current_round(data: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    entries = [a for a in data.get("approvals") or [] if isinstance(a, Mapping)
               and a.get("document") == kind]
    starts = [i for i, a in enumerate(entries) if a.get("step") == 1]
    return entries[starts[-1]:] if starts else entries


def answer_kind(rules: Workflow, data: Mapping[str, Any]) -> str | None:
    """The document that carries the answer: the answer document (BAPP or surat jawaban)
    whose chain was completed last; None when none was signed (an answer given on the
    spot, or a profile without such a chain: the text then says there is no letter)."""
    signed = [k for k in ANSWER_KINDS if _signed(rules, data, k)]
    if not signed:
        return None
    order = [a.get("document") for a in data.get("approvals") or [] if isinstance(a, Mapping)]
    return max(signed, key=lambda k: max((i for i, d in enumerate(order) if d == k),
                                         default=-1))


def forward_kind(rules: Workflow, data: Mapping[str, Any]) -> str | None:
    """The surat penerusan: the signed one where the profile has a chain for it, else the
    letter printed at the forward itself."""
    if FORWARD_KIND in rules.profile.approvals and not _signed(rules, data, FORWARD_KIND):
        return None
    return FORWARD_KIND


def signed_scans(data: Mapping[str, Any], kind: str) -> list[int]:
    """Stored-file ids of the scans attached while ``kind`` was approved (its current
    round): the signed copy goes with the document."""
    return [int(i) for a in _current_round(data, kind) for i in a.get("file_ids") or []]


def document_line(kind: str | None, number: str | None, attached: bool,
                  what: str = "Jawaban") -> str:
    """The sentence of the follow-up that names the document (Bahasa Indonesia)."""
    if kind is None:
        return f"{what} ini disampaikan tanpa surat bernomor."
    label = KINDS[kind]
    if number:
        return f"{label} nomor {number}" + (" (terlampir)." if attached else ".")
    if attached:
        return f"{label} terlampir (tanpa nomor surat)."
    return f"{what} ini disampaikan tanpa surat bernomor."


def with_line(line: str, text: str, number: str | None) -> str:
    """``line`` before the staff's text, unless the text already quotes the number."""
    if number and number in text:
        return text
    return f"{line}\n{text}" if text else line


__all__ = ["ANSWER_KINDS", "FORWARD_KIND", "answer_kind", "document_line", "forward_kind",
           "scan_problem", "signed_scans", "stored_as", "with_line"]
