"""Dharmasraya (seed 004): intake within a working day, the explanation, the satisfaction
loop (Tim Penanganan Pengaduan 5 days, then the Kepala DPMPTSP 8 days), 14 working days in
all, the statement of satisfaction that closes the case, the daily box check and the yearly
report to the Bupati. Received on Wednesday 12 August 2026: the 14 working days skip
17 August (Hari Kemerdekaan) and 25 August (Maulid Nabi)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.reports.jobs import run_recap
from bridge.services.actions import ActionNotAllowed, Actor, NewCase, Upload
from bridge.services.sweep import sweep_deadlines
from bridge.testing import FakeLapor
from tests.support.profiles import Deployment, make_deployment
from tests.support.times import end_of, wib

PETUGAS = Actor("Rahmat Hidayat (Petugas Layanan Pengaduan)", "petugas")
TPP = Actor("Tim Penanganan Pengaduan (ketua: Zulkifli, S.E.)", "tim_penanganan_pengaduan")
KADIS = Actor("Ir. Budi Santoso (Kepala DPMPTSP)", "kepala_dinas")


def explained(d: Deployment, lapor: FakeLapor) -> int:
    lapor.add_report(id=5501, title="Pelayanan izin usaha berbelit",
                     content="Sudah tiga kali datang, berkas izin usaha selalu diminta ulang.",
                     category="Perizinan", location="Kec. Pulau Punjung",
                     created_at=wib(2026, 8, 12, 14))
    (cid,) = d.pull()
    a = d.actions()
    d.clock.set(wib(2026, 8, 12, 15))
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.followup(cid, PETUGAS, "Pengaduan Anda sedang kami telaah.")
    d.clock.set(wib(2026, 8, 13, 10))
    a.answer_delivered(cid, PETUGAS, "Berkas yang diminta ulang adalah NIB terbaru; "
                                     "petugas telah menjelaskan persyaratannya.")
    return cid


def test_not_satisfied_twice_then_settled_by_the_kepala_dpmptsp(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("dharmasraya", tmp_path, lapor_mock, wib(2026, 8, 12, 14))
    try:
        cid = explained(d, lapor_mock)
        dl = d.deadlines(cid)
        assert dl["overall"].due_at == end_of(2026, 9, 3)
        assert dl["stage:received"].due_at == end_of(2026, 8, 13)
        a = d.actions()
        assert d.case(cid).stage == "answer_delivered"
        with pytest.raises(ActionNotAllowed, match="reason"):
            a.satisfaction(cid, PETUGAS, False)  # a statement of dissatisfaction says why
        d.clock.set(wib(2026, 8, 14, 9))
        assert a.satisfaction(cid, PETUGAS, False, "Penjelasan belum menjawab").stage == "tpp"
        assert d.deadlines(cid)["stage:tpp"].due_at == end_of(2026, 8, 24)
        # The team: root-cause analysis, the action, information to the complainant.
        d.clock.set(wib(2026, 8, 18, 9))
        a.record_step(cid, TPP, "analisis_penyebab", "Checklist persyaratan tidak seragam")
        a.record_step(cid, TPP, "menetapkan_tindakan", "Checklist tunggal untuk semua loket")
        d.clock.set(wib(2026, 8, 19, 10))
        tpp_text = "Tim telah menetapkan satu daftar persyaratan; berkas Anda kami proses."
        assert a.answer_delivered(cid, TPP, tpp_text).stage == "tpp_answered"
        # Still not satisfied: the Kepala DPMPTSP takes it (8 days).
        d.clock.set(wib(2026, 8, 20, 9))
        assert a.satisfaction(cid, PETUGAS, False, "Izin belum terbit").stage == "kadis"
        assert d.deadlines(cid)["stage:kadis"].due_at == end_of(2026, 9, 2)
        a.followup(cid, KADIS, "Kepala DPMPTSP membahas pengaduan Anda bersama bidang "
                               "perizinan.")
        d.clock.set(wib(2026, 8, 26, 10))
        kadis_text = "Izin usaha Anda telah terbit; mohon maaf atas ketidaknyamanan."
        assert a.answer_delivered(cid, KADIS, kadis_text).stage == "kadis_answered"
        assert d.case(cid).deadline_at == end_of(2026, 9, 3)  # not closed yet: still runs
        d.clock.set(wib(2026, 8, 27, 9))
        assert a.satisfaction(cid, PETUGAS, True, "Pernyataan puas").stage == "closed"
        assert d.case(cid).deadline_at is None
        overall = d.deadlines(cid)["overall"]
        assert overall.met_at == wib(2026, 8, 27, 9) and not overall.met_late
        assert a.archive(cid, PETUGAS).stage == "archived"

        assert d.push().delivered == 8
        endings = d.endings(5501)
        assert [(t, r) for t, r, _ in endings] == [("", 1), ("", 1), ("TL-SELESAI", 5)]
        assert "belum puas" in endings[0][2] and "Penjelasan belum menjawab" in endings[0][2]
        assert "menyatakan puas" in endings[2][2] and "Dharmasraya" in endings[2][2]
        # LAPOR! closed the report on the completion template; the bridge reads it back.
        assert d.lapor_status(cid) == "Selesai"
        # Explained directly, not by letter: each answer says there is no numbered letter.
        direct = "Jawaban ini disampaikan tanpa surat bernomor.\n"
        assert d.posted(5501) == [
            "Pengaduan Anda sedang kami telaah.",
            direct + "Berkas yang diminta ulang adalah NIB terbaru; petugas telah "
            "menjelaskan persyaratannya.",
            direct + tpp_text,
            "Kepala DPMPTSP membahas pengaduan Anda bersama bidang perizinan.",
            direct + kadis_text]
        assert d.letters(5501) == []
    finally:
        d.rt.close()


def test_not_ours_forwarded_with_the_numbered_surat_penerusan(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("dharmasraya", tmp_path, lapor_mock, wib(2026, 8, 12, 14))
    try:
        lapor_mock.add_report(id=5502, title="Limbah sawit ke sungai",
                              content="Limbah pabrik sawit mengalir ke Batang Hari.",
                              category="Lingkungan Hidup", created_at=wib(2026, 8, 12, 9))
        (cid,) = d.pull()
        a = d.actions()
        a.register(cid, PETUGAS)
        a.files_complete(cid, PETUGAS)
        d.clock.set(wib(2026, 8, 13, 10))
        reason = "Pencemaran sungai adalah kewenangan Dinas Lingkungan Hidup"
        photo = Upload("foto-lokasi.jpg", b"\xff\xd8\xff\xe0 foto")
        assert a.forward(cid, PETUGAS, "DLH", ["Pengadu"], reason,
                         attachments=[photo]).stage == "forwarded"
        assert a.archive(cid, PETUGAS).stage == "archived"
        assert d.push().delivered == 2
        text = ("Pengaduan ini diteruskan kepada Dinas Lingkungan Hidup Kabupaten Dharmasraya "
                "sesuai kewenangannya.\nSurat Penerusan Pengaduan nomor "
                f"1/ADU/DPMPTSP/VIII/2026 (terlampir).\nAlasan: {reason}\nTembusan: Pengadu")
        # No chain to sign it: the letter is printed and numbered at the forward.
        [(sent, [(name, pdf), (scan, _)])] = d.letters(5502)
        assert (sent, scan) == (text, "foto-lokasi.jpg") and name.startswith("surat_penerusan")
        assert "Nomor : 1/ADU/DPMPTSP/VIII/2026" in pdf and "PEMERINTAH KABUPATEN DHARMASRAYA" \
            in pdf and "Pencemaran sungai" in pdf
        [(code, rating, ending)] = d.endings(5502)
        assert (code, rating) == ("TL-ARSIP", 0) and "bukan merupakan kewenangan" in ending
        assert d.lapor_status(cid) == "Diarsipkan"
    finally:
        d.rt.close()


def test_team_misses_its_five_days_and_the_case_goes_to_the_kepala_dpmptsp(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("dharmasraya", tmp_path, lapor_mock, wib(2026, 8, 12, 14))
    try:
        cid = explained(d, lapor_mock)
        a = d.actions()
        d.clock.set(wib(2026, 8, 14, 9))
        a.satisfaction(cid, PETUGAS, False, "Belum puas")
        assert sweep_deadlines(d.rt, wib(2026, 8, 21, 8)).near == []
        near = sweep_deadlines(d.rt, wib(2026, 8, 23, 8))
        assert [(m.deadline, m.due_at) for m in near.near] == [
            ("stage:tpp", end_of(2026, 8, 24))]
        late = sweep_deadlines(d.rt, wib(2026, 8, 25, 8))
        assert [m.deadline for m in late.missed] == ["stage:tpp"]
        assert [(e.to, e.level, e.source) for e in late.escalated] == [
            ("kepala_dinas", 1, "profile")]
        case = d.case(cid)
        assert (case.stage, case.assigned_to) == ("kadis", "kepala_dinas")
        (escalation,) = [e for e in d.history(cid) if e.kind == "escalate"]
        assert escalation.actor == "Sistem (otomatis)"
        assert "masuk tahap Tim Penanganan Pengaduan" in (escalation.note or "")
        assert sweep_deadlines(d.rt, wib(2026, 8, 26, 8)).escalated == []
    finally:
        d.rt.close()


def test_box_checked_every_working_day_and_yearly_report_to_the_bupati(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("dharmasraya", tmp_path, lapor_mock, wib(2026, 8, 14, 16))
    try:
        a = d.actions()
        cid = a.new_case(NewCase(title="Antrean loket perizinan terlalu lama",
                                 content="Surat dalam kotak pengaduan.", channel="kotak",
                                 received_at=wib(2026, 8, 14, 16)), PETUGAS).case_id
        # Recorded within a working day: Friday 14 -> Tuesday 18 August (17th a holiday).
        assert d.deadlines(cid)["stage:received"].due_at == end_of(2026, 8, 18)
        # No daily list on a holiday; Tuesday's covers Friday to Monday.
        assert run_recap(d.rt, "daily", now=wib(2026, 8, 17, 7, 30)) == []
        paths = run_recap(d.rt, "daily", now=wib(2026, 8, 18, 7, 30))
        assert paths[0].name == "rekapitulasi-dhr-2026-08-14_2026-08-17.html"
        assert "Antrean loket perizinan terlalu lama" in paths[0].read_text(encoding="utf-8")
        (daily,) = d.recorder.of("recap")
        assert daily.recipients == ("petugas",)
        assert "kotak pengaduan dan media lainnya" in daily.body
        # Not recorded in time: missed, flagged to the officer; no escalation ladder here.
        result = sweep_deadlines(d.rt, wib(2026, 8, 19, 8))
        assert [m.deadline for m in result.missed] == ["stage:received"]
        assert result.escalated == []
        a.register(cid, PETUGAS)
        # Yearly report to the Bupati.
        run_recap(d.rt, "yearly", now=wib(2027, 1, 2, 8))
        yearly = d.recorder.of("recap")[-1]
        assert yearly.recipients == ("bupati@dharmasrayakab.go.id", "kepala_dinas")
        assert "Tahun 2026" in yearly.subject and "Bupati Dharmasraya" in yearly.body
    finally:
        d.rt.close()
