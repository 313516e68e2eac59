"""Klaten (seed 000): a LAPOR! report driven through the SOP as staff would, end to end.

14 days (calendar days) from receipt: a report received on Monday 3 August 2026 is due on
Monday 17 August -- Hari Kemerdekaan -- so the deadline moves to Tuesday 18 August 2026.
"""

from __future__ import annotations

from pathlib import Path

from bridge.reports.jobs import run_recap
from bridge.services.actions import Actor, NewCase, Upload
from bridge.services.sweep import sweep_deadlines
from bridge.services.triage import triage_new_cases
from bridge.testing import FakeLapor, SmtpSink
from tests.support.profiles import make_deployment
from tests.support.times import end_of, wib

STAF = Actor("Rina Wulandari (Staf Pengaduan)", "petugas")
SUBKOOR = Actor("Drs. Bambang Sutrisno (Sub Koordinator)", "sub_koordinator")
KADIS = Actor("Ir. Joko Prasetyo, M.T. (Kepala Dinas)", "kepala_dinas")


def report(lapor: FakeLapor, **fields: object) -> dict[str, object]:
    values: dict[str, object] = {
        "id": 7301, "tracking_id": "1916449",
        "title": "Permohonan PBG gudang belum diproses",
        "content": "Sudah tiga minggu permohonan PBG gudang saya di MPP belum diproses.",
        "category": "Perizinan", "location": "Desa Jimbung, Kec. Kalikotes",
        "created_at": wib(2026, 8, 3, 9, 15),
        "reporter": {"name": "Sutarno", "email": "sutarno@example.id", "phone": "08122700111"},
    }
    values.update(fields)
    return lapor.add_report(**values)


def test_report_needing_study_through_the_whole_sop(tmp_path: Path, lapor_mock: FakeLapor,
                                                    smtp_sink: SmtpSink) -> None:
    report(lapor_mock)
    d = make_deployment("klaten", tmp_path, lapor_mock, wib(2026, 8, 3, 10), smtp_sink)
    try:
        (cid,) = d.pull()
        case = d.case(cid)
        assert (case.stage, case.register_no) == ("received", "KLATEN/ADU/2026/00001")
        # 14 calendar days -> Monday 17 August (a holiday) -> Tuesday 18 August 2026.
        assert case.deadline_at == end_of(2026, 8, 18)
        dl = d.deadlines(cid)
        assert "hari libur, diundur" in dl["overall"].basis
        assert dl["stage:received"].due_at == end_of(2026, 8, 4)
        assert dl["national:verify"].due_at == end_of(2026, 8, 6)
        assert dl["national:followup"].due_at == end_of(2026, 8, 10)

        triage = triage_new_cases(d.rt, [cid], now=d.clock.now).cases[0]
        assert triage.routing is not None and triage.routing["status"] == "no_answer"
        assert triage.failures == []

        a = d.actions()
        assert a.register(cid, STAF).stage == "registered"
        # The KTP photocopy is missing: the files go back to the complainant.
        d.clock.set(wib(2026, 8, 3, 11))
        assert a.return_incomplete(cid, STAF, "fotokopi KTP pelapor").stage == "incomplete"
        d.clock.set(wib(2026, 8, 4, 8, 30))
        a.record_step(cid, STAF, "klarifikasi", "KTP diterima lewat e-mail; masalah diklarifikasi")
        assert a.files_complete(cid, STAF).stage == "verified"
        # Not resolvable at once: reported to the Sub Koordinator/Kakan.
        d.clock.set(wib(2026, 8, 5, 9))
        assert a.dispose(cid, STAF, "Sub Koordinator Pelayanan Pengaduan").stage == "handling"
        a.followup(cid, SUBKOOR, "Pengaduan sedang kami tindak lanjuti; akan dilakukan "
                                  "pemeriksaan lapangan.")
        d.clock.set(wib(2026, 8, 7, 10))
        a.record_step(cid, SUBKOOR, "pemeriksaan_lapangan", "Lokasi gudang diperiksa")
        d.clock.set(wib(2026, 8, 11, 13))
        a.record_step(cid, KADIS, "rapat_koordinasi", "Rapat dengan Dinas PUPR")
        d.clock.set(wib(2026, 8, 12, 9))
        assert a.record_step(cid, STAF, "konsep_jawaban", "Konsep surat jawaban").stage \
            == "answer_drafted"
        assert a.approve(cid, SUBKOOR, "surat_jawaban").stage == "in_approval"
        signed = a.approve(cid, KADIS, "surat_jawaban")
        assert signed.stage == "answer_approved"
        d.clock.set(wib(2026, 8, 13, 10))
        answer = ("PBG gudang Bapak telah diproses dan terbit pada 12 Agustus 2026. "
                  "Dokumen dapat diambil di Mal Pelayanan Publik.")
        assert a.answer_delivered(cid, STAF, answer).stage == "answer_delivered"
        assert d.case(cid).deadline_at is None  # met on 13 August, before the 18th
        assert a.archive(cid, STAF).stage == "archived"

        # Who did what, in the case's history.
        steps = [(e.kind, e.actor) for e in d.history(cid) if e.side == "local"]
        assert steps == [
            ("register", STAF.name), ("return_incomplete", STAF.name),
            ("followup", STAF.name), ("files_complete", STAF.name), ("dispose", STAF.name),
            ("followup", SUBKOOR.name), ("followup", SUBKOOR.name), ("followup", KADIS.name),
            ("followup", STAF.name), ("approve", SUBKOOR.name), ("approve", KADIS.name),
            ("answer_delivered", STAF.name), ("archive", STAF.name)]
        data = d.case(cid).data or {}
        assert data["documents"]["surat_jawaban"] == "001/ADU/DPMPTSP/VIII/2026"
        assert [x["kind"] for x in data["approvals"]] == ["paraf", "tanda_tangan"]

        # What LAPOR! receives: the request for the KTP, the follow-up, the answer.
        assert d.push().delivered == 4
        # Archived once answered: LAPOR! hears the case is finished, and closes it.
        [(code, rating, ending)] = d.endings(7301)
        assert (code, rating) == ("TL-SELESAI", 0)
        assert "selesai ditindaklanjuti oleh DPMPTSP Kabupaten Klaten" in ending
        assert d.lapor_status(cid) == "Selesai"
        letter = f"Surat Jawaban nomor 001/ADU/DPMPTSP/VIII/2026 (terlampir).\n{answer}"
        assert d.posted(7301) == [
            "Berkas pengaduan Anda belum lengkap. Mohon dilengkapi: fotokopi KTP pelapor",
            "Pengaduan sedang kami tindak lanjuti; akan dilakukan pemeriksaan lapangan.",
            letter]
        # The answer carries the signed letter: its number, the answer, the signatory.
        [(sent, [(name, pdf)])] = d.letters(7301)
        assert sent == letter and name.startswith("surat_jawaban-KLATEN-ADU-2026-")
        assert "Nomor : 001/ADU/DPMPTSP/VIII/2026" in pdf and "PBG gudang Bapak" in pdf
        assert KADIS.name in pdf and "Sutarno" in pdf
        assert all(f["institution_to"]["id"] == 41287 for f in lapor_mock.followups[7301])

        # The monthly recap counts it as finished on time.
        paths = run_recap(d.rt, "monthly", now=wib(2026, 9, 1, 7))
        assert [p.name for p in paths] == ["rekapitulasi-klaten-2026-08.html",
                                           "rekapitulasi-klaten-2026-08.csv",
                                           "rekapitulasi-klaten-2026-08-daftar.csv",
                                           "rekapitulasi-klaten-2026-08.pdf"]
        listing = paths[2].read_text(encoding="utf-8-sig")
        assert "KLATEN/ADU/2026/00001" in listing and "Selesai tepat waktu" in listing
        d.rt.dispatch_events()
        assert [n.kind for n in d.recorder.notifications][-1] == "recap"
        assert d.emails_to("kadis.dpmptsp@klatenkab.go.id")
    finally:
        d.rt.close()


def test_walk_in_answered_on_the_spot_with_the_unit_heads_knowledge(
        tmp_path: Path, lapor_mock: FakeLapor) -> None:
    d = make_deployment("klaten", tmp_path, lapor_mock, wib(2026, 8, 14, 9))
    try:
        a = d.actions()
        new = a.new_case(NewCase(
            title="Persyaratan izin reklame", content="Menanyakan persyaratan izin reklame.",
            channel="langsung", category="Perizinan", received_at=wib(2026, 8, 14, 9),
            reporter={"name": "Wahyuni", "phone": "0813000222"},
            attachments=[Upload("ktp.pdf", b"%PDF-1.4 KTP", "application/pdf")]), STAF)
        cid = new.case_id
        # Friday 14 August + 14 days = Friday 28 August (a working day: no move).
        assert d.case(cid).deadline_at == end_of(2026, 8, 28)
        a.register(cid, STAF)
        a.files_complete(cid, STAF)
        # The officer answers at once; the Sub Koordinator/Kakan knows ("mengetahui").
        assert a.approve(cid, SUBKOOR, "jawaban_langsung").stage \
            == "answer_approved"
        done = a.answer_delivered(cid, STAF, "Persyaratan izin reklame telah dijelaskan "
                                             "langsung kepada pemohon.")
        assert done.stage == "answer_delivered"
        approvals = (d.case(cid).data or {})["approvals"]
        assert [(x["document"], x["role"]) for x in approvals] == [
            ("jawaban_langsung", "sub_koordinator")]
        # The walk-in complaint goes up to LAPOR! too, then its answer.
        assert d.push().delivered == 2
        (created,) = [r for r in lapor_mock.reports.values() if r["title"].startswith("Persyaratan")]
        # Answered on the spot: no letter, and the text says so.
        assert d.posted(int(created["id"])) == [
            "Jawaban ini disampaikan tanpa surat bernomor.\nPersyaratan izin reklame telah "
            "dijelaskan langsung kepada pemohon."]
        assert d.letters(int(created["id"])) == []
    finally:
        d.rt.close()


def test_deadline_missed_escalates_to_the_kepala_dinas(tmp_path: Path, lapor_mock: FakeLapor,
                                                      smtp_sink: SmtpSink) -> None:
    report(lapor_mock)
    d = make_deployment("klaten", tmp_path, lapor_mock, wib(2026, 8, 3, 10), smtp_sink)
    try:
        (cid,) = d.pull()
        a = d.actions()
        a.register(cid, STAF)
        a.files_complete(cid, STAF)
        a.dispose(cid, STAF, "Sub Koordinator Pelayanan Pengaduan")
        a.followup(cid, SUBKOOR, "Sedang kami periksa.")
        # Tuesday 18 August, 08:00: the deadline (that evening) is near -- and so is
        # LAPOR!'s closing of a report left 10 working days without a new follow-up.
        early = sweep_deadlines(d.rt, wib(2026, 8, 18, 8))
        assert [(m.deadline, m.due_at) for m in early.near] == [
            ("overall", end_of(2026, 8, 18)), ("national:silence_close", end_of(2026, 8, 18))]
        assert early.escalated == []
        # Wednesday 19 August: missed, and the case goes up to the Kepala Dinas.
        late = sweep_deadlines(d.rt, wib(2026, 8, 19, 8))
        assert [m.deadline for m in late.missed] == ["overall", "national:silence_close"]
        assert [(e.to, e.level, e.source) for e in late.escalated] == [
            ("kepala_dinas", 1, "profile")]
        case = d.case(cid)
        assert case.stage == "escalated" and case.assigned_to == "kepala_dinas"
        assert (case.data or {})["escalation_level"] == 1
        escalation = [e for e in d.history(cid) if e.kind == "escalate"][0]
        assert escalation.actor == "Sistem (otomatis)"
        assert "Selasa, 18 Agustus 2026" in (escalation.note or "")
        # Once per deadline: a second sweep records nothing new.
        again = sweep_deadlines(d.rt, wib(2026, 8, 20, 8))
        assert (again.near, again.missed, again.escalated) == ([], [], [])
        d.rt.dispatch_events()
        kinds = d.recorder.kinds()
        # One event per kind for the case, naming both deadlines (not one per deadline).
        assert kinds.count("deadline_near") == 1 and kinds.count("deadline_missed") == 1
        assert kinds.count("escalated") == 1
        mails = d.emails_to("kadis.dpmptsp@klatenkab.go.id")
        assert any("Eskalasi tingkat 1" in str(m["Subject"]) for m in mails)
        # The Kepala Dinas directs; handling resumes.
        assert a.dispose(cid, KADIS, "Sub Koordinator Pelayanan Pengaduan").stage == "handling"
    finally:
        d.rt.close()
