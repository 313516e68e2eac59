"""The staff page of a Pemda: every body under /b/<code>/, the accounts in the
deployment's database with roles per body, a forward's progress on the sender's case and
the receiver giving a case back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bridge.services.internal_forward import RETURNED
from bridge.store.models import Case, InternalForward
from bridge.web.pemda import create_pemda_app
from tests.support.pemda_web import KASI, deliver, new_case, pemda_deployment, sign_in
from tests.support.web import csrf_of, version_of


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient]]:
    with pemda_deployment(tmp_path, monkeypatch) as (dep, accounts):
        app = create_pemda_app(dep, accounts)  # type: ignore[arg-type]
        yield dep, TestClient(app, base_url="http://testserver")


def test_each_user_sees_only_their_bodies(site: tuple[Any, TestClient]) -> None:
    dep, client = site
    dpm_case = new_case(dep.runtime("DPM"), "Izin usaha tanpa amdal")
    dlh_case = new_case(dep.runtime("DLH"), "Sampah menumpuk di pasar")

    # budi is DLH's only: signing in on DPM's page leads him to DLH's queue.
    r = sign_in(client, "budi")
    assert r.headers["location"] == "/b/DLH/antrean"
    page = client.get("/b/DLH/antrean")
    assert page.status_code == 200 and "Sampah menumpuk di pasar" in page.text
    assert "Izin usaha tanpa amdal" not in page.text
    assert 'data-badan="DLH"' in page.text and 'data-badan="DPM"' not in page.text
    assert client.get(f"/b/DLH/kasus/{dlh_case}").status_code == 200
    # Another body's case, queue and outbox: refused.
    assert client.get(f"/b/DPM/kasus/{dpm_case}").status_code == 403
    assert client.get("/b/DPM/antrean").status_code == 403
    assert client.get("/b/DPM/kotak-keluar").status_code == 403
    assert client.get("/b/XYZ/antrean").status_code == 404
    # The site's root leads to the user's first body.
    r = client.get("/", follow_redirects=False)
    assert r.headers["location"] == "/b/DLH/antrean"


def test_roles_are_per_body(site: tuple[Any, TestClient]) -> None:
    dep, client = site
    sign_in(client, "plt")
    dpm = client.get("/b/DPM/antrean")
    dlh = client.get("/b/DLH/antrean")
    assert dpm.status_code == dlh.status_code == 200
    assert 'data-badan="DPM"' in dpm.text and 'data-badan="DLH"' in dpm.text
    assert role_shown(dpm.text) == dep.runtime("DPM").workflow.role_label("analis")
    assert role_shown(dlh.text) == "Admin"
    # Links inside a body's page stay under it.
    assert 'href="/b/DLH/kotak-keluar"' in dlh.text and 'href="/kotak-keluar"' not in dlh.text


def role_shown(html: str) -> str:
    found = re.search(r'class="peran">([^<]*)<', html)
    assert found
    return found.group(1).strip()


def test_sign_in_is_required_and_kept_under_the_body(site: tuple[Any, TestClient]) -> None:
    _dep, client = site
    r = client.get("/b/DLH/kasus/1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/b/DLH/masuk?next=/b/DLH/kasus/1")


def test_forward_shows_on_sender_and_receiver_may_return_it(
        site: tuple[Any, TestClient]) -> None:
    dep, client = site
    dpm, dlh = dep.runtime("DPM"), dep.runtime("DLH")
    case_id = new_case(dpm, "Limbah pabrik tahu")
    dpm.actions().forward(case_id, KASI, "DLH", tembusan=["Pelapor"], note="Kewenangan DLH")

    sign_in(client, "sari")
    page = client.get(f"/b/DPM/kasus/{case_id}")
    assert "Penerusan ke OPD lain" in page.text and "Menunggu dikirim" in page.text

    deliver(dpm)
    with dlh.sessions() as s:
        got = s.scalars(select(Case).where(Case.title == "Limbah pabrik tahu")).one()
        dlh_id, stage = got.id, got.stage
    page = client.get(f"/b/DPM/kasus/{case_id}")
    assert 'class="tahap-tujuan"' in page.text
    assert dlh.workflow.stage_label(stage) in page.text
    # sari (DPM) may not open DLH's copy.
    assert client.get(f"/b/DLH/kasus/{dlh_id}").status_code == 403

    client.post("/b/DPM/keluar", data={"csrf_token": csrf_of(page.text)})
    sign_in(client, "budi")
    queue = client.get("/b/DLH/antrean")
    assert "Limbah pabrik tahu" in queue.text
    mine = client.get(f"/b/DLH/kasus/{dlh_id}")
    assert "Kembalikan ke pengirim (DPM)" in mine.text
    # The reason is required; nothing changes without it.
    r = client.post(f"/b/DLH/kasus/{dlh_id}/kembalikan", data={
        "csrf_token": csrf_of(mine.text), "versi": version_of(mine.text), "alasan": " "},
        follow_redirects=False)
    assert r.headers["location"] == f"/b/DLH/kasus/{dlh_id}"
    assert "Tuliskan alasan" in client.get(f"/b/DLH/kasus/{dlh_id}").text
    mine = client.get(f"/b/DLH/kasus/{dlh_id}")
    r = client.post(f"/b/DLH/kasus/{dlh_id}/kembalikan", data={
        "csrf_token": csrf_of(mine.text), "versi": version_of(mine.text),
        "alasan": "Izin lingkungan di DPMPTSP"}, follow_redirects=False)
    assert r.status_code == 303
    after = client.get(f"/b/DLH/kasus/{dlh_id}")
    assert "Pengaduan dikembalikan kepada pengirim" in after.text
    assert "Kembalikan ke pengirim (DPM)" not in after.text

    forwarding = dpm.forwarding()
    assert forwarding is not None
    forwarding.follow()
    with dpm.sessions() as s:
        row = s.scalars(select(InternalForward).where(InternalForward.case_id == case_id)).one()
        assert row.status == RETURNED


def test_return_needs_a_deciding_role(site: tuple[Any, TestClient], tmp_path: Path) -> None:
    dep, client = site
    dpm = dep.runtime("DPM")
    case_id = new_case(dpm, "Jalan rusak")
    dpm.actions().forward(case_id, KASI, "DLH", tembusan=[])
    deliver(dpm)
    with dep.runtime("DLH").sessions() as s:
        dlh_id = s.scalars(select(Case.id).where(Case.title == "Jalan rusak")).one()
    sign_in(client, "plt")  # admin in DLH: not a role that decides forwards
    page = client.get(f"/b/DLH/kasus/{dlh_id}")
    assert "Kembalikan ke pengirim" not in page.text
    r = client.post(f"/b/DLH/kasus/{dlh_id}/kembalikan", data={
        "csrf_token": csrf_of(page.text), "versi": "1", "alasan": "bukan"})
    assert r.status_code == 403


def test_one_body_page_is_unchanged(tmp_path: Path) -> None:
    from bridge.web.pemda import _Prefixed

    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["root_path"])
        await send({"type": "http.response.start", "status": 303,
                    "headers": [(b"location", b"/kasus/3")]})
        await send({"type": "http.response.body", "body": b""})

    r = TestClient(_Prefixed(app, "/b/DLH")).get("/b/DLH/x", follow_redirects=False)
    assert r.headers["location"] == "/b/DLH/kasus/3" and seen == ["/b/DLH"]
