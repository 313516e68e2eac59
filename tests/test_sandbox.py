"""The LAPOR! sandbox over real HTTP: contract, admin API, determinism and every fault."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from bridge.lapor.models import (
    ComplaintDetail,
    RemoteComplaint,
    RemoteFollowup,
    parse_remote_time,
)
from bridge.lapor.sandbox import (
    SANDBOX_BEARER,
    SANDBOX_TOKEN,
    SandboxServer,
    SandboxState,
    SandboxValidationError,
)
from bridge.lapor.sandbox.seed import LOCATION_TEXT, OUR_NAME, STATUS_NAMES

ANCHOR = datetime(2025, 3, 1, tzinfo=UTC)
INBOX = "/complaints/inbox"
OTHER_BODY = 102  # the first OPD after the regency's LAPOR! admin (101)


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    # The wire shapes checked here are the flat dialect's; lapor-v3's are checked below.
    with SandboxServer(seed=11, reports=120, anchor=ANCHOR, dialect="lapor-flat") as srv:
        yield srv


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "server" in request.fixturenames:
        request.getfixturevalue("server").state.set_faults()


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.auth_headers(), timeout=10) as c:
        yield c


@pytest.fixture
def admin(server: SandboxServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.admin_url, timeout=10) as c:
        yield c


def page_all(client: httpx.Client, params: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """Follow next_page_url from the first page; returns the items and the page count."""
    items: list[dict[str, Any]] = []
    url: str | None = INBOX
    query: dict[str, Any] | None = params
    pages = 0
    while url:
        r = client.get(url, params=query)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        items += results["data"]
        url, query = results["next_page_url"], None
        pages += 1
    return items, pages


def newest_ids(client: httpx.Client, since: str) -> list[int]:
    """Ids listed from ``since`` on (reports changed in the same second tie-break by id)."""
    r = client.get(INBOX, params={"page_size": 1000, "updated_since": since})
    return [i["id"] for i in r.json()["results"]["data"]]


def followup_form(complaint_id: int, content: str = "Sedang kami tindak lanjuti.",
                  **extra: str) -> dict[str, str]:
    return {"complaint_id": str(complaint_id), "user_id": "7", "institution_from_id": "1",
            "institution_to_id": "101", "template_code": "TL-PROSES", "rating": "0",
            "is_secret": "0", "content": content, **extra}


# ---------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [
    {},
    {"token": SANDBOX_TOKEN},
    {"auth": f"Bearer {SANDBOX_BEARER}"},
    {"Authorization": f"Bearer {SANDBOX_BEARER}"},
    {"auth": "Bearer wrong", "token": SANDBOX_TOKEN},
    {"Authorization": "Bearer wrong", "token": SANDBOX_TOKEN},
    {"auth": SANDBOX_BEARER, "token": SANDBOX_TOKEN},
    {"auth": f"Bearer {SANDBOX_BEARER}", "token": "{11111111-0000-4000-8000-000000000000}"},
    {"Authorization": f"Bearer {SANDBOX_BEARER}", "token": "wrong"},
])
def test_auth_refused(server: SandboxServer, headers: dict[str, str]) -> None:
    for method, path in (("GET", INBOX), ("GET", "/masters/templates"),
                         ("POST", "/complaints/followup/add")):
        r = httpx.request(method, server.url + path, headers=headers)
        assert r.status_code == 401
        assert r.json() == {"message": "Unauthenticated."}


@pytest.mark.parametrize("name", ["auth", "Authorization"])
def test_auth_accepts_either_header_by_default(server: SandboxServer, name: str) -> None:
    r = httpx.get(server.url + INBOX, headers=server.auth_headers(name))
    assert r.status_code == 200


def test_configured_header_name_and_paths() -> None:
    paths = {"inbox_path": "/v3/complaints/inbox", "templates_path": "/v3/templates"}
    with SandboxServer(reports=5, bearer_header="auth", paths=paths, prefix="/lapor/3.0.0",
                       bearer="other-bearer") as srv:
        assert srv.url.endswith("/lapor/3.0.0")
        ok = httpx.get(srv.url + "/v3/complaints/inbox", headers=srv.auth_headers("auth"))
        assert ok.status_code == 200 and ok.json()["results"]["total"] == 5
        refused = httpx.get(srv.url + "/v3/complaints/inbox",
                            headers=srv.auth_headers("Authorization"))
        assert refused.status_code == 401
        moved = httpx.get(srv.url + INBOX, headers=srv.auth_headers())
        assert moved.status_code == 404 and "message" in moved.json()
        settings = srv.settings(inbox_path="/v3/complaints/inbox")
        assert settings.base_url == srv.url and settings.bearer_header == "auth"
        bearer = srv.secrets().bearer
        assert bearer is not None and bearer.get_secret_value() == "other-bearer"


def test_bad_configuration_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="bearer_header"):
        SandboxServer(reports=0, bearer_header="X-Auth")
    with pytest.raises(ValueError, match="unknown sandbox path 'inbox'"):
        SandboxServer(reports=0, paths={"inbox": "/x"})


# ---------------------------------------------------------------------- inbox


def test_inbox_pages_in_order(server: SandboxServer, client: httpx.Client) -> None:
    items, pages = page_all(client, {"page_size": 25})
    assert pages == -(-len(server.state.inbox_ids()) // 25)
    assert [i["id"] for i in items] == server.state.inbox_ids()
    parsed = [RemoteComplaint.model_validate(i) for i in items]
    keys = [(c.updated_at, c.id) for c in parsed]
    assert keys == sorted(keys)
    assert all(i["updated_at"].endswith("+07:00") for i in items)

    first = client.get(INBOX, params={"page_size": 25}).json()["results"]
    assert first["current_page"] == 1 and first["per_page"] == 25
    assert first["total"] == len(items)
    nxt = httpx.URL(first["next_page_url"])
    assert str(nxt).startswith(server.url + INBOX)
    assert nxt.params["page"] == "2" and nxt.params["page_size"] == "25"
    last = client.get(INBOX, params={"page_size": 25, "page": pages}).json()["results"]
    assert last["next_page_url"] is None
    beyond = client.get(INBOX, params={"page_size": 25, "page": pages + 1}).json()["results"]
    assert beyond["data"] == [] and beyond["next_page_url"] is None


def test_inbox_default_and_maximum_page_size(client: httpx.Client) -> None:
    assert len(client.get(INBOX).json()["results"]["data"]) == 10
    assert client.get(INBOX, params={"page_size": 5000}).json()["results"]["per_page"] == 1000
    for bad in ({"page": "x"}, {"page_size": "0"}, {"updated_since": "kemarin"}):
        r = client.get(INBOX, params=bad)
        assert r.status_code == 422
        assert set(r.json()["errors"]) == set(bad)


def test_updated_since_is_inclusive(server: SandboxServer, client: httpx.Client) -> None:
    everything = page_all(client, {"page_size": 1000})[0]
    pivot = everything[len(everything) // 2]
    since = pivot["updated_at"]
    expected = [i["id"] for i in everything if parse_remote_time(i["updated_at"])
                >= parse_remote_time(since)]
    items, pages = page_all(client, {"page_size": 7, "updated_since": since})
    assert [i["id"] for i in items] == expected
    assert pivot["id"] in expected and pages > 1
    # The same instant written in other ways selects the same reports.
    as_utc = parse_remote_time(since).isoformat()
    local = parse_remote_time(since).astimezone(datetime.now().astimezone().tzinfo)
    for form in (as_utc, parse_remote_time(since).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 local.isoformat()):
        same = client.get(INBOX, params={"page_size": 1000, "updated_since": form})
        assert [i["id"] for i in same.json()["results"]["data"]] == expected
    # An unencoded "+07:00" (a space after form decoding) is still understood.
    raw = client.get(f"{INBOX}?page_size=1000&updated_since={since}")
    assert [i["id"] for i in raw.json()["results"]["data"]] == expected


# ---------------------------------------------------------------------- seeding


def test_seeding_is_deterministic_and_realistic() -> None:
    a = SandboxState(seed=5, reports=2000, anchor=ANCHOR)
    b = SandboxState(seed=5, reports=2000, anchor=ANCHOR)
    c = SandboxState(seed=6, reports=2000, anchor=ANCHOR)
    assert a.reports() == b.reports()
    assert a.followups_of(77) == b.followups_of(77)
    assert a.inbox_ids() == b.inbox_ids()
    assert a.reports() != c.reports()

    reports = a.reports()
    parsed = [RemoteComplaint.model_validate(r) for r in reports]
    anonymous = [r for r in reports if r["is_anonymous"]]
    secret = [r for r in reports if r["is_secret"]]
    assert 0.06 < len(anonymous) / len(reports) < 0.14
    assert all(r["reporter"] is None for r in anonymous)
    assert 0.10 < len(secret) / len(reports) < 0.20
    assert all(r["reporter"]["name"] and "@" in r["reporter"]["email"]
               for r in reports if not r["is_anonymous"])
    assert {len(r["attachments"]) for r in reports} == {0, 1, 2, 3}
    assert {r["category"] for r in reports} == {
        "Perizinan", "Lingkungan Hidup", "Ketertiban Umum", "Infrastruktur Jalan"}
    assert {r["status_code"] for r in reports} == set(STATUS_NAMES)
    assert all(r["status_name"] == STATUS_NAMES[r["status_code"]] for r in reports)
    assert all(re.fullmatch(r"(Kel\.|Desa) [A-Za-z ]+, Kec\. [A-Za-z]+", r["location"])
               for r in reports)
    assert len({r["tracking_id"] for r in reports}) == len(reports)
    for c_ in parsed:
        assert ANCHOR - timedelta(days=61) < c_.created_at <= c_.updated_at < ANCHOR
        assert c_.created_at.microsecond == 0
    assert len({r["title"] for r in reports}) > 500
    assert all(len(r["content"]) > 100 for r in reports)


def test_seeded_history_matches_the_report(server: SandboxServer, client: httpx.Client) -> None:
    state = server.state
    in_progress = next(r for r in state.reports() if r["status_code"] == "3")
    detail = client.get(f"/complaints/{in_progress['id']}/complaint").json()["results"]
    assert ComplaintDetail.model_validate(detail["data"]).status_name == "Selesai"
    assert [log["status_code"] for log in detail["data"]["status_logs"]][-1] == "3"
    assert detail["data_logs"][0]["institution_to"] == {"id": 1, "name": OUR_NAME}
    followups = client.get(f"/complaints/{in_progress['id']}/followups").json()["results"]
    assert len(followups["data"]) >= 2
    for f in followups["data"]:
        RemoteFollowup.model_validate(f)
        assert re.fullmatch(r"\d\d-\d\d-\d{4} \d\d:\d\d:\d\d", f["created_at"])


# ---------------------------------------------------------------------- admin


def test_admin_add_and_change(server: SandboxServer, admin: httpx.Client,
                              client: httpx.Client) -> None:
    added = admin.post("/reports", json={}).json()
    RemoteComplaint.model_validate(added)
    assert added["disposition_id"] == 1 and added["status_code"] == "1"
    assert added["id"] in newest_ids(client, added["updated_at"])

    given = admin.post("/reports", json={
        "title": "Izin reklame di Jl. Pemuda", "category": "Perizinan", "is_anonymous": 1,
        "updated_at": "2025-02-27T10:00:00+07:00"}).json()
    assert given["title"] == "Izin reklame di Jl. Pemuda" and given["reporter"] is None
    assert given["updated_at"] == "2025-02-27T10:00:00+07:00"
    assert server.state.report(given["id"]) == given

    before = server.state.inbox_ids()
    changed = admin.patch(f"/reports/{before[0]}", json={"status_code": "3"}).json()
    assert changed["status_name"] == "Selesai"
    assert before[0] in newest_ids(client, changed["updated_at"])
    assert before[0] not in server.state.inbox_ids()[:-5]
    assert parse_remote_time(changed["updated_at"]) > parse_remote_time(
        server.state.report(before[1])["updated_at"])
    shown = admin.get(f"/reports/{before[0]}").json()
    assert shown["listed"] is True and shown["report"] == changed

    r = admin.patch(f"/reports/{before[1]}", json={"colour": "red"})
    assert r.status_code == 422 and "colour" in r.json()["errors"]
    r = admin.patch(f"/reports/{before[1]}", json={"is_secret": "maybe"})
    assert r.status_code == 422 and "is_secret" in r.json()["errors"]
    assert admin.patch("/reports/999999", json={"title": "x"}).status_code == 404
    assert admin.post("/reports", json=[1]).status_code == 422

    random = admin.post("/reports/random-changes", json={"count": 3}).json()["changed"]
    assert len(random) == 3
    assert set(random) <= set(newest_ids(client, changed["updated_at"]))

    summary = admin.get("/state").json()
    assert summary["reports"] == len(server.state.reports())
    assert summary["listed"] == len(server.state.inbox_ids())
    assert summary["faults"]["error_rate"] == 0 and summary["counters"]["admin_requests"] > 0


def test_python_api_from_the_test_thread(server: SandboxServer, client: httpx.Client) -> None:
    elsewhere = server.state.add_report(disposition_id=OTHER_BODY, title="Bukan untuk kita")
    ids = lambda: [i["id"] for i in page_all(client, {"page_size": 1000})[0]]  # noqa: E731
    assert elsewhere["id"] not in ids()
    server.state.change_report(elsewhere["id"], disposition_id=1)
    assert elsewhere["id"] in ids()
    # Once listed, a report stays in our inbox even when passed on.
    moved = server.state.change_report(elsewhere["id"], disposition_id=OTHER_BODY)
    assert elsewhere["id"] in newest_ids(client, moved["updated_at"])
    with pytest.raises(SandboxValidationError):
        server.state.change_report(elsewhere["id"], disposition_id=4242)


# ---------------------------------------------------------------------- writes


def test_followup_add_and_list(server: SandboxServer, client: httpx.Client,
                               admin: httpx.Client) -> None:
    rid = next(r["id"] for r in server.state.reports() if r["status_code"] == "1")
    before = server.state.report(rid)
    known = len(server.state.followups_of(rid))
    r = client.post("/complaints/followup/add", data=followup_form(rid),
                    files={"attachment[0]": ("foto.jpg", b"\xff\xd8" * 100, "image/jpeg"),
                           "attachment[1]": ("ba.pdf", b"%PDF-1.4", "application/pdf")})
    assert r.status_code == 200, r.text
    new_id = r.json()["results"]["data"]["id"]
    after = server.state.report(rid)
    assert after["status_code"] == "2" and after["status_name"] == "Dalam Proses"
    assert rid in newest_ids(client, after["updated_at"])
    assert parse_remote_time(after["updated_at"]) > parse_remote_time(before["updated_at"])

    for k in range(11):
        client.post("/complaints/followup/add", data=followup_form(rid, f"Catatan {k}"))
    page1 = client.get(f"/complaints/{rid}/followups").json()["results"]
    assert len(page1["data"]) == 10 and page1["total"] == known + 12
    page2 = client.get(page1["next_page_url"]).json()["results"]
    listed = page1["data"] + page2["data"]
    assert page2["next_page_url"] is None
    assert [f["id"] for f in listed] == sorted(f["id"] for f in listed)
    posted = next(f for f in listed if f["id"] == new_id)
    assert [a["name"] for a in posted["attachments"]] == ["foto.jpg", "ba.pdf"]
    assert posted["attachments"][0]["size"] == 200
    big = client.get(f"/complaints/{rid}/followups", params={"page_size": 50}).json()
    assert len(big["results"]["data"]) == known + 12
    assert admin.get(f"/reports/{rid}/followups").json() == listed


def test_followup_validation_and_unknown_complaint(server: SandboxServer,
                                                   client: httpx.Client) -> None:
    rid = server.state.inbox_ids()[0]
    count = len(server.state.followups_of(rid))
    missing = {k: v for k, v in followup_form(rid).items() if k != "content"}
    r = client.post("/complaints/followup/add", data=missing)
    assert r.status_code == 422
    assert r.json()["errors"] == {"content": ["Kolom content wajib diisi."]}
    assert r.json()["message"] == "Kolom content wajib diisi."
    r = client.post("/complaints/followup/add",
                    data=followup_form(rid, institution_to_id="4242", rating="9"))
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"institution_to_id", "rating"}
    assert "(dan 1 kesalahan lainnya)" in r.json()["message"]
    assert len(server.state.followups_of(rid)) == count
    r = client.post("/complaints/followup/add", data=followup_form(999_999))
    assert r.status_code == 404 and "999999" in r.json()["message"]
    assert client.get("/complaints/999999/followups").status_code == 404
    assert client.get("/complaints/abc/complaint").status_code == 404


def test_forward_bukan_wewenang(server: SandboxServer, client: httpx.Client) -> None:
    rid = next(r["id"] for r in server.state.reports() if r["disposition_id"] == 1)
    form = {"is_request": "1", "reason": str(OTHER_BODY), "not_authority": "1",
            "reason_description": "Kewenangan Dinas Lingkungan Hidup."}
    r = client.post(f"/complaints/process/{rid}/reject", data=form)
    assert r.status_code == 200, r.text
    assert r.json()["results"]["data"] == {"id": rid, "disposition_id": OTHER_BODY}
    detail = client.get(f"/complaints/{rid}/complaint").json()["results"]
    assert detail["data"]["disposition_id"] == OTHER_BODY
    assert detail["data"]["disposition_name"] == "Dinas Lingkungan Hidup Kabupaten Demo"
    log = detail["data_logs"][-1]
    assert log["institution_from"]["id"] == 1 and log["institution_to"]["id"] == OTHER_BODY
    assert rid in newest_ids(client, detail["data"]["updated_at"])

    again = client.post(f"/complaints/process/{rid}/reject", data=form)
    assert again.status_code == 422 and "reason" in again.json()["errors"]
    unknown = client.post(f"/complaints/process/{rid}/reject", data={**form, "reason": "4242"})
    assert unknown.status_code == 422 and "reason" in unknown.json()["errors"]
    assert client.post("/complaints/process/999999/reject", data=form).status_code == 404


def test_create_complaint_and_upload(server: SandboxServer, client: httpx.Client) -> None:
    up = client.post("/complaints/complaint/file",
                     files=[("attachments[]", ("surat.pdf", b"%PDF" * 10, "application/pdf")),
                            ("attachments[]", ("foto.jpg", b"x" * 5, "image/jpeg"))])
    assert up.status_code == 200, up.text
    doc_ids = [d["id"] for d in up.json()["results"]["docs"]]
    assert len(doc_ids) == 2

    ours = client.post("/complaints/complaint", json={
        "title": "Surat keberatan izin gudang", "content": "Masuk lewat surat.",
        "channel": "surat", "category_id": 1, "location_id": 3, "disposition_id": 1,
        "date_of_incident": "2025-02-20", "attachments": doc_ids, "is_secret": True})
    assert ours.status_code == 200, ours.text
    data = ours.json()["results"]["data"]
    assert set(data) == {"id", "tracking_id"}
    listed = client.get(INBOX, params={"page_size": 1000,
                                       "updated_since": "2020-01-01T00:00:00Z"})
    item = next(i for i in listed.json()["results"]["data"] if i["id"] == data["id"])
    assert item["tracking_id"] == data["tracking_id"]
    assert item["location"] == LOCATION_TEXT[3] and item["is_secret"] == 1
    assert [a["name"] for a in item["attachments"]] == ["surat.pdf", "foto.jpg"]

    theirs = client.post("/complaints/complaint", data={
        "title": "Lampu jalan", "content": "Mati.", "channel": "telepon",
        "disposition_id": str(OTHER_BODY)})
    assert theirs.status_code == 200
    assert not server.state.is_listed(theirs.json()["results"]["data"]["id"])

    bad = client.post("/complaints/complaint", json={"content": "x", "attachments": ["nope"],
                                                     "category_id": 99})
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"title", "channel", "attachments", "category_id"}
    assert client.post("/complaints/complaint/file", data={"x": "1"}).status_code == 422


def test_institutions_and_templates(client: httpx.Client) -> None:
    inst = client.get("/masters/institutions/external", params={"page_size": 1000}).json()
    names = {i["id"]: i["name"] for i in inst["results"]["data"]}
    assert names[1] == OUR_NAME and len(names) >= 16
    assert any("Satuan Polisi Pamong Praja" in n for n in names.values())
    assert inst["results"]["next_page_url"] is None
    tpl = client.get("/masters/templates", params={"page_size": 1000}).json()["results"]["data"]
    assert {"TL-TERIMA", "TL-BUKAN-WEWENANG"} <= {t["code"] for t in tpl}
    assert all(t["content"] for t in tpl)


# ---------------------------------------------------------------------- faults


def test_error_rate_one_fails_everything_before_applying(server: SandboxServer,
                                                         client: httpx.Client,
                                                         admin: httpx.Client) -> None:
    rid = server.state.inbox_ids()[0]
    count = len(server.state.followups_of(rid))
    server.state.set_faults(error_rate=1, seed=3)
    statuses = set()
    for _ in range(12):
        statuses.add(client.get(INBOX).status_code)
        statuses.add(client.post("/complaints/followup/add",
                                 data=followup_form(rid)).status_code)
    assert statuses == {500, 502, 503}
    r = client.get(INBOX)
    while r.status_code != 503:
        r = client.get(INBOX)
    assert r.headers["Retry-After"] == "1"
    assert len(server.state.followups_of(rid)) == count
    assert admin.get("/state").status_code == 200


def test_drop_closes_mid_response(server: SandboxServer, client: httpx.Client) -> None:
    rid = server.state.inbox_ids()[0]
    count = len(server.state.followups_of(rid))
    server.state.set_faults(drop_rate=1, seed=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(INBOX)
    for _ in range(10):
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/complaints/followup/add", data=followup_form(rid))
    counters = server.state.counters()
    applied = counters.get("drop_after_apply", 0)
    assert 0 < applied < 10
    assert len(server.state.followups_of(rid)) == count + applied


def test_throttle_bursts_with_both_retry_after_forms(server: SandboxServer,
                                                     client: httpx.Client) -> None:
    server.state.set_faults(throttle_every=2, throttle_burst=3, retry_after_s=4)
    answers = [client.get("/masters/templates") for _ in range(10)]
    assert [r.status_code for r in answers] == [200, 200, 429, 429, 429, 200, 200, 429, 429,
                                                429]
    retry = [r.headers["Retry-After"] for r in answers if r.status_code == 429]
    assert retry[0::2] == ["4", "4", "4"]
    for value in retry[1::2]:
        when = parsedate_to_datetime(value)
        assert timedelta(seconds=3) <= when - datetime.now(UTC) <= timedelta(seconds=6)


def test_apply_then_fail(server: SandboxServer, client: httpx.Client) -> None:
    rid = server.state.inbox_ids()[0]
    count = len(server.state.followups_of(rid))
    server.state.set_faults(apply_then_fail_rate=1)
    r = client.post("/complaints/followup/add", data=followup_form(rid))
    assert r.status_code == 500
    assert len(server.state.followups_of(rid)) == count + 1
    assert client.get(INBOX).status_code == 200  # GETs are not affected

    server.state.set_faults(apply_then_fail_rate=1, slow_after_apply_s=2, seed=0)
    outcomes: list[int | str] = []
    for _ in range(6):
        try:
            outcomes.append(client.post("/complaints/followup/add", data=followup_form(rid),
                                        timeout=httpx.Timeout(5, read=0.3)).status_code)
        except httpx.ReadTimeout:
            outcomes.append("timeout")
    assert set(outcomes) == {500, "timeout"}
    assert len(server.state.followups_of(rid)) == count + 7


def test_latency_is_applied_and_counted(server: SandboxServer, client: httpx.Client) -> None:
    server.state.set_faults(latency_ms=20, jitter_ms=10)
    before = server.state.counters().get("latency", 0)
    assert client.get(INBOX).status_code == 200
    assert server.state.counters()["latency"] == before + 1


def test_malformed_items(server: SandboxServer, client: httpx.Client) -> None:
    server.state.set_faults(malformed_rate=1, seed=2)
    items = client.get(INBOX, params={"page_size": 40}).json()["results"]["data"]
    assert len(items) == 40
    for item in items:
        # A huge content is valid as a model; the client's max_content_chars refuses it.
        if len(str(item.get("content"))) <= 100_000:
            with pytest.raises(ValidationError):
                RemoteComplaint.model_validate(item)
    assert any("id" not in i for i in items)
    assert any(len(str(i.get("content"))) > 100_000 for i in items)
    assert any(i.get("updated_at") == "31-02-2024 25:61:00" for i in items)
    assert any(i.get("attachments") == "lampiran.jpg" for i in items)
    counters = server.state.counters()
    assert sum(v for k, v in counters.items() if k.startswith("malformed_")) >= 40
    # What is stored stays valid: only the answer was spoiled.
    server.state.set_faults()
    for item in client.get(INBOX, params={"page_size": 40}).json()["results"]["data"]:
        RemoteComplaint.model_validate(item)


def test_change_between_pages_moves_a_later_item(server: SandboxServer,
                                                 client: httpx.Client) -> None:
    server.state.set_faults(change_between_pages=1)
    before = server.state.inbox_ids()
    page1 = client.get(INBOX, params={"page_size": 10}).json()["results"]["data"]
    after = server.state.inbox_ids()
    assert [i["id"] for i in page1] == before[:10] == after[:10]
    assert after[-1] in before[10:] and after[-1] != before[-1]
    assert [rid for rid in before if rid != after[-1]] == after[:-1]
    assert server.state.counters()["changed_between_pages"] >= 1


def test_change_between_pages_from_the_served_page(server: SandboxServer,
                                                   client: httpx.Client) -> None:
    server.state.set_faults(change_between_pages=1, change_target="served")
    before = server.state.inbox_ids()
    client.get(INBOX, params={"page_size": 10})
    server.state.set_faults()
    after = server.state.inbox_ids()
    assert len(set(before[:10]) - set(after[:10])) == 1
    assert after[9] == before[10]
    page2 = client.get(INBOX, params={"page_size": 10, "page": 2}).json()["results"]["data"]
    # Offset paging now skips the report that slid onto page 1.
    assert before[10] not in [i["id"] for i in page2]


def test_fault_settings_over_http(server: SandboxServer, admin: httpx.Client,
                                  client: httpx.Client) -> None:
    r = admin.put("/faults", json={"error_rate": 2})
    assert r.status_code == 422 and "error_rate" in r.json()["errors"]
    r = admin.put("/faults", json={"bogus": 1})
    assert r.status_code == 422 and "bogus" in r.json()["errors"]
    r = admin.put("/faults", json={"error_rate": 1, "seed": 9})
    assert r.status_code == 200 and r.json()["error_rate"] == 1
    assert client.get(INBOX).status_code >= 500
    state = admin.get("/state").json()
    assert state["faults"]["error_rate"] == 1
    assert any(k.startswith("error_") for k in state["counters"])
    assert admin.put("/faults", json={}).json()["error_rate"] == 0
    assert client.get(INBOX).status_code == 200


# ---------------------------------------------------------------------- server


def test_port_is_released_on_stop() -> None:
    srv = SandboxServer(reports=1).start()
    port = srv.port
    assert httpx.get(f"{srv.admin_url}/state").status_code == 200
    srv.stop()
    srv.stop()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_serve_forever_prints_how_to_connect_and_stops_on_ctrl_c() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.lapor.sandbox", "serve", "--port", "0", "--reports", "4",
         "--faults", '{"latency_ms": 1}'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url, first
        banner = "".join(proc.stdout.readline() for _ in range(6))
        assert SANDBOX_BEARER in banner and SANDBOX_TOKEN in banner
        r = httpx.get(url.group(0) + INBOX, headers={"auth": f"Bearer {SANDBOX_BEARER}",
                                                    "token": SANDBOX_TOKEN})
        assert r.status_code == 200 and r.json()["results"]["total"] == 4
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sandbox_imports_no_higher_layer() -> None:
    code = ("import sys, bridge.lapor.sandbox, bridge.lapor.sandbox.bench; "
            "bad = [m for m in sys.modules if m.split('.')[:2] in "
            "(['bridge','store'], ['bridge','sync'], ['bridge','services'], ['bridge','web'])]; "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
