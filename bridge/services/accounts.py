"""Staff accounts: argon2 password hashes, sign-in, roles and the end of sessions.

An account holds one or more roles (an acting official, Plt, acts in two): the web page
shows the actions of each, and a command-line action names the account (``--user``) and
acts in one of its roles (see :func:`command_line_actor`). The ``operator`` account made
with the database has no password and is the only one that may act in any role
(``--role`` unchecked), for the terminal of whoever installed the bridge.

Every change that must end an account's open sessions (a new password, a role, sign-out,
disable or enable) raises the account's session generation; the staff page checks the
tag derived from it on every request (see :func:`session_tag`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.errors import BridgeError
from bridge.services.actions import Actor
from bridge.store.models import User
from bridge.store.schema import NO_PASSWORD, OPERATOR
from bridge.workflow.profile import Workflow

#: The role that administers the staff page (accounts, dead letters, the quarantine).
ADMIN_ROLE = "admin"
USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,99}$")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
#: Roles no person signs in with: the bridge acts as "sistem" by itself.
RESERVED_ROLES = frozenset({"sistem"})

_hasher = PasswordHasher()
#: Checked against when the username is unknown, so that timing does not tell.
_DUMMY_HASH = _hasher.hash("lapor-bridge-no-such-user")


class UserError(BridgeError, ValueError):
    """A user command that cannot be done; the message says why."""


class UnknownAccount(UserError):
    """An action names an account that does not exist, is disabled or lacks the role."""


@dataclass(frozen=True)
class WebUser:
    """The signed-in person, as the page needs it."""

    id: int
    username: str
    full_name: str
    #: The account's roles, the primary one first.
    roles: tuple[str, ...]
    #: Changes with the password, the roles and the session generation, so that every
    #: session signed with an older tag ends (see :func:`session_tag`).
    tag: str

    @property
    def role(self) -> str:
        """The primary role, shown beside the name."""
        return self.roles[0] if self.roles else ""

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def holds_any(self, roles: Collection[str]) -> bool:
        return any(r in roles for r in self.roles)


def session_tag(password_hash: str, roles: Sequence[str], generation: int) -> str:
    """What a session cookie must carry to stay valid. A new password, any change to the
    roles or a raised generation (sign-out, disable, enable) changes it, which ends every
    session of the account at once; checked on every request."""
    material = f"{password_hash}\0{','.join(roles)}\0{generation}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _web_user(u: User) -> WebUser:
    roles = tuple(u.roles)
    return WebUser(u.id, u.username, u.full_name, roles,
                   session_tag(u.password_hash, roles, u.session_generation or 0))


def end_sessions(user: User) -> None:
    """End every open session of ``user`` (the caller commits)."""
    user.session_generation = (user.session_generation or 0) + 1


def end_sessions_of(session: Session, user_id: int) -> None:
    """Sign-out: end every session of the account with id ``user_id``."""
    user = session.get(User, user_id)
    if user is not None:
        end_sessions(user)


def known_roles(workflow_roles: Iterable[str]) -> list[str]:
    return [*[r for r in workflow_roles if r not in RESERVED_ROLES], ADMIN_ROLE]


def intake_roles(workflow: Workflow) -> frozenset[str]:
    """Who may take in a case (a new complaint, or a LAPOR! report adopted by id): the
    roles that may act on the workflow's first stage, and the administrators."""
    first = workflow.initial_stage
    return frozenset({ADMIN_ROLE}.union(*(r.roles for r in workflow.rules
                                         if first in r.from_stages)))


def parse_roles(values: str | Iterable[str], allowed: Iterable[str]) -> list[str]:
    """``--role a --role b`` or ``--role a,b`` as a list (in order, no repeats), each one
    a role of ``allowed``; raises :class:`UserError` naming the first unknown one."""
    items = [values] if isinstance(values, str) else list(values)
    roles = list(dict.fromkeys(r.strip() for v in items for r in v.split(",") if r.strip()))
    if not roles:
        raise UserError("give at least one role (--role)")
    known = list(allowed)
    for role in roles:
        if role not in known:
            raise UserError(f"unknown role {role!r}; expected one of {', '.join(known)}")
    return roles


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password too short: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password too long (over {MAX_PASSWORD_LENGTH} characters)")


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise UserError(f"invalid username {username!r}: 2-100 characters, letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    return name


def create_user(session: Session, username: str, full_name: str,
                role: str | Iterable[str], password: str, roles: Iterable[str]) -> User:
    """Add an account holding ``role`` (one, several, or a comma list; the caller
    commits). ``roles``: the roles accepted here."""
    name = normalise_username(username)
    held = parse_roles(role, roles)
    if not full_name.strip():
        raise UserError("a full name is required (--name)")
    check_password(password)
    if session.scalar(select(User.id).where(func.lower(User.username) == name)) is not None:
        raise UserError(f"user {name!r} exists already (use `user passwd` to change the "
                        "password)")
    user = User(username=name, full_name=full_name.strip()[:200],
                password_hash=_hasher.hash(password), active=True)
    user.set_roles(held)
    session.add(user)
    session.flush()
    return user


def find_user(session: Session, username: str) -> User | None:
    return session.scalars(
        select(User).where(func.lower(User.username) == username.strip().lower())
    ).first()


def set_password(session: Session, username: str, password: str) -> User:
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    check_password(password)
    user.password_hash = _hasher.hash(password)
    end_sessions(user)
    return user


def set_active(session: Session, username: str, active: bool) -> User:
    """Disable or enable; either way the account's open sessions end, so enabling never
    brings back a cookie from before the account was disabled."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    user.active = active
    end_sessions(user)
    return user


def set_role(session: Session, username: str, role: str | Iterable[str],
             roles: Iterable[str]) -> User:
    """Give an account other roles: ``role`` (one, several, or a comma list) replaces the
    ones it held, the first becoming the primary one (its open sessions end)."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    user.set_roles(parse_roles(role, roles))
    end_sessions(user)
    return user


def command_line_actor(session: Session, username: str | None, role: str | None,
                       operator_name: str | None = None,
                       needs: Collection[str] | None = None) -> Actor:
    """Who a command-line action is done by, checked as the web page checks a signed-in
    account; raises :class:`UnknownAccount` with the one-line reason.

    ``username`` (``--user``/``$LAPOR_BRIDGE_USER``) must be an enabled account; ``role``
    (``--role``), if given, one it holds, else the service acts in the first of its
    roles that the workflow allows. Without ``username`` the action is the ``operator``
    account's, whose ``role`` is taken as given (it is required then) and whose name in
    the history is ``operator_name`` (``--actor``) when given. ``needs``: for an action
    the workflow's rules do not check (intake), the roles one of which the account must
    act in.
    """
    name = username.strip() if username else ""
    user = find_user(session, name or OPERATOR)
    if not name:
        if user is None:
            raise UnknownAccount(f"no {OPERATOR!r} account in this database: name an "
                                 "account with --user (or $LAPOR_BRIDGE_USER)")
        if not user.active:
            raise UnknownAccount(f"the {OPERATOR!r} account is disabled: name an account "
                                 "with --user (or $LAPOR_BRIDGE_USER)")
        if not role:
            raise UnknownAccount("give --role (or $LAPOR_BRIDGE_ROLE), or name an account "
                                 "with --user")
        return Actor(operator_name or OPERATOR, role)
    if user is None:
        raise UnknownAccount(f"no user {name!r} (see `lapor-bridge user list`)")
    return account_actor(user, user.roles, role, needs)


def account_actor(user: User, held: Sequence[str], role: str | None,
                  needs: Collection[str] | None = None) -> Actor:
    """The enabled account ``user`` acting with ``held`` (its roles where it acts), in
    ``role`` or the first that fits (see :func:`command_line_actor`)."""
    if not user.active:
        raise UnknownAccount(f"user {user.username!r} is disabled")
    held = list(held)
    who = f"{user.full_name} ({user.username})"
    if needs is not None and not (role and role not in held):
        usable = [r for r in held if r in needs and (not role or r == role)]
        if not usable:
            raise UnknownAccount(f"{'role ' + repr(role) if role else 'no role'} of user "
                                 f"{user.username!r} may do this; it needs one of "
                                 f"{', '.join(sorted(needs))}")
        held = usable
    if role:
        if role not in held:
            raise UnknownAccount(f"user {user.username!r} does not hold role {role!r} "
                                 f"(holds {', '.join(held) or 'none'})")
        return Actor(who, role)
    if not held:
        raise UnknownAccount(f"user {user.username!r} holds no role")
    return Actor(who, held[0], also=tuple(held[1:]))


def authenticate(session: Session, username: str, password: str) -> WebUser | None:
    """The account if the password is right and the account active; else None.

    Takes about as long for an unknown name as for a wrong password.
    """
    user = find_user(session, username) if username.strip() else None
    if user is None or not user.active or user.password_hash == NO_PASSWORD:
        with contextlib.suppress(VerificationError):
            _hasher.verify(_DUMMY_HASH, password or "-")
        return None
    try:
        _hasher.verify(user.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return _web_user(user)


def load_user(session: Session, user_id: int) -> WebUser | None:
    user = session.get(User, user_id)
    if user is None or not user.active:
        return None
    return _web_user(user)
