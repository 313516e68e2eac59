"""Checks that hold for every shipped profile (the scenario kit is tests.support.profiles)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bridge.reports.settings import reports_settings
from bridge.testing import FakeLapor
from bridge.workflow.calendar import JAKARTA
from tests.support.profiles import (
    PROFILES,
    make_deployment,
    profile_data,
)
from tests.support.times import wib

# -- checks that hold for every shipped profile --------------------------------------


@pytest.mark.parametrize("name", PROFILES)
def test_profile_is_a_complete_deployment(name: str, tmp_path: Path,
                                          lapor_mock: FakeLapor) -> None:
    data = profile_data(name)
    for section in ("regency", "lapor", "database", "opds", "calendar", "workflow",
                    "plugins", "reports"):
        assert section in data, f"{name}: [{section}] missing"
    assert data["lapor"]["base_url"] == "https://api-splp.layanan.go.id/lapor/3.0.0"
    assert data["lapor"]["bearer_header"] == "auth"
    assert len(data["opds"]) >= 4
    assert all(o.get("lapor_institution_id") for o in data["opds"])
    # The year's cuti bersama are working days no longer.
    assert len(data["calendar"]["cuti_bersama"]) == 8
    d = make_deployment(name, tmp_path, lapor_mock, wib(2026, 8, 3))
    try:
        assert not d.rt.calendar.is_working_day(datetime(2026, 3, 20, tzinfo=JAKARTA).date())
        assert not d.rt.calendar.is_working_day(datetime(2026, 8, 17, tzinfo=JAKARTA).date())
        cfg = reports_settings(d.rt.settings)
        assert cfg.schedules and cfg.recipients
        assert "sistem" in d.rt.workflow.roles
        assert d.rt.workflow.profile.name and d.rt.workflow.profile.name != "Alur bawaan " \
            "(pola umum SOP DPMPTSP)"
    finally:
        d.rt.close()


def test_profiles_differ_from_the_default_only_where_their_sop_does() -> None:
    from bridge.workflow.defaults import build_workflow, default_workflow

    default = default_workflow().profile
    for name in PROFILES:
        wf = build_workflow(profile_data(name)["workflow"]).profile
        # National limits are the same everywhere: they are LAPOR!'s, not the SOP's.
        assert wf.national == default.national, name
        assert wf.deadlines.overall != default.deadlines.overall or name == "situbondo"
