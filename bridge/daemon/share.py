"""Several workers on one database: who is alive, which bodies each one runs.

* **Membership** (table ``workers``, migration 0012): every ``lapor-bridge run`` process
  keeps a row with a heartbeat and an expiry on the database clock (as the leases do). A
  worker whose row has expired -- it was killed, its machine is gone, it cannot reach the
  database -- no longer counts.
* **Assignment**: :func:`assign` is a pure function of the body codes and the live worker
  ids, so every worker computes the same answer from the same rows, with no coordinator.
* **Ownership**: the answer is only a wish. What lets a worker talk to LAPOR! for a body
  is that body's lease (``leases(name='body:<code>')``, :mod:`bridge.daemon.lease`): taken
  atomically, renewed every tick, expiring ``ttl`` seconds after the last renewal. So two
  workers that briefly disagree on the assignment can never both run a body; the worst a
  disagreement does is a short gap.
* **Hand-back**: a worker holding a body that is no longer its share asks the body's
  runner to end its cycle at the next page or row, then releases the lease; the rightful owner takes it
  at its next tick. A dead worker's bodies are taken over once its leases expire: within
  ``ttl`` + one tick.

SQLite is one file on one machine, written by one process at a time: it stays
single-worker, and a second worker is refused at start (:class:`SecondWorker`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, cast

from sqlalchemy import (
    Engine,
    Interval,
    Table,
    create_engine,
    delete,
    insert,
    inspect,
    literal,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from bridge.daemon.lease import (
    SYNC_LEASE,
    LeaseClock,
    LeaseManager,
    _db_now,
    acquire_all,
    make_holder,
)
from bridge.errors import BridgeError
from bridge.store.models import Worker

log = logging.getLogger("bridge.daemon.share")

_workers = cast(Table, Worker.__table__)


def body_lease(code: str) -> str:
    """The lease that makes a worker the one owner of body ``code``."""
    return f"body:{code}"


def lease_names(bodies: Sequence[str]) -> dict[str, str]:
    """Each body's lease. A deployment of one body keeps the lease it always had
    (``sync``): one worker leads, the others stand by, exactly as before bodies."""
    if len(bodies) == 1:
        return {bodies[0]: SYNC_LEASE}
    return {code: body_lease(code) for code in bodies}


# -- the assignment (pure) ---------------------------------------------------------------


def _score(worker: str, body: str) -> int:
    digest = hashlib.sha256(f"{worker}\0{body}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def assign(bodies: Iterable[str], workers: Iterable[str]) -> dict[str, list[str]]:
    """Spread ``bodies`` over ``workers``: each gets ``B // W`` or one more, and the
    answer depends only on the two sets (not their order).

    Rendezvous hashing with quotas: every (worker, body) pair has a fixed pseudo-random
    score; pairs are taken best first, a body going to the first worker with room left.
    A body therefore stays with its worker as long as that worker lives and has room, so
    a worker joining or leaving moves few bodies besides the ones it takes or leaves.
    """
    body_list = sorted(set(bodies))
    worker_list = sorted(set(workers))
    out: dict[str, list[str]] = {w: [] for w in worker_list}
    if not worker_list:
        return out
    base, extra = divmod(len(body_list), len(worker_list))
    # Which workers carry the one extra body: a fixed order too (by their own hash).
    by_hash = sorted(worker_list, key=lambda w: (_score(w, ""), w))
    room = {w: base + (1 if i < extra else 0) for i, w in enumerate(by_hash)}
    pairs = sorted(((_score(w, b), w, b) for w in worker_list for b in body_list),
                   reverse=True)
    placed: set[str] = set()
    for _, worker, body in pairs:
        if body in placed or room[worker] == 0:
            continue
        out[worker].append(body)
        placed.add(body)
        room[worker] -= 1
    for worker in out:
        out[worker].sort()
    return out


# -- membership ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    expires_at: datetime
    #: Its heartbeat has run out (database clock; the Python clock on SQLite).
    expired: bool

    def describe(self) -> str:
        return f"{self.host} pid {self.pid}"


class SecondWorker(BridgeError):
    """Another worker runs on this SQLite database."""

    def __init__(self, other: WorkerInfo) -> None:
        super().__init__(
            f"another worker runs on this SQLite database ({other.describe()}, started "
            f"{other.started_at:%Y-%m-%d %H:%M:%S} UTC); SQLite allows one worker: stop it "
            f"first, or use PostgreSQL to run several")
        self.other = other


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def read_workers(engine: Engine, *, clock: LeaseClock | None = None) -> list[WorkerInfo]:
    """Every row of ``workers`` (none if the table does not exist yet), oldest first."""
    if not inspect(engine).has_table("workers"):
        return []
    now = _db_now(engine.dialect.name, clock)
    with engine.connect() as conn:
        rows = conn.execute(
            select(_workers, (_workers.c.expires_at < now).label("expired"))
            .order_by(_workers.c.started_at, _workers.c.id)).all()
    return [WorkerInfo(r.id, r.host, r.pid, r.started_at, r.heartbeat_at, r.expires_at,
                       bool(r.expired)) for r in rows]


def running_elsewhere(engine: Engine, me: str | None = None, *,
                      clock: LeaseClock | None = None) -> list[WorkerInfo]:
    """The other workers that are alive: heartbeat not expired and, on this host, the
    process still exists (a worker killed a moment ago is not running, whatever its
    row says)."""
    host = socket.gethostname()[:200]
    return [w for w in read_workers(engine, clock=clock)
            if w.id != me and not w.expired and (w.host != host or _pid_alive(w.pid))]


def sqlite_second_worker(engine: Engine, me: str | None = None, *,
                         clock: LeaseClock | None = None) -> WorkerInfo | None:
    """On SQLite, the worker already running on the database (``None``: none, or not
    SQLite). ``check-config`` and ``run`` both ask."""
    if engine.dialect.name != "sqlite":
        return None
    others = running_elsewhere(engine, me, clock=clock)
    return others[0] if others else None


def sqlite_worker_at(url: str) -> WorkerInfo | None:
    """The worker running on the SQLite database at ``url``, read without creating or
    changing anything (``None``: none, no such file yet, or not SQLite)."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:" \
            or not Path(path).is_file():
        return None
    engine = create_engine(url)
    try:
        return sqlite_second_worker(engine)
    except DBAPIError:  # not a bridge database, or locked: nothing to say here
        return None
    finally:
        engine.dispose()


class Membership:
    """This process's row in ``workers``: joined, kept alive, left."""

    def __init__(self, engine: Engine, ttl: float, *, worker_id: str | None = None,
                 clock: LeaseClock | None = None) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        self.engine = engine
        self.ttl = ttl
        self.id = worker_id or make_holder()
        self.clock = clock
        self.dialect = engine.dialect.name
        self.host = socket.gethostname()[:200]
        self.pid = os.getpid()

    def _times(self) -> dict[str, object]:
        now = _db_now(self.dialect, self.clock)
        ttl = timedelta(seconds=self.ttl)
        later = now + ttl if isinstance(now, datetime) else now + literal(ttl, Interval())
        return {"heartbeat_at": now, "expires_at": later}

    def join(self) -> None:
        """Add this worker; on SQLite, refuse (:class:`SecondWorker`) if another runs.

        Two SQLite workers starting at the same moment both insert, then both look: the
        younger one leaves, so exactly one stays.
        """
        if self.dialect == "sqlite":
            other = sqlite_second_worker(self.engine, self.id, clock=self.clock)
            if other is not None:
                raise SecondWorker(other)
        self.forget_dead()
        started = _db_now(self.dialect, self.clock)
        with self.engine.begin() as conn:
            conn.execute(delete(_workers).where(_workers.c.id == self.id))
            conn.execute(insert(_workers).values(id=self.id, host=self.host, pid=self.pid,
                                                 started_at=started, **self._times()))
        if self.dialect == "sqlite":
            other = sqlite_second_worker(self.engine, self.id, clock=self.clock)
            if other is not None and (other.started_at, other.id) < self._started():
                self.leave()
                raise SecondWorker(other)

    def _started(self) -> tuple[datetime, str]:
        with self.engine.connect() as conn:
            started = conn.scalar(select(_workers.c.started_at).where(_workers.c.id == self.id))
        assert started is not None
        return started, self.id

    def heartbeat(self) -> None:
        """Push our expiry ``ttl`` ahead (and come back if a cleaner removed our row)."""
        with self.engine.begin() as conn:
            done = conn.execute(update(_workers).where(_workers.c.id == self.id)
                                .values(**self._times()))
            if not done.rowcount:
                conn.execute(insert(_workers).values(
                    id=self.id, host=self.host, pid=self.pid,
                    started_at=_db_now(self.dialect, self.clock), **self._times()))

    def live(self) -> list[str]:
        """The ids of the workers whose heartbeat has not run out (us included)."""
        now = _db_now(self.dialect, self.clock)
        with self.engine.connect() as conn:
            ids = conn.scalars(select(_workers.c.id).where(_workers.c.expires_at >= now)).all()
        return sorted(set(ids) | {self.id})

    def leave(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(_workers).where(_workers.c.id == self.id))

    def forget_dead(self, after: timedelta = timedelta(days=1)) -> int:
        """Remove the rows of workers gone for ``after`` (the others stay for ``status``)."""
        now = _db_now(self.dialect, self.clock)
        before = now - after if isinstance(now, datetime) else now - literal(after, Interval())
        with self.engine.begin() as conn:
            done = conn.execute(delete(_workers).where(_workers.c.expires_at < before))
        return int(done.rowcount or 0)


# -- ownership ------------------------------------------------------------------------------


class BodyHandle(Protocol):
    """What the share needs of a running body (:class:`bridge.daemon.bodyrun.BodyRunner`)."""

    def hand_back(self) -> None:
        """End the cycle in hand at its next page or row, then stop (the body goes to
        another worker)."""

    def stop_now(self) -> None:
        """Stop at the next page or row (the lease is lost, or the process stops)."""

    def finished(self) -> bool: ...

    def join(self, timeout: float) -> None: ...


StartBody = Callable[[str, LeaseManager], BodyHandle]


@dataclass
class _Owned:
    lease: LeaseManager
    handle: BodyHandle
    #: The lease was lost: the runner is stopping; never release what is not ours.
    lost: bool = False
    handing_back: bool = False


class Share:
    """One worker's side of the sharing: call :meth:`tick` every poll interval and
    :meth:`watchdog` more often; :meth:`stop` at the end.

    ``start_body(code, lease)`` starts running body ``code`` (its own thread) and returns
    its handle; it is called only while this worker holds the body's lease.
    """

    def __init__(self, engine: Engine, bodies: Sequence[str], membership: Membership,
                 start_body: StartBody, *, ttl: float, safety: float = 0.8,
                 clock: LeaseClock | None = None) -> None:
        if not bodies:
            raise ValueError("no bodies to share")
        self.engine = engine
        self.bodies = list(bodies)
        self.names = lease_names(self.bodies)
        self.membership = membership
        self.start_body = start_body
        self.ttl = ttl
        self.safety = safety
        self.clock = clock
        self.owned: dict[str, _Owned] = {}
        self._lock = threading.RLock()
        #: The last assignment computed (for status and tests).
        self.share: list[str] = []
        self.live: list[str] = []

    @property
    def id(self) -> str:
        return self.membership.id

    def _lease(self, code: str) -> LeaseManager:
        return LeaseManager(self.engine, self.ttl, holder=self.id, name=self.names[code],
                            safety=self.safety, clock=self.clock)

    def running(self) -> list[str]:
        with self._lock:
            return sorted(c for c, o in self.owned.items() if not o.lost)

    def tick(self) -> None:
        """Heartbeat, recompute the share, renew / hand back / take leases.

        Every renewal and take of the tick goes in one transaction (one commit however
        many bodies), so that a tick stays well inside its interval and a dead worker's
        bodies are taken within lease_ttl + tick.

        Raises the database's error when it cannot be reached (the caller logs it; the
        watchdog stops every body whose renewal no longer covers the present).
        """
        self.membership.heartbeat()
        live = self.membership.live()
        mine = set(assign(self.bodies, live).get(self.id, []))
        with self._lock:
            self.live, self.share = live, sorted(mine)
            for code, owned in list(self.owned.items()):
                if owned.handle.finished():
                    self._forget(code, owned)
            renew = [code for code, owned in self.owned.items() if not owned.lost]
            take = [code for code in self.bodies if code in mine and code not in self.owned]
            leases = [self.owned[code].lease for code in renew] + [self._lease(c) for c in take]
            held = acquire_all(leases)
            for code, ok in zip(renew, held[:len(renew)], strict=True):
                self._keep_or_drop(code, self.owned[code], ok, code in mine)
            for code, lease, ok in zip(take, leases[len(renew):], held[len(renew):],
                                       strict=True):
                if ok:
                    log.info("body %s: taken by this worker", code,
                             extra={"event": "body_taken", "body": code, "worker": self.id})
                    self.owned[code] = _Owned(lease, self.start_body(code, lease))

    def _forget(self, code: str, owned: _Owned) -> None:
        del self.owned[code]
        if not owned.lost:
            owned.lease.release()
            log.info("body %s: released%s", code,
                     " (handed back)" if owned.handing_back else "",
                     extra={"event": "body_released", "body": code})

    def _keep_or_drop(self, code: str, owned: _Owned, held: bool, wanted: bool) -> None:
        if not held:
            owned.lost = True
            owned.handle.stop_now()
            log.error("body %s: lost its lease to another worker; stopping it", code,
                      extra={"event": "body_lost", "body": code})
            return
        if not wanted and not owned.handing_back:
            owned.handing_back = True
            owned.handle.hand_back()
            log.info("body %s: no longer this worker's share; handing it back after the "
                     "page in hand", code, extra={"event": "body_hand_back", "body": code})

    def watchdog(self) -> None:
        """Stop every body whose last renewal no longer covers the present (the database
        is unreachable or slow): it must be silent before its lease can expire."""
        with self._lock:
            for code, owned in self.owned.items():
                if not owned.lost and not owned.lease.still_valid():
                    owned.lost = True
                    owned.handle.stop_now()
                    log.error("body %s: its lease could not be renewed in time; stopped",
                              code, extra={"event": "body_lost", "body": code})

    def stop(self, timeout: float, *, release: bool = True) -> list[str]:
        """Stop every body at its next page or row, wait up to ``timeout`` seconds, give
        the leases back and leave. Returns the bodies still running at the end."""
        with self._lock:
            owned = dict(self.owned)
        for o in owned.values():
            o.handle.stop_now()
        deadline = time.monotonic() + timeout
        still: list[str] = []
        for code, o in owned.items():
            o.handle.join(max(0.0, deadline - time.monotonic()))
            if not o.handle.finished():
                still.append(code)
        if release:
            for code, o in owned.items():
                if not o.lost:
                    try:
                        o.lease.release()
                    except Exception as exc:
                        log.warning("body %s: lease not released (%s); it expires in %g s",
                                    code, exc, self.ttl)
            try:
                self.membership.leave()
            except Exception as exc:
                log.warning("worker row not removed (%s); it expires in %g s", exc, self.ttl)
        with self._lock:
            self.owned.clear()
        return still


def owners(engine: Engine, bodies: Sequence[str], *,
           clock: LeaseClock | None = None) -> Mapping[str, str | None]:
    """Who holds each body's lease now (``None``: nobody, or expired)."""
    from bridge.daemon.lease import read_lease

    out: dict[str, str | None] = {}
    for code, name in lease_names(bodies).items():
        info = read_lease(engine, name, clock=clock)
        out[code] = None if info is None or info.expired else info.holder
    return out


__all__ = [
    "BodyHandle",
    "Membership",
    "SecondWorker",
    "Share",
    "WorkerInfo",
    "assign",
    "body_lease",
    "lease_names",
    "owners",
    "read_workers",
    "running_elsewhere",
    "sqlite_second_worker",
    "sqlite_worker_at",
]
