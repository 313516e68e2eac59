"""The command line end to end: demo, sync, queue, case show and actions, outbox."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.lapor.sandbox import SandboxServer
from tests.support.cli import run_cli
from tests.support.settings import TEST_BEARER, TEST_TOKEN

ROOT = Path(__file__).resolve().parents[1]


def test_demo_once_json_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bridge", "demo", "--once", "--seed", "4", "--reports", "12",
         "--json"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert len(rows) == 12
    assert all(r["register_no"].startswith("DEMO/ADU/") for r in rows)
    assert all(r["lapor_id"] and r["deadline_at"] for r in rows)


def test_demo_once_table(tmp_path: Path) -> None:
    proc = run_cli("demo", "--once", "--reports", "5", cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "No. Register" in proc.stdout and "5 pengaduan." in proc.stdout


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[Path, SandboxServer]]:
    with SandboxServer(seed=2, reports=15, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        config = tmp_path / "bridge.toml"
        config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "{sandbox.url}"
bearer_header = "auth"
requests_per_second = 500

[database]
url = "sqlite:///{tmp_path / 'b.db'}"

[[opds]]
code = "DLH"
name = "Dinas Lingkungan Hidup"
lapor_institution_id = 102
""", encoding="utf-8")
        yield config, sandbox


def run(config: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    result = runner.invoke(main, ["--config", str(config), *args], env=env,
                           catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_sync_queue_show_act_push(deployment: tuple[Path, SandboxServer]) -> None:
    config, sandbox = deployment
    code, out, err = run(config, "sync", "--once", "--json")
    assert code == 0, err
    assert json.loads(out)["pull"]["created"] == 15

    code, out, _ = run(config, "queue", "--json")
    rows = json.loads(out)
    assert len(rows) == 15
    first = rows[0]

    code, out, _ = run(config, "queue", "--text", first["tracking_id"], "--json")
    assert [r["id"] for r in json.loads(out)] == [first["id"]]

    code, out, _ = run(config, "case", "show", first["register_no"], "--json")
    assert code == 0 and json.loads(out)["case"]["id"] == first["id"]
    code, out, _ = run(config, "case", "show", first["tracking_id"])
    assert code == 0 and first["register_no"] in out and "Riwayat:" in out
    code, out, _ = run(config, "case", "show", f"lapor:{first['lapor_id']}", "--json")
    assert json.loads(out)["case"]["id"] == first["id"]

    ref = str(first["id"])
    for args in (["register", ref, "--role", "petugas"],
                 ["complete", ref, "--role", "petugas"],
                 ["forward", ref, "--to", "DLH", "--tembusan", "Pelapor", "--role", "kasi"]):
        code, out, err = run(config, "case", *args)
        assert code == 0, err
    assert "queued for LAPOR!" in out

    code, out, _ = run(config, "outbox", "--json")
    assert [r["state"] for r in json.loads(out)] == ["pending"]
    code, out, err = run(config, "sync", "--once")
    assert code == 0, err
    assert "push: 1 delivered" in out
    posted = sandbox.state.followups_of(first["lapor_id"])
    assert any("Dinas Lingkungan Hidup" in f["content"] and "Pelapor" in f["content"]
               for f in posted)
    code, out, _ = run(config, "outbox")
    assert "outbox empty" in out


def test_errors_are_one_line(deployment: tuple[Path, SandboxServer]) -> None:
    config, _ = deployment
    code, _, err = run(config, "case", "show", "UJI/nope")
    assert code == 1 and err.strip().startswith("error: no case 'UJI/nope'")
    run(config, "sync", "--once")
    code, _, err = run(config, "case", "close", "1", "--role", "petugas", "--note", "x")
    assert code == 1 and "cannot be used in stage 'received'" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(config, "outbox", "retry", "99")
    assert code == 1 and "no outbox row 99" in err


def test_config_option_after_subcommand(deployment: tuple[Path, SandboxServer]) -> None:
    config, _ = deployment
    runner = CliRunner()
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    result = runner.invoke(main, ["queue", "--config", str(config), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_case_new_from_file(deployment: tuple[Path, SandboxServer], tmp_path: Path) -> None:
    config, sandbox = deployment
    letter = tmp_path / "surat.json"
    letter.write_text(json.dumps({"title": "Pungli di loket", "content": "Diminta uang",
                                  "channel": "surat", "category": "Perizinan"}), "utf-8")
    scan = tmp_path / "surat.pdf"
    scan.write_bytes(b"%PDF-1.4 surat")
    code, out, err = run(config, "case", "new", "--file", str(letter), "--attach", str(scan),
                         "--role", "petugas", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["outbox_ids"]
    code, out, err = run(config, "sync", "--once")
    assert code == 0, err
    code, out, _ = run(config, "case", "show", str(result["case_id"]), "--json")
    lapor_id = json.loads(out)["case"]["lapor_id"]
    assert lapor_id and sandbox.state.report(lapor_id)["title"] == "Pungli di loket"

    bad = tmp_path / "bad.json"
    bad.write_text('{"title": "x", "conten": "y", "channel": "surat"}', "utf-8")
    code, _, err = run(config, "case", "new", "--file", str(bad), "--role", "petugas")
    assert code == 1 and "unknown field(s) conten" in err


def test_missing_config_file_exit_2(tmp_path: Path) -> None:
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-m", "bridge", "--config", str(tmp_path / "x.toml"),
                           "queue"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'x.toml'}: (file): file not found"


def test_every_command_collects_garbage_less_often() -> None:
    # The collector at CPython's default threshold took a fifth of a first sync's CPU.
    import gc

    from bridge.process import GC_GENERATION0

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        result = CliRunner().invoke(main, ["plugins", "--help"])
        assert result.exit_code == 0, result.output
        assert gc.get_threshold() == (GC_GENERATION0, 10, 10)
        assert gc.isenabled()
    finally:
        gc.set_threshold(*saved)


def test_a_command_leaves_what_is_alive_at_exit_to_the_os() -> None:
    # The finalization's full collections took 0.2 s of every command. An exit handler
    # registered before the command's (so run after it) sees the survivors frozen, and
    # the command's output and its log lines are all there.
    probe = (
        "import atexit, gc, sys\n"
        "atexit.register(lambda: sys.stderr.write(f'frozen {gc.get_freeze_count()}\\n'))\n"
        "from bridge.cli import main\n"
        "main(['-v', '--config', sys.argv[1], 'check-config'])\n"
    )
    config = ROOT / "config" / "demo.toml"
    proc = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    frozen = [line for line in proc.stderr.splitlines() if line.startswith("frozen ")]
    assert len(frozen) == 1 and int(frozen[0].split()[1]) > 1000, proc.stderr
    assert proc.returncode == 0 and ": ok (Kabupaten Demo, DEMO)" in proc.stdout, proc.stderr
