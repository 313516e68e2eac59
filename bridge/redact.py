"""Keeping secrets out of text: every log line and error message passes through here."""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import SecretStr


class Scrubber:
    """Replaces every occurrence of a secret (case-insensitively) with ``***``.

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
        pattern = "|".join(re.escape(v.get_secret_value()) for v in self._variants)
        return re.sub(pattern, "***", text, flags=re.IGNORECASE)

    def __repr__(self) -> str:
        return "<scrubber>"
