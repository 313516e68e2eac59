"""``lapor-bridge plugins`` and ``lapor-bridge plugin new NAME``.

Attached to the main command group by :mod:`bridge.cli`; the plugin host does not
import the command line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from bridge.cli.common import default_config
from bridge.config import ConfigError, load_settings
from bridge.plugins import PluginError, load_plugins
from bridge.scaffold import ScaffoldError, plugin_names, scaffold_plugin


def _config_path(ctx: click.Context, given: str | None) -> str:
    if given:
        return given
    root = ctx.find_root().obj
    if isinstance(root, dict) and root.get("config"):
        return str(root["config"])
    return default_config()


@click.command("plugins")
@click.option("--config", "config_path", metavar="FILE", default=None,
              help="Deployment config (TOML). Default: the main --config.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins_command(ctx: click.Context, config_path: str | None, as_json: bool) -> None:
    """List the plugins the deployment loads: name, version, hooks, origin.

    Loading is the same as at daemon start, so a plugin that does not import, implements
    an unknown hook or has a bad config section is reported here (exit code 2).
    """
    path = _config_path(ctx, config_path)
    try:
        settings = load_settings(path)
        host = load_plugins(settings)
    except (ConfigError, PluginError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    infos = host.describe()
    if as_json:
        click.echo(json.dumps([{"name": i.name, "version": i.version, "hooks": list(i.hooks),
                                "origin": i.origin,
                                "section": next((s for s, p in host.declared_sections.items()
                                                 if p == i.name), None)}
                               for i in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins loaded (see [plugins] modules, or install a package with a "
                   "'lapor_bridge' entry point)")
        return
    width = max(len(i.name) for i in infos)
    vwidth = max(len(i.version) for i in infos)
    for info in infos:
        click.echo(f"{info.name:<{width}}  {info.version:<{vwidth}}  {', '.join(info.hooks)}"
                   f"  [{info.origin}]")


@click.group("plugin")
def plugin_group() -> None:
    """Write a plugin of your own."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--dest", default=".", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Directory in which to create the package.")
def plugin_new(name: str, dest: Path) -> None:
    """Create an installable plugin package NAME (e.g. klaten-rules) with tests."""
    try:
        root = scaffold_plugin(name, dest)
    except ScaffoldError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    names = plugin_names(name)
    click.echo(f"created {root}")
    click.echo("next steps:")
    click.echo(f"  cd {root}")
    click.echo("  pip install .          # lapor-bridge finds it through its entry point")
    click.echo("  pytest                 # the generated tests use bridge.testing")
    click.echo(f"  edit {names['package']}/plugin.py, then add [{names['section']}] to the "
               "deployment's TOML file")


def commands() -> list[click.Command]:
    return [plugins_command, plugin_group]


__all__ = ["commands", "plugin_group", "plugin_new", "plugins_command"]
