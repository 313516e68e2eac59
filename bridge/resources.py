"""The files that ship inside the package: configs, regency profiles, systemd units.

In the source tree they live in ``config/``; pyproject.toml installs that folder as the
data package ``bridge.shipped``, so an installed bridge reads them here, through
importlib.resources, whatever the current folder is (an editable install maps the same
name onto ``config/``).
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

SHIPPED_PACKAGE = "bridge.shipped"
#: The demo config, used when no ``--config`` and no ``$LAPOR_BRIDGE_CONFIG`` is given.
DEMO = "demo"
#: Shipped configs that are documentation or the demo rather than a regency's SOP.
NOT_PROFILES = frozenset({DEMO, "example", "postgresql.example", "pemda-example"})
#: The systemd units, by the command they run.
UNITS = {"run": "lapor-bridge.service", "web": "lapor-bridge-web.service"}


def shipped_dir() -> Traversable:
    return resources.files(SHIPPED_PACKAGE)


def shipped_configs() -> list[str]:
    """Names (file name without ``.toml``) of every shipped config, sorted."""
    return sorted(entry.name.removesuffix(".toml") for entry in shipped_dir().iterdir()
                  if entry.name.endswith(".toml"))


def profile_names() -> list[str]:
    """The regency profiles a deployment may name (``profile = "klaten"``)."""
    return [name for name in shipped_configs() if name not in NOT_PROFILES]


def shipped_config(name: str) -> Traversable | None:
    """The shipped config called ``name`` (``"klaten"``), or ``None`` if there is none."""
    if name not in shipped_configs():
        return None
    return shipped_dir() / f"{name}.toml"


def unit_text(command: str) -> str:
    """The shipped systemd unit of ``command`` (``"run"`` or ``"web"``)."""
    return (shipped_dir() / UNITS[command]).read_text(encoding="utf-8")
