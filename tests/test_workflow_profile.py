"""Workflow profiles: validation errors, merge over the default, the default's transitions."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from bridge.workflow import (
    ACTIONS,
    MissingFields,
    TransitionNotAllowed,
    Workflow,
    WorkflowProfileError,
    build_workflow,
    default_profile_data,
    default_workflow,
    merge_profile,
)


def minimal() -> dict[str, Any]:
    """A small valid profile; each error test breaks it in one place."""
    return {
        "initial_stage": "received",
        "stages": {
            "received": {"label": "Diterima"},
            "handling": {"label": "Dalam penanganan"},
            "closed": {"label": "Selesai", "terminal": True},
        },
        "roles": {
            "petugas": {"label": "Petugas", "may_see_secret_reporter": True},
            "kadis": {"label": "Kepala Dinas"},
        },
        "step_kinds": {"kajian": {"label": "Kajian"}},
        "transitions": {
            "register": {"from": ["received"], "to": "handling", "roles": ["petugas"]},
            "followup": {"from": ["handling"], "to": "stay", "roles": ["petugas"],
                         "requires": ["content"]},
            "approve": {"from": ["handling"], "to": "closed", "document": "surat"},
        },
        "approvals": {"surat": {"label": "Surat jawaban",
                                "steps": [{"role": "kadis", "kind": "tanda_tangan"}]}},
        "deadlines": {"overall": {"amount": 14, "unit": "calendar_days"}},
    }


def test_minimal_profile_is_valid() -> None:
    wf = Workflow.from_mapping(minimal())
    assert wf.check("register", "received", "petugas") == "handling"
    assert wf.check("followup", "handling", "petugas", step="kajian") == "handling"
    assert wf.check("approve", "handling", "kadis") == "closed"
    assert wf.may_see_secret_reporter("petugas")
    assert not wf.may_see_secret_reporter("kadis")


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(p: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = p
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return apply


def _delete(path: str) -> Mutation:
    def apply(p: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = p
        for part in parents:
            node = node[part]
        del node[last]
    return apply


def _both(*mutations: Mutation) -> Mutation:
    def apply(p: dict[str, Any]) -> None:
        for m in mutations:
            m(p)
    return apply


ERRORS: list[tuple[str, Mutation, str, str]] = [
    ("unreachable stage", _set("stages.limbo", {"label": "Limbo"}),
     "workflow.stages.limbo", "unreachable from the initial stage 'received'"),
    ("transition to an unknown stage", _set("transitions.register.to", "handeling"),
     "workflow.transitions.register.to", "unknown stage 'handeling'; known stages: closed, "
     "handling, received"),
    ("transition from an unknown stage", _set("transitions.followup.from", ["nowhere"]),
     "workflow.transitions.followup.from[0]", "unknown stage 'nowhere'"),
    ("overall deadline in unknown units", _set("deadlines.overall.unit", "weeks"),
     "workflow.deadlines.overall.unit",
     "unknown value 'weeks'; expected 'working_days' or 'calendar_days'"),
    ("stage deadline in unknown units",
     _set("stages.handling.deadline", {"amount": 5, "unit": "hari"}),
     "workflow.stages.handling.deadline.unit", "unknown value 'hari'"),
    ("escalation level in unknown units",
     _set("deadlines.escalation", {"levels": [
         {"name": "kadis", "label": "Kadis", "role": "kadis", "after": 5, "unit": "jam"}]}),
     "workflow.deadlines.escalation.levels[0].unit", "unknown value 'jam'"),
    ("unknown counted_from", _set("deadlines.overall.counted_from", "lengkap"),
     "workflow.deadlines.overall.counted_from", "unknown value 'lengkap'"),
    ("a role no step uses", _set("roles.sekretaris", {"label": "Sekretaris"}),
     "workflow.roles.sekretaris",
     "not used by any transition, approval step, class or escalation level"),
    ("unknown action (key)", _set("transitions.verify",
                                  {"from": ["handling"], "to": "closed", "roles": ["kadis"]}),
     "workflow.transitions.verify", "unknown action 'verify'; known actions: register"),
    ("unknown action (action key)", _set("transitions.register.action", "regster"),
     "workflow.transitions.register.action", "unknown action 'regster'"),
    ("unknown key", _set("stages.handling.colour", "red"),
     "workflow.stages.handling.colour", "unknown key"),
    ("missing key", _delete("stages.handling.label"),
     "workflow.stages.handling.label", "missing required key"),
    ("unknown initial stage", _set("initial_stage", "masuk"),
     "workflow.initial_stage", "unknown stage 'masuk'"),
    ("unknown role in a transition", _set("transitions.register.roles", ["admin"]),
     "workflow.transitions.register.roles[0]", "unknown role 'admin'; known roles: kadis, "
     "petugas"),
    ("unknown role in an approval step",
     _set("approvals.surat.steps", [{"role": "bupati", "kind": "tanda_tangan"}]),
     "workflow.approvals.surat.steps[0].role", "unknown role 'bupati'"),
    ("unknown approval kind",
     _set("approvals.surat.steps", [{"role": "kadis", "kind": "stempel"}]),
     "workflow.approvals.surat.steps[0].kind", "unknown value 'stempel'"),
    ("ambiguous transitions",
     _set("transitions.note", {"action": "followup", "from": ["handling"], "to": "stay",
                               "roles": ["kadis"]}),
     "workflow.transitions.note.from", "already defined by transitions.followup"),
    ("approve without a document", _delete("transitions.approve.document"),
     "workflow.transitions.approve.document", "must name the approval chain"),
    ("approve with an unknown document", _set("transitions.approve.document", "bapp"),
     "workflow.transitions.approve.document", "unknown approval chain 'bapp'"),
    ("document on another action", _set("transitions.register.document", "surat"),
     "workflow.transitions.register.document", "only approve transitions name a document"),
    ("transition without roles", _set("transitions.register.roles", []),
     "workflow.transitions.register.roles", "no role may perform"),
    ("unknown step", _set("transitions.followup.step", "sidak"),
     "workflow.transitions.followup.step", "unknown step kind 'sidak'"),
    ("step on another action", _set("transitions.register.step", "kajian"),
     "workflow.transitions.register.step", "only followup transitions name a step"),
    ("dead-end stage", _set("stages.closed.terminal", False),
     "workflow.stages.closed", "non-terminal stage with no transition to another stage"),
    ("stuck in a stay-only stage", _set("transitions.approve.from", ["received"]),
     "workflow.stages.handling", "non-terminal stage with no transition"),
    ("unused approval chain", _set("approvals.bapp", {
        "label": "BAPP", "steps": [{"role": "kadis", "kind": "tanda_tangan"}]}),
     "workflow.approvals.bapp", "not used by any approve transition"),
    ("numbered without format", _set("approvals.surat.numbered", True),
     "workflow.approvals.surat.number_format", "needs a number_format"),
    ("bad number format", _set("approvals.surat.number_format", "{seq:03d}/{nomor}"),
     "workflow.approvals.surat.number_format", "not a valid format pattern"),
    ("number format without seq", _set("approvals.surat.number_format", "{code}/{year}"),
     "workflow.approvals.surat.number_format", "must contain {seq}"),
    ("met_on unknown stage", _set("deadlines.overall.met_on", ["selesai"]),
     "workflow.deadlines.overall.met_on[0]", "unknown stage 'selesai'"),
    ("met_on and pending_in", _both(_set("deadlines.overall.met_on", ["closed"]),
                                    _set("deadlines.overall.pending_in", ["received"])),
     "workflow.deadlines.overall", "either met_on or pending_in"),
    ("roll on working days", _set("deadlines.overall", {
        "amount": 5, "unit": "working_days", "roll_to_working_day": True}),
     "workflow.deadlines.overall.roll_to_working_day", "only calendar_days"),
    ("escalation basis unknown", _set("deadlines.escalation", {"counted_from": "kemarin"}),
     "workflow.deadlines.escalation.counted_from", "unknown basis 'kemarin'"),
    ("escalation basis unknown stage",
     _set("deadlines.escalation", {"counted_from": "entered:escalated"}),
     "workflow.deadlines.escalation.counted_from", "unknown stage 'escalated'"),
    ("escalation levels not rising", _set("deadlines.escalation", {"levels": [
        {"name": "a", "label": "A", "role": "kadis", "after": 8},
        {"name": "b", "label": "B", "role": "petugas", "after": 5}]}),
     "workflow.deadlines.escalation.levels[1].after", "levels must rise"),
    ("escalation level unknown role", _set("deadlines.escalation", {"levels": [
        {"name": "tpp", "label": "TPP", "role": "tpp", "after": 5}]}),
     "workflow.deadlines.escalation.levels[0].role", "unknown role 'tpp'"),
    ("class handler unknown", _set("classes.ringan", {"label": "Ringan",
                                                      "handlers": ["loket"]}),
     "workflow.classes.ringan.handlers[0]", "unknown role 'loket'"),
    ("class without handlers", _set("classes.ringan", {"label": "Ringan", "handlers": []}),
     "workflow.classes.ringan.handlers", "at least 1 item"),
    ("negative amount", _set("deadlines.overall.amount", -1),
     "workflow.deadlines.overall.amount", "greater than or equal to 0"),
    ("bad name", _set("stages.Ditutup", {"label": "Ditutup", "terminal": True}),
     "workflow.stages.Ditutup", "lower-case letters"),
    ("reserved stage name", _set("stages.stay", {"label": "Tetap", "terminal": True}),
     "workflow.stages.stay", "reserved"),
]


@pytest.mark.parametrize(("mutate", "key", "problem"), [e[1:] for e in ERRORS],
                         ids=[e[0] for e in ERRORS])
def test_profile_errors_name_key_and_problem(mutate: Mutation, key: str, problem: str) -> None:
    data = minimal()
    mutate(data)
    with pytest.raises(WorkflowProfileError) as info:
        Workflow.from_mapping(data)
    assert info.value.key == key, str(info.value)
    assert problem in info.value.problem, str(info.value)
    assert str(info.value) == f"{key}: {info.value.problem}"


# --- merge semantics ----------------------------------------------------------------------


def test_merge_leaves_its_inputs_alone() -> None:
    base = default_profile_data()
    snapshot = copy.deepcopy(base)
    override = {"stages": {"handling": {"label": "Ditangani"}}}
    merged = merge_profile(base, override)
    assert base == snapshot
    assert override == {"stages": {"handling": {"label": "Ditangani"}}}
    assert merged["stages"]["handling"]["label"] == "Ditangani"
    # Sibling keys of the overridden one keep the default's values.
    assert merged["stages"]["handling"]["description"] == snapshot["stages"]["handling"][
        "description"]
    assert merged["stages"]["received"] == snapshot["stages"]["received"]


def test_empty_section_is_the_default() -> None:
    assert build_workflow(None) is default_workflow()
    assert build_workflow({}) is default_workflow()


def test_arrays_replace_whole() -> None:
    # Klaten answers on the spot when it can: delivery straight from handling.
    wf = build_workflow({"transitions": {"answer_delivered": {
        "from": ["answer_approved", "handling"]}}})
    assert wf.check("answer_delivered", "handling", "petugas") == "answer_delivered"
    assert wf.check("answer_delivered", "answer_approved", "petugas") == "answer_delivered"
    steps = build_workflow({"approvals": {"surat_jawaban": {"steps": [
        {"role": "kepala_dinas", "kind": "tanda_tangan"}]}}})
    pos = steps.next_approval_step("surat_jawaban", [])
    assert pos is not None and pos.role == "kepala_dinas" and pos.is_last


def test_drop_removes_an_entry_and_validation_names_what_still_refers_to_it() -> None:
    with pytest.raises(WorkflowProfileError) as info:
        build_workflow({"stages": {"classified": {"drop": True}}})
    assert info.value.key == "workflow.transitions.classify.to"
    assert "unknown stage 'classified'" in info.value.problem

    data = tomllib.loads("""
[workflow.stages.classified]
drop = true
[workflow.transitions.classify]
drop = true
[workflow.transitions.dispose]
from = ["verified", "escalated"]
[workflow.transitions.forward_opd]
from = ["verified"]
[workflow.transitions.forward_body]
from = ["registered", "verified"]
[workflow.transitions.escalate]
from = ["registered", "verified", "handling", "answer_drafted", "in_approval",
        "answer_approved"]
""")
    wf = build_workflow(data["workflow"])
    assert "classified" not in wf.stages
    assert wf.check("dispose", "verified", "kasi") == "handling"
    assert "classify" not in wf.allowed_actions("verified", "analis")


def test_replace_discards_the_default_table() -> None:
    wf = build_workflow({"classes": {"replace": True,
                                     "umum": {"label": "Umum", "handlers": ["analis"]},
                                     "khusus": {"label": "Khusus", "handlers": ["kasi"],
                                                "escalate_to": "kepala_daerah"}}})
    assert list(wf.profile.classes) == ["umum", "khusus"]
    assert wf.profile.stages == default_workflow().profile.stages


def test_replace_can_make_a_role_unused() -> None:
    with pytest.raises(WorkflowProfileError) as info:
        build_workflow({"classes": {"replace": True,
                                    "umum": {"label": "Umum", "handlers": ["analis"]}},
                        "roles": {"penangan": {"drop": True}},
                        "transitions": {"followup": {"roles": ["analis", "kasi"]}}})
    assert info.value.key == "workflow.roles.kepala_daerah"


@pytest.mark.parametrize(("override", "key", "problem"), [
    ({"stages": {"pending": {"drop": True}}}, "workflow.stages.pending",
     "drop = true names nothing in the default profile"),
    ({"stages": {"handling": {"drop": True, "label": "x"}}}, "workflow.stages.handling.drop",
     "{ drop = true } and nothing else"),
    ({"drop": True}, "workflow.drop", "inside the entry"),
    ({"classes": {"replace": False}}, "workflow.classes.replace", "may only be true"),
    ({"classes": {"replace": True, "ringan": {"drop": True}}}, "workflow.classes.ringan",
     "names nothing"),
    ({"stages": {"handling": {"lable": "Ditangani"}}}, "workflow.stages.handling.lable",
     "unknown key"),
    ({"transitions": {"approve": {"from": "in_approval"}}}, "workflow.transitions.approve.from",
     "valid list"),
])
def test_merge_errors(override: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(WorkflowProfileError) as info:
        build_workflow(override)
    assert info.value.key == key, str(info.value)
    assert problem in info.value.problem, str(info.value)


def test_a_regency_adds_an_approval_chain_for_forwarding_letters() -> None:
    # Situbondo: a forwarding letter is drafted by the Kasi, initialled by the Kabid and
    # signed by the Kepala Dinas before it goes to the OPD with tembusan to the complainant.
    data = tomllib.loads("""
[workflow.stages.forward_drafted]
label = "Konsep surat penerusan"

[workflow.transitions.forward_opd]
to = "forward_drafted"

[workflow.transitions.approve_forward]
action = "approve"
document = "surat_penerusan"
from = ["forward_drafted"]
to = "forwarded"

[workflow.approvals.surat_penerusan]
label = "Surat Penerusan Pengaduan"
numbered = true
number_format = "180/{seq:03d}/DPMPTSP/{year}"
steps = [{ role = "kabid", kind = "paraf" }, { role = "kepala_dinas", kind = "tanda_tangan" }]
""")
    wf = build_workflow(data["workflow"])
    assert wf.check("forward_opd", "classified", "kasi", fields={"target": "DLH"}) == \
        "forward_drafted"
    assert wf.check("approve", "forward_drafted", "kabid") == "forward_drafted"
    move = wf.plan("approve", "forward_drafted", "kepala_dinas", approvals_done=["kabid"])
    assert move.to_stage == "forwarded"
    assert move.approval is not None and move.approval.assigns_number
    assert wf.format_document_number("surat_penerusan", 7, code="X", year=2026, month=3) == \
        "180/007/DPMPTSP/2026"
    # The answer letter keeps its own chain.
    assert wf.check("approve", "answer_drafted", "kabid") == "in_approval"


# --- the default profile --------------------------------------------------------------


def test_default_profile_is_valid_and_uses_contract_actions_only() -> None:
    wf = default_workflow()
    assert wf.initial_stage == "received"
    assert {r.action for r in wf.rules} <= set(ACTIONS)
    # Every action of the contract is reachable in the default.
    assert {r.action for r in wf.rules} == set(ACTIONS)
    terminal = {s for s in wf.stages if wf.is_terminal(s)}
    assert terminal == {"closed", "forwarded", "forwarded_out", "archived"}


DEFAULT_MOVES = [
    # (stage, action, role, keywords, next stage)
    ("received", "register", "petugas", {}, "registered"),
    ("received", "register", "sistem", {}, "registered"),
    ("registered", "return_incomplete", "petugas", {}, "incomplete"),
    ("incomplete", "files_complete", "petugas", {}, "verified"),
    ("registered", "files_complete", "analis", {}, "verified"),
    ("incomplete", "close", "sistem", {}, "closed"),
    ("registered", "forward_body", "petugas", {}, "forwarded_out"),
    ("verified", "classify", "analis", {}, "classified"),
    ("verified", "forward_opd", "kasi", {}, "forwarded"),
    ("classified", "dispose", "kasi", {}, "handling"),
    ("classified", "forward_opd", "kabid", {}, "forwarded"),
    ("classified", "forward_body", "kabid", {}, "forwarded_out"),
    ("handling", "followup", "penangan", {"step": "pemeriksaan_lapangan"}, "handling"),
    ("handling", "followup", "analis", {"step": "rapat_koordinasi"}, "handling"),
    ("handling", "followup", "analis", {}, "handling"),
    ("handling", "followup", "analis", {"step": "konsep_jawaban"}, "answer_drafted"),
    ("answer_drafted", "approve", "kabid", {}, "in_approval"),
    ("answer_drafted", "followup", "kabid", {"step": "revisi_konsep"}, "handling"),
    ("in_approval", "approve", "kepala_dinas", {"approvals_done": ["kabid"]},
     "answer_approved"),
    ("in_approval", "followup", "kepala_dinas", {"step": "revisi_konsep"}, "handling"),
    ("answer_approved", "answer_delivered", "petugas", {}, "answer_delivered"),
    ("answer_delivered", "satisfied", "petugas", {}, "closed"),
    ("answer_delivered", "not_satisfied", "petugas", {}, "escalated"),
    ("answer_delivered", "close", "sistem", {}, "closed"),
    ("handling", "escalate", "sistem", {}, "escalated"),
    ("escalated", "escalate", "sistem", {}, "escalated"),
    ("escalated", "dispose", "kepala_dinas", {}, "handling"),
    ("escalated", "followup", "analis", {"step": "konsep_jawaban"}, "answer_drafted"),
    ("closed", "archive", "petugas", {}, "archived"),
    ("forwarded", "archive", "sistem", {}, "archived"),
    ("forwarded_out", "archive", "sistem", {}, "archived"),
    ("closed", "reopen", "kabid", {}, "handling"),
    ("archived", "reopen", "kepala_dinas", {}, "handling"),
    ("forwarded_out", "reopen", "sistem", {}, "verified"),
]


@pytest.mark.parametrize(("stage", "action", "role", "kw", "expected"), DEFAULT_MOVES)
def test_default_transitions(stage: str, action: str, role: str, kw: dict[str, Any],
                             expected: str) -> None:
    assert default_workflow().check(action, stage, role, **kw) == expected


DEFAULT_REFUSALS = [
    ("received", "classify", "analis", {},
     "action 'classify' is not allowed in stage 'received' (Diterima); actions allowed in "
     "this stage: register"),
    ("handling", "approve", "kabid", {}, "actions allowed in this stage: escalate, followup"),
    ("classified", "dispose", "petugas", {},
     "role 'petugas' may not perform 'dispose' in stage 'classified'"),
    ("in_approval", "approve", "kepala_dinas", {},
     "waiting for step 1 (paraf by 'kabid'), not for 'kepala_dinas'"),
    ("in_approval", "approve", "kabid", {"approvals_done": ["kabid", "kepala_dinas"]},
     "already complete"),
    ("in_approval", "approve", "kabid", {"approvals_done": ["kepala_dinas"]},
     "step 1 is paraf by 'kabid', but the record says 'kepala_dinas'"),
    ("in_approval", "approve", "kabid", {"document": "bapp"},
     "document 'bapp' is not approved in stage 'in_approval'"),
    ("answer_drafted", "followup", "kabid", {}, "needs a step: one of revisi_konsep"),
    ("answer_drafted", "followup", "kabid", {"step": "kajian"},
     "step 'kajian' of 'followup' is not allowed"),
    ("handling", "followup", "analis", {"step": "sidak"}, "unknown step 'sidak'"),
    ("archived", "archive", "petugas", {}, "(a terminal stage); actions allowed in this "
     "stage: reopen"),
    ("handling", "verify", "analis", {}, "unknown action 'verify'"),
    ("dibuang", "archive", "petugas", {}, "stage 'dibuang' is not defined"),
    ("handling", "followup", "bupati", {}, "role 'bupati' is not defined"),
]


@pytest.mark.parametrize(("stage", "action", "role", "kw", "message"), DEFAULT_REFUSALS)
def test_default_refusals_explain_themselves(stage: str, action: str, role: str,
                                             kw: dict[str, Any], message: str) -> None:
    with pytest.raises(TransitionNotAllowed) as info:
        default_workflow().check(action, stage, role, **kw)
    assert message in str(info.value)


def test_required_fields() -> None:
    wf = default_workflow()
    with pytest.raises(MissingFields) as info:
        wf.check("dispose", "classified", "kasi", fields={"unit": "  "})
    assert info.value.missing == ("unit",)
    assert "needs unit" in str(info.value)
    assert wf.check("dispose", "classified", "kasi", fields={"unit": "Bidang Perizinan"}) == \
        "handling"
    with pytest.raises(MissingFields) as info:
        wf.check("forward_body", "verified", "kasi", fields={"institution_id": 0})
    assert info.value.missing == ("reason",)
    # The document given as a keyword satisfies approve's "document" field.
    assert wf.check("approve", "answer_drafted", "kabid", document="surat_jawaban",
                    fields={}) == "in_approval"
    with pytest.raises(MissingFields):
        wf.check("approve", "answer_drafted", "kabid", fields={})


def test_allowed_actions_follow_the_approval_turn() -> None:
    wf = default_workflow()
    assert "approve" in wf.allowed_actions("in_approval", "kepala_dinas")
    turn: dict[str, list[str]] = {"surat_jawaban": []}
    assert "approve" not in wf.allowed_actions("in_approval", "kepala_dinas",
                                               approvals_done=turn)
    assert "approve" in wf.allowed_actions("in_approval", "kabid", approvals_done=turn)
    turn["surat_jawaban"] = ["kabid"]
    assert "approve" in wf.allowed_actions("in_approval", "kepala_dinas", approvals_done=turn)
    assert "approve" not in wf.allowed_actions("in_approval", "kabid", approvals_done=turn)
    assert wf.allowed_actions("received", "kepala_daerah") == []


def test_happy_path_through_the_default() -> None:
    wf = default_workflow()
    stage = wf.initial_stage
    done: list[str] = []
    path: list[tuple[str, str, dict[str, Any]]] = [
        ("register", "petugas", {}),
        ("return_incomplete", "petugas", {"fields": {"missing": "Fotokopi KTP"}}),
        ("files_complete", "petugas", {}),
        ("classify", "analis", {"fields": {"severity": "sedang"}}),
        ("dispose", "kasi", {"fields": {"unit": "Tim Teknis"}}),
        ("followup", "analis", {"step": "cek_data_perizinan", "fields": {"content": "..."}}),
        ("followup", "penangan", {"step": "pemeriksaan_lapangan", "fields": {"content": "."}}),
        ("followup", "kabid", {"step": "rapat_koordinasi", "fields": {"content": "..."}}),
        ("followup", "analis", {"step": "konsep_jawaban", "fields": {"content": "..."}}),
        ("approve", "kabid", {}),
        ("approve", "kepala_dinas", {}),
        ("answer_delivered", "petugas", {}),
        ("satisfied", "petugas", {}),
        ("archive", "sistem", {}),
    ]
    for action, role, kw in path:
        move = wf.plan(action, stage, role, approvals_done=done, **kw)
        if move.approval is not None:
            done.append(role)
        stage = move.to_stage
    assert stage == "archived" and wf.is_terminal(stage)
    assert done == ["kabid", "kepala_dinas"]


def test_classes_and_labels() -> None:
    wf = default_workflow()
    assert wf.class_escalates_to("berat") == "kepala_daerah"
    assert wf.class_escalates_to("ringan") is None
    assert "penangan" in wf.class_handlers("sedang")
    with pytest.raises(TransitionNotAllowed, match="unknown class 'kritis'"):
        wf.class_handlers("kritis")
    assert wf.stage_label("handling") == "Dalam penanganan"
    assert wf.stage_label("from_an_old_profile") == "from_an_old_profile"
    assert wf.role_label("kepala_dinas") == "Kepala Dinas"
    assert wf.format_document_number("surat_jawaban", 42, code="DPMPTSP", year=2026,
                                     month=8) == "042/ADU/DPMPTSP/VIII/2026"
