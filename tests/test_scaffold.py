"""``lapor-bridge plugin new``: the generated package installs and its tests pass as generated.

The package is installed into a fresh virtual environment (``python -m venv``) that sees
this environment's packages through a ``.pth`` file, so the project's own environment is
never changed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from bridge.scaffold import ScaffoldError, plugin_names, scaffold_plugin


def test_names_and_refusals(tmp_path: Path) -> None:
    assert plugin_names("klaten-rules") == {
        "name": "klaten-rules", "plugin_name": "klaten_rules", "section": "klaten_rules",
        "package": "lapor_bridge_klaten_rules", "dist_name": "lapor-bridge-klaten-rules"}
    for bad in ("Klaten", "1kab", "kab rules", "kab--x", "", "a" * 41):
        with pytest.raises(ScaffoldError, match="invalid plugin name"):
            plugin_names(bad)
    scaffold_plugin("kab", tmp_path)
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold_plugin("kab", tmp_path)


def test_generated_project_declares_the_entry_point(tmp_path: Path) -> None:
    root = scaffold_plugin("kab-uji", tmp_path)
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    assert meta["project"]["name"] == "lapor-bridge-kab-uji"
    assert meta["project"]["entry-points"]["lapor_bridge"] == {
        "kab_uji": "lapor_bridge_kab_uji.plugin"}
    assert "[kab_uji]" in (root / "README.md").read_text()
    for path in ("lapor_bridge_kab_uji/__init__.py", "lapor_bridge_kab_uji/plugin.py",
                 "tests/test_plugin.py"):
        source = (root / path).read_text()
        compile(source, path, "exec")


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=120)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True, timeout=60).stdout.strip()
    parent = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # addsitedir (not a plain path line) also runs the parent's .pth files, among them the
    # editable install of lapor-bridge itself.
    lines = [f"import site; site.addsitedir({p!r})" for p in sorted(parent)]
    Path(site, "_lapor_bridge_parent_env.pth").write_text("\n".join(lines) + "\n")
    return python


def test_scaffolded_plugin_installs_and_passes_its_tests(tmp_path: Path) -> None:
    root = scaffold_plugin("kab-contoh", tmp_path / "src")
    python = _fresh_venv(tmp_path / "venv")
    # Without the 'wheel' package an old setuptools cannot build in this environment;
    # pip then builds in isolation with setuptools from the package index.
    can_build_here = importlib.util.find_spec("wheel") is not None
    install = [str(python), "-m", "pip", "install", "--no-deps", "--no-cache-dir",
               "--disable-pip-version-check", "-q", str(root)]
    if can_build_here:
        install[4:4] = ["--no-build-isolation", "--no-index"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(install, capture_output=True, text=True, timeout=600, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--disable-pip-version-check"],
                            capture_output=True, text=True, timeout=120, env=env)
    assert "lapor-bridge-kab-contoh" in listed.stdout
    # the generated tests, run from the project directory as its author would
    proc = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
    # and the bridge's own command finds it through the entry point
    config = tmp_path / "deploy.toml"
    config.write_text('[regency]\nname = "Kabupaten Contoh"\ncode = "CTH"\n'
                      '[lapor]\nbase_url = "https://lapor.test/api"\n'
                      '[kab_contoh]\ndefault = "ringan"\n')
    proc = subprocess.run([str(python), "-c", "from bridge.cli import main; main()", "plugins",
                           "--config", str(config)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "kab_contoh  0.1.0  classify_case, config_section  [package lapor-bridge-kab-contoh]" \
        in proc.stdout
    # the project's own environment was not touched
    assert importlib.util.find_spec("lapor_bridge_kab_contoh") is None
