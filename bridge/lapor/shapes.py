"""Reading LAPOR!'s JSON through an API profile: candidate paths, safe coercions, privacy.

:class:`Shapes` turns what LAPOR! sent into the bridge's own field names, trying each
field's candidate paths in the profile's order, and coerces the values it can read
safely: an ``{id, name}`` object where a text is expected gives its name, an object where
an id is expected gives its id, a nested reporter, attachment, institution or status log
is read through its own candidates. Flags (0/1/"0"/"1"/true) and times (ISO-8601 or
``d-m-Y H:i:s`` in Jakarta time) are read by the models' validators. What is left is
validated by :mod:`bridge.lapor.models`; nothing is guessed beyond this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bridge.lapor.api_profile import FIELD_KINDS, ApiProfile, split_path
from bridge.lapor.models import read_flag

#: A path that matched nothing.
MISSING: Any = object()

Path = tuple[str, ...]


def get_path(obj: Any, path: Path) -> Any:
    """The value at ``path`` in decoded JSON, or :data:`MISSING`."""
    value = obj
    for part in path:
        # dict first: decoded JSON is made of dicts, and the check against the Mapping
        # ABC costs several times more (this runs for every field of every item).
        if isinstance(value, (dict, Mapping)):
            value = value.get(part, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def _id_value(value: Any, shapes: Shapes) -> Any:
    if isinstance(value, Mapping):
        return value.get("id", value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _text_value(value: Any, shapes: Shapes) -> Any:
    # A category or location chosen by id comes back as an object: its name is the text.
    if isinstance(value, Mapping):
        name = shapes.first(value, "named", "name")
        return name if name is not MISSING else value
    return value


def _reporter_value(value: Any, shapes: Shapes) -> Any:
    if isinstance(value, Mapping):
        return shapes.normalize("reporter", value)
    if isinstance(value, str):
        return {"name": value}
    return value


def _named_value(value: Any, shapes: Shapes) -> Any:
    return shapes.normalize("named", value) if isinstance(value, Mapping) else value


def _list_of(kind: str) -> Callable[[Any, Shapes], Any]:
    def coerce(value: Any, shapes: Shapes) -> Any:
        if value is None:
            return []
        if isinstance(value, list):
            return [shapes.normalize(kind, v) if isinstance(v, Mapping) else v for v in value]
        return value
    return coerce


def _as_is(value: Any, shapes: Shapes) -> Any:
    return value


_COERCE: dict[str, dict[str, Callable[[Any, Shapes], Any]]] = {
    "complaint": {
        "id": _id_value, "disposition_id": _id_value,
        "category": _text_value, "location": _text_value, "channel": _text_value,
        "status_name": _text_value, "disposition_name": _text_value,
        "reporter": _reporter_value, "attachments": _list_of("attachment"),
        "status_logs": _list_of("status_log"),
    },
    "followup": {
        "id": _id_value, "complaint_id": _id_value,
        "institution_from": _named_value, "institution_to": _named_value,
        "attachments": _list_of("attachment"),
    },
    "template": {"id": _id_value},
    "named": {"id": _id_value},
}


class Shapes:
    """A profile's field paths, compiled once; thread-safe (read-only after build)."""

    def __init__(self, profile: ApiProfile) -> None:
        self.profile = profile
        self._fields: dict[str, list[tuple[str, tuple[Path, ...], Callable[[Any, Shapes], Any]]]]
        self._fields = {
            kind: [
                (name, tuple(split_path(p) for p in profile.candidates(kind, name)),
                 _COERCE.get(kind, {}).get(name, _as_is))
                for name in names
            ]
            for kind, names in FIELD_KINDS.items()
        }
        self._envelope: dict[str, dict[str, Path | None]] = {
            name: {
                key: split_path(value) if value else None
                for key in ("list", "item", "next", "page", "logs")
                for value in [getattr(ep, key)]
            }
            for name, ep in profile.endpoints.items()
        }
        self._new_ids = {name: tuple(split_path(p) for p in ep.new_id)
                         for name, ep in profile.endpoints.items()}
        identity = profile.identity
        self._containers = tuple(split_path(c) for c in identity.containers)
        self._identity_fields = frozenset(identity.fields)
        self._hide_anonymous = "anonymous" in identity.hide_when
        self._hide_secret = "secret" in identity.hide_when

    # -- fields ---------------------------------------------------------------------

    def normalize(self, kind: str, raw: Mapping[str, Any],
                  trace: dict[str, str | None] | None = None) -> dict[str, Any]:
        """``raw`` in the bridge's field names (fields found nowhere are left out).

        With ``trace``, records for each field the candidate path that matched, or None."""
        out: dict[str, Any] = {}
        # Most paths are one key into a plain dict: looked up without the walk (this runs
        # for every field of every report a pull reads).
        top = raw if type(raw) is dict else None
        for name, paths, coerce in self._fields[kind]:
            for path in paths:
                if top is not None and len(path) == 1:
                    value = top.get(path[0], MISSING)
                else:
                    value = get_path(raw, path)
                if value is not MISSING:
                    out[name] = coerce(value, self)
                    if trace is not None:
                        trace[name] = ".".join(path)
                    break
            else:
                if trace is not None:
                    trace[name] = None
        return out

    def first(self, raw: Mapping[str, Any], kind: str, field: str) -> Any:
        """The first candidate value of one field (raw, not coerced), or MISSING."""
        for name, paths, _ in self._fields[kind]:
            if name == field:
                for path in paths:
                    value = get_path(raw, path)
                    if value is not MISSING:
                        return value
        return MISSING

    def tried(self, kind: str, field: str) -> str:
        """The candidate paths of a field, for messages: ``a | b.c``."""
        return " | ".join(self.profile.candidates(kind, field))

    # -- envelopes ------------------------------------------------------------------

    def envelope(self, endpoint: str, key: str) -> Path | None:
        return self._envelope[endpoint][key]

    def new_id(self, endpoint: str, body: Any) -> tuple[Any, str | None]:
        """The first new-id candidate present in a write's answer, and its path."""
        for path in self._new_ids[endpoint]:
            value = get_path(body, path)
            if value is not MISSING and value is not None:
                return value, ".".join(path)
        return MISSING, None

    # -- privacy --------------------------------------------------------------------

    def hides_identity(self, raw: Mapping[str, Any]) -> bool:
        """Whether an item's reporter must not be kept: anonim or rahasia (as the profile
        says), or flags that cannot be read (a quarantined item: keep nothing then)."""
        for flag, wanted in (("is_anonymous", self._hide_anonymous),
                             ("is_secret", self._hide_secret)):
            if not wanted:
                continue
            value = self.first(raw, "complaint", flag)
            if value is MISSING or value is None or read_flag(value) is False:
                continue
            return True
        return False

    def without_identity(self, raw: Any) -> Any:
        """A copy of ``raw`` with every identity container emptied of identity fields
        (a text container is removed whole). ``raw`` itself is not changed."""
        if not isinstance(raw, Mapping):
            return raw
        out = dict(raw)
        for path in self._containers:
            self._scrub_at(out, path)
        return out

    def _scrub_at(self, obj: dict[str, Any], path: Path) -> None:
        head, rest = path[0], path[1:]
        value = obj.get(head, MISSING)
        if value is MISSING:
            return
        if rest:
            if isinstance(value, Mapping):
                inner = dict(value)
                self._scrub_at(inner, rest)
                obj[head] = inner
            return
        if isinstance(value, Mapping):
            obj[head] = {k: v for k, v in value.items()
                         if k not in self._identity_fields} or None
        elif value is not None:
            obj[head] = None

    def private(self, raw: Any) -> Any:
        """``raw`` as it may be stored: without identity when the report hides it."""
        if isinstance(raw, Mapping) and self.hides_identity(raw):
            return self.without_identity(raw)
        return raw


__all__ = ["MISSING", "Shapes", "get_path"]
