"""The staff page over HTTP (Starlette's TestClient against the real app and a real
database): sign-in, sessions, CSRF, roles, every route, bad input and escaping."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from bridge.runtime import Runtime
from bridge.store.models import Case, OutboxRow, User
from bridge.web.app import create_app
from bridge.web.forms import CONTENT_MAX
from bridge.web.settings import SigningKey, WebSettings
from tests.support.passwords import TEST_HASHER
from tests.support.settings import make_settings
from tests.support.web import (
    ANALIS,
    KASI,
    PASSWORD,
    PASSWORD_HASH,
    PETUGAS,
    Clock,
    Env,
    build_env,
    csrf_of,
    version_of,
)

# -- sign-in, sessions, CSRF, rate limit ------------------------------------------------


def test_pages_need_sign_in(env: Env) -> None:
    c = env.client()
    for path in ("/antrean", "/kasus/1", "/kotak-keluar", "/rekap", "/rekap.csv"):
        r = c.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/masuk?next=")
    home = c.get("/", follow_redirects=False)
    assert home.status_code == 303 and home.headers["location"] == "/antrean"
    page = c.get("/antrean")
    assert page.url.path == "/masuk"
    assert "Nama pengguna" in page.text and "Kata sandi" in page.text
    data = c.get("/antrean/data")
    assert data.status_code == 401 and "masuk kembali" in data.json()["error"]


def test_sign_in_and_out(env: Env) -> None:
    env.case(title="Jalan rusak di depan kantor")
    c = env.login("kasi")
    page = c.get("/antrean")
    assert page.status_code == 200
    assert "Dewi Lestari" in page.text and "Kepala Seksi Penanganan Pengaduan" in page.text
    assert "Jalan rusak di depan kantor" in page.text
    # Already signed in: the sign-in page sends on to where the user was going.
    again = c.get("/masuk?next=/rekap", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == "/rekap"
    r = c.post("/keluar", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/masuk"
    after = c.get("/masuk")
    assert "Anda telah keluar." in after.text
    assert c.get("/antrean", follow_redirects=False).status_code == 303


def test_wrong_password_and_unknown_user(env: Env) -> None:
    env.user("kasi")
    c = env.client()
    token = csrf_of(c.get("/masuk").text)
    for username, password in (("kasi", "salah-sandi-123"), ("tidakada", PASSWORD),
                               ("kasi", "")):
        r = c.post("/masuk", data={"username": username, "password": password,
                                   "csrf_token": token})
        assert r.status_code in (400, 401)
        assert ("Nama pengguna atau kata sandi salah." in r.text
                or "Isi nama pengguna dan kata sandi." in r.text)
    assert c.get("/antrean", follow_redirects=False).status_code == 303


def test_sign_in_rate_limited_per_account(env: Env) -> None:
    env.user("kasi")
    env.user("analis")
    c = env.client(ip="10.9.9.9")
    token = csrf_of(c.get("/masuk").text)

    def attempt(username: str, password: str, client: TestClient = c,
                tok: str = token) -> Any:
        return client.post("/masuk", data={"username": username, "password": password,
                                           "csrf_token": tok}, follow_redirects=False)

    for _ in range(env.web.login_max_failures):
        assert attempt("kasi", "tebakan-salah-1").status_code == 401
    blocked = attempt("kasi", PASSWORD)  # even the right password is refused now
    assert blocked.status_code == 429
    assert "Terlalu banyak percobaan masuk yang gagal" in blocked.text
    assert "5 menit" in blocked.text
    # Another user from the same address is not held; the account is, from anywhere
    # (a new address per guess does not buy new guesses).
    assert attempt("analis", PASSWORD).status_code == 303
    other = env.client(ip="10.1.1.1")
    assert attempt("kasi", PASSWORD, other, csrf_of(other.get("/masuk").text)
                   ).status_code == 429
    env.clock.advance(env.web.login_window_seconds + 1)
    c2 = env.client(ip="10.9.9.9")
    assert attempt("kasi", PASSWORD, c2, csrf_of(c2.get("/masuk").text)).status_code == 303


def test_session_expires(env: Env) -> None:
    c = env.login("kasi")
    assert c.get("/antrean").url.path == "/antrean"
    env.clock.advance(env.web.session_max_age - 5)
    assert c.get("/antrean").url.path == "/antrean"
    env.clock.advance(10)
    r = c.get("/antrean?tahap=received", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/masuk?next=/antrean%3Ftahap%3Dreceived"
    page = c.get(r.headers["location"])
    assert "Sesi Anda telah berakhir" in page.text
    assert c.get("/antrean/data").status_code == 401


def test_password_change_and_disable_end_sessions(env: Env) -> None:
    c = env.login("kasi")
    assert c.get("/antrean").url.path == "/antrean"
    with env.rt.sessions() as s, s.begin():
        s.execute(update(User).where(User.username == "kasi")
                  .values(password_hash=TEST_HASHER.hash("sandi-baru-9876")))
    assert c.get("/antrean", follow_redirects=False).status_code == 303
    c2 = env.login("analis")
    with env.rt.sessions() as s, s.begin():
        s.execute(update(User).where(User.username == "analis").values(active=False))
    assert c2.get("/antrean", follow_redirects=False).status_code == 303


def test_csrf_refused_on_every_post(env: Env) -> None:
    env.user("petugas")
    cid = env.case()
    c = env.client()
    c.get("/masuk")
    r = c.post("/masuk", data={"username": "petugas", "password": PASSWORD})
    assert r.status_code == 403 and "token keamanan" in r.text
    assert c.get("/antrean", follow_redirects=False).status_code == 303  # not signed in
    c = env.login("petugas")
    before = env.counts(), env.stage(cid)
    page = c.get(f"/kasus/{cid}")
    for token in ("", "palsu" * 10):
        r = c.post(f"/kasus/{cid}/aksi/register",
                   data={"csrf_token": token, "versi": version_of(page.text)})
        assert r.status_code == 403
        assert "token keamanannya tidak cocok" in r.text and "Tidak ada yang diubah" in r.text
    assert (env.counts(), env.stage(cid)) == before
    assert c.post("/keluar", data={}).status_code == 403
    assert c.post("/kotak-keluar/ulang-semua", data={"csrf_token": "x"}).status_code == 403


def test_next_parameter_stays_on_this_site(env: Env) -> None:
    env.user("kasi")
    c = env.client()
    for bad in ("//evil.example/x", "https://evil.example/", "\\\\evil", "javascript:1"):
        token = csrf_of(c.get("/masuk").text)
        r = c.post("/masuk", data={"username": "kasi", "password": PASSWORD,
                                   "csrf_token": token, "next": bad}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/antrean", bad
        c.cookies.clear()


def test_security_headers_and_static(env: Env) -> None:
    c = env.client()
    r = c.get("/masuk")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Lax" in r.headers["set-cookie"]
    for path in ("/static/app.css", "/static/app.js", "/static/ikon.svg"):
        assert c.get(path).status_code == 200, path
    # Nothing on the page points outside the bridge.
    assert not re.search(r'(src|href)="(https?:)?//', r.text)


def test_demo_login_link(tmp_path: Path) -> None:
    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'd.db'}"))
    with rt.sessions() as s, s.begin():
        s.add(User(username="kasi", full_name="Dewi", role="kasi",
                   password_hash=PASSWORD_HASH, active=True))
    app = create_app(rt, web=WebSettings(), key=SigningKey("d" * 40, "test"),
                     auto_login={"tok-123": "kasi"})
    with TestClient(app) as c:
        assert c.get("/masuk/demo/salah").status_code == 404
        page = c.get("/masuk/demo/tok-123")
        assert page.url.path == "/antrean" and "Dewi" in page.text
    plain = create_app(rt, web=WebSettings(), key=SigningKey("d" * 40, "test"))
    with TestClient(plain) as c:
        assert c.get("/masuk/demo/tok-123").status_code == 404
    rt.close()


# -- queue ------------------------------------------------------------------------------


def test_queue_sorted_by_deadline_and_filters(env: Env) -> None:
    now = datetime.now(UTC)
    late = env.case(title="Lama sekali", received_at=now - timedelta(days=40),
                    category="Perizinan", location="Kel. Mojo, Kec. Kota")
    fresh = env.case(title="Baru saja", channel="telepon")
    env.to_verified(fresh)
    env.rt.actions().classify(fresh, ANALIS, "sedang")  # berat would escalate at once
    c = env.login("kasi")
    page = c.get("/antrean").text
    assert page.index("Lama sekali") < page.index("Baru saja")  # the most urgent first
    row = re.search(rf'<tr class="([^"]*)" data-id="{late}"', page)
    assert row and "lewat" in row.group(1) and "baru" in row.group(1)
    assert "lewat" in page and "Lewat tenggat" in page

    def titles(query: str) -> set[str]:
        text = c.get("/antrean?" + query).text
        return {t for t in ("Lama sekali", "Baru saja") if t in text}

    assert titles("lewat=1") == {"Lama sekali"}
    assert titles("tahap=verified") == set()
    assert titles("tahap=classified") == {"Baru saja"}
    assert titles("klasifikasi=sedang") == {"Baru saja"}
    assert titles("kanal=telepon") == {"Baru saja"}
    assert titles("cari=mojo") == {"Lama sekali"}
    assert titles("cari=perizinan&kanal=surat") == {"Lama sekali"}
    assert titles("opd=DLH") == set()
    assert "Tidak ada pengaduan yang cocok" in c.get("/antrean?cari=tidak-ada-xyz").text
    assert c.get("/antrean?hal=abc").status_code == 200


def test_queue_polling_shows_new_cases_with_etag(env: Env) -> None:
    env.case(title="Pertama")
    c = env.login("petugas")
    queue = c.get("/antrean").text
    poll_url = re.search(r'data-poll-url="([^"]+)"', queue)
    assert poll_url
    first = c.get(poll_url.group(1).replace("&amp;", "&"))
    assert first.status_code == 200 and first.json()["count"] == 1
    etag = first.headers["etag"]
    assert c.get("/antrean/data", headers={"If-None-Match": etag}).status_code == 304
    new_id = env.case(title="Kedua <b>tebal</b>")
    second = c.get("/antrean/data", headers={"If-None-Match": etag})
    assert second.status_code == 200
    body = second.json()
    assert body["count"] == 2 and body["new"] == 2 and new_id in body["ids"]
    assert "Kedua &lt;b&gt;tebal&lt;/b&gt;" in body["html"] and "<b>" not in body["html"]


def test_opening_a_case_clears_new_without_a_new_version(env: Env) -> None:
    cid = env.case()
    _, version = env.stage(cid)
    c = env.login("analis")
    assert c.get("/antrean/data").json()["new"] == 1
    c.get(f"/kasus/{cid}")
    with env.rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.is_new is False and case.version == version
    assert c.get("/antrean/data").json()["new"] == 0


def test_report_content_is_escaped(env: Env) -> None:
    evil = "<script>alert(1)</script>"
    cid = env.case(title=evil, content=f"isi {evil}", location=evil, category=evil,
                   reporter={"name": evil})
    c = env.login("kasi")
    for path in ("/antrean", f"/kasus/{cid}", "/antrean/data", "/rekap"):
        text = c.get(path).text
        assert "<script>alert" not in text, path
    page = c.get(f"/kasus/{cid}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# -- the case page and its actions ----------------------------------------------------


def test_case_page_shows_report_history_deadlines_outbox(env: Env) -> None:
    cid = env.case(title="Limbah cair", category="Lingkungan", location="Kec. Kota",
                   attachments=[])
    env.to_verified(cid)
    c = env.login("kasi")
    page = c.get(f"/kasus/{cid}").text
    for text in ("Limbah cair", "Sudah 3 bulan menunggu.", "Lingkungan", "Kec. Kota",
                 "Riwayat", "Pengaduan diterima", "Catat di buku register",
                 "Berkas lengkap dan sah", "Sari (petugas)", "Batas waktu penyelesaian",
                 "Menunggu dikirim ke LAPOR!", "Laporan baru ke LAPOR!",
                 "Berkas lengkap dan terverifikasi"):
        assert text in page, text
    # Kasi's actions in "verified", in profile order.
    summaries = re.findall(r"<summary>([^<]+)", page)
    assert [s.strip() for s in summaries] == [
        "Klasifikasikan pengaduan", "Teruskan ke OPD terkait (tembusan kepada pelapor)",
        "Bukan wewenang: teruskan ke instansi lain di LAPOR!",
        "Eskalasi (belum selesai / melewati batas waktu)"]
    assert "Dinas Lingkungan Hidup (DLH)" in page and "Kantor Pertanahan (BPN)" in page
    assert c.get("/kasus/99999").status_code == 404
    assert "Pengaduan tidak ditemukan" in c.get("/kasus/99999").text


def test_actions_through_the_page_reach_the_outbox(env: Env) -> None:
    cid = env.case()
    petugas = env.login("petugas")
    r = env.act(petugas, cid, "register", {"catatan": "dicatat di buku"})
    assert r.status_code == 303 and r.headers["location"] == f"/kasus/{cid}"
    page = petugas.get(f"/kasus/{cid}").text
    assert "«Catat di buku register» tersimpan" in page
    assert "Tercatat di buku register" in page and "dicatat di buku" in page
    assert "Sari Wulandari (petugas)" in page  # the actor in the history
    assert env.act(petugas, cid, "files_complete").status_code == 303
    kasi = env.login("kasi")
    r = env.act(kasi, cid, "forward_opd", {"opd": "DLH", "tembusan": "Pelapor\nCamat Kota",
                                           "catatan": "limbah pabrik"})
    assert r.status_code == 303
    page = kasi.get(f"/kasus/{cid}").text
    assert "Akan dikirim ke LAPOR!" in page
    assert "Diteruskan ke OPD terkait" in page
    with env.rt.sessions() as s:
        rows = s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid)
                         .order_by(OutboxRow.id)).all()
    assert [r.kind for r in rows] == ["create", "followup"]
    text = rows[1].payload["content"]
    assert "Dinas Lingkungan Hidup" in text and "Tembusan: Pelapor; Camat Kota" in text
    assert rows[1].payload["institution_to_id"] == 102
    assert page.count("Tindak lanjut") >= 1  # the queued follow-up is listed on the case


def test_followup_with_attachment_and_recorded_step(env: Env) -> None:
    cid = env.case()
    env.to_verified(cid)
    env.rt.actions().classify(cid, ANALIS, "sedang")
    env.rt.actions().dispose(cid, KASI, "Seksi Pengaduan")
    c = env.login("analis")
    r = env.act(c, cid, "followup", {"jenis": "", "isi": "Sedang kami periksa."},
                files=[("lampiran", ("foto.jpg", b"\xff\xd8\xff" + b"x" * 100, "image/jpeg"))])
    assert r.status_code == 303, r.text
    r = env.act(c, cid, "followup", {"jenis": "pemeriksaan_lapangan",
                                     "isi": "Cek lokasi hari Senin"})
    assert r.status_code == 303
    page = c.get(f"/kasus/{cid}").text
    assert "Pemeriksaan lapangan" in page and "Cek lokasi hari Senin" in page
    assert "foto.jpg" in page
    with env.rt.sessions() as s:
        rows = s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid,
                                                 OutboxRow.kind == "followup")).all()
    assert len(rows) == 1 and rows[0].payload["file_ids"]  # the step stayed local
    r = env.act(c, cid, "draft_answer", {"isi": "Konsep jawaban v1"})
    assert r.status_code == 303 and env.stage(cid)[0] == "answer_drafted"


def test_role_refused_with_clear_message(env: Env) -> None:
    cid = env.case()
    c = env.login("analis")
    before = env.counts(), env.stage(cid)
    page = c.get(f"/kasus/{cid}").text
    assert "Tidak ada tindakan untuk peran Anda" in page
    r = c.post(f"/kasus/{cid}/aksi/register",
               data={"csrf_token": csrf_of(page), "versi": version_of_case(env, cid)})
    assert r.status_code == 403
    assert "tidak berwenang melakukan «Catat di buku register»" in r.text
    assert "Petugas Pengaduan / Front Office" in r.text
    assert "Traceback" not in r.text
    assert (env.counts(), env.stage(cid)) == before
    assert c.post(f"/kasus/{cid}/aksi/tidak_ada",
                  data={"csrf_token": csrf_of(page), "versi": "1"}).status_code == 404


def version_of_case(env: Env, cid: int) -> str:
    return str(env.stage(cid)[1])


def test_approval_waits_for_its_turn(env: Env) -> None:
    cid = env.case()
    env.to_answer_drafted(cid)
    kadis = env.login("kepala_dinas")
    page = kadis.get(f"/kasus/{cid}").text
    assert "menunggu paraf Kepala Bidang Pengaduan" in page
    assert "Tanda tangan" not in page
    r = kadis.post(f"/kasus/{cid}/aksi/approve",
                   data={"csrf_token": csrf_of(page), "versi": version_of_case(env, cid)})
    assert r.status_code == 403 and "belum giliran Anda" in r.text
    kabid = env.login("kabid")
    assert env.act(kabid, cid, "approve").status_code == 303
    page = kadis.get(f"/kasus/{cid}").text
    assert "Tanda tangan: Surat Jawaban Pengaduan" in page and "Nomor dokumen" in page
    assert env.act(kadis, cid, "approve", {"nomor": ""}).status_code == 303
    assert env.stage(cid)[0] == "answer_approved"


def test_stale_page_is_refused_and_keeps_what_was_typed(env: Env) -> None:
    cid = env.case()
    env.to_verified(cid)
    kasi = env.login("kasi")
    page = kasi.get(f"/kasus/{cid}").text
    old_version = version_of(page)
    env.rt.actions().classify(cid, ANALIS, "ringan")  # someone else moves it on
    before = env.counts(), env.stage(cid)
    r = kasi.post(f"/kasus/{cid}/aksi/forward_opd", data={
        "csrf_token": csrf_of(page), "versi": old_version, "opd": "DLH",
        "tembusan": "Pelapor", "catatan": "catatan panjang yang sudah saya ketik"})
    assert r.status_code == 409
    assert "baru saja diubah oleh pengguna lain" in r.text
    assert "catatan panjang yang sudah saya ketik" in r.text
    assert "Terklasifikasi" in r.text  # the fresh state is shown
    assert (env.counts(), env.stage(cid)) == before
    # The page shown carries the new version: sending again works.
    again = kasi.post(f"/kasus/{cid}/aksi/forward_opd", data={
        "csrf_token": csrf_of(r.text), "versi": version_of(r.text), "opd": "DLH",
        "tembusan": "Pelapor", "catatan": "x"}, follow_redirects=False)
    assert again.status_code == 303 and env.stage(cid)[0] == "forwarded"


def test_action_no_longer_valid_in_stage(env: Env) -> None:
    cid = env.case()
    env.to_verified(cid)
    c = env.login("kasi")
    r = c.post(f"/kasus/{cid}/aksi/dispose", data={
        "csrf_token": csrf_of(c.get("/antrean").text),
        "versi": version_of_case(env, cid), "tujuan": "Seksi"})
    assert r.status_code == 409
    assert "tidak dapat dilakukan pada tahap «Berkas lengkap dan terverifikasi»" in r.text


@pytest.mark.parametrize("key, data, message", [
    ("return_incomplete", {"kekurangan": "  "}, "«Berkas yang harus dilengkapi pelapor» wajib"),
    ("classify", {"klasifikasi": "sangat_berat"}, "Pilihan «Klasifikasi» tidak dikenal"),
    ("classify", {}, "«Klasifikasi» wajib diisi"),
    ("files_complete", {"catatan": "x" * 4001}, "«Catatan» terlalu panjang: 4.001 karakter"),
])
def test_bad_form_input_is_refused_and_nothing_changes(env: Env, key: str,
                                                       data: dict[str, str],
                                                       message: str) -> None:
    cid = env.case()
    env.rt.actions().register(cid, PETUGAS)
    if key == "classify":
        env.rt.actions().files_complete(cid, PETUGAS)
    c = env.login("analis")
    before = env.counts(), env.stage(cid)
    r = env.act(c, cid, key, data)
    assert r.status_code == 400, r.text
    assert message in r.text
    assert (env.counts(), env.stage(cid)) == before


def test_oversized_content_and_body(tmp_path: Path) -> None:
    e = build_env(f"sqlite:///{tmp_path / 'w.db'}")
    e.rt.settings.outbox  # noqa: B018 - the default limit (10 MB) applies
    cid = e.case()
    e.to_verified(cid)
    e.rt.actions().classify(cid, ANALIS, "sedang")
    e.rt.actions().dispose(cid, KASI, "Seksi")
    c = e.login("analis")
    before = e.counts(), e.stage(cid)
    r = e.act(c, cid, "followup", {"isi": "x" * (CONTENT_MAX + 1)})
    assert r.status_code == 400 and "«Isi» terlalu panjang" in r.text
    page = c.get(f"/kasus/{cid}").text
    huge = b"x" * (e.app.state.page.max_body + 1)
    r = c.post(f"/kasus/{cid}/aksi/followup", data={
        "csrf_token": csrf_of(page), "versi": version_of(page), "isi": "lihat"},
        files=[("lampiran", ("besar.bin", huge, "application/octet-stream"))])
    assert r.status_code == 413 and "Kiriman melebihi batas" in r.text
    assert (e.counts(), e.stage(cid)) == before
    e.rt.close()


def test_attachment_over_the_limit(tmp_path: Path) -> None:
    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'a.db'}",
                               outbox={"max_attachment_bytes": 1024}))
    e = Env(rt, Clock(), WebSettings(), None)
    e.app = create_app(rt, web=e.web, key=SigningKey("a" * 40, "t"), clock=e.clock)
    cid = e.case()
    e.to_verified(cid)
    rt.actions().classify(cid, ANALIS, "sedang")
    rt.actions().dispose(cid, KASI, "Seksi")
    c = e.login("analis")
    before = e.counts()
    r = e.act(c, cid, "followup", {"isi": "lampiran besar"},
              files=[("lampiran", ("besar.pdf", b"%" * 2048, "application/pdf"))])
    assert r.status_code == 400 and "Lampiran «besar.pdf» berukuran 2 KB" in r.text
    assert "lampiran besar" in r.text  # what was typed is kept
    r = e.act(c, cid, "followup", {"isi": "banyak"},
              files=[("lampiran", (f"f{i}.txt", b"ok", "text/plain")) for i in range(6)])
    assert r.status_code in (400, 413)
    assert e.counts() == before
    for client in e.clients:
        client.close()
    rt.close()


def test_privacy_of_reporters(env: Env) -> None:
    secret = env.case(title="Rahasia", is_secret=True,
                      reporter={"name": "Nama Rahasia Sekali", "phone": "0812999"})
    anon = env.case(title="Anonim", is_anonymous=True, reporter={"name": "Tak Boleh Tampil"})
    kasi = env.login("kasi")  # may see a rahasia reporter
    kadis = env.login("kepala_dinas")  # may not
    admin = env.login("admin")
    assert "Nama Rahasia Sekali" in kasi.get(f"/kasus/{secret}").text
    for c in (kadis, admin):
        page = c.get(f"/kasus/{secret}").text
        assert "Nama Rahasia Sekali" not in page and "0812999" not in page
        assert "identitas hanya dapat dilihat oleh petugas yang berwenang" in page
    for c in (kasi, kadis, admin):
        page = c.get(f"/kasus/{anon}").text
        assert "Tak Boleh Tampil" not in page
        assert "identitas pelapor tidak ditampilkan kepada siapa pun" in page


def test_admin_sees_but_takes_no_sop_step(env: Env) -> None:
    cid = env.case()
    c = env.login("admin")
    page = c.get(f"/kasus/{cid}").text
    assert "Peran admin tidak menjalankan langkah SOP" in page
    r = c.post(f"/kasus/{cid}/aksi/register",
               data={"csrf_token": csrf_of(page), "versi": version_of_case(env, cid)})
    assert r.status_code == 403 and "Admin" in r.text


# -- outbox, recap, errors -------------------------------------------------------------


def make_dead(env: Env, cid: int) -> int:
    with env.rt.sessions() as s, s.begin():
        row = s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid)).first()
        assert row is not None
        row.status = "dead"
        row.last_error = "LAPOR! 422: content: wajib diisi"
        return row.id


def test_outbox_page_and_retry(env: Env) -> None:
    cid = env.case(title="Gagal kirim")
    env.case(title="Menunggu")
    row_id = make_dead(env, cid)
    petugas = env.login("petugas")
    page = petugas.get("/kotak-keluar").text
    assert "1 menunggu dikirim" in page and "1 gagal" in page
    assert "LAPOR! 422: content: wajib diisi" in page and "Gagal (perlu tindakan)" in page
    assert f'action="/kotak-keluar/{row_id}/ulang"' not in page  # petugas may not retry
    r = petugas.post(f"/kotak-keluar/{row_id}/ulang", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 403 and "tidak berwenang mengulang pengiriman" in r.text
    kasi = env.login("kasi")
    page = kasi.get("/kotak-keluar").text
    assert f'action="/kotak-keluar/{row_id}/ulang"' in page
    r = kasi.post(f"/kotak-keluar/{row_id}/ulang", data={"csrf_token": csrf_of(page)})
    assert r.status_code == 200 and f"Kiriman {row_id} dimasukkan kembali" in r.text
    with env.rt.sessions() as s:
        row = s.get(OutboxRow, row_id)
        assert row is not None and row.status == "pending"
    again = kasi.post(f"/kotak-keluar/{row_id}/ulang", data={"csrf_token": csrf_of(page)})
    assert "tidak dalam keadaan gagal" in again.text
    make_dead(env, cid)
    admin = env.login("admin")
    r = admin.post("/kotak-keluar/ulang-semua",
                   data={"csrf_token": csrf_of(admin.get("/kotak-keluar").text)})
    assert "1 kiriman yang gagal dimasukkan kembali" in r.text


def test_recap_page_and_csv(env: Env) -> None:
    env.case(title="A", category="Perizinan")
    env.case(title="B", category="Perizinan", channel="telepon")
    env.case(title="C", category="=HYPERLINK(1)", channel="telepon")
    c = env.login("kabid")
    page = c.get("/rekap").text
    assert "Rekapitulasi pengaduan" in page and "<svg" in page
    assert "Menurut kanal" in page and "Telepon" in page
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
    csv_text = c.get(f"/rekap.csv?dari={today}&sampai={today}")
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert "attachment" in csv_text.headers["content-disposition"]
    lines = csv_text.text.lstrip("\ufeff").splitlines()
    assert "ringkasan,diterima,Pengaduan diterima,3" in lines
    assert "kanal,telepon,Telepon,2" in lines and "kategori,Perizinan,Perizinan,2" in lines
    assert "kategori,'=HYPERLINK(1),'=HYPERLINK(1),1" in lines
    bad = c.get("/rekap?dari=2026-13-45")
    assert bad.status_code == 400 and "Tanggal tidak sah" in bad.text
    assert c.get("/rekap?dari=2026-05-02&sampai=2026-05-01").status_code == 422
    assert c.get("/rekap.csv?dari=x").status_code == 400


def test_unknown_page_and_server_error(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    c = env.login("kasi")
    r = c.get("/tidak-ada")
    assert r.status_code == 404 and "Halaman tidak ditemukan" in r.text
    assert c.post("/antrean", data={}).status_code == 405

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom: internal detail")

    monkeypatch.setattr("bridge.web.routes.queue.list_queue", broken)
    bad = env.client(raise_errors=False)
    bad.cookies.update(c.cookies)
    r = bad.get("/antrean")
    assert r.status_code == 500
    assert "Terjadi kesalahan pada server" in r.text
    assert "boom" not in r.text and "Traceback" not in r.text


# -- both databases ---------------------------------------------------------------------


def test_action_and_stale_on_each_database(db_url: str) -> None:
    e = build_env(db_url)
    try:
        cid = e.case()
        petugas = e.login("petugas")
        page = petugas.get(f"/kasus/{cid}").text
        assert e.act(petugas, cid, "register").status_code == 303
        r = petugas.post(f"/kasus/{cid}/aksi/register", data={
            "csrf_token": csrf_of(page), "versi": version_of(page)})
        assert r.status_code == 409 and "baru saja diubah" in r.text
        assert e.stage(cid)[0] == "registered"
    finally:
        for c in e.clients:
            c.close()
        e.rt.close()
