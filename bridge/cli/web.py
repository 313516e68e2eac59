"""``lapor-bridge web`` (serve the staff page) and ``lapor-bridge user ...`` (accounts)."""

from __future__ import annotations

import socket
import sys
from typing import TYPE_CHECKING

import click

from bridge.cli.accounts_db import account_store
from bridge.cli.common import chosen_body, config_option, fail, load, runtime
from bridge.config import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def commands() -> list[click.Command]:
    return [web_cmd, user_group]


@click.command("web")
@click.option("--host", default=None, help="Address to listen on (default: web.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535),
              help="Port (default: web.port, 8080).")
@config_option
@click.pass_context
def web_cmd(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the staff page: queue, cases and their actions, outbox, recap.

    The page does not sync with LAPOR! itself: run the daemon (or `sync --once`) beside it.
    The cookie-signing key comes from $LAPOR_BRIDGE_WEB_SECRET or web.secret_file.
    """
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    import uvicorn
    from sqlalchemy import func, select

    from bridge.bodies import has_bodies
    from bridge.services.accounts import NO_PASSWORD
    from bridge.store.models import User
    from bridge.web.app import create_app
    from bridge.web.serve import foreground_config
    from bridge.web.settings import signing_key, web_settings

    if has_bodies(load(ctx)) and chosen_body(ctx) is None:
        _serve_pemda(ctx, host, port)
        return
    with runtime(ctx) as rt:
        try:
            ws = web_settings(rt.settings)
            key = signing_key(rt.settings, ws)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        bind_host = host or ws.host
        bind_port = port or ws.port
        sock = _listen(bind_host, bind_port)
        with rt.sessions() as s:
            # The install's operator account has no password: nobody can sign in with it.
            users = s.scalar(select(func.count()).select_from(User).where(
                User.active, User.password_hash != NO_PASSWORD)) or 0
        if not users:
            click.echo("note: no accounts yet; add one with "
                       "`lapor-bridge user add NAME --role ROLE --name \"Full Name\"`", err=True)
        try:
            app = create_app(rt, web=ws, key=key)
        except ConfigError as exc:
            sock.close()
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        click.echo(f"staff page at http://{bind_host}:{bind_port}/ (signing key: {key.origin}); "
                   "Ctrl-C to stop")
        uvicorn.Server(foreground_config(app)).run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    return sock


def _serve_pemda(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Every body of a Pemda in one page, under /b/<code>/; the accounts in the
    deployment's own database."""
    import uvicorn

    from bridge.cli.accounts_db import deployment_database
    from bridge.cli.common import deployment
    from bridge.web.pemda import create_pemda_app
    from bridge.web.serve import foreground_config
    from bridge.web.settings import signing_key, web_settings

    settings = load(ctx)
    try:
        ws = web_settings(settings)
        key = signing_key(settings, ws)
    except ConfigError as exc:
        fail(str(exc), 2)
    with deployment(ctx) as dep, deployment_database(settings) as accounts:
        sock = _listen(host or ws.host, port or ws.port)
        try:
            app = create_pemda_app(dep, accounts, web=ws, key=key)
        except ConfigError as exc:
            sock.close()
            fail(str(exc), 2)
        click.echo(f"staff page of {len(dep.codes)} bodies ({', '.join(dep.codes)}) at "
                   f"http://{host or ws.host}:{port or ws.port}/ (signing key: {key.origin}); "
                   "Ctrl-C to stop")
        uvicorn.Server(foreground_config(app)).run(sockets=[sock])


@click.group("user")
def user_group() -> None:
    """Staff accounts of the web page."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@user_group.command("add")
@click.argument("username")
@click.option("--role", "role", required=True, multiple=True,
              help="A role of the workflow profile, or admin; repeat it (or give a comma "
                   "list) for an account holding several, e.g. an acting official (Plt). "
                   "The first is the primary one.")
@click.option("--name", "full_name", required=True, help="Full name, shown in the history.")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input.")
@config_option
@click.pass_context
def user_add(ctx: click.Context, username: str, role: tuple[str, ...], full_name: str,
             password_stdin: bool) -> None:
    """Add an account. The password is asked for (never given on the command line)."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.accounts import UserError, create_user, parse_roles
    from bridge.services.members import create_member

    with account_store(ctx, need_body=True) as store:
        roles = store.roles
        try:
            held = parse_roles(role, roles)
        except UserError as exc:
            fail(str(exc), 2)
        password = _read_password(password_stdin)

        def add(s: Session) -> str:
            if store.body:
                return create_member(s, username, full_name, store.body, held, password,
                                     roles).username
            return create_user(s, username, full_name, held, password, roles).username

        name = store.change(add)
    where = f" in {store.body}" if store.body else ""
    click.echo(f"user {name} added ({', '.join(held)}{where})")


@user_group.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from the first line of standard input.")
@config_option
@click.pass_context
def user_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    """Set a new password (the account's open sessions end)."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.accounts import find_user, set_password

    with account_store(ctx) as store:
        with store.sessions() as s:
            if find_user(s, username) is None:
                fail(f"no user {username!r}")
        password = _read_password(password_stdin)
        store.change(lambda s: set_password(s, username, password))
    click.echo(f"password of {username} changed")


def _activity_command(name: str, active: bool, doc: str) -> None:
    @click.argument("username")
    @config_option
    @click.pass_context
    def command(ctx: click.Context, username: str) -> None:
        _set_active(ctx, username, active)

    command.__doc__ = doc
    user_group.command(name)(command)


_activity_command("disable", False, "Stop an account from signing in (its open sessions end).")
_activity_command("enable", True,
                  "Let a disabled account sign in again (sessions from before stay ended).")


@user_group.command("role")
@click.argument("username")
@click.argument("role", nargs=-1)
@click.option("--role", "role_options", multiple=True, metavar="ROLE",
              help="The same as a ROLE argument (repeatable, or a comma list).")
@config_option
@click.pass_context
def user_role(ctx: click.Context, username: str, role: tuple[str, ...],
              role_options: tuple[str, ...]) -> None:
    """Give an account other roles: the ROLEs (several for an acting official, Plt)
    replace the ones it holds, the first becoming its primary role. Its open sessions
    end."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.accounts import UserError, parse_roles, set_role
    from bridge.services.members import set_body_roles

    with account_store(ctx, need_body=True) as store:
        roles = store.roles
        try:
            held = parse_roles([*role, *role_options], roles)
        except UserError as exc:
            fail(str(exc), 2)

        def give(s: Session) -> None:
            if store.body:
                set_body_roles(s, username, store.body, held, roles)
            else:
                set_role(s, username, held, roles)

        store.change(give)
    where = f" in {store.body}" if store.body else ""
    click.echo(f"user {username} is now {', '.join(held)}{where}")


def _set_active(ctx: click.Context, username: str, active: bool) -> None:
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.accounts import set_active

    with account_store(ctx) as store:
        store.change(lambda s: set_active(s, username, active))
    click.echo(f"user {username} {'enabled' if active else 'disabled'}")


@user_group.command("list")
@config_option
@click.pass_context
def user_list(ctx: click.Context) -> None:
    """The accounts: username, role, name, active."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from sqlalchemy import select

    from bridge.services.members import body_roles
    from bridge.store.models import User

    with account_store(ctx) as store, store.sessions() as s:
        users = s.scalars(select(User).order_by(User.username)).all()
        if not users:
            click.echo("no accounts")
        for u in users:
            state = "" if u.active else "  (disabled)"
            held = ",".join(u.roles)
            if store.body != "":
                held = " ".join(f"{code}:{','.join(r)}" for code, r in
                                body_roles(s, u.id).items()) or held
            click.echo(f"{u.username:<20} {held:<14} {u.full_name}{state}")
