"""Scans and signed copies on approve, deliver and forward; the document that goes with a
delivered answer or a forward (its PDF, its number in the text); and every way an
attachment or a letter can fail without writing anything or using a number up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.runtime import Runtime
from bridge.services.actions import Actor, BadInput, CaseActions, NewCase, Upload
from bridge.store.models import Case, CaseEvent, OutboxRow, OutgoingLetter, StoredFile
from tests.support.cli import assert_one_line_error, invoke, write_config
from tests.support.databases import migrated_sqlite
from tests.support.profiles import pdf_text
from tests.support.settings import make_settings
from tests.support.web import Env, build_env

PETUGAS = Actor("Sari (petugas)", "petugas")
ANALIS = Actor("Budi (analis)", "analis")
KASI = Actor("Dewi (kasi)", "kasi")
KABID = Actor("Agus (kabid)", "kabid")
KADIS = Actor("Hadi (kepala dinas)", "kepala_dinas")

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n%scan\n"
TEXT = b"bukan pindaian, hanya teks"
REGISTER = {"registers": {"surat_keluar": {"code": "ADU", "unit": "DPMPTSP",
                                           "kinds": ["surat_penerusan"]}}}


def deployment(tmp_path: Path, **sections: Any) -> Runtime:
    return Runtime(make_settings(migrated_sqlite(tmp_path / "b.db"), **sections))


def drafted_case(a: CaseActions) -> int:
    """A letter case with its surat jawaban drafted (default profile)."""
    cid = a.new_case(NewCase(title="Izin usaha belum terbit", content="Sudah 3 bulan.",
                             channel="surat", reporter={"name": "Siti Aminah"}),
                     PETUGAS).case_id
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, "ringan")
    a.dispose(cid, KASI, "Seksi Pengaduan")
    a.record_step(cid, ANALIS, "konsep_jawaban", "Konsep surat jawaban")
    return cid


def signed_case(a: CaseActions, scans: list[Upload] | None = None) -> int:
    """... and signed, with ``scans`` given at the signature."""
    cid = drafted_case(a)
    a.approve(cid, KABID, "surat_jawaban")
    a.approve(cid, KADIS, "surat_jawaban", attachments=scans or [])
    return cid


def verified_case(a: CaseActions) -> int:
    cid = a.new_case(NewCase(title="Limbah ke sungai", content="Limbah pabrik.",
                             channel="surat"), PETUGAS).case_id
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    return cid


def counts(rt: Runtime) -> tuple[int, ...]:
    with rt.sessions() as s:
        return tuple(s.scalar(select(func.count()).select_from(t)) or 0
                     for t in (CaseEvent, OutboxRow, StoredFile, OutgoingLetter))


def stage_of(rt: Runtime, cid: int) -> tuple[str, int]:
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        return case.stage, case.version


def answer_row(rt: Runtime, cid: int) -> tuple[str, list[tuple[str, str, bytes]]]:
    """The answer's follow-up as queued: its text and its files (name, type, content)."""
    with rt.sessions() as s:
        row = s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid,
                                                OutboxRow.kind == "followup")
                        .order_by(OutboxRow.id.desc())).first()
        assert row is not None
        files = {f.id: f for f in s.scalars(select(StoredFile).where(
            StoredFile.id.in_(row.payload["file_ids"])))}
        return row.payload["content"], [(files[i].name, files[i].mime, files[i].content)
                                        for i in row.payload["file_ids"]]


def test_deliver_sends_the_signed_letter_the_signed_scan_and_the_scans(tmp_path: Path) -> None:
    rt = deployment(tmp_path)
    try:
        a = rt.actions()
        cid = signed_case(a, [Upload("ttd.pdf", PDF)])
        a.answer_delivered(cid, PETUGAS, "Izin Anda telah terbit.",
                           attachments=[Upload("tanda-terima", PNG)])
        text, files = answer_row(rt, cid)
        number = "001/ADU/UJI/" + text.split("/UJI/")[1].split(" ")[0]
        assert text == f"Surat Jawaban nomor {number} (terlampir).\nIzin Anda telah terbit."
        (letter, mime, pdf), scan, taken = files
        assert letter.startswith("surat_jawaban-") and mime == "application/pdf"
        assert f"Nomor : {number}" in pdf_text(pdf) and "Izin Anda telah terbit." in \
            pdf_text(pdf)
        assert scan[:2] == ("ttd.pdf", "application/pdf")  # signed with the letter
        # Named by its content: a PNG without an extension gets one.
        assert taken[:2] == ("tanda-terima.png", "image/png")
    finally:
        rt.close()


def test_a_profile_may_quote_the_number_without_the_pdf(tmp_path: Path) -> None:
    rt = deployment(tmp_path, workflow={"attach_documents": False})
    try:
        a = rt.actions()
        cid = signed_case(a)
        a.answer_delivered(cid, PETUGAS, "Izin Anda telah terbit.")
        text, files = answer_row(rt, cid)
        assert text.startswith("Surat Jawaban nomor 001/ADU/UJI/") and "terlampir" not in text
        assert files == []
    finally:
        rt.close()


@pytest.mark.parametrize("upload, words", [
    (Upload("catatan.txt", TEXT), "is not a PDF or an image"),
    (Upload("kosong.pdf", b""), "is empty"),
    (Upload("besar.png", PNG + b"\x00" * 300_000), "over the limit"),
])
@pytest.mark.parametrize("action", ["approve", "deliver", "forward"])
def test_bad_scans_are_refused_and_nothing_is_written(tmp_path: Path, action: str,
                                                      upload: Upload, words: str) -> None:
    rt = deployment(tmp_path, outbox={"max_attachment_bytes": 200_000}, documents=REGISTER)
    try:
        a = rt.actions()
        cid = {"approve": drafted_case, "deliver": signed_case,
               "forward": verified_case}[action](a)
        before = counts(rt), stage_of(rt, cid)
        with pytest.raises(BadInput, match=words):
            if action == "approve":
                a.approve(cid, KABID, "surat_jawaban", attachments=[upload])
            elif action == "deliver":
                a.answer_delivered(cid, PETUGAS, "Terbit.", attachments=[upload])
            else:
                a.forward(cid, KASI, "DLH", ["Pelapor"], "Kewenangan DLH",
                          attachments=[upload])
        assert (counts(rt), stage_of(rt, cid)) == before
    finally:
        rt.close()


def test_a_letter_that_cannot_be_rendered_uses_no_number(tmp_path: Path) -> None:
    templates = tmp_path / "dokumen"
    templates.mkdir()
    (templates / "surat_penerusan.html.j2").write_text(
        "<p>{{ nomor_agenda_lama }}</p>", encoding="utf-8")
    rt = deployment(tmp_path, documents={**REGISTER, "templates_dir": str(templates)})
    try:
        a = rt.actions()
        cid = verified_case(a)
        before = counts(rt)
        with pytest.raises(BadInput, match="nomor_agenda_lama"):
            a.forward(cid, KASI, "DLH", ["Pelapor"], "Kewenangan DLH")
        assert counts(rt) == before  # no history, no outbox row, no file, no number
        (templates / "surat_penerusan.html.j2").unlink()
        a.forward(cid, KASI, "DLH", ["Pelapor"], "Kewenangan DLH")
        text, [(name, _, pdf)] = answer_row(rt, cid)
        assert "Surat Penerusan Pengaduan nomor 1/ADU/DPMPTSP/" in text  # the first number
        assert "Nomor : 1/ADU/DPMPTSP/" in pdf_text(pdf) and name.endswith(".pdf")
    finally:
        rt.close()


def test_forward_to_another_body_sends_the_letter_before_the_bukan_wewenang(
        tmp_path: Path) -> None:
    rt = deployment(tmp_path, documents=REGISTER)
    try:
        a = rt.actions()
        cid = verified_case(a)
        a.forward(cid, KASI, "BPN", [], "Pertanahan", attachments=[Upload("peta.png", PNG)])
        with rt.sessions() as s:
            rows = list(s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid)
                                  .order_by(OutboxRow.id)))
        assert [r.kind for r in rows] == ["create", "followup", "forward"]
        assert len(rows[1].payload["file_ids"]) == 2  # the letter and the map
        assert "Surat Penerusan Pengaduan nomor 1/ADU/DPMPTSP/" in rows[2].payload["reason"]
    finally:
        rt.close()


# -- the command line --------------------------------------------------------------------


def test_cli_attach_on_approve_deliver_and_forward(tmp_path: Path) -> None:
    config = str(write_config(tmp_path, "http://127.0.0.1:9"))
    scan = tmp_path / "ttd.png"
    scan.write_bytes(PNG)
    notes = tmp_path / "catatan.txt"
    notes.write_bytes(TEXT)

    def case(*args: str, role: str) -> tuple[int, str, str]:
        return invoke("case", *args, "--role", role, "--config", config)

    code, out, _ = case("new", "--title", "Izin", "--content", "Belum terbit",
                        "--channel", "surat", role="petugas")
    assert code == 0, out
    ref = out.split(":")[0]
    for args, role in ((("register", ref), "petugas"), (("complete", ref), "petugas"),
                       (("classify", ref, "--severity", "ringan"), "analis"),
                       (("dispose", ref, "--to", "Seksi"), "kasi"),
                       (("step", ref, "--step", "konsep_jawaban", "--note", "Konsep"), "analis"),
                       (("approve", ref, "--document", "surat_jawaban"), "kabid"),
                       (("approve", ref, "--document", "surat_jawaban", "--attach",
                         str(scan)), "kepala_dinas")):
        code, out, err = case(*args, role=role)
        assert code == 0, (args, out, err)
    code, out, err = case("deliver", ref, "--text", "Terbit.", "--attach", str(notes),
                          role="petugas")
    assert_one_line_error(code, out, err, 1, "catatan.txt", "not a PDF or an image")
    code, out, err = case("deliver", ref, "--text", "Terbit.", "--attach", str(scan),
                          role="petugas")
    assert code == 0 and "queued for LAPOR!" in out, (out, err)
    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'b.db'}"))
    try:
        with rt.sessions() as s:
            cid = s.scalar(select(Case.id).where(Case.register_no == ref))
        assert cid is not None
        text, files = answer_row(rt, cid)
        assert text.startswith("Surat Jawaban nomor 001/ADU/UJI/")
        assert [f[0] for f in files][1:] == ["ttd.png", "ttd.png"]
    finally:
        rt.close()

    code, out, _ = case("new", "--title", "Limbah", "--content", "Sungai", "--channel",
                        "surat", role="petugas")
    other = out.split(":")[0]
    case("register", other, role="petugas")
    case("complete", other, role="petugas")
    code, out, err = case("forward", other, "--to", "DLH", "--note", "Kewenangan DLH",
                          "--attach", str(tmp_path / "tidak-ada.pdf"), role="kasi")
    assert_one_line_error(code, out, err, 1, "tidak-ada.pdf")
    code, out, err = case("forward", other, "--to", "DLH", "--note", "Kewenangan DLH",
                          "--attach", str(scan), role="kasi")
    assert code == 0 and "stage now 'forwarded'" in out, (out, err)


# -- the staff page ----------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> Any:
    e = build_env(f"sqlite:///{tmp_path / 'web.db'}")
    try:
        yield e
    finally:
        for c in e.clients:
            c.close()
        e.rt.close()


def _page_form_key(html: str, action: str) -> str:
    import re

    keys = re.findall(r'/aksi/([a-z_]+)"', html)
    assert action in keys, keys
    return action


def test_web_upload_on_deliver_and_forward(env: Env) -> None:
    a = env.rt.actions()
    cid = signed_case(a)
    c = env.login("petugas")
    page = c.get(f"/kasus/{cid}").text
    assert "Pindaian / salinan bertanda tangan" in page
    key = _page_form_key(page, "answer_delivered")
    before = env.counts()
    r = env.act(c, cid, key, {"isi": "Izin telah terbit."},
                files=[("lampiran", ("catatan.txt", TEXT, "image/png"))])
    assert r.status_code == 400
    assert "Lampiran «catatan.txt» tidak dapat diterima" in r.text
    assert env.counts() == before
    r = env.act(c, cid, key, {"isi": "Izin telah terbit."},
                files=[("lampiran", ("tanda-terima.png", PNG, "image/png"))])
    assert r.status_code == 303, r.text
    text, files = answer_row(env.rt, cid)
    assert text.startswith("Surat Jawaban nomor 001/ADU/UJI/")
    assert [f[0] for f in files][1:] == ["tanda-terima.png"]

    other = verified_case(a)
    k = env.login("kasi")
    r = env.act(k, other, "forward_opd", {"opd": "DLH", "tembusan": "Pelapor",
                                          "catatan": "Kewenangan DLH"},
                files=[("lampiran", ("foto.jpg", b"\xff\xd8\xff\xe0 foto", "image/jpeg"))])
    assert r.status_code == 303, r.text
    text, files = answer_row(env.rt, other)
    assert "Surat Penerusan Pengaduan terlampir (tanpa nomor surat)." in text
    assert [f[0] for f in files][1:] == ["foto.jpg"]
    assert files[0][0].startswith("surat_penerusan-")
