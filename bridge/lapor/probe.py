"""``lapor-bridge probe``: does a LAPOR! server answer in the shapes of our API profile?

For the day a regency gets its real credentials. Each read endpoint is called once
(institutions, templates, the inbox if the profile has one, and the detail and
follow-ups of one case if given); for each answer the probe reports the HTTP status,
whether the envelope was where the profile says, and for every field the candidate path
that matched or that none did. It never writes to LAPOR!. The answers can be saved with
identities and credentials removed, to attach to a bug report and build the next profile
from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.lapor.client import LaporClient
from bridge.lapor.errors import LaporError
from bridge.lapor.models import ComplaintDetail, Named, RemoteComplaint, RemoteFollowup, Template
from bridge.lapor.shapes import MISSING, get_path


@dataclass
class ProbeResult:
    """What one endpoint answered."""

    endpoint: str
    path: str
    status: int | None = None
    matched: bool = False
    #: One line: why it did not match, or what it found.
    note: str = ""
    #: Per field: the candidate path that matched, or None.
    fields: dict[str, str | None] = field(default_factory=dict)
    #: Fields the bridge needs that no candidate found, with every path tried.
    missing: dict[str, str] = field(default_factory=dict)
    items: int = 0

    def as_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "path": self.path, "status": self.status,
                "matched": self.matched, "note": self.note, "fields": self.fields,
                "missing": self.missing, "items": self.items}


def _required(model: type[Any]) -> set[str]:
    return {name for name, f in model.model_fields.items() if f.is_required()}


class Prober:
    """Runs the probe over one client; ``save`` writes each answer as JSON."""

    def __init__(self, client: LaporClient, save: Path | None = None) -> None:
        self.client = client
        self.shapes = client.shapes
        self.save = save
        self._secrets: Callable[[str], str] = client.scrub

    def run(self, case_id: int | None = None) -> list[ProbeResult]:
        profile = self.client.profile
        results = [
            self._listing("institutions", profile.endpoint("institutions").path, Named,
                          {"page_size": 1000}),
            self._listing("templates", profile.endpoint("templates").path, Template,
                          {"page_size": 1000}),
        ]
        inbox = profile.endpoint("inbox").path
        if inbox:
            results.append(self._listing("inbox", inbox, RemoteComplaint,
                                         {"page": 1, "page_size": 5}))
        else:
            results.append(ProbeResult("inbox", "", matched=True,
                                       note="not configured: tracking known cases only"))
        if case_id is not None:
            path = profile.endpoint("complaint").path.replace("{id}", str(case_id))
            results.append(self._detail(path))
            path = profile.endpoint("followups").path.replace("{id}", str(case_id))
            results.append(self._listing("followups", path, RemoteFollowup, {"page": 1}))
        return results

    # -- one endpoint ---------------------------------------------------------------

    def _fetch(self, result: ProbeResult, params: dict[str, str | int] | None
               ) -> dict[str, Any] | None:
        try:
            status, body = self.client.get_json(result.path, params)
        except LaporError as exc:
            result.status = exc.status
            result.note = str(exc)
            if result.endpoint == "inbox" and exc.status == 404:
                result.note += ('; this server has no inbox: set [lapor] inbox_path = "" '
                                "and adopt cases with `lapor-bridge case track`")
            return None
        result.status = status
        self._write(result.endpoint, body)
        return body

    def _listing(self, endpoint: str, path: str, model: type[Any],
                 params: dict[str, str | int]) -> ProbeResult:
        result = ProbeResult(endpoint, path)
        found = self._enveloped(result, params, endpoint, "list", list, "list")
        if found is None:
            return result
        data = found[1]
        result.items = len(data)
        self._check_items(result, model, data)
        return result

    def _enveloped(self, result: ProbeResult, params: dict[str, str | int] | None,
                   endpoint: str, part: str, kind: type[Any], noun: str,
                   ) -> tuple[dict[str, Any], Any] | None:
        """The response and the ``kind`` it holds where the API profile's envelope for
        ``endpoint`` and ``part`` says; ``None`` with ``result.note`` saying what was there
        instead."""
        body = self._fetch(result, params)
        if body is None:
            return None
        where = self.shapes.envelope(endpoint, part)
        data = get_path(body, where) if where else body
        if not isinstance(data, kind):
            keys = ", ".join(sorted(map(str, body)))[:200]
            result.note = (f"no {noun} at {'.'.join(where) if where else 'the body'} "
                           f"(top-level keys: {keys})")
            return None
        return body, data

    def _detail(self, path: str) -> ProbeResult:
        result = ProbeResult("complaint", path)
        found = self._enveloped(result, None, "complaint", "item", dict, "object")
        if found is None:
            return result
        body, data = found
        result.items = 1
        self._check_items(result, ComplaintDetail, [data])
        logs_at = self.shapes.envelope("complaint", "logs")
        if logs_at and get_path(body, logs_at) is MISSING:
            result.note = (result.note + "; " if result.note else "") + \
                f"no disposition log at {'.'.join(logs_at)}"
        return result

    def _check_items(self, result: ProbeResult, model: type[Any], items: list[Any]) -> None:
        kind = model.wire_kind
        required = _required(model)
        problems: list[str] = []
        for raw in items:
            if not isinstance(raw, dict):
                problems.append("an item is not an object")
                continue
            trace: dict[str, str | None] = {}
            self.shapes.normalize(kind, raw, trace)
            for name, path in trace.items():
                # A field is reported by the first path that ever matched it.
                if result.fields.get(name) is None:
                    result.fields[name] = path
            _, refusal = self.client.parse_item(raw, model)
            if refusal is not None:
                problems.append(refusal.reason)
        for name in sorted(required):
            if result.fields.get(name) is None and items:
                result.missing[name] = self.shapes.tried(kind, name)
        if problems:
            result.note = f"{len(problems)} of {len(items)} item(s) do not parse: {problems[0]}"
        result.matched = not problems and not result.missing
        if result.matched and not result.note:
            result.note = f"{len(items)} item(s) parsed" if items else "empty listing"

    # -- saving ---------------------------------------------------------------------

    def _write(self, endpoint: str, body: dict[str, Any]) -> None:
        if self.save is None:
            return
        self.save.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_without_identity(body, self.shapes.without_identity),
                          ensure_ascii=False, indent=2)
        (self.save / f"{endpoint}.json").write_text(self._secrets(text) + "\n", "utf-8")


def _without_identity(value: Any, strip: Callable[[Any], Any]) -> Any:
    """Every object at any depth with its identity containers emptied: a saved answer is
    for a bug report, whoever the reporter was."""
    if isinstance(value, dict):
        return {k: _without_identity(v, strip) for k, v in strip(value).items()}
    if isinstance(value, list):
        return [_without_identity(v, strip) for v in value]
    return value


def format_result(r: ProbeResult) -> str:
    """One line per endpoint, then one indented line per field that needs attention."""
    status = f"HTTP {r.status}" if r.status is not None else "no answer" if r.path else "-"
    verdict = "ok" if r.matched else "MISMATCH"
    head = f"{r.endpoint:<13} {status:<9} {verdict:<8} {r.note}"
    found = " ".join(f"{name}<-{path}" for name, path in r.fields.items() if path)
    lines = [head]
    if found:
        lines.append(f"    matched: {found}")
    absent = [name for name, path in r.fields.items() if path is None and name not in r.missing]
    if absent:
        lines.append(f"    not present (optional): {', '.join(absent)}")
    for name, tried in r.missing.items():
        lines.append(f"    {name}: no candidate matched (tried {tried})")
    return "\n".join(lines)


__all__ = ["ProbeResult", "Prober", "format_result"]
