"""Situbondo (seed 003): the disposition chain Kepala Dinas -> Kabid -> Kasi, the kewenangan
decision, the forwarding letter (drafted, initialled, signed) with its tembusan, and the
answer letter for what is ours. Received on Monday 25 May 2026: ten working days skip
Idul Adha (27 May), its cuti bersama (28 May) and Hari Lahir Pancasila (1 June)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.services.actions import ActionNotAllowed, Upload
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_new_cases
from bridge.testing import FakeLapor
from tests.support.profiles import make_deployment
from tests.support.situbondo import KABID, KABID_PT, KADIS, KASI, STAF, arrive, to_kasi
from tests.support.times import end_of, wib

#: A scanned page as the office's scanner makes it (a PNG's first bytes are what count).
SCAN = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def slug(register_no: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in register_no)


def test_not_ours_forwarded_to_the_opd_with_tembusan(tmp_path: Path,
                                                      lapor_mock: FakeLapor) -> None:
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9))
    try:
        cid = arrive(d, lapor_mock, 6601, "Asap pabrik dan limbah ke sawah",
                     "Limbah pabrik tepung mengalir ke sawah, asap pabrik mengganggu warga.",
                     category="Lingkungan Hidup")
        assert d.case(cid).deadline_at == end_of(2026, 6, 11)
        skipped = [day.isoformat() for day, _ in d.deadlines(cid)["overall"].holidays]
        assert skipped == ["2026-05-27", "2026-05-28", "2026-05-31", "2026-06-01"]
        tri = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert tri.routing is not None
        assert (tri.routing["status"], tri.routing["opd"], tri.routing["tembusan"]) == (
            "suggested", "DLH", ["Pihak pengadu", "Camat Panarukan"])

        to_kasi(d, cid)
        a = d.actions()
        d.clock.set(wib(2026, 5, 26, 9))
        assert a.record_step(cid, KASI, "konsep_surat_penerusan", "Konsep surat ke DLH").stage \
            == "forward_drafted"
        with pytest.raises(ActionNotAllowed, match="kabid"):
            a.approve(cid, KADIS, "surat_penerusan")
        assert a.approve(cid, KABID, "surat_penerusan").stage == "forward_in_approval"
        # The signed copy is scanned at the signature: it goes with the letter.
        signed = Upload("penerusan-ttd.png", SCAN)
        assert a.approve(cid, KADIS, "surat_penerusan", attachments=[signed]).stage \
            == "forward_approved"
        assert (d.case(cid).data or {})["documents"]["surat_penerusan"] == "001/TRS/431.305/2026"
        d.clock.set(wib(2026, 5, 29, 9))
        reason = "Pengawasan pencemaran lingkungan adalah kewenangan Dinas Lingkungan Hidup"
        done = a.forward(cid, STAF, "DLH", ["Pihak pengadu", "Camat Panarukan"], reason)
        assert done.stage == "forwarded"
        assert a.archive(cid, STAF).stage == "archived"

        assert d.push().delivered == 2
        posted, archived = lapor_mock.followups[6601]
        assert posted["institution_to"]["id"] == 44960
        # Archived as not ours: LAPOR! hears it with the archive template.
        [(code, rating, ending)] = d.endings(6601)
        assert (code, rating) == ("TL-ARSIP", 0)
        assert "bukan merupakan kewenangan DPMPTSP Kabupaten Situbondo" in ending
        assert d.lapor_status(cid) == "Diarsipkan"
        text = ("Pengaduan ini diteruskan kepada Dinas Lingkungan Hidup Kabupaten Situbondo "
                "sesuai kewenangannya.\nSurat Penerusan Pengaduan nomor 001/TRS/431.305/2026 "
                f"(terlampir).\nAlasan: {reason}\nTembusan: Pihak pengadu; Camat Panarukan")
        assert d.posted(6601) == [text]
        # The OPD and the complainant get the signed letter with its number, and the scan.
        [(sent, [(letter, pdf), (scan, _)])] = d.letters(6601)
        assert sent == text and scan == "penerusan-ttd.png"
        assert letter == f"surat_penerusan-{slug(d.case(cid).register_no)}.pdf"
        assert "Nomor : 001/TRS/431.305/2026" in pdf
        assert "Dinas Lingkungan Hidup Kabupaten Situbondo" in pdf and "Camat Panarukan" in pdf
        assert "Pengawasan pencemaran lingkungan" in pdf
        # Finished on time: forwarded within the deadline.
        overall = d.deadlines(cid)["overall"]
        assert overall.met and not overall.met_late
    finally:
        d.rt.close()


def test_ours_permit_data_checked_and_answer_letter_signed(tmp_path: Path,
                                                           lapor_mock: FakeLapor) -> None:
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9))
    try:
        cid = arrive(d, lapor_mock, 6602, "Toko modern tanpa izin dekat pasar",
                     "Toko modern baru buka di dekat Pasar Panarukan, apakah berizin?",
                     category="Perizinan")
        to_kasi(d, cid)
        a = d.actions()
        assert a.dispose(cid, KASI, "Staf Seksi Penanganan Pengaduan").stage == "handling"
        d.clock.set(wib(2026, 5, 26, 9))
        a.record_step(cid, STAF, "cek_data_perizinan", "PB UMKU toko terdaftar di OSS")
        a.record_step(cid, KASI, "kajian", "Izin sesuai; jarak dari pasar perlu dicek")
        a.record_step(cid, KABID_PT, "rapat_koordinasi", "Koordinasi dengan Bidang Pelayanan")
        a.record_step(cid, KADIS, "arahan_kepala_dinas", "Lakukan peninjauan lokasi")
        a.record_step(cid, KASI, "penanganan", "Peninjauan lokasi bersama pemilik toko")
        a.followup(cid, KASI, "Pengaduan sedang ditangani; lokasi telah ditinjau.")
        d.clock.set(wib(2026, 6, 3, 9))
        assert a.record_step(cid, KASI, "konsep_jawaban", "Konsep surat jawaban").stage \
            == "answer_drafted"
        a.approve(cid, KABID, "surat_jawaban")
        assert a.approve(cid, KADIS, "surat_jawaban").stage == "answer_approved"
        number = (d.case(cid).data or {})["documents"]["surat_jawaban"]
        assert number == "001/ADU/431.305/2026"
        d.clock.set(wib(2026, 6, 4, 9))
        answer = "Toko modern telah memiliki izin yang sah."
        receipt = Upload("tanda-terima-pengadu.jpg", b"\xff\xd8\xff\xe0 scan")
        assert a.answer_delivered(cid, STAF, answer, attachments=[receipt]).stage \
            == "answer_delivered"
        text = f"Surat Jawaban nomor {number} (terlampir).\n{answer}"
        assert a.archive(cid, STAF).stage == "archived"
        actors = [(e.kind, e.actor) for e in d.history(cid) if e.kind in ("dispose", "approve")]
        assert actors == [("dispose", KADIS.name), ("dispose", KABID.name),
                          ("dispose", KASI.name), ("approve", KABID.name),
                          ("approve", KADIS.name)]
        assert d.push().delivered == 3
        [(code, _, ending)] = d.endings(6602)
        assert code == "TL-SELESAI" and "telah selesai ditindaklanjuti" in ending
        assert d.lapor_status(cid) == "Selesai"
        assert d.posted(6602) == ["Pengaduan sedang ditangani; lokasi telah ditinjau.", text]
        [(sent, [(letter, pdf), (scan, _)])] = d.letters(6602)
        assert (sent, scan) == (text, "tanda-terima-pengadu.jpg")
        assert letter.startswith("surat_jawaban-") and f"Nomor : {number}" in pdf
        assert answer in pdf and KADIS.name in pdf  # signed by the Kepala Dinas
    finally:
        d.rt.close()


def test_other_body_through_lapor_bukan_wewenang(tmp_path: Path,
                                                 lapor_mock: FakeLapor) -> None:
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9))
    try:
        cid = arrive(d, lapor_mock, 6603, "Sengketa tanah kavling",
                     "Sertifikat tanah saya ganda dengan tetangga.", category="Pertanahan")
        tri = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert tri.routing is not None and tri.routing["opd"] == "BPN"
        to_kasi(d, cid)
        a = d.actions()
        a.record_step(cid, KASI, "konsep_surat_penerusan", "Surat ke Kantor Pertanahan")
        a.approve(cid, KABID, "surat_penerusan")
        a.approve(cid, KADIS, "surat_penerusan")
        reason = "Pertanahan adalah kewenangan Kantor Pertanahan (ATR/BPN)"
        assert a.forward(cid, STAF, "BPN", ["Pihak pengadu"], reason).stage == "forwarded_out"
        # The letter goes first, on our side of the report; then the "bukan wewenang".
        assert d.push().delivered == 2
        (sent,) = lapor_mock.forwards
        assert (sent["complaint_id"], sent["reason"], sent["not_authority"]) == (
            6603, 3910, 1)
        text = ("Pengaduan ini diteruskan kepada Kantor Pertanahan Kabupaten Situbondo sesuai "
                "kewenangannya.\nSurat Penerusan Pengaduan nomor 001/TRS/431.305/2026 "
                f"(terlampir).\nAlasan: {reason}\nTembusan: Pihak pengadu")
        assert sent["reason_description"] == text
        [(posted, [(letter, pdf)])] = d.letters(6603)
        assert posted == text and letter.startswith("surat_penerusan-")
        assert "Nomor : 001/TRS/431.305/2026" in pdf and "Kantor Pertanahan" in pdf
        assert lapor_mock.reports[6603]["disposition_id"] == 3910
    finally:
        d.rt.close()


def test_deadline_missed_escalates(tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9))
    try:
        cid = arrive(d, lapor_mock, 6604, "Izin reklame belum selesai",
                     "Izin reklame saya belum selesai.", category="Perizinan")
        to_kasi(d, cid)  # ... and the Kasi never decides
        first = sweep_deadlines(d.rt, wib(2026, 6, 5, 8))
        assert [(e.to, e.level) for e in first.escalated] == [("kabid", 1)]
        late = sweep_deadlines(d.rt, wib(2026, 6, 12, 8))
        assert {m.deadline: m.due_at for m in late.missed}["overall"] == end_of(2026, 6, 11)
        assert [(e.to, e.level) for e in late.escalated] == [("kepala_dinas", 2)]
        a = d.actions()
        a.record_step(cid, KADIS, "arahan_kepala_dinas", "Segera putuskan kewenangan")
        assert a.dispose(cid, KADIS, "Kepala Seksi Penanganan Pengaduan").stage == "handling"
    finally:
        d.rt.close()
