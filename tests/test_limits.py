"""Bounded answers: size on the wire, size decompressed, items per page, a total deadline
per attempt, and secrets masked before an excerpt is cut.

The hostile answers (a gzip bomb, a 500 MB page, a one-byte-every-4-seconds trickle) come
from a real loopback server, to a client in a child process whose peak RSS is measured.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from bridge.config import Secrets
from bridge.lapor.client import LaporClient, _one_line, _short_repr
from bridge.lapor.errors import (
    LaporError,
    MalformedOutcome,
    MalformedResponse,
    OutcomeUnknown,
    TransientError,
)
from bridge.lapor.limits import Deadline, UndecodableBody, read_body
from bridge.lapor.models import ForwardRequest
from bridge.redact import PARTIAL_MIN, Scrubber
from tests.support.client import INBOX, TOKEN, lapor_settings

#: 24 characters, as in the issue, and none of its pieces an English word.
BEARER = "Zq8mN2vX7pL4kR9sT1wY6bHc"
SECRETS = Secrets(bearer=SecretStr(BEARER), token=SecretStr(TOKEN))

#: Peak RSS allowed to the client process that meets a hostile answer.
RSS_LIMIT_MB = 300


def leaked(text: str) -> list[str]:
    """Every piece of the bearer in ``text`` long enough that it must have been masked."""
    low = text.lower()
    return [BEARER[i:j] for i in range(len(BEARER))
            for j in range(i + PARTIAL_MIN, len(BEARER) + 1) if BEARER[i:j].lower() in low]


def mock_client(router: respx.Router, **overrides: Any) -> LaporClient:
    return LaporClient(lapor_settings(**overrides), SECRETS,
                       transport=httpx.MockTransport(router.handler), sleep=lambda _s: None)


def envelope(data: Any) -> dict[str, Any]:
    return {"results": {"data": data, "next_page_url": None, "current_page": 1}}


# ---------------------------------------------------------------- masking before cutting


@pytest.mark.parametrize("cut", range(len(BEARER) + 1))
def test_an_excerpt_never_keeps_a_piece_of_a_secret(cut: int) -> None:
    scrub = Scrubber([SecretStr(BEARER), SecretStr(TOKEN)])
    text = "invalid credentials: Bearer " + BEARER + " (see the log)"
    limit = len("invalid credentials: Bearer ") + cut + 3
    # The right order, and the old call sites that cut first and scrub after.
    for excerpt in (scrub.excerpt(text, limit), scrub(_one_line(text, limit)),
                    scrub(_short_repr(text, limit + 1)), scrub(text[: limit - 3])):
        assert leaked(excerpt) == [], excerpt


def test_pieces_at_the_edges_and_before_an_ellipsis_are_masked_ordinary_text_is_not() -> None:
    scrub = Scrubber([SecretStr(BEARER)])
    assert scrub(BEARER[5:] + " was echoed") == "*** was echoed"
    assert scrub("token " + BEARER[:10] + "... is invalid") == "token ***... is invalid"
    assert scrub("token " + BEARER[:10] + "\u2026") == "token ***\u2026"
    # Shorter than PARTIAL_MIN, or not a head/tail of a secret: left alone.
    assert scrub("ends with " + BEARER[:3]) == "ends with " + BEARER[:3]
    assert scrub("wait... " + BEARER[3:9] + " no") == "wait... " + BEARER[3:9] + " no"
    assert scrub("nothing to see...") == "nothing to see..."


@pytest.mark.parametrize("cut", range(len(BEARER) + 1))
def test_client_errors_and_logs_never_keep_a_piece_of_the_bearer(
    cut: int, router: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    # The body echoes the bearer so that each excerpt's cut falls ``cut`` characters in:
    # 57 characters for a body that is not JSON, 297 for LAPOR!'s message, 117 for the
    # retry reason and 37 for an unreadable Retry-After.
    def at(room: int, prefix: str = "") -> str:
        return prefix + "x" * (room - cut - len(prefix)) + BEARER + " tail" + "y" * 400

    router.get(INBOX).mock(side_effect=[
        httpx.Response(200, text=at(57)),
        httpx.Response(401, json={"message": at(297)}),
        httpx.Response(500, json={"message": at(117)}, headers={"Retry-After": at(37)[:60]}),
        httpx.Response(500, json={"message": at(117)}),
    ])
    client = mock_client(router, max_attempts=2)
    texts = []
    with caplog.at_level("DEBUG"):
        for _ in range(3):
            with pytest.raises(LaporError) as info:
                client.inbox_page(None)
            texts.append(str(info.value))
    texts.append(caplog.text)
    for text in texts:
        assert leaked(text) == [], text


# ---------------------------------------------------------------- limits, mock transport


def test_more_items_than_the_page_size_asked_for_is_malformed(
    router: respx.Router,
) -> None:
    items = [{"id": n, "content": "isi"} for n in range(1, 4)]
    router.get(INBOX).mock(return_value=httpx.Response(200, json=envelope(items)))
    with pytest.raises(MalformedResponse) as info:
        mock_client(router).inbox_page(None, page_size=2)
    assert str(info.value) == (
        "GET /complaints/inbox: malformed response: the page has 3 items, more than the 2 "
        "asked for (page_size)")


def test_a_listing_that_asks_no_page_size_is_bounded_by_max_page_items(
    router: respx.Router,
) -> None:
    items = [{"id": n} for n in range(1, 6)]
    router.get("/complaints/5/followups").mock(
        return_value=httpx.Response(200, json=envelope(items)))
    with pytest.raises(MalformedResponse) as info:
        mock_client(router, max_page_items=4).followup_listing(5)
    assert "the page has 5 items, over lapor.max_page_items = 4" in str(info.value)


def test_an_answer_over_the_size_limit_is_malformed_and_a_posts_is_an_uncertain_outcome(
    router: respx.Router,
) -> None:
    big = envelope([{"id": 1, "content": "x" * 5000}])
    router.get(INBOX).mock(return_value=httpx.Response(200, json=big))
    router.post("/complaints/process/5/reject").mock(return_value=httpx.Response(200, json=big))
    client = mock_client(router, max_response_bytes=2048)
    with pytest.raises(MalformedResponse) as info:
        client.inbox_page(None)
    assert not isinstance(info.value, OutcomeUnknown)
    assert str(info.value).startswith("GET /complaints/inbox: malformed response: the body is ")
    assert "over lapor.max_response_bytes = 2,048" in str(info.value)
    assert len(router.calls) == 1  # not retried
    with pytest.raises(MalformedOutcome) as post:
        client.forward(ForwardRequest(complaint_id=5, institution_id=3, reason_description="x"))
    assert "POST /complaints/process/5/reject" in str(post.value)
    assert "read back before posting again" in str(post.value)


def test_an_error_answer_is_read_only_in_part(
    router: respx.Router,
) -> None:
    router.get(INBOX).mock(return_value=httpx.Response(404, text="nope " * 100_000))
    with pytest.raises(LaporError) as info:
        mock_client(router, max_response_bytes=2048).inbox_page(None)
    assert str(info.value).startswith("GET /complaints/inbox: HTTP 404: not found: nope nope")


# ---------------------------------------------------------------- the streaming reader


def stream_of(chunks: list[bytes], headers: dict[str, str]) -> httpx.Response:
    class Chunks(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield from chunks

    return httpx.Response(200, headers=headers, stream=Chunks())


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "identity"])
def test_read_body_inflates_in_steps(encoding: str) -> None:
    data = json.dumps(envelope([{"id": n, "content": "isi " * 50} for n in range(500)])).encode()
    wbits = {"gzip": 31, "deflate": 15, "raw-deflate": -15, "identity": 0}[encoding]
    if wbits:
        co = zlib.compressobj(6, zlib.DEFLATED, wbits)
        wire = co.compress(data) + co.flush()
    else:
        wire = data
    chunks = [wire[i:i + 1000] for i in range(0, len(wire), 1000)]
    name = "deflate" if encoding == "raw-deflate" else encoding
    body = read_body(stream_of(chunks, {"Content-Encoding": name}), max_wire=10**7,
                     max_decoded=10**7, deadline=Deadline(10))
    assert body == data


def test_read_body_refuses_what_it_cannot_inflate() -> None:
    for encoding, wire in [("br", b"x"), ("gzip, gzip", b"x"), ("gzip", b"not gzip at all")]:
        with pytest.raises(UndecodableBody):
            read_body(stream_of([wire], {"Content-Encoding": encoding}), max_wire=100,
                      max_decoded=100, deadline=Deadline(10))


# ---------------------------------------------------------------- a hostile server


def gzip_bomb(wire_bytes: int) -> tuple[bytes, int]:
    """About ``wire_bytes`` of gzip that inflate to ~1000 times as much (deflate's most),
    built from one compressed block repeated: after a full flush the compressor starts
    afresh, so the same 4 MiB of zeros compress to the same bytes every time."""
    block = b"\0" * (4 << 20)
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    piece = co.compress(block) + co.flush(zlib.Z_FULL_FLUSH)
    count = max(1, (wire_bytes - len(head)) // len(piece))
    # The trailer's CRC is not worth a gigabyte of CRC work: no client gets that far.
    bomb = head + piece * count + co.flush()
    return bomb, (count + 1) * len(block)


class HostileServer:
    """Loopback HTTP/1.1: reads a request whole, then answers as ``mode`` says."""

    def __init__(self) -> None:
        self.bomb, self.bomb_decoded = gzip_bomb(1 << 20)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            data = b""
            while b"\r\n\r\n" not in data:
                more = conn.recv(65536)
                if not more:
                    return
                data += more
            head, _, body = data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next((int(v) for n, _, v in (x.partition(":") for x in lines[1:])
                           if n.strip().lower() == "content-length"), 0)
            while len(body) < length:
                body += conn.recv(65536)
            mode = lines[0].split()[1].split("?")[0].strip("/").split("/")[0]
            getattr(self, "_" + mode.replace("-", "_"))(conn)

    def _bomb(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Encoding: gzip\r\n"
                     + f"Content-Length: {len(self.bomb)}\r\n\r\n".encode() + self.bomb)

    def _huge(self, conn: socket.socket, declared: bool = False) -> None:
        # 500 MB of JSON, made as it is sent: one 64 KiB block over and over.
        total = 500_000_000
        length = f"Content-Length: {total}\r\n" if declared else "Connection: close\r\n"
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}\r\n"
                     .encode())
        item = b'{"id": 1, "content": "' + b"isi laporan " * 5000 + b'"}, '
        sent = 0
        conn.sendall(b'{"results": {"data": [')
        while sent < total:
            conn.sendall(item)
            sent += len(item)

    def _huge_declared(self, conn: socket.socket) -> None:
        self._huge(conn, declared=True)

    def _trickle(self, conn: socket.socket, head_too: bool = False) -> None:
        answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n" + b" " * 1000)
        start = 0 if head_too else answer.index(b"\r\n\r\n") + 4
        conn.sendall(answer[:start])
        for i in range(start, len(answer)):
            conn.sendall(answer[i:i + 1])
            if self.stop.wait(4):
                return

    def _trickle_head(self, conn: socket.socket) -> None:
        self._trickle(conn, head_too=True)

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self.sock.close()
        self.thread.join(5)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


#: Run in a child process, so that its peak RSS is the client's alone.
CHILD = """
import json, resource, sys, time
from pydantic import SecretStr
from bridge.config import LaporSettings, Secrets
from bridge.lapor.client import LaporClient
from bridge.lapor.models import ForwardRequest

def peak_kb():
    # VmHWM is this process's own peak (Linux resets it at exec); ru_maxrss keeps the peak
    # of the parent it was forked from (a large pytest process) across exec.
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

base, method, overrides = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
settings = LaporSettings(base_url=base, inbox_path=overrides.pop("path"), reject_path=
                         overrides.pop("path_post", "/x/{id}"), **overrides)
secrets = Secrets(bearer=SecretStr("b" * 24), token=SecretStr("t" * 24))
before = peak_kb()
with LaporClient(settings, secrets) as client:
    started = time.monotonic()
    try:
        if method == "GET":
            client.inbox_page(None)
        else:
            client.forward(ForwardRequest(complaint_id=5, institution_id=3,
                                          reason_description="x"))
        error, message = None, ""
    except Exception as exc:
        error, message = type(exc).__name__, str(exc)
    elapsed = time.monotonic() - started
peak = peak_kb()
print(json.dumps({"error": error, "message": message, "elapsed": elapsed,
                  "rss_mb": peak / 1024, "rss_before_mb": before / 1024}))
"""


def start_child(server: HostileServer, mode: str, method: str = "GET",
                **overrides: Any) -> subprocess.Popen[str]:
    values: dict[str, Any] = {"max_attempts": 1, "read_timeout": 10.0}
    values.update(overrides)
    values["path"] = f"/{mode}"
    values["path_post"] = f"/{mode}/{{id}}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, f"http://127.0.0.1:{server.port}", method,
         json.dumps(values)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def outcome(child: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    # The figures the issue asks for, shown with -s (or on failure).
    print(f"{result['error']}: {result['elapsed']:.2f} s, peak RSS {result['rss_mb']:.0f} MB "
          f"(after imports {result['rss_before_mb']:.0f} MB): {result['message']}")
    assert result["rss_mb"] < RSS_LIMIT_MB
    return result


def test_a_gzip_bomb_is_refused_at_the_decompressed_limit(hostile: HostileServer) -> None:
    assert len(hostile.bomb) <= 1 << 20 and hostile.bomb_decoded >= 1 << 30
    result = outcome(start_child(hostile, "bomb"))  # default limits
    assert result["error"] == "MalformedResponse"
    assert result["message"].startswith(
        "GET /bomb: malformed response: the body decompresses to more than "
        "lapor.max_decoded_bytes = 104,857,600 bytes")


def test_a_500_mb_page_is_refused_at_the_wire_limit(hostile: HostileServer) -> None:
    streamed = start_child(hostile, "huge")
    declared = start_child(hostile, "huge-declared")
    result = outcome(streamed)
    assert result["error"] == "MalformedResponse"
    assert result["message"].startswith(
        "GET /huge: malformed response: the body is over lapor.max_response_bytes = "
        "52,428,800 bytes on the wire")
    result = outcome(declared)
    assert result["message"] == (
        "GET /huge-declared: malformed response: the body is 500,000,000 bytes "
        "(Content-Length), over lapor.max_response_bytes = 52,428,800")


def test_a_trickle_ends_at_the_deadline(hostile: HostileServer) -> None:
    # One byte every 4 s satisfies a 10 s read timeout for ever; the 5 s deadline ends
    # it, whether the trickle starts with the body, with the status line, or answers a
    # POST (whose outcome is then unknown: it may have been applied).
    deadline = 5.0
    children = {
        "body": start_child(hostile, "trickle", request_deadline=deadline),
        "head": start_child(hostile, "trickle-head", request_deadline=deadline),
        "post": start_child(hostile, "trickle", "POST", request_deadline=deadline),
    }
    results = {name: outcome(child) for name, child in children.items()}
    for name, result in results.items():
        # Some slack for the watchdog's thread to be scheduled on a busy machine.
        assert deadline - 0.1 <= result["elapsed"] <= deadline + 1.0, name
        assert "no complete answer within lapor.request_deadline = 5 s" in result["message"]
    assert results["body"]["error"] == results["head"]["error"] == "TransientError"
    assert results["body"]["message"].startswith("GET /trickle: gave up after 1 attempt: ")
    assert results["post"]["error"] == "OutcomeUnknown"
    assert "read back before posting again" in results["post"]["message"]


def test_a_deadline_hit_on_a_get_is_retried_within_max_attempts(
    hostile: HostileServer,
) -> None:
    waits: list[float] = []
    with LaporClient(lapor_settings(base_url=f"http://127.0.0.1:{hostile.port}",
                                    inbox_path="/trickle", request_deadline=0.5,
                                    max_attempts=3),
                     SECRETS, sleep=waits.append) as client:
        started = time.monotonic()
        with pytest.raises(TransientError) as info:
            client.inbox_page(None)
        elapsed = time.monotonic() - started
    assert info.value.attempts == 3 and len(waits) == 2
    assert "gave up after 3 attempts: no complete answer within lapor.request_deadline" \
        in str(info.value)
    assert elapsed < 3 * 0.5 + 1.0
