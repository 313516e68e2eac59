"""Prabumulih (seed 002): ringan / sedang / berat with their handler sets, the kecamatan and
kelurahan of the complaint's location pulled in, berat escalated to the Walikota, 10 working
days across Hari Kemerdekaan (17 August) and Maulid Nabi (25 August 2026), and the monthly
recap to the Walikota through the Sekda."""

from __future__ import annotations

from pathlib import Path

import pytest

import lapor_bridge_plugins.severity_handlers as severity_handlers
from bridge.plugins import PluginConfigError
from bridge.reports.jobs import run_recap
from bridge.services.actions import Actor
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_new_cases, triage_pending
from bridge.testing import FakeLapor, SmtpSink, make_case, make_host, run_hooks
from tests.support.profiles import Deployment, make_deployment, profile_data
from tests.support.times import end_of, wib

LOKET = Actor("Dewi Anggraini (Petugas Loket)", "petugas")
SEKSI = Actor("Rudi Hartono, S.Sos. (Seksi Pengaduan)", "kasi")
KEBIJAKAN = Actor("Maya Sari, S.H. (Seksi Kebijakan)", "seksi_kebijakan")
PELAPORAN = Actor("Andi Wijaya (Seksi Pelaporan)", "seksi_pelaporan")
KABID = Actor("Ir. Heri Gunawan (Kabid)", "kabid")
KADIS = Actor("Drs. H. Ahmad Fauzi (Kepala DPM-PTSP)", "kepala_dinas")
TEKNIS = Actor("Tim Teknis Perizinan", "tim_teknis")
KECAMATAN = Actor("Kasi Trantib Kec. Prabumulih Timur", "aparatur_wilayah")
LEAD = "Seksi Pengaduan dan Informasi Layanan"


def arrive(d: Deployment, lapor: FakeLapor, rid: int, title: str, content: str,
           location: str = "Kel. Gunung Ibul, Kec. Prabumulih Timur",
           category: str = "Lingkungan Hidup") -> int:
    lapor.add_report(id=rid, title=title, content=content, category=category,
                     location=location, created_at=wib(2026, 8, 14, 8, 30))
    (cid,) = d.pull()
    return cid


def test_sedang_handled_by_its_team_with_the_kecamatan_and_kelurahan(
        tmp_path: Path, lapor_mock: FakeLapor, smtp_sink: SmtpSink) -> None:
    d = make_deployment("prabumulih", tmp_path, lapor_mock, wib(2026, 8, 14, 9), smtp_sink)
    try:
        cid = arrive(d, lapor_mock, 9101, "Limbah pabrik karet mencemari sungai",
                     "Limbah cair pabrik karet dibuang ke Sungai Kelekar, air berbau.")
        # Ten working days from Friday 14 August: 17 August and 25 August are holidays.
        assert d.case(cid).deadline_at == end_of(2026, 9, 1)
        skipped = [day.isoformat() for day, _ in d.deadlines(cid)["overall"].holidays]
        assert skipped == ["2026-08-17", "2026-08-25"]

        # On arrival the plugin suggests the class and its team; nothing is applied yet.
        tri = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert tri.classification is not None and tri.routing is not None
        assert (tri.classification["severity"], tri.classification["status"]) == (
            "sedang", "suggested")
        assert tri.routing["status"] == "suggested"
        assert tri.routing["handlers"] == [
            LEAD, "Seksi Kebijakan dan Advokasi Layanan",
            "Kepala Bidang Pengaduan, Kebijakan dan Pelaporan Layanan", "Kepala DPM-PTSP",
            "Bidang Pelayanan Perizinan dan Non Perizinan",
            "Aparatur Kecamatan Prabumulih Timur", "Aparatur Kelurahan Gunung Ibul",
            "Tim Teknis Perizinan"]

        a = d.actions()
        a.register(cid, LOKET)
        a.files_complete(cid, LOKET)
        d.clock.set(wib(2026, 8, 14, 10))
        assert a.classify(cid, SEKSI, "sedang", "sesuai saran sistem").stage == "classified"
        # The class names the team: the system disposes to it.
        applied = triage_pending(d.rt, now=d.clock.now).cases[0]
        assert applied.routing is not None and applied.routing["status"] == "applied"
        case = d.case(cid)
        assert (case.stage, case.assigned_to) == ("handling", LEAD)
        dispose = [e for e in d.history(cid) if e.kind == "dispose"][0]
        assert dispose.actor == "Sistem (otomatis)"
        assert "Aparatur Kecamatan Prabumulih Timur" in (dispose.note or "")
        d.rt.dispatch_events()
        (assigned,) = d.recorder.of("assigned")
        assert "Aparatur Kelurahan Gunung Ibul" in assigned.recipients
        assert d.emails_to("kec.prabumulihtimur@prabumulihkota.go.id")
        assert d.emails_to("kel.gunungibul@prabumulihkota.go.id")

        d.clock.set(wib(2026, 8, 18, 9))
        a.followup(cid, SEKSI, "Tim teknis dan aparatur kecamatan akan meninjau lokasi.")
        d.clock.set(wib(2026, 8, 19, 10))
        a.record_step(cid, TEKNIS, "pemeriksaan_lapangan", "IPAL pabrik tidak berfungsi")
        a.record_step(cid, KECAMATAN, "pemeriksaan_lapangan", "Warga terdampak didata")
        d.clock.set(wib(2026, 8, 21, 9))
        assert a.record_step(cid, KEBIJAKAN, "konsep_jawaban", "Konsep jawaban").stage \
            == "answer_drafted"
        a.approve(cid, KABID, "surat_jawaban")
        assert a.approve(cid, KADIS, "surat_jawaban").stage == "answer_approved"
        d.clock.set(wib(2026, 8, 24, 9))
        answer = ("Pabrik telah diperintahkan memperbaiki IPAL dalam 14 hari; Tim Teknis "
                  "akan memantau.")
        a.answer_delivered(cid, SEKSI, answer)
        number = (d.case(cid).data or {})["documents"]["surat_jawaban"]
        assert number == "001/PGD/DPMPTSP-PBM/VIII/2026"
        a.satisfaction(cid, LOKET, True)
        assert a.archive(cid, PELAPORAN).stage == "archived"

        assert d.push().delivered == 3
        [(code, rating, ending)] = d.endings(9101)
        assert (code, rating) == ("TL-SELESAI", 5) and "Kota Prabumulih" in ending
        assert d.lapor_status(cid) == "Selesai"
        letter = f"Surat Jawaban nomor {number} (terlampir).\n{answer}"
        assert d.posted(9101) == [
            "Tim teknis dan aparatur kecamatan akan meninjau lokasi.", letter]
        [(sent, [(name, pdf)])] = d.letters(9101)
        assert sent == letter and name.startswith("surat_jawaban-")
        assert f"Nomor : {number}" in pdf and "memperbaiki IPAL" in pdf and KADIS.name in pdf

        # The monthly recap goes to the Walikota through the Sekda.
        paths = run_recap(d.rt, "monthly", now=wib(2026, 9, 1, 7))
        html = paths[0].read_text(encoding="utf-8")
        assert "Agustus 2026" in html and "Menurut klasifikasi" in html
        assert "Pengaduan sedang" in html and "<svg" in html
        (mail,) = d.emails_to("setda@prabumulihkota.go.id")
        text = mail.get_body(preferencelist=("plain",)).get_content()
        assert "Walikota Prabumulih (melalui Sekretaris Daerah Kota Prabumulih)" in text
        # The PDF travels with the message; no server path is shown.
        (pdf,) = [p for p in mail.iter_attachments()]
        assert pdf.get_content_type() == "application/pdf"
        assert pdf.get_filename() == paths[-1].name and paths[-1].suffix == ".pdf"
        assert pdf.get_content().startswith(b"%PDF")
        assert f"Terlampir surat pengantar dan rekapitulasi lengkap (PDF): {pdf.get_filename()}" \
            in text
        assert str(paths[0].parent) not in text
    finally:
        d.rt.close()


def test_berat_needs_the_walikota(tmp_path: Path, lapor_mock: FakeLapor,
                                  smtp_sink: SmtpSink) -> None:
    d = make_deployment("prabumulih", tmp_path, lapor_mock, wib(2026, 8, 14, 9), smtp_sink)
    try:
        cid = arrive(d, lapor_mock, 9102, "Ikan mati dan keracunan warga",
                     "Banjir lumpur dari tambang, ikan mati dan warga keracunan.")
        tri = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert tri.classification is not None and tri.classification["severity"] == "berat"
        a = d.actions()
        a.register(cid, LOKET)
        a.files_complete(cid, LOKET)
        # A berat class goes to the Walikota at once, with the classification.
        assert a.classify(cid, SEKSI, "berat").stage == "escalated"
        triage_pending(d.rt, now=d.clock.now)
        assert sweep_deadlines(d.rt, wib(2026, 8, 14, 11)).escalated == []
        case = d.case(cid)
        assert (case.stage, case.assigned_to) == ("escalated", "kepala_daerah")
        note = [e for e in d.history(cid) if e.kind == "escalate"][0].note
        assert note == "Pengaduan berat memerlukan kewenangan Walikota Prabumulih"
        assert sweep_deadlines(d.rt, wib(2026, 8, 14, 12)).escalated == []  # only once
        d.rt.dispatch_events()
        assert d.emails_to("walikota@prabumulihkota.go.id")
        # The Walikota's direction is recorded; the team carries it out.
        a.record_step(cid, KADIS, "rapat_koordinasi", "Arahan Walikota: izin dibekukan")
        assert a.dispose(cid, KADIS, LEAD, "sesuai arahan Walikota").stage == "handling"

        paths = run_recap(d.rt, "semester", now=wib(2027, 1, 1, 7, 30))
        assert paths[0].name == "rekapitulasi-pbm-2026-S2.html"
        summary = paths[1].read_text(encoding="utf-8-sig")
        assert "klasifikasi,berat,Pengaduan berat,1" in summary
        assert "ringkasan,dieskalasi,Dieskalasi,1" in summary
    finally:
        d.rt.close()


def test_ringan_unanswered_misses_its_deadline(tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("prabumulih", tmp_path, lapor_mock, wib(2026, 8, 14, 9))
    try:
        cid = arrive(d, lapor_mock, 9103, "Biaya retribusi izin tidak jelas",
                     "Petugas tidak bisa menjelaskan biaya retribusi PBG.",
                     location="Jl. Jenderal Sudirman", category="Perizinan")
        tri = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert tri.classification is not None and tri.classification["severity"] == "ringan"
        a = d.actions()
        a.register(cid, LOKET)
        a.files_complete(cid, LOKET)
        a.classify(cid, SEKSI, "ringan")
        triage_pending(d.rt, now=d.clock.now)
        assert d.case(cid).assigned_to == LEAD
        # Nobody answers. Level 1 (Kabid) is due after 5 working days: Monday 24 August.
        assert sweep_deadlines(d.rt, wib(2026, 8, 24, 8)).escalated == []
        first = sweep_deadlines(d.rt, wib(2026, 8, 25, 8))
        assert [(e.to, e.level) for e in first.escalated] == [("kabid", 1)]
        # Wednesday 2 September: the 10 working days ended on 1 September.
        late = sweep_deadlines(d.rt, wib(2026, 9, 2, 8))
        missed = {m.deadline: m.due_at for m in late.missed}
        assert missed["overall"] == end_of(2026, 9, 1)
        assert [(e.to, e.level) for e in late.escalated] == [("kepala_dinas", 2)]
        # Answered at last, by the counter, as a ringan complaint may be.
        a.dispose(cid, KADIS, LEAD)
        d.clock.set(wib(2026, 9, 2, 10))
        a.answer_delivered(cid, LOKET, "Rincian biaya retribusi PBG telah dijelaskan.")
        recap = run_recap(d.rt, "monthly", now=wib(2026, 9, 2, 11))
        listing = recap[2].read_text(encoding="utf-8-sig")
        assert "Selesai melewati batas waktu" in listing
    finally:
        d.rt.close()


def test_handler_set_names_what_the_location_does_not() -> None:
    config = profile_data("prabumulih")["severity_handlers"]
    run = run_hooks(severity_handlers, make_case(
        title="Debu dari pabrik batu bara", content="Debu menutupi rumah warga.",
        location="Jl. Jenderal Sudirman KM 12", category="Lingkungan Hidup"), config=config,
        notify=False)
    assert run.failures == []
    assert run.classification is not None and run.classification.severity == "sedang"
    assert run.routing is not None and run.routing.unit == LEAD
    assert "Aparatur Kecamatan (lokasi pengaduan belum jelas)" in run.routing.tembusan
    assert "Aparatur Kelurahan (lokasi pengaduan belum jelas)" in run.routing.tembusan
    # A class the profile does not allow is not suggested.
    plain = run_hooks(severity_handlers, make_case(title="Tarif izin", content="Berapa biaya?"),
                      config=config, severities=("sedang", "berat"), notify=False)
    assert plain.classification is None and plain.routing is None


def test_handler_config_is_checked() -> None:
    with pytest.raises(PluginConfigError, match="order names unknown class 'sangat_berat'"):
        make_host(severity_handlers, sections={"severity_handlers": {
            "order": ["sangat_berat"], "classes": {"berat": {"lead": "Seksi"}}}})
