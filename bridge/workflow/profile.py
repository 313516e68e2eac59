"""The workflow of a regency as data: the ``[workflow]`` TOML section and its checker.

A profile names stages, roles, transitions (which action moves a case from which stages to
which stage, for which roles), approval chains (paraf / tanda tangan of a document),
severity classes, recorded handling steps, deadlines and escalation levels, and the
national LAPOR! limits. :class:`WorkflowProfile` is its pydantic model; :class:`Workflow`
is the checked, indexed form that services ask "may this role do this action now, and
where does the case go?".

See ``default_profile.toml`` beside this module for a complete, commented example, and
:mod:`bridge.workflow.defaults` for how a regency's section is merged over it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bridge.workflow.errors import MissingFields, TransitionNotAllowed, WorkflowProfileError

#: The action names services use (CONTRACTS.md, "Workflow"). A profile may give any of
#: them transitions; it cannot invent others, because services implement each one.
ACTIONS: tuple[str, ...] = (
    "register", "files_complete", "return_incomplete", "classify", "dispose",
    "forward_opd", "forward_body", "followup", "approve", "answer_delivered",
    "satisfied", "not_satisfied", "escalate", "close", "archive", "reopen",
)
#: Target of a transition that leaves the case where it is (a recorded step).
STAY = "stay"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
ROOT = "workflow"

Unit = Literal["working_days", "calendar_days"]
#: What starts a clock: "received" (the report reached our body: LAPOR!'s disposition
#: to us, or the date of receipt of a letter, box item or call), "filed" (the citizen's
#: filing time on LAPOR!), "registered" (the register action), "files_complete",
#: "last_followup".
CountedFrom = Literal["received", "filed", "registered", "files_complete", "last_followup"]
ApprovalKind = Literal["paraf", "tanda_tangan"]

#: Fields a document number format may use.
NUMBER_FIELDS = ("code", "year", "month", "month_roman", "seq", "document")
_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII")

UNIT_LABELS: dict[str, str] = {"working_days": "hari kerja", "calendar_days": "hari kalender"}
KIND_LABELS: dict[str, str] = {"paraf": "paraf", "tanda_tangan": "tanda tangan"}


class _Model(BaseModel):
    # A typo in a profile must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StageDeadline(_Model):
    """How long a case may stay in a stage, counted from when it entered the stage."""

    amount: int = Field(ge=0)
    unit: Unit = "working_days"
    roll_to_working_day: bool = False
    label: str | None = None


class Stage(_Model):
    label: str = Field(min_length=1)
    description: str | None = None
    #: No further handling is expected: deadlines stop, the case counts as finished.
    terminal: bool = False
    #: The complaint has been answered (or passed on); deadlines that name no ``met_on``
    #: are met when the case enters a resolved or terminal stage.
    resolved: bool = False
    deadline: StageDeadline | None = None


class Role(_Model):
    label: str = Field(min_length=1)
    #: May see a confidential (rahasia) reporter's identity. Anonymous reporters are
    #: hidden from everyone regardless.
    may_see_secret_reporter: bool = False


class Transition(_Model):
    """One way an action moves a case.

    The key in ``[workflow.transitions.<key>]`` is free; ``action`` defaults to it. Several
    transitions may share an action when they start from different stages or differ in
    ``step`` (followup: which recorded step) or ``document`` (approve: which chain).
    """

    action: str | None = None
    label: str | None = None
    from_: list[str] = Field(alias="from", min_length=1)
    #: The next stage, or "stay". For approve: where the case goes when the chain is done.
    to: str
    #: approve only: where the case goes while the chain still has steps to do.
    pending: str = STAY
    #: Roles allowed. For approve, empty means "the roles of the chain's steps".
    roles: list[str] = Field(default_factory=list)
    #: Fields the caller must supply (non-empty), e.g. "unit" for dispose.
    requires: list[str] = Field(default_factory=list)
    #: followup only: the recorded step this transition is for (a ``step_kinds`` key).
    step: str | None = None
    #: approve only: the approval chain (an ``approvals`` key) this transition signs.
    document: str | None = None


class ApprovalStep(_Model):
    role: str
    kind: ApprovalKind
    label: str | None = None


class ApprovalChain(_Model):
    """The paraf / tanda tangan sequence of one document (BAPP, surat jawaban, ...)."""

    label: str = Field(min_length=1)
    steps: list[ApprovalStep] = Field(min_length=1)
    #: The document gets a number (registrasi/penomoran) when its last step is done.
    numbered: bool = False
    #: ``str.format`` pattern; fields: code, year, month, month_roman, seq, document.
    number_format: str | None = None


class DeadlineSpec(_Model):
    """A deadline counted from an event of the case (not from a stage entry)."""

    label: str | None = None
    amount: int = Field(ge=0)
    unit: Unit = "working_days"
    counted_from: CountedFrom = "received"
    roll_to_working_day: bool = False
    #: Met when the case first enters one of these stages (default: resolved/terminal).
    met_on: list[str] | None = None
    #: Met when the case first enters a stage *not* in this list (alternative to met_on).
    pending_in: list[str] | None = None
    #: Also met by the first follow-up posted.
    met_by_followup: bool = False
    #: Applies only to cases that came through (or are mirrored on) LAPOR!.
    lapor_only: bool = False


class EscalationLevel(_Model):
    name: str
    label: str = Field(min_length=1)
    role: str
    #: Due once this many units have passed since the escalation's ``counted_from``;
    #: 0 means as soon as that moment is reached.
    after: int = Field(ge=0)
    unit: Unit = "working_days"


_ESCALATION_FROM = re.compile(
    r"^(received|filed|registered|files_complete|deadline|entered:[a-z][a-z0-9_]*)$")


class Escalation(_Model):
    """Escalation ladder: levels in rising order of ``after``."""

    #: "received", "filed", "registered", "files_complete", "deadline" (the overall
    #: deadline) or "entered:<stage>" (the last time the case entered that stage).
    counted_from: str = "received"
    levels: list[EscalationLevel] = Field(default_factory=list)

    @field_validator("counted_from")
    @classmethod
    def _basis(cls, value: str) -> str:
        if not _ESCALATION_FROM.match(value):
            raise ValueError(f"unknown basis {value!r}; expected 'received', 'filed', "
                             "'registered', 'files_complete', 'deadline' or "
                             "'entered:<stage>'")
        return value


class Deadlines(_Model):
    overall: DeadlineSpec
    escalation: Escalation = Escalation()


class SeverityClass(_Model):
    label: str = Field(min_length=1)
    description: str | None = None
    #: Roles that take part in handling a case of this class.
    handlers: list[str] = Field(min_length=1)
    #: A role whose authority the class needs (e.g. "kepala_daerah" for berat).
    escalate_to: str | None = None
    #: Replaces the overall deadline for cases of this class.
    deadline: DeadlineSpec | None = None


class StepKind(_Model):
    label: str = Field(min_length=1)


Name = Annotated[str, Field(min_length=1)]


#: Actions whose end of the story LAPOR! hears in a follow-up the profile words.
LAPOR_MESSAGE_ACTIONS = ("close", "archive", "satisfied", "not_satisfied", "reopen")
#: Fields the text of such a follow-up may use.
LAPOR_MESSAGE_FIELDS = ("register_no", "note")


class LaporMessage(_Model):
    """What LAPOR! is sent when a case ends (or starts again) here: a follow-up with the
    office's template code (e.g. ``TL-SELESAI``, which closes the report on LAPOR!), its
    text and, for the complainant's verdict, the satisfaction result as ``rating``."""

    #: The action (close, archive, satisfied, not_satisfied, reopen; default: the key).
    action: str | None = None
    #: Only when the action is done from one of these stages (default: any), e.g. an
    #: archive after forwarding ("bukan kewenangan") apart from one after the answer.
    from_: list[str] | None = Field(default=None, alias="from", min_length=1)
    send: bool = True
    template_code: str = ""
    #: Bahasa Indonesia; ``str.format`` fields: register_no, note (the staff's note).
    text: str = Field(min_length=1)
    rating: int | None = Field(default=None, ge=0, le=5)


@dataclass(frozen=True, slots=True)
class LaporPost:
    """A worded follow-up for LAPOR!, ready for the outbox."""

    action: str
    content: str
    template_code: str
    rating: int


class WorkflowProfile(_Model):
    """The ``[workflow]`` section, after merging over the default profile."""

    name: str | None = None
    initial_stage: str = "received"
    stages: dict[Name, Stage] = Field(min_length=1)
    roles: dict[Name, Role] = Field(min_length=1)
    transitions: dict[Name, Transition] = Field(min_length=1)
    approvals: dict[Name, ApprovalChain] = Field(default_factory=dict)
    classes: dict[Name, SeverityClass] = Field(default_factory=dict)
    step_kinds: dict[Name, StepKind] = Field(default_factory=dict)
    deadlines: Deadlines
    national: dict[Name, DeadlineSpec] = Field(default_factory=dict)
    #: ``[workflow.lapor.<action>]``: what LAPOR! is sent on close, archive, satisfied,
    #: not_satisfied and reopen.
    lapor: dict[Name, LaporMessage] = Field(default_factory=dict)
    #: Whether the follow-up LAPOR! gets on ``answer_delivered`` and on a forward carries
    #: the PDF of the signed document (the surat jawaban or BAPP, the surat penerusan);
    #: its number is quoted in the text either way.
    attach_documents: bool = True


# ---------------------------------------------------------------------------------------
# Parsing and checking


def _key(loc: Iterable[int | str]) -> str:
    parts = [ROOT]
    for part in loc:
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
        else:
            parts.append(str(part))
    return ".".join(parts)


def _describe(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"unknown value {err.get('input')!r}; expected {expected}"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def parse_profile(data: Mapping[str, Any]) -> WorkflowProfile:
    """Validate a merged ``[workflow]`` mapping (shape and cross-references)."""
    try:
        profile = WorkflowProfile.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise WorkflowProfileError(_key(first["loc"]), _describe(first)) from None
    _check(profile)
    return profile


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "(none)"


class _Refs:
    """A profile's cross-references, each checked under the key that names it."""

    def __init__(self, p: WorkflowProfile) -> None:
        self.p = p

    def stage(self, key: str, stage: str, *, stay: bool = False) -> None:
        if stay and stage == STAY:
            return
        if stage not in self.p.stages:
            raise WorkflowProfileError(key, f"unknown stage {stage!r}; known stages: "
                                       f"{_names(self.p.stages)}")

    def stages(self, key: str, stages: Iterable[str] | None) -> None:
        for i, stage in enumerate(stages or ()):
            self.stage(f"{key}[{i}]", stage)

    def role(self, key: str, role: str) -> None:
        if role not in self.p.roles:
            raise WorkflowProfileError(key, f"unknown role {role!r}; known roles: "
                                       f"{_names(self.p.roles)}")

    def roles(self, key: str, roles: Iterable[str]) -> None:
        for i, role in enumerate(roles):
            self.role(f"{key}[{i}]", role)


def _action(base: str, given: str | None, key: str, allowed: Sequence[str],
            known: str) -> str:
    """The action an entry is for (``given``, or else its key), which must be ``allowed``."""
    action = given or key
    if action not in allowed:
        raise WorkflowProfileError(f"{base}.action" if given else base,
                                   f"unknown action {action!r}; {known}{', '.join(allowed)}")
    return action


def _check_names(p: WorkflowProfile, ref: _Refs) -> None:
    for table in ("stages", "roles", "transitions", "approvals", "classes", "step_kinds",
                  "national"):
        for name in getattr(p, table):
            if not NAME_RE.match(name):
                raise WorkflowProfileError(
                    f"{ROOT}.{table}.{name}",
                    "names are lower-case letters, digits and _, starting with a letter")


def _check_stages(p: WorkflowProfile, ref: _Refs) -> None:
    if STAY in p.stages:
        raise WorkflowProfileError(f"{ROOT}.stages.{STAY}", f"'{STAY}' is reserved (a "
                                   "transition's 'to' that keeps the stage)")
    ref.stage(f"{ROOT}.initial_stage", p.initial_stage)


def _check_lapor(p: WorkflowProfile, ref: _Refs) -> None:
    """What LAPOR! hears at the end."""
    for key, message in p.lapor.items():
        base = f"{ROOT}.lapor.{key}"
        _action(base, message.action, key, LAPOR_MESSAGE_ACTIONS, "LAPOR! messages are for ")
        ref.stages(f"{base}.from", message.from_)
        try:
            message.text.format(**{f: "x" for f in LAPOR_MESSAGE_FIELDS})
        except KeyError as exc:
            raise WorkflowProfileError(f"{base}.text", f"unknown field {{{exc.args[0]}}}; "
                                       f"fields: {', '.join(LAPOR_MESSAGE_FIELDS)}") from None
        except (IndexError, ValueError) as exc:
            raise WorkflowProfileError(f"{base}.text",
                                       f"not a valid text pattern ({exc})") from None


def _check_transition(p: WorkflowProfile, ref: _Refs, base: str, action: str,
                      t: Transition) -> None:
    err = WorkflowProfileError
    ref.stages(f"{base}.from", t.from_)
    ref.stage(f"{base}.to", t.to, stay=True)
    ref.roles(f"{base}.roles", t.roles)
    if action == "approve":
        if t.document is None:
            raise err(f"{base}.document", "an approve transition must name the "
                      f"approval chain it signs; known: {_names(p.approvals)}")
        if t.document not in p.approvals:
            raise err(f"{base}.document", f"unknown approval chain {t.document!r}; "
                      f"known: {_names(p.approvals)}")
        ref.stage(f"{base}.pending", t.pending, stay=True)
    else:
        if t.document is not None:
            raise err(f"{base}.document", "only approve transitions name a document")
        if t.pending != STAY:
            raise err(f"{base}.pending", "only approve transitions have a pending stage")
        if not t.roles:
            raise err(f"{base}.roles", "no role may perform this transition; list at "
                      "least one")
    if t.step is not None:
        if action != "followup":
            raise err(f"{base}.step", "only followup transitions name a step")
        if t.step not in p.step_kinds:
            raise err(f"{base}.step", f"unknown step kind {t.step!r}; known: "
                      f"{_names(p.step_kinds)}")


def _check_transitions(p: WorkflowProfile, ref: _Refs) -> None:
    seen: dict[tuple[str, str, str | None, str | None], str] = {}
    for tkey, t in p.transitions.items():
        base = f"{ROOT}.transitions.{tkey}"
        action = _action(base, t.action, tkey, ACTIONS, "known actions: ")
        _check_transition(p, ref, base, action, t)
        for stage in t.from_:
            ident = (action, stage, t.step, t.document)
            other = seen.get(ident)
            if other is not None:
                raise WorkflowProfileError(
                    f"{base}.from", f"action {action!r} from stage {stage!r} is already "
                    f"defined by transitions.{other}; give them different stages, steps "
                    "or documents")
            seen[ident] = tkey


def _check_approvals(p: WorkflowProfile, ref: _Refs) -> None:
    err = WorkflowProfileError
    fields = "fields: " + ", ".join(NUMBER_FIELDS)
    used_chains = {t.document for t in p.transitions.values() if t.document}
    for ckey, chain in p.approvals.items():
        base = f"{ROOT}.approvals.{ckey}"
        for i, step in enumerate(chain.steps):
            ref.role(f"{base}.steps[{i}].role", step.role)
        if chain.numbered and not chain.number_format:
            raise err(f"{base}.number_format", f"a numbered document needs a number_format "
                      f"({fields})")
        if chain.number_format:
            if "{seq" not in chain.number_format:
                raise err(f"{base}.number_format", "must contain {seq} so that numbers "
                          "are unique")
            try:
                _format_number(chain.number_format, ckey, 1, code="X", year=2026, month=1)
            except (KeyError, IndexError, ValueError) as exc:
                raise err(f"{base}.number_format", f"not a valid format pattern ({exc}); "
                          f"{fields}") from None
        if ckey not in used_chains:
            raise err(base, "not used by any approve transition")


def _check_classes(p: WorkflowProfile, ref: _Refs) -> None:
    for ckey, cls in p.classes.items():
        base = f"{ROOT}.classes.{ckey}"
        ref.roles(f"{base}.handlers", cls.handlers)
        if cls.escalate_to is not None:
            ref.role(f"{base}.escalate_to", cls.escalate_to)
        if cls.deadline is not None:
            _check_deadline(ref, f"{base}.deadline", cls.deadline)


def _check_deadlines(p: WorkflowProfile, ref: _Refs) -> None:
    _check_deadline(ref, f"{ROOT}.deadlines.overall", p.deadlines.overall)
    esc = p.deadlines.escalation
    base = f"{ROOT}.deadlines.escalation"
    if esc.counted_from.startswith("entered:"):
        ref.stage(f"{base}.counted_from", esc.counted_from.split(":", 1)[1])
    names: set[str] = set()
    previous: EscalationLevel | None = None
    for i, level in enumerate(esc.levels):
        lbase = f"{base}.levels[{i}]"
        ref.role(f"{lbase}.role", level.role)
        if level.name in names:
            raise WorkflowProfileError(f"{lbase}.name", f"duplicate level name {level.name!r}")
        names.add(level.name)
        if previous is not None and level.unit == previous.unit and \
                level.after <= previous.after:
            raise WorkflowProfileError(f"{lbase}.after", f"levels must rise: {level.after} "
                                       f"is not after the previous level's {previous.after}")
        previous = level


def _check_national(p: WorkflowProfile, ref: _Refs) -> None:
    for nkey, spec in p.national.items():
        _check_deadline(ref, f"{ROOT}.national.{nkey}", spec)


def _check_deadline(ref: _Refs, base: str, spec: DeadlineSpec) -> None:
    if spec.met_on is not None and spec.pending_in is not None:
        raise WorkflowProfileError(base, "give either met_on or pending_in, not both")
    ref.stages(f"{base}.met_on", spec.met_on)
    ref.stages(f"{base}.pending_in", spec.pending_in)
    if spec.roll_to_working_day and spec.unit != "calendar_days":
        raise WorkflowProfileError(f"{base}.roll_to_working_day",
                                   "only calendar_days deadlines roll to a working day")


def _check_reachable(p: WorkflowProfile, ref: _Refs) -> None:
    """Every stage can be reached from the initial stage."""
    reached = {p.initial_stage}
    frontier = [p.initial_stage]
    while frontier:
        stage = frontier.pop()
        for t in p.transitions.values():
            if stage in t.from_:
                for target in (t.to, t.pending):
                    if target != STAY and target not in reached:
                        reached.add(target)
                        frontier.append(target)
    for name in p.stages:
        if name not in reached:
            raise WorkflowProfileError(f"{ROOT}.stages.{name}", f"unreachable from the "
                                       f"initial stage {p.initial_stage!r}: no transition "
                                       "leads to it")


def _check_exits(p: WorkflowProfile, ref: _Refs) -> None:
    """A non-terminal stage must have a way out, or cases would be stuck in it."""
    for name, stage_def in p.stages.items():
        if stage_def.terminal:
            continue
        leaves = any(
            name in t.from_ and any(x not in (STAY, name) for x in (t.to, t.pending))
            for t in p.transitions.values()
        )
        if not leaves:
            raise WorkflowProfileError(f"{ROOT}.stages.{name}", "non-terminal stage with no "
                                       "transition to another stage (add one, or set "
                                       "terminal = true)")


def _check_roles_used(p: WorkflowProfile, ref: _Refs) -> None:
    """Every role must do something, so that a misspelt role name is caught here."""
    used_roles: set[str] = set()
    for t in p.transitions.values():
        used_roles.update(t.roles)
    for chain in p.approvals.values():
        used_roles.update(s.role for s in chain.steps)
    for cls in p.classes.values():
        used_roles.update(cls.handlers)
        if cls.escalate_to:
            used_roles.add(cls.escalate_to)
    used_roles.update(level.role for level in p.deadlines.escalation.levels)
    for name in p.roles:
        if name not in used_roles:
            raise WorkflowProfileError(f"{ROOT}.roles.{name}", "not used by any transition, "
                                       "approval step, class or escalation level")


#: The checks, one per section, in the order a profile's first problem is reported: names
#: first, cross-references next, and last the rules that need every section to be sound.
_SECTIONS: tuple[Callable[[WorkflowProfile, _Refs], None], ...] = (
    _check_names, _check_stages, _check_lapor, _check_transitions, _check_approvals,
    _check_classes, _check_deadlines, _check_national, _check_reachable, _check_exits,
    _check_roles_used,
)


def _check(p: WorkflowProfile) -> None:
    ref = _Refs(p)
    for section in _SECTIONS:
        section(p, ref)


def _format_number(pattern: str, document: str, seq: int, *, code: str, year: int,
                   month: int) -> str:
    return pattern.format(code=code, year=year, month=month, month_roman=_ROMAN[month - 1],
                          seq=seq, document=document)


# ---------------------------------------------------------------------------------------
# The checked workflow


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled transition."""

    key: str
    action: str
    from_stages: tuple[str, ...]
    to: str
    pending: str
    roles: frozenset[str]
    requires: tuple[str, ...]
    step: str | None
    document: str | None
    label: str | None


@dataclass(frozen=True, slots=True)
class ApprovalPosition:
    """The next step of an approval chain."""

    document: str
    index: int  # 0-based position in the chain
    role: str
    kind: ApprovalKind
    is_last: bool
    #: The document gets its number at this step (the last step of a numbered chain).
    assigns_number: bool


@dataclass(frozen=True, slots=True)
class Move:
    """What an allowed action does: the rule that matched and the resulting stage."""

    action: str
    from_stage: str
    to_stage: str
    rule: Rule
    approval: ApprovalPosition | None = None

    @property
    def stays(self) -> bool:
        return self.to_stage == self.from_stage


_T = TypeVar("_T")


def _known(table: Mapping[str, _T], name: str, unknown: str) -> _T:
    """``table[name]``; else :class:`TransitionNotAllowed`: ``unknown`` and the known names."""
    found = table.get(name)
    if found is None:
        raise TransitionNotAllowed(unknown + _names(table))
    return found


class Workflow:
    """A checked profile, indexed for the questions services ask. Immutable."""

    def __init__(self, profile: WorkflowProfile) -> None:
        _check(profile)
        self.profile = profile
        self.initial_stage = profile.initial_stage
        rules: list[Rule] = []
        for key, t in profile.transitions.items():
            action = t.action or key
            roles = set(t.roles)
            if action == "approve" and not roles and t.document:
                roles = {s.role for s in profile.approvals[t.document].steps}
            rules.append(Rule(
                key=key, action=action, from_stages=tuple(t.from_), to=t.to,
                pending=t.pending, roles=frozenset(roles), requires=tuple(t.requires),
                step=t.step, document=t.document, label=t.label,
            ))
        self.rules: tuple[Rule, ...] = tuple(rules)
        by_stage: dict[str, list[Rule]] = {s: [] for s in profile.stages}
        for rule in rules:
            for stage in rule.from_stages:
                by_stage[stage].append(rule)
        self._by_stage = {s: tuple(r) for s, r in by_stage.items()}
        # Answers of permits(): triage asks the same few questions for every case of a
        # burst, and a refusal builds a whole explanation to throw away.
        self._permitted: dict[tuple[str, str, str, frozenset[str] | None], bool] = {}
        self._actions: dict[tuple[str, str], tuple[str, ...]] = {}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Workflow:
        """From a complete ``[workflow]`` mapping (no merge; see ``defaults.build_workflow``)."""
        return cls(parse_profile(data))

    # -- lookups -----------------------------------------------------------------------

    @property
    def stages(self) -> Mapping[str, Stage]:
        return self.profile.stages

    @property
    def roles(self) -> Mapping[str, Role]:
        return self.profile.roles

    def _stage(self, stage: str) -> Stage:
        return _known(self.profile.stages, stage, f"stage {stage!r} is not defined in this "
                      "workflow profile; known stages: ")

    def is_terminal(self, stage: str) -> bool:
        return self._stage(stage).terminal

    def is_resolved(self, stage: str) -> bool:
        """Answered or passed on: a resolved or terminal stage."""
        s = self._stage(stage)
        return s.terminal or s.resolved

    def stage_label(self, stage: str) -> str:
        """Indonesian label; an unknown stage (e.g. from an older profile) shows its name."""
        found = self.profile.stages.get(stage)
        return found.label if found else stage

    def role_label(self, role: str) -> str:
        found = self.profile.roles.get(role)
        return found.label if found else role

    def may_see_secret_reporter(self, role: str) -> bool:
        found = self.profile.roles.get(role)
        return bool(found and found.may_see_secret_reporter)

    def class_handlers(self, severity: str) -> list[str]:
        return list(self._class(severity).handlers)

    def class_escalates_to(self, severity: str) -> str | None:
        return self._class(severity).escalate_to

    def _class(self, severity: str) -> SeverityClass:
        return _known(self.profile.classes, severity,
                      f"unknown class {severity!r}; known classes: ")

    def rules_from(self, stage: str, role: str | None = None) -> list[Rule]:
        """Transitions that start in ``stage`` (for ``role``, if given), in profile order."""
        self._stage(stage)
        return [r for r in self._by_stage[stage] if role is None or role in r.roles]

    # -- approval chains ---------------------------------------------------------------

    def approval_chain(self, document: str) -> ApprovalChain:
        return _known(self.profile.approvals, document,
                      f"unknown document {document!r}; known approval chains: ")

    def next_approval_step(self, document: str, done: Sequence[str]) -> ApprovalPosition | None:
        """The step after ``done`` (roles that approved, in order); ``None`` when complete.

        ``done`` counts approvals since the current draft entered the chain: services drop
        earlier approvals when a draft goes back for revision.
        """
        chain = self.approval_chain(document)
        steps = chain.steps
        if len(done) > len(steps):
            raise TransitionNotAllowed(f"approval of {document!r} has {len(steps)} steps, "
                                       f"but {len(done)} are recorded as done")
        for i, role in enumerate(done):
            if steps[i].role != role:
                raise TransitionNotAllowed(
                    f"approval of {document!r}: step {i + 1} is {steps[i].kind} by "
                    f"{steps[i].role!r}, but the record says {role!r}")
        if len(done) == len(steps):
            return None
        i = len(done)
        last = i == len(steps) - 1
        return ApprovalPosition(document=document, index=i, role=steps[i].role,
                                kind=steps[i].kind, is_last=last,
                                assigns_number=last and chain.numbered)

    def format_document_number(self, document: str, seq: int, *, code: str, year: int,
                               month: int) -> str:
        """The number of a numbered document, e.g. ``"180/012/DPMPTSP/VIII/2026"``."""
        chain = self.approval_chain(document)
        if not chain.numbered or not chain.number_format:
            raise TransitionNotAllowed(f"document {document!r} is not numbered")
        return _format_number(chain.number_format, document, seq, code=code, year=year,
                              month=month)

    # -- the questions -----------------------------------------------------------------

    def allowed_actions(self, stage: str, role: str, *,
                        approvals_done: Mapping[str, Sequence[str]] | None = None) -> list[str]:
        """Action names ``role`` may perform in ``stage`` (each once, in profile order).

        Without ``approvals_done`` an approve is listed for every role of the chain; with
        it (document -> roles done), only for the role whose turn it is.
        """
        if approvals_done is None:
            known = self._actions.get((stage, role))
            if known is None:
                known = self._actions[(stage, role)] = tuple(
                    self._allowed_actions(stage, role, None))
            return list(known)
        return self._allowed_actions(stage, role, approvals_done)

    def _allowed_actions(self, stage: str, role: str,
                         approvals_done: Mapping[str, Sequence[str]] | None) -> list[str]:
        out: list[str] = []
        for rule in self.rules_from(stage, role):
            if rule.action == "approve" and approvals_done is not None and rule.document:
                try:
                    nxt = self.next_approval_step(rule.document,
                                                  approvals_done.get(rule.document, ()))
                except TransitionNotAllowed:
                    continue
                if nxt is None or nxt.role != role:
                    continue
            if rule.action not in out:
                out.append(rule.action)
        return out

    def permits(self, action: str, stage: str, role: str,
                fields: Mapping[str, Any] | None = None) -> bool:
        """Whether :meth:`plan` (no step, document or approvals done) allows ``action``:
        the answer depends only on which ``fields`` are given non-empty, so it is kept."""
        present = (None if fields is None
                   else frozenset(k for k, v in fields.items() if not _empty(v)))
        key = (action, stage, role, present)
        answer = self._permitted.get(key)
        if answer is None:
            try:
                self.plan(action, stage, role, fields=fields)
            except TransitionNotAllowed:
                answer = False
            else:
                answer = True
            self._permitted[key] = answer
        return answer

    def lapor_message(self, action: str, from_stage: str, register_no: str,
                      note: str | None) -> LaporPost | None:
        """The follow-up LAPOR! is sent when ``action`` is done in ``from_stage``: the
        first ``[workflow.lapor.*]`` entry for the action whose ``from`` holds the stage
        (or that has none); ``None`` when the profile sends nothing for it."""
        message = next((m for key, m in self.profile.lapor.items()
                        if (m.action or key) == action
                        and (m.from_ is None or from_stage in m.from_)), None)
        if message is None or not message.send:
            return None
        text = message.text.format(register_no=register_no, note=(note or "").strip())
        # An empty {note} leaves a double space or a trailing one behind: tidy them.
        return LaporPost(action, re.sub(r"[ \t]{2,}", " ", text).strip(), message.template_code,
                         message.rating or 0)

    def reclassification(self, stage: str, role: str) -> Move | None:
        """Correcting the class of a case already classified, in a handling stage the
        profile's classify rules do not start from: the case stays where it is. ``None``
        in a resolved or terminal stage, where a classify rule applies (:meth:`plan`
        decides then), or for a role the classify rules do not name."""
        return self._in_place("classify", stage, role, "reclassify", "Klasifikasi ulang",
                              ("severity",))

    def overdue_escalation(self, stage: str, role: str) -> Move | None:
        """The escalation of an overdue case in ``stage`` where the profile gives no
        escalate rule (e.g. a case nobody registered): it goes up the chain all the
        same, staying in its stage, so the most neglected complaint still reaches the
        next level. ``None`` in a resolved or terminal stage, or when the profile has an
        escalate rule here (:meth:`plan` decides then), or for a role the profile's
        escalate rules do not name."""
        return self._in_place("escalate", stage, role, "escalate_overdue",
                              "Eskalasi karena melewati batas waktu", ())

    def _in_place(self, action: str, stage: str, role: str, key: str, label: str,
                  requires: tuple[str, ...]) -> Move | None:
        """``action`` taken where the case stands, by a role the profile's rules for that
        action name, in an open stage none of those rules starts from."""
        if stage not in self.profile.stages or self.is_resolved(stage):
            return None
        if any(r.action == action for r in self._by_stage[stage]):
            return None
        roles = frozenset().union(*(r.roles for r in self.rules if r.action == action))
        if role not in roles:
            return None
        rule = Rule(key=key, action=action, from_stages=(stage,), to=STAY, pending=STAY,
                    roles=roles, requires=requires, step=None, document=None, label=label)
        return Move(action, stage, stage, rule)

    def plan(self, action: str, stage: str, role: str, *, step: str | None = None,
             document: str | None = None, approvals_done: Sequence[str] = (),
             fields: Mapping[str, Any] | None = None) -> Move:
        """Check ``action`` and say what it does; raises :class:`TransitionNotAllowed`.

        ``step``: for followup, the recorded step (a step kind). ``document``: for approve,
        the chain (optional when one approve leaves the stage). ``approvals_done``: roles
        that already approved that document. ``fields``: when given, the rule's required
        fields must be present and non-empty (:class:`MissingFields` otherwise).
        """
        if action not in ACTIONS:
            raise TransitionNotAllowed(f"unknown action {action!r}; known actions: "
                                       f"{', '.join(ACTIONS)}")
        here = self._stage(stage)
        if role not in self.profile.roles:
            raise TransitionNotAllowed(f"role {role!r} is not defined in this workflow "
                                       f"profile; known roles: {_names(self.profile.roles)}")
        where = f"stage {stage!r} ({here.label})"
        candidates = [r for r in self._by_stage[stage] if r.action == action]
        if not candidates:
            possible = sorted({r.action for r in self._by_stage[stage]})
            terminal = " (a terminal stage)" if here.terminal else ""
            raise TransitionNotAllowed(
                f"action {action!r} is not allowed in {where}{terminal}; actions allowed in "
                f"this stage: {', '.join(possible) or '(none)'}")
        rule = self._select(action, where, candidates, step, document)
        if role not in rule.roles:
            mine = self.allowed_actions(stage, role)
            raise TransitionNotAllowed(
                f"role {role!r} may not perform {action!r} in {where}; roles allowed: "
                f"{_names(rule.roles)}; this role may here: {', '.join(mine) or '(nothing)'}")
        approval: ApprovalPosition | None = None
        target = rule.to
        if rule.action == "approve" and rule.document:
            approval = self.next_approval_step(rule.document, approvals_done)
            if approval is None:
                raise TransitionNotAllowed(f"approval of {rule.document!r} is already "
                                           f"complete in {where}")
            if approval.role != role:
                raise TransitionNotAllowed(
                    f"approval of {rule.document!r} is waiting for step {approval.index + 1} "
                    f"({approval.kind} by {approval.role!r}), not for {role!r}")
            target = rule.to if approval.is_last else rule.pending
        if fields is not None:
            given = dict(fields)
            if document is not None:
                given.setdefault("document", document)
            if step is not None:
                given.setdefault("step", step)
            missing = tuple(f for f in rule.requires if _empty(given.get(f)))
            if missing:
                raise MissingFields(f"action {action!r} in {where} needs "
                                    f"{', '.join(missing)}", missing)
        return Move(action=action, from_stage=stage,
                    to_stage=stage if target == STAY else target, rule=rule,
                    approval=approval)

    def check(self, action: str, stage: str, role: str, *, step: str | None = None,
              document: str | None = None, approvals_done: Sequence[str] = (),
              fields: Mapping[str, Any] | None = None) -> str:
        """The stage after ``action``; raises :class:`TransitionNotAllowed` when not allowed."""
        return self.plan(action, stage, role, step=step, document=document,
                         approvals_done=approvals_done, fields=fields).to_stage

    def _select(self, action: str, where: str, candidates: list[Rule], step: str | None,
                document: str | None) -> Rule:
        if action == "approve":
            if document is None:
                if len(candidates) == 1:
                    return candidates[0]
                raise TransitionNotAllowed(
                    f"approve in {where} needs the document: one of "
                    f"{_names(r.document or '' for r in candidates)}")
            for rule in candidates:
                if rule.document == document:
                    return rule
            raise TransitionNotAllowed(
                f"document {document!r} is not approved in {where}; documents here: "
                f"{_names(r.document or '' for r in candidates)}")
        if step is not None:
            for rule in candidates:
                if rule.step == step:
                    return rule
            if step not in self.profile.step_kinds:
                raise TransitionNotAllowed(f"unknown step {step!r}; known steps: "
                                           f"{_names(self.profile.step_kinds)}")
        for rule in candidates:
            if rule.step is None:
                return rule
        steps = _names(r.step or "" for r in candidates)
        if step is None:
            raise TransitionNotAllowed(f"action {action!r} in {where} needs a step: one of "
                                       f"{steps}")
        raise TransitionNotAllowed(f"step {step!r} of {action!r} is not allowed in {where}; "
                                   f"steps here: {steps}")


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, dict, set)):
        return not value
    return False
