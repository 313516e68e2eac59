"""``/ringkasan``: each body's lag, outbox depth, dead letters and quarantine for admins,
on a one-body page (one row) and on a Pemda (every body the admin administers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bridge.services.members import create_member
from bridge.store.models import OutboxRow, QuarantinedItem, SyncCursor
from bridge.sync.pull import INBOX
from bridge.web.pemda import create_pemda_app
from bridge.web.routes.overview import span
from tests.support.pemda_web import PASSWORD, new_case, pemda_deployment, sign_in
from tests.support.web import build_env


def cells(html: str, code: str) -> dict[str, str]:
    """The summary row of ``code``: its cells' text by class."""
    row = re.search(rf'<tr data-kode="{code}"[^>]*>(.*?)</tr>', html, re.S)
    assert row, f"no row for {code}"
    return {cls: re.sub(r"<[^>]+>", "", text).strip()
            for cls, text in re.findall(r'<td [^>]*class="(\w+)">(.*?)</td>', row.group(1),
                                        re.S)}


def kill_one(sessions: Any) -> None:
    """One outbox row becomes a dead letter, as the push leaves it after its attempts."""
    with sessions() as s, s.begin():
        row = s.scalars(select(OutboxRow).order_by(OutboxRow.id)).first()
        assert row is not None
        row.status, row.last_error = "dead", "HTTP 422 dari LAPOR!"


def quarantine_one(sessions: Any) -> None:
    with sessions() as s, s.begin():
        s.add(QuarantinedItem(stream=INBOX, remote_id="9001", reason="bad date",
                              payload="{}"))


def test_span_reads_as_staff_read_it() -> None:
    assert [span(None), span(5), span(600), span(3 * 3600), span(3 * 86400)] == \
        ["-", "5 detik", "10 menit", "3 jam", "3 hari"]


def test_one_body_admin_sees_one_row(tmp_path: Path) -> None:
    env = build_env(f"sqlite:///{tmp_path / 'w.db'}")
    env.case()
    env.case(title="Jalan rusak")
    kill_one(env.rt.sessions)
    quarantine_one(env.rt.sessions)
    with env.rt.sessions() as s, s.begin():
        now = datetime.fromtimestamp(env.clock(), UTC)
        s.add(SyncCursor(stream=INBOX, updated_since=now - timedelta(minutes=10),
                         last_success_at=now))

    admin = env.login("admin")
    page = admin.get("/ringkasan")
    assert page.status_code == 200
    env.clock.advance(3 * 3600)
    assert cells(admin.get("/ringkasan").text, env.rt.body_code
                 or env.rt.settings.regency.code)["lag"] == "3 jam"
    code = env.rt.body_code or env.rt.settings.regency.code
    row = cells(page.text, code)
    assert row == {"lag": "10 menit", "antre": "1", "gagal": "1", "karantina": "1"}
    assert 'href="/ringkasan"' in page.text
    assert 'class="jumlah"' not in page.text  # one body: no total row

    kasi = env.login("kasi")
    assert kasi.get("/ringkasan").status_code == 403
    assert 'href="/ringkasan"' not in kasi.get("/antrean").text


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, TestClient]]:
    with pemda_deployment(tmp_path, monkeypatch) as (dep, accounts):
        with accounts() as s, s.begin():
            # The Diskominfo's operator administers every body.
            roles = ["petugas", "analis", "kasi", "admin"]
            create_member(s, "kominfo", "Operator Diskominfo", "DPM", ["admin"], PASSWORD,
                          roles)
            from bridge.services.members import set_body_roles

            set_body_roles(s, "kominfo", "DLH", ["admin"], roles)
        app = create_pemda_app(dep, accounts)  # type: ignore[arg-type]
        yield dep, TestClient(app, base_url="http://testserver")


def test_pemda_summary_lists_each_administered_body(site: tuple[Any, TestClient]) -> None:
    dep, client = site
    dpm, dlh = dep.runtime("DPM"), dep.runtime("DLH")
    for title in ("Izin usaha", "Reklame liar", "Parkir"):
        new_case(dpm, title)
    new_case(dlh, "Sampah pasar")
    kill_one(dpm.sessions)
    quarantine_one(dlh.sessions)
    quarantine_one(dlh.sessions)

    sign_in(client, "kominfo")
    page = client.get("/b/DLH/ringkasan")
    assert page.status_code == 200
    dpm_row, dlh_row = cells(page.text, "DPM"), cells(page.text, "DLH")
    with dpm.sessions() as s:
        dpm_rows = len(s.scalars(select(OutboxRow.id).where(
            OutboxRow.status.in_(("pending", "waiting")))).all())
    with dlh.sessions() as s:
        dlh_rows = len(s.scalars(select(OutboxRow.id).where(
            OutboxRow.status.in_(("pending", "waiting")))).all())
    assert dpm_rows > 0 and dlh_rows > 0
    assert dpm_row == {"lag": "-", "antre": str(dpm_rows), "gagal": "1", "karantina": "0"}
    assert dlh_row == {"lag": "-", "antre": str(dlh_rows), "gagal": "0", "karantina": "2"}
    total = re.search(r'<tr class="jumlah">(.*?)</tr>', page.text, re.S)
    assert total and f">{dpm_rows + dlh_rows}<" in total.group(1)
    assert 'href="/b/DLH/ringkasan"' in page.text


def test_pemda_summary_shows_only_the_bodies_one_administers(
        site: tuple[Any, TestClient]) -> None:
    _dep, client = site
    sign_in(client, "plt")  # admin in DLH, analis in DPM
    page = client.get("/b/DLH/ringkasan")
    assert page.status_code == 200
    assert 'data-kode="DLH"' in page.text and 'data-kode="DPM"' not in page.text
    assert client.get("/b/DPM/ringkasan").status_code == 403
    assert 'href="/b/DPM/ringkasan"' not in client.get("/b/DPM/antrean").text
