"""Property tests (hypothesis) of the calendar and of the default workflow."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.workflow import (
    ACTIONS,
    JAKARTA,
    CaseTimeline,
    StageVisit,
    TransitionNotAllowed,
    WorkingCalendar,
    compute_deadlines,
    default_profile_data,
    default_workflow,
    escalation_due,
)

# No wall-clock limits per example: the suite runs on slow CI machines too.
PROPS = settings(max_examples=150, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])

days = st.dates(min_value=date(2024, 1, 1), max_value=date(2029, 12, 31))
zones = st.sampled_from([UTC, JAKARTA, timezone(timedelta(hours=9)),
                         timezone(timedelta(hours=-5))])
moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2029, 12, 31),
                       timezones=zones)
starts = st.one_of(days, moments)
counts = st.integers(min_value=0, max_value=45)

PLAIN = WorkingCalendar()
# Cuti bersama vary per year; a random set of them must not break the properties.
calendars = st.one_of(
    st.just(PLAIN),
    st.sets(days, max_size=25).map(lambda extra: WorkingCalendar(extra)),
)


@PROPS
@given(calendars, starts, counts)
def test_add_working_days_lands_on_a_working_day_at_end_of_day(
        cal: WorkingCalendar, start: date | datetime, n: int) -> None:
    due = cal.add_working_days(start, n)
    assert due.tzinfo is not None
    local = due.astimezone(JAKARTA)
    assert cal.is_working_day(local.date())
    assert local.time() == time(23, 59, 59)
    assert local.date() >= cal.local_date(start)


@PROPS
@given(calendars, starts, counts)
def test_one_more_working_day_is_strictly_later(cal: WorkingCalendar,
                                                start: date | datetime, n: int) -> None:
    assert cal.add_working_days(start, n + 1) > cal.add_working_days(start, n)


@PROPS
@given(calendars, starts, counts)
def test_working_days_between_inverts_add_working_days(cal: WorkingCalendar,
                                                       start: date | datetime, n: int) -> None:
    assert cal.working_days_between(start, cal.add_working_days(start, n)) == n


@PROPS
@given(calendars, days, days)
def test_working_days_between_is_monotonic(cal: WorkingCalendar, a: date, b: date) -> None:
    lo, hi = min(a, b), max(a, b)
    assert cal.working_days_between(lo, hi) >= 0
    assert cal.working_days_between(lo, hi + timedelta(days=1)) >= \
        cal.working_days_between(lo, hi)


@PROPS
@given(starts, st.integers(min_value=0, max_value=400), st.booleans())
def test_calendar_days_never_move_backwards(start: date | datetime, n: int,
                                            roll: bool) -> None:
    due = PLAIN.add_calendar_days(start, n, roll_to_working_day=roll)
    assert due.date() >= PLAIN.local_date(start) + timedelta(days=n)
    if roll:
        assert PLAIN.is_working_day(due.date())


# --- the default workflow ------------------------------------------------------------------

WF = default_workflow()
RAW = default_profile_data()


def _expected_from_raw() -> dict[str, dict[str, set[str]]]:
    """stage -> action -> roles, read straight from the TOML (independent of the index)."""
    out: dict[str, dict[str, set[str]]] = {s: {} for s in RAW["stages"]}
    for key, t in RAW["transitions"].items():
        action = t.get("action", key)
        roles = set(t.get("roles", []))
        if action == "approve" and not roles:
            roles = {s["role"] for s in RAW["approvals"][t["document"]]["steps"]}
        for stage in t["from"]:
            out[stage].setdefault(action, set()).update(roles)
    return out


EXPECTED = _expected_from_raw()
TERMINAL = [s for s, v in RAW["stages"].items() if v.get("terminal")]


def test_terminal_stages_allow_only_what_the_profile_says() -> None:
    assert TERMINAL
    for stage in TERMINAL:
        for role in WF.roles:
            allowed = set(WF.allowed_actions(stage, role))
            assert allowed == {a for a, roles in EXPECTED[stage].items() if role in roles}
            for action in ACTIONS:
                if action in allowed:
                    continue
                with pytest.raises(TransitionNotAllowed):
                    WF.check(action, stage, role, document="surat_jawaban")


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_allowed_actions_keep_the_case_in_a_known_stage(data: st.DataObject) -> None:
    stage = WF.initial_stage
    done: dict[str, list[str]] = {}
    visits = [StageVisit(stage, datetime(2026, 8, 3, 8, tzinfo=JAKARTA))]
    clock = visits[0].entered_at
    for _ in range(data.draw(st.integers(min_value=1, max_value=40), label="steps")):
        rules = WF.rules_from(stage)
        assert rules, f"non-terminal stage {stage!r} has no way on"
        rule = data.draw(st.sampled_from(rules), label="rule")
        kw: dict[str, Any] = {}
        if rule.action == "approve":
            assert rule.document is not None
            so_far = done.setdefault(rule.document, [])
            nxt = WF.next_approval_step(rule.document, so_far)
            if nxt is None:
                continue
            role = nxt.role
            kw = {"document": rule.document, "approvals_done": so_far}
        else:
            role = data.draw(st.sampled_from(sorted(rule.roles)), label="role")
            if rule.step is not None:
                kw = {"step": rule.step}
        assert rule.action in WF.allowed_actions(stage, role)
        fields = {f: "x" for f in rule.requires}
        move = WF.plan(rule.action, stage, role, fields=fields, **kw)
        assert move.to_stage in WF.stages
        assert move.rule == rule
        if move.approval is not None:
            done[rule.document or ""].append(role)
        if move.to_stage == "answer_drafted":
            done.clear()   # a new draft starts its approvals afresh
        # A refused action never changes anything and always says why.
        other = data.draw(st.sampled_from(ACTIONS), label="other action")
        if other not in EXPECTED[stage]:
            with pytest.raises(TransitionNotAllowed, match=repr(other)):
                WF.check(other, stage, role)
        stage = move.to_stage
        clock += timedelta(hours=data.draw(st.integers(min_value=0, max_value=80)))
        if stage != visits[-1].stage:
            visits.append(StageVisit(stage, clock))
    # Whatever the path, deadlines and escalation can be computed for the case.
    tl = CaseTimeline(received_at=visits[0].entered_at, history=visits)
    items = compute_deadlines(WF, PLAIN, tl)
    assert items[0].name == "overall" and items[0].due_at is not None
    level = escalation_due(WF, PLAIN, tl, clock)
    if WF.is_resolved(stage):
        assert level is None
