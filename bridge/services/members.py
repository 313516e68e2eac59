"""Who signs in to the staff page, and with which roles, in one body or in a Pemda.

A one-body deployment keeps its accounts beside its cases (:class:`LocalAccounts`, the
roles of :mod:`bridge.services.accounts`). A Pemda (``[[bodies]]``) keeps them in the
deployment's own database, each account a member of one or several bodies with its roles
per body (table ``user_body_roles``); :class:`BodyAccounts` is one body's view of them.
The password, the session generation and every body's roles make one session tag, so a
sign-in is valid in each of the account's bodies and any change to it ends them all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from bridge.services.accounts import (
    UnknownAccount,
    UserError,
    WebUser,
    account_actor,
    authenticate,
    create_user,
    end_sessions,
    end_sessions_of,
    find_user,
    load_user,
    parse_roles,
    session_tag,
)
from bridge.services.actions import Actor
from bridge.store.models import User, UserBodyRole


class Accounts(Protocol):
    """What the staff page asks of the accounts of the body it serves."""

    def authenticate(self, username: str, password: str) -> WebUser | None: ...

    def load(self, user_id: int) -> WebUser | None:
        """The account with its roles *in this body*; None when it cannot sign in here."""

    def find(self, username: str) -> WebUser | None: ...

    def end_sessions(self, user_id: int) -> None: ...

    def bodies(self, user_id: int) -> list[str]:
        """The bodies the account belongs to (empty on a one-body deployment)."""


class LocalAccounts:
    """A one-body deployment: the accounts in the body's own store, as always."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def authenticate(self, username: str, password: str) -> WebUser | None:
        with self.sessions() as s, s.begin():
            return authenticate(s, username, password)

    def load(self, user_id: int) -> WebUser | None:
        with self.sessions() as s:
            return load_user(s, user_id)

    def find(self, username: str) -> WebUser | None:
        with self.sessions() as s:
            found = find_user(s, username)
            return load_user(s, found.id) if found else None

    def end_sessions(self, user_id: int) -> None:
        with self.sessions() as s, s.begin():
            end_sessions_of(s, user_id)

    def bodies(self, user_id: int) -> list[str]:
        return []


# -- a Pemda's accounts --------------------------------------------------------------


def body_roles(session: Session, user_id: int) -> dict[str, list[str]]:
    """Each body the account belongs to, with its roles there (primary first)."""
    rows = session.scalars(select(UserBodyRole).where(UserBodyRole.user_id == user_id)
                           .order_by(UserBodyRole.body, UserBodyRole.position)).all()
    held: dict[str, list[str]] = {}
    for row in rows:
        held.setdefault(row.body, []).append(row.role)
    return held


def _member(user: User, held: dict[str, list[str]], body: str) -> WebUser:
    everywhere = [f"{code}:{role}" for code in sorted(held) for role in held[code]]
    roles = tuple(held.get(body, ()))
    return WebUser(user.id, user.username, user.full_name, roles,
                   session_tag(user.password_hash, everywhere, user.session_generation or 0))


def set_body_roles(session: Session, username: str, body: str, role: str | Iterable[str],
                   allowed: Iterable[str]) -> User:
    """Make ``role`` (one, several or a comma list) the account's roles in ``body``,
    replacing the ones it held there; its open sessions end (the caller commits)."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    roles = parse_roles(role, allowed)
    session.execute(delete(UserBodyRole).where(UserBodyRole.user_id == user.id,
                                               UserBodyRole.body == body))
    session.add_all(UserBodyRole(user_id=user.id, body=body, role=r, position=i)
                    for i, r in enumerate(roles))
    end_sessions(user)
    return user


def leave_body(session: Session, username: str, body: str) -> User:
    """Take the account out of ``body`` (its open sessions end)."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    gone = session.execute(delete(UserBodyRole).where(UserBodyRole.user_id == user.id,
                                                      UserBodyRole.body == body))
    if not getattr(gone, "rowcount", 1):
        raise UserError(f"user {user.username!r} is no member of {body}")
    end_sessions(user)
    return user


def create_member(session: Session, username: str, full_name: str, body: str,
                  role: str | Iterable[str], password: str, allowed: Sequence[str]) -> User:
    """A new Pemda account, member of ``body`` with ``role`` there (the caller commits).
    Its roles are per body only: the one-body roles table stays empty for it."""
    user = create_user(session, username, full_name, role, password, allowed)
    user.set_roles([])
    session.flush()
    return set_body_roles(session, user.username, body, role, allowed)


class BodyAccounts:
    """One body of a Pemda: the deployment's accounts (``sessions``: its own database),
    each signed in here with its roles in ``body``."""

    def __init__(self, sessions: sessionmaker[Session], body: str) -> None:
        self.sessions = sessions
        self.body = body

    def _member(self, session: Session, user: User | None) -> WebUser | None:
        if user is None or not user.active:
            return None
        return _member(user, body_roles(session, user.id), self.body)

    def authenticate(self, username: str, password: str) -> WebUser | None:
        with self.sessions() as s, s.begin():
            found = authenticate(s, username, password)
            return self._member(s, s.get(User, found.id)) if found else None

    def load(self, user_id: int) -> WebUser | None:
        with self.sessions() as s:
            return self._member(s, s.get(User, user_id))

    def find(self, username: str) -> WebUser | None:
        with self.sessions() as s:
            return self._member(s, find_user(s, username))

    def end_sessions(self, user_id: int) -> None:
        with self.sessions() as s, s.begin():
            end_sessions_of(s, user_id)

    def bodies(self, user_id: int) -> list[str]:
        with self.sessions() as s:
            return list(body_roles(s, user_id))


def member_actor(session: Session, body: str, username: str, role: str | None,
                 needs: Collection[str] | None = None) -> Actor:
    """A Pemda's account acting in ``body`` from the command line (``--user``), with its
    roles in that body, as the body's page would let it act; raises
    :class:`UnknownAccount` with the one-line reason."""
    user = find_user(session, username)
    if user is None:
        raise UnknownAccount(f"no user {username.strip()!r} (see `lapor-bridge user list`)")
    held = body_roles(session, user.id)
    if not held.get(body):
        elsewhere = ", ".join(sorted(held))
        raise UnknownAccount(f"user {user.username!r} has no role in {body}"
                             + (f" (member of {elsewhere})" if elsewhere else ""))
    return account_actor(user, held[body], role, needs)


__all__ = ["Accounts", "BodyAccounts", "LocalAccounts", "body_roles", "create_member",
           "leave_body", "member_actor", "set_body_roles"]
