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
    from bridge.app.deployment import Deployment
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


def chosen_body(ctx: click.Context) -> str | None:
    """The ``--body`` given, if any."""
    return (ctx.find_root().obj or {}).get("body") or (ctx.obj or {}).get("body")


def load_body(ctx: click.Context) -> Settings:
    """The settings of the body ``--body`` names (required when the deployment has
    several), or the deployment's own for a one-body deployment; exit 2 on a problem."""
    from bridge.bodies import body_of

    settings = load(ctx)
    try:
        return body_of(settings, chosen_body(ctx)).settings
    except ConfigError as exc:
        fail(str(exc), 2)


@contextmanager
def deployment(ctx: click.Context, only: str | None = None) -> Iterator[Deployment]:
    """Every body's runtime (or the one ``only`` names), closed on exit."""
    from bridge.app.deployment import Deployment

    settings = load(ctx)
    dep = _open(lambda: Deployment(settings, only=only))
    try:
        yield dep
    finally:
        dep.close()


T = TypeVar("T")


def _open(make: Callable[[], T]) -> T:
    """``make()``, or exit: 2 for a configuration problem, 1 for a database that cannot
    be reached or upgraded."""
    try:
        return make()
    except (ConfigError, PluginError) as exc:
        fail(str(exc), 2)
    except Exception as exc:
        fail(f"cannot open the database: {type(exc).__name__}: {first_line(exc)}")


@contextmanager
def runtime(ctx: click.Context) -> Iterator[Runtime]:
    # Lazy: the runtime loads SQLAlchemy, the plugins and the client (~0.5 s), which
    # --help and the commands that need no database must not pay for.
    from bridge.runtime import Runtime

    settings = load_body(ctx)
    rt = _open(lambda: Runtime(settings))
    try:
        yield rt
    finally:
        rt.close()


def config_option(f: F) -> F:
    """``--config`` accepted after any sub-command too (``lapor-bridge queue --config X``),
    and ``--body CODE`` with it: the body a command works on in a several-body deployment."""

    def _store(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["config"] = value
            root = ctx.find_root()
            root.ensure_object(dict)["config"] = value

    def _store_body(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value is not None:
            ctx.ensure_object(dict)["body"] = value
            ctx.find_root().ensure_object(dict)["body"] = value

    with_body = click.option(
        "--body",
        "body_code",
        expose_value=False,
        callback=_store_body,
        is_eager=True,
        metavar="CODE",
        envvar="LAPOR_BRIDGE_BODY",
        help="The body ([[bodies]] code) of a several-body deployment.",
    )(f)
    return click.option(
        "--config",
        "config_path",
        expose_value=False,
        callback=_store,
        is_eager=True,
        metavar="FILE",
        help="Deployment config (TOML).",
    )(with_body)
