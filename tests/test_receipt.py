"""Deadlines count from when a report reached our body (issue 13, item 1): LAPOR!'s
disposition to us, the date of receipt of a letter, or what the profile says instead."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.services.receipt import BadReceipt, check_received_at, parse_received_at
from bridge.store.models import Case
from bridge.sync.receipt import disposed_at
from bridge.testing import FakeLapor
from bridge.workflow import CaseTimeline, WorkingCalendar, build_workflow, overall_deadline
from bridge.workflow.calendar import JAKARTA
from tests.support.profiles import make_deployment
from tests.support.settings import TEST_BEARER, TEST_TOKEN
from tests.support.times import wib

FILED = wib(2026, 10, 6, 10)      # Tuesday
DISPOSED = wib(2026, 11, 2, 10)   # Monday, 27 days later


def end_of(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 23, 59, 59, tzinfo=JAKARTA)


@pytest.mark.parametrize(("clock", "due"), [
    ("received", end_of(2026, 11, 16)),
    ("filed", end_of(2026, 10, 20)),
])
def test_the_profile_chooses_what_starts_the_clock(clock: str, due: datetime) -> None:
    wf = build_workflow({"deadlines": {"overall": {"amount": 10, "counted_from": clock}}})
    tl = CaseTimeline(received_at=DISPOSED, filed_at=FILED)
    assert overall_deadline(wf, WorkingCalendar(), tl).due_at == due


def test_registered_clock_waits_for_registration() -> None:
    wf = build_workflow({"deadlines": {"overall": {"amount": 10,
                                                   "counted_from": "registered"}}})
    waiting = overall_deadline(wf, WorkingCalendar(), CaseTimeline(received_at=DISPOSED))
    assert waiting.due_at is None and "registrasi" in waiting.basis
    tl = CaseTimeline(received_at=DISPOSED, registered_at=wib(2026, 11, 3))
    assert overall_deadline(wf, WorkingCalendar(), tl).due_at == end_of(2026, 11, 17)


def test_disposition_log_is_the_last_matching_note() -> None:
    logs = [{"note": "Laporan diterima", "timestamp": "2026-10-06T03:00:00Z"},
            {"note": "Didisposisikan ke DPMPTSP", "timestamp": "2026-10-07T03:00:00Z"},
            {"note": "Dikembalikan, didisposisikan ulang", "timestamp": "2026-11-02T03:00:00Z"},
            {"note": "Disposisi", "timestamp": "bukan tanggal"}]
    assert disposed_at(logs) == wib(2026, 11, 2, 10)
    assert disposed_at(logs[:1]) is None


def test_report_disposed_27_days_after_filing_is_due_10_working_days_after(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    lapor_mock.add_report(id=7001, created_at=FILED, updated_at=DISPOSED,
                          disposed_at=DISPOSED)
    # A listing without logs: the first time the bridge sees the report stands in.
    lapor_mock.add_report(id=7002, created_at=FILED, updated_at=DISPOSED, status_logs=[])
    d = make_deployment("prabumulih", tmp_path, lapor_mock, DISPOSED)
    try:
        before = datetime.now(JAKARTA)
        [first, second] = sorted(d.pull())
        case = d.case(first)
        assert case.filed_at == FILED and case.received_at == DISPOSED
        spec = d.rt.workflow.profile.deadlines.overall
        assert spec.counted_from == "received"
        assert case.deadline_at == d.rt.calendar.add_working_days(DISPOSED, spec.amount)
        other = d.case(second)
        assert other.filed_at == FILED and other.received_at >= before
        # Tracking reads the detail later: LAPOR!'s logs replace the stand-in.
        lapor_mock.change_report(7002, status_logs=[
            {"note": "Didisposisikan ke DPMPTSP", "timestamp": "2026-11-02T03:00:00Z"}])
        d.pull()
        other = d.case(second)
        assert other.received_at == DISPOSED
        assert other.deadline_at == case.deadline_at
    finally:
        d.rt.close()


def test_received_at_is_checked() -> None:
    now = wib(2026, 11, 30, 8)
    assert parse_received_at("2026-11-02", "Asia/Jakarta") == wib(2026, 11, 2, 0)
    assert parse_received_at("2026-11-02T09:30", "Asia/Jakarta") == wib(2026, 11, 2, 9, 30)
    with pytest.raises(BadReceipt, match="not YYYY-MM-DD"):
        parse_received_at("2 November", "Asia/Jakarta")
    with pytest.raises(BadReceipt, match="in the future"):
        check_received_at(wib(2026, 12, 1), now, "Asia/Jakarta", None)
    with pytest.raises(BadReceipt, match="before the regency's start date 2026-01-01"):
        check_received_at(wib(2025, 12, 31), now, "Asia/Jakarta",
                          datetime(2026, 1, 1).date())


def _run(config: Path, *args: str) -> Any:
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    return CliRunner().invoke(main, ["--config", str(config), *args], env=env)


def test_letter_received_at_is_due_10_working_days_later(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"
started_on = 2026-01-01

[lapor]
base_url = "http://127.0.0.1:9"

[database]
url = "sqlite:///{tmp_path / 'b.db'}"

[workflow.deadlines.overall]
amount = 10
unit = "working_days"
""", encoding="utf-8")
    new = ["case", "new", "--title", "Surat keluhan", "--content", "Izin belum terbit",
           "--channel", "surat", "--role", "petugas", "--json"]
    result = _run(config, *new, "--received-at", "2026-11-02")
    assert result.exit_code == 0, result.output
    case_id = json.loads(result.stdout)["case_id"]
    shown = _run(config, "case", "show", str(case_id), "--json")
    case = json.loads(shown.stdout)["case"]
    assert case["deadline_at"].startswith("2026-11-16")
    assert datetime.fromisoformat(case["received_at"]) == wib(2026, 11, 2, 0)
    for bad, why in (("2099-01-01", "in the future"),
                     ("2025-12-31", "before the regency's start date"),
                     ("kemarin", "not YYYY-MM-DD")):
        result = _run(config, *new, "--received-at", bad)
        assert result.exit_code == 1 and why in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    from sqlalchemy import create_engine, func, select
    engine = create_engine(f"sqlite:///{tmp_path / 'b.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Case)).scalar() == 1
    engine.dispose()
