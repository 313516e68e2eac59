"""What an uploaded file is, judged by its first bytes: uploads (the web page's and the scans
staff attach on approve, deliver and forward) are PDF and images only.

The name and the browser's Content-Type are the uploader's word; the content is not. A
file is stored with the type its content shows, and its name gets the matching extension,
so that ``laporan.html`` holding a PNG goes to LAPOR! as ``laporan.html.png``, image/png.
"""

from __future__ import annotations

from pathlib import PurePath

#: (magic bytes at offset 0, MIME type, extensions).
_KINDS: tuple[tuple[bytes, str, tuple[str, ...]], ...] = (
    (b"%PDF-", "application/pdf", (".pdf",)),
    (b"\x89PNG\r\n\x1a\n", "image/png", (".png",)),
    (b"\xff\xd8\xff", "image/jpeg", (".jpg", ".jpeg")),
    (b"GIF87a", "image/gif", (".gif",)),
    (b"GIF89a", "image/gif", (".gif",)),
)

ACCEPTED = "PDF atau gambar (JPEG, PNG, GIF, WebP)"


def sniff(content: bytes) -> tuple[str, tuple[str, ...]] | None:
    """``(mime, extensions)`` of a PDF or image, or None for anything else."""
    for magic, mime, exts in _KINDS:
        if content.startswith(magic):
            return mime, exts
    if content[:4] == b"RIFF" and content[8:12] == b"WEBP":
        return "image/webp", (".webp",)
    return None


def checked(name: str, content: bytes) -> tuple[str, str] | None:
    """``(name, mime)`` to store the upload under, or None when it is not accepted."""
    kind = sniff(content)
    if kind is None:
        return None
    mime, exts = kind
    if PurePath(name).suffix.lower() not in exts:
        name = name + exts[0]
    return name[-255:], mime
