"""A test deployment's settings: the base config, the test secrets and ``make_settings``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bridge.config import Settings

BASE_CONFIG = {
    "regency": {"name": "Kabupaten Uji", "code": "UJI",
                "register_format": "{code}/ADU/{year}/{seq:05d}"},
    "lapor": {"base_url": "http://127.0.0.1:9", "bearer_header": "Authorization",
              "institution_id": 1, "user_id": 7, "page_size": 50, "requests_per_second": 1000,
              "backoff_initial": 0.01, "backoff_max": 0.05, "max_attempts": 4,
              "read_timeout": 5},
    "outbox": {"backoff_initial": 0.01, "backoff_max": 0.05},
    "opds": [
        {"code": "DLH", "name": "Dinas Lingkungan Hidup", "lapor_institution_id": 102},
        {"code": "PUPR", "name": "Dinas PUPR", "lapor_institution_id": 103},
        {"code": "BPN", "name": "Kantor Pertanahan", "lapor_institution_id": 114, "kind": "body"},
        {"code": "KECAMATAN", "name": "Kecamatan Kota"},
    ],
}

TEST_BEARER = "test-bearer-SECRET-1f9a"
TEST_TOKEN = "{11111111-2222-4333-8444-SECRET555555}"


def make_settings(db_url: str, base_url: str = "http://127.0.0.1:9", **sections: object) -> Settings:
    """Settings for a test deployment; sections given replace or extend the base config."""
    import copy

    from bridge.config import settings_from_mapping

    data = copy.deepcopy(BASE_CONFIG)
    data["lapor"]["base_url"] = base_url  # type: ignore[index]
    data["database"] = {"url": db_url}
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}  # type: ignore[dict-item]
        else:
            data[name] = value
    return settings_from_mapping(
        data, source="test.toml",
        env={"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN},
    )
