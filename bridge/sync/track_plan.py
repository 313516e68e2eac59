"""When to poll a tracked case: the ``[tracking]`` settings and the pure scheduling rules.

Nothing here does I/O or reads a clock: times are plain seconds (any epoch), so the same
functions drive the tracker (``bridge.sync.track``) and the virtual-clock simulation
(``bridge.sync.track_sim``), and are tested without HTTP or a database.

The rules:

- a case whose latest change on LAPOR! is less than ``active_window`` old is *active* and
  polled every ``active_interval``; an older one is *quiet* (``quiet_interval``); a closed
  one (a closing LAPOR! status, or closed locally) is polled every ``closed_interval``;
- a poll that failed is tried again after ``failure_backoff_initial``, doubling up to
  ``failure_backoff_max``, never later than the case's own cadence would;
- each due time is brought forward by a share of the interval (at most ``jitter``)
  drawn from the case's LAPOR! id and the poll's time, so that cases polled together
  drift apart instead of coming due in one burst; the cadence is never exceeded; cases
  enrolled in bulk get their first poll spread over their interval;
- when more cases are due than a run can poll, those late by the largest share of their
  own interval go first: an active case five minutes late outranks a quiet one an hour
  late.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from bridge.config import Seconds, Settings, register_section, section_settings

register_section("tracking")

Cadence = Literal["active", "quiet", "closed"]
ACTIVE: Cadence = "active"
QUIET: Cadence = "quiet"
CLOSED: Cadence = "closed"


class TrackingSettings(BaseModel):
    """``[tracking]``: following known LAPOR! reports by id (see docs/sync.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Poll the tracked cases at all (each pull run and ``sync --once``).
    enabled: bool = True
    #: A case with a change on LAPOR! this recent is active ...
    active_window: Seconds = 7 * 86400.0
    #: ... and polled this often.
    active_interval: Seconds = 180.0
    #: An open case with no change within ``active_window``.
    quiet_interval: Seconds = 12 * 3600.0
    #: A case LAPOR! or the regency has closed.
    closed_interval: Seconds = 7 * 86400.0
    #: After a failed poll: first retry delay, doubling up to the maximum.
    failure_backoff_initial: Seconds = 60.0
    failure_backoff_max: Seconds = 3600.0
    #: Largest share of an interval a case's due time is brought forward, to spread load.
    jitter: float = Field(default=0.1, ge=0.0, lt=1.0)
    #: LAPOR! status codes that close a report (Selesai, Diarsipkan, Ditolak by default).
    closed_status_codes: list[str] = Field(default_factory=lambda: ["3", "4", "5"])
    #: Longest one run spends polling (leave room in the daemon's pull interval).
    run_seconds: Seconds = 45.0
    #: Cases polled at the same time (the request budget still paces them all).
    concurrency: int = Field(default=4, ge=1, le=64)
    #: Stop a run after this many polls in a row fail for a transient reason.
    max_consecutive_failures: int = Field(default=5, ge=1)
    #: When the inbox is unavailable, also track every open case that has a LAPOR! id.
    track_all_when_no_inbox: bool = True


def tracking_settings(settings: Settings) -> TrackingSettings:
    """Validate ``[tracking]``; raises ConfigError naming ``tracking.<key>``."""
    return section_settings(settings, "tracking", TrackingSettings)


@dataclass(frozen=True)
class TrackState:
    """What the schedule needs to know of one tracked case (times in seconds)."""

    lapor_id: int
    #: Latest change on LAPOR! known (its own timestamps, or when the bridge saw one).
    last_change_at: float | None
    closed: bool = False
    #: Polls failed in a row.
    failures: int = 0


def cadence(state: TrackState, now: float, cfg: TrackingSettings) -> Cadence:
    if state.closed:
        return CLOSED
    if state.last_change_at is not None and now - state.last_change_at < cfg.active_window:
        return ACTIVE
    return QUIET


def interval(state: TrackState, now: float, cfg: TrackingSettings) -> float:
    """Seconds between two polls of this case as it stands now."""
    return {ACTIVE: cfg.active_interval, QUIET: cfg.quiet_interval,
            CLOSED: cfg.closed_interval}[cadence(state, now, cfg)]


def spread(lapor_id: int, salt: int = 0) -> float:
    """A number in [0, 1) fixed by the case and ``salt`` (splitmix64 of both): the same
    inputs always give the same number, different polls of a case different ones."""
    z = (lapor_id * 0x9E3779B97F4A7C15 + salt * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) \
        & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / 2.0**53


def next_due(state: TrackState, polled_at: float, cfg: TrackingSettings) -> float:
    """When to poll again after a poll at ``polled_at`` (``state`` as it is after it)."""
    every = interval(state, polled_at, cfg)
    if state.failures > 0:
        backoff = cfg.failure_backoff_initial * 2.0 ** min(state.failures - 1, 30)
        every = min(every, min(backoff, cfg.failure_backoff_max))
        return polled_at + every
    # Salted with the poll's second: a share fixed per case would pull every case's
    # phase towards the same moment, poll after poll, until they all came due together.
    return polled_at + every * (1.0 - cfg.jitter * spread(state.lapor_id, int(polled_at)))


def first_due(state: TrackState, now: float, cfg: TrackingSettings) -> float:
    """When to poll a case enrolled in bulk for the first time: somewhere within its
    interval (by its id), so that thousands enrolled at once do not come due together."""
    return now + interval(state, now, cfg) * spread(state.lapor_id)


@dataclass(frozen=True)
class Due:
    """A tracked case as the run sees it: its id, due time and current interval."""

    lapor_id: int
    due_at: float
    interval: float


def priority(item: Due, now: float) -> float:
    """How late a case is, as a share of its own interval (larger: poll first)."""
    return (now - item.due_at) / item.interval


def order_due(items: Iterable[Due], now: float, *, refresh_all: bool = False) -> list[Due]:
    """The cases to poll in this run, most urgent first (``refresh_all``: every case)."""
    chosen = [i for i in items if refresh_all or i.due_at <= now]
    chosen.sort(key=lambda i: (-priority(i, now), i.due_at, i.lapor_id))
    return chosen


def fits(elapsed: float, cfg: TrackingSettings, refresh_all: bool) -> bool:
    """Whether a run that has been polling for ``elapsed`` seconds may start another
    poll (``refresh_all`` runs until every case is polled)."""
    return refresh_all or elapsed < cfg.run_seconds


def latest(*times: float | None) -> float | None:
    known = [t for t in times if t is not None]
    return max(known) if known else None


__all__ = [
    "ACTIVE",
    "CLOSED",
    "QUIET",
    "Due",
    "TrackState",
    "TrackingSettings",
    "cadence",
    "first_due",
    "fits",
    "interval",
    "latest",
    "next_due",
    "order_due",
    "priority",
    "spread",
    "tracking_settings",
]
