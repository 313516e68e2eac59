"""The ``daemon_status`` table (migration 0003): each daemon's role and heartbeat.

Each running daemon writes its own row (keyed by its lease holder name) at every lease
check: its role (leader, standby, stopped), when it started, its last heartbeat, when
each of its jobs runs next, and a little more (the port of its HTTP endpoint, its latest
job results). ``lapor-bridge status`` reads the rows to show who is running.

The table is declared here with SQLAlchemy Core rather than in ``bridge.store.models``
so that the daemon owns it; the schema itself comes from the Alembic migration.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, delete, select

from bridge.store.models import DaemonStatus, utcnow

# The mapped table, used through Core: status writes are single statements.
daemon_status: Table = DaemonStatus.__table__  # type: ignore[assignment]

LEADER, STANDBY, STARTING, STOPPED = "leader", "standby", "starting", "stopped"


@dataclass(frozen=True)
class InstanceStatus:
    instance: str
    role: str
    pid: int
    host: str
    started_at: datetime
    heartbeat_at: datetime
    next_runs: dict[str, str | None]
    info: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "role": self.role,
            "pid": self.pid,
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "heartbeat_at": self.heartbeat_at.isoformat(),
            "next_runs": self.next_runs,
            "info": self.info,
        }


def write_status(engine: Engine, instance: str, role: str, started_at: datetime,
                 next_runs: dict[str, str | None], info: dict[str, Any]) -> None:
    """Insert or update this process's row (only this process writes it)."""
    values = {"role": role, "pid": os.getpid(), "host": socket.gethostname()[:200],
              "started_at": started_at, "heartbeat_at": utcnow(), "next_runs": next_runs,
              "info": info}
    with engine.begin() as conn:
        done = conn.execute(daemon_status.update()
                            .where(daemon_status.c.instance == instance).values(**values))
        if not done.rowcount:
            conn.execute(daemon_status.insert().values(instance=instance, **values))


def read_statuses(engine: Engine) -> list[InstanceStatus]:
    with engine.connect() as conn:
        rows = conn.execute(select(daemon_status).order_by(daemon_status.c.started_at)).all()
    return [InstanceStatus(r.instance, r.role, r.pid, r.host, r.started_at, r.heartbeat_at,
                           dict(r.next_runs or {}), dict(r.info or {})) for r in rows]


def forget_old(engine: Engine, older_than: timedelta) -> int:
    """Remove rows of daemons not heard of for ``older_than`` (they died or stopped)."""
    with engine.begin() as conn:
        done = conn.execute(delete(daemon_status)
                            .where(daemon_status.c.heartbeat_at < utcnow() - older_than))
    return int(done.rowcount or 0)


__all__ = [
    "LEADER",
    "STANDBY",
    "STARTING",
    "STOPPED",
    "InstanceStatus",
    "daemon_status",
    "forget_old",
    "read_statuses",
    "write_status",
]
