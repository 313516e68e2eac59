"""The LAPOR! client against respx: auth, retries, typed errors, pacing, item quarantine."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.policy import HTTP
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import respx
from pydantic import SecretStr

from bridge.config import ConfigError, Secrets
from bridge.lapor.budget import RequestBudget
from bridge.lapor.client import LaporClient
from bridge.lapor.errors import (
    AuthError,
    ClientRequestError,
    LaporError,
    MalformedOutcome,
    MalformedResponse,
    NotFound,
    OutcomeUnknown,
    RemoteValidationError,
    TransientError,
)
from bridge.lapor.models import (
    FollowupRequest,
    ForwardRequest,
    NewComplaintRequest,
    RemoteComplaint,
)
from tests.support.client import (
    BASE,
    BEARER,
    FOLLOWUPS_5,
    INBOX,
    MAX_ATTEMPTS,
    NOW,
    SECRETS,
    TOKEN,
    lapor_settings,
)
from tests.support.ports import refused_port


class Sleeps(list[float]):
    """Stands in for time.sleep: records each wait instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def make_client(
    router: respx.Router, sleeps: Sleeps
) -> Iterator[Callable[..., LaporClient]]:
    made: list[LaporClient] = []

    def make(budget: RequestBudget | None = None, **overrides: Any) -> LaporClient:
        client = LaporClient(
            lapor_settings(**overrides),
            SECRETS,
            transport=httpx.MockTransport(router.handler),
            budget=budget,
            sleep=sleeps,
            now=lambda: NOW,
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., LaporClient]) -> LaporClient:
    return make_client()


def envelope(data: Any, next_page_url: str | None = None, page: int = 1) -> dict[str, Any]:
    return {
        "results": {
            "data": data,
            "next_page_url": next_page_url,
            "current_page": page,
            "per_page": 100,
            "total": len(data) if isinstance(data, list) else 1,
        }
    }


def report(id_: Any, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": id_,
        "tracking_id": f"19{id_}",
        "title": "Jalan rusak di depan pasar",
        "content": "Mohon segera diperbaiki.",
        "status_code": "1",
        "status_name": "Terverifikasi",
        "disposition_id": 1,
        "disposition_name": "Pemerintah Kabupaten",
        "is_anonymous": 0,
        "is_secret": "0",
        "category": "Infrastruktur",
        "location": "Kel. Tonggalan, Kec. Klaten Tengah",
        "channel": "web",
        "reporter": {"name": "Siti", "email": "siti@example.id", "phone": "0812"},
        "attachments": [],
        "created_at": "2026-03-01T09:00:00+07:00",
        "updated_at": "2026-03-01T10:00:00+07:00",
    }
    item.update(fields)
    return item


def followup(id_: int, **fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": id_,
        "complaint_id": 5,
        "content": f"Tindak lanjut {id_}",
        "created_at": "01-03-2026 10:00:00",
        "institution_from": {"id": 1, "name": "Pemkab"},
        "institution_to": {"id": 2, "name": "Dinas PUPR"},
        "is_secret": 0,
        "attachments": [],
    }
    item.update(fields)
    return item


def ok(data: Any, **kwargs: Any) -> httpx.Response:
    return httpx.Response(200, json=envelope(data, **kwargs))


def multipart_parts(request: httpx.Request) -> list[Message]:
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    parsed = message_from_bytes(head + request.content, policy=HTTP)
    assert parsed.is_multipart()
    return list(parsed.iter_parts())  # type: ignore[attr-defined]


# ---------------------------------------------------------------- requests as sent


@pytest.mark.parametrize("header", ["auth", "Authorization"])
def test_every_request_carries_both_credentials_and_the_user_agent(
    router: respx.Router, make_client: Callable[..., LaporClient], header: str
) -> None:
    route = router.get(INBOX).mock(return_value=ok([]))
    client = make_client(bearer_header=header)
    client.inbox_page(datetime(2026, 3, 1, 2, 3, 4, 999_999, tzinfo=UTC), page=3, page_size=50)

    request = route.calls.last.request
    assert request.headers[header] == f"Bearer {BEARER}"
    assert request.headers["token"] == TOKEN
    assert request.headers["user-agent"].startswith("lapor-bridge/")
    # The base URL's own path is kept in front of the endpoint path.
    assert request.url.path == "/api/3.0.0/complaints/inbox"
    query = parse_qs(request.url.query.decode())
    # Jakarta time, second resolution, rounded down (the boundary is inclusive); the "+"
    # must survive the query string.
    assert query == {
        "page": ["3"],
        "page_size": ["50"],
        "updated_since": ["2026-03-01T09:03:04+07:00"],
    }
    assert client.requests_made == 1


def test_inbox_page_defaults_and_argument_checks(
    router: respx.Router, client: LaporClient
) -> None:
    route = router.get(INBOX).mock(return_value=ok([report(1)], next_page_url=f"{BASE}{INBOX}?page=2"))
    page = client.inbox_page(None)
    assert parse_qs(route.calls.last.request.url.query.decode()) == {
        "page": ["1"],
        "page_size": ["100"],
    }
    assert [item.id for item in page.items] == [1]
    assert isinstance(page.items[0], RemoteComplaint)
    assert page.next_page_url == f"{BASE}{INBOX}?page=2"
    assert page.page == 1 and page.rejected == []

    with pytest.raises(ValueError, match="timezone-aware"):
        client.inbox_page(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="page_size"):
        client.inbox_page(None, page_size=0)
    with pytest.raises(ValueError, match="page"):
        client.inbox_page(None, page=0)
    assert route.call_count == 1


def test_complaint_detail_keeps_data_logs(router: respx.Router, client: LaporClient) -> None:
    logs = [{"institution_from": {"id": 1, "name": "A"}, "institution_to": {"id": 2, "name": "B"}}]
    router.get("/complaints/7/complaint").mock(
        return_value=httpx.Response(
            200,
            json={
                "results": {
                    "data": {
                        "id": 7,
                        "status_code": 2,
                        "status_name": "Dalam Proses",
                        "disposition_id": 2,
                        "status_logs": [{"note": "ok", "timestamp": "2026-03-01T10:00:00+07:00"}],
                    },
                    "data_logs": logs,
                }
            },
        )
    )
    detail = client.complaint(7)
    assert detail.id == 7 and detail.status_code == "2" and detail.disposition_id == 2
    assert detail.status_logs[0].timestamp == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert getattr(detail, "data_logs") == logs  # noqa: B009 - an extra attribute

    router.get("/complaints/8/complaint").mock(
        return_value=httpx.Response(200, json={"results": {"data": {"id": 8}}})
    )
    with pytest.raises(MalformedResponse, match=r"GET /complaints/8/complaint: .*status_code: missing"):
        client.complaint(8)
    with pytest.raises(ValueError):
        client.complaint(-1)


# ---------------------------------------------------------------- refusals: typed, never retried


@pytest.mark.parametrize(
    ("status", "body", "error", "fragment"),
    [
        (401, {"message": "Unauthenticated."}, AuthError, "Unauthenticated."),
        (403, {"message": "Forbidden"}, AuthError, "refused the credentials"),
        (404, {"message": "Data tidak ditemukan"}, NotFound, "not found: Data tidak ditemukan"),
        (418, {"message": "I'm a teapot"}, ClientRequestError, "HTTP 418: I'm a teapot"),
        (302, None, ClientRequestError, "unexpected redirect"),
    ],
)
def test_refusals_raise_typed_errors_without_retry(
    router: respx.Router,
    client: LaporClient,
    sleeps: Sleeps,
    status: int,
    body: Any,
    error: type[LaporError],
    fragment: str,
) -> None:
    headers = {"Location": "https://elsewhere.test/"} if status == 302 else None
    route = router.get("/complaints/9/complaint").mock(
        return_value=httpx.Response(status, json=body, headers=headers)
    )
    with pytest.raises(error) as info:
        client.complaint(9)
    assert fragment in str(info.value)
    assert str(info.value).startswith("GET /complaints/9/complaint: ")
    assert info.value.status == status
    assert info.value.endpoint == "/complaints/9/complaint"
    assert route.call_count == 1 and sleeps == []
    assert not isinstance(info.value, TransientError)


def test_422_carries_lapor_reasons(router: respx.Router, client: LaporClient) -> None:
    route = router.post("/complaints/followup/add").mock(
        return_value=httpx.Response(
            422,
            json={
                "message": "The given data was invalid.",
                "errors": {"content": ["Isi wajib diisi."], "institution_to_id": ["Tidak valid."]},
            },
        )
    )
    with pytest.raises(RemoteValidationError) as info:
        client.add_followup(FollowupRequest(complaint_id=5, user_id=1, institution_from_id=1,
                                            institution_to_id=99, content=""))
    err = info.value
    assert err.errors == {"content": ["Isi wajib diisi."], "institution_to_id": ["Tidak valid."]}
    assert err.remote_message == "The given data was invalid."
    assert "content: Isi wajib diisi." in str(err)
    assert "institution_to_id: Tidak valid." in str(err)
    assert route.call_count == 1


def test_200_that_is_not_json_or_has_no_envelope(router: respx.Router, client: LaporClient) -> None:
    router.get(INBOX).mock(
        side_effect=[
            httpx.Response(200, text="<html>Gateway login</html>",
                           headers={"Content-Type": "text/html"}),
            httpx.Response(200, json={"data": []}),
            httpx.Response(200, json=[1, 2]),
            httpx.Response(200, json={"results": {"data": {"id": 1}}}),
            httpx.Response(200, json={"results": "nope"}),
        ]
    )
    with pytest.raises(MalformedResponse) as info:
        client.inbox_page(None)
    assert "GET /complaints/inbox: malformed response: HTTP 200 body is not JSON" in str(info.value)
    assert "text/html" in str(info.value) and "Gateway login" in str(info.value)
    assert not isinstance(info.value, OutcomeUnknown)

    with pytest.raises(MalformedResponse,
                       match=r"results.data is missing, expected a list \(top-level keys \['data'\]\)"):
        client.inbox_page(None)
    with pytest.raises(MalformedResponse, match="a list at top level, expected an object"):
        client.inbox_page(None)
    with pytest.raises(MalformedResponse, match="results.data is an object, expected a list"):
        client.inbox_page(None)
    with pytest.raises(MalformedResponse, match="results.data is missing, expected a list"):
        client.inbox_page(None)


# ---------------------------------------------------------------- retries of reads


def test_500_is_retried_with_growing_jittered_backoff(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    route = router.get(INBOX).mock(
        side_effect=[
            httpx.Response(500, json={"message": "Server Error"}),
            httpx.Response(502, text="Bad Gateway"),
            ok([report(1)]),
        ]
    )
    with caplog.at_level(logging.DEBUG, logger="bridge.lapor.client"):
        page = client.inbox_page(None)
    assert [item.id for item in page.items] == [1]
    assert route.call_count == 3 and client.requests_made == 3
    # Equal jitter: attempt n waits within [step/2, step], step = 0.5 * 2**(n-1).
    assert len(sleeps) == 2
    assert 0.25 <= sleeps[0] <= 0.5
    assert 0.5 <= sleeps[1] <= 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "GET /complaints/inbox: HTTP 500 (Server Error) (attempt 1 of 4); retrying in" in warnings[0]
    assert "HTTP 502 (Bad Gateway) (attempt 2 of 4)" in warnings[1]
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 3
    assert debug[0].startswith("GET /complaints/inbox?page=1&page_size=100 -> 500 in ")
    assert debug[2].endswith(" ms") and "-> 200 in" in debug[2]


def test_backoff_is_capped_at_backoff_max(
    router: respx.Router, make_client: Callable[..., LaporClient], sleeps: Sleeps
) -> None:
    router.get(INBOX).mock(return_value=httpx.Response(500))
    client = make_client(max_attempts=8, backoff_initial=1.0, backoff_max=3.0)
    with pytest.raises(TransientError):
        client.inbox_page(None)
    assert len(sleeps) == 7
    assert all(wait <= 3.0 for wait in sleeps)
    assert all(wait >= 1.5 for wait in sleeps[2:])


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("7", 7.0),
        (format_datetime(NOW + timedelta(seconds=12), usegmt=True), 12.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # never negative
        ("-5", 0.0),
        ("99999", 80.0),  # capped at 10 * backoff_max
    ],
)
def test_429_honours_retry_after(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, retry_after: str, expected: float
) -> None:
    route = router.get(INBOX).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": retry_after}),
            ok([]),
        ]
    )
    client.inbox_page(None)
    assert sleeps == [expected]
    assert route.call_count == 2


def test_unreadable_retry_after_falls_back_to_backoff(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    router.get(INBOX).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "soon"}), ok([])]
    )
    client.inbox_page(None)
    assert len(sleeps) == 1 and 0.25 <= sleeps[0] <= 0.5
    assert "ignoring unreadable Retry-After 'soon'" in caplog.text


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
def test_network_failures_of_reads_are_retried(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, failure: Exception
) -> None:
    route = router.get(INBOX).mock(side_effect=[failure, ok([report(2)])])
    page = client.inbox_page(None)
    assert [item.id for item in page.items] == [2]
    assert route.call_count == 2 and len(sleeps) == 1


def test_exhausted_retries_raise_transient_error(
    router: respx.Router, client: LaporClient, sleeps: Sleeps
) -> None:
    route = router.get(INBOX).mock(
        return_value=httpx.Response(503, headers={"Retry-After": "3"}, json={"message": "Maintenance"})
    )
    with pytest.raises(TransientError) as info:
        client.inbox_page(None)
    err = info.value
    assert not isinstance(err, OutcomeUnknown)
    assert err.status == 503 and err.retry_after == 3.0 and err.attempts == MAX_ATTEMPTS
    assert str(err) == (
        "GET /complaints/inbox: gave up after 4 attempts: HTTP 503 (Maintenance)"
    )
    assert route.call_count == MAX_ATTEMPTS
    assert sleeps == [3.0] * (MAX_ATTEMPTS - 1)


def test_exhausted_connection_failures_raise_transient_error(
    router: respx.Router, client: LaporClient
) -> None:
    router.get(INBOX).mock(side_effect=httpx.ConnectError("[Errno 111] Connection refused"))
    with pytest.raises(TransientError, match="could not connect .ConnectError: .Errno 111") as info:
        client.inbox_page(None)
    assert info.value.status is None and info.value.retry_after is None
    assert client.requests_made == MAX_ATTEMPTS


# ---------------------------------------------------------------- POSTs: never a blind repeat


def a_followup(content: str = "Sudah ditangani.\n\n[lb:42]") -> FollowupRequest:
    return FollowupRequest(complaint_id=5, user_id=3, institution_from_id=1,
                           institution_to_id=1, content=content)


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (httpx.ReadTimeout("timed out"), None),
        (httpx.WriteTimeout("timed out"), None),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), None),
        (httpx.ReadError("Connection reset by peer"), None),
        (httpx.Response(500, json={"message": "Server Error"}), 500),
        (httpx.Response(502), 502),
        (httpx.Response(503), 503),  # without Retry-After it may have been applied
        (httpx.Response(503, headers={"Retry-After": "later"}), 503),
    ],
)
def test_post_that_may_have_been_applied_raises_outcome_unknown_without_repeat(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, failure: Any, status: int | None
) -> None:
    route = router.post("/complaints/followup/add").mock(side_effect=[failure, ok({"id": 77})])
    with pytest.raises(OutcomeUnknown) as info:
        client.add_followup(a_followup())
    assert route.call_count == 1 and sleeps == []
    assert info.value.status == status and info.value.attempts == 1
    assert "read back before posting again" in str(info.value)
    assert not isinstance(info.value, TransientError)  # a sibling: never retried blind


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out"),
        httpx.Response(429),
        httpx.Response(503, headers={"Retry-After": "2"}),
    ],
)
def test_post_that_surely_was_not_applied_is_retried(
    router: respx.Router, client: LaporClient, sleeps: Sleeps, failure: Any
) -> None:
    route = router.post("/complaints/followup/add").mock(side_effect=[failure, ok({"id": 77})])
    assert client.add_followup(a_followup()) == 77
    assert route.call_count == 2 and len(sleeps) == 1


def test_post_retried_then_timing_out_is_outcome_unknown(
    router: respx.Router, client: LaporClient, sleeps: Sleeps
) -> None:
    route = router.post("/complaints/complaint").mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "1"}),
                     httpx.ReadTimeout("timed out"), ok({"id": 1})]
    )
    with pytest.raises(OutcomeUnknown) as info:
        client.create_complaint(NewComplaintRequest(title="t", content="c", channel="surat"))
    assert info.value.attempts == 2 and route.call_count == 2 and sleeps == [1.0]


def test_post_refused_each_time_gives_transient_error_not_outcome_unknown(
    router: respx.Router, client: LaporClient
) -> None:
    route = router.post("/complaints/followup/add").mock(return_value=httpx.Response(429))
    with pytest.raises(TransientError) as info:
        client.add_followup(a_followup())
    assert not isinstance(info.value, OutcomeUnknown)
    assert info.value.status == 429 and route.call_count == MAX_ATTEMPTS


def test_post_answered_2xx_but_unreadable_is_malformed_outcome(
    router: respx.Router, client: LaporClient
) -> None:
    router.post("/complaints/followup/add").mock(
        side_effect=[httpx.Response(200, text="OK"), ok({"id": "abc"})]
    )
    with pytest.raises(MalformedOutcome) as info:
        client.add_followup(a_followup())
    assert isinstance(info.value, OutcomeUnknown) and isinstance(info.value, MalformedResponse)
    with pytest.raises(MalformedOutcome, match=r"results.data.id is 'abc', expected a positive"):
        client.add_followup(a_followup())


# ---------------------------------------------------------------- the request budget


def test_budget_allows_a_burst_then_paces() -> None:
    fake = FakeClock()
    budget = RequestBudget(2.0, clock=fake.clock, sleep=fake.sleep)
    waits = [budget.acquire() for _ in range(10)]
    # A burst of two, then one token every half second.
    assert waits == [0.0, 0.0] + [0.5] * 8
    assert fake.sleeps == [0.5] * 8
    assert fake.now == pytest.approx(4.0)

    fake.now += 60.0  # idle: the bucket refills, but never beyond the burst
    assert [budget.acquire() for _ in range(3)] == [0.0, 0.0, 0.5]


def test_budget_below_one_per_second_has_a_burst_of_one() -> None:
    fake = FakeClock()
    budget = RequestBudget(0.25, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        budget.acquire()
    assert fake.sleeps == [4.0, 4.0] and fake.now == pytest.approx(8.0)
    with pytest.raises(ValueError):
        RequestBudget(0)


def test_budget_is_thread_safe() -> None:
    # The clock stands still, so every token after the burst is a reservation further out:
    # whatever the interleaving, the waits handed out must be exactly 1/r, 2/r, 3/r, ...
    waits: list[float] = []
    lock = threading.Lock()

    def record(seconds: float) -> None:
        with lock:
            waits.append(seconds)

    budget = RequestBudget(4.0, clock=lambda: 100.0, sleep=record)
    threads = [threading.Thread(target=lambda: [budget.acquire() for _ in range(25)])
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert budget.acquired == 200
    assert sorted(waits) == pytest.approx([n / 4.0 for n in range(1, 197)])


def test_client_takes_a_token_per_attempt_including_retries(
    router: respx.Router, make_client: Callable[..., LaporClient], sleeps: Sleeps
) -> None:
    fake = FakeClock()
    shared = RequestBudget(1.0, clock=fake.clock, sleep=fake.sleep)
    first = make_client(budget=shared)
    second = make_client(budget=shared)
    route = router.get(INBOX).mock(
        side_effect=[httpx.Response(500), ok([]), ok([]), ok([]), ok([])]
    )
    first.inbox_page(None)  # two attempts
    first.inbox_page(None)
    second.inbox_page(None)
    second.inbox_page(None)
    assert route.call_count == 5
    assert first.requests_made == 3 and second.requests_made == 2
    assert shared.acquired == 5
    # Rate 1/s, burst 1: every attempt after the first waited one second.
    assert fake.sleeps == [1.0] * 4 and fake.now == pytest.approx(4.0)
    assert len(sleeps) == 1  # the single retry backoff, separate from the pacing


# ---------------------------------------------------------------- item validation


def test_malformed_items_are_quarantined_and_the_rest_returned(
    router: respx.Router, client: LaporClient
) -> None:
    items: list[Any] = [
        report(1),
        {k: v for k, v in report(0).items() if k != "id"},
        report("abc"),
        report(3, content="x" * 2_000_000),
        report(4, updated_at="kemarin"),
        report(1, title="Same id again"),
        report(5, is_anonymous="maybe"),
        ["not", "an", "object"],
        report(6, reporter=None, is_anonymous=True),
    ]
    router.get(INBOX).mock(return_value=ok(items))
    page = client.inbox_page(None)

    assert [item.id for item in page.items] == [1, 6]
    assert page.items[1].is_anonymous is True
    reasons = {(r.remote_id, r.reason) for r in page.rejected}
    assert reasons == {
        (None, "id: missing (tried id | complaint_id)"),
        ("abc", "id: input should be a valid integer, unable to parse string as an integer "
                "(got 'abc')"),
        ("3", "content: 2,000,000 characters, over the limit of 100,000"),
        ("4", "updated_at: not a date-time: 'kemarin'"),
        ("1", "id: 1 repeats an earlier item of this listing"),
        ("5", "is_anonymous: expected a boolean or 0/1"),
        (None, "item: expected an object, got a list"),
    }
    # Nothing is lost: each payload is the item's full JSON.
    by_reason = {r.reason: r for r in page.rejected}
    big = by_reason["content: 2,000,000 characters, over the limit of 100,000"]
    assert json.loads(big.payload) == items[3]
    assert json.loads(by_reason["id: 1 repeats an earlier item of this listing"].payload)[
        "title"] == "Same id again"
    assert all("\n" not in r.reason for r in page.rejected)


def test_content_limit_follows_the_setting(
    router: respx.Router, make_client: Callable[..., LaporClient]
) -> None:
    router.get(INBOX).mock(return_value=ok([report(1, content="x" * 11), report(2, content="x" * 10)]))
    page = make_client(max_content_chars=10).inbox_page(None)
    assert [item.id for item in page.items] == [2]
    assert page.rejected[0].reason == "content: 11 characters, over the limit of 10"


# ---------------------------------------------------------------- follow-ups and listings


def test_followups_follow_page_numbers_on_our_own_base_url(
    router: respx.Router, client: LaporClient
) -> None:
    # LAPOR! behind the gateway may hand out its internal address: only the page number
    # is taken from the link, the credentials never go anywhere but base_url.
    internal = "http://10.0.0.5:8080/api/complaints/5/followups"
    route = router.get(FOLLOWUPS_5).mock(
        side_effect=lambda request: {
            "1": ok([followup(1), followup(2)], next_page_url=f"{internal}?page=2", page=1),
            "2": ok([followup(3)], next_page_url=f"{internal}?page=3", page=2),
            "3": ok([followup(4)], next_page_url=None, page=3),
        }[request.url.params["page"]]
    )
    items = client.followups(5)
    assert [item.id for item in items] == [1, 2, 3, 4]
    assert items[0].created_at == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert [call.request.url.params["page"] for call in route.calls] == ["1", "2", "3"]
    assert all(call.request.url.host == "lapor.test" for call in route.calls)


@pytest.mark.parametrize(
    ("pages", "fragment"),
    [
        # Page 2 links to itself: the same URL twice.
        ({"1": "?page=2", "2": "?page=2"}, "?page=2' came twice"),
        # Page 2 links to itself under another URL.
        ({"1": "?page=2", "2": "?page=2&again=1"}, "page 2 links back to page 2"),
        # Page 2 links back to page 1.
        ({"1": "?page=2", "2": "?page=1"}, "page 2 links back to page 1"),
        # The same link twice (a stuck cursor).
        ({"1": "?page=2&x=1", "2": "?page=3", "3": "?page=2&x=1"}, "came twice"),
        ({"1": "?cursor=abc"}, "next_page_url has no page number"),
        ({"1": "?page=two"}, "next_page_url page is not a number: 'two'"),
    ],
)
def test_looping_next_links_are_malformed(
    router: respx.Router, client: LaporClient, pages: dict[str, str], fragment: str
) -> None:
    router.get(FOLLOWUPS_5).mock(
        side_effect=lambda request: ok(
            [followup(int(request.url.params["page"]))],
            next_page_url=f"{BASE}{FOLLOWUPS_5}{pages[request.url.params['page']]}",
        )
    )
    with pytest.raises(MalformedResponse, match="GET /complaints/5/followups: ") as info:
        client.followups(5)
    assert fragment in str(info.value)


def test_endless_pages_stop_at_max_pages(router: respx.Router, client: LaporClient) -> None:
    route = router.get(FOLLOWUPS_5).mock(
        side_effect=lambda request: ok(
            [], next_page_url=f"{BASE}{FOLLOWUPS_5}?page={int(request.url.params['page']) + 1}"
        )
    )
    with pytest.raises(MalformedResponse, match="more than 5 pages"):
        client.followup_listing(5, max_pages=5)
    assert route.call_count == 5


def test_bad_followups_are_skipped_with_a_warning_but_kept_in_the_listing(
    router: respx.Router, client: LaporClient, caplog: pytest.LogCaptureFixture
) -> None:
    router.get(FOLLOWUPS_5).mock(
        return_value=ok([followup(1), followup(2, created_at="2026/13/45"), followup(3)])
    )
    with caplog.at_level(logging.WARNING, logger="bridge.lapor.client"):
        items = client.followups(5)
    assert [item.id for item in items] == [1, 3]
    assert "complaint 5: follow-up 2 skipped: created_at: not a date-time: '2026/13/45'" in caplog.text

    listing = client.followup_listing(5)
    assert [item.id for item in listing.items] == [1, 3]
    assert [r.remote_id for r in listing.rejected] == ["2"]
    assert "Tindak lanjut 2" in listing.rejected[0].payload


def test_institutions_and_templates(
    router: respx.Router, client: LaporClient, caplog: pytest.LogCaptureFixture
) -> None:
    inst = router.get("/masters/institutions/external").mock(
        side_effect=lambda request: {
            "1": ok([{"id": 1, "name": "Pemkab Klaten"}, {"id": "x", "name": "Rusak"}],
                    next_page_url=f"{BASE}/masters/institutions/external?page=2&page_size=1000"),
            "2": ok([{"id": 2, "name": "Dinas PUPR"}]),
        }[request.url.params["page"]]
    )
    router.get("/masters/templates").mock(
        return_value=ok([{"id": 1, "code": "TL1", "name": "Salam", "content": "Terima kasih"}])
    )
    with caplog.at_level(logging.WARNING, logger="bridge.lapor.client"):
        names = client.institutions()
    assert [(n.id, n.name) for n in names] == [(1, "Pemkab Klaten"), (2, "Dinas PUPR")]
    assert inst.calls[0].request.url.params["page_size"] == "1000"
    assert "institution x skipped: id: input should be a valid integer" in caplog.text
    assert [t.code for t in client.templates()] == ["TL1"]


# ---------------------------------------------------------------- writes


def test_add_followup_sends_multipart_fields_and_attachments(
    router: respx.Router, client: LaporClient
) -> None:
    route = router.post("/complaints/followup/add").mock(return_value=ok({"id": 901}))
    req = FollowupRequest(complaint_id=5, user_id=3, institution_from_id=1, institution_to_id=2,
                          content="Sudah diperbaiki \"hari ini\".\n\n[lb:42]", template_code="TL1",
                          rating=4, is_secret=True)
    pdf = b"%PDF-1.4\n" + bytes(range(256))
    new_id = client.add_followup(req, [("berita acara.pdf", pdf, "application/pdf"),
                                       ("foto.jpg", b"\xff\xd8\xff", "image/jpeg")])
    assert new_id == 901

    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    parts = multipart_parts(request)
    fields = {p.get_param("name", header="content-disposition"): p for p in parts}
    assert {name: fields[name].get_payload(decode=True).decode() for name in [  # type: ignore[union-attr]
        "complaint_id", "user_id", "institution_from_id", "institution_to_id",
        "template_code", "rating", "is_secret", "content"]} == {
        "complaint_id": "5", "user_id": "3", "institution_from_id": "1",
        "institution_to_id": "2", "template_code": "TL1", "rating": "4", "is_secret": "1",
        "content": "Sudah diperbaiki \"hari ini\".\n\n[lb:42]",
    }
    assert fields["content"].get_filename() is None
    first, second = fields["attachment[0]"], fields["attachment[1]"]
    assert first.get_filename() == "berita acara.pdf"
    assert first.get_content_type() == "application/pdf"
    assert first.get_payload(decode=True) == pdf
    assert second.get_filename() == "foto.jpg" and second.get_payload(decode=True) == b"\xff\xd8\xff"


def test_add_followup_without_attachments_is_still_multipart(
    router: respx.Router, client: LaporClient
) -> None:
    route = router.post("/complaints/followup/add").mock(return_value=ok({"id": "902"}))
    assert client.add_followup(a_followup()) == 902
    request = route.calls.last.request
    assert request.headers["content-type"].startswith("multipart/form-data")
    names = [p.get_param("name", header="content-disposition") for p in multipart_parts(request)]
    assert "attachment[0]" not in names and "content" in names


def test_forward_create_and_upload(
    router: respx.Router, client: LaporClient, caplog: pytest.LogCaptureFixture
) -> None:
    fwd = router.post("/complaints/process/5/reject").mock(
        return_value=ok({"id": 5, "disposition_id": 31})
    )
    client.forward(ForwardRequest(complaint_id=5, institution_id=31,
                                  reason_description="Bukan kewenangan kami"))
    # lapor-v3 (the default profile): a JSON body with numbers, as the public client sends.
    assert json.loads(fwd.calls.last.request.content) == {
        "is_request": 1, "reason": 31, "reason_description": "Bukan kewenangan kami",
        "not_authority": 1}
    assert caplog.text == ""

    create = router.post("/complaints/complaint").mock(
        return_value=ok({"id": 1916449, "tracking_id": "1916449"})
    )
    new_id = client.create_complaint(NewComplaintRequest(
        title="Antrean izin", content="Lama sekali", channel="surat", attachments=["a1", "a2"]))
    assert new_id == 1916449
    body = json.loads(create.calls.last.request.content)
    # lapor-v3: an integer channel code and the upload ids as the text "[...]".
    assert body["title"] == "Antrean izin" and body["attachments"] == '["a1","a2"]'
    assert body["channel"] == 13
    assert body["is_anonymous"] is False and "category_id" not in body

    upload = router.post("/complaints/complaint/file").mock(
        return_value=httpx.Response(200, json={"results": {"docs": [{"id": 11}, {"id": "12"}]}})
    )
    assert client.upload_attachments([("a.pdf", b"1", "application/pdf"),
                                      ("b.png", b"2", "image/png")]) == ["11", "12"]
    parts = multipart_parts(upload.calls.last.request)
    assert [p.get_param("name", header="content-disposition") for p in parts] == [
        "attachments[]", "attachments[]"]
    assert client.upload_attachments([]) == []
    assert upload.call_count == 1


# ---------------------------------------------------------------- secrets


def test_secrets_never_leak(
    router: respx.Router,
    make_client: Callable[..., LaporClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    guid = TOKEN.strip("{}")
    echo = f"bad token {TOKEN} / {guid.upper()} for Bearer {BEARER}"
    router.get(INBOX).mock(side_effect=[
        httpx.Response(500, json={"message": echo}),
        httpx.ConnectError(f"cannot reach, token={TOKEN}"),
        ok([report(1, updated_at=f"not {TOKEN}")]),
        httpx.Response(401, json={"message": echo}),
        httpx.Response(200, text=f"<p>{echo}</p>"),
        httpx.Response(200, json={"unexpected": echo, echo: 1}),
    ])
    router.post("/complaints/followup/add").mock(side_effect=[
        httpx.Response(422, json={"message": echo, "errors": {"token": [echo]}}),
        httpx.Response(500, json={"message": echo}),
        httpx.ReadTimeout(f"timeout {BEARER}"),
    ])
    router.get(FOLLOWUPS_5).mock(
        return_value=ok([followup(1)], next_page_url=f"{BASE}{FOLLOWUPS_5}?cursor={TOKEN}")
    )
    client = make_client()
    errors: list[BaseException] = []
    with caplog.at_level(logging.DEBUG):
        client.inbox_page(None)
        for call in [
            lambda: client.inbox_page(None),
            lambda: client.inbox_page(None),
            lambda: client.inbox_page(None),
            lambda: client.add_followup(a_followup()),
            lambda: client.add_followup(a_followup()),
            lambda: client.add_followup(a_followup()),
            lambda: client.followups(5),
        ]:
            with pytest.raises(LaporError) as info:
                call()
            errors.append(info.value)
    assert [type(e) for e in errors] == [AuthError, MalformedResponse, MalformedResponse,
                                        RemoteValidationError, OutcomeUnknown, OutcomeUnknown,
                                        MalformedResponse]
    assert caplog.records, "the calls above must have logged"
    texts = [caplog.text, repr(client), repr(client.budget)]
    # Nor in the repr of anything the client holds.
    texts += [repr(value) for value in vars(client).values()]
    texts += [repr(value) for value in vars(client._http).values()]
    for err in errors:
        texts += [str(err), repr(err), repr(err.args)]
        if isinstance(err, RemoteValidationError):
            texts.append(repr(err.errors))
    for text in texts:
        assert BEARER not in text
        assert guid.lower() not in text.lower()
    assert "***" in str(errors[0])


@pytest.mark.parametrize(
    ("secrets", "key", "problem"),
    [
        (Secrets(token=SecretStr(TOKEN)), "secrets.bearer", "missing"),
        (Secrets(bearer=SecretStr(BEARER)), "secrets.token", "missing"),
        (Secrets(bearer=SecretStr(BEARER + "\n"), token=SecretStr(TOKEN)), "secrets.bearer",
         "trailing newline"),
        (Secrets(bearer=SecretStr(BEARER), token=SecretStr(TOKEN + "é")), "secrets.token",
         "non-ASCII"),
    ],
)
def test_bad_credentials_are_refused_at_construction_without_echoing_them(
    secrets: Secrets, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        LaporClient(lapor_settings(), secrets)
    assert info.value.key == key and problem in str(info.value)
    assert BEARER not in str(info.value) and TOKEN not in str(info.value)


def test_context_manager_closes(router: respx.Router) -> None:
    router.get(INBOX).mock(return_value=ok([]))
    with LaporClient(lapor_settings(), SECRETS,
                     transport=httpx.MockTransport(router.handler)) as client:
        client.inbox_page(None)
    with pytest.raises(RuntimeError):
        client.inbox_page(None)


# ---------------------------------------------------------------- real sockets on loopback


class RawServer:
    """A loopback HTTP server that reads each request whole, then misbehaves on purpose:
    ``drop`` closes the connection without answering, ``hang`` never answers."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.requests: list[bytes] = []
        self.release = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.release.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.release.is_set():  # the wake-up call from close()
                conn.close()
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                if self.behaviour == "hang":
                    self.release.wait(5)

    def close(self) -> None:
        self.release.set()
        # accept() does not return when another thread closes the socket: wake it up.
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self.thread.join(5)
        self.sock.close()


@pytest.mark.parametrize("behaviour", ["drop", "hang"])
def test_real_post_whose_answer_is_lost_is_not_repeated(behaviour: str, sleeps: Sleeps) -> None:
    server = RawServer(behaviour)
    try:
        settings = lapor_settings(base_url=f"http://127.0.0.1:{server.port}", read_timeout=0.3)
        with (
            LaporClient(settings, SECRETS, sleep=sleeps) as client,
            pytest.raises(OutcomeUnknown) as info,
        ):
            client.add_followup(a_followup(), [("a.txt", b"isi", "text/plain")])
    finally:
        server.close()
    assert len(server.requests) == 1 and sleeps == []
    assert b"[lb:42]" in server.requests[0]
    expected = "RemoteProtocolError" if behaviour == "drop" else "ReadTimeout"
    assert expected in str(info.value)


def test_real_connection_refused_is_retried_then_transient(sleeps: Sleeps) -> None:
    with (
        refused_port() as port,
        LaporClient(lapor_settings(base_url=f"http://127.0.0.1:{port}"), SECRETS,
                    sleep=sleeps) as client,
        pytest.raises(TransientError) as info,
    ):
        client.add_followup(a_followup())
    assert not isinstance(info.value, OutcomeUnknown)
    assert "could not connect (ConnectError" in str(info.value)
    assert info.value.attempts == MAX_ATTEMPTS and len(sleeps) == MAX_ATTEMPTS - 1



@pytest.mark.parametrize("number", ["1e400", "-1e999", "Infinity", "NaN"])
def test_non_finite_numbers_are_not_json(router: respx.Router, client: LaporClient,
                                         number: str) -> None:
    body = '{"results": {"data": [{"id": 1, "extra": ' + number + '}], "next_page_url": null}}'
    router.get(INBOX).mock(return_value=httpx.Response(
        200, content=body.encode(), headers={"Content-Type": "application/json"}))
    with pytest.raises(MalformedResponse) as info:
        client.inbox_page(None)
    assert "HTTP 200 body is not JSON: " in str(info.value)
    assert ("beyond a double" in str(info.value)) == number[-1].isdigit()


@pytest.mark.parametrize("extra", [
    "123456789012345678901234567890",   # beyond 64 bits: orjson would read a float
    '"\\ud800"',                         # a lone surrogate: orjson refuses it
    '"caf\\u00e9 \\u0000 nul"',          # escapes, NUL dropped as before
    "18446744073709551615",             # the largest unsigned 64-bit integer
    "1.5e300",
])
def test_listing_bodies_read_exactly_as_the_standard_library(
        router: respx.Router, client: LaporClient, extra: str) -> None:
    item = json.dumps(report(1))[:-1] + ', "extra": ' + extra + "}"
    body = '{"results": {"data": [' + item + '], "next_page_url": null}}'
    router.get(INBOX).mock(return_value=httpx.Response(
        200, content=body.encode(), headers={"Content-Type": "application/json"}))
    page = client.inbox_page(None)
    expected = json.loads(body)["results"]["data"][0]["extra"]
    if isinstance(expected, str):
        expected = expected.replace("\x00", "")
    assert not page.rejected
    raw = page.sources["1"]["extra"]
    assert raw == expected and type(raw) is type(expected)


def test_the_tls_context_is_built_once_per_thread() -> None:
    # Building one parses the CA bundle (about 12 ms of CPU, paid by every job run); one
    # is not shared between threads, since httpcore sets its ALPN on every connection.
    from bridge.lapor.client import _tls_context

    here = _tls_context()
    assert _tls_context() is here
    there: list[object] = []
    worker = threading.Thread(target=lambda: there.extend([_tls_context(), _tls_context()]))
    worker.start()
    worker.join()
    assert there[0] is there[1] and there[0] is not here
    assert here.verify_mode == ssl.CERT_REQUIRED and here.check_hostname
