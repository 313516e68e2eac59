"""``lapor-bridge demo``: the whole flow on the embedded default, with no credentials.

Starts the built-in sandbox on a free port, uses a temporary SQLite database, syncs, shows
the queue; then adds a sandbox report every few seconds and shows each one arrive.
"""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from bridge.app.cycle import run_cycle
from bridge.cli.render import print_queue
from bridge.config import Settings
from bridge.lapor.sandbox import SandboxServer
from bridge.runtime import Runtime
from bridge.services.queue import QueueFilter, list_queue
from bridge.services.triage import triage_new_cases
from bridge.web.demo import start_demo_web

log = logging.getLogger("bridge.cli.demo")


def demo_settings(settings: Settings, base_url: str, db_path: Path, bearer: str,
                  token: str) -> Settings:
    """The demo's settings: the config's regency and workflow, the sandbox's address."""
    lapor = settings.lapor.model_copy(update={"base_url": base_url})
    database = settings.database.model_copy(update={"url": f"sqlite:///{db_path}"})
    secrets = settings.secrets.model_copy(
        update={"bearer": SecretStr(bearer), "token": SecretStr(token)}
    )
    return settings.model_copy(update={"lapor": lapor, "database": database,
                                       "secrets": secrets})


def run_demo(settings: Settings, *, once: bool, seed: int, reports: int, interval: float,
             as_json: bool) -> int:

    tz = settings.regency.timezone
    with tempfile.TemporaryDirectory(prefix="lapor-bridge-demo-") as tmp, SandboxServer(
        seed=seed, reports=reports, institution_id=settings.lapor.institution_id,
        bearer_header=settings.lapor.bearer_header,
    ) as sandbox:
        demo = demo_settings(settings, sandbox.url, Path(tmp) / "demo.db",
                             sandbox.bearer, sandbox.token)
        with Runtime(demo) as rt:
            report = run_cycle(rt)
            with rt.sessions() as session:
                rows = list_queue(session, QueueFilter(limit=1000))
            if once:
                if as_json:
                    click.echo(json.dumps([r.as_json() for r in rows], indent=2,
                                          ensure_ascii=False))
                else:
                    _banner(sandbox.url, report)
                    print_queue(rows, tz, title=f"Antrean {settings.regency.name}",
                        stage_label=rt.workflow.stage_label)
                return 0
            _banner(sandbox.url, report)
            print_queue(rows, tz, title=f"Antrean {settings.regency.name}",
                        stage_label=rt.workflow.stage_label)
            _extra_faces(rt, sandbox)
            return _watch(rt, sandbox, interval, tz)


def _banner(url: str, report: dict[str, Any]) -> None:
    click.echo(f"LAPOR! sandbox at {url}")
    for line in report["lines"]:
        click.echo(line)


def _extra_faces(rt: Runtime, sandbox: Any) -> None:
    """Start the staff page beside the demo."""
    start_demo_web(rt, sandbox)


def _watch(rt: Runtime, sandbox: Any, interval: float, tz: str) -> int:
    stop = threading.Event()

    def _stop(_signum: int, _frame: Any) -> None:
        stop.set()

    previous = signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    click.echo(f"\nA new sandbox report every {interval:g} s; Ctrl-C to stop.")
    try:
        while not stop.wait(interval):
            added = sandbox.state.add_report()
            click.echo(f"\nLAPOR! received report {added['id']}: {added['title']}")
            with rt.client() as client:
                result = rt.puller(client).run()
            triage_new_cases(rt, result.created_ids)
            rt.dispatch_events()
            with rt.sessions() as session:
                rows = [r for r in list_queue(session, QueueFilter(limit=1000))
                        if r.id in set(result.created_ids) | set(result.updated_ids)]
            print_queue(rows, tz, title="Baru masuk antrean", stage_label=rt.workflow.stage_label)
    finally:
        signal.signal(signal.SIGINT, previous)
    click.echo("demo stopped")
    return 0
