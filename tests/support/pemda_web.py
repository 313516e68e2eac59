"""A Pemda of two bodies on SQLite (DPM sends, DLH receives) for the staff page tests:
the deployment, its accounts database, and helpers to make and forward a case."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from bridge.app.deployment import Deployment
from bridge.config import load_settings
from bridge.runtime import Runtime
from bridge.services.actions import Actor, NewCase
from bridge.services.members import create_member
from bridge.store.db import make_engine, session_factory
from bridge.store.schema import ensure_schema
from tests.support.settings import TEST_BEARER, TEST_TOKEN
from tests.support.web import csrf_of

PASSWORD = "kata-sandi-uji-panjang"
PETUGAS = Actor("Sari (front office)", "petugas")
KASI = Actor("Dewi (kasi)", "kasi")

CONFIG = """
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "http://127.0.0.1:9"
bearer_header = "Authorization"

[database]
url = "sqlite:///{db}"

[[bodies]]
code = "DPM"
name = "DPMPTSP Kabupaten Uji"
institution_id = 101

[[bodies]]
code = "DLH"
name = "Dinas Lingkungan Hidup"
institution_id = 102
"""


@contextmanager
def pemda_deployment(tmp: Path, monkeypatch: pytest.MonkeyPatch
                     ) -> Iterator[tuple[Deployment, object]]:
    monkeypatch.setenv("LAPOR_BRIDGE_BEARER", TEST_BEARER)
    monkeypatch.setenv("LAPOR_BRIDGE_TOKEN", TEST_TOKEN)
    monkeypatch.setenv("LAPOR_BRIDGE_WEB_SECRET", "k" * 40)
    path = tmp / "pemda.toml"
    path.write_text(CONFIG.format(db=tmp / "pemda.db"), encoding="utf-8")
    settings = load_settings(str(path))
    engine = make_engine(settings.database.url)
    ensure_schema(engine)
    accounts = session_factory(engine)
    roles = ["petugas", "analis", "kasi", "admin"]
    with accounts() as s, s.begin():
        create_member(s, "sari", "Sari DPM", "DPM", ["petugas", "kasi"], PASSWORD, roles)
        create_member(s, "budi", "Budi DLH", "DLH", ["kasi"], PASSWORD, roles)
        create_member(s, "plt", "Plt Dua Badan", "DPM", ["analis"], PASSWORD, roles)
        from bridge.services.members import set_body_roles

        set_body_roles(s, "plt", "DLH", ["admin"], roles)
    try:
        with Deployment(settings) as dep:
            yield dep, accounts
    finally:
        engine.dispose()


def new_case(rt: Runtime, title: str) -> int:
    acts = rt.actions()
    case_id = acts.new_case(NewCase(title=title, content="Limbah cair dibuang ke selokan.",
                                    channel="surat", reporter={"name": "Siti"}),
                            PETUGAS).case_id
    acts.register(case_id, PETUGAS)
    acts.files_complete(case_id, PETUGAS)
    return case_id


def deliver(rt: Runtime) -> None:
    """What the sender's sync cycle does with its internal forwards."""
    forwarding = rt.forwarding()
    assert forwarding is not None
    forwarding.deliver()


def sign_in(client: TestClient, username: str) -> Any:
    """Sign ``username`` in on the Pemda's page (through DPM's form: one cookie for all)."""
    token = csrf_of(client.get("/masuk").text)
    r = client.post("/b/DPM/masuk", data={"username": username, "password": PASSWORD,
                                           "csrf_token": token, "next": "/antrean"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return r
