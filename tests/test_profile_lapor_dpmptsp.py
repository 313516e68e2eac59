"""Seed 001 (a DPMPTSP that takes LAPOR!): completeness check, the JFT Analis Kebijakan
of three bidang (each its own role), the BAPP's approval chain, and 2-10 working days counted from complete files -- across Nyepi,
Idul Fitri and its cuti bersama (18-24 March 2026) and Good Friday (3 April 2026)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.services.actions import ActionNotAllowed, Actor
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_new_cases
from bridge.testing import FakeLapor
from tests.support.profiles import make_deployment
from tests.support.times import end_of, wib

FO = Actor("Yulia Fitri (Front Office)", "petugas")
ANALIS = Actor("Hendra Saputra, S.E. (JFT Analis Kebijakan Bidang Pengaduan)",
               "analis_pengaduan")
ANALIS_IPPM = Actor("Rini Oktavia, S.Sos. (JFT Analis Kebijakan Bidang IPPM)", "analis_ippm")
ANALIS_IZIN = Actor("Fadli Rahman, S.T. (JFT Analis Kebijakan Bidang Perizinan)",
                    "analis_perizinan")
KABID = Actor("Dra. Nurhayati (Kabid Pengaduan)", "kabid")
SEKRETARIS = Actor("Afrizal, S.H. (Sekretaris)", "sekretaris")
KADIS = Actor("H. Syafrudin, M.M. (Kepala Dinas)", "kepala_dinas")
UNIT = "analis_ippm"


def arrive(d: object, lapor: FakeLapor) -> int:
    lapor.add_report(id=8801, title="PKKPR tidak kunjung terbit",
                     content="Permohonan PKKPR usaha saya belum ada kabar sejak Januari.",
                     category="Perizinan", created_at=wib(2026, 3, 13, 10),
                     location="Nagari Pariangan, Kec. Pariangan")
    (cid,) = d.pull()  # type: ignore[attr-defined]
    return int(cid)


def test_bapp_procedure_from_complete_files(tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("lapor-dpmptsp", tmp_path, lapor_mock, wib(2026, 3, 13, 10, 30))
    try:
        cid = arrive(d, lapor_mock)
        case = d.case(cid)
        assert case.deadline_at is None  # the SOP's clock starts with complete files
        dl = d.deadlines(cid)
        assert dl["overall"].due_at is None
        assert "menunggu berkas dinyatakan lengkap" in dl["overall"].basis
        # LAPOR!'s own limits run from receipt, across the Idul Fitri holidays.
        assert dl["national:verify"].due_at == end_of(2026, 3, 25)
        assert dl["national:followup"].due_at == end_of(2026, 3, 27)
        assert triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0].failures == []

        a = d.actions()
        a.register(cid, FO)
        d.clock.set(wib(2026, 3, 13, 11))
        assert a.return_incomplete(cid, FO, "Surat Pernyataan Kebenaran Aduan").stage \
            == "incomplete"
        d.clock.set(wib(2026, 3, 16, 9))
        assert a.files_complete(cid, FO).stage == "verified"
        # Ten working days after Monday 16 March: 17, 25, 26, 27, 30, 31 March, 1, 2,
        # 6, 7 April (18-24 March: Nyepi, Idul Fitri, cuti bersama; 3 April: Good Friday).
        assert d.case(cid).deadline_at == end_of(2026, 4, 7)
        skipped = {day.isoformat() for day, _ in d.deadlines(cid)["overall"].holidays}
        assert {"2026-03-18", "2026-03-19", "2026-03-20", "2026-03-23", "2026-03-24",
                "2026-04-03"} <= skipped

        # Seed steps 2-3: Front Office -> Bidang IPPM -> Bidang Pengaduan, each bidang's
        # analyst a role of its own.
        assert a.dispose(cid, FO, UNIT).stage == "bidang_ippm"
        for wrong in (FO, ANALIS, ANALIS_IZIN):
            with pytest.raises(ActionNotAllowed):
                a.dispose(cid, wrong, "analis_pengaduan")
        assert a.dispose(cid, ANALIS_IPPM, "analis_pengaduan").stage == "handling"
        assert d.case(cid).assigned_to == "analis_pengaduan"
        d.clock.set(wib(2026, 3, 17, 9))
        with pytest.raises(ActionNotAllowed, match="roles allowed: analis_pengaduan"):
            a.record_step(cid, ANALIS_IPPM, "verifikasi_keabsahan", "bukan bidangnya")
        a.record_step(cid, ANALIS, "verifikasi_keabsahan", "Formulir dan berkas sah")
        a.record_step(cid, ANALIS_IZIN, "berkas_perizinan", "Berkas terverifikasi diterima")
        a.record_step(cid, ANALIS, "kajian", "Konsultasi dengan Kabid")
        with pytest.raises(ActionNotAllowed, match="analis"):
            a.record_step(cid, ANALIS, "rapat_koordinasi", "bukan tugas analis")
        a.record_step(cid, KABID, "rapat_koordinasi", "Koordinasi dengan Bidang Perizinan")
        a.followup(cid, ANALIS, "Pengaduan Anda sedang kami kaji bersama bidang perizinan.")
        d.clock.set(wib(2026, 3, 31, 9))
        assert a.record_step(cid, ANALIS, "konsep_jawaban", "Konsep BAPP").stage \
            == "answer_drafted"
        a.record_step(cid, ANALIS_IZIN, "konsep_perizinan", "Konsep surat diterima")
        assert a.approve(cid, KABID, "bapp").stage == "in_approval"
        with pytest.raises(ActionNotAllowed, match="sekretaris"):
            a.approve(cid, KADIS, "bapp")  # the Sekretaris initials before the signature
        assert a.approve(cid, SEKRETARIS, "bapp").stage == "in_approval"
        d.clock.set(wib(2026, 4, 1, 10))
        assert a.approve(cid, KADIS, "bapp").stage == "answer_approved"
        data = d.case(cid).data or {}
        number = data["documents"]["bapp"]
        assert number == "001/BAPP/DPMPTSP-TNHDATAR/IV/2026"
        assert [(x["role"], x["kind"]) for x in data["approvals"]] == [
            ("kabid", "paraf"), ("sekretaris", "paraf"), ("kepala_dinas", "tanda_tangan")]
        d.clock.set(wib(2026, 4, 2, 9))
        answer = "BAPP telah diserahkan kepada pemohon: PKKPR diterbitkan pada 1 April 2026."
        assert a.answer_delivered(cid, FO, answer).stage == "answer_delivered"
        text = f"Berita Acara Penyelesaian Pengaduan nomor {number} (terlampir).\n{answer}"
        overall = d.deadlines(cid)["overall"]
        assert overall.met and not overall.met_late
        assert a.satisfaction(cid, FO, True).stage == "closed"
        assert a.archive(cid, FO).stage == "archived"

        assert d.push().delivered == 4
        [(code, rating, ending)] = d.endings(8801)
        assert (code, rating) == ("TL-SELESAI", 5) and "menyatakan puas" in ending
        assert d.lapor_status(cid) == "Selesai"
        assert d.posted(8801) == [
            "Berkas pengaduan Anda belum lengkap. Mohon dilengkapi: Surat Pernyataan "
            "Kebenaran Aduan",
            "Pengaduan Anda sedang kami kaji bersama bidang perizinan.",
            text]
        # The signed BAPP (not the surat jawaban, which nobody signed) goes with the answer.
        [(sent, [(name, pdf)])] = d.letters(8801)
        assert sent == text and name.startswith("bapp-")
        assert number in pdf and "PKKPR diterbitkan" in pdf and KADIS.name in pdf
        assert "Berita Acara Penyelesaian Pengaduan".upper() in pdf.upper()
    finally:
        d.rt.close()


def test_escalation_ladder_counted_from_complete_files(tmp_path: Path,
                                                       lapor_mock: FakeLapor) -> None:
    d = make_deployment("lapor-dpmptsp", tmp_path, lapor_mock, wib(2026, 3, 13, 10, 30))
    try:
        cid = arrive(d, lapor_mock)
        a = d.actions()
        a.register(cid, FO)
        # Files incomplete: no SOP deadline, no escalation, however long it waits.
        assert sweep_deadlines(d.rt, wib(2026, 3, 27, 8)).escalated == []
        d.clock.set(wib(2026, 3, 16, 9))
        a.files_complete(cid, FO)
        a.dispose(cid, FO, UNIT)
        # Kabid after 5 working days (Monday 30 March), Kepala Dinas after 10 (7 April).
        first = sweep_deadlines(d.rt, wib(2026, 3, 31, 8))
        assert [(e.to, e.level) for e in first.escalated] == [("kabid", 1)]
        assert d.case(cid).stage == "escalated"
        assert sweep_deadlines(d.rt, wib(2026, 4, 7, 12)).escalated == []
        late = sweep_deadlines(d.rt, wib(2026, 4, 8, 8))
        assert "overall" in [m.deadline for m in late.missed]
        assert [(e.to, e.level) for e in late.escalated] == [("kepala_dinas", 2)]
        case = d.case(cid)
        assert (case.assigned_to, (case.data or {})["escalation_level"]) == ("kepala_dinas", 2)
        assert [x["level"] for x in (case.data or {})["escalations"]] == ["kabid",
                                                                         "kepala_dinas"]
        assert a.dispose(cid, KADIS, UNIT).stage == "handling"
    finally:
        d.rt.close()
