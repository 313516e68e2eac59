"""Pull sync end to end against the real sandbox on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.app.cycle import run_cycle
from bridge.lapor.sandbox import SandboxServer
from bridge.store.models import Case, CaseEvent, QuarantinedItem, SyncCursor
from tests.support.settings import TEST_BEARER, TEST_TOKEN
from tests.support.sync import pull

pytestmark = pytest.mark.sandbox(seed=7, reports=200, bearer_header="Authorization")
#: A test using the sandbox runs once for each dialect it speaks.
each_dialect = pytest.mark.usefixtures("dialect")


def event_kinds(rt: Any) -> Counter[str]:
    with rt.sessions() as s:
        return Counter(s.scalars(select(CaseEvent.kind)))


def store_matches_sandbox(rt: Any, sandbox: SandboxServer) -> None:
    remote = {r["id"]: r for r in sandbox.state.reports(listed_only=True)}
    with rt.sessions() as s:
        cases = {c.lapor_id: c for c in s.scalars(select(Case))}
    assert set(cases) == set(remote)
    for rid, r in remote.items():
        c = cases[rid]
        assert (c.title, c.content, c.remote_status_code) == (
            r["title"], r["content"], str(r["status_code"])), rid


@each_dialect
def test_seed_change_add_and_idempotence(runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    first = pull(rt)
    assert first.created == 200 and first.quarantined == 0
    # page_size 50; each page restarts at the last timestamp read, so pages overlap by one.
    assert first.pages in (4, 5)
    store_matches_sandbox(rt, sandbox)
    with rt.sessions() as s:
        numbers = list(s.scalars(select(Case.register_no)))
    assert len(set(numbers)) == 200

    ids = sandbox.state.inbox_ids()
    changed = ids[10:15]
    for rid in changed:
        sandbox.state.change_report(rid, title=f"Judul diperbarui {rid}")
    added = [sandbox.state.add_report()["id"] for _ in range(3)]
    second = pull(rt)
    assert (second.created, second.updated) == (3, 5)
    kinds = event_kinds(rt)
    assert kinds["received"] == 203 and kinds["remote_changed"] == 5
    with rt.sessions() as s:
        changed_cases = set(s.scalars(
            select(Case.lapor_id).join(CaseEvent, CaseEvent.case_id == Case.id)
            .where(CaseEvent.kind == "remote_changed")))
        new_cases = set(s.scalars(select(Case.lapor_id).order_by(Case.id.desc()).limit(3)))
        history = s.scalars(select(CaseEvent.changes).where(
            CaseEvent.kind == "remote_changed")).all()
    assert changed_cases == set(changed)
    assert new_cases == set(added)
    assert all(set(h) == {"title"} for h in history)
    store_matches_sandbox(rt, sandbox)

    third = pull(rt)
    assert (third.created, third.updated) == (0, 0)
    assert third.requests == 1  # nothing new: one request reads the lookback window
    assert event_kinds(rt) == kinds


@each_dialect
def test_restart_from_scratch_is_idempotent(runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    pull(rt)
    before = event_kinds(rt)
    with rt.sessions() as s, s.begin():
        s.query(SyncCursor).delete()  # as if the cursor were lost: everything is re-read
    again = pull(rt)
    assert again.received == 200 and again.created == 0 and again.updated == 0
    assert event_kinds(rt) == before


@each_dialect
def test_report_changing_between_pages_is_not_missed(runtime_factory: Any,
                                                     sandbox: SandboxServer) -> None:
    sandbox.state.set_faults(change_between_pages=1.0, change_target="served", seed=3)
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    result = pull(rt)
    moved = sandbox.state.counters().get("changed_between_pages", 0)
    assert moved >= 1
    store_matches_sandbox(rt, sandbox)
    with rt.sessions() as s:
        remote = {r["id"]: r["updated_at"] for r in sandbox.state.reports(listed_only=True)}
        for c in s.scalars(select(Case)):
            assert c.remote_updated_at is not None
    assert result.created == 200 and len(remote) == 200


@each_dialect
def test_malformed_items_are_quarantined_rest_goes_on(runtime_factory: Any,
                                                      sandbox: SandboxServer) -> None:
    sandbox.state.set_faults(malformed_rate=0.1, seed=5)
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    result = pull(rt)
    assert result.quarantined > 0
    assert result.created + result.quarantined >= 190
    with rt.sessions() as s:
        rows = s.scalars(select(QuarantinedItem)).all()
        assert len(rows) == result.quarantined
        assert all(r.reason and r.payload for r in rows)
        stored = s.scalar(select(func.count()).select_from(Case))
    assert stored == result.created
    # Once LAPOR! serves them correctly, the missing reports arrive.
    sandbox.state.set_faults(None)
    with rt.sessions() as s, s.begin():
        s.query(SyncCursor).delete()
    pull(rt)
    store_matches_sandbox(rt, sandbox)


def test_bad_credentials_keep_the_cursor(runtime_factory: Any) -> None:
    from bridge.lapor.errors import AuthError

    with SandboxServer(seed=1, reports=10, bearer="other", token=TEST_TOKEN) as server:
        rt = runtime_factory(server.url, dialect=server.dialect)
        with pytest.raises(AuthError):
            pull(rt)
        with rt.sessions() as s:
            cursor = s.get(SyncCursor, "inbox")
            assert cursor is not None and cursor.updated_since is None
            assert cursor.last_error and "AuthError" in cursor.last_error
            assert TEST_BEARER not in cursor.last_error


@each_dialect
def test_lookback_rereads_without_history(runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect, lapor={"lookback_seconds": 10 * 86400})
    pull(rt)
    before = event_kinds(rt)
    again = pull(rt)
    assert again.received > 0 and again.created == again.updated == 0
    assert event_kinds(rt) == before


@each_dialect
def test_wide_reconciliation_does_not_move_cursor_back(runtime_factory: Any,
                                                       sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    pull(rt)
    with rt.sessions() as s:
        cursor = s.get(SyncCursor, "inbox")
        assert cursor is not None
        key = (cursor.updated_since, cursor.last_id)
    with rt.client() as client:
        wide = rt.puller(client).run(window=timedelta(days=365))
    assert wide.received == 200 and wide.created == 0
    with rt.sessions() as s:
        cursor = s.get(SyncCursor, "inbox")
        assert cursor is not None and (cursor.updated_since, cursor.last_id) == key


@each_dialect
def test_sync_cycle_reports(runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    report = run_cycle(rt)
    assert report["pull"]["created"] == 200
    assert any(line.startswith("pull inbox") for line in report["lines"])


@each_dialect
def test_raw_payload_is_kept_as_lapor_sent_it(runtime_factory: Any,
                                               sandbox: SandboxServer) -> None:
    # Kept as received (not re-serialised from the model): LAPOR!'s own time text and flag
    # values; the identity of an anonim reporter still dropped.
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    pull(rt)
    remote = {r["id"]: r for r in sandbox.state.reports(listed_only=True)}
    with rt.sessions() as s:
        cases = list(s.scalars(select(Case)))
    anonymous = [c for c in cases if c.is_anonymous]
    assert anonymous and len(anonymous) < len(cases)
    key = "user" if sandbox.dialect == "lapor-v3" else "reporter"
    for case in cases:
        sent = sandbox.state.dialect.report(remote[case.lapor_id])
        assert case.raw is not None
        assert case.raw["updated_at"] == sent["updated_at"]
        assert case.raw["is_secret"] == sent["is_secret"]
        if case.is_anonymous or case.is_secret:
            # Neither an anonim nor a rahasia reporter is kept in the raw payload.
            assert case.raw[key] is None
        else:
            assert case.raw[key] == sent[key]
        if case.is_anonymous:
            assert case.reporter is None
