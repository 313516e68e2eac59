"""A store created from the models is the store the migrations build, on both databases;
the schema check of every command loads Alembic only when there is something to migrate."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, inspect, text

from bridge.store.db import make_engine
from bridge.store.migrate import current_revision, head_revision, upgrade
from bridge.store.schema import HEAD_REVISION, OPERATOR, ensure_schema, stored_revision
from tests.support.migrations import differences

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
_count = iter(range(1_000_000))


@pytest.fixture(params=DATABASES)
def empty_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """Makes as many fresh, empty databases as a test asks for, on one kind of server."""
    if request.param == "sqlite":
        return lambda: f"sqlite:///{tmp_path / f'store{next(_count)}.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    return lambda: str(cluster.create_database(f"schema{next(_count)}"))


@pytest.fixture
def engines() -> Iterator[Callable[..., Engine]]:
    made: list[Engine] = []

    def engine(url: str, **kw: Any) -> Engine:
        made.append(make_engine(url, **kw))
        return made[-1]

    yield engine
    for e in made:
        e.dispose()


def _layout(engine: Engine) -> dict[str, Any]:
    """Every table's columns, keys, indexes and constraints, as the database reports them."""
    found = inspect(engine)
    schema = engine.get_execution_options().get("schema_translate_map", {}).get(None)
    out: dict[str, Any] = {}
    for table in sorted(found.get_table_names(schema=schema)):
        out[table] = {
            # By name: a column a migration added stands last in a migrated table and in
            # the models' order in a created one; nothing reads columns by position.
            "columns": sorted((c["name"], str(c["type"]), c["nullable"],
                               _default(c.get("default"), schema))
                              for c in found.get_columns(table, schema=schema)),
            "primary key": found.get_pk_constraint(table, schema=schema)["constrained_columns"],
            "foreign keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"],
                 tuple(f["referred_columns"]), str(sorted(f.get("options", {}).items())))
                for f in found.get_foreign_keys(table, schema=schema)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in found.get_indexes(table, schema=schema)),
            "unique": sorted(tuple(u["column_names"])
                             for u in found.get_unique_constraints(table, schema=schema)),
        }
    return out


def _default(value: Any, schema: str | None) -> str | None:
    # A sequence's default names the body's schema: the same default in another schema.
    if value is None:
        return None
    return str(value).replace(f'"{schema}".', "") if schema else str(value)


def _rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """What each table holds (times and generated ids left out)."""
    with engine.connect() as conn:
        tables = inspect(conn).get_table_names()
        out = {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t}"))]  # noqa: S608
               for t in tables if t not in ("users", "user_roles", "alembic_version")}
        out["users"] = [tuple(r) for r in conn.execute(text(
            "SELECT username, full_name, password_hash, active, session_generation FROM users"))]
        out["user_roles"] = [tuple(r) for r in conn.execute(text(
            "SELECT u.username, r.role, r.position FROM user_roles r "
            "JOIN users u ON u.id = r.user_id"))]
        return out


def test_head_revision_is_the_newest_migration() -> None:
    assert head_revision() == HEAD_REVISION


def test_a_created_store_is_the_migrated_store(empty_urls: Callable[[], str],
                                              engines: Callable[..., Engine]) -> None:
    created, migrated = engines(empty_urls()), engines(empty_urls())
    ensure_schema(created)
    upgrade(migrated)
    assert _layout(created) == _layout(migrated)
    assert _rows(created) == _rows(migrated)
    assert _rows(created)["user_roles"] == [(OPERATOR, "admin", 0)]
    # Alembic reads the stamp as its head, finds nothing to change, and upgrades nothing.
    assert current_revision(created) == head_revision()
    with created.connect() as conn:
        assert differences(conn) == []
    upgrade(created)
    assert _layout(created) == _layout(migrated)


def test_a_store_behind_is_upgraded_by_its_migrations(
        empty_urls: Callable[[], str], engines: Callable[..., Engine],
        caplog: pytest.LogCaptureFixture) -> None:
    behind = engines(empty_urls())
    upgrade(behind, "0011")
    with behind.begin() as conn:
        conn.execute(text("INSERT INTO users (username, full_name, password_hash, active, "
                          "role, created_at) VALUES ('sri', 'Sri', 'x', :t, 'kasi', "
                          "'2026-11-01 02:00:00')"), {"t": True})
    with caplog.at_level("INFO", logger="bridge.store"):
        ensure_schema(behind)
    assert "upgrading database schema to " + HEAD_REVISION in caplog.text
    assert stored_revision(behind) == HEAD_REVISION
    assert [r[:2] for r in _rows(behind)["user_roles"]] == [("sri", "kasi"), (OPERATOR, "admin")]


def test_a_body_schema_is_created_with_its_own_version_table(
        pg_cluster: Any, engines: Callable[..., Engine]) -> None:
    url = str(pg_cluster.create_database(f"schema{next(_count)}"))
    deployment, body = engines(url), engines(url, schema="body_dlh")
    migrated = engines(url, schema="body_dpu")
    ensure_schema(deployment)
    ensure_schema(body)
    upgrade(migrated)
    assert stored_revision(body) == current_revision(body) == HEAD_REVISION
    with body.connect() as conn:
        tables = set(inspect(conn).get_table_names(schema="body_dlh"))
    assert {"cases", "alembic_version", "users"} <= tables
    assert _layout(body) == _layout(migrated)
    assert _rows(body) == _rows(migrated)


def test_several_processes_creating_one_store_make_it_once(
        empty_urls: Callable[[], str], engines: Callable[..., Engine]) -> None:
    # Four processes started together on one empty database (the daemon, the staff page
    # and two commands on a fresh install), several rounds: each one gets a current store.
    for _ in range(2):
        url = empty_urls()
        start = time.time() + 1.5
        probe = ("import sys, time; from bridge.store.db import make_engine; "
                 "from bridge.store.schema import ensure_schema; "
                 "e = make_engine(sys.argv[1]); time.sleep(max(0.0, float(sys.argv[2]) - "
                 "time.time())); ensure_schema(e); e.dispose()")
        procs = [subprocess.Popen([sys.executable, "-c", probe, url, str(start)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in procs]
        assert [code for code, _ in errors] == [0] * 4, errors
        store = engines(url)
        with store.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars(
            ).all() == [HEAD_REVISION]
            assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 1


def test_threads_creating_one_store_at_once_make_it_once(
        empty_urls: Callable[[], str], engines: Callable[..., Engine]) -> None:
    # The same race, tighter: on a new SQLite file, switching to WAL answered "database is
    # locked" at once to all but one of several connections (6 rounds in 20 failed).
    for _ in range(10):
        url = empty_urls()
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def create(url: str = url, errors: list[BaseException] = errors,
                   start: threading.Barrier = start) -> None:
            engine = make_engine(url)
            try:
                start.wait()
                ensure_schema(engine)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=create) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with engines(url).connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM users")).scalar_one() == 1


def test_commands_on_a_current_or_empty_store_do_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    probe = ("import sys; from bridge.store.db import make_engine; "
             "from bridge.store.schema import ensure_schema; "
             f"ensure_schema(make_engine({url!r})); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    for _ in ("empty", "current"):
        ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                             timeout=120, check=True)
        assert ran.stdout.strip() == "[]", ran.stdout


def test_a_new_sqlite_store_has_large_pages_and_an_old_one_keeps_its_own(
        tmp_path: Path, engines: Callable[..., Engine]) -> None:
    import sqlite3

    from bridge.store.db import SQLITE_PAGE_SIZE

    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE kept (x INTEGER)")
        conn.execute("INSERT INTO kept VALUES (1)")
    conn.close()
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        engine = engines(f"sqlite:///{path}")
        with engine.connect() as c:
            c.execute(text("CREATE TABLE IF NOT EXISTS made (y INTEGER)"))
            c.commit()
            assert c.execute(text("PRAGMA page_size")).scalar_one() == size
    with engines(f"sqlite:///{old}").connect() as c:
        assert c.execute(text("SELECT x FROM kept")).scalar_one() == 1


def test_a_runtime_that_fails_to_build_closes_its_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every process leaves what is alive at exit to the OS (gc.freeze): a store left open
    # by a failed runtime would never be closed (on SQLite, its WAL never checkpointed).
    import bridge.runtime
    from bridge.config import ConfigError
    from bridge.runtime import Runtime
    from tests.support.settings import make_settings

    closed: list[object] = []
    real = bridge.runtime.make_engine

    def watched(*args: Any, **kwargs: Any) -> Engine:
        engine = real(*args, **kwargs)
        event.listen(engine, "close", lambda conn, record: closed.append(conn))
        return engine

    monkeypatch.setattr(bridge.runtime, "make_engine", watched)
    settings = make_settings(f"sqlite:///{tmp_path / 'store.db'}",
                             workflow={"transitions": {"register": {"to": "handeling"}}})
    with pytest.raises(ConfigError, match="handeling"):
        Runtime(settings)
    assert closed, "the runtime's store was left open"
    assert not (tmp_path / "store.db-wal").exists()
