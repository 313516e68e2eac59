"""Staff actions through the service layer: workflow checks, history, outbox, atomicity."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.services.actions import ActionNotAllowed, Actor, BadInput, NewCase, StaleCase, Upload
from bridge.services.queue import case_detail
from bridge.store.models import CaseEvent, OutboxRow, StoredFile

PETUGAS = Actor("Sari (front office)", "petugas")
ANALIS = Actor("Budi (analis)", "analis")
KASI = Actor("Dewi (kasi)", "kasi")
KABID = Actor("Agus (kabid)", "kabid")
KADIS = Actor("Ir. Hadi (kepala dinas)", "kepala_dinas")


def new_case(rt: Any, **kw: Any) -> int:
    fields = {"title": "Izin usaha belum terbit", "content": "Sudah 3 bulan menunggu.",
              "channel": "surat", "reporter": {"name": "Siti"}}
    fields.update(kw)
    return rt.actions().new_case(NewCase(**fields), PETUGAS).case_id


def counts(rt: Any) -> tuple[int, int, int]:
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(CaseEvent)) or 0,
                s.scalar(select(func.count()).select_from(OutboxRow)) or 0,
                s.scalar(select(func.count()).select_from(StoredFile)) or 0)


def test_whole_default_workflow(runtime_factory: Any) -> None:
    rt = runtime_factory()
    a = rt.actions()
    cid = new_case(rt)
    assert a.register(cid, PETUGAS).stage == "registered"
    assert a.files_complete(cid, PETUGAS).stage == "verified"
    assert a.classify(cid, ANALIS, "sedang").stage == "classified"
    assert a.dispose(cid, KASI, "Seksi Pengaduan").stage == "handling"
    assert a.record_step(cid, ANALIS, "kajian", "kajian awal").stage == "handling"
    assert a.followup(cid, ANALIS, "Sedang kami periksa.").stage == "handling"
    assert a.record_step(cid, ANALIS, "konsep_jawaban", "konsep v1").stage == "answer_drafted"
    with pytest.raises(ActionNotAllowed, match="kabid"):
        a.approve(cid, KADIS, "surat_jawaban")  # the Kabid initials first
    assert a.approve(cid, KABID, "surat_jawaban").stage == "in_approval"
    signed = a.approve(cid, KADIS, "surat_jawaban")
    assert signed.stage == "answer_approved"
    assert a.answer_delivered(cid, PETUGAS, "Izin Anda terbit hari ini.").stage == "answer_delivered"
    assert a.satisfaction(cid, PETUGAS, True).stage == "closed"
    assert a.archive(cid, PETUGAS).stage == "archived"

    with rt.sessions() as s:
        d = case_detail(s, cid)
        kinds = [e["kind"] for e in d.history]
        rows = s.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
    assert kinds[:3] == ["received", "register", "files_complete"]
    assert d.data["documents"]["surat_jawaban"].startswith("001/ADU/UJI/")
    # What LAPOR! must learn, in order: the new report, the follow-up, the answer, the
    # complainant's verdict (closing the report with the completion template) and the
    # archiving, each as the profile words it.
    assert [(r.kind, r.payload.get("purpose")) for r in rows] == [
        ("create", None), ("followup", "followup"), ("followup", "answer"),
        ("followup", "satisfied")]
    assert all(r.actor for r in rows)
    # Archiving a closed case tells LAPOR! nothing more: the verdict already closed it.
    verdict = rows[3].payload
    assert (verdict["template_code"], verdict["rating"]) == ("TL-SELESAI", 5)
    assert "No. Register UJI/" in verdict["content"] and "puas" in verdict["content"]


def test_not_allowed_in_stage_writes_nothing(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = new_case(rt)
    before = counts(rt)
    with pytest.raises(ActionNotAllowed, match="not allowed in stage 'received'"):
        rt.actions().close(cid, PETUGAS, "x")
    with pytest.raises(ActionNotAllowed, match="role 'analis' may not"):
        rt.actions().register(cid, ANALIS)
    assert counts(rt) == before


def test_stale_version_refused(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = new_case(rt)
    r = rt.actions().register(cid, PETUGAS)
    rt.actions().files_complete(cid, PETUGAS, expected_version=r.version)
    with pytest.raises(StaleCase, match="changed by someone else"):
        rt.actions().classify(cid, ANALIS, "ringan", expected_version=r.version)


@pytest.mark.parametrize("upload, message", [
    (Upload("kosong.pdf", b""), "is empty"),
    (Upload("besar.pdf", b"x" * 2048), "over the limit of 1,024"),
])
def test_bad_attachment_writes_nothing(runtime_factory: Any, upload: Upload, message: str) -> None:
    rt = runtime_factory(outbox={"max_attachment_bytes": 1024})
    a = rt.actions()
    cid = new_case(rt)
    for act in (a.register, a.files_complete):
        act(cid, PETUGAS)
    a.classify(cid, ANALIS, "ringan")
    a.dispose(cid, KASI, "Seksi")
    before = counts(rt)
    with pytest.raises(BadInput, match=message):
        a.followup(cid, ANALIS, "lihat lampiran", [Upload("ok.pdf", b"%PDF"), upload])
    assert counts(rt) == before


def test_missing_attachment_file(tmp_path: Any) -> None:
    with pytest.raises(BadInput, match="not found"):
        Upload.from_path(tmp_path / "nope.pdf")


def test_forward_unknown_opd_and_tembusan(runtime_factory: Any) -> None:
    rt = runtime_factory()
    a = rt.actions()
    cid = new_case(rt, is_secret=True, reporter={"name": "Rahasia Sekali", "phone": "0812"})
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    with pytest.raises(BadInput, match="unknown OPD 'XYZ'"):
        a.forward(cid, KASI, "XYZ")
    res = a.forward(cid, KASI, "DLH", ["Pelapor", "Camat Kota"], "limbah pabrik")
    assert res.stage == "forwarded"
    with rt.sessions() as s:
        row = s.get(OutboxRow, res.outbox_ids[0])
        assert row is not None
        text = row.payload["content"]
    assert row.payload["institution_to_id"] == 102
    assert "Dinas Lingkungan Hidup" in text and "Tembusan: Pelapor; Camat Kota" in text
    assert "Rahasia Sekali" not in text and "0812" not in text


def test_forward_body_needs_reason(runtime_factory: Any) -> None:
    rt = runtime_factory()
    a = rt.actions()
    cid = new_case(rt)
    a.register(cid, PETUGAS)
    with pytest.raises(ActionNotAllowed, match="reason"):
        a.forward(cid, KASI, "BPN")
    res = a.forward(cid, KASI, "BPN", ["Pelapor"], "sengketa tanah bukan wewenang kami")
    assert res.stage == "forwarded_out"
    with rt.sessions() as s:
        letter, row = (s.get(OutboxRow, i) for i in res.outbox_ids)
        assert row is not None and row.kind == "forward"
        assert row.payload["institution_id"] == 114
        # The surat penerusan goes first, on our side of the report.
        assert letter is not None and letter.kind == "followup"
        assert len(letter.payload["file_ids"]) == 1


def test_local_case_without_push(runtime_factory: Any) -> None:
    rt = runtime_factory(outbox={"push_local_cases": False})
    cid = new_case(rt, channel="telepon")
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, "ringan")
    a.dispose(cid, KASI, "Seksi")
    res = a.followup(cid, ANALIS, "Sudah ditangani di loket.")
    assert res.outbox_ids == []  # LAPOR! does not know this case


def test_unknown_channel(runtime_factory: Any) -> None:
    rt = runtime_factory()
    with pytest.raises(BadInput, match="unknown channel 'merpati'"):
        new_case(rt, channel="merpati")


def test_register_numbers_are_sequential(runtime_factory: Any) -> None:
    rt = runtime_factory()
    ids = [new_case(rt) for _ in range(3)]
    with rt.sessions() as s:
        nos = [case_detail(s, i).case.register_no for i in ids]
    assert [n.rsplit("/", 1)[1] for n in nos] == ["00001", "00002", "00003"]
