"""Plugins add commands through the cli_commands hook; the command line never imports them
for --help or for its own commands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main

PLUGIN = '''
import click
from bridge.hookspecs import hookimpl


@click.command("rekap-kecamatan")
@click.option("--bulan", default="2026-10")
@click.pass_context
def rekap(ctx, bulan):
    """Recap per kecamatan (a plugin's own command)."""
    click.echo(f"rekap {bulan} from {ctx.find_root().obj['config']}")


@hookimpl
def cli_commands(config):
    return [rekap]
'''

BAD = '''
from bridge.hookspecs import hookimpl


@hookimpl
def cli_commands(config):
    return ["queue"]
'''


def deployment(tmp_path: Path, module: str) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(f'profile = "demo"\n\n[database]\nurl = "sqlite:///{tmp_path}/b.db"\n\n'
                    f'[plugins]\nmodules = ["{module}"]\n', encoding="utf-8")
    return path


@pytest.fixture
def on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "kab_perintah.py").write_text(PLUGIN, encoding="utf-8")
    (tmp_path / "kab_salah.py").write_text(BAD, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("kab_perintah", "kab_salah"):
        sys.modules.pop(name, None)


def test_a_plugin_command_runs_with_the_deployment(on_path: Path) -> None:
    config = deployment(on_path, "kab_perintah")
    result = CliRunner().invoke(main, ["--config", str(config), "rekap-kecamatan",
                                       "--bulan", "2026-11"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"rekap 2026-11 from {config}"
    # --help lists the built-in commands only (no plugin is loaded for it).
    help_text = CliRunner().invoke(main, ["--config", str(config), "--help"]).output
    assert "queue" in help_text and "rekap-kecamatan" not in help_text


def test_a_bad_answer_is_one_line_naming_the_plugin(on_path: Path) -> None:
    config = deployment(on_path, "kab_salah")
    result = CliRunner().invoke(main, ["--config", str(config), "rekap-kecamatan"])
    assert result.exit_code == 2
    assert "plugin 'kab_salah'" in result.output and "cli_commands" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_an_unknown_command_is_still_unknown(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["nosuch"])
    assert result.exit_code == 2
    assert "No such command 'nosuch'" in result.output
