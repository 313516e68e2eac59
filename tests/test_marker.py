"""The read-back marker: invisible to the citizen, still found by read-back (both dialects)."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from bridge.services.actions import Actor
from bridge.store.models import Case, OutboxRow
from bridge.sync.push import Pusher, has_marker, marker, markers_in, strip_markers, with_marker
from tests.support.settings import TEST_BEARER, TEST_TOKEN

ANALIS = Actor("Budi", "analis")


def shown(text: str) -> str:
    """What a reader sees: the text without format (zero-width) characters."""
    return "".join(ch for ch in text if unicodedata.category(ch) != "Cf")


@given(st.integers(min_value=0, max_value=2**53))
def test_marker_is_invisible_and_round_trips(row_id: int) -> None:
    tag = marker(row_id)
    assert all(unicodedata.category(ch) == "Cf" for ch in tag)
    assert not any(ch.isspace() for ch in tag)
    text = with_marker("Sudah kami cek ke lapangan.", row_id)
    assert shown(text) == "Sudah kami cek ke lapangan."
    assert text.strip() == text  # a server's trim keeps it
    assert markers_in(text) == [row_id]
    assert strip_markers(text) == "Sudah kami cek ke lapangan."


@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=0, max_value=10**6))
def test_one_marker_is_never_found_inside_another(a: int, b: int) -> None:
    assert has_marker(with_marker("x", a), b) == (a == b)


def test_visible_style_and_old_markers_are_still_read() -> None:
    visible = with_marker("Teks", 42, style="visible")
    assert visible == "Teks\n\n[lb:42]"
    # A row posted before the upgrade (visible marker) is still found by read-back.
    assert has_marker(visible, 42) and not has_marker(visible, 4)
    assert markers_in(visible + " " + marker(7)) == [42, 7]
    assert strip_markers(visible) == "Teks"
    assert with_marker("Teks", 42, enabled=False) == "Teks"


def test_negative_row_id_is_refused() -> None:
    with pytest.raises(ValueError):
        marker(-1)


def _on_sandbox(runtime_factory: Any, dialect: str, **lapor: Any) -> tuple[Any, Any, int]:
    from bridge.lapor.sandbox import SandboxServer

    sandbox = SandboxServer(seed=4, reports=5, bearer=TEST_BEARER, token=TEST_TOKEN,
                            dialect=dialect)
    sandbox.__enter__()
    rt = runtime_factory(sandbox.url, dialect=dialect, lapor={"read_timeout": 0.5, **lapor})
    with rt.client() as client:
        rt.puller(client).run()
    with rt.sessions() as s, s.begin():
        case = s.scalars(select(Case).where(Case.lapor_id.is_not(None))).first()
        assert case is not None
        case.stage = "handling"
        return sandbox, rt, case.id


@pytest.mark.parametrize("style", ["invisible", "visible"])
def test_sandbox_keeps_the_marker_and_read_back_is_exactly_once(
        runtime_factory: Any, dialect: str, style: str) -> None:
    sandbox, rt, cid = _on_sandbox(runtime_factory, dialect, followup_marker_style=style)
    try:
        with rt.sessions() as s:
            lapor_id = s.get(Case, cid).lapor_id  # type: ignore[union-attr]
        before = len(sandbox.state.followups_of(lapor_id))
        res = rt.actions().followup(cid, ANALIS, "Tim teknis sudah meninjau lokasi.")
        (row_id,) = res.outbox_ids
        # LAPOR! applies the POST, then the answer is lost: the row is uncertain.
        sandbox.state.set_faults({"apply_then_fail_rate": 1.0, "seed": 1})
        with rt.client() as client:
            Pusher(client, rt.sessions, rt.settings).run()
        with rt.sessions() as s:
            row = s.get(OutboxRow, row_id)
            assert row is not None and row.status == "pending" and row.uncertain
        sandbox.state.set_faults(None)
        with rt.client() as client:
            result = Pusher(client, rt.sessions, rt.settings,
                            clock=lambda: row.next_attempt_at).run()  # type: ignore[union-attr]
        assert result.confirmed_by_readback == 1
        posted = sandbox.state.followups_of(lapor_id)[before:]
        assert len(posted) == 1, "posted twice"
        content = str(posted[0]["content"])
        assert markers_in(content) == [row_id]
        if style == "invisible":
            assert shown(content) == "Tim teknis sudah meninjau lokasi."
            assert "[lb:" not in content
        with rt.sessions() as s:
            done = s.scalars(select(OutboxRow).where(OutboxRow.id == row_id)).one()
            assert done.status == "done"
    finally:
        sandbox.__exit__(None, None, None)
