"""``lapor-bridge run`` for a deployment of several bodies: one worker of many.

Threads of a worker process:

* **share**: every ``tick`` seconds (the smaller of ``lease_renew_interval`` and
  ``standby_poll_interval``) writes this worker's heartbeat, recomputes its share of the
  bodies from the live workers, renews the leases it holds, hands back what is no longer
  its share and takes what is (:class:`bridge.daemon.share.Share`);
* **watchdog**: stops a body as soon as its last renewal no longer covers the present;
* **body:<code>**: one per owned body (:class:`bridge.daemon.bodyrun.BodyRunner`).

A deployment of one body does not come here: :func:`serve` runs the classic
:class:`bridge.daemon.scheduler.Daemon`, whose sync lease is that body's lease.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Mapping
from types import FrameType

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from bridge.config import Settings
from bridge.daemon.bodyrun import BodyRunner, BodyWork
from bridge.daemon.lease import LeaseClock, LeaseManager
from bridge.daemon.runner import _first_line
from bridge.daemon.settings import DaemonSettings
from bridge.daemon.share import Membership, SecondWorker, Share

log = logging.getLogger("bridge.daemon")


class SharedWorker:
    """One worker process over the bodies of ``works``. ``run()`` blocks and returns the
    exit code (0: clean stop; 2: refused, another worker runs on SQLite)."""

    def __init__(self, engine: Engine, works: Mapping[str, BodyWork], cfg: DaemonSettings,
                 *, worker_id: str | None = None, clock: LeaseClock | None = None,
                 install_signals: bool = True) -> None:
        self.engine = engine
        self.works = dict(works)
        self.cfg = cfg
        self.install_signals = install_signals
        self.membership = Membership(engine, cfg.lease_ttl, worker_id=worker_id, clock=clock)
        self.share = Share(engine, sorted(self.works), self.membership, self._start_body,
                           ttl=cfg.lease_ttl, clock=clock)
        self.tick = min(cfg.lease_renew_interval, cfg.standby_poll_interval)
        self.stopping = threading.Event()
        self.runners: dict[str, BodyRunner] = {}
        self._crashed = False
        self._trouble_logged = 0.0
        self._threads: list[threading.Thread] = []

    @property
    def id(self) -> str:
        return self.membership.id

    def _start_body(self, code: str, lease: LeaseManager) -> BodyRunner:
        runner = BodyRunner(code, self.works[code], lease)
        self.runners[code] = runner
        return runner.start()

    # -- public ----------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        if self.stopping.is_set():
            return
        log.info("stopping (%s): finishing the page or row in hand, at most %g s", reason,
                 self.cfg.stop_timeout, extra={"event": "stopping"})
        self.stopping.set()

    def crash(self) -> None:
        """Stop as a killed process would, for tests run in one process: the bodies stop,
        nothing is released, the heartbeat just ends (the others take over on expiry)."""
        self._crashed = True
        self.stopping.set()

    def run(self) -> int:
        if self.install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        try:
            self.membership.join()
        except SecondWorker as exc:
            log.error("%s", exc, extra={"event": "second_worker"})
            return 2
        except DBAPIError as exc:
            log.error("cannot join the workers on the database: %s: %s",
                      type(exc).__name__, _first_line(exc))
            return 1
        log.info("worker %s started over %d bodies", self.id, len(self.works),
                 extra={"event": "started", "instance": self.id})
        for name, target in (("share", self._share_loop), ("watchdog", self._watchdog_loop)):
            thread = threading.Thread(target=target, name=f"worker-{name}", daemon=True)
            self._threads.append(thread)
            thread.start()
        # Never an unbounded wait: Python runs the SIGTERM handler only when this thread
        # executes bytecode, and a worker was seen asleep here 30 s after SIGTERM with
        # its handler never run (scale test under load; the SIGUSR1 stack dump). Waking
        # every half second runs a pending handler within that time.
        while not self.stopping.wait(0.5):
            pass
        for thread in self._threads:
            thread.join(self.cfg.stop_timeout)
        return self._finish()

    # -- loops --------------------------------------------------------------------------

    def _share_loop(self) -> None:
        # Ticks start every ``tick`` seconds whatever one takes (not ``tick`` after the
        # last ended), so that a dead worker's bodies are taken within lease_ttl + tick.
        next_at = time.monotonic()
        while not self.stopping.is_set():
            before = list(self.share.share)
            try:
                self.share.tick()
            except Exception as exc:
                now = time.monotonic()
                if now - self._trouble_logged >= 60:
                    self._trouble_logged = now
                    log.error("cannot reach the database to renew the body leases (%s: %s)",
                              type(exc).__name__, _first_line(exc),
                              extra={"event": "lease_error"})
            else:
                if self.share.share != before:
                    log.info("share: %d live worker(s); this one runs %s",
                             len(self.share.live), ", ".join(self.share.share) or "nothing",
                             extra={"event": "share", "bodies": self.share.share})
            next_at = max(next_at + self.tick, time.monotonic())
            self.stopping.wait(next_at - time.monotonic())

    def _watchdog_loop(self) -> None:
        step = min(0.5, self.cfg.lease_renew_interval / 4)
        while not self.stopping.wait(step):
            self.share.watchdog()

    # -- stopping ----------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            log.error("%s again: exiting now", signal.Signals(signum).name)
            logging.shutdown()
            os._exit(1)
        self.request_stop(signal.Signals(signum).name)

    def _finish(self) -> int:
        still = self.share.stop(self.cfg.stop_timeout, release=not self._crashed)
        if still:
            log.warning("stopped without waiting any longer for bodies %s; nothing is "
                        "lost: the next owner goes on from what was committed",
                        ", ".join(still), extra={"event": "stopped", "abandoned": still})
        else:
            log.info("stopped cleanly", extra={"event": "stopped"})
        return 0


def serve(settings: Settings, cfg: DaemonSettings,
          works: Mapping[str, BodyWork] | None = None, engine: Engine | None = None) -> int:
    """Run this process as a worker: the classic daemon for a deployment without bodies,
    a :class:`SharedWorker` over the bodies of ``works`` otherwise, even a single one
    (each body runs on its own store and account; ``engine``: the deployment's own
    database, where workers and leases live)."""
    if not works:
        from bridge.daemon.scheduler import Daemon

        return Daemon(settings, cfg=cfg).run()
    if engine is None:
        raise ValueError("several bodies need the deployment's engine")
    return SharedWorker(engine, works, cfg).run()


__all__ = ["SharedWorker", "serve"]
