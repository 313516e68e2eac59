"""The pure scheduling rules of tracking (no HTTP, no database) and the simulation."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError
from bridge.sync import track_plan as plan
from bridge.sync.track_sim import SimParams, simulate
from tests.support.settings import make_settings

CFG = plan.TrackingSettings()
NOW = 1_800_000_000.0
DAY = 86400.0


def state(last_change_days_ago: float | None, closed: bool = False, failures: int = 0,
          lapor_id: int = 42) -> plan.TrackState:
    last = None if last_change_days_ago is None else NOW - last_change_days_ago * DAY
    return plan.TrackState(lapor_id, last, closed, failures)


def test_cadence_by_activity_and_closure() -> None:
    assert plan.cadence(state(0.5), NOW, CFG) == plan.ACTIVE
    assert plan.cadence(state(6.9), NOW, CFG) == plan.ACTIVE
    assert plan.cadence(state(7.1), NOW, CFG) == plan.QUIET
    assert plan.cadence(state(None), NOW, CFG) == plan.QUIET
    assert plan.cadence(state(0.1, closed=True), NOW, CFG) == plan.CLOSED
    assert plan.interval(state(1), NOW, CFG) == CFG.active_interval
    assert plan.interval(state(30), NOW, CFG) == CFG.quiet_interval
    assert plan.interval(state(30, closed=True), NOW, CFG) == CFG.closed_interval
    assert CFG.active_interval < CFG.quiet_interval < CFG.closed_interval


def test_next_due_never_exceeds_the_cadence_and_spreads_cases() -> None:
    dues = {plan.next_due(state(1, lapor_id=i), NOW, CFG) - NOW for i in range(1, 200)}
    assert all(CFG.active_interval * (1 - CFG.jitter) <= d <= CFG.active_interval
               for d in dues)
    assert len(dues) > 150                          # not one burst
    # The same case always gets the same offset (no clock, no randomness).
    assert plan.next_due(state(1), NOW, CFG) == plan.next_due(state(1), NOW, CFG)
    no_jitter = plan.TrackingSettings(jitter=0)
    assert plan.next_due(state(40), NOW, no_jitter) == NOW + no_jitter.quiet_interval


def test_failures_back_off_up_to_the_limit_but_not_past_the_cadence() -> None:
    delays = [plan.next_due(state(30, failures=n), NOW, CFG) - NOW for n in range(1, 12)]
    assert delays[0] == CFG.failure_backoff_initial
    assert delays[1] == 2 * CFG.failure_backoff_initial
    assert delays == sorted(delays) and max(delays) == CFG.failure_backoff_max
    # An active case is never polled less often because it failed.
    assert plan.next_due(state(1, failures=9), NOW, CFG) - NOW == CFG.active_interval


def test_first_due_spreads_a_bulk_enrolment_over_the_interval() -> None:
    firsts = [plan.first_due(state(30, lapor_id=i), NOW, CFG) - NOW for i in range(1, 1001)]
    assert min(firsts) >= 0 and max(firsts) < CFG.quiet_interval
    # Roughly even: each tenth of the interval gets about a tenth of the cases.
    tenths = [0] * 10
    for f in firsts:
        tenths[int(10 * f / CFG.quiet_interval)] += 1
    assert all(60 <= n <= 140 for n in tenths), tenths


def test_order_due_puts_the_most_late_share_of_interval_first() -> None:
    active_late = plan.Due(1, NOW - 300, CFG.active_interval)   # 300 s late of 180 s
    quiet_late = plan.Due(2, NOW - 3600, CFG.quiet_interval)    # 1 h late of 12 h
    not_due = plan.Due(3, NOW + 10, CFG.active_interval)
    assert [d.lapor_id for d in plan.order_due([quiet_late, not_due, active_late], NOW)] == [1, 2]
    everything = plan.order_due([quiet_late, not_due, active_late], NOW, refresh_all=True)
    assert [d.lapor_id for d in everything] == [1, 2, 3]


def test_a_run_stops_at_its_time_unless_refreshing_all() -> None:
    assert plan.fits(CFG.run_seconds - 1, CFG, False)
    assert not plan.fits(CFG.run_seconds, CFG, False)
    assert plan.fits(10 * CFG.run_seconds, CFG, True)


def test_tracking_section_is_validated(tmp_path: object) -> None:
    settings = make_settings("sqlite://", tracking={"active_interval": 0})
    with pytest.raises(ConfigError, match="tracking.active_interval: must be greater than 0"):
        plan.tracking_settings(settings)
    settings = make_settings("sqlite://", tracking={"activ_interval": 60})
    with pytest.raises(ConfigError, match="tracking.activ_interval: unknown key"):
        plan.tracking_settings(settings)
    ok = plan.tracking_settings(make_settings("sqlite://", tracking={"quiet_interval": 3600}))
    assert ok.quiet_interval == 3600


def test_simulation_small_size_meets_the_targets() -> None:
    """The simulation at a small size: every change is seen, active cases within a few
    minutes, quiet ones within a day, and the same seed gives the same figures."""
    params = SimParams(cases=400, active=12, requests_per_second=0.5, days=2.0,
                       warmup_days=0.25, active_changes_per_day=6.0, seed=3)
    result = simulate(params)
    assert result.delays["active"] and result.delays["quiet"]
    p95_active = result.percentile("active", 95)
    p95_quiet = result.percentile("quiet", 95)
    assert p95_active is not None and p95_active <= 300
    assert p95_quiet is not None and p95_quiet <= DAY
    assert 0 < result.budget_used < 1
    assert simulate(params).delays == result.delays
    assert any("p95" in line for line in result.lines())


def test_simulation_shows_an_overloaded_budget() -> None:
    """Far more active cases than the budget can poll every few minutes: the figures
    say so (the active p95 goes past the target) instead of hiding it."""
    params = SimParams(cases=400, active=200, requests_per_second=0.5, days=1.0,
                       warmup_days=0.25, seed=3)
    result = simulate(params)
    p95 = result.percentile("active", 95)
    assert p95 is not None and p95 > 300 and result.backlog > 0
