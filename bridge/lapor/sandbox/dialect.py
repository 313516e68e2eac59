"""The sandbox's dialects: the same reports, written in the shapes of one API profile.

The sandbox keeps each report in one flat form (``state.py``) and writes it out in the
dialect it was started with, so that the bridge is tested against more than one shape:

- ``lapor-v3`` (the default): what public v3 integrations show. Category and location
  are ``{id, name}`` objects, the channel is an integer code, the reporter comes under
  ``user`` (with the identity even for an anonim report, as the handling admin sees it),
  times are ``d-m-Y H:i:s`` in Jakarta time, forwards take a JSON body, and a created
  complaint's id comes back as ``data.results.complaint.id``.
- ``lapor-flat``: the shapes the bridge first assumed (text category and location,
  ``reporter``, ISO-8601 times, ``results.data.id``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any, Literal

from bridge.lapor.models import format_local_time, parse_remote_time
from bridge.lapor.sandbox.seed import CATEGORIES, LOCATION_TEXT, person_from

DialectName = Literal["lapor-v3", "lapor-flat"]
DIALECTS: tuple[str, ...] = ("lapor-v3", "lapor-flat")

#: The sandbox's own channel codes (LAPOR!'s list is not public; these are made up).
CHANNEL_CODES: dict[str, int] = {"Website": 1, "Android": 2, "iOS": 3, "SMS": 4,
                                 "Twitter": 5, "Sandbox": 13}
_CHANNEL_BY_CODE = {code: name for name, code in CHANNEL_CODES.items()}
_CATEGORY_ID = {name: cid for cid, name in CATEGORIES.items()}
_LOCATION_ID = {text: lid for lid, text in LOCATION_TEXT.items()}


def check_dialect(name: str) -> str:
    if name not in DIALECTS:
        raise ValueError(f"unknown dialect {name!r}; expected one of {', '.join(DIALECTS)}")
    return name


def _local(value: Any) -> Any:
    return format_local_time(parse_remote_time(value)) if isinstance(value, str) else value


class Dialect:
    """How one dialect writes reports and answers, and reads what the bridge writes."""

    def __init__(self, name: str = "lapor-v3") -> None:
        self.name = check_dialect(name)
        self.v3 = name == "lapor-v3"

    # -- what the sandbox writes ----------------------------------------------------

    def report(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A stored report as a listing or the detail shows it."""
        if not self.v3:
            return dict(data)
        out = dict(data)
        category = data.get("category")
        out["category"] = (None if category is None
                           else {"id": _CATEGORY_ID.get(category, 0), "name": category})
        location = data.get("location")
        out["location"] = (None if location is None
                           else {"id": _LOCATION_ID.get(location, 0), "name": location})
        channel = data.get("channel")
        out["channel"] = CHANNEL_CODES.get(str(channel), 99) if channel is not None else None
        reporter = out.pop("reporter", None)
        if reporter is None and data.get("is_anonymous") in (1, True, "1"):
            # The handling admin sees who filed even an anonim report: the identity is
            # on the wire, and only the bridge's privacy rules keep it out of storage.
            reporter = person_from(random.Random(int(data["id"]) * 7919))
        out["user"] = reporter
        for key in ("created_at", "updated_at"):
            out[key] = _local(data.get(key))
        return out

    def created(self, rid: int, tracking_id: str) -> dict[str, Any]:
        """The answer to ``create``."""
        if self.v3:
            return {"success": True, "message": "Laporan berhasil dibuat",
                    "data": {"results": {"complaint": {"id": rid,
                                                       "tracking_id": tracking_id}}}}
        return {"results": {"data": {"id": rid, "tracking_id": tracking_id}}}

    # -- what the sandbox reads -----------------------------------------------------

    def create_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``create``'s fields in the stored form: an integer channel code becomes its
        name, upload ids sent as the text ``"[1,2]"`` become a list."""
        out = dict(fields)
        channel = out.get("channel")
        if isinstance(channel, int) and not isinstance(channel, bool):
            out["channel"] = _CHANNEL_BY_CODE.get(channel, str(channel))
        atts = out.get("attachments")
        if isinstance(atts, str) and atts.strip().startswith("["):
            try:
                parsed = json.loads(atts)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                out["attachments"] = [str(a) for a in parsed]
        return out


__all__ = ["CHANNEL_CODES", "DIALECTS", "Dialect", "DialectName", "check_dialect"]
