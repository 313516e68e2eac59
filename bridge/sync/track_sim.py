"""A virtual-clock simulation of tracking: how soon is a change on LAPOR! seen?

Pure (no I/O, no wall clock): the same scheduling rules as the tracker
(:mod:`bridge.sync.track_plan`) drive a model of the daemon. Every ``run_interval``
seconds a run starts, takes the cases due at that moment, most urgent first, and polls
them one after another at the request budget (each poll costs ``requests_per_poll``
requests: the detail and one page of follow-ups) until ``run_seconds`` have passed.

Changes arrive on LAPOR! in bursts: a silent case wakes up (at a rate that keeps the
number of active cases steady), changes ``changes_per_burst`` times on average at
``active_changes_per_day``, then falls silent. For each change the delay until the poll
that sees it is recorded, grouped by what the case was *as the bridge knew it* when the
change arrived: active (a change seen within ``active_window``) or quiet. A change that
follows an earlier one the bridge has not seen yet counts as quiet: it is seen by the
same poll as that first change.

Run it: ``python -m bridge.sync.track_sim`` (``--help`` for the sizes).
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
from dataclasses import dataclass, field

from bridge.locale import human_span
from bridge.sync import track_plan as plan

DAY = 86400.0


@dataclass(frozen=True)
class SimParams:
    cases: int = 10_000
    #: Of those, active (a change within the active window) at the start.
    active: int = 300
    requests_per_second: float = 5.0
    requests_per_poll: int = 2
    #: The daemon's pull interval (each run polls what is due then).
    run_interval: float = 60.0
    #: How often an active case changes (a follow-up, a status step), and how many
    #: changes a burst of activity has on average before the case falls silent.
    active_changes_per_day: float = 2.0
    changes_per_burst: float = 4.0
    #: Simulated time, and the first part of it left out of the figures.
    days: float = 7.0
    warmup_days: float = 1.0
    seed: int = 1


@dataclass
class SimResult:
    params: SimParams
    delays: dict[str, list[float]] = field(default_factory=lambda: {"active": [], "quiet": []})
    polls: int = 0
    #: Share of the request budget that polling used.
    budget_used: float = 0.0
    #: Cases left due at the end of runs, on average (0: the budget keeps up).
    backlog: float = 0.0
    active_at_end: int = 0

    def percentile(self, kind: str, p: float) -> float | None:
        values = sorted(self.delays[kind])
        if not values:
            return None
        k = min(len(values) - 1, max(0, math.ceil(p / 100 * len(values)) - 1))
        return values[k]

    def lines(self) -> list[str]:
        p = self.params
        out = [f"{p.cases:,} tracked open cases ({p.active:,} active at the start, "
               f"{self.active_at_end:,} at the end), budget {p.requests_per_second:g} req/s, "
               f"{p.requests_per_poll} requests per poll, a run every {p.run_interval:g} s; "
               f"{p.days:g} days simulated, first {p.warmup_days:g} left out"]
        for kind in ("active", "quiet"):
            n = len(self.delays[kind])
            p50, p95 = self.percentile(kind, 50), self.percentile(kind, 95)
            if p50 is None or p95 is None:
                out.append(f"  {kind:6}: no changes")
                continue
            out.append(f"  {kind:6}: {n:6,} changes seen; p50 {human_span(p50)}, p95 {human_span(p95)}, "
                       f"max {human_span(max(self.delays[kind]))}")
        out.append(f"  {self.polls:,} polls, {self.budget_used:.0%} of the request budget; "
                   f"backlog after a run {self.backlog:.1f} cases on average")
        return out


@dataclass
class _Case:
    lapor_id: int
    true_change: float | None        # latest change on LAPOR! (ground truth)
    seen_change: float | None        # latest change the bridge knows of
    due: float
    #: Changes of the current burst still to come (0: the case has gone silent).
    burst_left: int = 0
    pending: list[tuple[float, str]] = field(default_factory=list)  # unseen changes
    version: int = 0


def simulate(params: SimParams | None = None,
             cfg: plan.TrackingSettings | None = None) -> SimResult:
    """Run the simulation; the figures are in the result (see :meth:`SimResult.lines`)."""
    p = params or SimParams()
    cfg = cfg or plan.TrackingSettings()
    rng = random.Random(p.seed)
    window = cfg.active_window
    active_rate = p.active_changes_per_day / DAY
    burst = max(1.0, p.changes_per_burst)
    # A silent case wakes up (a new burst of changes) at the rate that keeps the number of
    # active cases steady: a burst lasts about (burst - 1) / rate, then the window.
    lasting = (burst - 1) / active_rate + window
    wake_rate = p.active / lasting / max(1, p.cases - p.active)
    base = 1_000_000
    cases: list[_Case] = []
    arrivals: list[tuple[float, int]] = []

    def next_change(idx: int, now: float) -> None:
        c = cases[idx]
        rate = active_rate if c.burst_left > 0 else wake_rate
        heapq.heappush(arrivals, (now + rng.expovariate(rate), idx))

    def burst_length() -> int:
        # Geometric with mean ``burst`` changes (the first included).
        return 1 + int(math.log(1 - rng.random()) / math.log(1 - 1 / burst)) if burst > 1 else 1

    for i in range(p.cases):
        last = -rng.uniform(0, window) if i < p.active else -window - rng.uniform(0, 60 * DAY)
        c = _Case(base + i, last, last, 0.0)
        if i < p.active and rng.random() < (lasting - window) / lasting:
            # An active case is still within its burst for that share of its active time.
            c.burst_left = max(0, burst_length() - 1)
        # The steady state: each case somewhere within its interval.
        c.due = plan.first_due(plan.TrackState(c.lapor_id, last), 0.0, cfg)
        cases.append(c)
        next_change(i, 0.0)
    due_heap = [(c.due, i, c.version) for i, c in enumerate(cases)]
    heapq.heapify(due_heap)

    def arrive(until: float) -> None:
        while arrivals and arrivals[0][0] <= until:
            when, idx = heapq.heappop(arrivals)
            c = cases[idx]
            # Active as the bridge knows it: a change it has seen within the window.
            known = c.seen_change is not None and when - c.seen_change < window
            c.pending.append((when, "active" if known else "quiet"))
            c.true_change = when
            c.burst_left = c.burst_left - 1 if c.burst_left > 0 else burst_length() - 1
            next_change(idx, when)

    result = SimResult(p)
    end, warm = p.days * DAY, p.warmup_days * DAY
    poll_cost = p.requests_per_poll / p.requests_per_second
    busy = backlog_sum = 0.0
    runs = 0
    run_at = 0.0
    while run_at < end:
        arrive(run_at)
        taken: list[int] = []
        while due_heap and due_heap[0][0] <= run_at:
            _, idx, version = heapq.heappop(due_heap)
            if version == cases[idx].version:
                taken.append(idx)
        due = [plan.Due(cases[i].lapor_id, cases[i].due, plan.interval(
            plan.TrackState(cases[i].lapor_id, cases[i].seen_change), run_at, cfg))
            for i in taken]
        ordered = plan.order_due(due, run_at)
        t = run_at
        polled = 0
        for item in ordered:
            idx = item.lapor_id - base
            c = cases[idx]
            if not plan.fits(t - run_at, cfg, False):
                heapq.heappush(due_heap, (c.due, idx, c.version))   # left for the next run
                continue
            t += poll_cost
            arrive(t)
            if c.pending:
                for when, kind in c.pending:
                    if when >= warm:
                        result.delays[kind].append(t - when)
                c.pending.clear()
                c.seen_change = c.true_change
            c.due = plan.next_due(plan.TrackState(c.lapor_id, c.seen_change), t, cfg)
            c.version += 1
            heapq.heappush(due_heap, (c.due, idx, c.version))
            polled += 1
        result.polls += polled
        busy += t - run_at
        backlog_sum += len(ordered) - polled
        runs += 1
        run_at += max(p.run_interval, t - run_at)
    result.budget_used = busy / end
    result.backlog = backlog_sum / max(1, runs)
    result.active_at_end = sum(1 for c in cases if c.true_change is not None
                               and end - c.true_change < window)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bridge.sync.track_sim",
                                 description="How soon tracking sees a change on LAPOR!")
    defaults = SimParams()
    ap.add_argument("--cases", type=int, default=defaults.cases)
    ap.add_argument("--active", type=int, default=defaults.active)
    ap.add_argument("--rps", type=float, default=defaults.requests_per_second)
    ap.add_argument("--days", type=float, default=defaults.days)
    ap.add_argument("--changes-per-day", type=float, default=defaults.active_changes_per_day,
                    help="changes per active case per day")
    ap.add_argument("--seed", type=int, default=defaults.seed)
    ap.add_argument("--active-interval", type=float, default=None)
    ap.add_argument("--quiet-interval", type=float, default=None)
    args = ap.parse_args(argv)
    overrides = {k: v for k, v in (("active_interval", args.active_interval),
                                   ("quiet_interval", args.quiet_interval)) if v is not None}
    cfg = plan.TrackingSettings(**overrides)
    params = SimParams(cases=args.cases, active=args.active, requests_per_second=args.rps,
                       days=args.days, active_changes_per_day=args.changes_per_day,
                       seed=args.seed, warmup_days=min(1.0, args.days / 4))
    print(f"cadence: active every {cfg.active_interval:g} s, quiet every "
          f"{cfg.quiet_interval:g} s, run time {cfg.run_seconds:g} s")
    for line in simulate(params, cfg).lines():
        print(line)


if __name__ == "__main__":
    main()
