"""``lapor-bridge run`` and ``lapor-bridge status`` (attached by bridge.cli)."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import sys

import click

from bridge.bodies import has_bodies
from bridge.cli.accounts_db import deployment_engine
from bridge.cli.common import chosen_body, config_option, deployment, load
from bridge.config import ConfigError, Settings
from bridge.daemon import settings as _settings  # noqa: F401 - registers [daemon], [logging]
from bridge.daemon.settings import DaemonSettings, daemon_settings, logging_settings
from bridge.plugins import PluginError


def _config_error(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(2)


@click.command("run")
@config_option
@click.pass_context
def run_cmd(ctx: click.Context) -> None:
    """Run the scheduled sync daemon (pull, push, deadlines, refresh, recaps) until stopped.

    Several daemons may run against one database: one is the leader and syncs, the others
    wait as standby and take over within lease_ttl + standby_poll_interval when it dies.
    SIGTERM or Ctrl-C finishes the page or row in hand and exits 0.
    """
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.checks import check_settings
    from bridge.daemon.logging_setup import configure
    from bridge.daemon.scheduler import Daemon

    settings = load(ctx)
    try:
        cfg = daemon_settings(settings)
        log_cfg = logging_settings(settings)
        check_settings(settings)
    except (ConfigError, PluginError) as exc:
        _config_error(exc)
    configure(settings, log_cfg)
    # `kill -USR1 <pid>` writes every thread's stack to stderr (the daemon goes on): what an
    # operator needs when a daemon seems stuck, without a debugger on the server.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    code = _serve_bodies(settings, cfg) if has_bodies(settings) else Daemon(settings, cfg=cfg).run()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Worker threads still inside a hung request must not hold the exit up: everything
    # that matters is committed already.
    os._exit(code)


def _serve_bodies(settings: Settings, cfg: DaemonSettings) -> int:
    """A Pemda: this process is one worker of many over the deployment's bodies; the
    workers and the bodies' leases live in the deployment's own database."""
    from bridge.app.deployment import Deployment
    from bridge.daemon.bodyrun import runtime_work
    from bridge.daemon.worker import serve

    with deployment_engine(settings) as engine, Deployment(settings) as dep:
        works = {code: runtime_work(rt, cfg) for code, rt in dep.runtimes.items()}
        return serve(settings, cfg, works, engine)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@config_option
@click.pass_context
def status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Health of the deployment: leader, last pull and push, lag, outbox, next runs.

    Exit code 0 when healthy, 1 when a threshold of [daemon.health] is crossed (or the
    database cannot be read), 2 for a configuration error: a monitor can call it.
    """
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.daemon.health import collect, combine, render_text
    from bridge.daemon.share import lease_names

    settings = load(ctx)
    try:
        cfg = daemon_settings(settings)
    except ConfigError as exc:
        _config_error(exc)
    with deployment(ctx, only=chosen_body(ctx)) as dep:
        try:
            if not dep.several:
                rt = dep.runtime()
                report = collect(rt.engine, rt.sessions, cfg, body=rt.settings.regency.code)
            else:
                # The daemons and their leases are the deployment's, in its own database
                # (schema); each body's store answers for its lag, outbox and quarantine.
                names = lease_names(dep.codes)
                with deployment_engine(settings) as main:
                    report = combine({body.code: collect(main, rt.sessions, cfg, body=body.code,
                                                         lease_name=names[body.code])
                                      for body, rt in dep}, cfg)
        except Exception as exc:
            click.echo(f"error: cannot read the status: {type(exc).__name__}: "
                       f"{(str(exc).splitlines() or [''])[0][:300]}", err=True)
            sys.exit(1)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2, ensure_ascii=False, default=str))
    else:
        for line in render_text(report, settings.regency.timezone):
            click.echo(line)
    sys.exit(0 if report.healthy else 1)


def commands() -> list[click.Command]:
    return [run_cmd, status_cmd]


__all__ = ["commands", "run_cmd", "status_cmd"]
