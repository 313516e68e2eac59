"""A Pemda's bodies: ``[[bodies]]`` parsed into one Settings per body, each on its own
store (a file on SQLite, a schema on PostgreSQL), synced by ``sync --once``; and the bad
input ``check-config`` refuses with one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

from bridge.bodies import bodies_of, body_of, sqlite_body_url
from bridge.config import ConfigError, settings_from_mapping
from bridge.lapor.sandbox import SandboxServer
from bridge.store.db import make_engine
from bridge.store.migrate import current_revision, head_revision
from bridge.store.models import Case
from bridge.tools.pg_cluster import PgCluster
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.profiles import pdf_text
from tests.support.settings import TEST_BEARER, TEST_TOKEN

#: The sandboxes' reports are received in the 60 days before this: all in 2026.
ANCHOR = datetime(2026, 6, 30, tzinfo=UTC)
ENV = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}


def pemda(db_url: str = "sqlite:////tmp/never/bridge.db", **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "regency": {"name": "Kabupaten Uji", "code": "UJI",
                    "register_format": "{code}/ADU/{year}/{seq:05d}"},
        "lapor": {"base_url": "http://127.0.0.1:9", "requests_per_second": 7},
        "database": {"url": db_url},
        "opds": [{"code": "DLH", "name": "Dinas Lingkungan Hidup", "lapor_institution_id": 102},
                 {"code": "BPN", "name": "Kantor Pertanahan", "lapor_institution_id": 114,
                  "kind": "body"}],
        "calendar": {"weekend": ["sunday"]},
        "bodies": [
            {"code": "DPMPTSP", "name": "Dinas Penanaman Modal dan PTSP",
             "institution_id": 101, "profile": "situbondo"},
            {"code": "DLH", "name": "Dinas Lingkungan Hidup", "institution_id": 102,
             "register_format": "DLH/{year}/{seq:04d}", "secrets": "dlh",
             "calendar": {"local_holidays": {"2026-06-28": "Hari Jadi"}},
             "workflow": {"name": "SOP DLH"}},
        ],
    }
    data.update(extra)
    return data


def load(data: dict[str, Any], env: dict[str, str] | None = None) -> Any:
    return settings_from_mapping(data, source="pemda.toml",
                                 env={**ENV, **(env if env is not None else {
                                     "LAPOR_BRIDGE_DLH_BEARER": "dlh-bearer",
                                     "LAPOR_BRIDGE_DLH_TOKEN": "dlh-token"})})


# -- parsing ---------------------------------------------------------------------------


def test_each_body_is_a_complete_settings() -> None:
    dpm, dlh = bodies_of(load(pemda()))
    assert (dpm.code, dlh.code) == ("DPMPTSP", "DLH")
    s = dlh.settings
    assert (s.regency.code, s.regency.name) == ("DLH", "Dinas Lingkungan Hidup")
    assert s.regency.register_format == "DLH/{year}/{seq:04d}"
    assert dpm.settings.regency.register_format == "{code}/ADU/{year}/{seq:05d}"
    assert s.lapor.institution_id == 102 and s.lapor.requests_per_second == 7
    # Credentials by secrets name; the other body, with none of its own, the deployment's.
    assert s.secrets.bearer is not None and s.secrets.bearer.get_secret_value() == "dlh-bearer"
    assert dpm.settings.secrets.bearer is not None
    assert dpm.settings.secrets.bearer.get_secret_value() == TEST_BEARER
    # The profile's workflow for one, the inline one for the other; calendars merged.
    assert "Situbondo" in dpm.settings.section("workflow")["name"]
    assert s.section("workflow")["name"] == "SOP DLH"
    assert s.section("calendar") == {"weekend": ["sunday"],
                                     "local_holidays": {"2026-06-28": "Hari Jadi"}}
    # The Pemda's OPD list without the body itself, the other bodies added.
    assert [o.code for o in s.opds] == ["BPN", "DPMPTSP"]
    assert [o.code for o in dpm.settings.opds] == ["DLH", "BPN"]
    assert dpm.settings.opd("DLH").lapor_institution_id == 102  # type: ignore[union-attr]
    # Each its own SQLite file beside the deployment's.
    assert s.database.url == "sqlite:////tmp/never/bridge.dlh.db"
    assert dpm.settings.database.url == "sqlite:////tmp/never/bridge.dpmptsp.db"


def test_postgresql_bodies_get_a_schema_each() -> None:
    dpm, dlh = bodies_of(load(pemda("postgresql+psycopg://u@h/pemda")))
    assert dpm.settings.database.url == dlh.settings.database.url
    assert (dpm.settings.database.db_schema, dlh.settings.database.db_schema) == (
        "body_dpmptsp", "body_dlh")


def test_one_body_deployment_is_unchanged() -> None:
    data = pemda()
    del data["bodies"]
    settings = load(data)
    (only,) = bodies_of(settings)
    assert only.settings is settings and only.code == "UJI"
    assert body_of(settings, None).settings is settings


def test_body_of_needs_a_code_when_there_are_several() -> None:
    settings = load(pemda())
    with pytest.raises(ConfigError, match="2 bodies .DPMPTSP, DLH.: name one with --body"):
        body_of(settings, None)
    assert body_of(settings, "dlh").code == "DLH"
    with pytest.raises(ConfigError, match="no body 'X'"):
        body_of(settings, "X")


def test_sqlite_body_url() -> None:
    assert sqlite_body_url("sqlite:///var/b.db", "dlh") == "sqlite:///var/b.dlh.db"
    assert sqlite_body_url("sqlite:////abs/b", "x") == "sqlite:////abs/b.x.db"
    with pytest.raises(ValueError, match="naming a file"):
        sqlite_body_url("sqlite:///:memory:", "x")


def test_secrets_file_sections(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('bearer = "b"\ntoken = "t"\n[bodies.dlh]\nbearer = "fb"\ntoken = "ft"\n')
    secrets.chmod(0o600)
    settings = settings_from_mapping(pemda(secrets_file=str(secrets)), source="p.toml", env={})
    dlh = body_of(settings, "DLH").settings
    assert dlh.secrets.token is not None and dlh.secrets.token.get_secret_value() == "ft"
    # A variable wins over the file, as for the deployment's own secrets.
    settings = settings_from_mapping(pemda(secrets_file=str(secrets)), source="p.toml",
                                     env={"LAPOR_BRIDGE_DLH_TOKEN": "env"})
    dlh = body_of(settings, "DLH").settings
    assert dlh.secrets.token is not None and dlh.secrets.token.get_secret_value() == "env"


# -- bad input -------------------------------------------------------------------------


def _bad(mutate: Any, env: dict[str, str] | None = None) -> str:
    data = pemda()
    mutate(data)
    with pytest.raises(ConfigError) as caught:
        bodies_of(load(data, env))
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_two_bodies_with_one_code() -> None:
    msg = _bad(lambda d: d["bodies"][1].update(code="dpmptsp"))
    assert "bodies[1].code" in msg and "DPMPTSP" in msg


def test_two_bodies_with_one_institution_id() -> None:
    msg = _bad(lambda d: d["bodies"][1].update(institution_id=101))
    assert "bodies[1].institution_id" in msg and "101" in msg


def test_a_missing_secrets_name() -> None:
    msg = _bad(lambda d: None, env={})
    assert "bodies[1].secrets" in msg and "LAPOR_BRIDGE_DLH_BEARER" in msg


def test_a_forward_to_the_body_itself() -> None:
    msg = _bad(lambda d: d["bodies"][1].update(
        opds=[{"code": "DLH", "name": "Dinas Lingkungan Hidup"}]))
    assert "bodies[1].opds[0]" in msg and "own code 'DLH'" in msg


def test_an_unknown_body_key() -> None:
    msg = _bad(lambda d: d["bodies"][0].update(instituton_id=5))
    assert "bodies[0].instituton_id: unknown key" in msg


def test_schema_on_sqlite_is_refused() -> None:
    with pytest.raises(ConfigError, match="database.schema: a schema needs a postgresql"):
        load(pemda(database={"url": "sqlite:///x.db", "schema": "s"}))


def _config(tmp_path: Path, bodies: str, db: str | None = None,
            lapor: str = 'base_url = "http://127.0.0.1:9"') -> Path:
    path = tmp_path / "pemda.toml"
    path.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
{lapor}
bearer_header = "Authorization"
requests_per_second = 500
max_attempts = 2
backoff_initial = 0.01
backoff_max = 0.02

[database]
url = "{db or f'sqlite:///{tmp_path / "b.db"}'}"

[outbox]
backoff_initial = 0.01
backoff_max = 0.02

[web]
secret_file = "{tmp_path / 'web.key'}"
{bodies}""", encoding="utf-8")
    return path


TWO = """
[[bodies]]
code = "DPMPTSP"
name = "Dinas Penanaman Modal dan PTSP"
institution_id = 101

[[bodies]]
code = "DLH"
name = "Dinas Lingkungan Hidup"
institution_id = 102
"""


@pytest.mark.parametrize(("change", "words"), [
    (TWO.replace('code = "DLH"', 'code = "dpmptsp"'), ["bodies[1].code", "DPMPTSP"]),
    (TWO.replace("102", "101"), ["bodies[1].institution_id", "101"]),
    (TWO + 'secrets = "DLH_PROD"\n', ["bodies[1].secrets", "LAPOR_BRIDGE_DLH_PROD_TOKEN"]),
    (TWO + '[[bodies.opds]]\ncode = "DLH"\nname = "x"\n', ["bodies[1].opds[0]", "own code"]),
    (TWO + '[[bodies.opds]]\ncode = "X"\nname = "x"\nlapor_institution_id = 102\n',
     ["bodies[1].opds[0]", "own code"]),
])
def test_check_config_refuses_with_one_line(tmp_path: Path, change: str,
                                            words: list[str]) -> None:
    ran = run_cli("check-config", str(_config(tmp_path, change)), env=ENV)
    assert_one_line_error(ran.returncode, ran.stdout, ran.stderr, 2, *words)


def test_check_config_accepts_a_pemda(tmp_path: Path) -> None:
    ran = run_cli("check-config", str(_config(tmp_path, TWO)), env=ENV)
    assert ran.returncode == 0, ran.stderr
    assert "ok (Kabupaten Uji, UJI, 2 bodies)" in ran.stdout


def test_shipped_pemda_example_checks() -> None:
    ran = run_cli("check-config", "pemda-example", env=ENV)
    assert ran.returncode == 0, ran.stderr
    assert "3 bodies" in ran.stdout


def test_case_commands_need_body_when_several(tmp_path: Path) -> None:
    config = str(_config(tmp_path, TWO))
    ran = run_cli("queue", "--config", config, env=ENV)
    assert_one_line_error(ran.returncode, ran.stdout, ran.stderr, 2, "name one with --body")
    ran = run_cli("queue", "--config", config, "--body", "dlh", env=ENV)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "b.dlh.db").exists() and not (tmp_path / "b.dpmptsp.db").exists()


# -- syncing ---------------------------------------------------------------------------


def _two_sandboxes(tmp_path: Path, db: str | None = None) -> tuple[Path, list[SandboxServer]]:
    boxes = [SandboxServer(seed=s, reports=n, bearer=TEST_BEARER, token=TEST_TOKEN,
                           bearer_header="Authorization", institution_id=inst,
                           anchor=ANCHOR).start()
             for s, n, inst in ((3, 30, 101), (4, 20, 102))]
    bodies = TWO.replace("institution_id = 101",
                         f'institution_id = 101\nlapor = {{ base_url = "{boxes[0].url}" }}')
    bodies = bodies.replace("institution_id = 102",
                            f'institution_id = 102\nlapor = {{ base_url = "{boxes[1].url}" }}')
    return _config(tmp_path, bodies, db), boxes


def _store_equals_sandbox(url: str, schema: str | None, box: SandboxServer) -> None:
    engine = make_engine(url, schema=schema)
    try:
        with engine.connect() as conn:
            got = {(r.lapor_id, r.title) for r in conn.execute(select(Case.lapor_id, Case.title))}
            count = conn.scalar(select(func.count()).select_from(Case))
    finally:
        engine.dispose()
    remote = {(r["id"], r["title"]) for r in box.state.reports(listed_only=True)}
    assert got == remote and count == len(remote)


def test_two_bodies_sync_from_two_sandboxes_sqlite(tmp_path: Path) -> None:
    config, boxes = _two_sandboxes(tmp_path)
    try:
        ran = run_cli("sync", "--once", "--json", "--config", str(config), env=ENV)
        assert ran.returncode == 0, ran.stderr
        report = json.loads(ran.stdout)
        assert report["ok"] and set(report["bodies"]) == {"DPMPTSP", "DLH"}
        assert report["bodies"]["DPMPTSP"]["pull"]["created"] == 30
        assert report["bodies"]["DLH"]["pull"]["created"] == 20
        _store_equals_sandbox(f"sqlite:///{tmp_path / 'b.dpmptsp.db'}", None, boxes[0])
        _store_equals_sandbox(f"sqlite:///{tmp_path / 'b.dlh.db'}", None, boxes[1])
        # The deployment's own file is not a body's store: no cases were written there.
        assert not (tmp_path / "b.db").exists()

        _status_shows_each_body(config)
        _pemda_recap_sums_the_bodies(config, tmp_path / "rekap")

        # One body's LAPOR! down: the other still syncs, the exit code says so.
        boxes[0].stop()
        boxes[1].state.add_report()
        ran = run_cli("sync", "--once", "--config", str(config), env=ENV)
        assert ran.returncode == 1
        assert "[DLH] " in ran.stdout and "error: body DPMPTSP:" in ran.stderr
        _store_equals_sandbox(f"sqlite:///{tmp_path / 'b.dlh.db'}", None, boxes[1])
    finally:
        for box in boxes:
            box.stop()


@pytest.mark.postgres
def test_two_bodies_sync_on_postgresql_schemas(tmp_path: Path, pg_cluster: PgCluster) -> None:
    empty_db_url = pg_cluster.create_database("pemda_bodies")
    config, boxes = _two_sandboxes(tmp_path, empty_db_url)
    try:
        ran = run_cli("db", "upgrade", "--config", str(config), env=ENV)
        assert ran.returncode == 0, ran.stderr
        head = head_revision()
        assert ran.stdout.splitlines() == [f"schema at revision {head}",
                                           f"body DPMPTSP: schema at revision {head}",
                                           f"body DLH: schema at revision {head}"]
        ran = run_cli("sync", "--once", "--config", str(config), env=ENV)
        assert ran.returncode == 0, ran.stderr
        _store_equals_sandbox(empty_db_url, "body_dpmptsp", boxes[0])
        _store_equals_sandbox(empty_db_url, "body_dlh", boxes[1])
        engine = make_engine(empty_db_url)
        try:
            # Each schema is upgraded on its own, its version table inside it.
            for schema in ("body_dpmptsp", "body_dlh"):
                in_schema = make_engine(empty_db_url, schema=schema)
                assert current_revision(in_schema) == head_revision()
                in_schema.dispose()
                assert "alembic_version" in inspect(engine).get_table_names(schema=schema)
            with engine.connect() as conn:
                # The deployment's own schema (daemons, leases) holds no body's case.
                assert conn.scalar(text("SELECT count(*) FROM public.cases")) == 0
                schemas = set(conn.scalars(text(
                    "SELECT schema_name FROM information_schema.schemata")))
            assert {"body_dpmptsp", "body_dlh"} <= schemas
        finally:
            engine.dispose()
    finally:
        for box in boxes:
            box.stop()


def _status_shows_each_body(config: Path) -> None:
    ran = run_cli("status", "--json", "--config", str(config), env=ENV)
    assert ran.returncode == 1  # no daemon runs: unhealthy, but every body is read
    status = json.loads(ran.stdout)
    assert set(status["bodies"]) == {"DPMPTSP", "DLH"}
    for code, body in status["bodies"].items():
        # The sandboxes' reports are months old: each body's lag crosses max_lag, and the
        # deployment's problems say which body.
        assert body["lag_seconds"] > 30 * 86400
        assert not body["healthy"]
        assert [p.split(" is ")[0] for p in body["problems"]] == ["newest LAPOR! change seen"]
        assert f"{code}: {body['problems'][0]}" in status["problems"]
        assert body["outbox"]["pending"] == 0 and body["dead_letters"] == 0
        assert body["quarantined"] == 0
    assert status["outbox"]["dead"] == 0

    from bridge.app.deployment import Deployment
    from bridge.config import load_settings
    from bridge.daemon.health import Metrics, collect, combine
    from bridge.daemon.settings import daemon_settings

    settings = load_settings(config, env=ENV)
    cfg = daemon_settings(settings)
    with Deployment(settings) as dep:
        reports = {body.code: collect(rt.engine, rt.sessions, cfg, body=body.code)
                   for body, rt in dep}
    metrics = Metrics()
    metrics.observe(combine(reports, cfg))
    text = metrics.render().decode()
    for code in ("DPMPTSP", "DLH"):
        assert f'lapor_bridge_body_lag_seconds{{body="{code}"}}' in text
        assert f'lapor_bridge_body_dead_letters{{body="{code}"}} 0.0' in text
        assert f'lapor_bridge_body_quarantined_items{{body="{code}"}} 0.0' in text
        assert f'lapor_bridge_body_outbox_rows{{body="{code}",state="pending"}} 0.0' in text


def test_one_body_status_has_one_body_entry(tmp_path: Path) -> None:
    config = _config(tmp_path, "")
    ran = run_cli("status", "--json", "--config", str(config), env=ENV)
    status = json.loads(ran.stdout)
    assert list(status["bodies"]) == ["UJI"]
    body = status["bodies"]["UJI"]
    assert body["outbox"] == status["outbox"] and body["quarantined"] == status["quarantined"]
    assert body["dead_letters"] == 0


def _pemda_recap_sums_the_bodies(config: Path, out: Path) -> None:
    ran = run_cli("recap", "--pemda", "--period", "2026", "--out", str(out),
                  "--config", str(config), env=ENV)
    assert ran.returncode == 0, ran.stderr
    assert "2 perangkat daerah, 50 pengaduan diterima" in ran.stderr
    files = sorted(p.name for p in out.iterdir())
    assert files == ["rekapitulasi-uji-2026-daftar.csv", "rekapitulasi-uji-2026-opd.csv",
                     "rekapitulasi-uji-2026.csv", "rekapitulasi-uji-2026.html",
                     "rekapitulasi-uji-2026.pdf"]
    # The Pemda's cover letter, then every body's complaints (the follow-ups read in
    # each body's own store).
    text = pdf_text((out / "rekapitulasi-uji-2026.pdf").read_bytes())
    assert "Penyampaian Rekapitulasi" in text
    for n, body_name in ((30, "DPMPTSP"), (20, "DLH")):  # each body's complaints listed
        assert text.count(f"{body_name}/") >= n, (body_name, text[:3000])
    rows = list(csv.reader(io.StringIO(
        (out / "rekapitulasi-uji-2026-opd.csv").read_text("utf-8-sig"))))
    received = rows[0].index("diterima")
    assert [(r[0], r[received]) for r in rows[1:]] == [
        ("DPMPTSP", "30"), ("DLH", "20"), ("JUMLAH", "50")]
    # Each body's own recap (its own store, as `report --body` writes it) agrees.
    for code, n in (("DPMPTSP", 30), ("DLH", 20)):
        ran = run_cli("recap", "--period", "2026", "--out", str(out / code), "--body", code,
                      "--config", str(config), env=ENV)
        assert ran.returncode == 0, ran.stderr
        assert f"{n} pengaduan diterima" in ran.stderr
    page = (out / "rekapitulasi-uji-2026.html").read_text("utf-8")
    assert "Menurut perangkat daerah" in page and "Dinas Lingkungan Hidup" in page
    daftar = (out / "rekapitulasi-uji-2026-daftar.csv").read_text("utf-8-sig")
    assert len(daftar.strip().splitlines()) == 51
