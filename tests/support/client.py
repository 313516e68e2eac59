"""A LAPOR! client under test: its base URL, secrets and settings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from bridge.config import LaporSettings, Secrets

BASE = "https://lapor.test/api/3.0.0"
BEARER = "b3arer-S3CRET-value-9f8e7d"
TOKEN = "{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}"
SECRETS = Secrets(bearer=SecretStr(BEARER), token=SecretStr(TOKEN))
NOW = datetime(2026, 3, 2, 8, 0, 0, tzinfo=UTC)
MAX_ATTEMPTS = 4

INBOX = "/complaints/inbox"
FOLLOWUPS_5 = "/complaints/5/followups"


def lapor_settings(**overrides: Any) -> LaporSettings:
    values: dict[str, Any] = {
        "base_url": BASE,
        "requests_per_second": 1000.0,
        "max_attempts": MAX_ATTEMPTS,
        "backoff_initial": 0.5,
        "backoff_max": 8.0,
    }
    values.update(overrides)
    return LaporSettings(**values)
