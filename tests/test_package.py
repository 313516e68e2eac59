"""Installs like a real package: shipped configs and profiles by name, a deployment built on
a profile, the reference plugins' own import name, and `lapor-bridge init`."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.config import ConfigError, load_settings
from bridge.deployment import merge_over_profile
from bridge.plugins import load_plugins
from bridge.resources import UNITS, profile_names, shipped_configs, shipped_dir, unit_text
from tests.support.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ["dharmasraya", "klaten", "lapor-dpmptsp", "prabumulih", "situbondo"]


# -- shipped files -----------------------------------------------------------------------


def test_shipped_files_are_the_config_folder() -> None:
    assert profile_names() == PROFILES
    on_disk = sorted(p.stem for p in (ROOT / "config").glob("*.toml"))
    assert shipped_configs() == on_disk
    for name in on_disk:
        shipped = (shipped_dir() / f"{name}.toml").read_bytes()
        assert shipped == (ROOT / "config" / f"{name}.toml").read_bytes()
    for unit in UNITS:
        assert "[Service]" in unit_text(unit)


def test_default_config_is_the_shipped_demo_from_any_folder(tmp_path: Path) -> None:
    proc = run_cli("check-config", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("demo: ok (Kabupaten Demo, DEMO)")
    proc = run_cli("check-config", "klaten", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_unknown_name_lists_the_shipped_ones(tmp_path: Path) -> None:
    proc = run_cli("check-config", "klatn", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: klatn: (file): file not found (nor a shipped config: "
        + ", ".join(shipped_configs()) + ")"]


# -- a deployment built on a profile -----------------------------------------------------


def test_deployment_overrides_a_shipped_profile(tmp_path: Path) -> None:
    path = tmp_path / "d.toml"
    path.write_text('profile = "klaten"\n[lapor]\ninstitution_id = 7\n'
                    '[database]\nurl = "sqlite:///x.db"\n'
                    '[[opds]]\ncode = "DLH"\nname = "Dinas LH"\n', encoding="utf-8")
    s = load_settings(path, env={})
    assert s.regency.code == "KLATEN" and s.source == str(path)
    assert s.lapor.institution_id == 7 and s.lapor.user_id == 90311  # merged key by key
    assert s.lapor.status_names["5"] == "Ditolak"
    assert [o.code for o in s.opds] == ["DLH"]  # arrays of tables replace whole
    assert s.section("workflow")["name"] == "SOP Pengaduan DPMPTSP Kabupaten Klaten"


def test_deployment_builds_on_a_profile_file(tmp_path: Path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "base.toml").write_text(
        '[regency]\nname = "Kabupaten Basis"\ncode = "BASIS"\n'
        '[lapor]\nbase_url = "http://127.0.0.1:9"\n', encoding="utf-8")
    path = tmp_path / "d.toml"
    path.write_text('profile = "p/base.toml"\n[regency]\ncode = "TURUNAN"\n', encoding="utf-8")
    s = load_settings(path, env={})
    assert (s.regency.name, s.regency.code) == ("Kabupaten Basis", "TURUNAN")


@pytest.mark.parametrize(("text", "problem"), [
    ('profile = "klatn"\n', "no shipped profile 'klatn'"),
    ('profile = "nope.toml"\n', "profile file not found"),
    ("profile = 3\n", "expected the name of a shipped profile"),
    ('profile = "d.toml"\n', "builds on this file again (a profile loop)"),
])
def test_bad_profile_is_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "d.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.key == "profile" and problem in err.value.problem
    assert err.value.file == str(path)


def test_workflow_markers_replace_rather_than_merge() -> None:
    base = {"workflow": {"stages": {"a": {"label": "A"}, "b": {"label": "B"}}}}
    over = {"workflow": {"stages": {"a": {"drop": True}, "c": {"label": "C"}}}}
    merged = merge_over_profile(base, over)
    assert merged["workflow"]["stages"] == {"a": {"drop": True}, "b": {"label": "B"},
                                            "c": {"label": "C"}}
    assert base["workflow"]["stages"]["a"] == {"label": "A"}  # inputs untouched


# -- the reference plugins ---------------------------------------------------------------


def test_reference_plugins_are_entry_points_enabled_by_name() -> None:
    from bridge.testing import settings_for_tests

    host = load_plugins(settings_for_tests(extra={"plugins": {"enable": ["notify_log"]}}))
    assert host.plugin_names == ["notify_log"]  # the other reference plugins stay off
    import lapor_bridge_plugins.notify_log

    assert host.describe()[0].origin == "package lapor-bridge"
    assert host._sources["notify_log"].obj is lapor_bridge_plugins.notify_log


def test_enabling_an_unknown_entry_point_names_it() -> None:
    from bridge.plugins import PluginError
    from bridge.testing import settings_for_tests

    with pytest.raises(PluginError) as err:
        load_plugins(settings_for_tests(extra={"plugins": {"enable": ["notify_lgo"]}}))
    assert err.value.plugin == "notify_lgo" and "routing_rules" in err.value.problem


def test_old_module_paths_still_work_with_a_deprecation_line(
        caplog: pytest.LogCaptureFixture) -> None:
    from bridge.testing import settings_for_tests

    settings = settings_for_tests(extra={"plugins": {
        "modules": ["plugins.routing_rules", "plugins.notify_log"],
        "timeouts": {"plugins.routing_rules": 9}, "entry_points": False}})
    with caplog.at_level(logging.WARNING, "bridge.plugins"), \
            pytest.warns(DeprecationWarning, match="plugins.routing_rules, plugins.notify_log"):
        host = load_plugins(settings)
    assert host.plugin_names == ["notify_log", "routing_rules"]
    assert host.timeout_for("routing_rules") == 9
    assert [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()] == [
        "deprecated: <test>: [plugins] names plugins.routing_rules, plugins.notify_log: "
        "the reference plugins are now lapor_bridge_plugins, enabled by entry-point name; "
        "write enable = ['routing_rules', 'notify_log'] (and the same names in disable and "
        "timeouts)"]


# -- lapor-bridge init -------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "postgres"), [(None, False), *((p, False) for p in PROFILES),
                                                   ("klaten", True)])
def test_init_writes_a_folder_that_check_config_passes(tmp_path: Path, profile: str | None,
                                                       postgres: bool) -> None:
    target = tmp_path / "deploy"
    args = ["init", str(target)] + (["--profile", profile] if profile else []) \
        + (["--postgres"] if postgres else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in target.iterdir())
    assert names == ["README.md", "lapor-bridge-web.service", "lapor-bridge.service",
                     "lapor-bridge.toml", "secrets.env", "state"]
    assert stat.S_IMODE((target / "secrets.env").stat().st_mode) == 0o600
    config = target / "lapor-bridge.toml"
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data.get("profile") == profile
    assert data["database"]["url"].startswith("postgresql" if postgres else "sqlite")
    proc = run_cli("check-config", str(config), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for unit, command in (("lapor-bridge.service", "run"), ("lapor-bridge-web.service", "web")):
        text = (target / unit).read_text(encoding="utf-8")
        assert f" {command} --config {config}\n" in text
        assert f"EnvironmentFile={target / 'secrets.env'}\n" in text
        assert f"ReadWritePaths={target / 'state'}\n" in text
        assert "/etc/lapor-bridge" not in text and "/var/lib/lapor-bridge" not in text
    readme = (target / "README.md").read_text(encoding="utf-8")
    steps = ["secrets.env", "check-config", "probe", "db upgrade", "user add",
             "systemctl enable --now"]
    positions = [readme.index(step) for step in steps]
    assert positions == sorted(positions)
    secrets = (target / "secrets.env").read_text(encoding="utf-8")
    assert ("LAPOR_BRIDGE_DB_PASSWORD=" in secrets) == postgres
    if profile and "notify_email" in (data_of(profile).get("plugins", {}).get("enable", [])):
        assert "LAPOR_BRIDGE_SMTP_PASSWORD=" in secrets


def data_of(profile: str) -> dict:
    return tomllib.loads((ROOT / "config" / f"{profile}.toml").read_text(encoding="utf-8"))


def test_init_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(tmp_path)]).exit_code == 0
    (tmp_path / "lapor-bridge.toml").write_text("# mine\n", encoding="utf-8")
    os.chmod(tmp_path / "secrets.env", 0o644)
    result = runner.invoke(main, ["init", str(tmp_path), "--profile", "klaten"])
    assert result.exit_code == 1
    assert "already has lapor-bridge.toml, secrets.env" in result.output
    assert (tmp_path / "lapor-bridge.toml").read_text(encoding="utf-8") == "# mine\n"
    result = runner.invoke(main, ["init", str(tmp_path), "--profile", "klaten", "--force"])
    assert result.exit_code == 0, result.output
    assert 'profile = "klaten"' in (tmp_path / "lapor-bridge.toml").read_text(encoding="utf-8")
    assert stat.S_IMODE((tmp_path / "secrets.env").stat().st_mode) == 0o600


def test_init_unknown_profile(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "x"), "--profile", "klatn"])
    assert result.exit_code == 2
    assert "no shipped profile 'klatn'" in result.output
    assert not (tmp_path / "x").exists()


def test_init_units_verify(tmp_path: Path) -> None:
    import shutil

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    assert CliRunner().invoke(main, ["init", str(tmp_path / "d")]).exit_code == 0
    units = [str(tmp_path / "d" / u) for u in UNITS.values()]
    units.append(str(ROOT / "config" / "lapor-bridge-web.service"))
    proc = subprocess.run([tool, "verify", *units], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if line.strip() and "is not executable" not in line
                  and "/opt/lapor-bridge" not in line]
    assert not complaints, complaints


# -- the package as a user installs it ---------------------------------------------------


@pytest.mark.slow
def test_package_check_script() -> None:
    """.ci/package-check: build, inspect and install the wheel, run demo/init/check-config
    from an empty folder. CI runs the script itself right after pytest (once)."""
    if os.environ.get("LAPOR_BRIDGE_PACKAGE_CHECK") == "ci":
        pytest.skip(".ci/run runs .ci/package-check itself, after pytest")
    proc = subprocess.run(["bash", str(ROOT / ".ci" / "package-check")], capture_output=True,
                          text=True, timeout=1200, env={**os.environ, "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "top level: bridge, lapor_bridge_plugins" in proc.stdout
    assert "== package-check: ok" in proc.stdout
