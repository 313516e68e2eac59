"""The deployment config the bench's whole-command phases run with (``sync --once``, ``run``).

It is the demo's (``config/demo.toml``: regency, register format, default workflow)
pointed at the bench's sandbox and database, with the reference plugins the example
config loads (``routing_rules`` and ``notify_log``, by entry-point name), so that every hook
triage calls has an implementer and every notification reaches a channel, as in a
deployment. ``config/demo.toml`` itself names no plugins: with it, triage would ask
nobody and the bench would measure less than users run.

The request budget is kept out of the way (the bench measures the bridge, not the
pacing); the time-to-queue phase keeps the deployment's default pull interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The plugins the whole-command phases load (the example config's reference plugins).
BENCH_PLUGINS = ("routing_rules", "notify_log")


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def bench_config_text(*, base_url: str, db_url: str, page_size: int = 1000,
                      bearer_header: str = "auth", extra: str = "") -> str:
    """The TOML text; secrets come from the environment (``LAPOR_BRIDGE_BEARER``, ...)."""
    modules = ", ".join(_toml_str(m) for m in BENCH_PLUGINS)
    return f"""\
# Written by lapor-bridge bench (bridge/bench/userconfig.py): the demo's deployment with
# the example's reference plugins, pointed at the bench's sandbox.
[regency]
name = "Kabupaten Demo"
code = "DEMO"
register_format = "{{code}}/ADU/{{year}}/{{seq:05d}}"
timezone = "Asia/Jakarta"

[lapor]
base_url = {_toml_str(base_url)}
bearer_header = {_toml_str(bearer_header)}
institution_id = 1
user_id = 1
page_size = {int(page_size)}
requests_per_second = 1000000
read_timeout = 120

[database]
url = {_toml_str(db_url)}

[[opds]]
code = "DLH"
name = "Dinas Lingkungan Hidup"
kind = "opd"

[plugins]
enable = [{modules}]
entry_points = false

[routing_rules]
default_unit = "Seksi Penanganan Pengaduan"
default_tembusan = ["pelapor"]

[[routing_rules.rules]]
name = "lingkungan"
categories = ["Lingkungan Hidup"]
keywords = ["limbah", "pencemaran", "bau"]
opd = "Dinas Lingkungan Hidup"
tembusan = ["pelapor", "Camat {{kecamatan}}"]
reason = "Pencemaran lingkungan adalah kewenangan Dinas Lingkungan Hidup"

[notify_log]
level = "INFO"
{extra}"""


def write_bench_config(path: Path, **kwargs: Any) -> Path:
    path.write_text(bench_config_text(**kwargs), encoding="utf-8")
    return path


def bench_env(bearer: str, token: str) -> dict[str, str]:
    """The environment variables that carry the sandbox's (fake) credentials."""
    return {"LAPOR_BRIDGE_BEARER": bearer, "LAPOR_BRIDGE_TOKEN": token}
