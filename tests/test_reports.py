"""Recap reports: periods, the [reports] section, figures, HTML (self-contained, inline SVG),
CSV, the ``report`` command and the scheduled ``run_recap``."""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.config import ConfigError, settings_from_mapping
from bridge.domain import Notification
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.reports.jobs import run_recap
from bridge.reports.period import PeriodError, parse_period, previous_period
from bridge.reports.recap import compute_recap
from bridge.reports.render import list_csv, render_html, summary_csv
from bridge.reports.settings import reports_settings
from bridge.services.actions import Actor, NewCase
from bridge.workflow.calendar import JAKARTA
from tests.support.settings import TEST_BEARER, TEST_TOKEN
from tests.support.times import wib

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")
KABID = Actor("Agus", "kabid")
KADIS = Actor("Hadi", "kepala_dinas")


# -- periods -----------------------------------------------------------------------


@pytest.mark.parametrize("text, kind, start, end, label", [
    ("2026-10", "monthly", date(2026, 10, 1), date(2026, 10, 31), "Oktober 2026"),
    ("2026-02", "monthly", date(2026, 2, 1), date(2026, 2, 28), "Februari 2026"),
    ("2026-S1", "semester", date(2026, 1, 1), date(2026, 6, 30),
     "Semester I (Januari–Juni) Tahun 2026"),
    ("2026-s2", "semester", date(2026, 7, 1), date(2026, 12, 31),
     "Semester II (Juli–Desember) Tahun 2026"),
    ("2026", "yearly", date(2026, 1, 1), date(2026, 12, 31), "Tahun 2026"),
    ("2026-08-17", "daily", date(2026, 8, 17), date(2026, 8, 17), "Senin, 17 Agustus 2026"),
])
def test_periods(text: str, kind: str, start: date, end: date, label: str) -> None:
    p = parse_period(text)
    assert (p.kind, p.start, p.end, p.label) == (kind, start, end, label)


@pytest.mark.parametrize("text, problem", [
    ("2026-13", "month 13 does not exist"),
    ("2026-S3", "unknown period"),
    ("Oktober", "unknown period 'Oktober'; expected YYYY-MM"),
    ("2026-02-30", "day is out of range"),
])
def test_bad_periods(text: str, problem: str) -> None:
    with pytest.raises(PeriodError, match=problem):
        parse_period(text)


def test_previous_periods() -> None:
    from bridge.workflow.calendar import calendar_from_mapping

    cal = calendar_from_mapping({"cuti_bersama": ["2026-03-18", "2026-03-20", "2026-03-23",
                                                  "2026-03-24"]})
    assert previous_period("monthly", wib(2026, 1, 1, 7), JAKARTA).code == "2025-12"  # type: ignore[union-attr]
    assert previous_period("semester", wib(2026, 1, 1, 7), JAKARTA).code == "2025-S2"  # type: ignore[union-attr]
    assert previous_period("semester", wib(2026, 7, 1, 7), JAKARTA).code == "2026-S1"  # type: ignore[union-attr]
    assert previous_period("yearly", wib(2026, 1, 2, 8), JAKARTA).code == "2025"  # type: ignore[union-attr]
    # Daily: from the previous working day to yesterday; nothing on a day off.
    assert previous_period("daily", wib(2026, 3, 23, 7), JAKARTA, cal) is None  # cuti bersama
    p = previous_period("daily", wib(2026, 3, 25, 7), JAKARTA, cal)  # after Idul Fitri
    assert p is not None and (p.start, p.end) == (date(2026, 3, 17), date(2026, 3, 24))
    p = previous_period("daily", wib(2026, 8, 19, 7), JAKARTA, cal)
    assert p is not None and (p.start, p.end, p.code) == (
        date(2026, 8, 18), date(2026, 8, 18), "2026-08-18")


# -- the [reports] section -------------------------------------------------------------


def settings_with(reports: dict[str, Any]) -> Any:
    return settings_from_mapping({"regency": {"name": "Kab. Uji", "code": "UJI"},
                                  "lapor": {"base_url": "http://127.0.0.1:9"},
                                  "reports": reports}, source="uji.toml", env={})


@pytest.mark.parametrize("reports, key, problem", [
    ({"outdir": "x"}, "reports.outdir", "unknown key"),
    ({"schedules": {"monthly": "tiap bulan"}}, "reports.schedules.monthly",
     "'tiap bulan' is not a crontab expression"),
    ({"schedules": {"weekly": "0 7 * * 1"}}, "reports.schedules.weekly",
     "unknown value 'weekly'"),
    ({"recipients": [{"name": "Bupati", "email": "bupati.go.id"}]},
     "reports.recipients.0.email", "'bupati.go.id' is not an e-mail address"),
    ({"recipients": [{"role": "kepala_daerah"}]}, "reports.recipients.0.name",
     "missing required key"),
    ({"recipients": [{"name": "Bupati", "periods": ["tahunan"]}]},
     "reports.recipients.0.periods.0", "unknown value 'tahunan'"),
])
def test_reports_section_is_validated(reports: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        reports_settings(settings_with(reports))
    assert err.value.key == key and problem in err.value.problem
    assert str(err.value).startswith(f"uji.toml: {key}: ")


# -- figures and files -------------------------------------------------------------------


def fill(rt: Any) -> dict[str, int]:
    """Four October cases: finished on time, finished late, open past the deadline, forwarded;
    one November case outside the period."""
    ids: dict[str, int] = {}

    def new(key: str, received: datetime, **kw: Any) -> Any:
        actions = rt.actions()
        actions.clock = lambda: received
        fields: dict[str, Any] = {"title": f"Pengaduan {key}", "content": "Isi rahasia pelapor Siti.",
                  "channel": "surat", "category": "Perizinan", "received_at": received,
                  "reporter": {"name": "Siti Nurhaliza", "phone": "0812999"}}
        fields.update(kw)
        ids[key] = actions.new_case(NewCase(**fields), PETUGAS).case_id
        return actions

    def answered(key: str, at: datetime) -> None:
        a = new(key, wib(2026, 10, 5))
        cid = ids[key]
        a.register(cid, PETUGAS)
        a.files_complete(cid, PETUGAS)
        a.classify(cid, ANALIS, "ringan")
        a.dispose(cid, KASI, "Seksi")
        a.followup(cid, ANALIS, "Sedang ditangani.")
        a.clock = lambda: at
        a.record_step(cid, ANALIS, "konsep_jawaban", "konsep")
        a.approve(cid, KABID, "surat_jawaban")
        a.approve(cid, KADIS, "surat_jawaban")
        a.answer_delivered(cid, PETUGAS, "Selesai.")

    answered("tepat", wib(2026, 10, 9))   # due 19 October (10 working days from 5 October)
    answered("terlambat", wib(2026, 10, 23))
    a = new("terbuka", wib(2026, 10, 6), channel="kotak", category=None)
    a.register(ids["terbuka"], PETUGAS)
    a = new("diteruskan", wib(2026, 10, 7), channel="email", category="=HYPERLINK(\"x\")")
    a.register(ids["diteruskan"], PETUGAS)
    a.files_complete(ids["diteruskan"], PETUGAS)
    a.forward(ids["diteruskan"], KASI, "DLH", ["pelapor"], "bukan kewenangan")
    new("november", wib(2026, 11, 2))
    return ids


def test_figures_and_files(runtime_factory: Any) -> None:
    rt = runtime_factory()
    fill(rt)
    with rt.sessions() as s:
        recap = compute_recap(s, rt.settings, rt.deadlines, parse_period("2026-10"),
                              as_of=wib(2026, 11, 3))
    assert (recap.received, recap.finished_on_time, recap.finished_late, recap.open,
            recap.open_overdue, recap.forwarded, recap.followups) == (4, 2, 1, 0, 1, 1, 5)
    assert {b.key: b.count for b in recap.group("kanal").bars} == {  # type: ignore[union-attr]
        "surat": 2, "kotak": 1, "email": 1}
    opd = {b.label: b.count for b in recap.group("opd").bars}  # type: ignore[union-attr]
    assert opd == {"Dinas Lingkungan Hidup": 1, "Ditangani sendiri (Kabupaten Uji)": 3}
    status = {line.register_no[-1]: line.status for line in recap.lines}
    assert status == {"1": "tepat_waktu", "2": "terlambat", "3": "proses_lewat",
                      "4": "tepat_waktu"}

    html = render_html(recap)
    assert "Oktober 2026" in html and "Selesai melewati batas waktu" in html
    # Self-contained: no scripts, no links, no external fetches; every chart is valid SVG.
    for forbidden in ("<script", "<link", "src=", "url(", "<img"):
        assert forbidden not in html
    assert set(re.findall(r"https?://[^\"' <]+", html)) == {"http://www.w3.org/2000/svg"}
    charts = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(charts) == len(recap.groups)  # the status chart + one per other group
    for chart in charts:
        ET.fromstring(chart)
    assert "&#34;" in html or "&quot;" in html  # the odd category is escaped, not markup
    # Privacy: no reporter, no complaint text.
    for text in (html, summary_csv(recap), list_csv(recap)):
        assert "Siti" not in text and "0812999" not in text and "rahasia" not in text

    rows = list(csv.reader(io.StringIO(list_csv(recap).lstrip("\ufeff"))))
    assert rows[0][:3] == ["no_register", "id_lapor", "perihal"] and len(rows) == 5
    assert "'=HYPERLINK(\"x\")" in [r[5] for r in rows]  # a formula stays text
    summary = list(csv.reader(io.StringIO(summary_csv(recap).lstrip("\ufeff"))))
    assert ["ringkasan", "selesai_terlambat", "Selesai melewati batas waktu", "1"] in summary
    assert summary_csv(recap).startswith("\ufeff")


class Channel:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.got: list[Notification] = []

    @hookimpl
    def notify(self, notification: Notification) -> None:
        if self.fail:
            raise ConnectionError("SMTP server unreachable")
        self.got.append(notification)


def test_run_recap_writes_and_notifies(runtime_factory: Any, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    reports = {"out_dir": str(tmp_path / "rekap"), "office": "DPMPTSP Kabupaten Uji",
               "schedules": {"monthly": "0 7 1 * *"},
               "recipients": [
                   {"name": "Bupati Uji", "via": "Sekretaris Daerah", "email": "bupati@uji.go.id",
                    "periods": ["monthly"]},
                   {"name": "Kepala Dinas", "role": "kepala_dinas", "periods": ["yearly"]}]}
    rt = runtime_factory(reports=reports)
    fill(rt)
    good, broken = Channel(), Channel(fail=True)
    rt.plugins = load_plugins(rt.settings, calendar=rt.calendar,
                              extra=[("good", good), ("broken", broken)])
    paths = run_recap(rt, "monthly", now=wib(2026, 11, 1, 7))
    assert [p.name for p in paths] == ["rekapitulasi-uji-2026-10.html",
                                       "rekapitulasi-uji-2026-10.csv",
                                       "rekapitulasi-uji-2026-10-daftar.csv",
                                       "rekapitulasi-uji-2026-10.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)
    (message,) = good.got
    assert message.kind == "recap" and message.recipients == ("bupati@uji.go.id",)
    assert message.subject == "[Kabupaten Uji] Rekapitulasi Pengaduan dan Tindak Lanjut: " \
                              "Oktober 2026"
    assert "Yth. Bupati Uji (melalui Sekretaris Daerah)" in message.body
    assert "Pengaduan diterima                  : 4" in message.body
    # File names, never server paths; the PDF is attached.
    assert paths[0].name in message.body and str(paths[0].parent) not in message.body
    assert [a for a in message.attachments if a.endswith(".pdf")] == \
        [str(p) for p in paths if p.suffix == ".pdf"]
    assert "SMTP server unreachable" in caplog.text  # the broken channel is logged ...
    with pytest.raises(ValueError, match="unknown recap kind"):
        run_recap(rt, "weekly", now=wib(2026, 11, 1, 7))


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "uji.toml"
    path.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "http://127.0.0.1:9"

[database]
url = "sqlite:///{tmp_path / 'uji.db'}"

[plugins]
entry_points = false
{extra}
""", encoding="utf-8")
    return path


def test_report_command(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "keluar"
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    runner = CliRunner()
    done = runner.invoke(main, ["report", "--config", str(config), "--period", "2026-S1",
                                "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["rekapitulasi-uji-2026-S1-daftar.csv", "rekapitulasi-uji-2026-S1.csv",
                     "rekapitulasi-uji-2026-S1.html", "rekapitulasi-uji-2026-S1.pdf"]
    html = (out / "rekapitulasi-uji-2026-S1.html").read_text(encoding="utf-8")
    assert "Tidak ada pengaduan yang diterima pada periode ini." in html
    assert "Menurut bulan diterima" in html  # a semester shows its months

    bad = runner.invoke(main, ["report", "--config", str(config), "--period", "2026-Q1"],
                        env=env)
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "error: --period: unknown period '2026-Q1'; expected YYYY-MM (month), YYYY-S1 or "
        "YYYY-S2 (semester), YYYY (year) or YYYY-MM-DD (day)"]

    wrong = write_config(tmp_path, '\n[reports]\nout_dir = "x"\nrecipient = []\n')
    bad = runner.invoke(main, ["report", "--config", str(wrong), "--period", "2026"], env=env)
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        f"error: {wrong}: reports.recipient: unknown key"]


def test_web_page_uses_the_official_figures(runtime_factory: Any) -> None:
    from bridge.reports.recap import Recap, recap_of_days

    rt = runtime_factory()
    fill(rt)
    with rt.sessions() as s:
        figures = recap_of_days(s, rt.settings, rt.workflow, date(2026, 10, 1),
                                date(2026, 10, 31), now=wib(2026, 11, 3))
    assert isinstance(figures, Recap)
    assert (figures.received, figures.finished, figures.open_overdue) == (4, 3, 1)
