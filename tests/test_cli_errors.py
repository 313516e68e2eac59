"""Every command-line error is one line: exit 2 for usage and config, 1 for run time, and
never a traceback (issue 14). Each command of the README's "Using it" table is run with
the mistakes a new user makes."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.lapor.sandbox import SandboxServer
from tests.support.cli import ENV, ROOT, assert_one_line_error, invoke, write_config
from tests.support.ports import free_port
from tests.support.settings import TEST_BEARER, TEST_TOKEN


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, SandboxServer]]:
    with SandboxServer(seed=2, reports=5, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        yield write_config(tmp_path, sandbox.url), sandbox


@pytest.fixture(scope="module")
def synced_once(tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[tuple[Path, SandboxServer]]:
    """A deployment synced once for the module (a sandbox start and a first sync per test
    cost more than the mistakes they serve)."""
    with SandboxServer(seed=2, reports=5, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        folder = tmp_path_factory.mktemp("synced")
        code, _, err = invoke("--config", str(write_config(folder, sandbox.url)), "sync",
                              "--once")
        assert code == 0, err
        yield folder, sandbox


@pytest.fixture
def synced(synced_once: tuple[Path, SandboxServer], tmp_path: Path
           ) -> tuple[Path, SandboxServer]:
    """The synced deployment, copied into this test's folder: whatever a mistake writes
    stays there."""
    folder, sandbox = synced_once
    shutil.copytree(folder, tmp_path, dirs_exist_ok=True)
    return write_config(tmp_path, sandbox.url), sandbox


# -- the five tracebacks of the issue ----------------------------------------------------


def test_sync_once_without_secrets(deployment: tuple[Path, SandboxServer]) -> None:
    config, _ = deployment
    code, out, err = invoke("--config", str(config), "sync", "--once",
                            env={"LAPOR_BRIDGE_BEARER": None, "LAPOR_BRIDGE_TOKEN": None})
    assert_one_line_error(code, out, err, 2, "secrets.bearer", "LAPOR_BRIDGE_BEARER")


def test_bearer_with_a_newline(deployment: tuple[Path, SandboxServer]) -> None:
    config, _ = deployment
    code, out, err = invoke("--config", str(config), "sync", "--once",
                            env={"LAPOR_BRIDGE_BEARER": TEST_BEARER + "\n"})
    assert_one_line_error(code, out, err, 2, "secrets.bearer")
    assert TEST_BEARER not in err


def test_db_password_with_a_sqlite_url(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    for args in (["queue"], ["check-config", str(config)]):
        code, out, err = invoke("--config", str(config), *args,
                                env={"LAPOR_BRIDGE_DB_PASSWORD": "rahasia"})
        assert_one_line_error(code, out, err, 2, "database.url", "LAPOR_BRIDGE_DB_PASSWORD")
        assert "rahasia" not in err


def test_sandbox_on_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = invoke("sandbox", "--port", str(port))
    assert_one_line_error(code, out, err, 1, f"127.0.0.1:{port}", "--port")


class _DeepJson(BaseHTTPRequestHandler):
    depth = 200_000

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        body = (b'{"results": {"data": ' + b"[" * self.depth + b"]" * self.depth
                + b', "next_page_url": null}}')
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_deeply_nested_json_from_lapor(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DeepJson)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = write_config(tmp_path, f"http://127.0.0.1:{server.server_address[1]}")
        code, out, err = invoke("--config", str(config), "sync", "--once")
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in out + err and "RecursionError" not in out + err
    assert code == 1, (out, err)
    assert "nested too deeply" in out + err


# -- every documented command, with its common mistakes ---------------------------------

#: (README command, arguments, expected exit code, words the error line must hold).
#: "{config}" is the deployment file, "{missing}" a file that does not exist.
MISTAKES: list[tuple[str, list[str], int, tuple[str, ...]]] = [
    ("check-config", ["check-config", "{missing}"], 2, ("file not found",)),
    ("check-config", ["check-config", "{tmp}"], 2, ("is a directory",)),
    ("check-config", ["check-config", "{config}", "extra"], 2, ("unexpected extra argument",)),
    ("db upgrade", ["db", "upgrade", "--revision", "9999"], 1, ("schema upgrade failed",)),
    ("db upgrade", ["db", "upgrade", "--config", "{missing}"], 2, ("file not found",)),
    ("sync --once", ["sync"], 2, ("--once",)),
    ("sync --once", ["sync", "--once", "--config", "{missing}"], 2, ("file not found",)),
    ("queue", ["queue", "--stage", "bogus"], 2, ("unknown stage 'bogus'", "received")),
    ("queue", ["queue", "--limit", "many"], 2, ("--limit",)),
    ("queue", ["queue", "--bogus"], 2, ("No such option",)),
    ("case show", ["case", "show"], 2, ("Missing argument",)),
    ("case show", ["case", "show", "UJI/nope"], 1, ("no case",)),
    ("case show", ["case", "show", "1", "--json", "--bogus"], 2, ("No such option",)),
    ("case new", ["case", "new", "--role", "petugas"], 1, ("missing title",)),
    ("case new", ["case", "new", "--title", "x", "--content", "y", "--channel", "surat"], 2,
     ("--role",)),
    ("case new", ["case", "new", "--file", "{missing}", "--role", "petugas"], 1,
     ("No such file",)),
    ("case followup", ["case", "followup", "1", "--role", "analis"], 2, ("--text",)),
    ("case followup", ["case", "followup", "999", "--text", "x", "--role", "analis"], 1,
     ("no case",)),
    ("case followup", ["case", "followup", "1", "--text", "x", "--role", "analis",
                       "--attach", "{missing}"], 1, ("{missing}",)),
    ("case followup", ["case", "followup", "1", "--text", "x", "--role", "raja"], 1,
     ("role 'raja' is not defined",)),
    ("case forward", ["case", "forward", "1", "--to", "DINAS", "--role", "kasi"], 1,
     ("unknown OPD 'DINAS'",)),
    ("case forward", ["case", "forward", "1", "--role", "kasi"], 2, ("--to",)),
    ("case forward", ["case", "forward", "1", "--to", "DLH", "--role", "kasi",
                      "--attach", "{missing}"], 1, ("{missing}",)),
    ("case approve", ["case", "approve", "1", "--role", "kabid"], 2, ("--document",)),
    ("case approve", ["case", "approve", "1", "--document", "surat_jawaban", "--role",
                      "kabid", "--attach", "{missing}"], 1, ("{missing}",)),
    ("case deliver", ["case", "deliver", "1", "--role", "petugas"], 2, ("--text",)),
    ("case deliver", ["case", "deliver", "1", "--text", "x", "--role", "petugas",
                      "--attach", "{missing}"], 1, ("{missing}",)),
    ("case followup", ["case", "followup", "1", "--text", "x", "--role", "analis"], 1,
     ("`lapor-bridge case followup` cannot be used in stage 'received'",
      "what can be done here: lapor-bridge case register")),
    ("outbox", ["outbox", "--bogus"], 2, ("No such option",)),
    ("outbox retry", ["outbox", "retry"], 1, ("--all-dead",)),
    ("outbox retry", ["outbox", "retry", "77"], 1, ("no outbox row 77",)),
    ("outbox retry", ["outbox", "retry", "abc"], 2, ("abc",)),
    ("run", ["run", "--config", "{missing}"], 2, ("file not found",)),
    ("status", ["status", "--config", "{missing}"], 2, ("file not found",)),
    ("web", ["web", "--port", "0"], 2, ("--port",)),
    ("user add", ["user", "add", "siti"], 2, ("--role",)),
    ("user add", ["user", "add", "siti", "--role", "raja", "--name", "Siti",
                  "--password-stdin"], 2,
     ("unknown role 'raja'",)),
    ("report", ["report"], 2, ("--period",)),
    ("report", ["report", "--period", "2026-13"], 2, ("--period", "month 13")),
    ("plugins", ["plugins", "--config", "{missing}"], 2, ("file not found",)),
    ("plugin new", ["plugin", "new"], 2, ("Missing argument",)),
    ("plugin new", ["plugin", "new", "Bad Name!", "--dest", "{tmp}"], 2, ("Bad Name!",)),
    ("bench", ["bench", "--sizes", "lots"], 2, ("--sizes",)),
    ("sandbox", ["sandbox", "--faults", "{not json"], 2, ("--faults",)),
    ("sandbox", ["sandbox", "--port", "http"], 2, ("--port",)),
    ("init", ["init"], 2, ("Missing argument",)),
    ("case track", ["case", "track"], 2, ("Missing argument",)),
    ("case track", ["case", "track", "abc"], 2, ("not a LAPOR! id", "nothing was stored")),
    ("probe", ["probe", "--case", "x"], 2, ("--case",)),
    ("quarantine", ["quarantine", "--bogus"], 2, ("No such option",)),
    ("quarantine retry", ["quarantine", "retry"], 2, ("--all",)),
]


def documented_commands() -> list[str]:
    """The commands of README.md's "Using it" table (``lapor-bridge X Y`` -> ``X Y``)."""
    readme = (ROOT / "README.md").read_text("utf-8")
    table = readme.split("## Using it", 1)[1].split("\n## ", 1)[0]
    found: list[str] = []
    for cell in re.findall(r"`lapor-bridge ([^`]+)`", table):
        words = [w for w in cell.split() if re.fullmatch(r"[a-z][a-z-]*|--once", w)]
        if not words or cell.startswith("-"):
            continue  # `lapor-bridge --help`
        name = " ".join(words[:2]) if len(words) > 1 and words[1] in (
            "upgrade", "show", "new", "followup", "forward", "retry", "add", "--once",
            "track", "document", "approve", "deliver") \
            else words[0]
        if name not in found:
            found.append(name)
    return found


def test_every_documented_command_has_its_mistakes() -> None:
    covered = {name for name, *_ in MISTAKES}
    missing = [c for c in documented_commands() if c not in covered]
    assert missing == []


@pytest.mark.parametrize(("command", "args", "expected", "words"), MISTAKES,
                         ids=[" ".join(m[1][:3]) for m in MISTAKES])
def test_documented_command_mistakes(synced: tuple[Path, SandboxServer], tmp_path: Path,
                                     command: str, args: list[str], expected: int,
                                     words: tuple[str, ...]) -> None:
    config, _ = synced
    values = {"config": str(config), "missing": str(tmp_path / "nothing-here.toml"),
              "tmp": str(tmp_path)}
    argv = [a.format(**values) if "{" in a and "{not" not in a else a for a in args]
    words = tuple(w.format(**values) for w in words)
    if "--config" not in argv and argv[0] not in ("check-config", "sandbox", "plugin",
                                                  "bench"):
        argv = ["--config", str(config), *argv]
    code, out, err = invoke(*argv, stdin="")
    assert_one_line_error(code, out, err, expected, *words)


def test_unexpected_exception_is_one_line_and_vv_shows_it(
        deployment: tuple[Path, SandboxServer], monkeypatch: pytest.MonkeyPatch) -> None:
    config, _ = deployment

    def broken(*_a: object, **_k: object) -> None:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr("bridge.services.queue.list_queue", broken)
    code, out, err = invoke("--config", str(config), "queue")
    assert_one_line_error(code, out, err, 1, "ZeroDivisionError: division by zero", "-vv")
    result = CliRunner().invoke(main, ["-vv", "--config", str(config), "queue"], env=ENV)
    assert isinstance(result.exception, ZeroDivisionError)


def test_web_stops_on_ctrl_c_without_aborted(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, "http://127.0.0.1:9")
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "--config", str(config), "web",
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Aborted" not in out + err and "Traceback" not in out + err, err
    assert proc.returncode in (0, 130), (proc.returncode, err)


def test_json_is_untouched_by_the_error_handling(deployment: tuple[Path, SandboxServer]
                                                 ) -> None:
    config, _ = deployment
    code, out, _ = invoke("--config", str(config), "sync", "--once", "--json")
    assert code == 0 and json.loads(out)["pull"]["created"] == 5
