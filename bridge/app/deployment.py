"""A deployment of one or several bodies: one :class:`~bridge.runtime.Runtime` per body.

A one-body deployment (no ``[[bodies]]``) is a Deployment with one runtime on the
database as configured; a Pemda's has a runtime per body, each on its own store (see
:mod:`bridge.bodies`). ``sync --once`` runs :func:`run_bodies`: every body's cycle, one
after the other, a body that fails noted and the others run all the same.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bridge.app.cycle import run_cycle
from bridge.bodies import BodySettings, bodies_of, body_key, has_bodies
from bridge.config import ConfigError, Settings
from bridge.runtime import Runtime
from bridge.services.internal_forward import Receiver

log = logging.getLogger("bridge.deployment")


class Deployment:
    """The runtimes of a deployment's bodies, by code. Close it when done."""

    def __init__(self, settings: Settings, *, upgrade_schema: bool = True,
                 only: str | None = None,
                 make_runtime: Callable[[Settings], Runtime] | None = None) -> None:
        self.settings = settings
        self.bodies: list[BodySettings] = bodies_of(settings)
        if only is not None:
            chosen = [b for b in self.bodies if b.key == body_key(only)]
            if not chosen:
                codes = ", ".join(b.code for b in self.bodies)
                raise ConfigError(settings.source, "bodies", f"no body {only!r}; bodies: {codes}")
            self.bodies = chosen
        make = make_runtime or (lambda s: Runtime(s, upgrade_schema=upgrade_schema))
        self.runtimes: dict[str, Runtime] = {}
        try:
            for body in self.bodies:
                self.runtimes[body.code] = make(body.settings)
        except BaseException:
            self.close()
            raise
        if self.several:
            # Each body forwards to the others through the narrow look-up below
            # (bridge/services/internal_forward.py), never through the Deployment.
            for code, rt in self.runtimes.items():
                rt.body_code = code
                rt.receivers = self.receiver

    @property
    def several(self) -> bool:
        """True for a Pemda (``[[bodies]]``), even one with a single body."""
        return has_bodies(self.settings)

    @property
    def codes(self) -> list[str]:
        return list(self.runtimes)

    def runtime(self, code: str | None = None) -> Runtime:
        """The body ``code``'s runtime (any case), or the only one when ``code`` is None."""
        if code is None:
            if len(self.runtimes) == 1:
                return next(iter(self.runtimes.values()))
            raise ConfigError(self.settings.source, "bodies",
                              f"{len(self.runtimes)} bodies ({', '.join(self.codes)}): name "
                              "one with --body CODE")
        for known, rt in self.runtimes.items():
            if body_key(known) == body_key(code):
                return rt
        raise ConfigError(self.settings.source, "bodies",
                          f"no body {code!r}; bodies: {', '.join(self.codes)}")

    def receiver(self, code: str) -> Receiver | None:
        """The body ``code`` of this deployment as a forward reaches it, or None when it is
        none of ours: the narrow look-up an internal forward needs."""
        for known, rt in self.runtimes.items():
            if body_key(known) == body_key(code):
                return rt.as_receiver()
        return None

    def __iter__(self) -> Iterator[tuple[BodySettings, Runtime]]:
        for body in self.bodies:
            yield body, self.runtimes[body.code]

    def close(self) -> None:
        for rt in self.runtimes.values():
            rt.close()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class BodiesCycle:
    """What :func:`run_bodies` did: each body's report, or why the body failed."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    #: Bodies whose pull raised the quarantine alarm (the cycle ran on).
    alarms: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.alarms

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok,
                "bodies": {code: dict(report) for code, report in self.reports.items()},
                "failed": dict(self.failures), "alarms": dict(self.alarms)}


def run_bodies(dep: Deployment, push: bool = True, refresh_all: bool = False,
               cycle: Callable[..., dict[str, Any]] = run_cycle) -> BodiesCycle:
    """Run every body's sync cycle, one body after the other. A body that fails (LAPOR!
    down, a database error) is recorded with its reason and the next body runs."""
    result = BodiesCycle()
    for body, rt in dep:
        try:
            report = cycle(rt, push=push, refresh_all=refresh_all)
        except Exception as exc:  # one body's failure must not stop the others
            log.warning("body %s: sync failed: %s: %s", body.code, type(exc).__name__, exc)
            result.failures[body.code] = f"{type(exc).__name__}: {exc}"
            continue
        result.reports[body.code] = report
        alarm = report.get("pull", {}).get("alarm")
        if alarm:
            result.alarms[body.code] = str(alarm)
    return result


__all__ = ["BodiesCycle", "Deployment", "run_bodies"]
