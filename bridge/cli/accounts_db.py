"""Where the staff accounts of a command live: the body's own store on a one-body
deployment, the deployment's own database (default schema, or the main SQLite file) on a
Pemda, where each account belongs to bodies with roles per body."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import click

from bridge.cli.common import chosen_body, fail, load, runtime

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker

    from bridge.config import Settings

T = TypeVar("T")


@dataclass
class AccountStore:
    sessions: sessionmaker[Session]
    #: The roles accepted (the body's workflow roles and admin).
    roles: list[str]
    #: On a Pemda, the body ``--body`` names (None when none was named); "" otherwise.
    body: str | None

    def change(self, write: Callable[[Session], T]) -> T:
        """Run ``write`` in one transaction; an account change the rules refuse
        (``UserError``) ends the command with its one-line reason, nothing written."""
        from bridge.services.accounts import UserError

        try:
            with self.sessions() as s, s.begin():
                return write(s)
        except UserError as exc:
            fail(str(exc))


@contextmanager
def deployment_engine(settings: Settings) -> Iterator[Engine]:
    """A Pemda's own database (its accounts, workers and body leases), in its configured
    schema and file mode; the schema is created or upgraded on first use."""
    from bridge.filemodes import file_mode
    from bridge.store.db import make_engine
    from bridge.store.schema import ensure_schema

    db = settings.database
    engine = make_engine(db.url, settings.secrets.database_password,
                         file_mode=file_mode(settings), schema=db.db_schema)
    try:
        ensure_schema(engine)
        yield engine
    finally:
        engine.dispose()


@contextmanager
def deployment_database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a Pemda's own database (see :func:`deployment_engine`)."""
    from bridge.store.db import session_factory

    with deployment_engine(settings) as engine:
        yield session_factory(engine)


@contextmanager
def account_store(ctx: click.Context, need_body: bool = False) -> Iterator[AccountStore]:
    from bridge.bodies import body_of, has_bodies
    from bridge.services.accounts import known_roles

    settings = load(ctx)
    if not has_bodies(settings):
        with runtime(ctx) as rt:
            yield AccountStore(rt.sessions, known_roles(rt.workflow.roles), "")
        return
    code = chosen_body(ctx)
    if code is None and need_body:
        fail("a Pemda's accounts belong to bodies: name one with --body CODE", 2)
    roles: list[str] = []
    if code is not None:
        try:
            body = body_of(settings, code)
        except Exception as exc:  # noqa: BLE001 - ConfigError: the one-line reason
            fail(str(exc), 2)
        code = body.code
        with runtime(ctx) as rt:
            roles = known_roles(rt.workflow.roles)
    with deployment_database(settings) as sessions:
        yield AccountStore(sessions, roles, code)


__all__ = ["AccountStore", "account_store", "deployment_database"]
