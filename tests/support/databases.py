"""Fresh SQLite stores at the head revision without building the schema for each one.

The schema is made once per test process, into a template file (as the bridge makes a new
store); each store a test asks for is a copy of it. Tests of the migrations themselves start from empty databases instead
(conftest's ``empty_db_url``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path


@cache
def sqlite_template() -> Path:
    """A SQLite file at the head revision, made once per process (removed at exit)."""
    from bridge.store.db import make_engine
    from bridge.store.schema import ensure_schema

    folder = Path(tempfile.mkdtemp(prefix="lapor-bridge-template-"))
    atexit.register(shutil.rmtree, folder, True)
    path = folder / "bridge.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
    return path


def migrated_sqlite(path: Path) -> str:
    """The URL of a new SQLite store at ``path``, already at the head revision."""
    shutil.copyfile(sqlite_template(), path)
    return f"sqlite:///{path}"
