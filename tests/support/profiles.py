"""Kit of the profile scenario tests: a shipped profile wired to a mocked LAPOR!.

A scenario loads ``config/<name>.toml`` as it ships, points it at the respx-mocked LAPOR!
of the test kit (``lapor_mock``), a fresh SQLite database and a real SMTP server on
loopback (``smtp_sink``), and records what the notification channels were given.
"""

from __future__ import annotations

import copy
import io
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from bridge.config import settings_from_mapping
from bridge.domain import Notification
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.runtime import Runtime
from bridge.services.actions import CaseActions
from bridge.store.models import Case, CaseEvent, OutboxRow
from bridge.sync.push import strip_markers
from bridge.testing import FAKE_BASE_URL, FAKE_BEARER, FAKE_TOKEN, FakeLapor, SmtpSink

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("klaten", "lapor-dpmptsp", "prabumulih", "situbondo", "dharmasraya")


class Clock:
    """The time staff act at, moved on by the scenario."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return moment

    def __call__(self) -> datetime:
        return self.now.astimezone(UTC)


class Recorder:
    """A notification channel that keeps what it is given."""

    def __init__(self) -> None:
        self.notifications: list[Notification] = []

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)

    def kinds(self) -> list[str]:
        return [n.kind for n in self.notifications]

    def of(self, kind: str) -> list[Notification]:
        return [n for n in self.notifications if n.kind == kind]


def pdf_text(content: bytes) -> str:
    """A PDF's text as a reader extracts it, on one line."""
    text = "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.split())


def profile_data(name: str) -> dict[str, Any]:
    with (ROOT / "config" / f"{name}.toml").open("rb") as fh:
        return tomllib.load(fh)


@dataclass
class Deployment:
    """A shipped profile wired to the mocked LAPOR!, a temp database and a real SMTP."""

    rt: Runtime
    lapor: FakeLapor
    clock: Clock
    recorder: Recorder
    out_dir: Path
    smtp: SmtpSink | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def actions(self) -> CaseActions:
        actions = self.rt.actions()
        actions.clock = self.clock
        return actions

    def pull(self) -> list[int]:
        with self.rt.client() as client:
            result = self.rt.puller(client).run()
        self.rt.dispatch_events()
        return list(result.created_ids)

    def push(self) -> Any:
        with self.rt.client() as client:
            result = self.rt.pusher(client).run()
        self.rt.dispatch_events()
        return result

    def case(self, case_id: int) -> Case:
        with self.rt.sessions() as session:
            case = session.get(Case, case_id)
            assert case is not None
            session.expunge(case)
            return case

    def history(self, case_id: int) -> list[CaseEvent]:
        with self.rt.sessions() as session:
            rows = list(session.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id)
                                        .order_by(CaseEvent.id)))
            session.expunge_all()
            return rows

    def outbox(self, case_id: int) -> list[OutboxRow]:
        with self.rt.sessions() as session:
            rows = list(session.scalars(select(OutboxRow).where(OutboxRow.case_id == case_id)
                                        .order_by(OutboxRow.id)))
            session.expunge_all()
            return rows

    def deadlines(self, case_id: int) -> dict[str, Any]:
        with self.rt.sessions() as session:
            case = session.get(Case, case_id)
            assert case is not None
            return {d.name: d for d in self.rt.deadlines.all(session, case)}

    def posted(self, lapor_id: int) -> list[str]:
        """The follow-ups staff wrote that LAPOR! received for a report (without the
        bridge's marker); the endings the profile words are in :meth:`endings`."""
        return [strip_markers(f["content"])
                for f in self.lapor.followups.get(lapor_id, [])
                if not f.get("template_code") and not f.get("rating")]

    def endings(self, lapor_id: int) -> list[tuple[str, int, str]]:
        """The follow-ups with a template code or a rating LAPOR! received for a report:
        (template code, rating, text without the marker)."""
        return [(f["template_code"], f["rating"], strip_markers(f["content"]))
                for f in self.lapor.followups.get(lapor_id, [])
                if f.get("template_code") or f.get("rating")]

    def letters(self, lapor_id: int) -> list[tuple[str, list[tuple[str, str]]]]:
        """Each follow-up LAPOR! received for a report that carried files: its text (no
        marker) and each file as (name, its text: a PDF read back, or "" for an image)."""
        return [(strip_markers(f["content"]),
                 [(name, pdf_text(content) if content.startswith(b"%PDF-") else "")
                  for name, content in self.lapor.files.get(int(f["id"]), [])])
                for f in self.lapor.followups.get(lapor_id, [])
                if self.lapor.files.get(int(f["id"]))]

    def lapor_status(self, case_id: int) -> str | None:
        """The report's status on LAPOR! as the bridge has read it back (a pull)."""
        self.pull()
        return self.case(case_id).remote_status_name

    def emails_to(self, address: str) -> list[Any]:
        assert self.smtp is not None
        return [m for m in self.smtp.messages if address in str(m["To"])]


def make_deployment(name: str, tmp_path: Path, lapor: FakeLapor, start: datetime,
                    smtp: SmtpSink | None = None, **changes: Any) -> Deployment:
    """``config/<name>.toml`` with the database, LAPOR! and SMTP replaced for the test."""
    data = copy.deepcopy(profile_data(name))
    data["database"] = {"url": f"sqlite:///{tmp_path / (name + '.db')}"}
    data["lapor"].update(base_url=FAKE_BASE_URL, backoff_initial=0.01, backoff_max=0.05,
                         requests_per_second=1000)
    out_dir = tmp_path / "rekap"
    data.setdefault("reports", {})["out_dir"] = str(out_dir)
    if "notify_email" in data:
        if smtp is None:
            data["plugins"]["enable"] = [m for m in data["plugins"]["enable"]
                                         if m != "notify_email"]
            del data["notify_email"]
        else:
            data["notify_email"].update(host=smtp.host, port=smtp.port, security="none",
                                        timeout_seconds=5)
            data["notify_email"].pop("username", None)
            data["notify_email"].pop("password_env", None)
    for key, value in changes.items():
        data[key] = value
    lapor.institution_id = data["lapor"]["institution_id"]
    known = {i["id"] for i in lapor.institutions}
    for opd in data.get("opds", []):
        if opd.get("lapor_institution_id") and opd["lapor_institution_id"] not in known:
            lapor.institutions.append({"id": opd["lapor_institution_id"], "name": opd["name"]})
    settings = settings_from_mapping(
        data, source=str(tmp_path / f"{name}.toml"),
        env={"LAPOR_BRIDGE_BEARER": FAKE_BEARER, "LAPOR_BRIDGE_TOKEN": FAKE_TOKEN})
    rt = Runtime(settings)
    recorder = Recorder()
    rt.plugins = load_plugins(settings, calendar=rt.calendar, extra=[("recorder", recorder)])
    return Deployment(rt, lapor, Clock(start), recorder, out_dir, smtp, data)
