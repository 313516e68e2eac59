"""``lapor-bridge case <action>`` and ``lapor-bridge outbox``: staff actions from a terminal.

Each command goes through :class:`bridge.services.actions.CaseActions`, exactly as the web
page does, so LAPOR! learns of it through the outbox.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bridge.cli.common import config_option, fail, load, runtime
from bridge.cli.words import ACTION_COMMANDS, explain
from bridge.locale import local_time

if TYPE_CHECKING:
    from bridge.services.actions import ActionResult, Actor, CaseActions, NewCase, Upload


#: ctx.meta keys: the --user given, and the actor _run resolved from it.
_USER = "bridge.cli.actions.user"
_ACTOR = "bridge.cli.actions.actor"


# The services load SQLAlchemy (~0.3 s); these three keep them out of --help.
def _actor(name: str, role: str) -> Actor:
    """Who acts: the account :func:`_run` resolved from --user, --role and --actor (the
    values passed here) and checked before the action began."""
    actor: Actor = click.get_current_context().meta[_ACTOR]
    return actor


def _upload(path: str) -> Upload:
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.actions import Upload

    return Upload.from_path(path)


def _new_case(**fields: Any) -> NewCase:
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.actions import NewCase

    return NewCase(**fields)


def _keep_user(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[_USER] = value


def _actor_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--user", "user", envvar="LAPOR_BRIDGE_USER", expose_value=False,
                     callback=_keep_user, metavar="NAME",
                     help="Account acting (or $LAPOR_BRIDGE_USER): it must exist, be enabled "
                          "and hold a role the workflow allows for the action (on a Pemda: "
                          "a role in the body --body names). Without it "
                          "the install's operator account acts, in the role --role names.")(f)
    f = click.option("--role", envvar="LAPOR_BRIDGE_ROLE",
                     help="Workflow role acting (petugas, analis, kasi, ...; or "
                          "$LAPOR_BRIDGE_ROLE): with --user, one of the account's roles "
                          "(default: the first that may do the action); without it, "
                          "required.")(f)
    f = click.option("--actor", default=lambda: os.environ.get("LAPOR_BRIDGE_ACTOR", "operator"),
                     show_default="$LAPOR_BRIDGE_ACTOR or operator",
                     help="Name recorded in the case history for the operator account "
                          "(with --user, the account's name is recorded).")(f)
    return f


def _resolve_actor(ctx: click.Context, rt: Any, action: str) -> None:
    """Check the account acting (exit 2 and nothing written when it may not) and keep it
    for :func:`_actor`."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.accounts import UnknownAccount, command_line_actor, intake_roles

    needs = intake_roles(rt.workflow) if action == "new" else None
    if ctx.meta.get(_USER) and _pemda_member(ctx, rt, needs):
        return
    with rt.sessions() as session:
        try:
            ctx.meta[_ACTOR] = command_line_actor(session, ctx.meta.get(_USER),
                                                  ctx.params.get("role"),
                                                  ctx.params.get("actor"), needs)
        except UnknownAccount as exc:
            fail(str(exc), 2)


def _pemda_member(ctx: click.Context, rt: Any, needs: Any) -> bool:
    """On a Pemda, --user is an account of the deployment's database acting with its roles
    in this body; False on a one-body deployment (the body's own accounts)."""
    from bridge.bodies import has_bodies
    from bridge.cli.accounts_db import deployment_database
    from bridge.services.accounts import UnknownAccount
    from bridge.services.members import member_actor

    settings = load(ctx)
    if not has_bodies(settings):
        return False
    with deployment_database(settings) as sessions, sessions() as session:
        try:
            ctx.meta[_ACTOR] = member_actor(session, rt.body_code, ctx.meta[_USER],
                                            ctx.params.get("role"), needs)
        except UnknownAccount as exc:
            fail(str(exc), 2)
    return True


def _run(ctx: click.Context, fn: Callable[[CaseActions], ActionResult], as_json: bool = False
         ) -> None:
    from bridge.services.actions import ActionError  # lazy: see _actor
    from bridge.services.queue import CaseNotFound

    with runtime(ctx) as rt:
        _resolve_actor(ctx, rt, ctx.info_name or "")
        try:
            result = fn(rt.actions())
        except (ActionError, CaseNotFound) as exc:
            fail(explain(str(exc)))
        if result.action == "new":
            # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
            from bridge.services.triage import triage_new_cases

            triage_new_cases(rt, [result.case_id])
        rt.dispatch_events()
    if as_json:
        click.echo(json.dumps(result.__dict__, ensure_ascii=False))
    else:
        queued = f"; queued for LAPOR!: {result.outbox_ids}" if result.outbox_ids else ""

        done = ACTION_COMMANDS.get(result.action, result.action).removeprefix("case ")
        click.echo(f"{result.register_no}: {done} done, stage now {result.stage!r}{queued}")



#: The ``case`` sub-commands of this module, in the order they are defined.
CASE_COMMANDS: list[click.Command] = []


def action_command(name: str, help_text: str) -> Callable[[Callable[..., Any]], Any]:
    """A ``case NAME`` command with the actor options, ``--json`` and ``--config``."""

    def deco(f: Callable[..., Any]) -> Any:
        f = _actor_options(f)
        f = click.option("--json", "as_json", is_flag=True)(f)
        f = config_option(f)
        f = click.pass_context(f)
        command = click.command(name, help=help_text)(f)
        CASE_COMMANDS.append(command)
        return command

    return deco

@action_command("new", "Enter a complaint from another channel (letter, box, phone...).")
@click.option("--file", "file_", type=click.Path(dir_okay=False),
              help="JSON or TOML file with the fields below.")
@click.option("--title")
@click.option("--content")
@click.option("--channel", help="surat, kotak, telepon, langsung, email, sms, fax, website.")
@click.option("--category")
@click.option("--location")
@click.option("--reporter-name")
@click.option("--reporter-phone")
@click.option("--reporter-email")
@click.option("--anonymous", is_flag=True)
@click.option("--secret", is_flag=True, help="Rahasia: identity known to our admin only.")
@click.option("--attach", multiple=True, type=click.Path(), help="File to attach.")
@click.option("--received-at", "received_at",
              help="Date of receipt of the letter, box item or call: DATE[THH:MM] in "
                   "the regency's time zone (default: now); deadlines count from it.")
def case_new(ctx: click.Context, file_: str | None, title: str | None,
             content: str | None, channel: str | None, category: str | None,
             location: str | None, reporter_name: str | None, reporter_phone: str | None,
             reporter_email: str | None, anonymous: bool, secret: bool,
             attach: tuple[str, ...], received_at: str | None, actor: str, role: str,
             as_json: bool) -> None:
    data: dict[str, Any] = {}
    if file_:
        data = _read_case_file(Path(file_))
    reporter = data.pop("reporter", None) or {
        k: v for k, v in (("name", reporter_name), ("phone", reporter_phone),
                          ("email", reporter_email)) if v}
    attachments = [*data.pop("attachments", []), *attach]
    fields = {"title": title, "content": content, "channel": channel,
              "category": category, "location": location}
    for key, value in fields.items():
        if value is not None:
            data[key] = value
    unknown = set(data) - {"title", "content", "channel", "category", "location",
                           "is_anonymous", "is_secret"}
    if unknown:
        fail(f"{file_ or 'case'}: unknown field(s) {', '.join(sorted(unknown))}")
    missing = [k for k in ("title", "content", "channel") if not data.get(k)]
    if missing:
        fail(f"missing {', '.join(missing)} (give --{missing[0]} or put it in --file)")

    def go(a: CaseActions) -> ActionResult:
        # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
        from bridge.services.actions import BadInput
        from bridge.services.receipt import BadReceipt, parse_received_at

        uploads = [_upload(p) for p in attachments]
        received = None
        if received_at:
            try:
                received = parse_received_at(received_at, a.settings.regency.timezone)
            except BadReceipt as exc:
                raise BadInput(str(exc)) from None
        return a.new_case(_new_case(
            title=data["title"], content=data["content"], channel=data["channel"],
            category=data.get("category"), location=data.get("location"),
            reporter=reporter or None,
            is_anonymous=anonymous or bool(data.get("is_anonymous")),
            is_secret=secret or bool(data.get("is_secret")), attachments=uploads,
            received_at=received,
        ), _actor(actor, role))

    _run(ctx, go, as_json)

@action_command("forward", "Forward outside our authority to an OPD or body, with tembusan.")
@click.argument("ref")
@click.option("--to", "to", required=True, help="OPD code from the config's [[opds]].")
@click.option("--tembusan", multiple=True, help="Who gets a copy (repeatable).")
@click.option("--note", help="Why (sent with the forward).")
@click.option("--attach", multiple=True, type=click.Path(),
              help="Scan or signed copy to attach: PDF or image (repeatable).")
def case_forward(ctx: click.Context, ref: str, to: str, tembusan: tuple[str, ...],
                 note: str | None, attach: tuple[str, ...], actor: str, role: str,
                 as_json: bool) -> None:
    _run(ctx, lambda a: a.forward(ref, _actor(actor, role), to, tembusan, note,
                                  attachments=[_upload(p) for p in attach]), as_json)

@action_command("return-forward", "Give a case another body of this deployment forwarded "
                "to us back to its sender (not our authority).")
@click.argument("ref")
@click.option("--note", required=True, help="Why it is given back (the sender reads it).")
def case_return_forward(ctx: click.Context, ref: str, note: str, actor: str, role: str,
                        as_json: bool) -> None:
    from bridge.services.internal_forward import return_forward

    _run(ctx, lambda a: return_forward(a, ref, _actor(actor, role), note), as_json)


@action_command("followup", "Post a follow-up (tindak lanjut) that LAPOR! shows.")
@click.argument("ref")
@click.option("--text", required=True)
@click.option("--attach", multiple=True, type=click.Path(), help="File to attach.")
def case_followup(ctx: click.Context, ref: str, text: str, attach: tuple[str, ...],
                  actor: str, role: str, as_json: bool) -> None:
    def go(a: CaseActions) -> ActionResult:
        return a.followup(ref, _actor(actor, role), text,
                          [_upload(p) for p in attach])

    _run(ctx, go, as_json)

@action_command("approve", "Record an approval step (paraf or tanda tangan) on a document.")
@click.argument("ref")
@click.option("--document", required=True, help="e.g. surat_jawaban, bapp.")
@click.option("--number", help="The document's number, when given by hand.")
@click.option("--note")
@click.option("--attach", multiple=True, type=click.Path(),
              help="Scan or signed copy to attach: PDF or image (repeatable).")
def case_approve(ctx: click.Context, ref: str, document: str, number: str | None,
                 note: str | None, attach: tuple[str, ...], actor: str, role: str,
                 as_json: bool) -> None:
    _run(ctx, lambda a: a.approve(ref, _actor(actor, role), document, number, note,
                                  attachments=[_upload(p) for p in attach]), as_json)

@action_command("deliver", "The answer reached the complainant (posted to LAPOR!).")
@click.argument("ref")
@click.option("--text", required=True,
              help="The answer as LAPOR! shows it; the signed answer document's number "
                   "is put before it and its PDF attached.")
@click.option("--attach", multiple=True, type=click.Path(),
              help="Scan or signed copy to attach: PDF or image (repeatable).")
def case_deliver(ctx: click.Context, ref: str, text: str, attach: tuple[str, ...],
                 actor: str, role: str, as_json: bool) -> None:
    _run(ctx, lambda a: a.answer_delivered(ref, _actor(actor, role), text,
                                           attachments=[_upload(p) for p in attach]),
         as_json)


#: A table command's call: the case actions, the case, who acts, the command's options.
_Call = Callable[["CaseActions", str, "Actor", dict[str, Any]], "ActionResult"]


def _table_command(call: _Call, options: tuple[Callable[..., Any], ...]) -> Callable[..., None]:
    """A ``case`` command that takes the case and ``options``, and makes one call."""

    def command(ctx: click.Context, ref: str, actor: str, role: str, as_json: bool,
                **given: Any) -> None:
        _run(ctx, lambda a: call(a, ref, _actor(actor, role), given), as_json)

    # In the order of decorators written above a function: the first option comes first.
    for option in reversed(options):
        command = option(command)
    return click.argument("ref")(command)


_NOTE = click.option("--note")
_WHY = click.option("--note", help="Why, or what was done (kept in the history).")

#: The actions that take the case and a few options, each with its one call.
_TABLE: list[tuple[str, str, tuple[Callable[..., Any], ...], _Call]] = [
    ("return", "Return incomplete files to the complainant.",
     (click.option("--missing", required=True, help="What the complainant must add."),),
     lambda a, ref, who, o: a.return_incomplete(ref, who, o["missing"])),
    ("classify", "Classify the case (e.g. ringan, sedang, berat).",
     (click.option("--severity", required=True), _NOTE),
     lambda a, ref, who, o: a.classify(ref, who, o["severity"], o["note"])),
    ("dispose", "Dispose the case internally to a unit or person.",
     (click.option("--to", "to", required=True), _NOTE),
     lambda a, ref, who, o: a.dispose(ref, who, o["to"], o["note"])),
    ("step", "Record a handling step of the profile (field inspection...).",
     (click.option("--step", "step", required=True, help="A step kind of the profile."),
      _NOTE),
     lambda a, ref, who, o: a.record_step(ref, who, o["step"], o["note"])),
    ("escalate", "Escalate (to TPP, Kepala Dinas, Kepala Daerah...).",
     (click.option("--level", required=True), click.option("--reason", required=True)),
     lambda a, ref, who, o: a.escalate(ref, who, o["level"], o["reason"])),
    # Actions that take only the case and an optional note.
    ("register", "Record the case in the register (buku register).", (_WHY,),
     lambda a, ref, who, o: a.register(ref, who, o["note"])),
    ("complete", "Mark the case's files complete (deadlines may count from now).", (_WHY,),
     lambda a, ref, who, o: a.files_complete(ref, who, o["note"])),
    ("satisfied", "The complainant is satisfied (puas).", (_WHY,),
     lambda a, ref, who, o: a.satisfaction(ref, who, True, o["note"])),
    ("not-satisfied", "The complainant is not satisfied (tidak puas).", (_WHY,),
     lambda a, ref, who, o: a.satisfaction(ref, who, False, o["note"])),
    ("close", "Close the case.", (_WHY,), lambda a, ref, who, o: a.close(ref, who, o["note"])),
    ("archive", "Archive the case.", (_WHY,),
     lambda a, ref, who, o: a.archive(ref, who, o["note"])),
    ("reopen", "Reopen a closed or forwarded case.", (_WHY,),
     lambda a, ref, who, o: a.reopen(ref, who, o["note"])),
]
for _name, _help, _options, _call in _TABLE:
    action_command(_name, _help)(_table_command(_call, _options))


@click.group("outbox", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "show_all", is_flag=True, help="Include delivered rows.")
@config_option
@click.pass_context
def outbox_group(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """What LAPOR! has still to learn: pending, waiting (behind a dead letter), dead."""
    if ctx.invoked_subcommand is not None:
        return
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.outbox import list_outbox

    states = ("pending", "waiting", "dead", "done") if show_all else (
        "pending", "waiting", "dead")
    with runtime(ctx) as rt, rt.sessions() as session:
        rows = list_outbox(session, states)
        tz = rt.settings.regency.timezone
    if as_json:
        click.echo(json.dumps([r.as_json() for r in rows], indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("outbox empty: LAPOR! knows everything")
        return
    for r in rows:
        when = f" next try {local_time(r.next_attempt_at, tz)}" if r.next_attempt_at else ""
        click.echo(f"{r.id:>6} {r.state:<8} {r.kind:<9} case {r.register_no} "
                   f"attempts {r.attempts}{when}" + (f"\n         {r.reason}" if r.reason
                                                     else ""))

@outbox_group.command("retry")
@click.argument("row_id", required=False, type=int)
@click.option("--all-dead", is_flag=True, help="Retry every dead letter.")
@click.option("--actor", default=lambda: os.environ.get("LAPOR_BRIDGE_ACTOR", "operator"))
@config_option
@click.pass_context
def outbox_retry(ctx: click.Context, row_id: int | None, all_dead: bool, actor: str
                 ) -> None:
    """Put a dead letter (or all of them) back in line after fixing the cause."""
    # Lazy: keeps `lapor-bridge --help` fast and free of SQLAlchemy (test_layers.py).
    from bridge.services.outbox import NoSuchRow, retry, retry_all_dead

    if (row_id is None) == (not all_dead):
        fail("give a row id or --all-dead (not both)")
    with runtime(ctx) as rt, rt.sessions() as session, session.begin():
        try:
            ids = retry_all_dead(session, actor) if all_dead else [
                retry(session, row_id or 0, actor).id]
        except NoSuchRow as exc:
            fail(str(exc))
    click.echo(f"back in line: {ids or 'nothing was dead'}")




def case_commands() -> list[click.Command]:
    """The ``case`` sub-commands that act on a case (added to ``case`` by bridge.cli)."""
    return list(CASE_COMMANDS)


def commands() -> list[click.Command]:
    return [outbox_group]


def _read_case_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        fail(f"{path}: {exc.strerror}")
    try:
        data = tomllib.loads(raw.decode()) if path.suffix == ".toml" else json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"{path}: not valid {'TOML' if path.suffix == '.toml' else 'JSON'}: {exc}")
    if not isinstance(data, dict):
        fail(f"{path}: expected an object of case fields")
    return data


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use lapor-bridge case ...")
