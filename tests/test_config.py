"""Config loading and `lapor-bridge check-config`: precise one-line errors, no secret leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.config import ConfigError, load_settings, settings_from_mapping
from tests.support.cli import Ran, run_cli

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "http://127.0.0.1:9999"

[database]
url = "sqlite:///x.db"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(text, encoding="utf-8")
    return p


def check(path: Path) -> Ran:
    return run_cli("check-config", str(path), cwd=ROOT)


@pytest.mark.parametrize(
    "text, key, expected",
    [
        (GOOD.replace('code = "UJI"', ""), "regency.code", "missing required key"),
        (GOOD.replace("[database]", "[database]\npage_sise = 3"), "database.page_sise",
         "unknown key"),
        (GOOD + "\n[lapor2]\nx = 1\n", "lapor2", "unknown section"),
        (GOOD.replace('base_url = "http://127.0.0.1:9999"',
                      'base_url = "http://127.0.0.1:9999"\npage_size = "ten"'),
         "lapor.page_size", "integer"),
        (GOOD.replace("http://127.0.0.1:9999", "ftp//nowhere"), "lapor.base_url",
         "expected an http:// or https:// URL"),
        (GOOD.replace('base_url = "http://127.0.0.1:9999"',
                      'base_url = "http://127.0.0.1:9999"\nbearer_header = "X-Auth"'),
         "lapor.bearer_header", "'auth' or 'Authorization'"),
        (GOOD + '\n[secrets]\nbearer = "x"\n', "secrets", "may not be written"),
        (GOOD.replace("sqlite:///x.db", "postgresql://u:pw@h/db"), "database.url",
         "no password in the URL"),
        ("[regency\nname=1", "(file)", "not valid TOML"),
    ],
)
def test_check_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, text)
    proc = check(path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}: {key}: ")
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_good_config_passes(tmp_path: Path) -> None:
    proc = check(write(tmp_path, GOOD))
    assert proc.returncode == 0, proc.stderr
    assert "ok" in proc.stdout


def test_shipped_configs_are_valid() -> None:
    for path in sorted((ROOT / "config").glob("*.toml")):
        proc = check(path)
        assert proc.returncode == 0, f"{path}: {proc.stderr}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_settings(tmp_path / "nope.toml")


def test_secrets_from_env_and_file_never_in_repr(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('token = "{TOKEN-FROM-FILE}"\n', encoding="utf-8")
    secrets.chmod(0o600)
    path = write(tmp_path, 'secrets_file = "secrets.toml"\n' + GOOD)
    s = load_settings(path, env={"LAPOR_BRIDGE_BEARER": "BEARER-FROM-ENV"})
    assert s.secrets.bearer is not None and s.secrets.token is not None
    assert s.secrets.bearer.get_secret_value() == "BEARER-FROM-ENV"
    assert s.secrets.token.get_secret_value() == "{TOKEN-FROM-FILE}"
    for text in (repr(s), str(s), repr(s.secrets), s.model_dump_json()):
        assert "BEARER-FROM-ENV" not in text
        assert "TOKEN-FROM-FILE" not in text


def test_secrets_file_with_unknown_key(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('tokn = "x"\n', encoding="utf-8")
    secrets.chmod(0o600)
    path = write(tmp_path, 'secrets_file = "secrets.toml"\n' + GOOD)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert err.value.key == "tokn"
    assert "x" not in str(err.value).split(":")[-1].replace("expected", "")


def test_register_format_must_number(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="regency.register_format"):
        settings_from_mapping(
            {"regency": {"name": "a", "code": "A", "register_format": "{code}"},
             "lapor": {"base_url": "http://x"}},
            env={},
        )
