"""The ``lapor-bridge`` command line.

Every command takes ``--config FILE`` (default: ``$LAPOR_BRIDGE_CONFIG`` or the shipped
``demo`` config; a bare name is a shipped config, see :mod:`bridge.deployment`). Configuration errors print one line naming the file, the key and
what was expected, and exit with code 2.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from bridge.cli_errors import OneLineErrors
from bridge.config import ConfigError, Settings, load_settings
from bridge.deployment import DEFAULT_CONFIG

F = TypeVar("F", bound=Callable[..., Any])


def _default_config() -> str:
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


def load(ctx: click.Context) -> Settings:
    """The settings named by ``--config``, or exit 2 with the one-line reason."""
    path = ctx.obj["config"]
    try:
        return load_settings(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@contextmanager
def runtime(ctx: click.Context) -> Iterator[Any]:
    from bridge.runtime import Runtime

    settings = load(ctx)
    from bridge.plugins import PluginError

    try:
        rt = Runtime(settings)
    except (ConfigError, PluginError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # a database that cannot be reached or upgraded
        fail(f"cannot open the database: {type(exc).__name__}: {_first_line(exc)}")
    try:
        yield rt
    finally:
        rt.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


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


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="FILE", default=None,
              help="Deployment config (TOML file, or a shipped name such as 'klaten'). "
                   "Default: $LAPOR_BRIDGE_CONFIG or the shipped 'demo'.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="lapor-bridge")
@click.pass_context
def main(ctx: click.Context, config: str | None, verbose: int) -> None:
    """lapor-bridge: keeps a regency's complaint queue and SP4N-LAPOR! in step."""
    ctx.ensure_object(dict)
    ctx.obj.setdefault("config", config or _default_config())
    if config:
        ctx.obj["config"] = config
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# -- config and database -----------------------------------------------------------------


@main.command("check-config")
@click.argument("file", required=False)
@config_option
@click.pass_context
def check_config(ctx: click.Context, file: str | None) -> None:
    """Validate a config file; exit 2 with the file, key and problem when it is wrong."""
    from bridge.checks import check_settings
    from bridge.plugins import PluginError

    path = file or ctx.obj["config"]
    try:
        settings = load_settings(path)
        check_settings(settings)
    except (ConfigError, PluginError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    click.echo(f"{path}: ok ({settings.regency.name}, {settings.regency.code})")


@main.group("db")
def db_group() -> None:
    """Database schema commands."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@config_option
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Upgrade the database schema (the other commands do this on an empty database)."""
    from bridge.filemodes import file_mode
    from bridge.store.db import current_revision, make_engine, upgrade

    settings = load(ctx)
    engine = make_engine(settings.database.url, settings.secrets.database_password,
                         file_mode=file_mode(settings))
    try:
        upgrade(engine, revision)
        click.echo(f"schema at revision {current_revision(engine)}")
    except Exception as exc:
        fail(f"schema upgrade failed: {type(exc).__name__}: {_first_line(exc)}")
    finally:
        engine.dispose()


# -- sync ------------------------------------------------------------------------------


@main.command("sync")
@click.option("--once", is_flag=True, required=True, help="Run one pull (then push) and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--refresh-all", is_flag=True,
              help="Poll every tracked case now, due or not (see docs/sync.md).")
@config_option
@click.pass_context
def sync_cmd(ctx: click.Context, once: bool, as_json: bool, refresh_all: bool) -> None:
    """Pull new and changed LAPOR! reports, poll tracked ones, then push local actions."""
    from bridge.lapor.errors import LaporError
    from bridge.sync.cycle import run_cycle

    with runtime(ctx) as rt:
        try:
            report = run_cycle(rt, refresh_all=refresh_all)
        except LaporError as exc:
            fail(f"LAPOR!: {exc}")
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        else:
            for line in report["lines"]:
                click.echo(line)
        if report.get("pull", {}).get("alarm"):
            # The run went on (push included), but a mostly quarantined pull is a failure.
            fail(report["pull"]["alarm"])


# -- queue and cases -------------------------------------------------------------------


@main.command("queue")
@click.option("--stage", help="Only cases in this stage.")
@click.option("--text", help="Search title, register number, location, category.")
@click.option("--overdue", is_flag=True, help="Only cases past their deadline.")
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@config_option
@click.pass_context
def queue_cmd(ctx: click.Context, stage: str | None, text: str | None, overdue: bool,
              limit: int, as_json: bool) -> None:
    """The staff's queue: register no., LAPOR! id, received, title, stage, deadline."""
    from bridge.render import print_queue
    from bridge.services.queue import QueueFilter, list_queue

    with runtime(ctx) as rt, rt.sessions() as session:
        if stage is not None and stage not in rt.workflow.stages:
            fail(f"unknown stage {stage!r}; stages: {', '.join(rt.workflow.stages)}", 2)
        rows = list_queue(session, QueueFilter(stage=stage, text=text, overdue=overdue,
                                               limit=limit))
        if as_json:
            click.echo(json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False))
        else:
            print_queue(rows, rt.settings.regency.timezone, stage_label=rt.workflow.stage_label)


@main.group("case")
def case_group() -> None:
    """Look at and act on one case."""


@case_group.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@config_option
@click.pass_context
def case_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """A case's detail and history (REF: local id, register number or LAPOR! id)."""
    from bridge.render import print_case
    from bridge.services.queue import CaseNotFound, case_detail

    with runtime(ctx) as rt, rt.sessions() as session:
        try:
            detail = case_detail(session, ref)
        except CaseNotFound as exc:
            fail(str(exc))
        if as_json:
            click.echo(json.dumps(detail.as_json(), indent=2, ensure_ascii=False, default=str))
        else:
            print_case(detail, rt.settings.regency.timezone, rt.workflow.stage_label)


# -- sandbox and demo ------------------------------------------------------------------


@main.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--reports", default=50, show_default=True, type=int,
              help="How many synthetic reports to start with.")
@click.option("--bearer", envvar="LAPOR_BRIDGE_SANDBOX_BEARER", default=None,
              help="Bearer value the sandbox accepts (default: its built-in fake one).")
@click.option("--token", envvar="LAPOR_BRIDGE_SANDBOX_TOKEN", default=None,
              help="Token the sandbox accepts (default: its built-in fake one).")
@click.option("--faults", "faults_json", default=None, metavar="JSON",
              help='Fault switches, e.g. \'{"error_rate": 0.1, "latency_ms": 20}\'.')
@click.option("--dialect", type=click.Choice(["lapor-v3", "lapor-flat"]),
              default="lapor-v3", show_default=True,
              help="The API shapes it answers in (match [lapor] api_profile).")
def sandbox_cmd(host: str, port: int, seed: int, reports: int, bearer: str | None,
                token: str | None, faults_json: str | None, dialect: str) -> None:
    """Run the built-in LAPOR! sandbox server (fake credentials, loopback only)."""
    from pydantic import ValidationError

    from bridge.lapor.sandbox import Faults, serve_forever

    options: dict[str, Any] = {"dialect": dialect}
    if bearer:
        options["bearer"] = bearer
    if token:
        options["token"] = token
    faults = None
    if faults_json:
        try:
            faults = Faults.model_validate_json(faults_json)
        except ValidationError as exc:
            fail(f"--faults: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", 2)
    try:
        serve_forever(host=host, port=port, seed=seed, reports=reports, faults=faults,
                      **options)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another sandbox "
             "running? choose another --port)")


@main.command("demo")
@click.option("--once", is_flag=True, help="Do the first sync only, print the queue, exit.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option("--reports", default=20, show_default=True, type=int)
@click.option("--interval", default=4.0, show_default=True, type=float,
              help="Seconds between new sandbox reports.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the queue as JSON.")
@config_option
@click.pass_context
def demo_cmd(ctx: click.Context, once: bool, seed: int, reports: int, interval: float,
             as_json: bool) -> None:
    """See the whole flow with no credentials: sandbox + temporary database + sync."""
    from bridge.demo import run_demo

    settings = load(ctx)
    sys.exit(run_demo(settings, once=once, seed=seed, reports=reports, interval=interval,
                      as_json=as_json))


def attach(command: click.Command) -> None:
    """Add a command group from another module (plugins, daemon, web...)."""
    main.add_command(command)


def _attach_optional() -> None:
    # Faces built in their own modules register here; a missing one is a packaging bug.
    import importlib

    for module, name in (
        ("bridge.plugins", "cli_commands"),
        ("bridge.daemon.cli", "commands"),
        ("bridge.web.cli", "commands"),
        ("bridge.reports.cli", "commands"),
        ("bridge.bench", "commands"),
        ("bridge.cli_probe", "commands"),
        ("bridge.cli_init", "commands"),
        ("bridge.cli_quarantine", "commands"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name and module.startswith(exc.name):
                continue
            raise
        for command in getattr(mod, name, lambda: [])():
            if isinstance(command, click.Command) and command.name in ("case",):
                continue
            main.add_command(command)


def _attach_actions() -> None:
    from bridge.cli_actions import add_case_commands

    add_case_commands(case_group, main)
    from bridge.cli_track import add_track_command

    add_track_command(case_group)
    __import__("bridge.cli_documents").cli_documents.add_document_command(case_group)


_attach_actions()
_attach_optional()
