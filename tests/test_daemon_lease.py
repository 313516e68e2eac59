"""The sync lease on SQLite and PostgreSQL: one holder at a time, expiry, takeover."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from bridge.daemon.lease import LeaseManager, make_holder, read_lease
from bridge.store.db import make_engine
from bridge.store.schema import ensure_schema
from tests.support.clock import FakeLeaseClock


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    ensure_schema(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeLeaseClock:
    return FakeLeaseClock()


def test_one_holder_renewal_keeps_first_acquisition(engine: Engine,
                                                    clock: FakeLeaseClock) -> None:
    a = LeaseManager(engine, 30, holder="a", clock=clock)
    b = LeaseManager(engine, 30, holder="b", clock=clock)
    assert a.acquire()
    first = read_lease(engine, clock=clock)
    assert first is not None and first.holder == "a" and not first.expired
    assert not b.acquire() and not b.still_valid()
    clock.advance(10)
    assert a.acquire() and a.still_valid()
    again = read_lease(engine, clock=clock)
    assert again is not None
    assert again.acquired_at == first.acquired_at
    assert again.expires_at > first.expires_at


def test_expiry_lets_the_standby_in_and_the_old_holder_out(engine: Engine,
                                                          clock: FakeLeaseClock) -> None:
    a = LeaseManager(engine, 30, holder="a", clock=clock)
    b = LeaseManager(engine, 30, holder="b", clock=clock)
    assert a.acquire()
    clock.advance(29)
    assert not b.acquire()
    assert not read_lease(engine, clock=clock).expired  # type: ignore[union-attr]
    clock.advance(2)
    info = read_lease(engine, clock=clock)
    assert info is not None and info.expired
    assert b.acquire()
    # The old leader's renewal fails now: it has lost the lease.
    assert not a.acquire() and not a.still_valid()
    info = read_lease(engine, clock=clock)
    assert info is not None and info.holder == "b"


def test_release_hands_over_at_once(engine: Engine) -> None:
    a = LeaseManager(engine, 30, holder="a")
    b = LeaseManager(engine, 30, holder="b")
    assert a.acquire()
    assert not b.release()  # not b's to give
    assert a.release() and not a.still_valid()
    assert read_lease(engine) is None
    assert b.acquire()


def test_local_validity_ends_before_the_database_expiry(engine: Engine,
                                                       clock: FakeLeaseClock) -> None:
    a = LeaseManager(engine, 10, holder="a", safety=0.5, clock=clock)
    assert a.acquire() and a.still_valid()
    clock.advance(4.9)
    assert a.still_valid()
    clock.advance(0.2)
    # 5.1 s > 0.5 * 10 s: the holder stops acting although the row is still valid.
    assert not a.still_valid()
    info = read_lease(engine, clock=clock)
    assert info is not None and info.holder == "a" and not info.expired


def test_expiry_is_computed_by_the_database(engine: Engine) -> None:
    a = LeaseManager(engine, 7, holder="a")
    assert a.acquire()
    info = read_lease(engine)
    assert info is not None
    if engine.dialect.name == "postgresql":
        # Both times come from one now(): exactly the TTL apart.
        assert info.expires_at - info.acquired_at == timedelta(seconds=7)
        with engine.connect() as conn:
            db_now = conn.execute(text("SELECT timezone('UTC', now())")).scalar_one()
        assert abs((info.acquired_at.replace(tzinfo=None) - db_now).total_seconds()) < 5
    else:
        assert abs((info.expires_at - info.acquired_at).total_seconds() - 7) < 0.5


def _race(managers: list[LeaseManager]) -> list[str]:
    """All managers ask for the lease at the same moment; returns the winners."""
    barrier = threading.Barrier(len(managers))
    won: list[str] = []
    errors: list[BaseException] = []

    def contend(m: LeaseManager) -> None:
        barrier.wait()
        try:
            if m.acquire():
                won.append(m.holder)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=contend, args=(m,)) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return won


def test_racing_standbys_never_both_win(engine: Engine) -> None:
    for round_no in range(5):
        managers = [LeaseManager(engine, 30, holder=f"r{round_no}-{i}") for i in range(6)]
        won = _race(managers)
        assert len(won) == 1, won
        info = read_lease(engine)
        assert info is not None and info.holder == won[0]
        winner = next(m for m in managers if m.holder == won[0])
        assert winner.release()


def test_holder_names_are_unique_and_name_the_process() -> None:
    import os

    a, b = make_holder(), make_holder()
    assert a != b
    assert a.split(":")[-2] == str(os.getpid())
