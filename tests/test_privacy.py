"""Privacy of the reporter, across every output the bridge has.

- A *rahasia* (secret) report forwarded to another OPD or body carries no reporter
  identity in what LAPOR! (and so the OPD or body) receives.
- An *anonim* report shows no identity anywhere: queue JSON, ``case show`` (JSON and text),
  notifications (as rendered, and as e-mailed), recap HTML and CSV, logs, the outbox,
  plugin snapshots -- even when LAPOR! wrongly sends the reporter along.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.domain import CaseSnapshot
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.reports.jobs import run_recap
from bridge.services.actions import Actor
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_new_cases
from bridge.store.models import Case, OutboxRow, PendingEvent
from bridge.testing import FAKE_BASE_URL, FAKE_BEARER, FAKE_TOKEN, FakeLapor, SmtpSink
from tests.support.profiles import ROOT, Deployment, make_deployment, pdf_text
from tests.support.times import wib

SECRET = ("Bambang Rahasia Wijaya", "bambang.rahasia@example.id", "081399887766")
ANON = ("Ani Anonim Sekali", "ani.anonim@example.id", "085711112222")
STAF = Actor("Rina (Staf Pengaduan)", "petugas")
SUBKOOR = Actor("Bambang S. (Sub Koordinator)", "sub_koordinator")


class Spy:
    """What plugins are shown of the reporter."""

    def __init__(self) -> None:
        self.reporters: dict[int, object] = {}

    @hookimpl
    def case_received(self, case: CaseSnapshot) -> None:
        self.reporters[case.id] = case.reporter


def leaks(text: str, identity: tuple[str, ...]) -> list[str]:
    return [part for part in identity if part in text]


@pytest.fixture
def world(tmp_path: Path, lapor_mock: FakeLapor, smtp_sink: SmtpSink,
          caplog: pytest.LogCaptureFixture) -> Iterator[Deployment]:
    caplog.set_level(logging.DEBUG)
    name, email, phone = SECRET
    for rid, title in ((7401, "Limbah pabrik batik ke sungai"), (7403, "Sengketa tanah kas desa")):
        lapor_mock.add_report(id=rid, title=title, content="Mohon ditindaklanjuti.",
                              is_secret=1, created_at=wib(2026, 8, 3, 9),
                              reporter={"name": name, "email": email, "phone": phone})
    lapor_mock.add_report(id=7402, title="Pungutan liar di loket", content="Ada pungutan.",
                          is_anonymous=1, created_at=wib(2026, 8, 3, 9),
                          reporter={"name": ANON[0], "email": ANON[1], "phone": ANON[2]})
    d = make_deployment("klaten", tmp_path, lapor_mock, wib(2026, 8, 3, 10), smtp_sink)
    spy = Spy()
    d.rt.plugins = load_plugins(d.rt.settings, calendar=d.rt.calendar,
                                extra=[("recorder", d.recorder), ("spy", spy)])
    d.data["spy"] = spy
    ids = d.pull()
    triage_new_cases(d.rt, ids, now=d.clock.now)
    by_lapor = {d.case(i).lapor_id: i for i in ids}
    d.data["ids"] = by_lapor
    a = d.actions()
    for cid in by_lapor.values():
        a.register(cid, STAF)
        a.files_complete(cid, STAF)
    a.forward(by_lapor[7401], SUBKOOR, "DLH", ["Pelapor", "Camat Kalikotes"],
              "Pengawasan limbah adalah kewenangan DLH")
    a.forward(by_lapor[7403], STAF, "BPN", ["Pelapor"], "Pertanahan: kewenangan BPN")
    a.dispose(by_lapor[7402], STAF, "Sub Koordinator Pelayanan Pengaduan")
    a.followup(by_lapor[7402], SUBKOOR, "Pungutan sedang kami periksa.")
    d.push()
    sweep_deadlines(d.rt, wib(2026, 8, 20, 8))  # missed and escalated: notifications
    d.rt.dispatch_events()
    run_recap(d.rt, "monthly", now=wib(2026, 9, 1, 7))
    d.rt.dispatch_events()
    yield d
    d.rt.close()


def test_rahasia_forwarded_carries_no_identity(world: Deployment, lapor_mock: FakeLapor) -> None:
    # What went to LAPOR!: the disposition to the OPD and the "bukan wewenang" to the body.
    assert [f["institution_to"]["id"] for f in lapor_mock.followups[7401]] == [41290]
    assert [(f["complaint_id"], f["reason"]) for f in lapor_mock.forwards] == [(7403, 3871)]
    for request in lapor_mock.requests:
        body = request.content.decode("utf-8", "replace")
        assert leaks(body + str(request.url), SECRET) == []
    assert "Tembusan: Pelapor; Camat Kalikotes" in lapor_mock.followups[7401][0]["content"]
    # The store keeps the secret identity for our own admin only.
    with world.rt.sessions() as s:
        case = s.get(Case, world.data["ids"][7401])
        assert case is not None and (case.reporter or {}).get("name") == SECRET[0]
        rows = list(s.scalars(select(OutboxRow)))
    for row in rows:
        assert leaks(json.dumps(row.payload, ensure_ascii=False), SECRET) == []
    # Plugins see the rahasia reporter (they work for our office), but not the anonim one.
    spy = world.data["spy"]
    assert spy.reporters[world.data["ids"][7401]] is not None
    assert spy.reporters[world.data["ids"][7402]] is None


def test_anonim_shows_no_identity_anywhere(world: Deployment, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    anon_id = world.data["ids"][7402]
    outputs: dict[str, str] = {}
    with world.rt.sessions() as s:
        case = s.get(Case, anon_id)
        assert case is not None and case.reporter is None
        outputs["case.data"] = json.dumps(case.data, ensure_ascii=False)
        outputs["outbox"] = json.dumps([r.payload for r in s.scalars(select(OutboxRow))],
                                       ensure_ascii=False)
        outputs["pending events"] = json.dumps([e.data for e in s.scalars(select(PendingEvent))],
                                               ensure_ascii=False)
    # Notifications: as rendered for the channels, and as the SMTP server received them.
    assert {"case_received", "deadline_missed", "escalated", "recap"} <= set(
        world.recorder.kinds())
    outputs["notifications"] = "\n".join(
        n.subject + n.body + json.dumps(dict(n.data), ensure_ascii=False)
        for n in world.recorder.notifications)
    assert world.smtp is not None and world.smtp.messages
    outputs["e-mails"] = "\n".join(m.as_string() for m in world.smtp.messages)
    anon_mail = [n for n in world.recorder.notifications if n.case_id == anon_id]
    assert anon_mail and all("Pelapor        : Anonim" in n.body for n in anon_mail)
    # Recap files.
    for path in sorted(world.out_dir.iterdir()):
        outputs[path.name] = pdf_text(path.read_bytes()) if path.suffix == ".pdf" else path.read_text(
            encoding="utf-8")
    # What LAPOR! was sent.
    outputs["lapor"] = "\n".join(r.content.decode("utf-8", "replace")
                                 for r in world.lapor.requests)
    # The command line, as staff use it.
    config = (ROOT / "config" / "klaten.toml").read_text(encoding="utf-8")
    config = config.replace("postgresql+psycopg://lapor_bridge@127.0.0.1:5432/"
                            "lapor_bridge_klaten", f"sqlite:///{tmp_path / 'klaten.db'}")
    config = config.replace("https://api-splp.layanan.go.id/lapor/3.0.0", FAKE_BASE_URL)
    path = tmp_path / "klaten-cli.toml"
    path.write_text(config, encoding="utf-8")
    env = {"LAPOR_BRIDGE_BEARER": FAKE_BEARER, "LAPOR_BRIDGE_TOKEN": FAKE_TOKEN}
    runner = CliRunner()
    for args in (["queue", "--json"], ["case", "show", str(anon_id), "--json"],
                 ["case", "show", str(anon_id)], ["queue"]):
        done = runner.invoke(main, [*args, "--config", str(path)], env=env)
        assert done.exit_code == 0, done.output
        outputs[" ".join(args)] = done.output
    shown = json.loads(outputs[f"case show {anon_id} --json"])
    assert shown["reporter"] == "(anonim)"
    assert "(anonim)" in outputs[f"case show {anon_id}"]
    secret = runner.invoke(main, ["case", "show", str(world.data["ids"][7401]), "--json",
                                  "--config", str(path)], env=env)
    assert json.loads(secret.output)["reporter"] == "(rahasia)"
    outputs["case show rahasia"] = secret.output
    outputs["logs"] = caplog.text
    for where, text in outputs.items():
        assert leaks(text, ANON) == [], f"anonymous reporter shown in {where}"
    for where in ("queue --json", "queue", "notifications", "e-mails", "logs", "lapor",
                  "case show rahasia", *[k for k in outputs if k.startswith("rekapitulasi")]):
        assert leaks(outputs[where], SECRET) == [], f"secret reporter shown in {where}"


def test_anonim_identity_is_not_kept_in_the_store(world: Deployment) -> None:
    with world.rt.sessions() as s:
        case = s.get(Case, world.data["ids"][7402])
        assert case is not None
        assert leaks(json.dumps(case.raw, ensure_ascii=False), ANON) == []
