"""Files the bridge writes are the service's alone (0600, or 0640 with [files] group_read),
whatever the umask; a secrets file that others can read or write is refused (issue 14)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.config import ConfigError, load_settings
from bridge.runtime import Runtime
from bridge.services.actions import Actor, NewCase
from bridge.store.models import Case
from tests.support.settings import make_settings
from tests.support.web_cli import run, write_config


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """The umask most systems ship: new files 0644 unless the bridge says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _use(db: Path, **sections: object) -> None:
    with Runtime(make_settings(f"sqlite:///{db}", **sections)) as rt:
        rt.actions().new_case(NewCase(title="Uji", content="isi", channel="surat",
                                      reporter={"name": "Siti"}), Actor("Sari", "petugas"))
        with rt.sessions() as s:
            assert s.scalars(select(Case)).first() is not None
            # While a connection is open, the -wal and -shm files exist.
            assert Path(f"{db}-wal").exists() and Path(f"{db}-shm").exists()
            for suffix in ("", "-wal", "-shm"):
                got = mode(Path(f"{db}{suffix}"))
                assert got == (0o640 if sections else 0o600), (suffix, oct(got))


def test_sqlite_database_and_wal_files_are_private(tmp_path: Path) -> None:
    _use(tmp_path / "bridge.db")
    assert mode(tmp_path / "bridge.db") == 0o600


def test_group_read_setting_gives_the_group_read(tmp_path: Path) -> None:
    _use(tmp_path / "bridge.db", files={"group_read": True})
    assert mode(tmp_path / "bridge.db") == 0o640


def test_a_database_left_world_readable_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    _use(db)
    db.chmod(0o644)
    _use(db)
    assert mode(db) == 0o600


def test_signing_key_file_follows_the_setting_and_is_refused_when_open(
        tmp_path: Path) -> None:
    from bridge.web.settings import signing_key, web_settings

    key = tmp_path / "web.key"
    cfg = write_config(tmp_path, f'[web]\nsecret_file = "{key}"\n[files]\ngroup_read = true\n')
    settings = load_settings(cfg)
    signing_key(settings, web_settings(settings), env={})
    assert mode(key) == 0o640
    key.chmod(0o644)
    with pytest.raises(ConfigError, match="web.secret_file: .* others may read"):
        signing_key(settings, web_settings(settings), env={})
    r = run(["check-config", "--config", str(cfg)])
    assert r.exit_code == 2 and "chmod 600" in r.output


@pytest.mark.parametrize("bad", [0o644, 0o606, 0o666, 0o620])
def test_secrets_file_others_can_read_or_write_is_refused(tmp_path: Path, bad: int) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('bearer = "b-123"\n', encoding="utf-8")
    cfg = tmp_path / "bridge.toml"
    cfg.write_text('secrets_file = "secrets.toml"\n' + write_config(tmp_path).read_text(),
                   encoding="utf-8")
    secrets.chmod(bad)
    with pytest.raises(ConfigError, match="secrets_file: .*others may read or change"):
        load_settings(cfg)
    r = run(["check-config", "--config", str(cfg)])
    assert r.exit_code == 2 and "secrets_file" in r.output and "Traceback" not in r.output
    for fine in (0o600, 0o640, 0o400):
        secrets.chmod(fine)
        assert load_settings(cfg).secrets.bearer is not None


def test_recap_files_follow_the_setting(tmp_path: Path) -> None:
    for group_read, expected in ((False, 0o600), (True, 0o640)):
        out = tmp_path / f"rekap-{group_read}"
        cfg = write_config(tmp_path, f'[files]\ngroup_read = {str(group_read).lower()}\n'
                                     f'[reports]\nout_dir = "{out}"\n')
        r = run(["report", "--period", "2026-10", "--config", str(cfg)])
        assert r.exit_code == 0, r.output
        files = sorted(out.iterdir())
        assert len(files) == 4 and {p.suffix for p in files} == {".html", ".csv", ".pdf"}
        assert {mode(p) for p in files} == {expected}, [oct(mode(p)) for p in files]
