"""One sync cycle: pull, then track, then push. What ``sync --once`` and the daemon's
jobs run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from bridge.lapor.client import LaporClient
from bridge.lapor.errors import NotFound
from bridge.runtime import Runtime
from bridge.services.triage import triage_new_cases
from bridge.sync.pull import PullResult
from bridge.sync.streams import PUSH_STREAM, record_stream
from bridge.sync.track import (
    Adopted,
    AdoptError,
    TrackResult,
    inbox_unavailable,
    note_inbox_available,
    note_inbox_unavailable,
)


def pull_and_track(rt: Runtime, client: LaporClient, *, stop: threading.Event | None = None,
                   window: timedelta | None = None, refresh_all: bool = False,
                   report: dict[str, Any] | None = None,
                   ) -> tuple[PullResult | None, TrackResult | None, list[str]]:
    """Read the inbox (when there is one), then poll the tracked cases that are due, and
    triage what arrived. An inbox that answers 404, or ``inbox_path = ""``, is noted once
    and the cycle goes on with tracking alone."""

    lines: list[str] = []
    pulled: PullResult | None = None
    no_inbox = False
    if not client.has_inbox:
        note_inbox_unavailable(rt.sessions, 'the API profile has no inbox path '
                               '(lapor.inbox_path = "")')
        no_inbox = True
    else:
        puller = rt.puller(client)
        if stop is not None:
            puller.stop = stop
        try:
            pulled = puller.run(window=window)
        except NotFound:
            note_inbox_unavailable(rt.sessions,
                                   f"GET {client.profile.endpoint('inbox').path} answers HTTP 404")
            no_inbox = True
        else:
            note_inbox_available(rt.sessions)
            lines.append(pulled.summary())
            if pulled.created_ids:
                started, cpu = time.perf_counter(), time.process_time()
                triaged = triage_new_cases(rt, pulled.created_ids)
                if report is not None:
                    # What a case's triage costs, for the bench (process CPU: the pull's
                    # reader thread is done by now).
                    report["triage"] = {
                        "cases": len(triaged.cases), "failed": triaged.failed,
                        "announced": triaged.announced,
                        "seconds": round(time.perf_counter() - started, 4),
                        "cpu_seconds": round(time.process_time() - cpu, 4)}
    if no_inbox:
        with rt.sessions() as session:
            row = inbox_unavailable(session)
            why = row.last_error if row is not None else ""
        lines.append(f"inbox not available: tracking known cases only ({why})")
    tracked: TrackResult | None = None
    if rt.tracking.enabled:
        tracker = rt.tracker(client)
        if stop is not None:
            tracker.stop = stop
        if no_inbox and rt.tracking.track_all_when_no_inbox:
            tracker.enrol_open_cases()
        tracked = tracker.poll(refresh_all=refresh_all)
        lines.append(tracked.summary())
    return pulled, tracked, lines


def run_cycle(rt: Runtime, push: bool = True, refresh_all: bool = False) -> dict[str, Any]:
    """Pull, track, triage what arrived, push; then run plugin events for what was
    committed. ``refresh_all`` polls every tracked case now, due or not."""
    lines: list[str] = []
    report: dict[str, Any] = {"lines": lines}
    with rt.client() as client:
        pulled, tracked, pull_lines = pull_and_track(rt, client, refresh_all=refresh_all,
                                                     report=report)
        lines.extend(pull_lines)
        if pulled is not None:
            report["pull"] = pulled.as_json()
        else:
            report["inbox"] = "not available: tracking known cases only"
        if tracked is not None:
            report["track"] = tracked.as_json()
        forwarding = rt.forwarding()
        if forwarding is not None:
            # Forwards to other bodies of the deployment: into their queues, and their
            # progress (or a case given back) into ours.
            forwarded = forwarding.run()
            lines.append(forwarded.summary())
            report["internal_forward"] = forwarded.as_json()
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
    started = time.perf_counter()
    report["events"] = rt.dispatch_events()
    report["events_seconds"] = round(time.perf_counter() - started, 4)
    return report


def adopt(rt: Runtime, lapor_ids: Iterable[int]) -> list[Adopted | AdoptError]:
    """Adopt reports by LAPOR! id (each one on its own: one unknown id does not stop the
    others); new cases are triaged as pulled ones are. Returns each outcome in order."""

    outcomes: list[Adopted | AdoptError] = []
    with rt.client() as client:
        tracker = rt.tracker(client)
        for lapor_id in lapor_ids:
            try:
                outcomes.append(tracker.adopt(lapor_id))
            except AdoptError as exc:
                outcomes.append(exc)
    created = [o.case_id for o in outcomes if isinstance(o, Adopted) and o.created]
    if created:
        triage_new_cases(rt, created)
    rt.dispatch_events()
    return outcomes
