"""The command line in-process (click's CliRunner): invoke, a config file, error checks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from bridge.cli import main
from tests.support.settings import TEST_BEARER, TEST_TOKEN

ROOT = Path(__file__).resolve().parents[2]
ENV = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN,
       "LAPOR_BRIDGE_DB_PASSWORD": None, "LAPOR_BRIDGE_ROLE": None,
       "LAPOR_BRIDGE_CONFIG": None, "LAPOR_BRIDGE_SECRETS_FILE": None}


def invoke(*args: str, env: dict[str, str | None] | None = None,
           stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env={**ENV, **(env or {})}, input=stdin)
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"{args}: raised {exc!r}"
    return result.exit_code, result.stdout, result.stderr


#: No variable of the bridge leaks in from the developer's shell, as in a fresh process.
CLEAN_ENV: dict[str, str | None] = {
    name: None for name in os.environ if name.startswith("LAPOR_BRIDGE_")}


@dataclass(frozen=True)
class Ran:
    """What :func:`run_cli` gives: the fields of ``subprocess.CompletedProcess`` tests read."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, cwd: Path | None = None, env: Mapping[str, str | None] | None = None,
            stdin: str | None = None) -> Ran:
    """``lapor-bridge ARGS`` in this process (click's CliRunner), answered like ``subprocess.run``.

    The command runs in ``cwd`` when given. A traceback fails the test: every command must end
    in an exit code. One test per command family still runs a real process (its exit code and
    signals); every other CLI test uses this, which saves the interpreter start and the imports.
    """
    with contextlib.chdir(cwd) if cwd is not None else contextlib.nullcontext():
        result = CliRunner().invoke(main, list(args), env={**CLEAN_ENV, **(env or {})},
                                    input=stdin)
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), f"{args}: raised {exc!r}"
    return Ran(result.exit_code, result.stdout, result.stderr)


def write_config(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    config = tmp_path / "bridge.toml"
    config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "{base_url}"
bearer_header = "auth"
requests_per_second = 500
max_attempts = 1
connect_timeout = 2
read_timeout = 5

[database]
url = "sqlite:///{tmp_path / 'b.db'}"

[web]
secret_file = "{tmp_path / 'web.key'}"

[[opds]]
code = "DLH"
name = "Dinas Lingkungan Hidup"
lapor_institution_id = 102
{extra}""", encoding="utf-8")
    return config


def assert_one_line_error(code: int, out: str, err: str, expected_code: int,
                          *words: str) -> None:
    assert "Traceback" not in out + err
    assert code == expected_code, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
