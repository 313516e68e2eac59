"""Running the staff page: in the foreground (``lapor-bridge web``) or in a background
thread on a free loopback port (the demo and the browser tests)."""

from __future__ import annotations

from typing import Any

import uvicorn

from bridge.serving import ThreadedServer as _Threaded


def foreground_config(app: Any) -> uvicorn.Config:
    """uvicorn's settings for ``lapor-bridge web``. No proxy headers: uvicorn would believe
    X-Forwarded-For from any local proxy; the page judges it against web.trusted_proxies."""
    return uvicorn.Config(app, log_level="warning", lifespan="off", proxy_headers=False,
                          server_header=False)


class ThreadedServer(_Threaded):
    """The staff page in a daemon thread on a loopback port (the demo, the browser
    tests): :class:`bridge.serving.ThreadedServer` named for it."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(app, host, port, name="staff page")
