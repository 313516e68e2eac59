"""Run the sandbox with uvicorn: in a background thread (tests, demo) or in the
foreground (``lapor-bridge sandbox``)."""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
from pydantic import SecretStr

from bridge.config import LaporSettings, Secrets
from bridge.lapor.sandbox.app import (
    SANDBOX_BEARER,
    SANDBOX_TOKEN,
    create_app,
    quiet_drop_logs,
)
from bridge.lapor.sandbox.faults import Faults
from bridge.lapor.sandbox.state import SandboxState

_START_TIMEOUT_S = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server that also releases answers held back by a fault on Ctrl-C."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()
        super().handle_exit(sig, frame)


class SandboxServer:
    """The LAPOR! sandbox on a real loopback port.

    ``port=0`` picks a free port; :attr:`port` and :attr:`url` give the real one as soon as
    the object exists (the socket is bound in the constructor). ``bearer_header=None``
    accepts either header name (``auth`` or ``Authorization``); set it to accept only one.
    ``paths`` overrides endpoint paths (LaporSettings field names, or a LaporSettings);
    ``prefix`` puts every LAPOR! path under a base path (admin stays at ``/_sandbox``).
    ``dialect`` is the shape it answers in (``lapor-v3`` or ``lapor-flat``, see dialect.py).
    """

    def __init__(
        self,
        seed: int = 0,
        reports: int = 50,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bearer: str = SANDBOX_BEARER,
        token: str = SANDBOX_TOKEN,
        institution_id: int = 1,
        bearer_header: str | None = None,
        paths: Mapping[str, str] | LaporSettings | None = None,
        prefix: str = "",
        faults: Faults | Mapping[str, Any] | None = None,
        anchor: datetime | None = None,
        state: SandboxState | None = None,
        access_log: bool = False,
        dialect: str = "lapor-v3",
    ) -> None:
        self.state = state if state is not None else SandboxState(
            seed, reports, institution_id=institution_id, anchor=anchor, faults=faults,
            dialect=dialect)
        if state is not None and faults is not None:
            self.state.set_faults(faults)
        self.bearer = bearer
        self.token = token
        self.bearer_header: str | None = None
        if bearer_header is not None:
            canonical = {"auth": "auth", "authorization": "Authorization"}
            if bearer_header.lower() not in canonical:
                raise ValueError("bearer_header must be 'auth', 'Authorization' or None "
                                 f"(either), got {bearer_header!r}")
            self.bearer_header = canonical[bearer_header.lower()]
        self.prefix = prefix
        self.app = create_app(self.state, bearer=bearer, token=token,
                              bearer_header=self.bearer_header, paths=paths, prefix=prefix)
        self.host = host
        self._access_log = access_log
        family, kind, proto, _, _ = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted
        # connections only then, and without it every answer waits ~40 ms for an ACK.
        self._sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ------------------------------------------------------------------ addresses

    @property
    def dialect(self) -> str:
        """The API dialect this sandbox answers in."""
        return self.state.dialect.name

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The LAPOR! base URL (what ``lapor.base_url`` should be)."""
        return self.origin + self.prefix

    @property
    def admin_url(self) -> str:
        return self.origin + "/_sandbox"

    def settings(self, **overrides: Any) -> LaporSettings:
        """LaporSettings that point at this sandbox (header name and institution match)."""
        values: dict[str, Any] = {
            "base_url": self.url,
            "bearer_header": self.bearer_header or "auth",
            "institution_id": self.state.institution_id,
        }
        values.update(overrides)
        return LaporSettings(**values)

    def secrets(self) -> Secrets:
        """The (fake, sandbox-only) credentials this sandbox accepts."""
        return Secrets(bearer=SecretStr(self.bearer), token=SecretStr(self.token))

    def auth_headers(self, header: str | None = None) -> dict[str, str]:
        """Headers that authenticate a raw request to this sandbox."""
        name = header or self.bearer_header or "auth"
        return {name: f"Bearer {self.bearer}", "token": self.token}

    # ------------------------------------------------------------------ running

    def _uvicorn(self) -> uvicorn.Server:
        quiet_drop_logs()
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=self._access_log,
            lifespan="off",
            http="h11",
            loop="asyncio",
            # Requests held by the slow-answer fault must not hold up a stop.
            timeout_graceful_shutdown=1,
        )
        return _Server(config, self.app.state.stopping)

    def _run(self, server: uvicorn.Server) -> None:
        try:
            server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc

    def start(self) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        self._server = server = self._uvicorn()
        self._thread = threading.Thread(target=self._run, args=(server,),
                                        name=f"lapor-sandbox-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"sandbox failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox did not start within "
                                   f"{_START_TIMEOUT_S:.0f} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            self.app.state.stopping.set()
            server.should_exit = True
            thread.join(timeout=3)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=3)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def serve_forever(self, out: Callable[[str], None] = print) -> None:
        """Serve in the calling thread until Ctrl-C (or SIGTERM), printing how to connect."""
        for line in self.banner():
            out(line)
        sys.stdout.flush()
        self._server = self._uvicorn()
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def banner(self) -> list[str]:
        s = self.state
        either = self.bearer_header is None
        header = "auth (or Authorization)" if either else str(self.bearer_header)
        return [
            f"LAPOR! sandbox listening on {self.url}",
            f"  seed {s.seed}, {len(s.inbox_ids())} reports in the inbox of institution "
            f"{s.institution_id}",
            "  sandbox-only credentials (fake, accepted by this sandbox only):",
            f"    header {header}: Bearer {self.bearer}",
            f"    header token: {self.token}",
            f"    e.g. LAPOR_BRIDGE_BEARER={self.bearer} "
            f"LAPOR_BRIDGE_TOKEN='{self.token}'",
            f"  admin (no auth): {self.admin_url}/state",
            "Press Ctrl-C to stop.",
        ]


def serve_forever(
    port: int = 8765,
    seed: int = 0,
    reports: int = 50,
    *,
    host: str = "127.0.0.1",
    faults: Faults | Mapping[str, Any] | None = None,
    out: Callable[[str], None] = print,
    **options: Any,
) -> None:
    """Run a sandbox in the foreground (the ``lapor-bridge sandbox`` command).

    ``options`` are the other keyword arguments of :class:`SandboxServer`.
    """
    server = SandboxServer(seed, reports, host=host, port=port, faults=faults, **options)
    # uvicorn shuts down cleanly on the first Ctrl-C; a second one forces it and lands here.
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(out)
    sys.stdout.flush()
