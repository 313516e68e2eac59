"""One line per command-line error, whatever raised it.

The root ``lapor-bridge`` group uses :class:`OneLineErrors`: a usage mistake, a bad
config, a LAPOR! failure or an unexpected exception all end as a single ``error: ...``
line on standard error, never a traceback, with the exit code a script can act on:

* 2: usage (an unknown option, a missing argument) and configuration (``ConfigError``,
  ``PluginError``);
* 1: anything that went wrong at run time (LAPOR!, the database, the network, a file);
* 130: interrupted (Ctrl-C), silently: stopping is not an error.

``-vv`` (debug) shows the traceback of an unexpected exception, for a bug report.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click

from bridge.config import ConfigError
from bridge.lapor.errors import LaporError
from bridge.plugins import PluginError


def _one_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return (lines[0] if lines else "")[:limit]


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def describe(exc: BaseException) -> tuple[str, int]:
    """``(one-line message, exit code)`` for an exception a command did not handle."""

    if isinstance(exc, ConfigError | PluginError):
        return _one_line(str(exc)), 2
    if isinstance(exc, LaporError):
        return f"LAPOR!: {_one_line(str(exc))}", 1
    if isinstance(exc, RecursionError):
        return "input nested too deeply to read", 1
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}", 1
    try:
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            orig = getattr(exc, "orig", None) or exc
            return f"database: {type(orig).__name__}: {_one_line(str(orig))}", 1
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        pass
    return f"{type(exc).__name__}: {_one_line(str(exc))} (run with -vv for details)", 1


class OneLineErrors(click.Group):
    """A click group whose every failure is one ``error:`` line (see the module doc)."""

    def main(self, args: Any = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else (prog_name or self.name)
            _fail(f"{_one_line(exc.format_message())} (see '{where} --help')", 2)
        except click.ClickException as exc:
            _fail(_one_line(exc.format_message()), exc.exit_code)
        except click.Abort:
            # Ctrl-C (or end of input at a prompt): stop quietly, no "Aborted!".
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            sys.exit(130)
        except Exception as exc:
            if (ctx.params.get("verbose") or 0) >= 2:
                raise
            message, code = describe(exc)
            _fail(message, code)
