"""execute_many writes exactly what SQLAlchemy's executemany writes, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bridge.store.bulk import execute_many
from bridge.store.db import make_engine
from bridge.store.models import Case, CaseEvent

CASES: Table = Case.__table__  # type: ignore[assignment]
EVENTS: Table = CaseEvent.__table__  # type: ignore[assignment]
WIB = timezone(timedelta(hours=7))


def _case(n: int, **over: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "register_no": f"R/{n:05d}", "channel": "lapor", "lapor_id": 1000 + n,
        "tracking_id": f"T{n}", "title": f"Judul {n}", "content": "Isi \u2713 \"kutip\" 'a'",
        "category": None, "location": "Kec. Klaten", "is_anonymous": n % 2 == 0,
        "is_secret": False, "reporter": None if n % 3 == 0 else {"name": f"Warga {n}"},
        "attachments": [{"id": n, "name": "a.pdf"}], "stage": "received",
        "received_at": datetime(2026, 3, 1, 9, 0, n % 60, 123456, tzinfo=WIB),
        "updated_at": datetime(2026, 3, 1, 2, 0, tzinfo=UTC), "deadline_at": None,
        "is_new": True, "version": 1, "data": {}, "raw": {"id": 1000 + n, "x": [1, 2.5]},
    }
    row.update(over)
    return row


def _dump(engine: Engine, table: Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        # The stored text/values as the database holds them, not as SQLAlchemy reads them
        # (generated ids left out: PostgreSQL's sequences go on between the two runs).
        columns = ", ".join(f"CAST({c.name} AS TEXT)" for c in table.columns
                            if c.name not in ("id", "case_id"))
        return [tuple(r) for r in conn.execute(text(f"SELECT {columns} FROM {table.name} "
                                                    "ORDER BY id"))]


def _both(db_url: str, write: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """What ``write(session, runner)`` stores through SQLAlchemy, then through
    execute_many, on two copies of the same fresh store."""
    engine = make_engine(db_url)
    try:
        results = []
        for runner in (lambda s, stmt, rows: s.execute(stmt, rows), execute_many):
            with Session(engine) as session, session.begin():
                session.execute(EVENTS.delete())
                session.execute(CASES.delete())
            with Session(engine) as session, session.begin():
                write(session, runner)
            results.append((_dump(engine, CASES), _dump(engine, EVENTS)))
        return results[0], results[1]
    finally:
        engine.dispose()


def test_inserts_and_updates_store_the_same_values(db_url: str) -> None:
    def write(session: Session, run: Any) -> None:
        run(session, insert(CASES), [_case(n) for n in range(1, 40)])
        ids = session.execute(select(Case.id).order_by(Case.id)).scalars().all()
        run(session, insert(EVENTS), [
            {"case_id": i, "at": datetime(2026, 3, 2, tzinfo=UTC), "side": "remote",
             "actor": "LAPOR!", "kind": "received", "changes": {"register_no": [None, "R"]},
             "note": None} for i in ids])
        run(session, update(CASES).where(CASES.c.id == bindparam("b_id"))
            .values(data=bindparam("b_data"), attention=bindparam("b_attention")),
            [{"b_id": i, "b_data": {"triage": {"n": n}}, "b_attention": None if n % 2 else "x"}
             for n, i in enumerate(ids)])

    generic, fast = _both(db_url, write)
    assert fast == generic
    assert len(fast[0]) == 39 and len(fast[1]) == 39


def test_rows_that_leave_out_a_defaulted_column_get_sqlalchemys_default(db_url: str) -> None:
    # CaseEvent.at has a Python-side default: execute_many hands such rows to SQLAlchemy.
    engine = make_engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            session.execute(insert(CASES), [_case(1)])
            case_id = session.execute(select(Case.id)).scalar_one()
            execute_many(session, insert(EVENTS), [
                {"case_id": case_id, "side": "local", "actor": "t", "kind": "k"}] * 3)
        with Session(engine) as session:
            stamps = session.execute(select(CaseEvent.at)).scalars().all()
        assert len(stamps) == 3 and all(s is not None for s in stamps)
    finally:
        engine.dispose()


def test_rows_with_differing_keys_are_refused_as_sqlalchemy_refuses_them(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with (pytest.raises(Exception, match="(?i)bind|parameter|value"),
              Session(engine) as session, session.begin()):
            execute_many(session, insert(CASES), [_case(1), {"title": "only a title"}])
    finally:
        engine.dispose()


def test_sqlite_times_in_one_statement_keep_their_own_instants() -> None:
    # The SQLite bind processor writes each distinct instant once per statement; equal
    # instants in different zones share a text, a repeated local hour's second pass not.
    from zoneinfo import ZoneInfo

    from bridge.store.models import UTCDateTime

    engine = make_engine("sqlite://")
    process = UTCDateTime().bind_processor(engine.dialect)
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime(2026, 10, 25, 2, 30, tzinfo=berlin)
    second = first.replace(fold=1)
    wib = datetime(2026, 3, 1, 9, 0, tzinfo=WIB)
    values = [wib, wib.astimezone(UTC), first, second, first, second, None]
    assert [process(v) for v in values] == [
        "2026-03-01 02:00:00.000000", "2026-03-01 02:00:00.000000",
        "2026-10-25 00:30:00.000000", "2026-10-25 01:30:00.000000",
        "2026-10-25 00:30:00.000000", "2026-10-25 01:30:00.000000", None]
    engine.dispose()
