# mypy: disable-error-code="empty-body"
"""The plugin API of lapor-bridge: every hook a regency's plugin may implement.

This module *is* the public contract. A plugin is a module (or an object) whose functions
are marked with :data:`hookimpl` and named like one of the specifications below::

    from bridge.hookspecs import hookimpl   # also importable as ``from bridge import hookimpl``

    @hookimpl
    def classify_case(case):
        if "limbah" in case.content.lower():
            return Classification("sedang", "dampak lingkungan")
        return None

An implementation may accept any subset of the arguments a specification lists, in any
order; the host passes them by name. Every hook also accepts ``config``: the plugin's own
validated config section (see :func:`config_section`), or ``None`` when it declares none.

How the host calls hooks (``bridge.plugins.PluginHost``):

- Every implementation runs in a worker thread with a time limit (``[plugins]
  timeout_seconds``, default 5 s). An implementation that raises, runs past its limit or
  returns a value of the wrong type is a *plugin failure*: it is logged with the plugin's
  name, returned to the caller as a ``PluginFailure`` so the case is flagged for a person,
  and the other plugins still run. A failing plugin never stops the sync.
- Hooks marked *first result* are asked one plugin at a time (most recently registered
  first; ``tryfirst``/``trylast`` are honoured) until one returns something other than
  ``None``. ``None`` means "no opinion, ask the next plugin".
- Other hooks call every implementation; their return values are ignored unless stated.
- Plugins receive :class:`~bridge.domain.CaseSnapshot` objects: frozen copies of committed
  state. Nothing a plugin does to them reaches the store; decisions come back as values.
- Hook wrappers (``wrapper=True``/``hookwrapper=True``) are refused at start: the host calls
  each implementation on its own to isolate it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import pluggy

from bridge.domain import (
    CaseSnapshot,
    Classification,
    ConfigSection,
    EscalationDecision,
    JobSpec,
    Notification,
    RoutingDecision,
    WorkingDays,
)

#: The pluggy project name; entry point group of installable plugins.
PROJECT_NAME = "lapor_bridge"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Mark a function as the implementation of the hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


def declare_section(name: str, model: type[Any]) -> Callable[[], ConfigSection]:
    """A ready ``config_section`` implementation: the plugin's section is ``[name]``,
    validated by ``model``. In a plugin module:
    ``config_section = declare_section("my_plugin", Config)``."""

    @hookimpl
    def config_section() -> ConfigSection:
        return ConfigSection(name, model)

    return config_section


#: The last lines of every lifecycle event's docstring but case_received's, written once
#: and appended by :func:`_event` (the rendered hook reference shows them in full).
_EVENT_DOC_END = """
        event_id: the id of the recorded event.
        config: the plugin's validated config section, or ``None``.

    Returns: ``None``.

    Errors: as :func:`case_received`.
"""

_F = TypeVar("_F", bound=Callable[..., Any])


def _event(spec: _F) -> _F:
    """Finish a lifecycle event's docstring: its arguments end with ``event_id`` and
    ``config``, it returns nothing and fails as :func:`case_received` does."""
    spec.__doc__ = (spec.__doc__ or "").rstrip() + _EVENT_DOC_END
    return spec


# -- start-up -------------------------------------------------------------------------


@hookspec(firstresult=True)
def config_section() -> ConfigSection | None:
    """Declare the plugin's own config section.

    Called: once per plugin while the host loads plugins, before any other hook, and
    always for this plugin alone (it is not a chain).

    Arguments: none.

    Returns: a :class:`~bridge.domain.ConfigSection` ``(name, model)`` where ``model`` is a
    pydantic model class with ``extra="forbid"``; the host validates the top-level table
    ``[name]`` of the deployment's TOML file with it (an absent table validates as ``{}``) and
    passes the resulting model instance as ``config`` to every other hook of this plugin.
    Return ``None`` (or do not implement the hook) when the plugin has no settings.

    Errors: raising, returning another type, a model that accepts unknown keys, a name that
    another plugin already declared, or a section that does not validate stops the start
    with a message naming the plugin, the key and the problem
    (``lapor-bridge.toml: routing_rules.rules.0.unit: Field required (plugin
    plugins.routing_rules)``).
    """


@hookspec
def scheduler_jobs(config: Any) -> Sequence[JobSpec] | None:
    """Ask the daemon's scheduler to run periodic jobs for the plugin.

    Called: once at daemon start, after plugins are loaded and configured.

    Arguments:
        config: the plugin's validated config section, or ``None``.

    Returns: a list of :class:`~bridge.domain.JobSpec` ``(id, trigger, func,
    trigger_args)``, or ``None`` for no jobs. ``trigger`` is an APScheduler 3.x trigger
    kind (``"interval"``, ``"cron"``, ``"date"``) and ``trigger_args`` its keyword
    arguments; ``func`` takes no arguments. The host prefixes each id with the plugin name
    and wraps ``func`` so an exception is logged with the plugin's name instead of reaching
    the scheduler.

    Errors: raising, returning something that is not a list of ``JobSpec``, two jobs with
    the same id, or trigger arguments APScheduler refuses stop the start with a message
    naming the plugin and the job.
    """


@hookspec
def cli_commands(config: Any) -> Sequence[Any] | None:
    """Add commands of the plugin's own to the ``lapor-bridge`` command line.

    Called: when ``lapor-bridge`` is asked for a command it does not have itself; the
    plugins of the deployment named by the top-level ``--config`` (or
    ``$LAPOR_BRIDGE_CONFIG``) are loaded then, so ``lapor-bridge --help`` stays fast and
    lists the built-in commands only.

    Arguments:
        config: the plugin's validated config section, or ``None``.

    Returns: a list of ``click.Command`` objects (``@click.command("name")``), or ``None``
    for none. A command reads the deployment's path from ``ctx.find_root().obj["config"]``.

    Errors: raising, returning something that is not a list of click commands, or a name
    that the command line or another plugin already has ends the command with a one-line
    error naming the plugin (exit code 2).
    """


# -- decisions (first result) ---------------------------------------------------------


@hookspec(firstresult=True)
def classify_case(
    case: CaseSnapshot, severities: Sequence[str], config: Any
) -> Classification | None:
    """Classify a case (Prabumulih's ringan / sedang / berat, or the profile's own classes).

    Called: when a case enters the ``classify`` step of the workflow (after registration and
    the completeness check), and again when staff ask for re-classification. First result.

    Arguments:
        case: the case as committed.
        severities: the classes the profile allows, e.g. ``("ringan", "sedang", "berat")``.
        config: the plugin's validated config section, or ``None``.

    Returns: a :class:`~bridge.domain.Classification` ``(severity, reason)`` whose severity
    is one of ``severities``; or ``None`` for "no opinion, ask the next plugin". When no
    plugin answers, the case waits for a person to classify it.

    Errors: an exception, a time-out, a value of another type or a severity the profile does
    not allow is a plugin failure: logged, the case flagged for a person, and the next
    plugin is asked.
    """


@hookspec(firstresult=True)
def route_case(
    case: CaseSnapshot, known_opds: Sequence[str], config: Any
) -> RoutingDecision | None:
    """Decide authority (kewenangan) and route the case.

    Called: when a case enters the authority-decision step (after classification), and when
    staff ask for a new routing. First result.

    Arguments:
        case: the case as committed (``case.severity`` is set if it was classified).
        known_opds: the codes and names of the deployment's ``[[opds]]``; a decision
            naming another OPD is refused.
        config: the plugin's validated config section, or ``None``.

    Returns: a :class:`~bridge.domain.RoutingDecision`: ``ours=True`` with the handling
    ``unit`` (a unit or a person), or ``ours=False`` with either ``opd`` (forward by letter
    to that OPD of the regency) or ``body_id`` (a LAPOR! institution id: "bukan wewenang"),
    plus the ``tembusan`` list (``"pelapor"`` for the complainant) and a ``reason``.
    ``None`` means "no opinion, ask the next plugin"; when no plugin answers, a person
    decides.

    Errors: an exception, a time-out, a value of another type, or a decision naming an OPD
    not in ``known_opds`` or a LAPOR! institution the bridge does not know is a plugin
    failure: logged, the case flagged, and the next plugin is asked.
    """


@hookspec(firstresult=True)
def stage_deadline(
    case: CaseSnapshot,
    stage: str,
    started_at: datetime,
    calendar: WorkingDays | None,
    config: Any,
) -> datetime | None:
    """Compute when a stage of a case is due.

    Called: whenever a case enters a stage that has a time limit in the profile (e.g. the
    whole case: 14 days at Klaten, 10 working days at Prabumulih, 2-10 working days from
    complete files in seed 001; the Tim Penanganan Pengaduan step: 5 days at Dharmasraya).
    First result.

    Arguments:
        case: the case as committed.
        stage: the workflow stage the deadline is for (``"case"`` for the whole case).
        started_at: when the stage started (timezone-aware).
        calendar: the profile's working-day calendar (``add_working_days``,
            ``working_days_between``, ``is_working_day``), or ``None`` if it has none.
        config: the plugin's validated config section, or ``None``.

    Returns: a timezone-aware ``datetime`` not before ``started_at``; or ``None`` for "no
    opinion, ask the next plugin" (the profile's own rule applies when no plugin answers).

    Errors: an exception, a time-out, a naive datetime, a time before ``started_at`` or a
    value of another type is a plugin failure: logged, the case flagged, next plugin asked.
    """


@hookspec(firstresult=True)
def decide_escalation(
    case: CaseSnapshot, now: datetime, calendar: WorkingDays | None, config: Any
) -> EscalationDecision | None:
    """Decide whether an open case must be escalated now, to whom and why.

    Called: by the daemon's periodic deadline check for every open case, and when a
    complainant is not satisfied (``not_satisfied``). First result.

    Arguments:
        case: the case as committed (``case.data.get("escalation_level")`` holds the level
            already reached, if any).
        now: the current time (timezone-aware); use it instead of the clock, so tests and
            re-runs are deterministic.
        calendar: the profile's working-day calendar, or ``None``.
        config: the plugin's validated config section, or ``None``.

    Returns: an :class:`~bridge.domain.EscalationDecision` ``(level, to_role, reason)``
    (roles used by the seeds: ``kabid``, ``kepala_dinas``, ``tim_penanganan_pengaduan``,
    ``kepala_daerah``) when the case must go up now; ``None`` for "no escalation from this
    plugin, ask the next". The core records the escalation and notifies ``to_role``; it
    does not escalate twice to the same level.

    Errors: an exception, a time-out or a value of another type is a plugin failure:
    logged, the case flagged, next plugin asked.
    """


# -- notification channels ------------------------------------------------------------


@hookspec
def notify(notification: Notification, config: Any) -> None:
    """Deliver a notification through the plugin's channel (e-mail, webhook, chat, log...).

    Called: for every notification the core sends (a case assigned, escalated, forwarded,
    a deadline near or missed, a dead letter...), after the change that caused it was
    committed. Every notification plugin is called: each is a channel.

    Arguments:
        notification: a :class:`~bridge.domain.Notification` ``(kind, recipients, subject,
            body, case_id, register_no, data)``; subject and body are already rendered in
            Bahasa Indonesia and never contain the reporter's identity.
        config: the plugin's validated config section, or ``None``.

    Returns: ``None``. A channel that cannot deliver must raise, so the failure is seen.

    Errors: an exception, a time-out or a return value other than ``None`` is a plugin
    failure: logged with the plugin's name and recorded on the case; the other channels
    still deliver. The host does not retry (a channel that wants retries, like
    ``notify_webhook``, does them itself within its time limit).
    """


# -- lifecycle events (after commit, at least once, in order) -------------------------


@hookspec
def case_received(case: CaseSnapshot, event_id: int, config: Any) -> None:
    """A new case arrived (pulled from LAPOR! or registered from another channel).

    Called: after the transaction that created the case committed, by the event
    dispatcher, in the order events were recorded. At least once: after a crash the same
    event may come again with the same ``event_id``, so make side effects idempotent.

    Arguments:
        case: the case as committed when the event is dispatched.
        event_id: the id of the recorded event; unique, increasing, stable across repeats.
        config: the plugin's validated config section, or ``None``.

    Returns: ``None`` (other values are a plugin failure).

    Errors: an exception or a time-out is logged with the plugin's name and flagged on the
    case; the event is not retried (the other plugins ran), see ``bridge.events``.
    """


@hookspec
@_event
def case_changed(
    case: CaseSnapshot,
    changes: Mapping[str, Any],
    side: str | None,
    event_id: int,
    config: Any,
) -> None:
    """A case changed: on LAPOR! (pulled) or locally (a staff action, a workflow step).

    Called: after the transaction that changed the case committed, by the event
    dispatcher, in order, at least once (see :func:`case_received`).

    Arguments:
        case: the case as committed when the event is dispatched.
        changes: ``{field: [old, new]}`` when the recorder gave them, else empty.
        side: ``"remote"`` (LAPOR!), ``"local"`` (staff), ``"system"``; ``None`` if unknown.
    """


@hookspec
@_event
def followup_delivered(
    case: CaseSnapshot,
    outbox_id: int | None,
    remote_id: str | None,
    event_id: int,
    config: Any,
) -> None:
    """A follow-up (tindak lanjut) of the case was accepted by LAPOR!.

    Called: after the push worker committed the delivery, by the event dispatcher, in
    order, at least once (see :func:`case_received`).

    Arguments:
        case: the case as committed when the event is dispatched.
        outbox_id: the local outbox row that was delivered, if known.
        remote_id: LAPOR!'s id of the new follow-up, if known.
    """


@hookspec
@_event
def deadline_near(
    case: CaseSnapshot,
    deadline_at: datetime | None,
    working_days_left: int | None,
    event_id: int,
    config: Any,
) -> None:
    """A case's deadline is near (the profile's warning threshold was crossed).

    Called: once per crossing, by the event dispatcher after the deadline check committed,
    in order, at least once (see :func:`case_received`).

    Arguments:
        case: the case as committed when the event is dispatched.
        deadline_at: the deadline that is near (timezone-aware), or ``None`` if not given.
        working_days_left: working days left until it, if the recorder computed them.
    """


@hookspec
@_event
def deadline_missed(
    case: CaseSnapshot, deadline_at: datetime | None, event_id: int, config: Any
) -> None:
    """A case's deadline passed while the case was still open.

    Called: once per missed deadline, by the event dispatcher, in order, at least once
    (see :func:`case_received`).

    Arguments:
        case: the case as committed when the event is dispatched.
        deadline_at: the deadline that was missed (timezone-aware), or ``None``.
    """


@hookspec
@_event
def dead_letter(
    case: CaseSnapshot,
    outbox_id: int | None,
    kind: str | None,
    error: str | None,
    event_id: int,
    config: Any,
) -> None:
    """Something the bridge had to tell LAPOR! could not be delivered and was given up.

    Called: when the push worker moves an outbox row to ``dead`` (a permanent error such as
    a 422, or retries exhausted), by the event dispatcher, in order, at least once.

    Arguments:
        case: the case as committed when the event is dispatched.
        outbox_id: the dead outbox row, if known.
        kind: what it was (``"followup"``, ``"forward"``, ``"create"``...), if known.
        error: LAPOR!'s reason or the last error, if known (never contains secrets).
    """


#: Lifecycle events: the event name is the hook name.
EVENT_HOOKS: tuple[str, ...] = (
    "case_received",
    "case_changed",
    "followup_delivered",
    "deadline_near",
    "deadline_missed",
    "dead_letter",
)

#: Hooks whose specification is ``firstresult``.
FIRST_RESULT_HOOKS: tuple[str, ...] = (
    "config_section",
    "classify_case",
    "route_case",
    "stage_deadline",
    "decide_escalation",
)

#: Arguments the host supplies itself to every hook (not part of an event's data).
HOST_ARGUMENTS: tuple[str, ...] = ("config", "event_id", "case")


def hook_names() -> list[str]:
    """Every hook this module specifies, in source order."""
    names = []
    for name, obj in globals().items():
        if inspect.isfunction(obj) and hasattr(obj, f"{PROJECT_NAME}_spec"):
            names.append(name)
    return names


def hook_arguments(name: str) -> list[str]:
    """The argument names of hook ``name``, in order."""
    spec = globals()[name]
    return list(inspect.signature(spec).parameters)


def event_arguments(name: str) -> list[str]:
    """The data arguments of a lifecycle event (everything but case, event_id, config)."""
    if name not in EVENT_HOOKS:
        raise KeyError(f"unknown event {name!r}; known events: {', '.join(EVENT_HOOKS)}")
    return [arg for arg in hook_arguments(name) if arg not in HOST_ARGUMENTS]


__all__ = [
    "EVENT_HOOKS",
    "FIRST_RESULT_HOOKS",
    "PROJECT_NAME",
    "declare_section",
    "event_arguments",
    "hook_arguments",
    "hook_names",
    "hookimpl",
    "hookspec",
]
