"""``lapor-bridge init DIR``: a deployment folder to start from.

Writes the config (built on a shipped profile, or the default workflow), a secrets file
template (mode 0600), the systemd units of ``run`` and ``web`` with DIR filled in, and a
README of the next steps. Existing files are never overwritten without ``--force``.
Registered by :mod:`bridge.cli`; this module does not import it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import jinja2

from bridge.errors import BridgeError
from bridge.resources import UNITS, profile_names, shipped_config, shipped_dir, unit_text

CONFIG = "lapor-bridge.toml"
SECRETS = "secrets.env"
README = "README.md"
STATE = "state"
PRODUCTION_URL = "https://api-splp.layanan.go.id/lapor/3.0.0"
_TEMPLATES = jinja2.PackageLoader("bridge", "templates/init")
#: What the shipped units assume (config/lapor-bridge.service), replaced by DIR's paths.
_SHIPPED_CONFIG = "/etc/lapor-bridge/lapor-bridge.toml"
_SHIPPED_SECRETS = "/etc/lapor-bridge/secrets.env"
_SHIPPED_EXE = "/opt/lapor-bridge/venv/bin/lapor-bridge"
_SHIPPED_STATE = "/var/lib/lapor-bridge"


class InitError(BridgeError):
    """init cannot write the folder; the message says why, ``code`` is the exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _profile_data(profile: str | None) -> dict[str, Any]:
    if profile is None:
        return {}
    found = shipped_config(profile)
    if found is None or profile not in profile_names():
        raise InitError(f"--profile: no shipped profile {profile!r}; shipped: "
                        f"{', '.join(profile_names())}", code=2)
    with found.open("rb") as fh:
        return tomllib.load(fh)


def _secret_variables(data: Mapping[str, Any]) -> list[str]:
    """Environment variables the profile's plugin sections read secrets from
    (``password_env``, ``secret_env``...), for the secrets template."""
    names = [str(value) for section in data.values() if isinstance(section, Mapping)
             for key, value in section.items() if key.endswith("_env") and value]
    return list(dict.fromkeys(names))


def _executable() -> str:
    """The ``lapor-bridge`` program of this installation, for the units and the README."""
    beside = Path(sys.executable).parent / "lapor-bridge"
    if beside.exists():
        return str(beside)
    return shutil.which("lapor-bridge") or "lapor-bridge"


def render_unit(command: str, dir: Path, exe: str) -> str:
    """The shipped unit of ``command`` with DIR's config, secrets and state paths."""
    text = unit_text(command)
    state = dir / STATE
    text = (text.replace(_SHIPPED_CONFIG, str(dir / CONFIG))
            .replace(_SHIPPED_SECRETS, str(dir / SECRETS))
            .replace(_SHIPPED_EXE, exe)
            .replace(_SHIPPED_STATE, str(state))
            .replace("StateDirectory=lapor-bridge\n", ""))
    if any(dir.is_relative_to(home) for home in (Path("/home"), Path("/root"))):
        # ProtectHome=true would hide DIR from the service; read-only keeps the rest safe.
        text = text.replace("ProtectHome=true", "ProtectHome=read-only")
    # The shipped unit's opening comment describes the /etc + /opt layout: replaced.
    body = text[text.index("\n[Unit]") + 1:]
    return (f"# systemd unit of `lapor-bridge {command}` for the deployment in {dir},\n"
            f"# written by `lapor-bridge init`. See {dir / README}.\n"
            f"#   install -m 0644 {dir / UNITS[command]} /etc/systemd/system/\n"
            f"#   systemctl daemon-reload && systemctl enable --now {UNITS[command]}\n\n"
            + body)


def plan(dir: Path, profile: str | None, postgres: bool) -> dict[str, str]:
    """File name (in DIR) -> content, for :func:`write`."""
    data = _profile_data(profile)
    regency = data.get("regency", {})
    lapor = data.get("lapor", {})
    exe = _executable()
    context = {
        "dir": dir, "config": dir / CONFIG, "state": dir / STATE, "exe": exe,
        "profile": profile, "profiles": ", ".join(profile_names()), "postgres": postgres,
        "profile_file": str(shipped_dir() / f"{profile}.toml") if profile else "",
        "example_file": str(shipped_dir() / "example.toml"),
        "regency_name": regency.get("name", "Kabupaten Contoh"),
        "regency_code": regency.get("code", "CONTOH"),
        "register_format": regency.get("register_format", "{code}/ADU/{year}/{seq:05d}"),
        "base_url": lapor.get("base_url", PRODUCTION_URL),
        "institution_id": lapor.get("institution_id", 1),
        "user_id": lapor.get("user_id", 1),
        "has_reports": "reports" in data,
        "plugin_env": _secret_variables(data),
    }
    env = jinja2.Environment(loader=_TEMPLATES, undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True,
                             autoescape=False)  # noqa: S701 - TOML, env and Markdown, not HTML
    files = {name: env.get_template(f"{name}.j2").render(context)
             for name in (CONFIG, SECRETS, README)}
    for command, unit in UNITS.items():
        files[unit] = render_unit(command, dir, exe)
    return files


def write(dir: Path, files: Mapping[str, str], *, force: bool) -> list[Path]:
    """Write ``files`` into DIR (and create DIR/state); refuse if any exists, unless
    ``force``. Nothing is written when something is refused."""
    if dir.exists() and not dir.is_dir():
        raise InitError(f"{dir} exists and is not a folder")
    existing = [name for name in files if (dir / name).exists()]
    if existing and not force:
        raise InitError(f"{dir} already has {', '.join(existing)}; nothing written "
                        "(--force overwrites)")
    dir.mkdir(parents=True, exist_ok=True)
    (dir / STATE).mkdir(mode=0o750, exist_ok=True)
    written = []
    for name, text in files.items():
        path = dir / name
        secret = name == SECRETS
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        # The secrets file is created 0600 (never briefly readable by others) and kept so
        # when --force rewrites one that was looser.
        fd = os.open(path, flags, 0o600 if secret else 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if secret:
                os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
        written.append(path)
    return written


@click.command("init")
@click.argument("dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--profile", default=None, metavar="NAME",
              help="Build on a shipped regency profile: " + ", ".join(profile_names()) + ".")
@click.option("--postgres", is_flag=True, help="PostgreSQL instead of SQLite.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_cmd(dir: Path, profile: str | None, postgres: bool, force: bool) -> None:
    """Write a deployment folder: config, secrets template, systemd units, next steps."""
    target = dir.expanduser().absolute()
    try:
        files = plan(target, profile, postgres)
        written = write(target, files, force=force)
    except InitError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.code)
    except OSError as exc:
        click.echo(f"error: cannot write {target}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(f"next: read {target / README}, then set the secrets and run "
               f"`lapor-bridge check-config {target / CONFIG}`")


def commands() -> list[click.Command]:
    return [init_cmd]
