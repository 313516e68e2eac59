"""Engines and sessions for the store (SQLite or PostgreSQL, same code)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from bridge.filemodes import PRIVATE, create_file, set_mode

log = logging.getLogger("bridge.store")

#: Serialises concurrent schema upgrades of one PostgreSQL database (arbitrary constant).
_UPGRADE_LOCK_KEY = 0x1A90_B1D6


def json_dumps(value: Any) -> str:
    """JSON columns' serialiser: orjson, about five times the standard library's speed
    (JSON was a tenth of a first pull's time), with the standard library for what orjson
    refuses (integers beyond 64 bits, lone surrogates), so a value that was storable stays
    storable. Reading back stays with the standard library's ``json.loads``."""
    try:
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(value)


def make_engine(url: str, password: SecretStr | None = None, echo: bool = False,
                file_mode: int = PRIVATE, schema: str | None = None) -> Engine:
    """An engine for ``url``; the password (a secret) is never part of the configured URL.

    A SQLite file and its ``-wal``/``-shm`` files get ``file_mode`` (0600 by default)
    whatever the umask: they hold reporters' identities and password hashes.

    ``schema`` (PostgreSQL only) puts every table in that schema of the database: one
    body of a several-body deployment (see bridge/bodies.py)."""
    sa_url = make_url(url)
    if password is not None:
        sa_url = sa_url.set(password=password.get_secret_value())
    kwargs: dict[str, Any] = {"echo": echo, "future": True, "json_serializer": json_dumps}
    if sa_url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["pool_size"] = 10
    if sa_url.get_backend_name() == "sqlite":
        _make_sqlite_parent(sa_url.database)
    engine = create_engine(sa_url, **kwargs)
    if sa_url.get_backend_name() == "sqlite":
        db_file = sa_url.database
        if db_file and db_file != ":memory:" and not db_file.startswith("file:"):
            _private_sqlite(db_file, file_mode)
            event.listen(engine, "connect",
                         lambda *_: _private_sqlite(db_file, file_mode, create=False))
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT and
        # "BEGIN IMMEDIATE"; take it over as SQLAlchemy's docs recommend.
        event.listen(engine, "begin", _sqlite_begin)
    elif schema:
        return _in_schema(engine, schema)
    return engine


def _in_schema(engine: Engine, schema: str) -> Engine:
    # The translate map names the schema in everything SQLAlchemy renders from the models;
    # the search path catches the rest (raw SQL in migrations, Alembic's own look-ups).
    # The search path holds the body's schema alone: a table missing there must fail,
    # not fall through to another body's (or the deployment's) table of that name.
    quoted = engine.dialect.identifier_preparer.quote_schema(schema)

    def _search_path(dbapi_conn: Any, _record: Any) -> None:
        # Outside a transaction, so that the setting holds for the whole session.
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True
        cur = dbapi_conn.cursor()
        cur.execute(f"SET SESSION search_path TO {quoted}")
        cur.close()
        dbapi_conn.autocommit = autocommit

    event.listen(engine, "connect", _search_path)
    return engine.execution_options(schema_translate_map={None: schema})


def engine_schema(engine: Engine) -> str | None:
    """The schema ``engine`` keeps its tables in (``make_engine(schema=...)``), or None."""
    mapping = engine.get_execution_options().get("schema_translate_map") or {}
    value = mapping.get(None)
    return str(value) if value else None


def _private_sqlite(path: str, mode: int, create: bool = True) -> None:
    # SQLite gives a new -wal/-shm file the database file's mode, so creating the database
    # with ``mode`` covers them; files left wider by an older version are set on connect.
    if create and os.path.isdir(os.path.dirname(os.path.abspath(path))):
        create_file(path, mode)
    for name in (path, path + "-wal", path + "-shm"):
        set_mode(name, mode)


def _make_sqlite_parent(database: str | None) -> None:
    # A new deployment's default URL points into var/, which a fresh clone does not have;
    # SQLite then fails with the unhelpful "unable to open database file".
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    parent = Path(database).expanduser().parent
    if not parent.exists():
        parent.mkdir(parents=True, exist_ok=True)


#: Bytes per page of a new SQLite store (SQLite's default is 4,096).
#:
#: A case row holds LAPOR!'s whole report besides its columns: about 2.5 KB, so at 4 KB
#: most pages held one row and half the file was slack, and a report with a long history
#: spilled onto overflow pages. At 16 KB a first sync of 20,000 reports made a 72 MB file
#: instead of 93 MB with a fifth of the reads and writes (39,000 system calls instead of
#: 198,000) and about 15% less CPU. The size is fixed when the file is created; an existing
#: store keeps its own.
SQLITE_PAGE_SIZE = 16_384


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # Before WAL: a database's page size can only be chosen while it is still empty.
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # WAL lets the web page read while the daemon writes; foreign keys are off by default.
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


#: How long a SQLite connection waits for another's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _switch_to_wal(cur: Any) -> None:
    # On a new file, two processes switching it to WAL at once (the daemon and the staff
    # page started together on a fresh install) get "database is locked" at once: SQLite
    # does not wait on the busy timeout there. Try again, within that timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the write lock up front, so two writers wait on busy_timeout instead of
    # one failing with "database is locked" when it upgrades a read lock mid-transaction.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def lock_for_schema_change(conn: Connection, schema: str | None) -> None:
    """On PostgreSQL, serialise schema changes of the database for the rest of ``conn``'s
    transaction, and create ``schema`` when it is missing (SQLite's ``BEGIN IMMEDIATE``
    already serialises writers)."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _UPGRADE_LOCK_KEY})
    if schema:
        quoted = conn.dialect.identifier_preparer.quote_schema(schema)
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))
