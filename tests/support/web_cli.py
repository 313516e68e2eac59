"""``lapor-bridge web``/``user`` under test: a minimal config file, a runner, the users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from bridge.cli import main
from bridge.config import load_settings
from bridge.runtime import Runtime
from bridge.store.models import User

CONFIG = """
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "http://127.0.0.1:9"
institution_id = 1
user_id = 1

[database]
url = "sqlite:///{db}"
{extra}
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "bridge.toml"
    path.write_text(CONFIG.format(db=tmp_path / "bridge.db", extra=extra), encoding="utf-8")
    return path


def run(args: list[str], input: str | None = None) -> Any:
    return CliRunner().invoke(main, args, input=input, catch_exceptions=False)


def users(config: Path) -> dict[str, User]:
    with Runtime(load_settings(config)) as rt, rt.sessions() as s:
        return {u.username: u for u in s.scalars(select(User))}
