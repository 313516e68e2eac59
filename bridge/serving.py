"""One way to serve an ASGI app with uvicorn on a real socket: in a daemon thread (the
sandbox in tests and the demo, the staff page in the demo and the browser tests) or in
the calling thread (``lapor-bridge sandbox``).

The socket is bound in the constructor, so :attr:`ThreadedServer.port` and
:attr:`ThreadedServer.url` are known (and the port taken) before :meth:`start`.
"""

from __future__ import annotations

import socket
import threading
import time
from types import FrameType
from typing import Any, Self

import uvicorn


class _Server(uvicorn.Server):
    """uvicorn's server that also sets ``stopping`` on Ctrl-C, so that an app can release
    requests it holds back (the sandbox's slow-answer fault)."""

    def __init__(self, config: uvicorn.Config, stopping: threading.Event | None) -> None:
        super().__init__(config)
        self.stopping = stopping

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.stopping is not None:
            self.stopping.set()
        super().handle_exit(sig, frame)


class ThreadedServer:
    """Serve ``app`` on ``host:port`` (``port=0``: a free one); ``name`` names the thread
    and the errors. ``stopping`` is set when the server stops."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *,
                 name: str = "server", access_log: bool = False,
                 stopping: threading.Event | None = None) -> None:
        self.app = app
        self.host = host
        self.name = name
        self._access_log = access_log
        self._stopping = stopping
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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def started(self) -> bool:
        return self._thread is not None

    def _uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(self.app, log_config=None, log_level="warning",
                                access_log=self._access_log, lifespan="off", http="h11",
                                loop="asyncio",
                                # Requests held back (a sandbox fault) must not hold a stop.
                                timeout_graceful_shutdown=1)
        return _Server(config, self._stopping)

    def _run(self, server: uvicorn.Server) -> None:
        try:
            server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc

    def start(self, timeout: float = 10.0) -> Self:
        """Serve in a daemon thread; returns once the server accepts connections."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name} already started")
        self._server = server = self._uvicorn()
        self._thread = threading.Thread(target=self._run, args=(server,),
                                        name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"{self.name} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start within {timeout:.0f} s")
            time.sleep(0.005)
        return self

    def run_foreground(self) -> None:
        """Serve in the calling thread until Ctrl-C or SIGTERM, then release the port."""
        self._server = self._uvicorn()
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._sock.close()

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        server, thread = self._server, self._thread
        if server is not None and thread is not None:
            if self._stopping is not None:
                self._stopping.set()
            server.should_exit = True
            thread.join(timeout=3)
            if thread.is_alive():
                server.force_exit = True
                thread.join(timeout=3)
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
