"""One active syncer per deployment: a lease row in the database.

The leader holds row ``leases(name='sync')`` until ``expires_at`` and renews it well before
then; a standby asks for it every few seconds and gets it only once it has expired. Both
take and renew go through one atomic statement -- an ``INSERT ... ON CONFLICT DO UPDATE
... WHERE holder = me OR expires_at < now RETURNING`` -- so two daemons can never both
succeed, whatever the interleaving.

Expiry is on the database clock where there is one: PostgreSQL's ``now()`` (UTC). SQLite
has no server; it is a local file, so every daemon using it runs on the same machine and
shares the Python clock.

The leader also keeps a local, monotonic deadline: the moment it *sent* its last
successful renewal plus ``ttl * safety``. That deadline always falls before the expiry
the database recorded (the database read its clock after we sent), so a leader that
cannot reach the database demotes itself before any standby can take over.

Both clocks can be replaced by a :class:`LeaseClock` (tests pass a fake one, so that expiry
is a step of the fake clock rather than a sleep). Given one, the lease reads *its* time on
every dialect, PostgreSQL included: the database clock is then not consulted.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Interval, Table, case, delete, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from bridge.store.models import Lease, utcnow

log = logging.getLogger("bridge.daemon.lease")

SYNC_LEASE = "sync"

_leases = cast(Table, Lease.__table__)


class LeaseClock(Protocol):
    """The two clocks a lease reads: wall time (UTC, for expiry) and a monotonic one."""

    def utcnow(self) -> datetime: ...

    def monotonic(self) -> float: ...


def _db_now(dialect: str, clock: LeaseClock | None) -> ColumnElement[datetime] | datetime:
    if clock is not None:
        return clock.utcnow()
    if dialect == "postgresql":
        # timestamp without time zone, in UTC: how UTCDateTime stores times.
        return func.timezone("UTC", func.now())
    return utcnow()


def make_holder() -> str:
    """A name unique to this process start: host, pid and a random tag."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class LeaseInfo:
    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime
    #: Expired by the database clock (or the Python clock on SQLite) when read.
    expired: bool

    @property
    def pid(self) -> int | None:
        parts = self.holder.split(":")
        try:
            return int(parts[-2])
        except (IndexError, ValueError):
            return None


class LeaseManager:
    """Take, renew and give up one named lease for ``holder``."""

    def __init__(self, engine: Engine, ttl: float, *, holder: str | None = None,
                 name: str = SYNC_LEASE, safety: float = 0.8,
                 clock: LeaseClock | None = None) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        self.engine = engine
        self.ttl = ttl
        self.name = name
        self.holder = holder or make_holder()
        self.safety = safety
        self.dialect = engine.dialect.name
        self.clock = clock
        self._monotonic = clock.monotonic if clock is not None else time.monotonic
        #: monotonic time until which we may act as leader (0: not leader).
        self.valid_until = 0.0

    # -- the clock ----------------------------------------------------------------------

    def _now(self) -> ColumnElement[datetime] | datetime:
        return _db_now(self.dialect, self.clock)

    def _plus_ttl(self) -> ColumnElement[datetime] | datetime:
        now = self._now()
        if isinstance(now, datetime):
            return now + timedelta(seconds=self.ttl)
        return now + literal(timedelta(seconds=self.ttl), Interval())

    # -- operations -------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the lease if it is free or expired, or renew it if it is ours.

        Returns whether we hold it now. Raises the database's error if it cannot be
        reached (the caller decides what that means for leadership).
        """
        return acquire_all([self])[0]

    def _upsert(self) -> Any:
        """The one atomic statement that takes or renews this lease (RETURNING the
        holder it leaves in place)."""
        insert = pg_insert if self.dialect == "postgresql" else sqlite_insert
        upsert = insert(_leases).values(name=self.name, holder=self.holder,
                                        expires_at=self._plus_ttl(), acquired_at=self._now())
        excluded = upsert.excluded
        return upsert.on_conflict_do_update(
            index_elements=[_leases.c.name],
            set_={
                "holder": excluded.holder,
                "expires_at": excluded.expires_at,
                # A renewal keeps the time of the first acquisition.
                "acquired_at": case((_leases.c.holder == excluded.holder,
                                     _leases.c.acquired_at), else_=excluded.acquired_at),
            },
            where=or_(_leases.c.holder == excluded.holder, _leases.c.expires_at < self._now()),
        ).returning(_leases.c.holder)

    def still_valid(self) -> bool:
        """Whether our last successful renewal still covers this moment (local clock)."""
        return self._monotonic() < self.valid_until

    def release(self) -> bool:
        """Give the lease up (clean stop), so a standby takes over at its next poll."""
        self.valid_until = 0.0
        with self.engine.begin() as conn:
            done = conn.execute(delete(_leases).where(_leases.c.name == self.name,
                                                      _leases.c.holder == self.holder))
        return bool(done.rowcount)

    def current(self) -> LeaseInfo | None:
        return read_lease(self.engine, self.name, clock=self.clock)


def acquire_all(leases: Sequence[LeaseManager]) -> list[bool]:
    """Take or renew every lease of ``leases`` (all on one engine) in ONE transaction:
    whether each is held now. A worker renews all its bodies' leases this way every tick,
    so that a tick costs one commit, not one per body, and stays short of its interval.

    Each lease's local deadline counts from the moment *before* the transaction began:
    the database's expiry counts from the transaction's start or later, so the deadline
    always falls first. Nothing counts as held unless the commit went through.
    """
    if not leases:
        return []
    engine = leases[0].engine
    sent = leases[0]._monotonic()
    with engine.begin() as conn:
        rows = [conn.execute(lease._upsert()).first() for lease in leases]
    held = [row is not None and row[0] == lease.holder for row, lease in zip(rows, leases,
                                                                               strict=True)]
    for lease, ok in zip(leases, held, strict=True):
        lease.valid_until = sent + lease.ttl * lease.safety if ok else 0.0
    return held


def read_lease(engine: Engine, name: str = SYNC_LEASE, *,
               clock: LeaseClock | None = None) -> LeaseInfo | None:
    """Who holds lease ``name`` and until when (``None``: nobody ever took it, or released)."""
    now = _db_now(engine.dialect.name, clock)
    with engine.connect() as conn:
        row = conn.execute(
            select(_leases.c.holder, _leases.c.expires_at, _leases.c.acquired_at,
                   (_leases.c.expires_at < now).label("expired"))
            .where(_leases.c.name == name)
        ).first()
    if row is None:
        return None
    return LeaseInfo(name, row.holder, row.expires_at, row.acquired_at, bool(row.expired))


__all__ = ["SYNC_LEASE", "LeaseClock", "LeaseInfo", "LeaseManager", "acquire_all", "make_holder",
           "read_lease"]
