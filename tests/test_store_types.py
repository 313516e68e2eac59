"""The store's column types: what they write is what SQLAlchemy's stock types write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import create_engine, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bridge.store.db import json_dumps
from bridge.store.models import Base, CaseEvent, UTCDateTime

STOCK = sqlite.DATETIME().bind_processor(sqlite.dialect())
OURS = UTCDateTime().bind_processor(sqlite.dialect())


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)),
                                               timezone(timedelta(hours=-9, minutes=-30))])))
def test_sqlite_datetime_text_is_sqlalchemys_own(moment: datetime) -> None:
    # Stored times compare as text in SQLite: one format, old rows and new alike.
    assert OURS(moment) == STOCK(moment.astimezone(UTC).replace(tzinfo=None))


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=7)),
                                               timezone(timedelta(hours=-3, minutes=-30))])))
def test_aware_times_round_trip_as_utc(moment: datetime) -> None:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        session.execute(text("PRAGMA foreign_keys=OFF"))
        session.add(CaseEvent(case_id=1, at=moment, side="local", actor="t", kind="k"))
    with Session(engine) as session:
        back = session.scalars(select(CaseEvent.at)).one()
    assert back == moment and back.tzinfo is UTC


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_naive_times_are_refused(dialect: Any) -> None:
    processor = UTCDateTime().bind_processor(dialect)
    with pytest.raises(ValueError, match="naive datetime"):
        processor(datetime(2026, 1, 1))


@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20))
def test_json_columns_keep_every_value(value: object) -> None:
    # orjson first, the standard library for what orjson refuses (big integers, lone
    # surrogates): the text read back is the value, whichever wrote it. (NaN and Infinity
    # are not JSON: the client refuses them where they come in, see the corpus.)
    import json

    assert json.loads(json_dumps(value)) == value
