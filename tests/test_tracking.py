"""Tracking by id against the sandbox: adopting, an unknown id, polling follow-ups and
status changes made on LAPOR!, the inbox-404 fallback, and cases the push creates."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge.app.cycle import adopt, run_cycle
from bridge.cli import main
from bridge.lapor.sandbox import SandboxServer
from bridge.services.actions import Actor, NewCase
from bridge.store.models import Case, CaseEvent, QuarantinedItem, SyncCursor, TrackedCase, utcnow
from bridge.sync.track import NO_INBOX, NO_INBOX_TEXT, Adopted, AdoptError
from tests.support.settings import TEST_BEARER, TEST_TOKEN

NO_INBOX_CONFIG = {"inbox_path": ""}


pytestmark = pytest.mark.sandbox(seed=5, reports=8)


def _ids(sandbox: SandboxServer) -> list[int]:
    return [r["id"] for r in sandbox.state.reports()]


def _events(rt: Any, case_id: int, kind: str) -> list[CaseEvent]:
    with rt.sessions() as s:
        return list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                      CaseEvent.kind == kind)))


def _followup_on_lapor(sandbox: SandboxServer, lapor_id: int, text: str) -> None:
    """A follow-up posted on LAPOR! by another body (Dinas Lingkungan Hidup, 102)."""
    r = httpx.post(f"{sandbox.url}/complaints/followup/add", headers=sandbox.auth_headers(),
                   data={"complaint_id": str(lapor_id), "user_id": "55",
                         "institution_from_id": "102", "institution_to_id": "1",
                         "content": text})
    assert r.status_code == 200, r.text


def _patch_on_lapor(sandbox: SandboxServer, lapor_id: int, **fields: Any) -> None:
    r = httpx.patch(f"{sandbox.origin}/_sandbox/reports/{lapor_id}", json=fields)
    assert r.status_code == 200, r.text


def test_adopt_makes_the_case_as_the_pull_would(runtime_factory: Any,
                                                sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, lapor=NO_INBOX_CONFIG)
    lapor_id = _ids(sandbox)[3]
    [outcome] = adopt(rt, [lapor_id])
    assert isinstance(outcome, Adopted) and outcome.created and not outcome.already
    report = sandbox.state.report(lapor_id)
    with rt.sessions() as s:
        case = s.get(Case, outcome.case_id)
        assert case is not None
        assert case.lapor_id == lapor_id and case.channel == "lapor"
        assert case.register_no.startswith("UJI/ADU/") and case.deadline_at is not None
        assert case.title == report["title"] and case.remote_status_code == report["status_code"]
        tracked = s.get(TrackedCase, lapor_id)
        assert tracked is not None and tracked.origin == "adopted" and tracked.polls == 1
        assert tracked.next_due_at > utcnow() and tracked.failures == 0
    # History: received, and LAPOR!'s earlier follow-ups (none of them marked new).
    assert len(_events(rt, outcome.case_id, "received")) == 1
    earlier = sandbox.state.followups_of(lapor_id)
    assert len(_events(rt, outcome.case_id, "remote_followup")) == len(earlier)
    # Adopting again changes nothing.
    [again] = adopt(rt, [lapor_id])
    assert isinstance(again, Adopted) and again.already and again.case_id == outcome.case_id
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Case)) == 1


def test_unknown_id_is_named_and_nothing_is_stored(runtime_factory: Any,
                                                   sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, lapor=NO_INBOX_CONFIG)
    [outcome] = adopt(rt, [987654])
    assert isinstance(outcome, AdoptError)
    assert "does not know report 987654" in str(outcome) and "nothing was stored" in str(outcome)
    with rt.sessions() as s:
        for model in (Case, TrackedCase, CaseEvent, QuarantinedItem):
            assert s.scalar(select(func.count()).select_from(model)) == 0


def test_polling_brings_followup_and_status_change(runtime_factory: Any,
                                                   sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, lapor=NO_INBOX_CONFIG)
    lapor_id = _ids(sandbox)[1]
    [outcome] = adopt(rt, [lapor_id])
    assert isinstance(outcome, Adopted)
    case_id = outcome.case_id
    with rt.sessions() as s, s.begin():
        case = s.get(Case, case_id)
        assert case is not None
        case.is_new = False
        case.severity = "sedang"            # a local field: tracking never touches it
        case.assigned_to = "Seksi Penanganan"
    # Nothing is due right after adopting: a plain cycle polls nothing.
    quiet = run_cycle(rt)
    assert quiet["track"]["polled"] == 0
    _followup_on_lapor(sandbox, lapor_id, "Sudah kami tinjau ke lokasi, mohon ditunggu.")
    _patch_on_lapor(sandbox, lapor_id, status_code="3")
    report = run_cycle(rt, refresh_all=True)
    assert report["track"]["polled"] == 1 and report["track"]["followups"] == 1
    assert any(line.startswith("inbox not available") for line in report["lines"])
    with rt.sessions() as s:
        case = s.get(Case, case_id)
        assert case is not None
        assert case.remote_status_code == "3" and case.is_new
        assert case.severity == "sedang" and case.assigned_to == "Seksi Penanganan"
        tracked = s.get(TrackedCase, lapor_id)
        assert tracked is not None and tracked.last_change_seen_at is not None
    [fu] = [e for e in _events(rt, case_id, "remote_followup")
            if "tinjau ke lokasi" in (e.note or "")]
    assert fu.side == "remote" and (fu.actor or "").startswith("Dinas Lingkungan Hidup")
    changed = _events(rt, case_id, "remote_changed")
    assert any("remote_status_code" in (e.changes or {}) for e in changed)
    # Polled again with nothing new: no new history.
    run_cycle(rt, refresh_all=True)
    assert len(_events(rt, case_id, "remote_changed")) == len(changed)
    assert len([e for e in _events(rt, case_id, "remote_followup")
                if "tinjau ke lokasi" in (e.note or "")]) == 1


def test_a_stale_detail_never_wins(runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, lapor=NO_INBOX_CONFIG)
    lapor_id = _ids(sandbox)[2]
    [outcome] = adopt(rt, [lapor_id])
    assert isinstance(outcome, Adopted)
    with rt.sessions() as s, s.begin():
        case = s.get(Case, outcome.case_id)
        assert case is not None and case.remote_updated_at is not None
        case.remote_updated_at = utcnow() + timedelta(days=1)   # we hold something newer
        case.title = "judul yang lebih baru"
    report = run_cycle(rt, refresh_all=True)
    assert report["track"]["stale"] == 1
    with rt.sessions() as s:
        case = s.get(Case, outcome.case_id)
        assert case is not None and case.title == "judul yang lebih baru"


def test_inbox_404_falls_back_to_tracking(runtime_factory: Any, sandbox: SandboxServer) -> None:
    # First with a working inbox: the reports arrive by the pull.
    rt = runtime_factory(sandbox.url)
    first = run_cycle(rt)
    assert first["pull"]["created"] == 8
    # Then the inbox is gone (the path answers 404): the sync does not fail, says so once,
    # and follows the cases it has by id.
    rt = runtime_factory(sandbox.url, lapor={"inbox_path": "/complaints/no-such-inbox"})
    report = run_cycle(rt)
    assert "pull" not in report and report["inbox"].startswith("not available")
    assert any("404" in line for line in report["lines"] if line.startswith("inbox not"))
    with rt.sessions() as s:
        tracked = list(s.scalars(select(TrackedCase)))
        assert len(tracked) == 8 and {t.origin for t in tracked} == {"inbox"}
        row = s.get(SyncCursor, NO_INBOX)
        assert row is not None and "404" in (row.last_error or "")
        inbox = s.get(SyncCursor, "inbox")
        assert inbox is not None and inbox.last_error is None
    lapor_id = _ids(sandbox)[0]
    _patch_on_lapor(sandbox, lapor_id, status_code="4")
    report = run_cycle(rt, refresh_all=True)
    assert report["track"]["polled"] == 8 and report["track"]["failed"] == 0
    with rt.sessions() as s:
        case = s.scalars(select(Case).where(Case.lapor_id == lapor_id)).one()
        assert case.remote_status_code == "4"
        tracked_row = s.get(TrackedCase, lapor_id)
        assert tracked_row is not None and tracked_row.closed   # "4" (Diarsipkan) closes
    # `status` says it.
    from bridge.daemon.health import collect, render_text
    from bridge.daemon.settings import daemon_settings

    health = collect(rt.engine, rt.sessions, daemon_settings(rt.settings))
    text = "\n".join(render_text(health, "Asia/Jakarta"))
    closed = sum(1 for r in sandbox.state.reports() if r["status_code"] in ("3", "4", "5"))
    assert NO_INBOX_TEXT in text and f"tracked cases: {8 - closed} open, {closed} closed" in text
    assert not any("newest LAPOR! change" in p for p in health.problems)
    # The inbox comes back: the note goes.
    rt = runtime_factory(sandbox.url)
    run_cycle(rt)
    with rt.sessions() as s:
        assert s.get(SyncCursor, NO_INBOX) is None


def test_cases_the_bridge_creates_are_tracked(runtime_factory: Any,
                                              sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, lapor=NO_INBOX_CONFIG)
    made = rt.actions().new_case(NewCase(
        title="Lampu jalan mati di Jl. Merdeka", content="Sudah seminggu lampu mati.",
        channel="surat"), Actor("Petugas", "petugas"))
    run_cycle(rt)
    with rt.sessions() as s:
        case = s.get(Case, made.case_id)
        assert case is not None and case.lapor_id is not None
        tracked = s.get(TrackedCase, case.lapor_id)
        assert tracked is not None and tracked.origin == "created"
        assert tracked.case_id == made.case_id
    report = run_cycle(rt)   # due at once: the next run reads it back
    assert report["track"]["polled"] == 1 and report["track"]["failed"] == 0


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, sandbox: SandboxServer) -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "{sandbox.url}"
inbox_path = ""
requests_per_second = 500

[database]
url = "sqlite:///{tmp_path / 'b.db'}"
""")
    return path


def _cli(config: Path, *args: str) -> Any:
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    return CliRunner().invoke(main, ["--config", str(config), *args], env=env,
                              catch_exceptions=False)


def test_cli_case_track_and_refresh_all(config: Path, sandbox: SandboxServer) -> None:
    lapor_id = _ids(sandbox)[4]
    result = _cli(config, "case", "track", str(lapor_id))
    assert result.exit_code == 0, result.output
    assert f"{lapor_id}: UJI/" in result.output and "new case, tracked" in result.output
    bad = _cli(config, "case", "track", "424242")
    assert bad.exit_code == 1 and "does not know report 424242" in bad.output
    nonsense = _cli(config, "case", "track", "abc")
    assert nonsense.exit_code == 2 and "not a LAPOR! id" in nonsense.output
    _followup_on_lapor(sandbox, lapor_id, "Tanggapan dari dinas.")
    synced = _cli(config, "sync", "--once", "--refresh-all")
    assert synced.exit_code == 0, synced.output
    assert "track: 1 of 1 due polled, 1 changed, 1 new follow-ups" in synced.output
    shown = _cli(config, "case", "show", f"lapor:{lapor_id}", "--json")
    assert "Tanggapan dari dinas." in shown.output
