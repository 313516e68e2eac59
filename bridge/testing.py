"""Test kit for lapor-bridge plugins: a pytest plugin (entry point ``pytest11``).

It is loaded in every pytest run where lapor-bridge is installed, so a regency's plugin
package gets these without any conftest:

Helpers (import them: ``from bridge.testing import make_case, run_hooks``)
    ``make_report(**overrides)``  a valid LAPOR! inbox item (dict, wire format).
    ``make_case(**overrides)``    a :class:`~bridge.domain.CaseSnapshot`.
    ``make_host(*plugins, sections=None, ...)``  a :class:`~bridge.plugins.PluginHost`
        over the given plugin modules/objects only (no entry points, no config file).
    ``run_hooks(plugin, case, config=None, ...)``  run a case through every decision hook
        and the notification channels; returns a :class:`HookRun`.

Fixtures
    ``lapor_mock``      a respx-mocked LAPOR! (:class:`FakeLapor`) serving the API of
                        CONTRACTS.md at :data:`FAKE_BASE_URL`, with reports to add/change.
    ``bridge_settings`` deployment :class:`~bridge.config.Settings` pointing at the mock.
    ``bridge_store``    a migrated temporary SQLite store (:class:`TempStore`).
    ``smtp_sink``       a real SMTP server on 127.0.0.1 (aiosmtpd) keeping what it gets.

A plugin test, offline, in a few lines::

    from bridge.testing import make_case, run_hooks
    import my_plugin

    def test_limbah_is_sedang():
        run = run_hooks(my_plugin, make_case(content="Limbah pabrik mencemari sungai"))
        assert run.classification is not None
        assert run.classification.severity == "sedang"
        assert run.failures == []

Everything heavy is imported inside functions: pytest imports this module at start-up.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import re
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

if TYPE_CHECKING:
    import httpx
    import respx
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bridge.config import Settings
    from bridge.domain import (
        CaseSnapshot,
        Classification,
        EscalationDecision,
        Notification,
        RoutingDecision,
        WorkingDays,
    )
    from bridge.plugins import PluginFailure, PluginHost

#: Where the mocked LAPOR! lives (respx intercepts it; nothing leaves the process).
FAKE_BASE_URL = "https://lapor.test/api"
FAKE_BEARER = "test-bearer-secret"
FAKE_TOKEN = "{00000000-0000-4000-8000-0000000000aa}"
FAKE_INSTITUTION_ID = 1

_ids = itertools.count(1001)
_base_time = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)

_TITLES = (
    ("Izin usaha belum terbit", "Perizinan"),
    ("Limbah pabrik tahu mencemari sungai", "Lingkungan Hidup"),
    ("Jalan rusak di depan pasar", "Pekerjaan Umum"),
    ("Biaya izin tidak jelas", "Perizinan"),
)


def _jakarta(dt: datetime) -> str:
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.lapor.models import JAKARTA

    return dt.astimezone(JAKARTA).replace(microsecond=0).isoformat()


def make_report(**overrides: Any) -> dict[str, Any]:
    """A valid LAPOR! inbox item (the wire format of CONTRACTS.md), as a dict.

    Every call gets a new ``id``; ``created_at``/``updated_at`` accept datetimes or strings.
    With ``is_anonymous=True`` the reporter is ``null`` unless given. The item carries the
    status log of its disposition to us, at ``disposed_at`` (default: when it was filed).
    """
    rid = int(overrides.pop("id", next(_ids)))
    title, category = _TITLES[rid % len(_TITLES)]
    created = overrides.pop("created_at", _base_time + timedelta(minutes=rid % 997))
    updated = overrides.pop("updated_at", created)
    disposed = overrides.pop("disposed_at", created)
    anonymous = bool(overrides.get("is_anonymous", False))
    report: dict[str, Any] = {
        "id": rid,
        "tracking_id": str(1_900_000 + rid),
        "title": title,
        "content": f"{title}. Mohon segera ditindaklanjuti oleh dinas terkait. (laporan {rid})",
        "status_code": "1",
        "status_name": "Terverifikasi",
        "disposition_id": FAKE_INSTITUTION_ID,
        "disposition_name": "DPMPTSP Kabupaten Contoh",
        "is_anonymous": 0,
        "is_secret": 0,
        "category": category,
        "location": "Kel. Sukamaju, Kec. Tengah",
        "channel": "web",
        "reporter": None if anonymous else {
            "name": "Siti Rahmawati", "email": "siti@example.id", "phone": "081234567890"},
        "attachments": [],
        "created_at": created,
        "updated_at": updated,
        "status_logs": [{"note": "Laporan diverifikasi dan didisposisikan ke DPMPTSP "
                                 "Kabupaten Contoh",
                         "timestamp": _jakarta(disposed) if isinstance(disposed, datetime)
                         else disposed}],
    }
    report.update(overrides)
    for key in ("created_at", "updated_at"):
        if isinstance(report[key], datetime):
            report[key] = _jakarta(report[key])
    for key in ("is_anonymous", "is_secret"):
        if isinstance(report[key], bool):
            report[key] = int(report[key])
    return report


def make_case(**overrides: Any) -> CaseSnapshot:
    """A :class:`~bridge.domain.CaseSnapshot` with plausible values; override any field.

    ``reporter`` may be given as a dict (``{"name": ..., "phone": ...}``).
    """
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.domain import CaseSnapshot, ReporterInfo

    cid = int(overrides.pop("id", next(_ids)))
    reporter = overrides.pop("reporter", {"name": "Siti Rahmawati", "phone": "081234567890",
                                          "email": "siti@example.id"})
    if isinstance(reporter, Mapping):
        reporter = ReporterInfo.from_mapping(reporter)
    values: dict[str, Any] = {
        "id": cid,
        "register_no": f"CTH/2026/{cid:05d}",
        "title": "Izin usaha belum terbit",
        "content": "Sudah tiga minggu izin usaha saya belum terbit, mohon kejelasan.",
        "channel": "lapor",
        "lapor_id": cid,
        "tracking_id": str(1_900_000 + cid),
        "category": "Perizinan",
        "location": "Kel. Sukamaju, Kec. Tengah",
        "received_at": _base_time,
        "reporter": reporter,
    }
    values.update(overrides)
    return CaseSnapshot(**values)


# -- hosts and hook runs ---------------------------------------------------------------


def make_host(
    *plugins: object,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    calendar: WorkingDays | None = None,
    timeout_seconds: float = 5.0,
    max_stuck_calls: int = 2,
) -> PluginHost:
    """A host over exactly ``plugins`` (modules, objects, or ``(name, object)`` pairs).

    ``sections`` are the config tables by section name, as in the TOML file. The same
    checks as at daemon start apply (unknown hooks, bad config...).
    """
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.plugins import PluginSource, PluginsSettings, _object_name, _version_of, build_host

    sources = []
    for item in plugins:
        name, obj = item if isinstance(item, tuple) else (_object_name(item), item)
        sources.append(PluginSource(name, obj, "given", _version_of(obj)))
    options = PluginsSettings(timeout_seconds=timeout_seconds, max_stuck_calls=max_stuck_calls,
                              entry_points=False)
    return build_host(sources, dict(sections or {}), options, source="<test>",
                      calendar=calendar)


class RecordingChannel:
    """A notification channel that keeps what it is given (registered by ``run_hooks``)."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)


def _recording_plugin(channel: RecordingChannel) -> object:
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.hookspecs import hookimpl

    class _Recorder:
        @hookimpl(trylast=True)
        def notify(self, notification: Notification) -> None:
            channel.notify(notification)

    return _Recorder()


@dataclass
class HookRun:
    """What the hooks decided for one case, and what went through the channels."""

    host: PluginHost
    case: CaseSnapshot
    classification: Classification | None = None
    routing: RoutingDecision | None = None
    deadline: datetime | None = None
    escalation: EscalationDecision | None = None
    notifications: list[Notification] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)


def _declared_section(plugin: object) -> str | None:
    func = getattr(plugin, "config_section", None)
    if func is None or not hasattr(func, "lapor_bridge_impl"):
        return None
    declared = func()
    return getattr(declared, "name", None)


def run_hooks(
    plugin: object,
    case: CaseSnapshot,
    *,
    config: Mapping[str, Any] | None = None,
    others: Iterable[object] = (),
    sections: Mapping[str, Mapping[str, Any]] | None = None,
    severities: Sequence[str] = ("ringan", "sedang", "berat"),
    known_opds: Sequence[str] = (),
    known_bodies: Iterable[int] | None = None,
    stage: str = "case",
    started_at: datetime | None = None,
    now: datetime | None = None,
    calendar: WorkingDays | None = None,
    notify: bool = True,
    regency: str = "Kabupaten Contoh",
    timeout_seconds: float = 5.0,
) -> HookRun:
    """Run ``case`` through the hooks as the core would, with ``plugin`` (and ``others``).

    In order: ``classify_case`` (the severity goes into the case for the next steps),
    ``route_case``, ``stage_deadline`` (for ``stage``, from ``started_at`` or the case's
    ``received_at``), ``decide_escalation`` (at ``now``, default: the deadline if any plus
    one day, else ``started_at`` plus 30 days), the ``case_received`` event, and -- with
    ``notify`` -- the notifications the core would send for those decisions
    (``case_received``, ``assigned`` or ``forwarded``, ``escalated``), rendered by the
    built-in templates and handed to every channel. ``config`` is ``plugin``'s own
    section; ``sections`` gives more tables by name. Failures are collected, not raised.
    """
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.notify import NotificationRenderer

    all_sections = dict(sections or {})
    if config is not None:
        name = _declared_section(plugin)
        if name is None:
            raise ValueError("config given, but the plugin declares no config_section")
        all_sections[name] = config
    channel = RecordingChannel()
    items: list[object] = [("lapor_bridge.testing.recorder", _recording_plugin(channel)),
                           *others, plugin]
    host = make_host(*items, sections=all_sections, calendar=calendar,
                     timeout_seconds=timeout_seconds)
    run = HookRun(host=host, case=case)
    failures: list[PluginFailure] = []

    classified = host.classify(case, severities)
    failures += classified.failures
    run.classification = classified.value
    if classified.value is not None:
        case = replace(case, severity=classified.value.severity)

    routed = host.route(case, known_opds, known_bodies if known_bodies is None
                        else list(known_bodies))
    failures += routed.failures
    run.routing = routed.value

    start = started_at or case.received_at or _base_time
    due = host.stage_deadline(case, stage, start)
    failures += due.failures
    run.deadline = due.value
    if due.value is not None:
        case = replace(case, deadline_at=due.value)

    when = now or ((due.value + timedelta(days=1)) if due.value else start + timedelta(days=30))
    escalated = host.escalation(case, when)
    failures += escalated.failures
    run.escalation = escalated.value

    failures += host.emit("case_received", case, event_id=1)

    if notify:
        renderer = NotificationRenderer(regency=regency)
        messages = [renderer.render("case_received", case, ["petugas"])]
        decision = routed.value
        if decision is not None and decision.ours:
            messages.append(renderer.render("assigned", case, [str(decision.unit)],
                                            unit=decision.unit, reason=decision.reason))
        elif decision is not None:
            messages.append(renderer.render("forwarded", case, ["kasi"],
                                            target=decision.target,
                                            tembusan=list(decision.tembusan),
                                            reason=decision.reason))
        if escalated.value is not None:
            e = escalated.value
            messages.append(renderer.render("escalated", case, [e.to_role], level=e.level,
                                            to_role=e.to_role, reason=e.reason))
        for message in messages:
            failures += host.notify(message)
    run.case = case
    run.notifications = channel.notifications
    run.failures = failures
    return run


# -- a mocked LAPOR! (respx) -------------------------------------------------------------


def _form(request: httpx.Request) -> dict[str, Any]:
    """Fields of a urlencoded, multipart or JSON body (files as (name, bytes) tuples)."""
    ctype = request.headers.get("content-type", "")
    body = request.content
    if ctype.startswith("application/json"):
        data = json.loads(body or b"{}")
        return dict(data) if isinstance(data, dict) else {}
    if ctype.startswith("multipart/form-data"):
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body)
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            if filename is not None:
                fields.setdefault(str(name), []).append((filename, payload))
            else:
                fields[str(name)] = payload.decode("utf-8")
        return fields
    return {k: v[-1] for k, v in parse_qs(body.decode("utf-8"), keep_blank_values=True).items()}


class FakeLapor:
    """An in-memory LAPOR! behind respx: the endpoints and shapes of CONTRACTS.md.

    Use :meth:`add_report`/:meth:`change_report` to shape the inbox, then drive the real
    :class:`~bridge.lapor.client.LaporClient` (or anything using httpx) at ``base_url``.
    ``requests`` lists every request served; ``followups`` and ``forwards`` what was posted.
    """

    def __init__(
        self,
        base_url: str = FAKE_BASE_URL,
        *,
        bearer: str = FAKE_BEARER,
        token: str = FAKE_TOKEN,
        institution_id: int = FAKE_INSTITUTION_ID,
        paths: Mapping[str, str] | None = None,
    ) -> None:
        # Lazy: this pytest plugin loads in every test session of every project.
        from bridge.config import ENDPOINT_OF_PATH
        from bridge.lapor.api_profile import load_profile

        self.base_url = base_url.rstrip("/")
        self.bearer = bearer
        self.token = token
        self.institution_id = institution_id
        profile = load_profile()
        self.paths = {name: profile.endpoint(endpoint).path
                      for name, endpoint in ENDPOINT_OF_PATH.items()}
        self.paths.update(paths or {})
        self.reports: dict[int, dict[str, Any]] = {}
        self.followups: dict[int, list[dict[str, Any]]] = {}
        self.forwards: list[dict[str, Any]] = []
        #: The files of each follow-up as received: follow-up id -> [(name, bytes)].
        self.files: dict[int, list[tuple[str, bytes]]] = {}
        self.data_logs: dict[int, list[dict[str, Any]]] = {}
        self.institutions: list[dict[str, Any]] = [
            {"id": institution_id, "name": "DPMPTSP Kabupaten Contoh"},
            {"id": 2, "name": "Dinas Lingkungan Hidup Kabupaten Contoh"},
            {"id": 3, "name": "Kementerian Dalam Negeri"},
        ]
        self.templates: list[dict[str, Any]] = [
            {"id": 1, "code": "TL01", "name": "Tindak lanjut", "content": "Terima kasih."}]
        self.requests: list[httpx.Request] = []
        #: Template code -> status code its follow-up sets (as the sandbox's).
        from bridge.lapor.sandbox.state import STATUS_TEMPLATES

        self.status_templates: dict[str, str] = dict(STATUS_TEMPLATES)
        self._ids = itertools.count(50_001)
        self._lock = threading.Lock()

    # -- shaping the data ------------------------------------------------------------

    def add_report(self, **overrides: Any) -> dict[str, Any]:
        report = make_report(**overrides)
        with self._lock:
            self.reports[int(report["id"])] = report
        return dict(report)

    def change_report(self, report_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields of a report; ``updated_at`` moves on by a second unless given."""
        # Lazy: this pytest plugin loads in every test session of every project.
        from bridge.lapor.models import parse_remote_time

        with self._lock:
            report = self.reports[report_id]
            if "updated_at" not in fields:
                fields["updated_at"] = parse_remote_time(report["updated_at"]) + timedelta(
                    seconds=1)
            report.update(fields)
            if isinstance(report["updated_at"], datetime):
                report["updated_at"] = _jakarta(report["updated_at"])
            return dict(report)

    # -- respx wiring ----------------------------------------------------------------

    def install(self, router: respx.MockRouter) -> None:
        def route(method: str, path_key: str, handler: Any) -> None:
            pattern = re.escape(self.paths[path_key]).replace(r"\{id\}", r"(?P<rid>\d+)")
            router.route(method=method,
                         url__regex=re.escape(self.base_url) + pattern + r"(\?.*)?$"
                         ).mock(side_effect=self._guard(handler))

        route("GET", "inbox_path", self._inbox)
        route("GET", "complaint_path", self._detail)
        route("GET", "followups_path", self._followups)
        route("POST", "followup_add_path", self._add_followup)
        route("POST", "reject_path", self._reject)
        route("POST", "create_path", self._create)
        route("POST", "upload_path", self._upload)
        route("GET", "institutions_path", self._institutions)
        route("GET", "templates_path", self._templates)

    def _guard(self, handler: Any) -> Any:
        # Lazy: this pytest plugin loads in every test session of every project.
        import httpx

        def side_effect(request: httpx.Request, **params: Any) -> httpx.Response:
            with self._lock:
                self.requests.append(request)
            auth = request.headers.get("auth") or request.headers.get("authorization")
            if auth != f"Bearer {self.bearer}" or request.headers.get("token") != self.token:
                return httpx.Response(401, json={"message": "Unauthenticated."})
            with self._lock:
                result: httpx.Response = handler(request, **params)
            return result

        return side_effect

    @staticmethod
    def _json(data: Any, status: int = 200) -> httpx.Response:
        # Lazy: this pytest plugin loads in every test session of every project.
        import httpx

        return httpx.Response(status, json=data)

    def _page(self, request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
        query = parse_qs(urlsplit(str(request.url)).query)
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("page_size", ["15"])[0])
        chunk = items[(page - 1) * size: page * size]
        next_url = None
        if page * size < len(items):
            parts = urlsplit(str(request.url))
            q = {k: v[-1] for k, v in query.items()}
            q["page"] = str(page + 1)
            next_url = f"{parts.scheme}://{parts.netloc}{parts.path}?{urlencode(q)}"
        return self._json({"results": {"data": chunk, "next_page_url": next_url,
                                       "current_page": page, "per_page": size,
                                       "total": len(items)}})

    def _inbox(self, request: httpx.Request, **_: Any) -> httpx.Response:
        # Lazy: this pytest plugin loads in every test session of every project.
        from bridge.lapor.models import parse_remote_time

        query = parse_qs(urlsplit(str(request.url)).query)
        items = sorted(self.reports.values(),
                       key=lambda r: (parse_remote_time(r["updated_at"]), r["id"]))
        since = query.get("updated_since", [None])[0]
        if since:
            cutoff = parse_remote_time(since)
            items = [r for r in items if parse_remote_time(r["updated_at"]) >= cutoff]
        return self._page(request, [dict(r) for r in items])

    def _missing(self, rid: int) -> httpx.Response:
        return self._json({"message": f"Complaint {rid} not found", "errors": {}}, 404)

    def _detail(self, request: httpx.Request, rid: str = "0", **_: Any) -> httpx.Response:
        report = self.reports.get(int(rid))
        if report is None:
            return self._missing(int(rid))
        data = {k: report[k] for k in ("id", "status_code", "status_name", "disposition_id",
                                       "disposition_name")}
        data["status_logs"] = list(report.get("status_logs", []))
        return self._json({"results": {"data": data,
                                       "data_logs": self.data_logs.get(int(rid), [])}})

    def _followups(self, request: httpx.Request, rid: str = "0", **_: Any) -> httpx.Response:
        if int(rid) not in self.reports:
            return self._missing(int(rid))
        return self._page(request, list(self.followups.get(int(rid), [])))

    def _add_followup(self, request: httpx.Request, **_: Any) -> httpx.Response:
        # Lazy: this pytest plugin loads in every test session of every project.
        from bridge.lapor.models import JAKARTA, LAPOR_LOCAL_FORMAT

        form = _form(request)
        errors = {name: [f"The {name} field is required."]
                  for name in ("complaint_id", "content") if not form.get(name)}
        if errors:
            return self._json({"message": "The given data was invalid.", "errors": errors}, 422)
        rid = int(form["complaint_id"])
        report = self.reports.get(rid)
        if report is None:
            return self._missing(rid)
        new_id = next(self._ids)
        now = datetime.now(UTC).replace(microsecond=0)
        files = [f for key in sorted((k for k in form if k.startswith("attachment[")),
                                     key=lambda k: int(k[11:-1]) if k[11:-1].isdigit() else 0)
                 for f in form[key] or []]
        self.files[new_id] = [(str(name), bytes(content)) for name, content in files]
        followup = {
            "id": new_id, "complaint_id": rid, "content": form["content"],
            "created_at": now.astimezone(JAKARTA).strftime(LAPOR_LOCAL_FORMAT),
            "institution_from": {"id": int(form.get("institution_from_id") or 0), "name": "-"},
            "institution_to": {"id": int(form.get("institution_to_id") or 0), "name": "-"},
            "is_secret": int(str(form.get("is_secret", "0")) in ("1", "true", "True")),
            "template_code": str(form.get("template_code") or ""),
            "rating": int(form.get("rating") or 0),
            "attachments": [{"id": str(i), "name": f[0]} for i, f in enumerate(files)],
        }
        self.followups.setdefault(rid, []).append(followup)
        report["updated_at"] = _jakarta(max(now, datetime.fromisoformat(report["updated_at"])
                                            + timedelta(seconds=1)))
        status = self.status_templates.get(followup["template_code"])
        if status is not None:
            from bridge.lapor.sandbox.seed import STATUS_NAMES

            report["status_code"], report["status_name"] = status, STATUS_NAMES[status]
        elif str(report["status_code"]) in ("0", "1"):
            report["status_code"], report["status_name"] = "2", "Dalam Proses"
        return self._json({"results": {"data": {"id": new_id, "complaint_id": rid}}})

    def _reject(self, request: httpx.Request, rid: str = "0", **_: Any) -> httpx.Response:
        form = _form(request)
        report = self.reports.get(int(rid))
        if report is None:
            return self._missing(int(rid))
        target = int(form.get("reason") or 0)
        known = {i["id"]: i["name"] for i in self.institutions}
        if target not in known or str(form.get("not_authority")) != "1":
            return self._json({"message": "The given data was invalid.",
                               "errors": {"reason": ["Unknown institution."]}}, 422)
        old = report.get("disposition_id")
        report["disposition_id"], report["disposition_name"] = target, known[target]
        report["updated_at"] = _jakarta(datetime.fromisoformat(report["updated_at"])
                                        + timedelta(seconds=1))
        self.forwards.append({"complaint_id": int(rid), **form})
        self.data_logs.setdefault(int(rid), []).append({
            "institution_from": {"id": old, "name": known.get(old or 0, "-")},
            "institution_to": {"id": target, "name": known[target]},
            "data": {"note": form.get("reason_description", "")}})
        return self._json({"results": {"data": {"id": int(rid), "disposition_id": target}}})

    def _create(self, request: httpx.Request, **_: Any) -> httpx.Response:
        form = _form(request)
        if not form.get("title") or not form.get("content"):
            return self._json({"message": "The given data was invalid.",
                               "errors": {"title": ["The title field is required."]}}, 422)
        report = make_report(title=form["title"], content=form["content"],
                             channel=form.get("channel", "web"),
                             created_at=datetime.now(UTC))
        self.reports[int(report["id"])] = report
        return self._json({"results": {"data": {"id": report["id"],
                                                "tracking_id": report["tracking_id"]}}})

    def _upload(self, request: httpx.Request, **_: Any) -> httpx.Response:
        form = _form(request)
        files = form.get("attachments[]", []) or []
        return self._json({"results": {"docs": [{"id": str(next(self._ids))} for _ in files]}})

    def _institutions(self, request: httpx.Request, **_: Any) -> httpx.Response:
        return self._page(request, list(self.institutions))

    def _templates(self, request: httpx.Request, **_: Any) -> httpx.Response:
        return self._page(request, list(self.templates))


@pytest.fixture
def lapor_mock() -> Iterator[FakeLapor]:
    """A respx-mocked LAPOR! at :data:`FAKE_BASE_URL`.

    Requests to loopback (127.0.0.1, localhost) go through to the real network stack, for
    servers the test runs itself; a request to any other host fails the test instead of
    leaving the machine.
    """
    # Lazy: this pytest plugin loads in every test session of every project.
    import respx

    fake = FakeLapor()
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        router.route(host="127.0.0.1").pass_through()
        router.route(host="localhost").pass_through()
        fake.install(router)
        yield fake


def settings_for_tests(
    base_url: str = FAKE_BASE_URL, extra: Mapping[str, Any] | None = None
) -> Settings:
    """Settings of an imaginary regency pointing at ``base_url`` with the fake secrets."""
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.config import settings_from_mapping

    data: dict[str, Any] = {
        "regency": {"name": "Kabupaten Contoh", "code": "CTH"},
        "lapor": {"base_url": base_url, "bearer_header": "Authorization",
                  "institution_id": FAKE_INSTITUTION_ID, "backoff_initial": 0.01,
                  "backoff_max": 0.05},
        "plugins": {"entry_points": False},
    }
    data.update(extra or {})
    env = {"LAPOR_BRIDGE_BEARER": FAKE_BEARER, "LAPOR_BRIDGE_TOKEN": FAKE_TOKEN}
    return settings_from_mapping(data, source="<test>", env=env)


@pytest.fixture
def bridge_settings(lapor_mock: FakeLapor) -> Settings:
    """Deployment settings pointing at ``lapor_mock`` (entry-point plugins not loaded)."""
    return settings_for_tests(lapor_mock.base_url)


@dataclass
class TempStore:
    """A migrated store in a temporary directory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    def session(self) -> Session:
        return self.sessions()


@pytest.fixture
def bridge_store(tmp_path: Path) -> Iterator[TempStore]:
    """A fresh SQLite store at the newest schema."""
    # Lazy: this pytest plugin loads in every test session of every project.
    from bridge.store.db import make_engine, session_factory
    from bridge.store.schema import ensure_schema

    url = f"sqlite:///{tmp_path / 'bridge-test.db'}"
    engine = make_engine(url)
    ensure_schema(engine)
    try:
        yield TempStore(url, engine, session_factory(engine))
    finally:
        engine.dispose()


@dataclass
class SmtpSink:
    """A real SMTP server on loopback; ``messages`` holds what it received."""

    host: str
    port: int
    messages: list[Any] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """aiosmtpd on 127.0.0.1 (a free port), keeping each message as ``email.message``."""
    # Lazy: this pytest plugin loads in every test session of every project.
    from email import message_from_bytes

    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        # aiosmtpd checks that its server answers by connecting to the port it was given,
        # so it needs a real port number rather than 0.
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    sink = SmtpSink("127.0.0.1", port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            raw = envelope.original_content or envelope.content
            sink.messages.append(message_from_bytes(raw, policy=email.policy.default))
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


__all__ = [
    "FAKE_BASE_URL",
    "FAKE_BEARER",
    "FAKE_INSTITUTION_ID",
    "FAKE_TOKEN",
    "FakeLapor",
    "HookRun",
    "RecordingChannel",
    "SmtpSink",
    "TempStore",
    "make_case",
    "make_host",
    "make_report",
    "run_hooks",
    "settings_for_tests",
]
