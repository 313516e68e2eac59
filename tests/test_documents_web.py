"""The staff page's document downloads: signed-in, role-checked, errors in Indonesian."""

from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfReader

from bridge.runtime import Runtime
from bridge.web.app import create_app
from bridge.web.settings import SigningKey, WebSettings
from tests.support.clock import Clock
from tests.support.settings import make_settings
from tests.support.web import Env


def env_with(tmp_path: Path, **documents: object) -> Env:
    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'web.db'}", documents={
        "kop": {"lines": ["PEMERINTAH KABUPATEN UJI"]}, **documents}))
    clock = Clock()
    ws = WebSettings(poll_seconds=1)
    return Env(rt, clock, ws, create_app(rt, web=ws, key=SigningKey("k" * 48, "test"),
                                         clock=clock))


def text_of(content: bytes) -> str:
    return " ".join(" ".join(p.extract_text() or "" for p in
                             PdfReader(io.BytesIO(content)).pages).split())


def test_download_from_the_case_page(tmp_path: Path) -> None:
    env = env_with(tmp_path)
    try:
        cid = env.case(is_secret=True)
        anon = env.client()
        r = anon.get(f"/kasus/{cid}/dokumen/tanda_terima", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/masuk")
        c = env.login("kasi")
        page = c.get(f"/kasus/{cid}")
        assert f'href="/kasus/{cid}/dokumen/tanda_terima"' in page.text
        r = c.get(f"/kasus/{cid}/dokumen/tanda_terima")
        assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
        assert "attachment" in r.headers["content-disposition"]
        text = text_of(r.content)
        assert "PEMERINTAH KABUPATEN UJI" in text and "TANDA TERIMA PENGADUAN" in text
        assert "Sdr. Siti Aminah" in text  # rahasia: a kasi may see the name
        hidden = env.login("kepala_dinas").get(f"/kasus/{cid}/dokumen/tanda_terima")
        assert "Siti Aminah" not in text_of(hidden.content)  # the Kadis's role may not
        assert "Siti Aminah" not in text_of(c.get(f"/kasus/{cid}/dokumen/surat_penerusan"
                                                  ).content)  # nor what leaves the office
        r = c.get(f"/kasus/{cid}/dokumen/memo")
        assert r.status_code == 404 and "Jenis dokumen &#34;memo&#34; tidak dikenal" in r.text
        r = c.get("/kasus/999/dokumen/bapp")
        assert r.status_code == 404 and "Pengaduan tidak ditemukan" in r.text
    finally:
        env.rt.close()


def test_roles_and_a_broken_template(tmp_path: Path) -> None:
    custom = tmp_path / "templat"
    custom.mkdir()
    (custom / "bapp.html.j2").write_text("<p>{{ kepala_desa }}</p>")
    env = env_with(tmp_path, roles=["kasi"], templates_dir=str(custom))
    try:
        cid = env.case()
        r = env.login("petugas").get(f"/kasus/{cid}/dokumen/bapp")
        assert r.status_code == 403 and "tidak berwenang mengunduh dokumen" in r.text
        r = env.login("kasi").get(f"/kasus/{cid}/dokumen/bapp")
        assert r.status_code == 400
        assert "memakai kolom yang tidak dikenal: kepala_desa" in r.text
    finally:
        env.rt.close()
