"""``sandbox`` and ``demo``: the built-in LAPOR! sandbox and the demo on it."""

from __future__ import annotations

import sys
from typing import Any

import click
from pydantic import ValidationError

from bridge.cli.common import config_option, fail, load


@click.command("sandbox")
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
@click.option("--latency-ms", type=click.FloatRange(min=0), default=None,
              help="Delay every LAPOR! request by this many milliseconds (as --faults' "
                   "latency_ms).")
@click.option("--institutions", default=None, metavar="ID,ID,...",
              help="Serve several institutions, each with its own reports and bearer "
                   "(sandbox-bearer-<id>), e.g. the OPDs of one Pemda.")
def sandbox_cmd(host: str, port: int, seed: int, reports: int, bearer: str | None,
                token: str | None, faults_json: str | None, dialect: str,
                latency_ms: float | None, institutions: str | None) -> None:
    """Run the built-in LAPOR! sandbox server (fake credentials, loopback only)."""

    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.lapor.sandbox import Faults, serve_forever

    options: dict[str, Any] = {"dialect": dialect}
    if bearer:
        options["bearer"] = bearer
    if token:
        options["token"] = token
    faults = None
    try:
        raw = Faults.model_validate_json(faults_json).model_dump() if faults_json else {}
        if latency_ms is not None:
            raw["latency_ms"] = latency_ms
        faults = Faults.model_validate(raw) if raw else None
    except ValidationError as exc:
        fail(f"--faults: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}", 2)
    ids = _institution_ids(institutions) if institutions else None
    try:
        if ids is not None:
            from bridge.lapor.sandbox.app import SANDBOX_BEARER, SANDBOX_TOKEN
            from bridge.lapor.sandbox.multi import MultiSandboxServer

            multi = MultiSandboxServer(ids, seed=seed, reports=reports, host=host, port=port,
                                       faults=faults, dialect=dialect,
                                       token=token or SANDBOX_TOKEN,
                                       bearer_prefix=bearer or SANDBOX_BEARER)
            multi.serve_forever()
            return
        serve_forever(host=host, port=port, seed=seed, reports=reports, faults=faults,
                      **options)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc} (is another sandbox "
             "running? choose another --port)")


def _institution_ids(text: str) -> list[int]:
    ids: list[int] = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) < 1:
            fail(f"--institutions: {part.strip()!r} is not an institution id (a whole "
                 "number >= 1)", 2)
        if int(part) in ids:
            fail(f"--institutions: {int(part)} is listed twice", 2)
        ids.append(int(part))
    return ids


@click.command("demo")
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
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.cli.demo import run_demo

    settings = load(ctx)
    sys.exit(run_demo(settings, once=once, seed=seed, reports=reports, interval=interval,
                      as_json=as_json))


def commands() -> list[click.Command]:
    return [sandbox_cmd, demo_cmd]
