"""The intake form (/kasus/baru): a letter, the box, a call or a visit, taken in on the page."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.locale import JAKARTA
from bridge.runtime import Runtime
from bridge.store.models import Case, OutboxRow, StoredFile
from bridge.web.app import create_app
from bridge.web.settings import SigningKey, WebSettings
from tests.support.clock import Clock
from tests.support.databases import migrated_sqlite
from tests.support.settings import make_settings
from tests.support.web import Env, csrf_of

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    rt = Runtime(make_settings(migrated_sqlite(tmp_path / "web.db")))
    clock = Clock()
    ws = WebSettings(poll_seconds=1)
    e = Env(rt, clock, ws, create_app(rt, web=ws, key=SigningKey("k" * 48, "test"),
                                      clock=clock))
    yield e
    for c in e.clients:
        c.close()
    rt.close()


def _count(env: Env, model: type) -> int:
    with env.rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _form(**over: str) -> dict[str, str]:
    values = {"kanal": "surat", "judul": "Surat keberatan izin gudang",
              "isi": "Warga RT 03 keberatan atas gudang di samping sekolah.",
              "tanggal_terima": "2026-11-02", "jam_terima": "09:30",
              "nama": "Siti Aminah", "telepon": "081234567890", "lokasi": "Desa Kalisat"}
    values.update(over)
    return values


def test_a_letter_taken_in_on_the_page(env: Env) -> None:
    c = env.login("petugas")
    queue = c.get("/antrean")
    assert 'href="/kasus/baru"' in queue.text
    page = c.get("/kasus/baru")
    assert page.status_code == 200 and "Catat pengaduan baru" in page.text
    r = c.post("/kasus/baru", data={"csrf_token": csrf_of(page.text), **_form()},
               files=[("lampiran", ("surat.pdf", PDF, "application/pdf"))],
               follow_redirects=False)
    assert r.status_code == 303, r.text
    shown = c.get(r.headers["location"])
    assert "Pengaduan dicatat dengan nomor register UJI/ADU/2026/" in shown.text
    with env.rt.sessions() as s:
        case = s.scalars(select(Case)).one()
        assert (case.channel, case.title) == ("surat", "Surat keberatan izin gudang")
        assert case.received_at.astimezone(JAKARTA).isoformat() == \
            "2026-11-02T09:30:00+07:00"  # the clock starts at receipt, not at typing
        assert case.deadline_at is not None and case.deadline_at > case.received_at
        assert (case.reporter or {}).get("name") == "Siti Aminah"
        assert [a["name"] for a in case.attachments] == ["surat.pdf"]
        assert s.scalar(select(func.count()).select_from(StoredFile)) == 1


def test_anonim_keeps_no_identity_and_rahasia_is_flagged(env: Env) -> None:
    c = env.login("petugas")
    token = csrf_of(c.get("/kasus/baru").text)
    c.post("/kasus/baru", data={"csrf_token": token, "anonim": "1", **_form()})
    c.post("/kasus/baru", data={"csrf_token": token, "rahasia": "1",
                                **_form(judul="Pungutan liar di loket")})
    with env.rt.sessions() as s:
        anonim, rahasia = s.scalars(select(Case).order_by(Case.id)).all()
    assert anonim.is_anonymous and anonim.reporter is None
    assert rahasia.is_secret and (rahasia.reporter or {}).get("name") == "Siti Aminah"


@pytest.mark.parametrize(("over", "message"), [
    ({"judul": ""}, "Judul pengaduan wajib diisi."),
    ({"kanal": "merpati"}, "Pilih kanal pengaduan dari daftar."),
    ({"tanggal_terima": ""}, "Tanggal terima wajib diisi"),
    ({"tanggal_terima": (date.today() + timedelta(days=3)).isoformat()},
     "Tanggal terima tidak boleh di masa depan."),
    ({"tanggal_terima": "kemarin"}, "Tanggal terima tidak dapat dibaca"),
])
def test_bad_input_is_said_in_bahasa_and_stores_nothing(env: Env, over: dict[str, str],
                                                        message: str) -> None:
    c = env.login("petugas")
    token = csrf_of(c.get("/kasus/baru").text)
    r = c.post("/kasus/baru", data={"csrf_token": token, **_form(**over)})
    assert r.status_code == 422 and message in r.text
    # What was typed stays in the form.
    assert "Warga RT 03 keberatan" in r.text
    assert _count(env, Case) == 0 and _count(env, OutboxRow) == 0


def test_an_attachment_that_is_not_a_pdf_or_image_stores_nothing(env: Env) -> None:
    c = env.login("petugas")
    token = csrf_of(c.get("/kasus/baru").text)
    r = c.post("/kasus/baru", data={"csrf_token": token, **_form()},
               files=[("lampiran", ("surat.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"))])
    assert r.status_code == 422 and "hanya berkas" in r.text
    assert _count(env, Case) == 0 and _count(env, StoredFile) == 0


def test_only_the_roles_that_take_in_cases_may_use_it(env: Env) -> None:
    c = env.login("kabid")
    assert c.get("/kasus/baru").status_code == 403
    assert 'href="/kasus/baru"' not in c.get("/antrean").text


def test_no_csrf_token_is_refused(env: Env) -> None:
    c = env.login("petugas", )
    r = c.post("/kasus/baru", data=_form())
    assert r.status_code in (400, 403)
    assert _count(env, Case) == 0
