"""Lifecycle events: recorded in the change's transaction, dispatched after commit, in order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from bridge.domain import CaseSnapshot, Notification
from bridge.events import (
    decode,
    dispatch_pending,
    encode,
    pending_count,
    record_event,
    record_notification,
)
from bridge.hookspecs import hookimpl
from bridge.store.models import Case, CaseEvent, PendingEvent
from bridge.testing import TempStore, make_host


def add_case(store: TempStore, n: int = 1, **fields: Any) -> int:
    with store.sessions() as session, session.begin():
        case = Case(register_no=f"CTH/2026/{n:05d}", title="Jalan rusak", content="Tolong",
                    reporter={"name": "Budi", "phone": "0812"}, **fields)
        session.add(case)
        session.flush()
        return case.id


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int, Any]] = []

    @hookimpl
    def case_received(self, case: CaseSnapshot, event_id: int) -> None:
        self.seen.append(("case_received", event_id, case.stage))

    @hookimpl
    def case_changed(self, case: CaseSnapshot, changes: Any, event_id: int) -> None:
        self.seen.append(("case_changed", event_id, dict(changes)))

    @hookimpl
    def deadline_missed(self, case: CaseSnapshot, deadline_at: datetime, event_id: int) -> None:
        self.seen.append(("deadline_missed", event_id, deadline_at))

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.seen.append(("notify", notification.case_id or 0, notification.subject))


def test_encode_decode_keeps_datetimes() -> None:
    when = datetime(2026, 3, 2, 16, 59, 59, tzinfo=UTC)
    data = {"deadline_at": when, "changes": {"stage": ["a", "b"]}, "n": 1}
    assert decode(encode(data)) == data
    with pytest.raises(ValueError, match="naive"):
        encode({"x": datetime(2026, 1, 1)})


def test_events_of_a_rolled_back_transaction_never_reach_plugins(
    bridge_store: TempStore,
) -> None:
    case_id = add_case(bridge_store)
    with pytest.raises(RuntimeError), bridge_store.sessions() as session, session.begin():
        record_event(session, "case_changed", case_id, {"changes": {"stage": ["x", "y"]}})
        raise RuntimeError("the change failed")
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)))
    assert result.dispatched == 0 and recorder.seen == []


def test_dispatch_in_order_with_committed_state_then_delete(bridge_store: TempStore) -> None:
    case_id = add_case(bridge_store)
    missed = datetime(2026, 3, 16, 16, 59, 59, tzinfo=UTC)
    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", case_id, {})
        record_event(session, "case_changed", case_id, {"changes": {"stage": ["received",
                                                                              "classify"]}})
        record_event(session, "deadline_missed", case_id, {"deadline_at": missed})
        record_notification(session, Notification("case_received", ["petugas"], "Subjek", "Isi",
                                                  case_id=case_id))
        session.get_one(Case, case_id).stage = "classify"
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)))
    assert result.ok and result.dispatched == 4
    kinds = [s[0] for s in recorder.seen]
    assert kinds == ["case_received", "case_changed", "deadline_missed", "notify"]
    ids = [s[1] for s in recorder.seen[:3]]
    assert ids == sorted(ids)
    # the snapshot is the committed state at dispatch time
    assert recorder.seen[0][2] == "classify"
    assert recorder.seen[1][2] == {"stage": ["received", "classify"]}
    assert recorder.seen[2][2] == missed
    assert pending_count(bridge_store.sessions) == 0


def test_bad_event_arguments_are_refused_when_recorded(bridge_store: TempStore) -> None:
    case_id = add_case(bridge_store)
    with bridge_store.sessions() as session:
        with pytest.raises(ValueError, match="unknown event"):
            record_event(session, "case_exploded", case_id, {})
        with pytest.raises(ValueError, match="takes"):
            record_event(session, "deadline_near", case_id, {"deadline": "besok"})


def test_failing_plugin_is_flagged_on_the_case_and_not_retried(bridge_store: TempStore) -> None:
    case_id = add_case(bridge_store)

    class Broken:
        def __init__(self) -> None:
            self.calls = 0

        @hookimpl
        def case_received(self) -> None:
            self.calls += 1
            raise RuntimeError("webhook lama mati")

    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", case_id, {})
    broken, recorder = Broken(), Recorder()
    host = make_host(("rec", recorder), ("broken", broken))
    result = dispatch_pending(bridge_store.sessions, host)
    assert [f.plugin for f in result.failures] == ["broken"]
    assert recorder.seen and broken.calls == 1  # the other plugin still ran
    with bridge_store.sessions() as session:
        case = session.get_one(Case, case_id)
        assert case.attention is not None and "broken" in case.attention
        assert "webhook lama mati" in case.attention
        history = session.scalars(select(CaseEvent).where(CaseEvent.kind == "plugin_failed"))
        [entry] = list(history)
        assert entry.actor == "plugin:broken" and entry.side == "system"
    # not retried: the event is gone
    assert dispatch_pending(bridge_store.sessions, host).dispatched == 0
    assert broken.calls == 1


def test_event_of_a_missing_case_is_dropped(bridge_store: TempStore) -> None:
    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", 4242, {})
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)))
    assert result.dropped == 1 and recorder.seen == []
    assert pending_count(bridge_store.sessions) == 0


def test_poison_event_is_dropped_after_max_attempts(bridge_store: TempStore) -> None:
    case_id = add_case(bridge_store)
    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", case_id, {})
        record_event(session, "case_changed", case_id, {})
    with bridge_store.sessions() as session, session.begin():
        first = session.scalars(select(PendingEvent).order_by(PendingEvent.id)).first()
        assert first is not None
        first.attempts = 3  # three dispatchers died on it
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)),
                              max_attempts=3)
    assert result.dropped == 1
    assert [s[0] for s in recorder.seen] == ["case_changed"]
    with bridge_store.sessions() as session:
        attention = session.get_one(Case, case_id).attention
        assert attention is not None and "dispatch attempts" in attention


def test_event_survives_a_dispatcher_crash_and_is_dispatched_again(
    bridge_store: TempStore, tmp_path: Any
) -> None:
    """At least once: a process killed inside a plugin leaves the event for the next run."""
    case_id = add_case(bridge_store)
    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", case_id, {})
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from bridge.events import dispatch_pending
        from bridge.hookspecs import hookimpl
        from bridge.store.db import make_engine, session_factory
        from bridge.testing import make_host

        class Crash:
            @hookimpl
            def case_received(self, event_id):
                os._exit(17)   # the daemon dies mid-dispatch (power cut, OOM kill)

        sessions = session_factory(make_engine({bridge_store.url!r}))
        dispatch_pending(sessions, make_host(("crash", Crash())))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert proc.returncode == 17, proc.stderr
    assert pending_count(bridge_store.sessions) == 1
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)))
    assert result.dispatched == 1
    assert [s[0] for s in recorder.seen] == ["case_received"]


def test_a_poison_event_claimed_in_a_batch_costs_its_neighbours_nothing(
    bridge_store: TempStore, tmp_path: Any
) -> None:
    """Fresh events are claimed together; after a crash each is retried on its own, so
    only the poison event reaches max_attempts, and the others are dispatched once."""
    ids = [add_case(bridge_store, n) for n in (1, 2, 3)]
    with bridge_store.sessions() as session, session.begin():
        for case_id in ids:
            record_event(session, "case_received", case_id, {})
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(f"""
        import os
        from bridge.events import dispatch_pending
        from bridge.hookspecs import hookimpl
        from bridge.store.db import make_engine, session_factory
        from bridge.testing import make_host

        class Crash:
            @hookimpl
            def case_received(self, case):
                if case.id == {ids[1]}:
                    os._exit(17)

        sessions = session_factory(make_engine({bridge_store.url!r}))
        dispatch_pending(sessions, make_host(("crash", Crash())), max_attempts=3)
    """))
    for _ in range(3):  # three dispatchers die on the poison event
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ))
        assert proc.returncode == 17, proc.stderr
    with bridge_store.sessions() as session:
        left = {e.case_id: e.attempts for e in session.scalars(select(PendingEvent))}
    # The first event was done on the second run; the third waits behind the poison one.
    assert left == {ids[1]: 3, ids[2]: 1}
    recorder = Recorder()
    result = dispatch_pending(bridge_store.sessions, make_host(("rec", recorder)),
                              max_attempts=3)
    assert (result.dropped, result.dispatched) == (1, 1)
    assert [s[0] for s in recorder.seen] == ["case_received"]  # the third case's
    assert pending_count(bridge_store.sessions) == 0


def test_snapshot_hides_anonymous_reporter(bridge_store: TempStore) -> None:
    anon = add_case(bridge_store, 1, is_anonymous=True)
    named = add_case(bridge_store, 2)
    seen: dict[int, Any] = {}

    class Look:
        @hookimpl
        def case_received(self, case: CaseSnapshot) -> None:
            seen[case.id] = case.reporter

    with bridge_store.sessions() as session, session.begin():
        record_event(session, "case_received", anon, {})
        record_event(session, "case_received", named, {})
    dispatch_pending(bridge_store.sessions, make_host(("look", Look())))
    assert seen[anon] is None
    assert seen[named] is not None and seen[named].name == "Budi"
