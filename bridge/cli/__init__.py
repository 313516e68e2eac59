"""The ``lapor-bridge`` command line: one module per command group.

Every command takes ``--config FILE`` (default: ``$LAPOR_BRIDGE_CONFIG`` or the shipped
``demo`` config; a bare name is a shipped config, see :mod:`bridge.deployment`).
Configuration errors print one line naming the file, the key and what was expected, and
exit with code 2. The shared helpers (``fail``, the runtime, ``--config``) are in
:mod:`bridge.cli.common`; the command modules import that, never this package.

The command line is the top layer: it starts the other faces (the staff page, the daemon,
the reports) and nothing but it imports it (see ``[tool.importlinter]`` in pyproject.toml).
Command modules import their heavy dependencies inside the command functions, so that
``lapor-bridge --help`` stays fast and loads no SQLAlchemy (tests/test_layers.py).
"""

from __future__ import annotations

import logging

import click

from bridge.cli import (
    actions,
    bench,
    cases,
    daemon,
    db,
    documents,
    init,
    plugins,
    probe,
    quarantine,
    reports,
    sandbox,
    sync,
    track,
    web,
)
from bridge.cli.common import default_config
from bridge.cli.errors import OneLineErrors
from bridge.config import ConfigError, load_settings
from bridge.plugins import PluginError, load_plugins
from bridge.process import tune_gc


class CommandLine(OneLineErrors):
    """The root group: the built-in commands, then the commands the deployment's plugins
    add through the ``cli_commands`` hook. The plugins load only for a name the bridge
    does not have itself, so ``--help`` and every built-in command stay as fast as before."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or ctx.resilient_parsing:
            return command
        try:
            settings = load_settings(ctx.params.get("config") or default_config())
            added = load_plugins(settings).cli_commands(taken=self.commands)
        except (ConfigError, PluginError) as exc:
            # Not a command of ours; why the plugins' could not be asked, on one line.
            raise click.UsageError(f"no such command {cmd_name!r} (the plugins' commands "
                                   f"could not be read: {exc})", ctx) from None
        return next((c for c in added if c.name == cmd_name), None)


@click.group(cls=CommandLine, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config", metavar="FILE", default=None,
              help="Deployment config (TOML file, or a shipped name such as 'klaten'). "
                   "Default: $LAPOR_BRIDGE_CONFIG or the shipped 'demo'.")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="lapor-bridge")
@click.pass_context
def main(ctx: click.Context, config: str | None, verbose: int) -> None:
    """lapor-bridge: keeps a regency's complaint queue and SP4N-LAPOR! in step."""
    tune_gc()
    ctx.ensure_object(dict)
    ctx.obj.setdefault("config", config or default_config())
    if config:
        ctx.obj["config"] = config
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def attach(command: click.Command) -> None:
    """Add a command group from another module."""
    main.add_command(command)


for _module in (db, sync, cases, actions, sandbox, plugins, daemon, web, reports, bench, probe,
                init, quarantine):
    for _command in _module.commands():
        main.add_command(_command)

for _command in actions.case_commands():
    cases.case_group.add_command(_command)
track.add_track_command(cases.case_group)
documents.add_document_command(cases.case_group)

__all__ = ["attach", "main"]
