"""Run the sandbox with uvicorn: in a background thread (tests, demo) or in the
foreground (``lapor-bridge sandbox``)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self

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
from bridge.serving import ThreadedServer

_START_TIMEOUT_S = 10.0


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
        self._http = ThreadedServer(self.app, host, port, name="sandbox",
                                    access_log=access_log, stopping=self.app.state.stopping)
        self.port: int = self._http.port

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

    def start(self) -> Self:
        """Serve in a background thread; returns once the server accepts connections."""
        quiet_drop_logs()
        self._http.start(_START_TIMEOUT_S)
        return self

    def stop(self) -> None:
        """Stop serving and release the port (idempotent)."""
        self._http.stop()

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
        quiet_drop_logs()
        self._http.run_foreground()

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
