"""Whole-config checks beyond the schema: sections that features and plugins declare."""

from __future__ import annotations

from bridge.config import Settings, check_unknown_sections


def check_settings(settings: Settings) -> None:
    """Raise ConfigError for anything wrong that load_settings alone cannot see."""
    declared: set[str] = set()
    try:
        from bridge.plugins import declared_sections
    except ModuleNotFoundError:
        pass
    else:
        declared |= declared_sections(settings)
    check_unknown_sections(settings, declared)
