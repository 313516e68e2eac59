"""One sync cycle: pull, then push. What ``sync --once`` and the daemon's jobs run."""

from __future__ import annotations

from typing import Any

from bridge.runtime import Runtime
from bridge.sync.streams import PUSH_STREAM, record_stream


def run_cycle(rt: Runtime, push: bool = True) -> dict[str, Any]:
    """Pull, triage what arrived, push; then run plugin events for what was committed."""
    from bridge.services.triage import triage_new_cases

    lines: list[str] = []
    report: dict[str, Any] = {"lines": lines}
    with rt.client() as client:
        pulled = rt.puller(client).run()
        lines.append(pulled.summary())
        if pulled.created_ids:
            triage_new_cases(rt, pulled.created_ids)
        report["pull"] = {
            k: v for k, v in vars(pulled).items() if k not in ("created_ids", "updated_ids")
        }
        if push:
            try:
                pushed = rt.pusher(client).run()
            except Exception as exc:
                record_stream(rt.sessions, PUSH_STREAM, error=f"{type(exc).__name__}: {exc}")
                raise
            # The same record the daemon's push job writes: `status` reads it.
            record_stream(rt.sessions, PUSH_STREAM,
                          error="; ".join(pushed.errors) if pushed.errors else None)
            lines.append(pushed.summary())
            report["push"] = pushed.as_json()
    report["events"] = rt.dispatch_events()
    return report
