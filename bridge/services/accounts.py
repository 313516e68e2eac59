"""Staff accounts: argon2 password hashes, sign-in, roles and the end of sessions.

Every change that must end an account's open sessions (a new password, a role, sign-out,
disable or enable) raises the account's session generation; the staff page checks the
tag derived from it on every request (see :func:`session_tag`).
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge.errors import BridgeError
from bridge.store.models import User

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


@dataclass(frozen=True)
class WebUser:
    """The signed-in person, as the page needs it."""

    id: int
    username: str
    full_name: str
    role: str
    #: Changes with the password, the role and the session generation, so that every
    #: session signed with an older tag ends (see :func:`session_tag`).
    tag: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN_ROLE


def session_tag(password_hash: str, role: str, generation: int) -> str:
    """What a session cookie must carry to stay valid. A new password, a new role or a
    raised generation (sign-out, disable, enable) changes it, which ends every session of
    the account at once; checked on every request."""
    material = f"{password_hash}\0{role}\0{generation}"
    return hashlib.sha256(material.encode()).hexdigest()[:32]


def _web_user(u: User) -> WebUser:
    return WebUser(u.id, u.username, u.full_name, u.role,
                   session_tag(u.password_hash, u.role, u.session_generation or 0))


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


def create_user(session: Session, username: str, full_name: str, role: str, password: str,
                roles: Iterable[str]) -> User:
    """Add an account (the caller commits). ``roles``: the roles accepted here."""
    name = normalise_username(username)
    allowed = list(roles)
    if role not in allowed:
        raise UserError(f"unknown role {role!r}; expected one of {', '.join(allowed)}")
    if not full_name.strip():
        raise UserError("a full name is required (--name)")
    check_password(password)
    if session.scalar(select(User.id).where(func.lower(User.username) == name)) is not None:
        raise UserError(f"user {name!r} exists already (use `user passwd` to change the "
                        "password)")
    user = User(username=name, full_name=full_name.strip()[:200], role=role,
                password_hash=_hasher.hash(password), active=True)
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


def set_role(session: Session, username: str, role: str, roles: Iterable[str]) -> User:
    """Give an account another role (its open sessions end)."""
    user = find_user(session, username)
    if user is None:
        raise UserError(f"no user {username!r}")
    allowed = list(roles)
    if role not in allowed:
        raise UserError(f"unknown role {role!r}; expected one of {', '.join(allowed)}")
    user.role = role
    end_sessions(user)
    return user


def authenticate(session: Session, username: str, password: str) -> WebUser | None:
    """The account if the password is right and the account active; else None.

    Takes about as long for an unknown name as for a wrong password.
    """
    user = find_user(session, username) if username.strip() else None
    if user is None or not user.active:
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
