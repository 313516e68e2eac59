"""A worker process over N made-up bodies whose cycle records itself in the database.

``python -m tests.support.share_worker DB_URL BODIES [CYCLE_SECONDS]`` runs a real
:class:`bridge.daemon.worker.SharedWorker` (real membership, real leases, real threads)
whose bodies, instead of talking to LAPOR!, each insert one row into ``share_cycles``:
(body, worker, pid, start, end). Tests kill these processes and read the rows to check
that no two cycles of one body ever overlapped and that every body kept running.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from sqlalchemy import Column, Engine, Float, Integer, MetaData, String, Table, insert

from bridge.daemon.bodyrun import BodyWork
from bridge.daemon.settings import DaemonSettings
from bridge.daemon.worker import SharedWorker
from bridge.store.db import make_engine

#: Small numbers so that the tests run in seconds.
SHARE_DAEMON = DaemonSettings(lease_ttl=1.5, lease_renew_interval=0.3,
                              standby_poll_interval=0.2, stop_timeout=5.0)
PAUSE = 0.05

meta = MetaData()
cycles = Table(
    "share_cycles", meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("body", String(32), nullable=False),
    Column("worker", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=False),
)


def body_codes(n: int) -> list[str]:
    return [f"opd{i:02d}" for i in range(n)]


def recording_work(engine: Engine, body: str, worker: Callable[[], str], pid: int,
                   seconds: float) -> BodyWork:
    def cycle(stop: threading.Event) -> dict[str, int]:
        start = time.time()
        stop.wait(seconds)  # the "requests" of this cycle
        end = time.time()
        with engine.begin() as conn:
            conn.execute(insert(cycles).values(body=body, worker=worker(), pid=pid,
                                               start=start, end=end))
        return {"recorded": 1}

    return BodyWork(cycle=cycle, pause=PAUSE)


def make_worker(db_url: str, n_bodies: int, seconds: float, *,
                cfg: DaemonSettings = SHARE_DAEMON, install_signals: bool = True,
                worker_id: str | None = None) -> SharedWorker:
    import os

    engine = make_engine(db_url)  # share_cycles: created by the test (meta.create_all)
    holder: list[SharedWorker] = []
    works = {code: recording_work(engine, code, lambda: holder[0].id, os.getpid(), seconds)
             for code in body_codes(n_bodies)}
    worker = SharedWorker(engine, works, cfg, install_signals=install_signals,
                          worker_id=worker_id)
    holder.append(worker)
    return worker


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(threadName)s %(message)s")
    db_url, n = argv[0], int(argv[1])
    seconds = float(argv[2]) if len(argv) > 2 else 0.1
    return make_worker(db_url, n, seconds).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
