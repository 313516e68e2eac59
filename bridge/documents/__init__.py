"""The SOP's documents as PDF: surat jawaban, BAPP, surat penerusan, lembar disposisi,
tanda terima and the recap's surat pengantar, from Jinja2 templates a regency can replace,
numbered from the office's outgoing-letter registers (agenda surat keluar).

Layering: reads the store, config and workflow; writes only the agenda of outgoing letters
(never a case), so the services, the command line, the web page and the reports may use it.
"""

from __future__ import annotations

from bridge.errors import BridgeError

#: Every document kind, with its Indonesian name.
KINDS: dict[str, str] = {
    "surat_jawaban": "Surat Jawaban",
    "bapp": "Berita Acara Penyelesaian Pengaduan",
    "surat_penerusan": "Surat Penerusan Pengaduan",
    "lembar_disposisi": "Lembar Disposisi",
    "tanda_terima": "Tanda Terima Pengaduan",
    "surat_pengantar": "Surat Pengantar Rekapitulasi",
}
#: Kinds made for one case (the surat pengantar goes with a recap).
CASE_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "surat_pengantar")


class DocumentError(BridgeError):
    """A document that cannot be made: ``str()`` is one line in English for logs and the
    command line, :attr:`pesan` the same in Bahasa Indonesia for the web page."""

    def __init__(self, message: str, pesan: str) -> None:
        super().__init__(message)
        self.pesan = pesan


__all__ = ["CASE_KINDS", "KINDS", "DocumentError"]
