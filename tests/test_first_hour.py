"""What a new user meets in the first hour: the example config, its cross-references, the
default database path (issue 14, "A new user's first hour")."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.lapor.sandbox import SandboxServer
from tests.support.settings import TEST_BEARER, TEST_TOKEN

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example.toml"
ENV = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}


def invoke(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={**ENV, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def example_pointing_at(url: str, db: Path, tmp_path: Path, *, edit: str = "") -> Path:
    """config/example.toml as a user copies it: LAPOR! and the database changed, nothing else."""
    text = EXAMPLE.read_text("utf-8")
    text = text.replace('base_url = "https://api-splp.layanan.go.id/lapor/3.0.0"',
                        f'base_url = "{url}"')
    text = text.replace('url = "sqlite:///var/lapor-bridge.db"', f'url = "sqlite:///{db}"')
    text = text.replace('secret_file = "web.key"', f'secret_file = "{tmp_path / "web.key"}"')
    path = tmp_path / "example.toml"
    path.write_text(text + edit, "utf-8")
    return path


pytestmark = pytest.mark.sandbox(seed=1, reports=50)


def test_first_sync_of_the_example_logs_no_plugin_error(
        sandbox: SandboxServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # plugins.routing_rules is found from the repository root
    config = example_pointing_at(sandbox.url, tmp_path / "b.db", tmp_path)
    assert invoke("check-config", str(config))[0] == 0
    with caplog.at_level(logging.WARNING):
        code, out, err = invoke("--config", str(config), "sync", "--once")
    assert code == 0, err
    assert "50 new" in out
    failures = [r.getMessage() for r in caplog.records if r.name.startswith("bridge.plugins")]
    assert failures == []
    code, out, _ = invoke("--config", str(config), "queue", "--json")
    assert code == 0


def test_routing_rule_naming_an_unknown_opd_fails_check_config(tmp_path: Path) -> None:
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "b.db", tmp_path)
    config.write_text(config.read_text("utf-8").replace('opd = "DLH"', 'opd = "DINAS-LH"'),
                      "utf-8")
    code, _, err = invoke("check-config", str(config))
    assert code == 2
    assert err.strip() == (f"error: {config}: routing_rules.rules[0].opd: unknown OPD "
                           "'DINAS-LH'; [[opds]] codes: DLH, BPN")


def test_a_rule_may_name_the_opd_by_its_name(tmp_path: Path) -> None:
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "b.db", tmp_path)
    config.write_text(config.read_text("utf-8").replace(
        'opd = "DLH"', 'opd = "Dinas Lingkungan Hidup"'), "utf-8")
    assert invoke("check-config", str(config))[0] == 0


def test_disabled_or_timed_plugin_must_exist(tmp_path: Path) -> None:
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "b.db", tmp_path)
    text = config.read_text("utf-8")
    config.write_text(text.replace("disable = []", 'disable = ["plugins.routing_rule"]'),
                      "utf-8")
    code, _, err = invoke("check-config", str(config))
    assert code == 2 and "plugins.disable: no plugin named 'plugins.routing_rule'" in err
    config.write_text(text.replace("max_stuck_calls = 2",
                                   'max_stuck_calls = 2\ntimeouts = { nope = 2.0 }'), "utf-8")
    code, _, err = invoke("check-config", str(config))
    assert code == 2 and "plugins.timeouts.nope: no plugin named 'nope'" in err


def test_template_fields_are_checked(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "assigned.j2").write_text(
        "Kasus {{ case.register_no }} untuk {{ unit }}\nPelapor: {{ case.reporter }}\n", "utf-8")
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "b.db", tmp_path)
    text = config.read_text("utf-8").replace('# template_dir = "templates"',
                                             'template_dir = "templates"')
    config.write_text(text, "utf-8")
    code, _, err = invoke("check-config", str(config))
    assert code == 2
    assert "notifications.template_dir: template assigned.j2 uses case.reporter" in err
    (templates / "assigned.j2").write_text("Kasus {{ nomor }}\nbadan\n", "utf-8")
    code, _, err = invoke("check-config", str(config))
    assert code == 2 and "unknown variable(s) nomor" in err
    (templates / "assigned.j2").write_text("Kasus {{ case.register_no }}\n{{ unit }}\n", "utf-8")
    assert invoke("check-config", str(config))[0] == 0


def test_profile_role_must_exist(tmp_path: Path) -> None:
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "b.db", tmp_path, edit="""
[workflow.transitions.close]
roles = ["kepala_bagian"]
""")
    code, _, err = invoke("check-config", str(config))
    assert code == 2 and "unknown role 'kepala_bagian'" in err


def test_sqlite_parent_folder_is_created(tmp_path: Path) -> None:
    config = example_pointing_at("http://127.0.0.1:9", tmp_path / "var" / "deep" / "b.db",
                                 tmp_path)
    code, out, err = invoke("--config", str(config), "queue")
    assert code == 0, err
    assert (tmp_path / "var" / "deep" / "b.db").exists()


def test_default_config_works_from_a_fresh_clone(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The demo config's relative var/ path, from a directory that has no var/ yet.
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "demo.toml").write_text(
        (ROOT / "config" / "demo.toml").read_text("utf-8"), "utf-8")
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "LAPOR_BRIDGE_CONFIG"}
    monkeypatch.delenv("LAPOR_BRIDGE_CONFIG", raising=False)
    assert "LAPOR_BRIDGE_CONFIG" not in env
    code, out, err = invoke("queue")
    assert code == 0, err
    assert (tmp_path / "var").is_dir()


def test_status_reads_what_sync_once_wrote(sandbox: SandboxServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = example_pointing_at(sandbox.url, tmp_path / "b.db", tmp_path)
    assert invoke("--config", str(config), "sync", "--once")[0] == 0
    code, out, _ = invoke("--config", str(config), "case", "followup", "1", "--text",
                          "Sedang kami periksa", "--role", "analis")
    code, out, err = invoke("--config", str(config), "sync", "--once")
    assert code == 0, err
    code, out, err = invoke("--config", str(config), "status", "--json")
    report = json.loads(out)
    assert report["push"]["last_success_at"] is not None
    assert report["pull"]["last_success_at"] is not None
    assert not any("push" in p for p in report["problems"]), report["problems"]
    code, out, err = invoke("--config", str(config), "status")
    assert "no successful push yet" not in out
    assert "last successful push: never" not in out


def readme_walkthrough() -> list[str]:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("### A first case by hand", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_first_case_runs_as_written(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    lines = readme_walkthrough()
    assert any("case followup" in line for line in lines)
    env: dict[str, str | None] = {"LAPOR_BRIDGE_BEARER": None, "LAPOR_BRIDGE_TOKEN": None}
    # The sandbox with its own built-in credentials, as `lapor-bridge sandbox` starts it.
    with SandboxServer(seed=1, reports=20) as sandbox:
        demo = (ROOT / "config" / "demo.toml").read_text("utf-8")
        assert 'base_url = "http://127.0.0.1:8765"' in demo
        demo = demo.replace("http://127.0.0.1:8765", sandbox.url)
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "demo.toml").write_text(demo, "utf-8")
        monkeypatch.chdir(tmp_path)  # the default config, relative to where one stands
        monkeypatch.delenv("LAPOR_BRIDGE_CONFIG", raising=False)
        for line in lines:
            command, _, comment = line.partition("  #")
            words = shlex.split(command)
            if words[0] == "export":
                for assignment in words[1:]:
                    key, _, value = assignment.partition("=")
                    env[key] = value
                continue
            stdin = None
            if "|" in words:
                cut = words.index("|")
                assert words[0] == "echo"
                stdin = " ".join(words[1:cut]) + "\n"
                words = words[cut + 1:]
            assert words[0] == "lapor-bridge", line
            result = CliRunner().invoke(main, words[1:], env=env, input=stdin)
            assert result.exception is None or isinstance(result.exception, SystemExit), line
            expected = 1 if words[1] == "status" else 0
            assert result.exit_code == expected, (line, result.stdout, result.stderr)
        followups = sandbox.state.followups_of(int(json.loads(CliRunner().invoke(
            main, ["case", "show", "1", "--json"], env=env).stdout)["case"]["lapor_id"]))
        assert any("meninjau lokasi" in f["content"] for f in followups)


def test_stage_errors_name_commands_and_options(sandbox: SandboxServer, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    config = example_pointing_at(sandbox.url, tmp_path / "b.db", tmp_path)
    assert invoke("--config", str(config), "sync", "--once")[0] == 0
    assert invoke("--config", str(config), "case", "register", "5", "--role", "petugas")[0] == 0
    code, _, err = invoke("--config", str(config), "case", "forward", "5", "--to", "BPN",
                          "--role", "petugas")
    assert code == 1
    assert "`lapor-bridge case forward` in stage 'registered'" in err
    assert err.strip().endswith("needs --note")
    code, _, err = invoke("--config", str(config), "case", "complete", "5", "--role", "kasi")
    assert code == 1
    assert "role 'kasi' may not use `lapor-bridge case complete`" in err
    for internal in ("files_complete", "forward_body", "forward_opd", "return_incomplete"):
        assert internal not in err


def test_schema_creation_prints_no_alembic_info(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    from bridge.store.db import make_engine
    from bridge.store.schema import ensure_schema

    engine = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    with caplog.at_level(logging.INFO):
        ensure_schema(engine)
    engine.dispose()
    alembic = [r.getMessage() for r in caplog.records if r.name.startswith("alembic")]
    ours = [r.getMessage() for r in caplog.records if r.name == "bridge.store"]
    assert alembic == []
    assert len(ours) == 1 and "created the database schema" in ours[0]


def test_first_sweep_says_each_missed_case_once(sandbox: SandboxServer, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime, timedelta

    from bridge.config import load_settings
    from bridge.runtime import Runtime
    from bridge.services.sweep import sweep_deadlines

    monkeypatch.chdir(ROOT)
    # Every case is still in 'received': past its stage deadline and the overall one.
    config = example_pointing_at(sandbox.url, tmp_path / "b.db", tmp_path)
    assert invoke("--config", str(config), "sync", "--once")[0] == 0
    with Runtime(load_settings(config, env=ENV)) as rt, caplog.at_level(logging.INFO):
        sweep_deadlines(rt, datetime.now(UTC) + timedelta(days=60))
        rt.dispatch_events()
    lines = [r.getMessage() for r in caplog.records if r.name == "bridge.notifications"
             and "deadline_missed" in r.getMessage()]
    assert lines
    cases = [line.split("case=")[1].split()[0] for line in lines]
    assert len(cases) == len(set(cases)), "one 'melewati batas waktu' per case"
