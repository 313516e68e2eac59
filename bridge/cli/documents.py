"""``lapor-bridge case document REF --kind KIND --out FILE``: a case's SOP document as PDF."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from bridge.cli.common import config_option, fail, runtime
from bridge.config import ConfigError
from bridge.documents import CASE_KINDS, DocumentError


def add_document_command(case_group: click.Group) -> None:

    @case_group.command("document")
    @click.argument("ref")
    @click.option("--kind", required=True, metavar="KIND",
                  help="One of: " + ", ".join(CASE_KINDS) + ".")
    @click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
                  help="The PDF file to write.")
    @click.option("--role", envvar="LAPOR_BRIDGE_ROLE", default=None,
                  help="Workflow role asking; one that may see a rahasia reporter gets "
                       "their name on the documents addressed to them.")
    @click.option("--actor", default=lambda: os.environ.get("LAPOR_BRIDGE_ACTOR", "operator"),
                  show_default="$LAPOR_BRIDGE_ACTOR or operator",
                  help="Name recorded in the agenda when the document takes a number.")
    @config_option
    @click.pass_context
    def case_document(ctx: click.Context, ref: str, kind: str, out: str, role: str | None,
                      actor: str) -> None:
        """Write a case's document (surat jawaban, BAPP, surat penerusan, lembar
        disposisi, tanda terima) as PDF, from the [documents] templates; a kind counted
        by an outgoing-letter register takes its number on first print."""
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from bridge.documents.render import write_atomic
        from bridge.services.documents import Documents, check_kind
        from bridge.services.queue import CaseNotFound

        try:
            check_kind(kind)
        except DocumentError as exc:
            fail(str(exc), 2)
        with runtime(ctx) as rt:
            if role is not None and role not in rt.workflow.roles:
                fail(f"unknown role {role!r}; known roles: "
                     f"{', '.join(sorted(rt.workflow.roles))}", 2)
            try:
                docs = Documents(rt.sessions, rt.settings, rt.workflow)
                doc = docs.case_document(
                    ref, kind, now=datetime.now(UTC), actor=actor,
                    reveal_secret=bool(role and rt.workflow.may_see_secret_reporter(role)))
            except ConfigError as exc:
                fail(str(exc), 2)
            except (DocumentError, CaseNotFound) as exc:
                fail(str(exc))
        try:
            write_atomic(Path(out), doc.content)
        except OSError as exc:
            fail(f"cannot write {out}: {exc}")
        number = f" number {doc.number}" if doc.number else ""
        click.echo(f"{out}: {kind}{number} ({len(doc.content):,} bytes)")


__all__ = ["add_document_command"]
