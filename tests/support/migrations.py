"""Migration tests' helpers: going down a revision, and the schema against the models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    from bridge.store.migrate import alembic_config

    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def differences(conn: Connection) -> list[Any]:
    """What the migrated schema lacks or has beyond the models (empty when they match)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from bridge.store.models import Base

    return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
