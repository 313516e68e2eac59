"""``restaged``: a snapshot with triage's fields moved, equal to ``dataclasses.replace``."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from bridge.domain import CaseSnapshot, ReporterInfo, restaged


def test_restaged_equals_replace_and_shares_the_frozen_data() -> None:
    snap = CaseSnapshot(id=7, register_no="DEMO/ADU/2026/00007", title="Limbah", content="x",
                        reporter=ReporterInfo(name="Siti"), data={"triage": {"a": [1]}},
                        received_at=datetime(2026, 8, 3, tzinfo=UTC))
    moved = restaged(snap, stage="verified", severity="berat")
    assert moved == replace(snap, stage="verified", severity="berat")
    assert (moved.stage, moved.severity, snap.stage, snap.severity) == (
        "verified", "berat", "received", None)
    assert moved.data is snap.data and moved.reporter == snap.reporter


def test_restaged_refuses_fields_with_invariants() -> None:
    snap = CaseSnapshot(id=1, register_no="r", title="t", content="c")
    for name in ("data", "reporter", "is_anonymous", "received_at"):
        with pytest.raises(TypeError, match=name):
            restaged(snap, **{name: None})
