"""Reading one answer from LAPOR! within bounds: a size on the wire, a size once
decompressed, and a total deadline for the whole attempt.

httpx bounds each network operation (connect, each read), never the total: a server
that sends one byte every few seconds keeps a request alive for ever. Nor does it bound
decompression: its decoders expand a whole network read at once, up to ~1000 times its
size for gzip. So the client streams the answer (``send(stream=True)``), reads the raw
bytes through :func:`read_body`, and inflates them here in steps of at most
:data:`STEP` bytes, counting both sizes as it goes.

The deadline (:class:`Deadline`) is enforced three ways: every timeout of the attempt is
clamped to the time left when it starts; the time left is checked after every chunk of
the body; and a watchdog timer shuts the attempt's socket down when the time is up, which
wakes a read that is blocked waiting for the next byte. The watchdog learns the socket
from httpx's ``trace`` extension when the attempt opens a new connection, and from the
response once its headers are in. One case stays bounded per read only: a connection
taken from the pool whose server sends its *headers* a byte at a time (the socket is
not known until the headers are complete); the clamped read timeout still ends it once
the server stops sending for the time left.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from bridge.errors import BridgeError

#: Most output one inflate step produces: what decompression holds beyond the body.
STEP = 64 * 1024

#: Most of an error answer (4xx, 5xx) that is read: enough for LAPOR!'s message and
#: field errors; the rest is dropped, not refused, since the status already says what
#: happened.
ERROR_BODY_BYTES = 64 * 1024

#: The encodings :func:`read_body` can inflate; the client asks for these only.
ACCEPT_ENCODING = "gzip, deflate"


class BodyTooLarge(BridgeError):
    """The answer is over a size limit; the message names the limit and its setting."""


class UndecodableBody(BridgeError):
    """The answer's Content-Encoding is unknown or its compressed data is broken."""


class DeadlineExceeded(BridgeError):
    """The attempt ran out of time."""


class _Watchdog:
    """One thread for every deadline of the process (a thread per attempt costs 0.1 ms
    each): fires each watched deadline when it is due."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._open = 0
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, deadline: Deadline) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + seconds, next(self._seq), deadline))
            self._open += 1
            # Closed deadlines wait in the heap until due; drop them when they pile up.
            if len(self._heap) > 64 and len(self._heap) > 2 * self._open:
                self._heap = [entry for entry in self._heap if not entry[2].closed]
                heapq.heapify(self._heap)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._run, name="lapor-deadlines",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:  # due before the one it waits for: wake it
                self._cond.notify()

    def closed(self) -> None:
        with self._cond:
            self._open -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, due = heapq.heappop(self._heap)
            due.fire()


_WATCHDOG = _Watchdog()


class Deadline:
    """The time left to one attempt, and the watchdog that ends it when none is left.

    Thread-safe: the watchdog runs on a thread of its own. :meth:`close` must be called
    before the response goes back to the pool, so that a late watchdog never shuts down
    a connection that another request is using.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._end = clock() + seconds
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._watched = False
        self.closed = False
        self._fired = False

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    @property
    def expired(self) -> bool:
        return self._fired or self.remaining() <= 0

    def check(self) -> None:
        if self.expired:
            raise DeadlineExceeded(f"no complete answer within {self.seconds:g} s")

    def clamp(self, timeout: httpx.Timeout) -> httpx.Timeout:
        """``timeout`` with no part longer than the time left."""
        left = max(self.remaining(), 0.001)

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=cut(timeout.connect),
            read=cut(timeout.read),
            write=cut(timeout.write),
            pool=cut(timeout.pool),
        )

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpx's ``trace`` extension: learn the socket of a connection opened for us."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def watch(self, stream: Any) -> None:
        """Arm the watchdog on the socket of ``stream`` (an httpcore network stream;
        anything else, such as a mock transport's, is ignored)."""
        get = getattr(stream, "get_extra_info", None)
        sock = get("socket") if callable(get) else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if self.closed:
                return
            self._sock = sock
            first, self._watched = not self._watched, True
        if first:
            _WATCHDOG.add(self.remaining(), self)

    def fire(self) -> None:
        """The watchdog's call when the time is up: end the attempt's socket."""
        with self._lock:
            if self.closed:
                return
            self._fired = True
            if self._sock is not None:
                # shutdown, not close: it wakes a recv blocked in another thread. The base
                # class's: SSLSocket.shutdown also drops the TLS state that the reading
                # thread is still using.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self._sock = None
            watched = self._watched
        if watched:
            _WATCHDOG.closed()


# --------------------------------------------------------------------------- decoding


class _Identity:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _Inflate:
    """gzip or deflate, inflated at most :data:`STEP` bytes at a time."""

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        # gzip: header required. deflate: zlib-wrapped as the RFC says, or raw as some
        # servers send it (tried when the zlib header is not there, as httpx does).
        self._wbits = zlib.MAX_WBITS | 16 if encoding == "gzip" else zlib.MAX_WBITS
        self._z = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self._z.eof:
            try:
                out = self._z.decompress(data, STEP)
            except zlib.error as exc:
                if self._encoding == "deflate" and not self._started:
                    self._started = True
                    self._z = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise UndecodableBody(f"broken {self._encoding} data ({exc})") from None
            self._started = True
            data = self._z.unconsumed_tail
            if out:
                yield out
            # Full output with nothing left to feed may still hold more: ask again.
            if not data and len(out) < STEP:
                return

    def flush(self) -> Iterator[bytes]:
        # Whatever feed() left is less than one step: feed() drains to below STEP.
        rest = self._z.flush()
        if rest:
            yield rest


def _decoder(content_encoding: str) -> _Identity | _Inflate:
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return _Identity()
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return _Inflate("deflate" if codings[0] == "deflate" else "gzip")
    raise UndecodableBody(
        f"Content-Encoding {content_encoding[:60]!r} is not supported "
        f"(the bridge asks for {ACCEPT_ENCODING})"
    )


# --------------------------------------------------------------------------- reading


def read_body(
    response: httpx.Response,
    *,
    max_wire: int,
    max_decoded: int,
    deadline: Deadline,
    truncate: bool = False,
) -> bytes:
    """The body of a streamed ``response``, inflated, within the limits.

    Over a limit, or out of time, it raises :class:`BodyTooLarge` or
    :class:`DeadlineExceeded`, unless ``truncate``: then it returns what it has read, cut
    to ``max_decoded`` bytes (for an error answer, whose status says enough). Network
    errors pass through as httpx raises them; look at ``deadline.expired`` to tell the
    watchdog's doing from the server's.
    """
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > max_wire:
        raise BodyTooLarge(
            f"the body is {int(declared):,} bytes (Content-Length), over "
            f"lapor.max_response_bytes = {max_wire:,}"
        )
    if response.is_stream_consumed:
        # A transport that answered from memory (tests' mock transports): httpx has
        # decoded it already, and only the decoded size is known.
        body = response.content
        if len(body) > max_decoded and not truncate:
            raise BodyTooLarge(
                f"the body is {len(body):,} bytes, over lapor.max_decoded_bytes = "
                f"{max_decoded:,}"
            )
        return body[:max_decoded]
    decoder = _decoder(response.headers.get("Content-Encoding", ""))
    chunks: list[bytes] = []
    size = 0
    try:
        for raw in response.iter_raw():
            if response.num_bytes_downloaded > max_wire:
                raise BodyTooLarge(
                    f"the body is over lapor.max_response_bytes = {max_wire:,} bytes "
                    f"on the wire (read {response.num_bytes_downloaded:,} so far)"
                )
            for piece in decoder.feed(raw):
                size += len(piece)
                if size > max_decoded:
                    raise BodyTooLarge(
                        f"the body decompresses to more than lapor.max_decoded_bytes = "
                        f"{max_decoded:,} bytes (from {response.num_bytes_downloaded:,} "
                        "bytes on the wire)"
                    )
                chunks.append(piece)
            deadline.check()
        chunks.extend(decoder.flush())
    except (BodyTooLarge, DeadlineExceeded):
        if not truncate:
            raise
    except httpx.TransportError:
        if not (truncate and deadline.expired):
            raise
    return b"".join(chunks)[:max_decoded]


def buffered(response: httpx.Response, body: bytes) -> httpx.Response:
    """A complete, in-memory copy of ``response`` carrying ``body`` (already decoded)."""
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=body,
        request=response.request,
        extensions={"http_version": response.extensions.get("http_version", b"HTTP/1.1")},
    )


__all__ = [
    "ACCEPT_ENCODING",
    "ERROR_BODY_BYTES",
    "STEP",
    "BodyTooLarge",
    "Deadline",
    "DeadlineExceeded",
    "UndecodableBody",
    "buffered",
    "read_body",
]
