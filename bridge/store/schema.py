"""The store at its newest schema, as every command but ``db`` needs it.

A store already at the newest revision is checked with a quick look (its table list and
version row), and an empty database is created from the models in one transaction, both
without loading Alembic (about a tenth of a second of imports, which every ``queue``,
``status`` or ``sync --once`` paid; running the thirteen migrations on an empty SQLite
file cost twice that again). A store at an older revision is upgraded by its migrations
(:mod:`bridge.store.migrate`).

Creating from the models is what Alembic's documentation advises for a new database
("Building an Up to Date Database from Scratch": ``create_all``, then stamp the head).
The stamp is one row in Alembic's version table, written here in Alembic's own layout;
``tests/test_store_schema.py`` checks on SQLite and PostgreSQL that a created store and
a migrated one have the same tables, columns, keys, indexes and rows, that Alembic reads
the stamp as its head, and that :data:`HEAD_REVISION` is the newest migration.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    insert,
    inspect,
    select,
)

from bridge.store.db import engine_schema, lock_for_schema_change
from bridge.store.models import Base, User, UserRole

log = logging.getLogger("bridge.store")

#: The newest migration in ``migrations/versions`` (a test keeps the two in step).
HEAD_REVISION = "0013"

#: The account every store is made with: command-line actions without ``--user`` act as
#: it, in whatever role ``--role`` names. (Migration 0012 made it in stores older than
#: that revision.)
OPERATOR = "operator"
#: A password hash no password matches: the account cannot sign in on the web page.
NO_PASSWORD = "!"

_VERSION_TABLE = "alembic_version"


def _version_table(schema: str | None) -> Table:
    # Alembic's layout (alembic.runtime.migration.MigrationContext): one column, named
    # primary key; it reads the row back whoever wrote it.
    return Table(_VERSION_TABLE, MetaData(),
                 Column("version_num", String(32), nullable=False),
                 PrimaryKeyConstraint("version_num", name=f"{_VERSION_TABLE}_pkc"),
                 schema=schema)


class _Found(NamedTuple):
    empty: bool
    revision: str | None


def _look(conn: Connection, schema: str | None) -> _Found:
    tables = inspect(conn).get_table_names(schema=schema)
    if _VERSION_TABLE not in tables:
        return _Found(not tables, None)
    revisions = list(conn.scalars(select(_version_table(schema).c.version_num)))
    # Several rows would be branches, which this chain never has: let Alembic judge.
    return _Found(False, revisions[0] if len(revisions) == 1 else None)


def stored_revision(engine: Engine) -> str | None:
    """The revision the store's version table names (None: no table, or not one row)."""
    with engine.connect() as conn:
        return _look(conn, engine_schema(engine)).revision


def ensure_schema(engine: Engine) -> None:
    """Bring the store to :data:`HEAD_REVISION`; every command but ``db`` calls this at
    start. Safe to call from several processes at once."""
    schema = engine_schema(engine)
    with engine.connect() as conn:
        found = _look(conn, schema)
    if found.revision == HEAD_REVISION:
        return
    if found.empty:
        if _create(engine, schema):
            log.info("created the database schema at revision %s", HEAD_REVISION)
            return
        # Another process created it first, under the lock: it is most likely current.
        if stored_revision(engine) == HEAD_REVISION:
            return
    # Lazy: Alembic loads only when a store is behind (see the module's doc).
    from bridge.store.migrate import upgrade

    log.info("upgrading database schema to %s", HEAD_REVISION)
    upgrade(engine)


def _create(engine: Engine, schema: str | None) -> bool:
    """Create the schema in an empty database; False when, once the lock was taken, the
    database was no longer empty (another process created it first)."""
    with engine.begin() as conn:
        lock_for_schema_change(conn, schema)
        if not _look(conn, schema).empty:
            return False
        Base.metadata.create_all(conn, checkfirst=False)
        version = _version_table(schema)
        version.create(conn)
        conn.execute(insert(version).values(version_num=HEAD_REVISION))
        _seed(conn)
    return True


def _seed(conn: Connection) -> None:
    """The rows a new store starts with (what the migrations insert into an empty one)."""
    user_id = conn.execute(insert(User).values(
        username=OPERATOR, full_name="Operator (command line)", password_hash=NO_PASSWORD
    ).returning(User.id)).scalar_one()
    conn.execute(insert(UserRole).values(user_id=user_id, role="admin", position=0))
