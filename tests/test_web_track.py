""""Lacak ID LAPOR!" on the queue page: adopt a report by id, against the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.lapor.sandbox import SandboxServer
from bridge.runtime import Runtime
from bridge.store.models import Case, TrackedCase
from bridge.web.app import create_app
from bridge.web.settings import SigningKey, WebSettings
from tests.support.clock import Clock
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings
from tests.support.web import Env, csrf_of


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Env, SandboxServer]]:
    with SandboxServer(seed=9, reports=4, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'web.db'}", sandbox.url,
                                   lapor={"inbox_path": ""}))
        clock = Clock()
        ws = WebSettings(poll_seconds=1)
        app = create_app(rt, web=ws, key=SigningKey("k" * 48, "test"), clock=clock)
        e = Env(rt, clock, ws, app)
        yield e, sandbox
        for c in e.clients:
            c.close()
        rt.close()


def _cases(env: Env) -> int:
    with env.rt.sessions() as s:
        return s.scalar(select(func.count()).select_from(Case)) or 0


def test_track_form_adopts_a_report(env: tuple[Env, SandboxServer]) -> None:
    e, sandbox = env
    lapor_id = sandbox.state.reports()[2]["id"]
    c = e.login("petugas")
    page = c.get("/antrean")
    assert "Lacak ID LAPOR!" in page.text
    r = c.post("/antrean/lacak", data={"csrf_token": csrf_of(page.text),
                                       "lapor_id": str(lapor_id)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/kasus/")
    shown = c.get(r.headers["location"])
    assert f"Laporan LAPOR! {lapor_id} dilacak sebagai UJI/ADU/" in shown.text
    with e.rt.sessions() as s:
        tracked = s.get(TrackedCase, lapor_id)
        assert tracked is not None and tracked.origin == "adopted"
    # The queue lists it.
    assert sandbox.state.report(lapor_id)["title"][:30] in c.get("/antrean").text


def test_unknown_id_and_bad_input_store_nothing(env: tuple[Env, SandboxServer]) -> None:
    e, _sandbox = env
    c = e.login("petugas")
    for value, message in (("777777", "LAPOR! tidak mengenal ID 777777"),
                           ("12ab", "ID LAPOR! berupa angka")):
        page = c.get("/antrean")
        r = c.post("/antrean/lacak", data={"csrf_token": csrf_of(page.text),
                                           "lapor_id": value}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/antrean"
        text = c.get("/antrean").text
        assert message in text and "Tidak ada yang disimpan" in text
    assert _cases(e) == 0
    # Without a CSRF token: refused.
    assert c.post("/antrean/lacak", data={"lapor_id": "1"}).status_code == 403


def test_only_intake_roles_may_track(env: tuple[Env, SandboxServer]) -> None:
    e, sandbox = env
    c = e.login("kepala_dinas")
    page = c.get("/antrean")
    assert "Lacak ID LAPOR!" not in page.text
    r = c.post("/antrean/lacak", data={"csrf_token": csrf_of(page.text),
                                       "lapor_id": str(sandbox.state.reports()[0]["id"])})
    assert r.status_code == 403 and "tidak berwenang melacak" in r.text
    assert _cases(e) == 0
