"""Whole-config checks beyond the schema: sections that features and plugins declare."""

from __future__ import annotations

from bridge.bodies import check_bodies, has_bodies
from bridge.config import ConfigError, Settings, check_unknown_sections
from bridge.config_refs import check_references
from bridge.daemon.settings import check as check_daemon
from bridge.filemodes import file_mode
from bridge.lapor.api_profile import profile_of
from bridge.plugins import load_plugins
from bridge.reports.settings import reports_settings
from bridge.sync.track_plan import tracking_settings
from bridge.web.settings import check_secret_file, web_settings
from bridge.workflow.calendar import calendar_from_mapping
from bridge.workflow.defaults import build_workflow
from bridge.workflow.errors import WorkflowProfileError


def check_settings(settings: Settings) -> None:
    """Raise ConfigError for anything wrong that load_settings alone cannot see."""

    profile_of(settings.lapor, settings.source)
    try:
        calendar = calendar_from_mapping(settings.section("calendar"),
                                         tz=settings.regency.timezone)
        build_workflow(settings.section("workflow"))
    except WorkflowProfileError as exc:
        raise ConfigError(settings.source, exc.key, exc.problem) from None
    host = load_plugins(settings, calendar=calendar)
    check_unknown_sections(settings, set(host.declared_sections))

    check_references(settings, host)
    # Each built-in feature validates its own section (each raises ConfigError).

    check_daemon(settings)
    reports_settings(settings)
    check_secret_file(settings, web_settings(settings))
    file_mode(settings)
    tracking_settings(settings)


def check_deployment(settings: Settings) -> int:
    """:func:`check_settings` for the deployment and, in a Pemda, for each body's own
    settings (codes and institution ids unique, secrets found, no forward to itself).
    Returns how many bodies the deployment has."""
    check_settings(settings)
    if not has_bodies(settings):
        return 1
    bodies = check_bodies(settings)
    for i, body in enumerate(bodies):
        try:
            check_settings(body.settings)
        except ConfigError as exc:
            raise ConfigError(exc.file, f"bodies[{i}] ({body.code}): {exc.key}",
                              exc.problem) from None
    return len(bodies)
