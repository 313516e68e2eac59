"""The layering holds: import-linter's contracts (pyproject.toml) and a light --help."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint is None:
        pytest.fail("lint-imports is missing: install the test extras (pip install -e '.[test]')")
    proc = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "broken" not in proc.stdout.split("Contracts:")[-1].replace("0 broken", "")


def test_help_loads_no_database_layer() -> None:
    code = ("import sys\n"
            "from click.testing import CliRunner\n"
            "from bridge.cli import main\n"
            "result = CliRunner().invoke(main, ['--help'])\n"
            "assert result.exit_code == 0, result.output\n"
            "assert 'queue' in result.output\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('sqlalchemy', 'alembic', 'bridge.store', 'uvicorn', 'httpx'))\n"
            "print(' '.join(heavy))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "sqlalchemy" not in proc.stdout.split(), proc.stdout
    assert "alembic" not in proc.stdout.split(), proc.stdout
