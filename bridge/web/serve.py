"""Running the staff page: in the foreground (``lapor-bridge web``) or in a background
thread on a free loopback port (the demo and the browser tests)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def foreground_config(app: Any) -> uvicorn.Config:
    """uvicorn's settings for ``lapor-bridge web``. No proxy headers: uvicorn would believe
    X-Forwarded-For from any local proxy; the page judges it against web.trusted_proxies."""
    return uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False,
                          server_header=False)


class ThreadedServer:
    """Serve an ASGI app in a daemon thread. The socket is bound in the constructor, so
    :attr:`url` is known (and the port taken) before :meth:`start`."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._sock.bind((host, port))
        except OSError:
            self._sock.close()
            raise
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, log_level="warning", access_log=False,
                                lifespan="off", http="h11", loop="asyncio",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc

    def start(self, timeout: float = 10.0) -> ThreadedServer:
        self._thread = threading.Thread(target=self._run, name=f"lapor-web-{self.port}",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"staff page failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"staff page did not start within {timeout:.0f} s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=3)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout=3)
        self._sock.close()

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
