"""The staff page inside ``lapor-bridge demo``: started beside the sandbox, with demo
accounts signed in through printed links, and a background push so that what staff do
on the page reaches the sandbox's LAPOR!."""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any

import click

from bridge.services.accounts import create_user, find_user, known_roles
from bridge.web.app import create_app
from bridge.web.serve import ThreadedServer
from bridge.web.settings import SigningKey, WebSettings

log = logging.getLogger("bridge.web.demo")

#: Demo accounts: (username, role, full name). The first is the one the demo opens with;
#: a Kasi can do most of a case (classify, dispose, forward with tembusan, follow up);
#: the others carry the SOP steps a Kasi may not (register, paraf, tanda tangan).
DEMO_USERS = (
    ("kasi", "kasi", "Dewi Lestari (Kasi Penanganan Pengaduan)"),
    ("petugas", "petugas", "Sari Wulandari (Petugas Front Office)"),
    ("analis", "analis", "Budi Santoso (Analis Kebijakan)"),
    ("kabid", "kabid", "Agus Prasetyo (Kabid Pengaduan)"),
    ("kadis", "kepala_dinas", "Ir. Hadi Susanto (Kepala Dinas)"),
)
PUSH_EVERY_S = 2.0


@dataclass
class DemoWeb:
    server: ThreadedServer
    links: dict[str, str]
    stop_event: threading.Event = field(default_factory=threading.Event)
    pusher: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.stop_event.set()
        if self.pusher is not None:
            self.pusher.join(timeout=5)
        self.server.stop()


def _ensure_users(rt: Any) -> list[tuple[str, str]]:
    roles = known_roles(rt.workflow.roles)
    made = []
    with rt.sessions() as s, s.begin():
        for username, role, name in DEMO_USERS:
            if role not in roles:
                continue
            if find_user(s, username) is None:
                # Nobody signs in with it: the demo's links do. Random, never shown.
                create_user(s, username, name, role, secrets.token_urlsafe(24), roles)
            made.append((username, role))
    return made


def _push_loop(rt: Any, stop: threading.Event) -> None:
    while not stop.wait(PUSH_EVERY_S):
        try:
            with rt.client() as client:
                rt.pusher(client).run()
        except Exception as exc:  # noqa: BLE001 - keep the demo going; the outbox retries
            log.warning("demo push failed: %s", exc)


def start_demo_web(rt: Any, sandbox: Any, *, echo: bool = True, push: bool = True
                   ) -> DemoWeb:
    """Serve the page on a free loopback port, signed-in links printed; returns a handle."""
    users = _ensure_users(rt)
    tokens = {secrets.token_urlsafe(18): username for username, _ in users}
    web = WebSettings(poll_seconds=2.0)
    app = create_app(rt, web=web, key=SigningKey(secrets.token_urlsafe(48), "memory"),
                     auto_login=tokens)
    server = ThreadedServer(app).start()
    links = {username: f"{server.url}/masuk/demo/{token}" for token, username in tokens.items()}
    handle = DemoWeb(server, links)
    if push:
        handle.pusher = threading.Thread(target=_push_loop, args=(rt, handle.stop_event),
                                         name="demo-push", daemon=True)
        handle.pusher.start()
    if echo:
        roles = dict(users)
        first = users[0][0]
        click.echo(f"\nStaff page (signed in as {first}, {rt.workflow.role_label(roles[first])}):")
        click.echo(f"  {links[first]}")
        others = [u for u, _ in users if u != first]
        if others:
            click.echo("Other demo roles (open in another browser or a private window):")
            for username in others:
                click.echo(f"  {rt.workflow.role_label(roles[username])}: {links[username]}")
        click.echo("Actions taken on the page reach the sandbox's LAPOR! within seconds.")
    return handle
