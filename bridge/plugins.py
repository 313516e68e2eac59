"""The plugin host: finds, checks, configures and calls the regency's plugins.

Start-up (:func:`load_plugins`) is strict: a plugin that does not import, implements a
hook that does not exist, takes an argument its hook does not have, or whose config
section does not validate stops the start with a message naming the plugin and the
problem. Run time (:class:`PluginHost` methods) is forgiving: a plugin that raises, runs
past its time limit or returns the wrong type is logged with its name and reported back as
a :class:`PluginFailure` so the caller can flag the case for a person; the other plugins
still run and the sync goes on.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import importlib
import importlib.metadata
import inspect
import logging
import queue
import threading
import warnings
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import ModuleType
from typing import Any, Generic, Literal, NamedTuple, TypeVar

import click
import pluggy
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge import domain, hookspecs
from bridge.bounded import BoundedCalls
from bridge.config import (
    ConfigError,
    Settings,
    describe_validation_error,
    register_section,
    section_settings,
)
from bridge.domain import (
    DEFAULT_SEVERITIES,
    CaseSnapshot,
    Classification,
    ConfigSection,
    JobSpec,
    Notification,
    WorkingDays,
)
from bridge.errors import BridgeError
from bridge.hookspecs import EVENT_HOOKS, PROJECT_NAME, hookimpl

log = logging.getLogger("bridge.plugins")

T = TypeVar("T")

#: Top-level sections of the deployment file that belong to the core, never to a plugin.
RESERVED_SECTIONS = frozenset(
    {"regency", "lapor", "database", "plugins", "notifications", "secrets", "secrets_file",
     "source"}
)

register_section("plugins")

#: Import name of the reference plugins (the plugins/ folder of the source tree).
REFERENCE_PACKAGE = "lapor_bridge_plugins"
#: Their import path before they had their own name; still accepted, with a warning.
LEGACY_PREFIX = "plugins."


# -- settings --------------------------------------------------------------------------


class PluginsSettings(BaseModel):
    """The ``[plugins]`` table of the deployment file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Python modules to load as plugins (``"mykab.rules"``).
    modules: list[str] = Field(default_factory=list)
    #: Entry-point names to load (``"routing_rules"``), in this order. The reference
    #: plugins that ship with the bridge load only when named here.
    enable: list[str] = Field(default_factory=list)
    #: Load every other installed package that declares an entry point in group
    #: ``lapor_bridge`` (the reference plugins excepted).
    entry_points: bool = True
    #: Plugin names (entry point names or module names) not to load.
    disable: list[str] = Field(default_factory=list)
    #: Time limit of one hook call, in seconds.
    timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    #: Per-plugin time limits, by plugin name, overriding ``timeout_seconds``.
    timeouts: dict[str, float] = Field(default_factory=dict)
    #: Calls of one plugin still running past their limit before the host stops calling it.
    max_stuck_calls: int = Field(default=2, ge=1, le=100)


# -- errors and results ----------------------------------------------------------------


class PluginError(BridgeError):
    """A plugin cannot be used: raised at start, names the plugin and the problem."""

    def __init__(self, plugin: str, problem: str) -> None:
        self.plugin = plugin
        self.problem = problem
        super().__init__(f"plugin {plugin!r}: {problem}")


class PluginConfigError(ConfigError):
    """A plugin's config section does not validate (``file: key: problem (plugin X)``)."""

    def __init__(self, file: str, key: str, problem: str, plugin: str) -> None:
        self.plugin = plugin
        super().__init__(file, key, f"{problem} (plugin {plugin!r})")


FailureKind = Literal["error", "timeout", "bad_return", "skipped"]


@dataclass(frozen=True, slots=True)
class PluginFailure:
    """One plugin call that went wrong; the caller flags the case for a person."""

    plugin: str
    hook: str
    kind: FailureKind
    message: str
    case_id: int | None = None

    def __str__(self) -> str:
        where = f" (case {self.case_id})" if self.case_id is not None else ""
        return f"plugin {self.plugin!r} failed in {self.hook}{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class HookOutcome(Generic[T]):
    """The answer of a first-result hook: the value, who gave it, and what failed on the way."""

    value: T | None
    plugin: str | None = None
    failures: tuple[PluginFailure, ...] = ()

    @property
    def ok(self) -> bool:
        """True when no plugin failed (the value may still be ``None``: nobody answered)."""
        return not self.failures

    @property
    def attention(self) -> str | None:
        """A one-paragraph note for ``Case.attention`` when something failed, else ``None``."""
        if not self.failures:
            return None
        return "; ".join(str(f) for f in self.failures)


class PluginInfo(NamedTuple):
    """One loaded plugin, as ``lapor-bridge plugins`` lists it."""

    name: str
    version: str
    hooks: tuple[str, ...]
    origin: str


@dataclass
class PluginSource:
    """A plugin object about to be registered: its name, where it came from, its version."""

    name: str
    obj: object
    origin: str
    version: str


class _Worker:
    """A daemon thread that runs one plugin's calls, one at a time, for as long as each
    finishes in time. A call past its limit leaves its worker to finish it alone: the
    worker is never handed another call and ends after that one."""

    def __init__(self, plugin: str) -> None:
        self.jobs: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()
        #: Set (under the host's lock) when a call ran past its limit.
        self.retired = False
        threading.Thread(target=self._loop, daemon=True, name=f"plugin:{plugin}").start()

    def _loop(self) -> None:
        while not self.retired:
            self.jobs.get()()


# -- the host ----------------------------------------------------------------------------


class PluginHost:
    """Calls the loaded plugins for the core. Build it with :func:`load_plugins`.

    Thread-safe: hooks may be called from the sync, the scheduler and the web page at once.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        sources: Sequence[PluginSource],
        configs: Mapping[str, Any],
        sections: Mapping[str, str],
        options: PluginsSettings,
        calendar: WorkingDays | None = None,
    ) -> None:
        self.pm = pm
        self.options = options
        self.calendar = calendar
        self._sources = {s.name: s for s in sources}
        self._configs = dict(configs)
        #: section name -> plugin name
        self.declared_sections: dict[str, str] = dict(sections)
        self._lock = threading.Lock()
        self._stuck: Counter[str] = Counter()
        #: Idle worker threads per plugin (see :class:`_Worker`).
        self._workers: dict[str, list[_Worker]] = {}
        #: The most recent failures (newest last), for the health page.
        self.recent_failures: deque[PluginFailure] = deque(maxlen=200)
        #: Failures per (plugin, hook) since start, for metrics.
        self.failure_counts: Counter[tuple[str, str]] = Counter()

    # -- what the core calls ---------------------------------------------------------

    def classify(
        self, case: CaseSnapshot, severities: Sequence[str] = DEFAULT_SEVERITIES
    ) -> HookOutcome[Classification]:
        """Ask ``classify_case``; the severity must be one of ``severities``."""
        return self.classify_many([case], severities)[0]

    def classify_many(
        self, cases: Sequence[CaseSnapshot], severities: Sequence[str] = DEFAULT_SEVERITIES
    ) -> list[HookOutcome[Classification]]:
        """:meth:`classify` for each of ``cases`` (each call isolated and timed on its
        own; the calls reach each plugin together, see :meth:`_call_many`)."""
        allowed = tuple(severities)

        def check(value: Any) -> str | None:
            if not isinstance(value, Classification):
                return _wrong_type(value, "Classification")
            if value.severity not in allowed:
                return (f"severity {value.severity!r} is not one of the profile's classes "
                        f"({', '.join(allowed)})")
            return None

        return self._first_many(
            "classify_case", [{"case": c, "severities": allowed} for c in cases], check,
            [c.id for c in cases])

    def route(
        self,
        case: CaseSnapshot,
        known_opds: Collection[str],
        known_bodies: Collection[int] | None = None,
    ) -> HookOutcome[domain.RoutingDecision]:
        """Ask ``route_case``; refuse decisions naming an OPD not in ``known_opds`` or a
        LAPOR! institution not in ``known_bodies`` (``None``: institutions not checked)."""
        return self.route_many([case], known_opds, known_bodies)[0]

    def route_many(
        self,
        cases: Sequence[CaseSnapshot],
        known_opds: Collection[str],
        known_bodies: Collection[int] | None = None,
    ) -> list[HookOutcome[domain.RoutingDecision]]:
        """:meth:`route` for each of ``cases`` (as :meth:`classify_many`)."""
        opds = tuple(known_opds)
        opd_set = set(opds)
        bodies = None if known_bodies is None else set(known_bodies)

        def check(value: Any) -> str | None:
            if not isinstance(value, domain.RoutingDecision):
                return _wrong_type(value, "RoutingDecision")
            if value.opd is not None and value.opd not in opd_set:
                hint = _did_you_mean(value.opd, opds)
                return f"routed to unknown OPD {value.opd!r}{hint}"
            if value.body_id is not None and bodies is not None and value.body_id not in bodies:
                return (f"routed to LAPOR! institution {value.body_id}, which is not in the "
                        "institution list (refresh it, or fix the plugin's table)")
            return None

        return self._first_many("route_case", [{"case": c, "known_opds": opds} for c in cases],
                                check, [c.id for c in cases])

    def stage_deadline(
        self, case: CaseSnapshot, stage: str, started_at: datetime | None = None
    ) -> HookOutcome[datetime]:
        """Ask ``stage_deadline`` for the due time of ``stage`` started at ``started_at``
        (default: when the case was received)."""
        if started_at is None:
            started_at = case.received_at
        if started_at is None:
            raise ValueError(f"case {case.id} has no received_at; give started_at")
        if started_at.tzinfo is None:
            raise ValueError("started_at must be timezone-aware")
        start = started_at

        def check(value: Any) -> str | None:
            if not isinstance(value, datetime):
                return _wrong_type(value, "datetime")
            if value.tzinfo is None:
                return "returned a naive datetime; deadlines must be timezone-aware"
            if value < start:
                return f"deadline {value.isoformat()} is before the stage started"
            return None

        kwargs = {"case": case, "stage": stage, "started_at": started_at,
                  "calendar": self.calendar}
        return self._first("stage_deadline", kwargs, check, case.id)

    def escalation(self, case: CaseSnapshot,
                   now: datetime) -> HookOutcome[domain.EscalationDecision]:
        """Ask ``decide_escalation`` whether ``case`` must go up at ``now``."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")

        def check(value: Any) -> str | None:
            if not isinstance(value, domain.EscalationDecision):
                return _wrong_type(value, "EscalationDecision")
            return None

        kwargs = {"case": case, "now": now, "calendar": self.calendar}
        return self._first("decide_escalation", kwargs, check, case.id)

    def notify(self, notification: Notification) -> list[PluginFailure]:
        """Hand ``notification`` to every channel; returns the channels that failed."""
        if not isinstance(notification, Notification):
            raise TypeError("notify() takes a Notification")
        return self._all("notify", {"notification": notification}, _expect_none,
                         notification.case_id)

    def emit(
        self, event: str, case: CaseSnapshot, *, event_id: int = 0, **data: Any
    ) -> list[PluginFailure]:
        """Call every implementation of lifecycle hook ``event``; returns the failures.

        ``data`` holds the event's own arguments (see :mod:`bridge.hookspecs`); those not
        given are passed as ``None`` (``changes`` as ``{}``). An unknown event or argument
        is a bug in the caller and raises ``ValueError``.
        """
        if event not in EVENT_HOOKS:
            raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENT_HOOKS)}")
        names = hookspecs.event_arguments(event)
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"event {event!r} takes {names}, not {unknown}")
        kwargs: dict[str, Any] = {name: data.get(name) for name in names}
        if "changes" in kwargs and kwargs["changes"] is None:
            kwargs["changes"] = {}
        kwargs["case"] = case
        kwargs["event_id"] = event_id
        return self._all(event, kwargs, _expect_none, case.id)

    def scheduler_jobs(self) -> list[JobSpec]:
        """Collect every plugin's jobs; raises :class:`PluginError` on a bad job (at start)."""
        jobs: list[JobSpec] = []
        seen: set[str] = set()
        for name, value in self._lists("scheduler_jobs", "JobSpec"):
            for spec in value:
                if not isinstance(spec, JobSpec):
                    raise PluginError(name, "scheduler_jobs must return JobSpec items, got "
                                      f"{type(spec).__name__}")
                job_id = f"{name}:{spec.id}"
                if job_id in seen:
                    raise PluginError(name, f"two jobs with id {spec.id!r}")
                seen.add(job_id)
                try:
                    spec.make_trigger()
                except (TypeError, ValueError) as exc:
                    raise PluginError(name, f"job {spec.id!r}: bad {spec.trigger} trigger "
                                      f"arguments {dict(spec.trigger_args)}: {exc}") from None
                jobs.append(JobSpec(id=job_id, trigger=spec.trigger,
                                    func=self._guard_job(name, spec.id, spec.func),
                                    trigger_args=dict(spec.trigger_args), plugin=name))
        return jobs

    def cli_commands(self, taken: Iterable[str] = ()) -> list[Any]:
        """Every plugin's extra commands (``click.Command``); raises :class:`PluginError`
        on a bad answer or a name in ``taken`` or already given by another plugin."""
        names = set(taken)
        commands: list[Any] = []
        for name, value in self._lists("cli_commands", "click commands"):
            for command in value:
                if not isinstance(command, click.Command) or not command.name:
                    raise PluginError(name, "cli_commands must return named click commands, "
                                      f"got {type(command).__name__}")
                if command.name in names:
                    raise PluginError(name, f"command {command.name!r} is already taken")
                names.add(command.name)
                commands.append(command)
        return commands

    def _lists(self, hook: str, items: str) -> Iterator[tuple[str, Iterable[Any]]]:
        """(plugin, answer) of every plugin whose start-up ``hook`` returned a list of
        ``items``; raises :class:`PluginError` on a failure or an answer that is no list."""
        for impl in self._impls(hook):
            name = impl.plugin_name
            value, failure = self._call(impl, hook, {}, None)
            if failure is not None:
                raise PluginError(name, f"{hook} failed: {failure.message}")
            if value is None:
                continue
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise PluginError(name, f"{hook} must return a list of {items}, got "
                                  f"{type(value).__name__}")
            yield name, value

    def describe(self) -> list[PluginInfo]:
        """(name, version, hooks implemented, origin) of every loaded plugin, by name."""
        infos = []
        for name, source in sorted(self._sources.items()):
            callers = self.pm.get_hookcallers(source.obj) or []
            hooks = tuple(sorted(caller.name for caller in callers))
            infos.append(PluginInfo(name, source.version, hooks, source.origin))
        return infos

    @property
    def plugin_names(self) -> list[str]:
        return sorted(self._sources)

    def config_of(self, plugin: str) -> Any:
        """The validated config section of ``plugin`` (``None`` if it declares none)."""
        if plugin not in self._sources:
            raise KeyError(f"no plugin named {plugin!r}")
        return self._configs.get(plugin)

    def implementers(self, hook: str) -> list[str]:
        """Names of the plugins implementing ``hook``, in call order."""
        return [impl.plugin_name for impl in self._impls(hook)]

    def timeout_for(self, plugin: str) -> float:
        return float(self.options.timeouts.get(plugin, self.options.timeout_seconds))

    # -- calling ------------------------------------------------------------------------

    def _impls(self, hook: str) -> list[pluggy.HookImpl]:
        caller = getattr(self.pm.hook, hook)
        # pluggy calls the last-registered implementation first (tryfirst/trylast already
        # sorted in); keep its order so that the host and a plain pluggy call agree.
        return list(reversed(caller.get_hookimpls()))

    def _first(
        self,
        hook: str,
        kwargs: Mapping[str, Any],
        check: Callable[[Any], str | None],
        case_id: int | None,
    ) -> HookOutcome[Any]:
        return self._first_many(hook, [kwargs], check, [case_id])[0]

    def _first_many(
        self,
        hook: str,
        calls: Sequence[Mapping[str, Any]],
        check: Callable[[Any], str | None],
        case_ids: Sequence[int | None],
    ) -> list[HookOutcome[Any]]:
        """The first acceptable answer for each argument set, asking the implementations
        in call order; a later plugin is asked only about what the earlier ones left open."""
        outcomes: list[HookOutcome[Any] | None] = [None] * len(calls)
        failures: list[list[PluginFailure]] = [[] for _ in calls]
        open_ = list(range(len(calls)))
        for impl in self._impls(hook):
            if not open_:
                break
            answers = self._call_many(impl, hook, [calls[i] for i in open_],
                                      [case_ids[i] for i in open_])
            still: list[int] = []
            for i, (value, failure) in zip(open_, answers, strict=True):
                if failure is None and value is not None:
                    problem = check(value)
                    if problem is None:
                        outcomes[i] = HookOutcome(value, impl.plugin_name, tuple(failures[i]))
                        continue
                    failure = self._fail(impl.plugin_name, hook, "bad_return", problem,
                                         case_ids[i])
                if failure is not None:
                    failures[i].append(failure)
                still.append(i)
            open_ = still
        return [o if o is not None else HookOutcome(None, None, tuple(f))
                for o, f in zip(outcomes, failures, strict=True)]

    def _all(self, hook: str, kwargs: Mapping[str, Any], check: Callable[[Any], str | None],
             case_id: int | None) -> list[PluginFailure]:
        """Call every implementation; the failures (``check`` sees every answer)."""
        return [failure for _, _, failure in self._answers(hook, kwargs, check, case_id, False)
                if failure is not None]

    def _answers(self, hook: str, kwargs: Mapping[str, Any], check: Callable[[Any], str | None],
                 case_id: int | None, none_ok: bool,
                 ) -> Iterator[tuple[str, Any, PluginFailure | None]]:
        """(plugin, answer, failure) of each implementation in turn, called only as the
        caller asks for the next; an answer ``check`` refuses is a ``bad_return`` failure
        (with ``none_ok``, ``None`` is not checked: that plugin had nothing to say)."""
        for impl in self._impls(hook):
            value, failure = self._call(impl, hook, kwargs, case_id)
            if failure is None and not (none_ok and value is None):
                problem = check(value)
                if problem is not None:
                    failure = self._fail(impl.plugin_name, hook, "bad_return", problem, case_id)
            yield impl.plugin_name, value, failure

    def _call(
        self,
        impl: pluggy.HookImpl,
        hook: str,
        kwargs: Mapping[str, Any],
        case_id: int | None,
    ) -> tuple[Any, PluginFailure | None]:
        return self._call_many(impl, hook, [kwargs], [case_id])[0]

    def _call_many(
        self,
        impl: pluggy.HookImpl,
        hook: str,
        calls: Sequence[Mapping[str, Any]],
        case_ids: Sequence[int | None],
    ) -> list[tuple[Any, PluginFailure | None]]:
        """Call ``impl`` once per argument set in ``calls``, in order: each call isolated
        (its own context copy, its exception kept) and timed on its own from when it
        starts. The calls go to the plugin's worker thread together and run back to back,
        so a batch costs one hand-over between threads, not one per call (the hand-over
        cost more than most hooks' own work). A call past its limit is left to finish
        alone as before, its worker retired, and the calls after it go to a new worker."""
        name = impl.plugin_name
        limit = self.timeout_for(name)
        results: list[tuple[Any, PluginFailure | None]] = []
        while len(results) < len(calls):
            first = len(results)
            with self._lock:
                stuck = self._stuck[name]
            if stuck >= self.options.max_stuck_calls:
                results.extend((None, self._fail(
                    name, hook, "skipped",
                    f"not called: {stuck} earlier call(s) of this plugin are still running "
                    "past their time limit", case_ids[i])) for i in range(first, len(calls)))
                break

            def late(_i: int) -> None:
                with self._lock:
                    self._stuck[name] -= 1

            # A plugin's exception is kept for the host to report: it must not kill the host.
            # Each call gets its own context copy, as pluggy's plain call would share none.
            batch = BoundedCalls([functools.partial(
                contextvars.copy_context().run, impl.function,
                *[self._configs.get(name) if arg == "config" else kwargs[arg]
                  for arg in impl.argnames])
                for kwargs in calls[first:]], late)
            worker = self._worker(name)

            def give_up(i: int, batch: BoundedCalls = batch, worker: _Worker = worker) -> None:
                # Python cannot kill a thread: it is left to finish (daemon), and counted
                # so a plugin that hangs every time stops being called; the calls queued
                # behind it are not run there.
                worker.retired = True
                if batch.started[i] is not None:
                    with self._lock:
                        self._stuck[name] += 1

            worker.jobs.put(batch.run)
            for offset in range(len(batch.fns)):
                case_id = case_ids[first + offset]
                if not batch.wait(offset, limit, give_up):
                    results.append((None, self._fail(
                        name, hook, "timeout", f"did not finish within {limit:g} s",
                        case_id)))
                    break
                exc = batch.errors[offset]
                if exc is not None:
                    results.append((None, self._fail(name, hook, "error",
                                                     f"{type(exc).__name__}: {exc}",
                                                     case_id, exc)))
                else:
                    results.append((batch.values[offset], None))
            else:
                self._idle(name, worker)
        return results

    def _worker(self, plugin: str) -> _Worker:
        """An idle worker thread of ``plugin`` (a new one when all are busy or stuck):
        starting a thread per call cost more than most hooks' own work."""
        with self._lock:
            idle = self._workers.setdefault(plugin, [])
            if idle:
                return idle.pop()
        return _Worker(plugin)

    def _idle(self, plugin: str, worker: _Worker) -> None:
        with self._lock:
            self._workers.setdefault(plugin, []).append(worker)

    def _fail(
        self,
        plugin: str,
        hook: str,
        kind: FailureKind,
        message: str,
        case_id: int | None,
        exc: BaseException | None = None,
    ) -> PluginFailure:
        failure = PluginFailure(plugin, hook, kind, message, case_id)
        log.error("%s", failure, exc_info=(type(exc), exc, exc.__traceback__) if exc else None)
        with self._lock:
            self.recent_failures.append(failure)
            self.failure_counts[(plugin, hook)] += 1
        return failure

    def _guard_job(self, plugin: str, job_id: str, func: Callable[[], object]) -> Callable[[], None]:
        def job() -> None:
            try:
                func()
            except Exception as exc:
                self._fail(plugin, f"job {job_id}", "error", f"{type(exc).__name__}: {exc}",
                           None, exc)

        job.__name__ = f"{plugin}:{job_id}"
        job.__qualname__ = job.__name__
        return job


def _wrong_type(value: Any, expected: str) -> str:
    return f"returned {type(value).__name__} ({value!r:.80}), expected {expected} or None"


def _expect_none(value: Any) -> str | None:
    if value is None:
        return None
    return f"returned {type(value).__name__} ({value!r:.80}); this hook must return None"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if choices:
        return f" (known: {', '.join(choices)})"
    return " (the profile lists no OPD)"


# -- loading ---------------------------------------------------------------------------


def plugins_settings(settings: Settings) -> PluginsSettings:
    """Validate the ``[plugins]`` table; raises :class:`ConfigError` naming the key."""
    return section_settings(settings, "plugins", PluginsSettings)


def load_plugins(
    settings: Settings,
    *,
    calendar: WorkingDays | None = None,
    extra: Iterable[object | tuple[str, object]] = (),
) -> PluginHost:
    """Find, check and configure the deployment's plugins.

    Loads installed packages of entry point group ``lapor_bridge`` (unless ``[plugins]
    entry_points = false``), then the modules named in ``[plugins] modules``, then ``extra``
    (objects or ``(name, object)`` pairs, for embedding and tests). Raises
    :class:`PluginError` or :class:`PluginConfigError` with the plugin's name on any problem.
    """
    options = upgrade_legacy_names(plugins_settings(settings), settings.source)
    sources: list[PluginSource] = []
    blocked = set(options.disable)
    sources.extend(_entry_point_sources(options))
    for module_name in options.modules:
        if module_name in blocked:
            continue
        sources.append(_module_source(module_name))
    for item in extra:
        name, obj = item if isinstance(item, tuple) else (_object_name(item), item)
        sources.append(PluginSource(name, obj, "given", _version_of(obj)))
    raw_sections = settings.extra_sections()
    return build_host(sources, raw_sections, options, source=settings.source, calendar=calendar)


def build_host(
    sources: Sequence[PluginSource],
    raw_sections: Mapping[str, Any],
    options: PluginsSettings,
    *,
    source: str = "<memory>",
    calendar: WorkingDays | None = None,
) -> PluginHost:
    """Register ``sources`` and configure them; the checks of :func:`load_plugins`."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    seen: dict[int, str] = {}
    for src in sources:
        if pm.has_plugin(src.name):
            raise PluginError(src.name, f"loaded twice (as {src.origin} and as "
                              f"{_origin_of(sources, src.name)}); load it once")
        if id(src.obj) in seen:
            raise PluginError(src.name, f"is the same object as plugin {seen[id(src.obj)]!r}; "
                              "load it once")
        seen[id(src.obj)] = src.name
        _check_arguments(src)
        try:
            pm.register(src.obj, name=src.name)
        except pluggy.PluginValidationError as exc:
            raise PluginError(src.name, _explain_validation(src.name, pm, exc)) from None
    _check_unknown_hooks(pm)
    for src in sources:
        callers = pm.get_hookcallers(src.obj) or []
        if not callers:
            raise PluginError(src.name, "implements no hook (are its functions marked with "
                              "@hookimpl from bridge.hookspecs?)")
        for caller in callers:
            for impl in caller.get_hookimpls():
                if impl.plugin is src.obj and (impl.wrapper or impl.hookwrapper):
                    raise PluginError(src.name, f"hook {caller.name}: hook wrappers are not "
                                      "supported (each implementation is called on its own)")
    configs: dict[str, Any] = {}
    sections: dict[str, str] = {}
    for impl in pm.hook.config_section.get_hookimpls():
        name = impl.plugin_name
        try:
            declared = impl.function()
        except Exception as exc:
            raise PluginError(name, f"config_section raised {type(exc).__name__}: {exc}") from exc
        if declared is None:
            continue
        section, model = _check_section(name, declared, sections)
        sections[section] = name
        raw = raw_sections.get(section, {})
        if not isinstance(raw, Mapping):
            raise PluginConfigError(source, section, "expected a table", name)
        try:
            configs[name] = model.model_validate(dict(raw))
        except ValidationError as exc:
            loc, problem = describe_validation_error(exc)
            raise PluginConfigError(source, f"{section}.{loc}" if loc else section, problem,
                                    name) from None
    return PluginHost(pm, sources, configs, sections, options, calendar)


def _check_section(
    plugin: str, declared: Any, taken: Mapping[str, str]
) -> tuple[str, type[BaseModel]]:
    if not isinstance(declared, ConfigSection):
        raise PluginError(plugin, f"config_section returned {type(declared).__name__}, "
                          "expected ConfigSection(name, model) or None")
    model = declared.model
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise PluginError(plugin, "config_section model must be a pydantic BaseModel class")
    if model.model_config.get("extra") != "forbid":
        raise PluginError(plugin, f"config model {model.__name__} must refuse unknown keys: "
                          "set model_config = ConfigDict(extra='forbid')")
    if declared.name in RESERVED_SECTIONS:
        raise PluginError(plugin, f"config section [{declared.name}] belongs to the core")
    if declared.name in taken:
        raise PluginError(plugin, f"config section [{declared.name}] is already declared by "
                          f"plugin {taken[declared.name]!r}")
    return declared.name, model


def _check_unknown_hooks(pm: pluggy.PluginManager) -> None:
    known = hookspecs.hook_names()
    for name, caller in vars(pm.hook).items():
        if name.startswith("_") or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if impl.optionalhook:
                continue
            raise PluginError(impl.plugin_name, f"implements unknown hook {name!r}"
                              f"{_did_you_mean(name, known)}")
    # pluggy's own check, in case its notion of "pending" grows beyond the loop above.
    pm.check_pending()


def _check_arguments(src: PluginSource) -> None:
    """Refuse an implementation that asks for an argument its hook does not have (pluggy
    would too, in words meant for developers; this names the hook's own arguments)."""
    marker = f"{PROJECT_NAME}_impl"
    for attr in dir(src.obj):
        function = getattr(src.obj, attr, None)
        options = getattr(function, marker, None)
        if not callable(function) or not isinstance(options, Mapping):
            continue
        hook = options.get("specname") or attr
        if hook not in hookspecs.hook_names():
            continue  # an unknown hook: reported with a suggestion after registration
        wanted = [p.name for p in inspect.signature(function).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                  and p.default is p.empty]
        allowed = hookspecs.hook_arguments(hook)
        extra = [a for a in wanted if a not in allowed]
        if extra:
            bad = "{" + ", ".join(repr(a) for a in extra) + "}"
            raise PluginError(src.name, f"hook {hook}: argument(s) {bad} do not exist; the "
                              f"hook takes ({', '.join(allowed)})")


def _explain_validation(plugin: str, pm: pluggy.PluginManager, exc: Exception) -> str:
    text = str(exc)
    for hook in hookspecs.hook_names():
        if f"hook {hook!r}" in text:
            return f"hook {hook}: {text.splitlines()[-1]}"
    return text.replace("\n", "; ")


def _is_reference(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.value.split(":")[0].split(".")[0] == REFERENCE_PACKAGE


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Installed ``lapor_bridge`` entry points by name (the first of a name wins)."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=PROJECT_NAME):
        found.setdefault(ep.name, ep)
    return found


def upgrade_legacy_names(options: PluginsSettings, source: str) -> PluginsSettings:
    """Read ``plugins.X`` (a reference plugin's old module path) as entry point ``X``:
    in ``modules`` it moves to ``enable``; ``disable`` and ``timeouts`` keys are renamed."""
    reference = {name for name, ep in _entry_points().items() if _is_reference(ep)}

    def new(name: str) -> str | None:
        short = name.removeprefix(LEGACY_PREFIX)
        return short if name.startswith(LEGACY_PREFIX) and short in reference else None

    old = [n for n in [*options.modules, *options.disable, *options.timeouts] if new(n)]
    if not old:
        return options
    message = (f"{source}: [plugins] names {', '.join(dict.fromkeys(old))}: the reference "
               f"plugins are now {REFERENCE_PACKAGE}, enabled by entry-point name; write "
               f"enable = {[new(m) for m in options.modules if new(m)]} (and the same names "
               "in disable and timeouts)")
    log.warning("deprecated: %s", message)
    warnings.warn(message, DeprecationWarning, stacklevel=2)
    enable = list(options.enable)
    enable += [n for m in options.modules if (n := new(m)) and n not in enable]
    return options.model_copy(update={
        "modules": [m for m in options.modules if not new(m)],
        "enable": enable,
        "disable": [new(n) or n for n in options.disable],
        "timeouts": {new(k) or k: v for k, v in options.timeouts.items()},
    })


def _entry_point_sources(options: PluginsSettings) -> list[PluginSource]:
    installed = _entry_points()
    blocked = set(options.disable)
    missing = [name for name in options.enable if name not in installed]
    if missing:
        known = ", ".join(sorted(installed)) or "none"
        raise PluginError(missing[0], "no installed plugin has this entry-point name "
                          f"(listed in [plugins] enable; installed: {known})")
    chosen = [ep for ep in installed.values() if options.entry_points
              and not _is_reference(ep) and ep.name not in options.enable]
    chosen += [installed[name] for name in dict.fromkeys(options.enable)]
    found: list[PluginSource] = []
    for ep in chosen:
        if ep.name in blocked:
            continue
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        try:
            obj = ep.load()
        except Exception as exc:
            raise PluginError(ep.name, f"entry point {ep.value!r} (package {dist_name}) cannot "
                              f"be imported: {type(exc).__name__}: {exc}") from exc
        version = dist.version if dist is not None else _version_of(obj)
        found.append(PluginSource(ep.name, obj, f"package {dist_name}", version))
    return found


def _module_source(module_name: str) -> PluginSource:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise PluginError(module_name, "module not found (listed in [plugins] modules; "
                              "is it installed or on the path?)") from None
        raise PluginError(module_name, f"cannot be imported: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise PluginError(module_name, f"cannot be imported: {type(exc).__name__}: {exc}") from exc
    return PluginSource(module_name, module, "config module", _version_of(module))


def _version_of(obj: object) -> str:
    version = getattr(obj, "__version__", None)
    if isinstance(version, str):
        return version
    module = obj if isinstance(obj, ModuleType) else None
    top = (module.__name__ if module else type(obj).__module__).split(".")[0]
    try:
        dists = importlib.metadata.packages_distributions().get(top, [])
        if dists:
            return importlib.metadata.version(dists[0])
    except importlib.metadata.PackageNotFoundError:
        pass
    return "-"


def _object_name(obj: object) -> str:
    if isinstance(obj, ModuleType):
        return obj.__name__
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _origin_of(sources: Sequence[PluginSource], name: str) -> str:
    origins = [s.origin for s in sources if s.name == name]
    return origins[0] if origins else "?"


__all__ = [
    "HookOutcome",
    "PluginConfigError",
    "PluginError",
    "PluginFailure",
    "PluginHost",
    "PluginInfo",
    "PluginSource",
    "PluginsSettings",
    "build_host",
    "describe_validation_error",
    "hookimpl",
    "load_plugins",
    "plugins_settings",
]
