"""The staff page's security promises (issue 14): sessions that end at once, sign-in
limits that cannot be spoofed or turned against a real user, security headers on every
answer, 404/422 instead of 500, uploads checked by content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from bridge.cli import main
from bridge.services.accounts import set_active, set_password, set_role
from bridge.web.sessions import COOKIE_NAME
from tests.support.web import PASSWORD, Env, build_env, csrf_of


def _copy(env: Env, c: TestClient, ip: str = "10.0.0.9") -> TestClient:
    """Another browser holding a saved copy of ``c``'s session cookie."""
    other = env.client(ip)
    other.cookies.set(COOKIE_NAME, c.cookies[COOKIE_NAME])
    return other


def _signed_in(c: TestClient) -> bool:
    return c.get("/antrean", follow_redirects=False).status_code == 200


# -- sessions ---------------------------------------------------------------------------


def test_sign_out_ends_saved_copies_of_the_cookie(env: Env) -> None:
    c = env.login("kasi")
    saved = _copy(env, c)
    elsewhere = env.login("kasi", ip="10.0.0.2")  # the same account in another browser
    assert _signed_in(saved) and _signed_in(elsewhere)
    page = c.get("/antrean")
    r = c.post("/keluar", data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert not _signed_in(c)
    assert not _signed_in(saved), "a saved cookie still works after /keluar"
    assert not _signed_in(elsewhere), "sign-out ends every session of the account"
    assert _signed_in(env.login("kasi"))  # signing in again works


@pytest.mark.parametrize("change", ["disable-enable", "password", "role"])
def test_account_changes_end_every_session(env: Env, change: str) -> None:
    c = env.login("kasi")
    saved = _copy(env, c)
    assert _signed_in(saved)
    with env.rt.sessions() as s, s.begin():
        if change == "disable-enable":
            set_active(s, "kasi", False)
        elif change == "password":
            set_password(s, "kasi", PASSWORD + "-baru")
        else:
            set_role(s, "kasi", "kabid", ["petugas", "analis", "kasi", "kabid", "admin"])
    if change == "disable-enable":
        assert not _signed_in(saved)
        with env.rt.sessions() as s, s.begin():
            set_active(s, "kasi", True)
    assert not _signed_in(saved), f"{change}: the old cookie still works"
    assert not _signed_in(c)


def test_user_role_command_and_generation_raised_by_each_change(tmp_path: Path) -> None:
    from tests.support.web_cli import run, users, write_config

    cfg = str(write_config(tmp_path))
    r = run(["user", "add", "dewi", "--role", "kasi", "--name", "Dewi",
             "--password-stdin", "--config", cfg], input="sandi-yang-panjang\n")
    assert r.exit_code == 0, r.output
    generations = [users(Path(cfg))["dewi"].session_generation]
    for args in (["user", "role", "dewi", "kabid"], ["user", "disable", "dewi"],
                 ["user", "enable", "dewi"]):
        r = run([*args, "--config", cfg])
        assert r.exit_code == 0, r.output
        generations.append(users(Path(cfg))["dewi"].session_generation)
    assert generations == sorted(set(generations)), generations
    assert users(Path(cfg))["dewi"].role == "kabid"
    r = CliRunner().invoke(main, ["user", "role", "dewi", "camat", "--config", cfg])
    assert r.exit_code != 0 and "unknown role 'camat'" in r.output


# -- sign-in limits ---------------------------------------------------------------------


def _attempt(c: TestClient, username: str, password: str,
             headers: dict[str, str] | None = None) -> int:
    token = csrf_of(c.get("/masuk").text)
    r = c.post("/masuk", data={"username": username, "password": password,
                               "csrf_token": token}, headers=headers or {},
               follow_redirects=False)
    return r.status_code


def test_forwarded_for_from_an_untrusted_peer_buys_no_new_guesses(env: Env) -> None:
    env.user("kasi")
    c = env.client(ip="127.0.0.1")  # a local proxy, but not listed in web.trusted_proxies
    for i in range(env.web.login_max_failures):
        assert _attempt(c, "kasi", "tebakan-salah", {"X-Forwarded-For": f"203.0.113.{i}"}
                        ) == 401
    assert _attempt(c, "kasi", PASSWORD, {"X-Forwarded-For": "198.51.100.7"}) == 429


def test_made_up_names_do_not_lock_out_a_real_user_behind_the_same_nat(env: Env) -> None:
    env.user("kasi")
    attacker = env.client(ip="10.20.0.1")
    for i in range(4 * env.web.login_max_failures + 3):
        assert _attempt(attacker, f"karangan{i}", "tebakan-salah") in (401, 429)
    # The address is over its budget: failures now say so, for real and made-up names
    # alike (the answer does not tell which names exist) ...
    assert _attempt(attacker, "karangan-lain", "tebakan-salah") == 429
    assert _attempt(attacker, "kasi", "tebakan-salah") == 429
    # ... but the real user behind the same address signs in with the right password.
    colleague = env.client(ip="10.20.0.1")
    assert _attempt(colleague, "kasi", PASSWORD) == 303


def test_trusted_proxy_forwards_the_client_address(tmp_path: Path) -> None:
    e = build_env(f"sqlite:///{tmp_path / 'web.db'}", trusted_proxies=["127.0.0.1"])
    try:
        e.user("kasi")
        e.user("analis")
        proxy = e.client(ip="127.0.0.1")
        # Four budgets' worth of failures from one client behind the proxy ...
        for i in range(4 * e.web.login_max_failures):
            _attempt(proxy, f"nama{i}", "tebakan-salah", {"X-Forwarded-For": "203.0.113.5"})
        assert _attempt(proxy, "analis", "salah-lagi", {"X-Forwarded-For": "203.0.113.5"}
                        ) == 429
        # ... are that client's, not every client's behind the proxy; and a spoofed
        # chain ending in the proxy's own view of the client is still that client.
        assert _attempt(proxy, "analis", "salah-lagi", {"X-Forwarded-For": "203.0.113.6"}
                        ) == 401
        assert _attempt(proxy, "analis", "salah", {"X-Forwarded-For": "1.2.3.4, 203.0.113.5"}
                        ) == 429
    finally:
        for c in e.clients:
            c.close()
        e.rt.close()


def test_client_address_walks_only_trusted_hops() -> None:
    from bridge.web.proxies import client_address, parse_networks

    trusted = parse_networks(["127.0.0.1", "10.0.0.0/8"])
    assert client_address("192.0.2.1", "1.1.1.1", trusted) == "192.0.2.1"
    assert client_address("127.0.0.1", None, trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.1.2.3", trusted
                          ) == "203.0.113.9"
    assert client_address("127.0.0.1", "10.1.1.1", trusted) == "10.1.1.1"
    assert client_address("127.0.0.1", "nonsense", trusted) == "127.0.0.1"
    assert client_address("127.0.0.1", "2001:db8::1", trusted) == "2001:db8::1"
    assert client_address("127.0.0.1", "1.1.1.1", []) == "127.0.0.1"
    with pytest.raises(ValueError, match="not an IP"):
        parse_networks(["proxy.local"])


def test_trusted_proxies_setting_is_checked_and_uvicorn_ignores_proxy_headers() -> None:
    from pydantic import ValidationError

    from bridge.web.serve import foreground_config
    from bridge.web.settings import WebSettings

    assert WebSettings().trusted_proxies == []
    with pytest.raises(ValidationError, match="not an IP"):
        WebSettings(trusted_proxies=["proxy.local"])
    config = foreground_config(object())
    assert config.proxy_headers is False


# -- the page's answers -----------------------------------------------------------------


def _has_security_headers(r: Any) -> bool:
    from bridge.web.app import SECURITY_HEADERS

    return all(r.headers.get(name) == value for name, value in SECURITY_HEADERS)


def test_security_headers_on_every_answer_error_pages_included(
        env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    c = env.login("kabid")
    answers = {
        "page": c.get("/antrean"),
        "static": c.get("/static/app.css"),
        "redirect": c.get("/", follow_redirects=False),
        "404": c.get("/tidak-ada"),
        "405": c.put("/antrean"),
        "403 csrf": c.post("/keluar", data={"csrf_token": "salah"}),
    }
    page = env.app.state.page

    def broken(*_a: object, **_k: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(page, "_rows", broken)
    failing = _copy(env, c)
    failing_client = TestClient(env.app, raise_server_exceptions=False)
    env.clients.append(failing_client)
    failing_client.cookies.set(COOKIE_NAME, failing.cookies[COOKIE_NAME])
    answers["500"] = failing_client.get("/antrean")
    assert answers["500"].status_code == 500
    for what, r in answers.items():
        assert _has_security_headers(r), (what, r.status_code, dict(r.headers))
    assert "Traceback" not in answers["500"].text and "boom" not in answers["500"].text


@pytest.mark.parametrize("path", ["/kasus/99999999999999999999", "/kasus/9223372036854775808",
                                  "/kasus/2147483648", "/kasus/0", "/kasus/999999999"])
def test_unknown_ids_answer_404_never_500(env: Env, path: str) -> None:
    c = env.login("kasi")
    r = c.get(path)
    assert r.status_code == 404 and _has_security_headers(r)
    token = csrf_of(c.get("/antrean").text)
    r = c.post(path + "/aksi/register", data={"csrf_token": token, "versi": "1"})
    assert r.status_code == 404
    r = c.post("/kotak-keluar/" + path.rsplit("/", 1)[1] + "/ulang",
               data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code < 500, r.status_code  # 404, or 303 back with "not found"


@pytest.mark.parametrize("query, status", [
    ("dari=0001-01-01&sampai=9999-12-31", 422),
    ("dari=1900-01-01&sampai=2026-01-01", 422),
    ("dari=2026-05-02&sampai=2026-05-01", 422),
    ("dari=2026-13-45", 400),
])
def test_impossible_recap_ranges_answer_422(env: Env, query: str, status: int) -> None:
    c = env.login("kabid")
    page = c.get("/rekap?" + query)
    assert page.status_code == status and "Ditampilkan bulan ini" in page.text
    assert c.get("/rekap.csv?" + query).status_code == status


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.7\n" + b"x" * 64


def _followup_ready(env: Env) -> tuple[int, TestClient]:
    from tests.support.web import ANALIS, KASI

    cid = env.case()
    env.to_verified(cid)
    env.rt.actions().classify(cid, ANALIS, "sedang")
    env.rt.actions().dispose(cid, KASI, "Seksi Pengaduan")
    return cid, env.login("analis")


@pytest.mark.parametrize("name, content, mime", [
    ("laporan.pdf", b"<html><script>alert(1)</script></html>", "application/pdf"),
    ("foto.jpg", b"MZ\x90\x00 a Windows program", "image/jpeg"),
    ("catatan.txt", b"hanya teks", "text/plain"),
    ("gambar.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "image/svg+xml"),
])
def test_uploads_other_than_pdf_and_images_are_refused_by_content(
        env: Env, name: str, content: bytes, mime: str) -> None:
    cid, c = _followup_ready(env)
    before = env.counts()
    r = env.act(c, cid, "followup", {"jenis": "", "isi": "Terlampir."},
                files=[("lampiran", (name, content, mime))])
    assert r.status_code == 400
    assert f"Lampiran «{name}» tidak dapat diterima: hanya berkas PDF atau gambar" in r.text
    assert "dikenali dari isinya" in r.text
    assert env.counts() == before


def test_pdf_and_images_are_stored_with_the_type_their_content_shows(env: Env) -> None:
    from sqlalchemy import select

    from bridge.store.models import StoredFile

    cid, c = _followup_ready(env)
    r = env.act(c, cid, "followup", {"jenis": "", "isi": "Terlampir."},
                files=[("lampiran", ("surat.pdf", PDF, "application/octet-stream")),
                       ("lampiran", ("halaman.html", PNG, "text/html"))])
    assert r.status_code == 303, r.text
    with env.rt.sessions() as s:
        stored = {f.name: f.mime for f in s.scalars(select(StoredFile))}
    assert stored == {"surat.pdf": "application/pdf", "halaman.html.png": "image/png"}
