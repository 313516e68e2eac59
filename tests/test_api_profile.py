"""API profiles: the shapes of LAPOR! as data, the probe, and privacy whatever the key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from click.testing import CliRunner
from sqlalchemy import inspect, select, text

from bridge.app.cycle import run_cycle
from bridge.cli import main
from bridge.config import ConfigError
from bridge.lapor.api_profile import load_profile, profile_of, shipped_profiles
from bridge.lapor.client import LaporClient
from bridge.lapor.models import NewComplaintRequest, RemoteComplaint
from bridge.lapor.sandbox import SandboxServer
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings

BASE = "https://lapor.test/api"


def client_for(**lapor: Any) -> LaporClient:
    settings = make_settings("sqlite://", BASE, lapor=lapor)
    return LaporClient(settings.lapor, settings.secrets, sleep=lambda s: None)


# ---------------------------------------------------------------- profiles as data


def test_both_dialects_ship_and_the_default_is_v3() -> None:
    assert {"lapor-v3", "lapor-flat"} <= set(shipped_profiles())
    assert client_for().profile.name == "lapor-v3"


@pytest.mark.parametrize(("overrides", "key", "problem"), [
    ({"fields": {"complaint": {"title": ["a..b"]}}}, "lapor.api.fields",
     "can never match"),
    ({"fields": {"complaint": {"title": ["title", "title"]}}}, "lapor.api.fields",
     "listed twice"),
    ({"fields": {"complaint": {"titel": ["x"]}}}, "lapor.api.fields", "unknown field"),
    ({"endpoints": {"inbox": {"lst": "results"}}}, "lapor.api.endpoints.inbox.lst",
     "unknown key"),
    ({"endpoints": {"create": {"encoding": "xml"}}}, "lapor.api.endpoints.create.encoding",
     "json"),
    ({"endpoints": {"complaint": {"path": ""}}}, "lapor.api.endpoints",
     "only the inbox may be switched off"),
])
def test_a_profile_that_cannot_work_is_one_line(tmp_path: Path, overrides: dict[str, Any],
                                                key: str, problem: str) -> None:
    settings = make_settings("sqlite://", BASE, lapor={"api": overrides})
    with pytest.raises(ConfigError) as info:
        profile_of(settings.lapor, "bridge.toml")
    assert info.value.key.startswith(key) and problem in str(info.value)
    assert "\n" not in str(info.value)


def minimal_config(path: Path, base_url: str, lapor_extra: str = "") -> Path:
    """A deployment file with only what is required, plus ``lapor_extra`` lines."""
    path.write_text(f"""
[regency]
name = "Uji"
code = "UJI"
[lapor]
base_url = "{base_url}"
{lapor_extra}
""", encoding="utf-8")
    return path


def test_check_config_names_a_bad_profile_key_and_exits_2(tmp_path: Path) -> None:
    config = minimal_config(tmp_path / "bridge.toml", BASE,
                            '[lapor.api.fields.complaint]\ncategory = ["kategori..nama"]')
    result = CliRunner().invoke(main, ["check-config", str(config)])
    assert result.exit_code == 2
    assert "lapor.api.fields" in result.output and "can never match" in result.output
    config.write_text(config.read_text().replace("kategori..nama", "kategori.nama"))
    assert CliRunner().invoke(main, ["check-config", str(config)]).exit_code == 0


def test_a_profile_file_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "ours.toml").write_text(
        'name = "ours"\nextends = "lapor-v3"\n[fields.complaint]\ntitle = ["judul"]\n')
    config = minimal_config(tmp_path / "bridge.toml", BASE, 'api_profile = "ours.toml"')
    from bridge.config import load_settings

    settings = load_settings(config, env={})
    assert profile_of(settings.lapor).candidates("complaint", "title") == ("judul",)
    assert load_profile(str(tmp_path / "ours.toml")).extends == "lapor-v3"


# ---------------------------------------------------------------- the v3 shapes


def v3_item(rid: int, **over: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": rid, "tracking_id": 1_916_000 + rid, "title": "Jalan rusak", "content": "Isi",
        "status_code": 1, "status_name": "Terverifikasi",
        "disposition_id": {"id": 1, "name": "DPMPTSP"},
        "is_anonymous": "0", "is_secret": False,
        "category": {"id": 11, "name": "Perizinan"}, "location": {"id": 3, "name": "Klaten"},
        "channel": 13, "user": {"id": 99, "name": "Budi", "email": "budi@example.id"},
        "created_at": "02-11-2026 08:15:00", "updated_at": "29-11-2026 09:00:01",
    }
    item.update(over)
    return item


def test_v3_shapes_are_read_and_coerced() -> None:
    client = client_for()
    with respx.mock(base_url=BASE) as router:
        router.get("/complaints/inbox").mock(return_value=httpx.Response(200, json={
            "results": {"data": [v3_item(1), v3_item(2, is_anonymous=True),
                                 v3_item(3, is_anonymous=1, user="Siti Anonim")],
                        "next_page_url": None}}))
        page = client.inbox_page(None)
    assert page.rejected == []
    one, anon, anon_text = page.items
    assert (one.category, one.location, one.channel) == ("Perizinan", "Klaten", "13")
    assert one.disposition_id == 1 and one.disposition_name is None
    assert one.reporter is not None and one.reporter.name == "Budi"
    assert one.created_at.isoformat() == "2026-11-02T01:15:00+00:00"  # d-m-Y in Jakarta
    assert one.is_anonymous is False and anon.is_anonymous is True
    # No identity of an anonim reporter in the model or the raw payload, whatever the key.
    assert anon.reporter is None and anon_text.reporter is None
    assert "Budi" not in json.dumps(page.sources["2"])
    assert "Siti" not in json.dumps(page.sources["3"])
    assert page.sources["2"]["user"] == {"id": 99}


@pytest.mark.parametrize("answer", [
    {"complaint_id": 77},
    {"data": {"complaint_id": "77"}},
    {"data": {"results": {"complaint": {"id": 77}}}},
    {"results": {"id": 77}},
])
def test_the_new_complaint_id_is_found_under_each_known_key(answer: dict[str, Any]) -> None:
    client = client_for()
    with respx.mock(base_url=BASE) as router:
        router.post("/complaints/complaint").mock(return_value=httpx.Response(200, json=answer))
        assert client.create_complaint(
            NewComplaintRequest(title="t", content="c", channel="surat")) == 77


def test_create_without_any_known_id_names_every_key_tried() -> None:
    from bridge.lapor.errors import MalformedOutcome

    client = client_for()
    with respx.mock(base_url=BASE) as router:
        router.post("/complaints/complaint").mock(
            return_value=httpx.Response(200, json={"ok": True}))
        with pytest.raises(MalformedOutcome, match="complaint_id \\| data.complaint_id"):
            client.create_complaint(NewComplaintRequest(title="t", content="c", channel="surat"))


def test_a_correction_in_config_without_code() -> None:
    # A server that names the title "judul" and nests times: fixed in [lapor.api] alone.
    item = v3_item(5)
    item["judul"] = item.pop("title")
    with respx.mock(base_url=BASE) as router:
        router.get("/complaints/inbox").mock(return_value=httpx.Response(200, json={
            "results": {"data": [item]}}))
        fixed = client_for(api={"fields": {"complaint": {"title": ["judul"]}}})
        assert fixed.inbox_page(None).items[0].title == "Jalan rusak"
        item2 = dict(item, judul=None)
        item2.pop("judul")
        router.get("/complaints/inbox").mock(return_value=httpx.Response(200, json={
            "results": {"data": [item2]}}))
        page = client_for().inbox_page(None)
    assert [r.reason for r in page.rejected] == ["title: missing (tried title | judul)"]


# ---------------------------------------------------------------- privacy in every table


def test_no_identity_of_an_anonim_reporter_in_any_table(runtime_factory: Any,
                                                        dialect: str) -> None:
    with SandboxServer(seed=4, reports=60, bearer=TEST_BEARER, token=TEST_TOKEN,
                       dialect=dialect) as sandbox:
        anonim = [r for r in sandbox.state.reports() if r["is_anonymous"]]
        assert anonim
        # What the v3 sandbox sends for them under "user" (it sends the identity).
        identities = set()
        for r in anonim:
            wire = sandbox.state.dialect.report(r)
            person = wire.get("user") or wire.get("reporter") or {}
            # Names repeat across made-up people; e-mails and phones identify.
            identities.update(v for k, v in person.items() if k in ("email", "phone"))
        if dialect == "lapor-v3":
            assert identities, "the v3 sandbox must put anonim identities on the wire"
        rt = runtime_factory(sandbox.url, dialect=dialect)
        run_cycle(rt)
        found: list[str] = []
        with rt.engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    blob = json.dumps([str(v) for v in row], ensure_ascii=False)
                    found += [f"{table}: {i}" for i in identities if i and i in blob]
        assert found == []
        with rt.sessions() as s:
            from bridge.store.models import Case
            assert s.scalar(select(Case).where(Case.is_anonymous.is_(True))) is not None


# ---------------------------------------------------------------- probe


@pytest.fixture
def probe_config(tmp_path: Path, dialect: str) -> Iterator[tuple[Path, SandboxServer]]:
    with SandboxServer(seed=2, reports=12, bearer=TEST_BEARER, token=TEST_TOKEN,
                       dialect=dialect) as sandbox:
        config = tmp_path / "bridge.toml"
        config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "{sandbox.url}"
api_profile = "{dialect}"
requests_per_second = 500
""", encoding="utf-8")
        yield config, sandbox


def probe(config: Path, *args: str) -> Any:
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    return CliRunner().invoke(main, ["probe", "--config", str(config), *args], env=env)


def test_probe_against_the_sandbox_in_each_dialect(probe_config: tuple[Path, SandboxServer],
                                                   tmp_path: Path) -> None:
    config, sandbox = probe_config
    rid = sandbox.state.inbox_ids()[0]
    result = probe(config, "--case", str(rid), "--save", str(tmp_path / "saved"))
    assert result.exit_code == 0, result.output
    for endpoint in ("institutions", "templates", "inbox", "complaint", "followups"):
        assert f"\n{endpoint}" in "\n" + result.output
    assert "MISMATCH" not in result.output
    saved = {p.name: p.read_text() for p in (tmp_path / "saved").iterdir()}
    assert {"inbox.json", "complaint.json", "followups.json"} <= set(saved)
    blob = "".join(saved.values())
    assert TEST_BEARER not in blob and TEST_TOKEN not in blob
    people = [r for r in sandbox.state.reports() if r.get("reporter")]
    assert not any(p["reporter"]["email"] in blob for p in people)
    # It never wrote to LAPOR!.
    assert not sandbox.state.writes


def test_probe_names_the_field_and_every_path_tried(probe_config: tuple[Path, SandboxServer]
                                                   ) -> None:
    config, _ = probe_config
    config.write_text(config.read_text() + """
[lapor.api.fields.complaint]
title = ["judul", "subject"]
""", encoding="utf-8")
    result = probe(config)
    assert result.exit_code == 1, result.output
    assert "inbox" in result.output and "MISMATCH" in result.output
    assert "title: no candidate matched (tried judul | subject)" in result.output


def test_probe_on_a_server_without_inbox(tmp_path: Path) -> None:
    with SandboxServer(seed=2, reports=3, bearer=TEST_BEARER, token=TEST_TOKEN,
                       paths={"inbox_path": ""}) as sandbox:
        config = minimal_config(tmp_path / "bridge.toml", sandbox.url)
        result = probe(config)
        assert result.exit_code == 1 and "HTTP 404" in result.output
        assert 'inbox_path = ""' in result.output
        minimal_config(config, sandbox.url, 'inbox_path = ""')
        result = probe(config)
        assert result.exit_code == 0, result.output
        assert "tracking known cases only" in result.output


def test_parse_item_is_the_same_path_as_a_listing() -> None:
    client = client_for()
    item, refusal = client.parse_item(v3_item(9), RemoteComplaint)
    assert refusal is None and item is not None and item.category == "Perizinan"
    item, refusal = client.parse_item(v3_item(9, created_at="kemarin"), RemoteComplaint)
    assert item is None and refusal is not None and refusal.reason.startswith("created_at")
