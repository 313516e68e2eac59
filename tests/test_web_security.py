"""The staff page's security promises (issue 14): sessions that end at once, sign-in
limits that cannot be spoofed or turned against a real user, security headers on every
answer, 404/422 instead of 500, uploads checked by content."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from bridge.cli import main
from bridge.web.auth import set_active, set_password, set_role
from bridge.web.sessions import COOKIE_NAME
from tests.test_web import PASSWORD, Env, build_env, csrf_of


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = build_env(f"sqlite:///{tmp_path / 'web.db'}")
    yield e
    for c in e.clients:
        c.close()
    e.rt.close()


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
    from tests.test_web_cli import run, users, write_config

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
