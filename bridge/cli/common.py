"""What every command module shares: ``fail``, the settings, the runtime, ``--config``.

Defined once here; command modules import this module, never :mod:`bridge.cli` itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from bridge.config import ConfigError, Settings, load_settings
from bridge.deployment import DEFAULT_CONFIG
from bridge.plugins import PluginError

if TYPE_CHECKING:
    from bridge.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])


def default_config() -> str:
    env = os.environ.get("LAPOR_BRIDGE_CONFIG")
    if env:
        return env
    # In a clone, config/demo.toml is the demo's editable copy; anywhere else the copy
    # that ships in the package.
    local = Path("config") / "demo.toml"
    return str(local) if local.is_file() else DEFAULT_CONFIG


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


def load(ctx: click.Context) -> Settings:
    """The settings named by ``--config``, or exit 2 with the one-line reason."""
    path = ctx.obj["config"]
    try:
        return load_settings(path)
    except ConfigError as exc:
        fail(str(exc), 2)


@contextmanager
def runtime(ctx: click.Context) -> Iterator[Runtime]:
    # Lazy: the runtime loads SQLAlchemy, the plugins and the client (~0.5 s), which
    # --help and the commands that need no database must not pay for.
    from bridge.runtime import Runtime

    settings = load(ctx)
    try:
        rt = Runtime(settings)
    except (ConfigError, PluginError) as exc:
        fail(str(exc), 2)
    except Exception as exc:  # a database that cannot be reached or upgraded
        fail(f"cannot open the database: {type(exc).__name__}: {first_line(exc)}")
    try:
        yield rt
    finally:
        rt.close()


def config_option(f: F) -> F:
    """``--config`` accepted after any sub-command too (``lapor-bridge queue --config X``)."""

    def _store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["config"] = value
            root = ctx.find_root()
            root.ensure_object(dict)["config"] = value

    return click.option(
        "--config",
        "config_path",
        expose_value=False,
        callback=_store,
        is_eager=True,
        metavar="FILE",
        help="Deployment config (TOML).",
    )(f)
