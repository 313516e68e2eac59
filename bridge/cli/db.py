"""``check-config`` and ``db upgrade``: the configuration and the schema."""

from __future__ import annotations

import sys

import click

from bridge.cli.common import chosen_body, config_option, fail, first_line, load
from bridge.config import ConfigError, Settings, load_settings
from bridge.plugins import PluginError


@click.command("check-config")
@click.argument("file", required=False)
@config_option
@click.pass_context
def check_config(ctx: click.Context, file: str | None) -> None:
    """Validate a config file; exit 2 with the file, key and problem when it is wrong."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.checks import check_deployment

    path = file or ctx.obj["config"]
    try:
        settings = load_settings(path)
        bodies = check_deployment(settings)
        _check_single_worker(settings)
    except (ConfigError, PluginError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    several = f", {bodies} bodies" if settings.bodies else ""
    click.echo(f"{path}: ok ({settings.regency.name}, {settings.regency.code}{several})")


def _check_single_worker(settings: Settings) -> None:
    """SQLite runs one worker: say so before a second one is started on it."""
    from bridge.daemon.share import SecondWorker, sqlite_worker_at

    running = sqlite_worker_at(settings.database.url)
    if running is not None:
        raise ConfigError(settings.source, "database.url", str(SecondWorker(running)))


@click.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@config_option
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Upgrade the database schema (the other commands do this on an empty database).

    A several-body deployment upgrades its own database (schema) and every body's store
    (or only the one --body names)."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.bodies import bodies_of, body_of, has_bodies

    settings = load(ctx)
    stores = [("", settings)]
    if has_bodies(settings):
        try:
            code = chosen_body(ctx)
            chosen = [body_of(settings, code)] if code else bodies_of(settings)
        except ConfigError as exc:
            fail(str(exc), 2)
        stores += [(f"body {b.code}: ", b.settings) for b in chosen]
    for label, store in stores:
        _upgrade_one(store, revision, label)


def _upgrade_one(settings: Settings, revision: str, label: str) -> None:
    from bridge.filemodes import file_mode
    from bridge.store.db import make_engine
    from bridge.store.migrate import current_revision, upgrade

    engine = make_engine(settings.database.url, settings.secrets.database_password,
                         file_mode=file_mode(settings), schema=settings.database.db_schema)
    try:
        upgrade(engine, revision)
        click.echo(f"{label}schema at revision {current_revision(engine)}")
    except Exception as exc:
        fail(f"{label}schema upgrade failed: {type(exc).__name__}: {first_line(exc)}")
    finally:
        engine.dispose()


def commands() -> list[click.Command]:
    return [check_config, db_group]
