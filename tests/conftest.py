"""Shared fixtures, each defined once: databases (SQLite always, PostgreSQL through a
throwaway cluster per test process), the API dialects, the LAPOR! sandbox and runtimes.

Helpers (functions and classes) live in :mod:`tests.support`; import them from there.

Under pytest-xdist each worker is its own process: it starts its own PostgreSQL cluster on
a free port and keeps SQLite files under its own ``tmp_path``, so workers share nothing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from bridge.lapor.sandbox import SandboxServer
from bridge.process import compile_bytecode, tune_gc
from bridge.tools.pg_cluster import NoPostgres, PgCluster, start_cluster
from tests.support import databases
from tests.support.passwords import cheap_password_hashing
from tests.support.schedule import FileTimer, order_longest_first
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings

_db_counter = itertools.count()
ROOT = Path(__file__).resolve().parents[1]


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers per core for ``-n auto``: about a third of the suite's time is spent
    waiting (on daemon subprocesses, lease expiries, the sandbox's latency), which a second
    worker per core fills with another file's work."""
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    return 2 * cores


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(FileTimer(), "lapor-bridge-file-timer")
    # The collector as the bridge's own processes run it (bridge/process.py): the tests
    # run the same code in-process.
    tune_gc()
    cheap_password_hashing()  # argon2's cheapest cost in-process (tests/support/passwords.py)
    if not hasattr(config, "workerinput"):  # once, in the process that starts the workers
        compile_bytecode(ROOT / "tests")


@pytest.hookimpl(hookwrapper=True)
def pytest_collection(session: pytest.Session) -> Iterator[None]:
    """Let pytest keep its assertion-rewritten test modules while it collects them. It
    writes them only where bytecode may be written, and where PYTHONDONTWRITEBYTECODE is
    set (as on this project's machine) every worker rewrote every test module again:
    ~3 s of CPU per process. The bridge's own bytecode is written anyway (pytest_configure)."""
    before = sys.dont_write_bytecode
    sys.dont_write_bytecode = False
    try:
        yield
    finally:
        sys.dont_write_bytecode = before


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest files first (their last run's time, else an estimate from their ``slow``
    tests): under xdist they start at once and the short files fill in around them, so the
    workers end together. Nothing is deselected: the ``slow`` marker only orders."""
    order_longest_first(config, items)


# No time limit per example: speed is the benchmarks' business, and a loaded CI machine
# must not turn a slow example into a failure (hypothesis' default is 200 ms).
hypothesis_settings.register_profile("lapor-bridge", deadline=None)
hypothesis_settings.load_profile("lapor-bridge")

@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        cluster = start_cluster()
    except NoPostgres as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


def _migrate(url: str) -> None:
    from bridge.store.db import make_engine
    from bridge.store.schema import ensure_schema

    engine = make_engine(url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A PostgreSQL database migrated to head once per session, copied by ``db_url``."""
    name = "bridge_template"
    _migrate(pg_cluster.create_database(name))
    return name


@pytest.fixture(scope="session")
def sqlite_template() -> Path:
    """A SQLite file migrated to head once per session, copied by ``db_url``
    (:func:`tests.support.databases.sqlite_template`, which other helpers copy too)."""
    return databases.sqlite_template()


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database migrated to head, once on SQLite, once on PostgreSQL.

    Both are copies of a template made once per session as the bridge makes a new store
    (from the models; tests/test_store_schema.py checks it is the migrated store, and the
    migrations themselves run from an empty database in ``empty_db_url`` tests).
    """
    if request.param == "sqlite":
        path = tmp_path / "bridge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    template: str = request.getfixturevalue("pg_template")
    return cluster.create_database(f"t{next(_db_counter)}", template=template)


@pytest.fixture
def pg_url(pg_cluster: PgCluster, pg_template: str) -> str:
    """A fresh PostgreSQL database migrated to head, for what only PostgreSQL allows
    (several workers on one database); skipped without PostgreSQL."""
    return pg_cluster.create_database(f"t{next(_db_counter)}", template=pg_template)


@pytest.fixture(params=DATABASES)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database (no schema), once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'bridge.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database(f"t{next(_db_counter)}")


#: The API dialects the end-to-end tests run against (the sandbox speaks each).
DIALECTS = ("lapor-v3", "lapor-flat")


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Each API dialect in turn: the sandbox answers in it, the bridge's profile reads it."""
    return str(request.param)


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxServer]:
    """A LAPOR! sandbox on a free port with the test secrets.

    Its options (seed, reports, bearer_header, ...) come from the closest
    ``@pytest.mark.sandbox(...)``; a test parametrised by ``dialect`` gets a sandbox
    speaking that dialect.
    """
    marker = request.node.get_closest_marker("sandbox")
    options: dict[str, Any] = {"bearer": TEST_BEARER, "token": TEST_TOKEN,
                               **(marker.kwargs if marker else {})}
    if "dialect" in request.fixturenames:
        options["dialect"] = request.getfixturevalue("dialect")
    with SandboxServer(**options) as server:
        yield server


@pytest.fixture
def router() -> Any:
    """A respx router for LAPOR! at ``tests.support.client.BASE`` (a ``respx.Router``)."""
    import respx

    from tests.support.client import BASE

    return respx.Router(base_url=BASE, assert_all_called=False)


@pytest.fixture
def runtime_factory(db_url: str) -> Iterator[Any]:
    """Build Runtimes on the parametrised database (closed at teardown)."""
    from bridge.runtime import Runtime

    made: list[Runtime] = []

    def make(base_url: str = "http://127.0.0.1:9", dialect: str | None = None,
             **sections: object) -> Runtime:
        if dialect is not None:
            lapor = sections.get("lapor")
            sections["lapor"] = {"api_profile": dialect,
                                 **(lapor if isinstance(lapor, dict) else {})}
        rt = Runtime(make_settings(db_url, base_url, **sections))
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()


@pytest.fixture
def env(tmp_path: Path, sqlite_template: Path) -> Iterator[Any]:
    """The staff page on a fresh SQLite database (a :class:`tests.support.web.Env`)."""
    from tests.support.web import build_env

    shutil.copyfile(sqlite_template, tmp_path / "web.db")  # migrated once per session
    e = build_env(f"sqlite:///{tmp_path / 'web.db'}")
    yield e
    for c in e.clients:
        c.close()
    e.rt.close()
