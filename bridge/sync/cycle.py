"""One sync cycle: pull, then push. What ``sync --once`` and the daemon's jobs run."""

from __future__ import annotations

import time
from typing import Any

from bridge.runtime import Runtime


def run_cycle(rt: Runtime, push: bool = True) -> dict[str, Any]:
    """Pull, triage what arrived, push; then run plugin events for what was committed."""
    from bridge.services.triage import triage_new_cases

    lines: list[str] = []
    report: dict[str, Any] = {"lines": lines}
    with rt.client() as client:
        pulled = rt.puller(client).run()
        lines.append(pulled.summary())
        if pulled.created_ids:
            started, cpu = time.perf_counter(), time.process_time()
            triaged = triage_new_cases(rt, pulled.created_ids)
            # What a case's triage costs, for the bench (process CPU: the pull's reader
            # thread is done by now).
            report["triage"] = {"cases": len(triaged.cases), "failed": triaged.failed,
                                "seconds": round(time.perf_counter() - started, 4),
                                "cpu_seconds": round(time.process_time() - cpu, 4)}
        report["pull"] = {
            k: v for k, v in vars(pulled).items() if k not in ("created_ids", "updated_ids")
        }
        if push:
            pushed = rt.pusher(client).run()
            lines.append(pushed.summary())
            report["push"] = pushed.as_json()
    started = time.perf_counter()
    report["events"] = rt.dispatch_events()
    report["events_seconds"] = round(time.perf_counter() - started, 4)
    return report
