"""Templates to PDF: Jinja2 writes the small HTML subset fpdf2 lays out.

fpdf2 is pure Python (with Pillow and fontTools, both wheels on PyPI), so a fresh machine
renders documents after a plain ``pip install``; HTML-and-CSS engines such as WeasyPrint
need Pango and Cairo from the system.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from fpdf import FPDF
from fpdf.errors import FPDFException
from markupsafe import Markup

from bridge.documents import DocumentError
from bridge.documents.settings import DocumentsSettings

TEMPLATES = Path(__file__).parent / "templates"
_FONT = "dokumen"
#: Typographic characters the built-in Helvetica lacks, and their plain forms.
_PLAIN = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ",
                        "\u2022": "-"})
_UNDEFINED = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'")


def environment(templates_dir: Path | None, unicode_font: bool) -> jinja2.Environment:
    """Templates from ``templates_dir`` first (the regency's), then the package's."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir is not None:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.FileSystemLoader(str(TEMPLATES)))

    def finalize(value: Any) -> Any:
        if isinstance(value, Markup):  # already escaped (a macro's output)
            return Markup(_printable(str(value), unicode_font))
        return _printable(value, unicode_font) if isinstance(value, str) else value

    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders),
                              autoescape=jinja2.select_autoescape(["html", "j2"]),
                              undefined=jinja2.StrictUndefined, finalize=finalize,
                              trim_blocks=True, lstrip_blocks=True)


def _printable(text: str, unicode_font: bool) -> str:
    # Zero-width and other format characters (LAPOR!'s text may carry them) print as
    # boxes in a PDF font; drop them.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    if unicode_font:
        return text
    text = unicodedata.normalize("NFKC", text).translate(_PLAIN)
    out = []
    for ch in text:
        if ord(ch) < 256:
            out.append(ch)
        else:  # é stays (Latin-1); ā becomes a, anything else ?
            base = unicodedata.normalize("NFKD", ch)[0]
            out.append(base if ord(base) < 256 else "?")
    return "".join(out)


def render_html(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render template ``name``; an unknown field or a broken template is a DocumentError."""
    try:
        return env.get_template(name).render(**context)
    except jinja2.UndefinedError as exc:
        found = _UNDEFINED.search(str(exc))
        field = next((g for g in found.groups() if g), str(exc)) if found else str(exc)
        known = ", ".join(sorted(k for k in context if not k.startswith("_")))
        raise DocumentError(
            f"template {name}: unknown field {field!r} (fields: {known})",
            f"Templat {name} memakai kolom yang tidak dikenal: {field}. "
            f"Kolom yang tersedia: {known}.") from None
    except jinja2.TemplateSyntaxError as exc:
        where = f"{exc.filename or exc.name or name}, line {exc.lineno}"
        raise DocumentError(f"template {where}: {exc.message}",
                            f"Templat {where} tidak sah: {exc.message}") from None
    except jinja2.TemplateNotFound as exc:
        raise DocumentError(f"template {exc.name} not found",
                            f"Templat {exc.name} tidak ditemukan.") from None


def html_to_pdf(pages: Sequence[str], cfg: DocumentsSettings, *, title: str,
                font: Path | None = None, font_bold: Path | None = None,
                logo: Path | None = None) -> bytes:
    """Lay out each HTML page (a new page each) on A4; returns the PDF's bytes."""
    pdf = FPDF(format="A4")
    pdf.set_margins(25, 15, 20)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_title(title)
    pdf.set_creator("lapor-bridge")
    family = "helvetica"
    try:
        if font is not None:
            pdf.add_font(_FONT, "", str(font))
            pdf.add_font(_FONT, "B", str(font_bold or font))
            pdf.add_font(_FONT, "I", str(font))
            pdf.add_font(_FONT, "BI", str(font_bold or font))
            family = _FONT
    except (OSError, FPDFException, RuntimeError) as exc:
        raise DocumentError(f"documents.font: cannot load {font}: {exc}",
                            f"Huruf dokumen ({font}) tidak dapat dimuat: {exc}") from None
    for i, html in enumerate(pages):
        pdf.add_page()
        pdf.set_font(family, size=11)
        if i == 0 and logo is not None:
            try:
                pdf.image(str(logo), x=25, y=14, h=20)
            except (OSError, FPDFException, RuntimeError, ValueError) as exc:
                raise DocumentError(f"documents.kop.logo: cannot load {logo}: {exc}",
                                    f"Logo kop surat ({logo}) tidak dapat dimuat.") from None
        try:
            pdf.write_html(html, font_family=family, li_prefix_color=(0, 0, 0))
        except (NotImplementedError, FPDFException, ValueError, KeyError) as exc:
            raise DocumentError(f"{title}: the template's HTML cannot be laid out: {exc}",
                                f"Templat {title} memakai HTML yang tidak dapat dicetak: "
                                f"{exc}") from None
    return bytes(pdf.output())


def write_atomic(path: Path, content: bytes, mode: int = 0o600) -> None:
    """Never half a file at ``path`` (a recap read or mailed while it is written, a PDF
    downloaded): write beside it with ``mode``, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(content)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["TEMPLATES", "environment", "html_to_pdf", "render_html", "write_atomic"]
