"""The quarantine nobody can miss: the alarm of a mostly rejected pull, the listing grouped
by reason, retry after the config is corrected, dismiss; on SQLite and PostgreSQL against
the real sandbox, and the CLI, status and staff page end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge.app.quarantine_cycle import retry_quarantined
from bridge.cli import main
from bridge.daemon.health import Metrics, collect
from bridge.daemon.settings import daemon_settings
from bridge.lapor.models import RejectedItem
from bridge.lapor.sandbox import SandboxServer
from bridge.runtime import Runtime
from bridge.store.models import Case, CaseEvent, QuarantinedItem, SyncCursor
from bridge.sync.quarantine import (
    QuarantineError,
    RunTally,
    alarm_state,
    dismiss,
    list_groups,
    reason_group,
)
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings
from tests.support.sync import pull

# Every sandbox report's content is longer than this: the whole inbox is quarantined.
TINY = 5


pytestmark = pytest.mark.sandbox(seed=3, reports=30, bearer_header="Authorization")


def rows(rt: Runtime) -> list[QuarantinedItem]:
    with rt.sessions() as s:
        return list(s.scalars(select(QuarantinedItem).order_by(QuarantinedItem.id)))


def case_count(rt: Runtime) -> int:
    with rt.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Case)) or 0)


# -- pure parts -----------------------------------------------------------------------


def test_similar_reasons_group_together() -> None:
    same = [
        "category: input should be a valid string (got {'id': 11, 'name': 'Perizinan'})",
        "category: input should be a valid string (got {'id': 12, 'name': 'Jalan (rusak)'})",
        "category: input should be a valid string (got {'id': 3, 'n…'}) (and 2 more problems)",
    ]
    assert len({reason_group(r) for r in same}) == 1
    assert reason_group(same[0]) == "category: input should be a valid string (got …)"
    assert reason_group("created_at: not a date-time: '31-02-2024 10:00'") == \
        reason_group("created_at: not a date-time: 'kemarin'")
    assert reason_group("content: 120,000 characters, over the limit of 100,000") == \
        reason_group("content: 100,001 characters, over the limit of 100,000")
    # A different field or a different problem is another group.
    assert reason_group("location: input should be a valid string (got 1)") != \
        reason_group(same[0])
    assert reason_group("id: missing") != reason_group("title: missing")


def _rejected(n: int, reason: str = "category: input should be a valid string (got 1)"
              ) -> list[RejectedItem]:
    return [RejectedItem(remote_id=str(i), reason=reason, payload="{}") for i in range(n)]


def test_alarm_on_a_whole_page_or_too_large_a_share() -> None:
    quiet = RunTally()
    assert quiet.alarm(received=100, share=0.2) is None
    some = RunTally()
    some.add([1, 2], _rejected(2))
    assert some.alarm(received=98, share=0.2) is None  # 2 % of the run
    assert some.alarm(received=5, share=0.2) is not None  # 2 of 7: over a fifth
    assert some.alarm(received=8, share=0.2) is None  # exactly a fifth is not more
    page = RunTally()
    page.add([1], _rejected(1), whole_page=True)
    line = page.alarm(received=10_000, share=0.2)
    assert line is not None and "\n" not in line
    assert line.startswith("quarantine alarm: 1 of 10001 items quarantined in this pull, "
                           "1 whole page;")
    mixed = RunTally()
    mixed.add([1, 2, 3], _rejected(3, "location: input should be a valid string (got 7)"))
    mixed.add([4], _rejected(1, "id: missing"))
    line = mixed.alarm(received=0, share=0.2)
    assert line is not None
    assert "top reason (3 items): location: input should be a valid string (got 7)" in line


# -- against the sandbox, on both databases --------------------------------------------


def test_a_quarantined_page_alarms_and_retry_brings_it_in(db_url: str,
                                                          sandbox: SandboxServer) -> None:
    broken = Runtime(make_settings(db_url, sandbox.url, lapor={"max_content_chars": TINY}))
    try:
        first = pull(broken)
        assert first.quarantined == 30 and first.created == 0
        assert first.alarm is not None
        assert first.alarm.startswith("quarantine alarm: 30 of 30 items quarantined")
        assert "top reason (30 items): content:" in first.alarm
        # The cursor did not move: the next run reads the same items again, and they are
        # counted on their rows rather than quarantined twice.
        again = pull(broken)
        assert again.quarantined == 30 and again.alarm is not None
        got = rows(broken)
        assert len(got) == 30
        assert all(r.seen == 2 and r.alarm and r.resolved_at is None for r in got)

        with broken.sessions() as s:
            groups = list_groups(s)
            state = alarm_state(s)
        assert len(groups) == 1 and groups[0].count == 30
        assert groups[0].reason == "content: N characters, over the limit of N"
        assert [i.id for i in groups[0].items] == sorted((r.id for r in got), reverse=True)
        assert state is not None and state.items == 30 and state.top_count == 30

        report = collect(broken.engine, broken.sessions, daemon_settings(broken.settings))
        assert not report.healthy
        assert any(p.startswith("quarantine alarm: 30 item(s)") for p in report.problems)
        assert report.as_json()["quarantine_alarm"]["items"] == 30
        metrics = Metrics()
        metrics.observe(report)
        assert b"lapor_bridge_quarantine_alarm 30.0" in metrics.render()

        # Half corrected: the items whose content still exceeds the limit stay, with
        # the new reason; the earlier one is kept in their history.
        lengths = sorted(len(r["content"]) for r in sandbox.state.reports(listed_only=True))
        middle = lengths[len(lengths) // 2]
        half = Runtime(make_settings(db_url, sandbox.url,
                                     lapor={"max_content_chars": middle}))
        try:
            result, stored = retry_quarantined(half)
            passing = sum(1 for n in lengths if n <= middle)
            assert (result.tried, result.accepted) == (30, passing)
            assert result.still_failing == 30 - passing
            assert stored.created == passing
            failing = [r for r in rows(half) if r.resolved_at is None]
            assert len(failing) == 30 - passing
            for r in failing:
                assert f"over the limit of {middle:,}" in r.reason
                assert r.retries == 1 and r.history and "limit of 5" in r.history[0]["reason"]
        finally:
            half.close()

        fixed = Runtime(make_settings(db_url, sandbox.url))
        try:
            result, stored = retry_quarantined(fixed)
            assert result.tried == 30 - passing and result.still_failing == 0
            assert case_count(fixed) == 30
            got = rows(fixed)
            assert all(r.resolved_at is not None and r.outcome == "accepted" for r in got)
            with fixed.sessions() as s:
                cases = {c.lapor_id: c for c in s.scalars(select(Case))}
                # Stored exactly as the pull stores: register number, deadline, raw
                # payload and the "received" event.
                for r in got:
                    case = cases[int(r.remote_id or 0)]
                    assert r.case_id == case.id
                    assert case.register_no.startswith("UJI/ADU/")
                    assert case.deadline_at is not None and case.raw == json.loads(r.payload)
                received = s.scalar(select(func.count()).select_from(CaseEvent)
                                    .where(CaseEvent.kind == "received"))
                assert received == 30
                assert alarm_state(s) is None
            report = collect(fixed.engine, fixed.sessions, daemon_settings(fixed.settings))
            assert not any("quarantine" in p for p in report.problems)
            # The pull, corrected too, re-reads them: nothing changes, nothing quarantined.
            after = pull(fixed)
            assert after.quarantined == 0 and after.created == 0 and after.alarm is None
            assert case_count(fixed) == 30
            # An item resolved already is skipped; an unknown id is refused.
            result, _ = retry_quarantined(fixed, [got[0].id])
            assert result.tried == 0 and "resolved already" in result.skipped[0]
            with pytest.raises(QuarantineError, match="no quarantined item with id 99999"):
                retry_quarantined(fixed, [got[0].id, 99999])
        finally:
            fixed.close()
    finally:
        broken.close()


def test_dismissed_items_read_again_stay_dismissed(db_url: str,
                                                   sandbox: SandboxServer) -> None:
    rt = Runtime(make_settings(db_url, sandbox.url, lapor={"max_content_chars": TINY}))
    try:
        assert pull(rt).alarm is not None
        assert dismiss(rt.sessions) == 30
        # The cursor never moved: the same 30 come again, are still refused, and are
        # counted on the dismissed rows without a new alarm or a new row.
        again = pull(rt)
        assert again.quarantined == 30 and again.alarm is None
        got = rows(rt)
        assert len(got) == 30 and all(r.outcome == "dismissed" and r.seen == 2 for r in got)
        with rt.sessions() as s:
            assert alarm_state(s) is None and list_groups(s) == []
    finally:
        rt.close()


def test_a_small_share_does_not_alarm_a_large_one_does(db_url: str) -> None:
    with SandboxServer(seed=5, reports=200, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization") as server:
        server.state.set_faults(malformed_rate=0.1, seed=5)
        calm = Runtime(make_settings(db_url, server.url,
                                     lapor={"quarantine_alarm_share": 0.5}))
        try:
            calm_run = pull(calm)
            assert 0 < calm_run.quarantined < 100 and calm_run.alarm is None
            assert not any(r.alarm for r in rows(calm))
            with calm.sessions() as s:
                assert alarm_state(s) is None
                groups = list_groups(s)
            assert sum(g.count for g in groups) == calm_run.quarantined
            # The same run under a stricter share: the alarm, naming the top reason.
            with calm.sessions() as s, s.begin():
                s.query(SyncCursor).delete()
        finally:
            calm.close()
        strict = Runtime(make_settings(db_url, server.url,
                                       lapor={"quarantine_alarm_share": 0.01}))
        try:
            result = pull(strict)
            assert result.alarm is not None and "top reason" in result.alarm
            with strict.sessions() as s:
                state = alarm_state(s)
            # Only this run's rows carry the alarm (the sandbox garbles other reports
            # on each read: the calm run's rows wait too, without it).
            assert state is not None and state.items == result.quarantined
            waiting = len(rows(strict))
            assert waiting == calm_run.quarantined + result.quarantined
            # A person sets them aside: kept, marked, and the alarm is over.
            assert dismiss(strict.sessions) == waiting
            assert all(r.outcome == "dismissed" and r.resolved_at for r in rows(strict))
            with strict.sessions() as s:
                assert alarm_state(s) is None
                assert list_groups(s) == []
                assert sum(g.count for g in list_groups(s, resolved=True)) == waiting
        finally:
            strict.close()


def test_a_rejected_item_read_again_is_counted_not_copied(db_url: str) -> None:
    from bridge.store.models import utcnow
    from bridge.sync.quarantine import record_rejected

    rt = Runtime(make_settings(db_url))
    try:
        first = [RejectedItem(remote_id="7", reason="title: missing", payload='{"id": 7}'),
                 RejectedItem(remote_id=None, reason="id: missing", payload='{"x": 1}'),
                 RejectedItem(remote_id=None, reason="id: missing", payload='{"x": 1}')]
        with rt.sessions() as s, s.begin():
            ids, counted = record_rejected(s, "inbox", first, utcnow())
        assert len(ids) == 2 and counted == first
        later = [RejectedItem(remote_id="7", reason="title: too long", payload='{"id": 7}'),
                 RejectedItem(remote_id="7", reason="title: missing",
                              payload='{"id": 7, "v": 2}'),
                 RejectedItem(remote_id=None, reason="id: missing", payload='{"x": 1}'),
                 RejectedItem(remote_id="7", reason="title: missing", payload='{"id": 7}',
                              ).model_copy(update={"remote_id": "8"})]
        with rt.sessions() as s, s.begin():
            again, _ = record_rejected(s, "followups", later[:1], utcnow())
            assert again[0] not in ids  # another stream is another item
            record_rejected(s, "inbox", later, utcnow())
        got = {(r.stream, r.remote_id, r.payload): r for r in rows(rt)}
        assert len(got) == 5
        seven = got[("inbox", "7", '{"id": 7}')]
        assert seven.seen == 2 and seven.reason == "title: too long"
        assert seven.history is not None and seven.history[0]["reason"] == "title: missing"
        assert got[("inbox", None, '{"x": 1}')].seen == 3
        assert got[("inbox", "7", '{"id": 7, "v": 2}')].seen == 1
    finally:
        rt.close()


# -- the command line, status and the staff page ---------------------------------------


def _config(path: Path, sandbox: SandboxServer, db: Path, extra: str = "") -> Path:
    path.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "{sandbox.url}"
requests_per_second = 500
{extra}

[database]
url = "sqlite:///{db}"
""", encoding="utf-8")
    return path


def run(config: Path, *args: str) -> tuple[int, str, str]:
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=env,
                                catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_cli_sync_exits_1_status_unhealthy_retry_brings_them_in(tmp_path: Path) -> None:
    with SandboxServer(seed=2, reports=15, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        db = tmp_path / "b.db"
        broken = _config(tmp_path / "broken.toml", sandbox, db, f"max_content_chars = {TINY}")
        code, out, err = run(broken, "sync", "--once")
        assert code == 1
        assert "15 quarantined" in out
        lines = err.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: quarantine alarm: 15 of 15 items quarantined in "
                                   "this pull, 1 whole page; top reason (15 items): content: ")

        code, out, _ = run(broken, "status")
        assert code == 1 and "problem: quarantine alarm: 15 item(s)" in out

        code, out, _ = run(broken, "quarantine")
        assert code == 0
        assert "quarantine: 15 waiting item(s) in 1 group(s)" in out
        assert "ALARM: quarantine alarm" in out
        assert "15 x content: N characters, over the limit of N" in out
        code, out, _ = run(broken, "quarantine", "--json", "--limit", "3")
        listing = json.loads(out)
        assert listing["items"] == 15 and listing["alarm"]["items"] == 15
        assert listing["groups"][0]["count"] == 15 and len(listing["groups"][0]["items"]) == 3
        ids = [i["id"] for i in listing["groups"][0]["items"]]

        # Bad requests: one line each.
        code, _, err = run(broken, "quarantine", "retry")
        assert code == 2 and "--all" in err
        code, _, err = run(broken, "quarantine", "retry", "--all", "1")
        assert code == 2
        code, _, err = run(broken, "quarantine", "retry", "424242")
        assert code == 1 and err.strip() == "error: no quarantined item with id 424242"

        # Retried under the same config: still failing, exit 1, the reason named.
        code, out, _ = run(broken, "quarantine", "retry", str(ids[0]))
        assert code == 1 and "retried 1 quarantined item(s): 0 brought in, 1 still failing" \
            in out and "still failing: 1 x content:" in out

        fixed = _config(tmp_path / "fixed.toml", sandbox, db)
        code, out, _ = run(fixed, "quarantine", "retry", "--json", str(ids[0]))
        assert code == 0 and json.loads(out)["stored"]["created"] == 1
        code, out, err = run(fixed, "quarantine", "retry", "--all")
        assert code == 0, err
        assert "retried 14 quarantined item(s): 14 brought in, 0 still failing" in out
        assert "stored: 14 new" in out
        code, out, _ = run(fixed, "queue", "--json")
        assert len(json.loads(out)) == 15
        code, out, _ = run(fixed, "status")
        assert "quarantine alarm" not in out
        code, out, _ = run(fixed, "quarantine")
        assert "quarantine: 0 waiting item(s)" in out
        code, out, _ = run(fixed, "quarantine", "--resolved")
        assert "accepted as case" in out and "retried 2x" in out
        code, out, err = run(fixed, "sync", "--once")
        assert code == 0, err


def test_staff_page_banner_for_the_roles_that_look_after_the_bridge(tmp_path: Path) -> None:
    from tests.support.web import build_env

    env = build_env(f"sqlite:///{tmp_path / 'web.db'}")
    try:
        admin, petugas = env.login("admin"), env.login("petugas", ip="10.0.0.2")
        assert "Karantina LAPOR!" not in admin.get("/antrean").text
        with env.rt.sessions() as s, s.begin():
            s.add(QuarantinedItem(stream="inbox", remote_id="7", payload="{}", alarm=True,
                                  reason="category: input should be a valid string "
                                         "(got {'id': 11, 'name': '<Perizinan>'})"))
        page = admin.get("/antrean").text
        assert "Karantina LAPOR!" in page and "1 laporan dari LAPOR! ditolak" in page
        assert "quarantine retry --all" in page
        assert "&lt;Perizinan&gt;" in page and "<Perizinan>" not in page
        assert "Karantina LAPOR!" not in petugas.get("/antrean").text
        kasi = env.login("kasi", ip="10.0.0.3")
        assert "Karantina LAPOR!" in kasi.get("/kotak-keluar").text
        with env.rt.sessions() as s:
            item_id = s.scalar(select(QuarantinedItem.id))
        assert item_id is not None
        dismiss(env.rt.sessions, [item_id])
        assert "Karantina LAPOR!" not in admin.get("/antrean").text
    finally:
        for c in env.clients:
            c.close()
        env.rt.close()


# -- the migration ------------------------------------------------------------------------


def test_migration_keeps_existing_rows_and_matches_the_models(empty_db_url: str) -> None:
    from sqlalchemy import text

    from bridge.store.db import make_engine
    from bridge.store.migrate import upgrade
    from tests.support.migrations import differences, downgrade

    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0004")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO quarantine (stream, remote_id, reason, payload, at)"
                              " VALUES ('inbox', '5', 'id: missing', '{}', :at)"),
                         {"at": "2026-11-01 02:00:00"})
        upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(text("SELECT seen, alarm, retries, last_seen_at, at, outcome "
                                    "FROM quarantine")).one()
            assert (row.seen, bool(row.alarm), row.retries, row.outcome) == (1, False, 0, None)
            assert str(row.last_seen_at) == str(row.at)
            assert differences(conn) == []
        downgrade(engine, "0004")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM quarantine")).scalar() == 1
    finally:
        engine.dispose()
