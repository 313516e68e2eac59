"""The ``[daemon]`` and ``[logging]`` sections of the deployment file.

Every duration is in seconds (fractions allowed, so tests can run jobs every 0.2 s) and
must be greater than zero: a zero interval would make APScheduler spin, a negative one is
a typo. Problems raise :class:`~bridge.config.ConfigError` naming the key
(``lapor-bridge.toml: daemon.pull_interval: must be greater than 0 seconds, got 0``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from bridge.config import ConfigError, Seconds, Settings, register_section, section_settings

# Known top-level sections even when nothing imported bridge.runtime (check-config).
register_section("daemon")
register_section("logging")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobTimeouts(_Section):
    """The longest one run of each job kind may take before it is told to stop.

    A run past its limit is asked to stop at the next page (pull) or row (push) boundary;
    each request is bounded by the client's own timeouts, so the run ends soon after.
    """

    pull: Seconds = 1800.0
    push: Seconds = 1800.0
    events: Seconds = 600.0
    deadlines: Seconds = 600.0
    refresh: Seconds = 300.0
    reconcile: Seconds = 7200.0
    recap: Seconds = 1800.0
    plugin: Seconds = 600.0
    health: Seconds = 120.0


class HealthThresholds(_Section):
    """When ``lapor-bridge status`` (and ``/healthz``) call the deployment unhealthy."""

    #: Newest LAPOR! change seen (the pull cursor) older than this.
    max_lag: Seconds = 2 * 86400.0
    #: Last successful pull older than this (or none at all).
    max_pull_age: Seconds = 900.0
    #: Last successful push run older than this.
    max_push_age: Seconds = 1800.0
    #: More dead letters than this.
    max_dead: int = Field(default=0, ge=0)
    #: Oldest due outbox row waiting longer than this (the push is stuck).
    max_outbox_age: Seconds = 3600.0
    #: More unresolved quarantined items than this; unset: shown, never unhealthy.
    max_quarantined: int | None = Field(default=None, ge=0)
    #: More plugin events waiting for dispatch than this.
    max_pending_events: int = Field(default=1000, ge=0)


#: The recap jobs by default: monthly, per semester, yearly (see DOMAIN.md, rekapitulasi).
DEFAULT_RECAPS = {
    "monthly": "0 7 1 * *",
    "semester": "30 7 1 1,7 *",
    "yearly": "0 8 2 1 *",
}


def _crontab_problem(kind: str, expr: str, timezone: str) -> str | None:
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from apscheduler.triggers.cron import CronTrigger

    if not kind.replace("_", "").isalnum():
        return "a recap kind is letters, digits and _"
    try:
        CronTrigger.from_crontab(expr, timezone=timezone)
    except (TypeError, ValueError) as exc:
        return (f"{expr!r} is not a crontab expression (minute hour day-of-month month "
                f"day-of-week): {exc}")
    return None


class DaemonSettings(_Section):
    """``[daemon]``: the scheduled sync (``lapor-bridge run``)."""

    #: Pull LAPOR!'s inbox (new and changed reports).
    pull_interval: Seconds = 60.0
    #: Deliver the outbox (follow-ups, forwards, new reports) to LAPOR!.
    push_interval: Seconds = 30.0
    #: Dispatch plugin events (notifications) recorded by the sync and staff actions.
    events_interval: Seconds = 10.0
    #: Look for cases whose deadline is near or missed.
    deadline_interval: Seconds = 600.0
    #: How far ahead of a deadline a case counts as near.
    deadline_near_hours: Seconds = 48.0
    #: Refresh LAPOR!'s institution and template lists.
    refresh_interval: Seconds = 86400.0
    #: Re-read the last ``reconcile_window_days`` of the inbox (catches anything missed).
    reconcile_interval: Seconds = 21600.0
    reconcile_window_days: Seconds = 7.0
    #: Recap jobs: period kind -> crontab (regency time zone); empty table: none.
    recaps: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RECAPS))
    #: Run the jobs that plugins ask for (``scheduler_jobs`` hook).
    plugin_jobs: bool = True
    #: A run may start this late (the machine was busy or asleep) and still run.
    misfire_grace_time: Seconds = 60.0
    #: How often a health summary is logged while anything is dead, failing or stuck.
    health_log_interval: Seconds = 3600.0

    #: One active syncer per database: the leader holds a lease this long ...
    lease_ttl: Seconds = 30.0
    #: ... and renews it this often (must be well below ``lease_ttl``).
    lease_renew_interval: Seconds = 10.0
    #: How often a standby asks for the lease. Takeover after the leader dies takes at
    #: most ``lease_ttl + standby_poll_interval``.
    standby_poll_interval: Seconds = 5.0

    #: SIGTERM/SIGINT: finish the page or row in hand, commit, exit within this time.
    stop_timeout: Seconds = 30.0
    #: At start, keep retrying an unreachable database this long, then exit non-zero.
    start_timeout: Seconds = 300.0
    #: Longest pause between two such retries (they back off exponentially).
    start_retry_max_delay: Seconds = 30.0

    #: Serve /healthz and /metrics on this port (0: any free port); unset: no HTTP.
    http_port: int | None = Field(default=None, ge=0, le=65535)
    http_host: str = "127.0.0.1"
    #: File holding the token that shows /healthz's details (problems, last errors) to a
    #: request with ``Authorization: Bearer <token>``; $LAPOR_BRIDGE_HEALTH_TOKEN wins.
    #: Without either, /healthz answers the status only.
    health_token_file: str | None = None

    timeouts: JobTimeouts = JobTimeouts()
    health: HealthThresholds = HealthThresholds()


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


class LoggingSettings(_Section):
    """``[logging]``: how the daemon writes its log (to stderr; journald keeps it)."""

    format: Literal["plain", "json"] = "plain"
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], BeforeValidator(_upper)] = (
        "INFO")


def daemon_settings(settings: Settings) -> DaemonSettings:
    """Validate ``[daemon]``; raises ConfigError naming ``daemon.<key>`` and the problem."""
    cfg = section_settings(settings, "daemon", DaemonSettings)
    if cfg.lease_renew_interval >= cfg.lease_ttl:
        raise ConfigError(settings.source, "daemon.lease_renew_interval",
                          f"must be less than daemon.lease_ttl ({cfg.lease_ttl:g} s), got "
                          f"{cfg.lease_renew_interval:g}; renew two or three times per lease")
    if cfg.standby_poll_interval >= cfg.lease_ttl:
        raise ConfigError(settings.source, "daemon.standby_poll_interval",
                          f"must be less than daemon.lease_ttl ({cfg.lease_ttl:g} s), got "
                          f"{cfg.standby_poll_interval:g}")
    for kind, expr in cfg.recaps.items():
        bad = _crontab_problem(kind, expr, settings.regency.timezone)
        if bad:
            raise ConfigError(settings.source, f"daemon.recaps.{kind}", bad)
    return cfg


def logging_settings(settings: Settings) -> LoggingSettings:
    return section_settings(settings, "logging", LoggingSettings)


def check(settings: Settings) -> None:
    """Validate both sections (what ``check-config`` should call)."""
    daemon_settings(settings)
    logging_settings(settings)


__all__ = [
    "DEFAULT_RECAPS",
    "DaemonSettings",
    "HealthThresholds",
    "JobTimeouts",
    "LoggingSettings",
    "check",
    "daemon_settings",
    "logging_settings",
]
