"""A broken profile never starts: ``lapor-bridge check-config`` names the file, the key and
the problem in one line and exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from tests.support.cli import Ran, run_cli

ROOT = Path(__file__).resolve().parents[1]

BASE = """
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "https://api-splp.layanan.go.id/lapor/3.0.0"
bearer_header = "auth"

[database]
url = "sqlite:///uji.db"

[plugins]
entry_points = false
"""

CASES = [
    pytest.param(
        '[workflow.stages.verifikasi_ulang]\nlabel = "Verifikasi ulang"\n',
        "workflow.stages.verifikasi_ulang",
        "unreachable from the initial stage 'received': no transition leads to it",
        id="unreachable-stage"),
    pytest.param(
        '[workflow.transitions.archive]\nto = "arsip"\n',
        "workflow.transitions.archive.to", "unknown stage 'arsip'; known stages: ",
        id="transition-to-unknown-stage"),
    pytest.param(
        '[workflow.deadlines.overall]\namount = 14\nunit = "hari"\n',
        "workflow.deadlines.overall.unit",
        "unknown value 'hari'; expected 'working_days' or 'calendar_days'",
        id="deadline-in-unknown-units"),
    pytest.param(
        '[workflow.stages.tpp.deadline]\namount = 5\nunit = "jam"\n'
        '[workflow.stages.tpp]\nlabel = "TPP"\n',
        "workflow.stages.tpp.deadline.unit",
        "unknown value 'jam'; expected 'working_days' or 'calendar_days'",
        id="stage-deadline-in-unknown-units"),
    pytest.param(
        '[workflow.roles.bupati]\nlabel = "Bupati"\n',
        "workflow.roles.bupati",
        "not used by any transition, approval step, class or escalation level",
        id="role-no-step-uses"),
    pytest.param(
        '[workflow.approvals.bapp]\nlabel = "BAPP"\nnumbered = true\n'
        'steps = [{ role = "kabid", kind = "paraf" }]\n',
        "workflow.approvals.bapp.number_format", "a numbered document needs a number_format",
        id="numbered-without-format"),
    pytest.param(
        '[workflow.deadlines.escalation]\ncounted_from = "entered:tim"\n',
        "workflow.deadlines.escalation.counted_from", "unknown stage 'tim'",
        id="escalation-from-unknown-stage"),
    pytest.param(
        '[calendar]\ncuti_bersama = ["2026-02-30"]\n',
        "calendar.cuti_bersama[0]", "day is out of range for month",
        id="impossible-cuti-bersama"),
    pytest.param(
        '[reports]\nout_dir = "rekap"\n[reports.schedules]\nmonthly = "tiap tanggal 1"\n',
        "reports.schedules.monthly", "'tiap tanggal 1' is not a crontab expression",
        id="recap-schedule-not-a-crontab"),
    pytest.param(
        '[[reports.recipients]]\nname = "Bupati"\nperiods = ["mingguan"]\n',
        "reports.recipients.0.periods.0", "unknown value 'mingguan'",
        id="recap-period-unknown"),
    pytest.param(
        '[workflow.stages.classified]\ndrop = true\n',
        "workflow.transitions.classify.to", "unknown stage 'classified'",
        id="dropped-stage-still-named"),
]


def check(path: Path) -> Ran:
    return run_cli("check-config", str(path), cwd=ROOT)


def check_in_a_process(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", "check-config", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.mark.parametrize("snippet, key, problem", CASES)
def test_check_config_names_file_key_and_problem(tmp_path: Path, snippet: str, key: str,
                                                 problem: str) -> None:
    path = tmp_path / "uji.toml"
    path.write_text(BASE + snippet, encoding="utf-8")
    done = CliRunner().invoke(main, ["check-config", str(path)])
    assert done.exit_code == 2, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {path}: {key}: "), lines[0]
    assert problem in lines[0]
    assert done.stdout == ""


def test_in_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "uji.toml"
    path.write_text(BASE + '[workflow.roles.bupati]\nlabel = "Bupati"\n', encoding="utf-8")
    proc = check_in_a_process(path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}: workflow.roles.bupati: not used by any transition, approval step, "
        "class or escalation level"]


def test_a_profile_copied_from_a_shipped_one_passes(tmp_path: Path) -> None:
    text = (ROOT / "config" / "prabumulih.toml").read_text(encoding="utf-8")
    path = tmp_path / "kota-baru.toml"
    path.write_text(text.replace('name = "Kota Prabumulih"', 'name = "Kota Baru"'),
                    encoding="utf-8")
    done = CliRunner().invoke(main, ["check-config", str(path)])
    assert done.exit_code == 0, done.output
    assert "ok (Kota Baru, PBM)" in done.stdout
