"""The store's migrations, through Alembic: the revision chain in ``migrations/``, the
revision a database is at, and upgrades to a revision.

Importing Alembic costs about a tenth of a second, more than the rest of a command's
schema check; commands that only need the store at its newest revision go through
:func:`bridge.store.schema.ensure_schema`, which loads this module only when there is
something to migrate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from bridge.store.db import engine_schema, lock_for_schema_change

log = logging.getLogger("bridge.store")


def alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(files("bridge.store") / "migrations"))
    return cfg


def head_revision() -> str | None:
    """The newest revision of the chain in ``migrations/versions``."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@contextmanager
def _quiet_alembic() -> Iterator[None]:
    # Alembic's INFO lines ("Context impl SQLiteImpl.", one per revision) are for
    # developers; an operator sees ensure_schema's one line. -vv (DEBUG) still shows them.
    alembic_log = logging.getLogger("alembic")
    quiet = not log.isEnabledFor(logging.DEBUG) and alembic_log.level == logging.NOTSET
    if quiet:
        alembic_log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        if quiet:
            alembic_log.setLevel(logging.NOTSET)


def current_revision(engine: Engine) -> str | None:
    schema = engine_schema(engine)
    opts = {"version_table_schema": schema} if schema else {}
    with engine.connect() as conn, _quiet_alembic():
        return MigrationContext.configure(conn, opts=opts).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call from several processes at once.

    An engine kept in a schema (``make_engine(schema=...)``) gets the schema created when
    missing, and Alembic's version table inside it: each schema is upgraded on its own."""
    cfg = alembic_config()
    schema = engine_schema(engine)
    with engine.begin() as conn:
        lock_for_schema_change(conn, schema)
        cfg.attributes["connection"] = conn
        cfg.attributes["version_table_schema"] = schema
        with _quiet_alembic():
            command.upgrade(cfg, revision)
