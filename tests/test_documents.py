"""The SOP's documents as PDF, numbered from the office's outgoing-letter register.

Situbondo (seed 003) is walked to a signed forwarding letter with tembusan and a signed
answer letter; each document is rendered to PDF, read back as text (pypdf) and drawn as a
PNG page (pypdfium2), and checked for the kop surat, the numbers, the approval chain as
signed and the tembusan.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge.cli import main
from bridge.documents import CASE_KINDS, DocumentError, numbering
from bridge.documents.settings import DocumentsSettings
from bridge.services.actions import BadInput, NewCase
from bridge.services.documents import SECRET, Documents
from bridge.store.models import OutgoingLetter, RegisterCounter
from bridge.testing import FakeLapor
from tests.support.profiles import make_deployment
from tests.support.profiles import pdf_text as read_pdf
from tests.support.situbondo import KABID, KADIS, KASI, STAF, UMUM, arrive, to_kasi
from tests.support.times import wib

DOCUMENTS = {
    "city": "Situbondo",
    "kop": {"lines": ["PEMERINTAH KABUPATEN SITUBONDO",
                      "DINAS PENANAMAN MODAL DAN PELAYANAN TERPADU SATU PINTU"],
            "address": "Jl. Basuki Rahmat No. 209 Situbondo - Telp. (0338) 671234"},
    "signer": {"title": "Kepala Dinas", "name": "Drs. Edy Wahyudi", "nip": "19700101 199003 1 001"},
    "registers": {"surat_keluar": {
        "format": "{seq}/{code}/{unit}/{month_roman}/{year}", "code": "180",
        "unit": "DPMPTSP", "kinds": ["surat_jawaban", "surat_penerusan", "surat_pengantar"]}},
    "tembusan": {"surat_jawaban": ["Kepala Bidang Data, Informasi dan Pengaduan", "Arsip"]},
}


def pdf_text(content: bytes) -> str:
    assert content.startswith(b"%PDF-")
    return read_pdf(content)


def png_of(content: bytes, path: Path | None = None) -> tuple[int, int]:
    """Draw the first page (as a reader sees it); the picture must not be blank."""
    import pypdfium2 as pdfium

    page = pdfium.PdfDocument(content)[0]
    image = page.render(scale=1.5).to_pil().convert("L")
    lo, hi = image.getextrema()
    assert lo < 100 and hi > 200, "a blank page"
    if path is not None:
        image.save(path, optimize=True)
    return image.size


@pytest.fixture
def situbondo(tmp_path: Path, lapor_mock: FakeLapor) -> Any:
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9),
                        documents=DOCUMENTS)
    yield d
    d.rt.close()


def forwarded_case(d: Any, lapor: FakeLapor) -> int:
    cid = arrive(d, lapor, 6601, "Asap pabrik dan limbah ke sawah",
                 "Limbah pabrik tepung mengalir ke sawah, asap pabrik mengganggu warga.")
    to_kasi(d, cid)
    a = d.actions()
    d.clock.set(wib(2026, 5, 26, 9))
    a.record_step(cid, KASI, "konsep_surat_penerusan", "Konsep surat ke DLH")
    a.approve(cid, KABID, "surat_penerusan")
    a.approve(cid, KADIS, "surat_penerusan")
    a.forward(cid, STAF, "DLH", ["Pihak pengadu", "Camat Panarukan"],
              "Pencemaran lingkungan adalah kewenangan Dinas Lingkungan Hidup")
    return cid


def answered_case(d: Any, lapor: FakeLapor) -> int:
    cid = arrive(d, lapor, 6602, "Toko modern tanpa izin dekat pasar",
                 "Toko modern baru buka di dekat Pasar Panarukan, apakah berizin?")
    to_kasi(d, cid)
    a = d.actions()
    a.dispose(cid, KASI, "Staf Seksi Penanganan Pengaduan")
    d.clock.set(wib(2026, 6, 3, 9))
    a.record_step(cid, KASI, "konsep_jawaban", "Konsep surat jawaban")
    a.approve(cid, KABID, "surat_jawaban")
    a.approve(cid, KADIS, "surat_jawaban")
    a.answer_delivered(cid, STAF, "Toko modern telah memiliki izin usaha yang sah.")
    return cid


def test_each_kind_carries_kop_numbers_chain_and_tembusan(situbondo: Any,
                                                          lapor_mock: FakeLapor,
                                                          tmp_path: Path) -> None:
    d = situbondo
    fwd = forwarded_case(d, lapor_mock)
    ans = answered_case(d, lapor_mock)
    data_fwd, data_ans = d.case(fwd).data, d.case(ans).data
    # One shared counter: the forwarding letter (May) took 1, the answer letter (June) 2.
    assert data_fwd["documents"]["surat_penerusan"] == "1/180/DPMPTSP/V/2026"
    assert data_ans["documents"]["surat_jawaban"] == "2/180/DPMPTSP/VI/2026"
    docs = Documents(d.rt.sessions, d.rt.settings, d.rt.workflow)
    now = wib(2026, 6, 4, 10)
    texts: dict[str, str] = {}
    for kind in CASE_KINDS:
        cid = fwd if kind in ("surat_penerusan", "lembar_disposisi") else ans
        doc = docs.case_document(cid, kind, now=now)
        texts[kind] = pdf_text(doc.content)
        assert "PEMERINTAH KABUPATEN SITUBONDO" in texts[kind]
        assert "DINAS PENANAMAN MODAL DAN PELAYANAN TERPADU SATU PINTU" in texts[kind]
        assert d.case(cid).register_no in texts[kind]
        width, height = png_of(doc.content)
        assert height > width  # A4, portrait
    t = texts["surat_penerusan"]
    assert "1/180/DPMPTSP/V/2026" in t and "Dinas Lingkungan Hidup" in t
    assert "Tembusan" in t and "Pihak pengadu" in t and "Camat Panarukan" in t
    assert KABID.name in t and KADIS.name in t and "paraf" in t and "tanda tangan" in t
    t = texts["surat_jawaban"]
    assert "2/180/DPMPTSP/VI/2026" in t and "izin usaha yang sah" in t
    assert "Arsip" in t and KADIS.name in t and "Situbondo, 4 Juni 2026" in t
    t = texts["bapp"]
    assert "BERITA ACARA PENYELESAIAN PENGADUAN" in t and "izin usaha yang sah" in t
    t = texts["lembar_disposisi"]
    assert "LEMBAR DISPOSISI" in t and KADIS.name in t
    assert "Kepala Bidang Data, Informasi dan Pengaduan" in t
    t = texts["tanda_terima"]
    assert "TANDA TERIMA PENGADUAN" in t and "25 Mei 2026" in t
    # Printing again gives the same numbers and takes no new one.
    with d.rt.sessions() as s:
        before = s.scalar(select(func.count()).select_from(OutgoingLetter))
    docs.case_document(fwd, "surat_penerusan", now=now)
    with d.rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutgoingLetter)) == before == 2


def test_draft_is_not_numbered_and_secret_reporter_stays_hidden(situbondo: Any) -> None:
    d = situbondo
    a = d.actions()
    res = a.new_case(NewCase(title="Reklame tanpa izin", content="Ada reklame besar.",
                             channel="surat", reporter={"name": "Sutrisno Wibowo"},
                             is_secret=True), UMUM)
    docs = Documents(d.rt.sessions, d.rt.settings, d.rt.workflow)
    now = datetime.now(UTC)
    draft = pdf_text(docs.case_document(res.case_id, "surat_jawaban", now=now).content)
    assert "belum bernomor" in draft and "belum ditandatangani" in draft
    for kind in CASE_KINDS:
        text = pdf_text(docs.case_document(res.case_id, kind, now=now).content)
        assert "Sutrisno" not in text, kind
    assert SECRET in pdf_text(docs.case_document(res.case_id, "tanda_terima",
                                                 now=now).content)
    # The admin who may see a rahasia reporter gets the name on the answer to them...
    shown = pdf_text(docs.case_document(res.case_id, "tanda_terima", now=now,
                                        reveal_secret=True).content)
    assert "Sutrisno Wibowo" in shown
    # ...never on what leaves the office.
    fwd = pdf_text(docs.case_document(res.case_id, "surat_penerusan", now=now,
                                      reveal_secret=True).content)
    assert "Sutrisno" not in fwd


def test_unknown_field_in_a_template_uses_up_no_number(tmp_path: Path,
                                                        lapor_mock: FakeLapor) -> None:
    custom = tmp_path / "templat"
    custom.mkdir()
    (custom / "surat_penerusan.html.j2").write_text(
        '{% extends "_base.html.j2" %}{% block body %}<p>{{ nomor_surat }}</p>{% endblock %}')
    d = make_deployment("situbondo", tmp_path, lapor_mock, wib(2026, 5, 25, 9),
                        documents={**DOCUMENTS, "templates_dir": str(custom),
                                   "registers": {"surat_keluar": {
                                       "code": "180", "unit": "DPMPTSP",
                                       "kinds": ["surat_penerusan", "tanda_terima"]}}})
    try:
        cid = d.actions().new_case(NewCase(title="Izin", content="Isi", channel="surat"),
                                   UMUM).case_id
        docs = Documents(d.rt.sessions, d.rt.settings, d.rt.workflow)
        with pytest.raises(DocumentError, match="unknown field 'nomor_surat'") as err:
            docs.case_document(cid, "surat_penerusan", now=wib(2026, 5, 25, 10))
        assert "tidak dikenal: nomor_surat" in err.value.pesan
        assert "\n" not in str(err.value)
        with d.rt.sessions() as s:
            assert s.scalar(select(func.count()).select_from(OutgoingLetter)) == 0
        # The next document of the register gets number 1: none was used up.
        doc = docs.case_document(cid, "tanda_terima", now=wib(2026, 5, 25, 10))
        assert doc.number == "1/180/DPMPTSP/V/2026"
        with pytest.raises(DocumentError, match="unknown document kind 'memo'"):
            docs.case_document(cid, "memo", now=wib(2026, 5, 25, 10))
    finally:
        d.rt.close()


# -- numbering ---------------------------------------------------------------------------


def _cfg() -> DocumentsSettings:
    return DocumentsSettings.model_validate(
        {"registers": {"agenda": {"code": "180", "unit": "DPM",
                                  "kinds": ["surat_jawaban", "surat_penerusan"]}}})


def test_register_never_reuses_a_number(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cfg, tz = _cfg(), "Asia/Jakarta"
    may = datetime(2026, 5, 4, 3, tzinfo=UTC)

    def issue(subject: str, at: datetime = may, kind: str = "surat_jawaban") -> str | None:
        with rt.sessions() as s, s.begin():
            return numbering.issue(s, cfg, kind, subject, at=at, tz=tz)

    assert issue("a") == "1/180/DPM/V/2026"
    # A transaction that fails after taking a number: nothing of it stays.
    with pytest.raises(RuntimeError), rt.sessions() as s, s.begin():
        assert numbering.issue(s, cfg, "surat_penerusan", "b", at=may, tz=tz) \
            == "2/180/DPM/V/2026"
        raise RuntimeError("the PDF could not be written")
    # A number typed by hand is entered in the agenda; the counter steps over it.
    with rt.sessions() as s, s.begin():
        numbering.record_manual(s, cfg, "surat_jawaban", "c", "3/180/DPM/V/2026", at=may,
                                tz=tz)
    assert issue("b", kind="surat_penerusan") == "2/180/DPM/V/2026"
    assert issue("d") == "4/180/DPM/V/2026"
    assert issue("a") == "1/180/DPM/V/2026"  # the same document keeps its number
    # A typed number already given is refused.
    with pytest.raises(DocumentError, match="already given"), rt.sessions() as s, s.begin():
        numbering.record_manual(s, cfg, "surat_jawaban", "e", "4/180/DPM/V/2026", at=may,
                                tz=tz)
    # A new year starts again at 1; a kind no register counts gets no number.
    assert issue("f", at=datetime(2027, 1, 2, 3, tzinfo=UTC)) == "1/180/DPM/I/2027"
    assert issue("g", kind="bapp") is None
    with rt.sessions() as s:
        numbers = list(s.scalars(select(OutgoingLetter.number)))
        assert len(numbers) == len(set(numbers)) == 5
        scopes = set(s.scalars(select(RegisterCounter.scope)))
        assert {"letters:agenda:2026", "letters:agenda:2027"} <= scopes


def test_typed_number_that_clashes_fails_the_whole_approval(situbondo: Any,
                                                            lapor_mock: FakeLapor) -> None:
    d = situbondo
    fwd = forwarded_case(d, lapor_mock)
    taken = d.case(fwd).data["documents"]["surat_penerusan"]
    cid = arrive(d, lapor_mock, 6603, "Menara tanpa izin", "Menara seluler tanpa izin.")
    to_kasi(d, cid)
    a = d.actions()
    a.dispose(cid, KASI, "Staf Seksi Penanganan Pengaduan")
    a.record_step(cid, KASI, "konsep_jawaban", "Konsep")
    a.approve(cid, KABID, "surat_jawaban")
    version = d.case(cid).version
    with pytest.raises(BadInput, match="already given"):
        a.approve(cid, KADIS, "surat_jawaban", number=taken)
    assert d.case(cid).version == version  # nothing half-written
    assert a.approve(cid, KADIS, "surat_jawaban", number="77/180/DPMPTSP/V/2026").stage \
        == "answer_approved"


# -- the command line ------------------------------------------------------------------


def test_case_document_writes_a_pdf_of_each_kind(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"
[lapor]
base_url = "http://127.0.0.1:9"
[database]
url = "sqlite:///{tmp_path / 'b.db'}"
[outbox]
push_local_cases = false
[documents.kop]
lines = ["PEMERINTAH KABUPATEN UJI", "DINAS PENANAMAN MODAL DAN PTSP"]
address = "Jl. Merdeka 1"
[documents.registers.surat_keluar]
code = "180"
unit = "DPMPTSP"
kinds = ["surat_penerusan", "tanda_terima"]
""")
    runner = CliRunner()
    base = ["--config", str(config)]
    made = runner.invoke(main, [*base, "case", "new", "--title", "Jalan rusak", "--content",
                                "Berlubang", "--channel", "surat", "--role", "petugas",
                                "--json"])
    assert made.exit_code == 0, made.output
    ref = "1"
    for kind in CASE_KINDS:
        out = tmp_path / f"{kind}.pdf"
        res = runner.invoke(main, [*base, "case", "document", ref, "--kind", kind,
                                   "--out", str(out)])
        assert res.exit_code == 0, res.output
        text = pdf_text(out.read_bytes())
        assert "PEMERINTAH KABUPATEN UJI" in text and "Jl. Merdeka 1" in text
    assert "1/180/DPMPTSP/" in pdf_text((tmp_path / "surat_penerusan.pdf").read_bytes())
    assert "2/180/DPMPTSP/" in pdf_text((tmp_path / "tanda_terima.pdf").read_bytes())
    bad = runner.invoke(main, [*base, "case", "document", ref, "--kind", "memo", "--out",
                               str(tmp_path / "x.pdf")])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert "unknown document kind 'memo'" in bad.output
    assert not (tmp_path / "x.pdf").exists()
    missing = runner.invoke(main, [*base, "case", "document", "999", "--kind", "bapp",
                                   "--out", str(tmp_path / "y.pdf")])
    assert missing.exit_code == 1 and len(missing.output.strip().splitlines()) == 1


# -- the recap -------------------------------------------------------------------------


def test_recap_pdf_has_cover_letter_signature_and_followups(situbondo: Any,
                                                            lapor_mock: FakeLapor) -> None:
    from bridge.reports.jobs import run_recap

    d = situbondo
    fwd = forwarded_case(d, lapor_mock)
    ans = answered_case(d, lapor_mock)
    a = d.actions()
    anon = a.new_case(NewCase(title="Pungutan liar", content="Diminta uang.", channel="kotak",
                              reporter={"name": "Bambang Sulistyo"}, is_secret=True,
                              received_at=wib(2026, 5, 27, 9)), UMUM).case_id
    a.register(anon, UMUM)
    paths = run_recap(d.rt, "monthly", now=wib(2026, 6, 1, 7))
    (pdf,) = [p for p in paths if p.suffix == ".pdf"]
    text = pdf_text(pdf.read_bytes())
    assert "Penyampaian Rekapitulasi" in text and "Mei 2026" in text
    assert "1/180/DPMPTSP/VI/2026" in text or "/180/DPMPTSP/VI/2026" in text
    assert "Kepala Dinas" in text and "Drs. Edy Wahyudi" in text and "NIP." in text
    for cid in (fwd, ans, anon):
        assert d.case(cid).register_no in text
    assert "Diteruskan kepada Dinas Lingkungan Hidup" in text
    assert "Bambang" not in text
    png_of(pdf.read_bytes())
