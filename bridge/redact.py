"""Keeping secrets out of text: every log line and error message passes through here.

Order matters: a secret is masked *before* a text is cut short. Cutting first leaves a
prefix of the secret ("b3arer-S3CRET-valu...") that no longer matches the whole value.
And a text may arrive already cut (a body read only in part, a message the server itself
shortened), so the edges of a text, and the spot before each ellipsis, are also checked
for a piece of a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import SecretStr

#: Shortest piece of a secret masked at an edge. A shorter one cannot be told from
#: ordinary text (masking every trailing "ab" would mangle text, and show which letters
#: a secret begins with); it gives away at most 3 characters of a credential.
PARTIAL_MIN = 4

#: Where a text was cut short (what follows, such as the quote of a repr, may stay).
_CUT = re.compile(r"\.\.\.|\u2026")


class Scrubber:
    """Replaces every occurrence of a secret (case-insensitively) with ``***``, and every
    piece of one (:data:`PARTIAL_MIN` characters or more) at an edge of the text or just
    before an ellipsis.

    A GUID token is also scrubbed without its braces, since LAPOR! might echo it so. The
    values stay wrapped in :class:`SecretStr` (a compiled pattern would show them in its
    repr); ``re`` caches the compiled pattern, so building it per call costs nothing.
    """

    def __init__(self, secrets: Iterable[SecretStr | None]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if secret is None:
                continue
            value = secret.get_secret_value()
            # Too short to be a real credential; scrubbing it would mangle ordinary text.
            if len(value) < 4:
                continue
            variants.add(value)
            inner = value.strip("{}")
            if len(inner) >= 8:
                variants.add(inner)
        ordered = sorted(variants, key=len, reverse=True)
        self._variants = tuple(SecretStr(v) for v in ordered)

    def __call__(self, text: str) -> str:
        if not self._variants:
            return text
        values = [v.get_secret_value() for v in self._variants]
        pattern = "|".join(re.escape(v) for v in values)
        text = re.sub(pattern, "***", text, flags=re.IGNORECASE)
        return self._mask_pieces(text, values)

    def excerpt(self, text: str, limit: int, *, tail: str = "...") -> str:
        """``text`` on one line, secrets masked, then cut to ``limit`` characters."""
        text = " ".join(self(text).split())
        if len(text) <= limit:
            return text
        # Every whole secret is gone already; what the cut can leave is a piece of one
        # that was not whole to begin with (a text that came cut short).
        return self(text[: max(0, limit - len(tail))] + tail)

    def _mask_pieces(self, text: str, values: list[str]) -> str:
        # Ends before every ellipsis and at the end of the text: a head of a secret.
        ends = [m.start() for m in _CUT.finditer(text)] + [len(text)]
        for end in reversed(ends):
            size = _longest(text, end, values, head=True)
            if size:
                text = text[: end - size] + "***" + text[end:]
        size = _longest(text, 0, values, head=False)
        if size:
            text = "***" + text[size:]
        return text

    def __repr__(self) -> str:
        return "<scrubber>"


def _longest(text: str, at: int, values: list[str], *, head: bool) -> int:
    """Length of the longest piece of a secret ending at ``at`` that is the secret's head
    (``head``), or starting at ``at`` that is its tail; 0 if none of PARTIAL_MIN or more."""
    best = 0
    for value in values:
        top = min(len(value) - 1, at if head else len(text) - at)
        for size in range(top, max(best, PARTIAL_MIN - 1), -1):
            piece = text[at - size : at] if head else text[at : at + size]
            part = value[:size] if head else value[-size:]
            if piece.lower() == part.lower():
                best = size
                break
    return best
