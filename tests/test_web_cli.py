"""``lapor-bridge web`` and ``lapor-bridge user``, the [web] settings and the signing key,
and the page inside ``lapor-bridge demo``."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.config import ConfigError, load_settings
from bridge.runtime import Runtime
from bridge.services.accounts import authenticate
from bridge.services.actions import Actor
from bridge.store.models import Case
from bridge.web.settings import ENV_WEB_SECRET, signing_key, web_settings
from tests.support.ports import free_port
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings
from tests.support.web_cli import run, users, write_config


def test_user_add_list_passwd_disable(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    r = run(["user", "add", "Dewi", "--role", "kasi", "--name", "Dewi Lestari",
             "--password-stdin", "--config", cfg], input="sandi-yang-panjang\n")
    assert r.exit_code == 0, r.output
    assert "user dewi added (kasi)" in r.output
    found = users(Path(cfg))["dewi"]
    assert found.password_hash.startswith("$argon2") and "sandi" not in found.password_hash
    # The prompt asks twice and hides what is typed.
    r = run(["user", "add", "budi", "--role", "analis", "--name", "Budi", "--config", cfg],
            input="sandi-kedua-123\nsandi-kedua-123\n")
    assert r.exit_code == 0, r.output
    listing = run(["user", "list", "--config", cfg]).output
    assert "dewi" in listing and "kasi" in listing and "budi" in listing
    r = run(["user", "passwd", "dewi", "--password-stdin", "--config", cfg],
            input="sandi-baru-sekali\n")
    assert r.exit_code == 0
    with Runtime(load_settings(cfg)) as rt, rt.sessions() as s:
        assert authenticate(s, "dewi", "sandi-baru-sekali") is not None
        assert authenticate(s, "dewi", "sandi-yang-panjang") is None
    assert run(["user", "disable", "dewi", "--config", cfg]).exit_code == 0
    assert "(disabled)" in run(["user", "list", "--config", cfg]).output
    with Runtime(load_settings(cfg)) as rt, rt.sessions() as s:
        assert authenticate(s, "dewi", "sandi-baru-sekali") is None
    assert run(["user", "enable", "dewi", "--config", cfg]).exit_code == 0


@pytest.mark.parametrize("args, stdin, message", [
    (["user", "add", "x1", "--role", "camat", "--name", "X"], "sandi-panjang-1\n",
     "unknown role 'camat'; expected one of petugas, analis, kasi"),
    (["user", "add", "x2", "--role", "sistem", "--name", "X"], "sandi-panjang-1\n",
     "unknown role 'sistem'"),
    (["user", "add", "x3", "--role", "kasi", "--name", "X", "--password-stdin"], "pendek\n",
     "password too short"),
    (["user", "add", "a b", "--role", "kasi", "--name", "X", "--password-stdin"],
     "sandi-panjang-1\n", "invalid username 'a b'"),
    (["user", "add", "x4", "--role", "kasi", "--name", "  ", "--password-stdin"],
     "sandi-panjang-1\n", "a full name is required"),
    (["user", "passwd", "siapa", "--password-stdin"], "sandi-panjang-1\n", "no user 'siapa'"),
    (["user", "disable", "siapa"], None, "no user 'siapa'"),
])
def test_user_errors(tmp_path: Path, args: list[str], stdin: str | None,
                     message: str) -> None:
    cfg = str(write_config(tmp_path))
    r = run([*args, "--config", cfg], input=stdin)
    # An unknown role is bad input (exit 2), refused before the password is asked for.
    assert r.exit_code == (2 if "unknown role" in message else 1)
    assert message in r.output
    assert list(users(Path(cfg))) == ["operator"]  # the install's account only


def test_user_add_twice(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    args = ["user", "add", "dewi", "--role", "admin", "--name", "D", "--password-stdin",
            "--config", cfg]
    assert run(args, input="sandi-panjang-1\n").exit_code == 0
    r = run(args, input="sandi-panjang-2\n")
    assert r.exit_code == 1 and "exists already" in r.output


def test_password_is_not_an_option(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    r = CliRunner().invoke(main, ["user", "add", "d", "--role", "kasi", "--name", "D",
                                  "--password", "x", "--config", cfg])
    assert r.exit_code == 2 and "No such option" in r.output


@pytest.mark.parametrize("extra, key", [
    ("[web]\nprot = 1\n", "web.prot: unknown key"),
    ("[web]\nport = 0\n", "web.port:"),
    ("[web]\nsecret = \"abc\"\n", "web.secret: the signing key may not be written"),
    ("[web]\nretry_roles = [\"admin\", \"kasie\"]\n",
     "web.retry_roles[1]: unknown role 'kasie'"),
])
def test_web_config_errors(tmp_path: Path, extra: str, key: str) -> None:
    cfg = str(write_config(tmp_path, extra))
    r = run(["web", "--config", cfg])
    assert r.exit_code == 2 and key in r.output


def test_web_port_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = str(write_config(tmp_path))
        r = run(["web", "--config", cfg, "--port", str(port)])
    assert r.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in r.output


def test_signing_key_sources(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "web.key"
    cfg = write_config(tmp_path, f'[web]\nsecret_file = "{key_file}"\n')
    settings = load_settings(cfg)
    ws = web_settings(settings)
    first = signing_key(settings, ws, env={})
    assert first.origin == "file" and key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert signing_key(settings, ws, env={}).value == first.value  # reused, not remade
    assert first.value not in repr(first)
    from_env = signing_key(settings, ws, env={ENV_WEB_SECRET: "e" * 40})
    assert from_env.origin == "env" and from_env.value == "e" * 40
    with pytest.raises(ConfigError, match="too short"):
        signing_key(settings, ws, env={ENV_WEB_SECRET: "pendek"})
    key_file.write_text("short\n")
    with pytest.raises(ConfigError, match="web.secret_file: .*key too short"):
        signing_key(settings, ws, env={})
    relative = write_config(tmp_path, '[web]\nsecret_file = "rel.key"\n')
    rs = load_settings(relative)
    assert signing_key(rs, web_settings(rs), env={}).origin == "file"
    assert (tmp_path / "rel.key").exists()  # next to the config file
    memory = load_settings(write_config(tmp_path))
    assert signing_key(memory, web_settings(memory), env={}).origin == "memory"


def test_web_command_serves_the_page(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    port = free_port()
    env = {**os.environ, ENV_WEB_SECRET: "s" * 40}
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "web", "--config", cfg,
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/masuk", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(proc.communicate()[0]) from None
                time.sleep(0.1)
        assert r.status_code == 200 and "Masuk" in r.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert f"staff page at http://127.0.0.1:{port}/ (signing key: env)" in out
    assert "no accounts yet" in out
    assert "s" * 40 not in out


def test_demo_page_signs_in_and_pushes(tmp_path: Path) -> None:
    from bridge.app.cycle import run_cycle
    from bridge.lapor.sandbox import SandboxServer
    from bridge.web.demo import start_demo_web

    with SandboxServer(seed=3, reports=3, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'demo.db'}", sandbox.url))
        run_cycle(rt)
        handle = start_demo_web(rt, sandbox, echo=False)
        try:
            assert set(handle.links) >= {"kasi", "petugas", "kabid", "kadis"}
            with httpx.Client(follow_redirects=True, timeout=10) as browser:
                page = browser.get(handle.links["kasi"])
                assert page.url.path == "/antrean"
                assert "Kepala Seksi Penanganan Pengaduan" in page.text
                assert browser.get(handle.url + "/masuk/demo/nope").status_code == 404
            with rt.sessions() as s:
                case = s.scalars(select(Case).order_by(Case.id)).first()
                assert case is not None and case.lapor_id is not None
                cid, lapor_id = case.id, case.lapor_id
            a = rt.actions()
            a.register(cid, Actor("Sari", "petugas"))
            a.files_complete(cid, Actor("Sari", "petugas"))
            a.forward(cid, Actor("Dewi", "kasi"), "DLH", ["Pelapor"], "limbah")
            # The demo's background push delivers it without anyone running sync.
            deadline = time.monotonic() + 30
            while not any("Dinas Lingkungan Hidup" in f["content"]
                          for f in sandbox.state.followups_of(lapor_id)):
                assert time.monotonic() < deadline, "the demo push never delivered"
                time.sleep(0.2)
        finally:
            handle.stop()
            rt.close()
