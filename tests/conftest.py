"""Shared fixtures: databases (SQLite always, PostgreSQL through a throwaway cluster)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.tools.pg_cluster import NoPostgres, PgCluster, start_cluster

_db_counter = itertools.count()


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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL."""
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


BASE_CONFIG = {
    "regency": {"name": "Kabupaten Uji", "code": "UJI",
                "register_format": "{code}/ADU/{year}/{seq:05d}"},
    "lapor": {"base_url": "http://127.0.0.1:9", "bearer_header": "Authorization",
              "institution_id": 1, "user_id": 7, "page_size": 50, "requests_per_second": 1000,
              "backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 4,
              "read_timeout": 5},
    "outbox": {"backoff_initial": 0.01, "backoff_max": 0.05},
    "opds": [
        {"code": "DLH", "name": "Dinas Lingkungan Hidup", "lapor_institution_id": 102},
        {"code": "PUPR", "name": "Dinas PUPR", "lapor_institution_id": 103},
        {"code": "BPN", "name": "Kantor Pertanahan", "lapor_institution_id": 114, "kind": "body"},
        {"code": "KECAMATAN", "name": "Kecamatan Kota"},
    ],
}

TEST_BEARER = "test-bearer-SECRET-1f9a"
TEST_TOKEN = "{11111111-2222-4333-8444-SECRET555555}"


def make_settings(db_url: str, base_url: str = "http://127.0.0.1:9", **sections: object):
    """Settings for a test deployment; sections given replace or extend the base config."""
    import copy

    from bridge.config import settings_from_mapping

    data = copy.deepcopy(BASE_CONFIG)
    data["lapor"]["base_url"] = base_url  # type: ignore[index]
    data["database"] = {"url": db_url}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}  # type: ignore[dict-item]
        else:
            data[name] = value
    return settings_from_mapping(
        data, source="test.toml",
        env={"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN},
    )


@pytest.fixture
def runtime_factory(db_url: str):
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
