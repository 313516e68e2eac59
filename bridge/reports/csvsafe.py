"""CSV that a spreadsheet opens as text: the one place every CSV the bridge writes goes
through (the recap files and the staff page's ``/rekap.csv``).

A cell turns into a formula when a spreadsheet opens the file if it starts like one:
``=``, ``+``, ``-``, ``@``, a tab or line break, their full-width forms, or any of these
after blanks or a quote. Such a cell gets a ``'`` in front. Plain numbers (``-5``,
``+6281...``, ``1,5``) and a lone ``-`` are left alone: a number is no formula, and the
``'`` would show in the cell.

The list separator is not always ``,``: Excel in the Indonesian locale splits on ``;``
and ignores our quoting while doing so (``k,"a;=1+1"`` becomes ``k,"a`` and ``=1+1"``).
So the same rule applies to every piece of a cell after a ``,``, ``;``, tab or line
break: ``a;=1+1`` is written ``a;'=1+1``, which is text however the file is split.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: What makes a spreadsheet read a cell as a formula (or a DDE call).
FORMULA_STARTS = frozenset("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20")
#: What may stand before a formula start and still let it run.
_LEADING = " \u00a0\""
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)*")
#: Where a spreadsheet may start a new cell (a list separator of any locale, a new row).
_SPLIT = re.compile(r"([,;\t\r\n])")
_NEEDS_QUOTES = re.compile(r'[,;"\t\r\n]')


def _guard(piece: str) -> str:
    if piece == "-" or _NUMBER.fullmatch(piece):
        return piece
    if piece.lstrip(_LEADING)[:1] in FORMULA_STARTS:
        return "'" + piece
    return piece


def safe_cell(value: object) -> str:
    """``value`` as cell text of which no piece can start a formula."""
    text = "" if value is None else str(value)
    if text == "-":
        return ""  # the page's placeholder for "none"; in a sheet an empty cell says it
    if _NUMBER.fullmatch(text):
        return text
    parts = _SPLIT.split(text)
    # parts alternates piece, separator, piece, ...: guard the pieces only.
    return "".join(p if i % 2 else _guard(p) for i, p in enumerate(parts))


def _field(text: str) -> str:
    if _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_text(rows: Iterable[Sequence[object]]) -> str:
    """The rows as CSV (comma-separated, CRLF, every cell through :func:`safe_cell`), with
    the byte-order mark Excel needs to read UTF-8."""
    lines = (",".join(_field(safe_cell(v)) for v in row) for row in rows)
    return "\ufeff" + "".join(line + "\r\n" for line in lines)
