"""The deadline sweep on the default profile: events once per deadline, the escalation
ladder, class escalation, plugin decisions and failures, blocked escalations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.domain import CaseSnapshot, EscalationDecision, Notification
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.services.actions import Actor, NewCase
from bridge.services.sweep import mark_key, reached_level, sweep_deadlines
from bridge.store.models import Case, CaseEvent, PendingEvent
from tests.support.times import end_of, wib

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")


class Listener:
    """Implements the deadline events and a channel, and may decide escalations."""

    def __init__(self, decision: EscalationDecision | None = None, fail: bool = False) -> None:
        self.decision = decision
        self.fail = fail
        self.missed: list[tuple[int, datetime | None]] = []
        self.near: list[tuple[int, int | None]] = []
        self.notifications: list[Notification] = []

    @hookimpl
    def deadline_missed(self, case: CaseSnapshot, deadline_at: datetime | None) -> None:
        self.missed.append((case.id, deadline_at))

    @hookimpl
    def deadline_near(self, case: CaseSnapshot, working_days_left: int | None) -> None:
        self.near.append((case.id, working_days_left))

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)

    @hookimpl
    def decide_escalation(self, case: CaseSnapshot, now: datetime) -> EscalationDecision | None:
        if self.fail:
            raise RuntimeError("rule table unreadable")
        return self.decision


def setup(runtime_factory: Any, listener: Listener, **sections: Any) -> Any:
    rt = runtime_factory(**sections)
    rt.plugins = load_plugins(rt.settings, calendar=rt.calendar,
                              extra=[("listener", listener)])
    return rt


def new(rt: Any, received: datetime, **kw: Any) -> int:
    actions = rt.actions()
    actions.clock = lambda: received
    fields: dict[str, Any] = {"title": "Izin belum terbit", "content": "Menunggu.", "channel": "surat",
              "received_at": received}
    fields.update(kw)
    return int(actions.new_case(NewCase(**fields), PETUGAS).case_id)


def act(rt: Any, at: datetime) -> Any:
    actions = rt.actions()
    actions.clock = lambda: at
    return actions


def handling(rt: Any, cid: int, at: datetime, severity: str = "sedang") -> None:
    a = act(rt, at)
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, severity)
    a.dispose(cid, KASI, "Seksi Pengaduan")


def test_near_and_missed_once_per_deadline_then_the_ladder(runtime_factory: Any) -> None:
    listener = Listener()
    rt = setup(runtime_factory, listener)
    cid = new(rt, wib(2026, 8, 3))  # Monday; 10 working days -> Monday 17 Aug is a holiday
    handling(rt, cid, wib(2026, 8, 3, 10))
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.deadline_at == end_of(2026, 8, 18)
    near = sweep_deadlines(rt, wib(2026, 8, 17, 12))
    assert [(m.deadline, m.due_at) for m in near.near] == [("overall", end_of(2026, 8, 18))]
    # Kabid after 5 working days (10 August) is already due: level 1.
    assert [(e.to, e.level) for e in near.escalated] == [("kabid", 1)]
    assert sweep_deadlines(rt, wib(2026, 8, 17, 13)).near == []
    late = sweep_deadlines(rt, wib(2026, 8, 19, 8))
    assert [m.deadline for m in late.missed] == ["overall"]
    assert [(e.to, e.level) for e in late.escalated] == [("kepala_dinas", 2)]
    again = sweep_deadlines(rt, wib(2026, 8, 25, 8))
    assert (again.missed, again.escalated) == ([], [])
    rt.dispatch_events()
    assert listener.missed == [(cid, end_of(2026, 8, 18))]
    # Monday 17th is a holiday: counting starts on Tuesday 18th, the last day itself.
    assert listener.near == [(cid, 0)]
    kinds = [n.kind for n in listener.notifications]
    assert kinds == ["deadline_near", "escalated", "deadline_missed", "escalated"]
    escalated = [n for n in listener.notifications if n.kind == "escalated"]
    assert [n.recipients for n in escalated] == [("kabid",), ("kepala_dinas",)]
    assert "Eskalasi tingkat 2" in escalated[1].subject
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        data = case.data or {}
        assert data["escalation_level"] == 2 and reached_level(data, rt.workflow) == 2
        assert [e["level"] for e in data["escalations"]] == ["kabid", "kepala_dinas"]
        marks = data["deadline_events"]["overall@2026-08-18T16:59:59+00:00"]
        assert set(marks) == {"near", "missed"}
        history = [e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid))]
    assert history.count("deadline_missed") == 1 and history.count("deadline_near") == 1


def test_mark_key_names_the_deadline_and_its_due_time(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = new(rt, wib(2026, 8, 3))
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        overall = rt.deadlines.all(s, case)[0]
    assert mark_key(overall) == "overall@2026-08-18T16:59:59+00:00"


def test_severity_class_goes_to_the_kepala_daerah(runtime_factory: Any) -> None:
    listener = Listener()
    rt = setup(runtime_factory, listener)
    cid = new(rt, wib(2026, 8, 3))
    handling(rt, cid, wib(2026, 8, 3, 10), severity="ringan")
    # Reclassified berat while in handling: the case goes up at once, not at the sweep.
    done = act(rt, wib(2026, 8, 3, 11)).classify(cid, KASI, "berat", "ternyata berdampak luas")
    assert done.stage == "escalated"
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.assigned_to == "kepala_daerah"
        assert (case.data or {})["team"] == ["analis", "kasi", "kabid", "kepala_dinas",
                                             "penangan"]
        [entry] = (case.data or {})["escalations"]
        assert entry["reason"] == ("Pengaduan berat memerlukan kewenangan Kepala "
                                   "Daerah (Bupati/Walikota)")
    rt.dispatch_events()
    [told] = [n for n in listener.notifications if n.kind == "escalated"]
    assert told.recipients == ("kepala_daerah",)
    assert sweep_deadlines(rt, wib(2026, 8, 3, 12)).escalated == []  # already there


def test_plugin_decides_and_is_not_asked_twice_for_a_level(runtime_factory: Any) -> None:
    listener = Listener(EscalationDecision(1, "tim_penanganan_pengaduan", "warga mengadu ke DPRD"))
    rt = setup(runtime_factory, listener)
    cid = new(rt, wib(2026, 8, 3))
    handling(rt, cid, wib(2026, 8, 3, 10), severity="ringan")
    first = sweep_deadlines(rt, wib(2026, 8, 4, 9))
    assert [(e.to, e.level, e.source) for e in first.escalated] == [
        ("tim_penanganan_pengaduan", 1, "plugin:listener")]
    assert first.escalated[0].reason == "warga mengadu ke DPRD (aturan listener)"
    assert sweep_deadlines(rt, wib(2026, 8, 4, 10)).escalated == []


def test_plugin_failure_is_flagged_and_the_sweep_goes_on(runtime_factory: Any) -> None:
    listener = Listener(fail=True)
    rt = setup(runtime_factory, listener)
    a_id = new(rt, wib(2026, 8, 3))
    b_id = new(rt, wib(2026, 8, 3))
    for cid in (a_id, b_id):
        handling(rt, cid, wib(2026, 8, 3, 10), severity="ringan")
    result = sweep_deadlines(rt, wib(2026, 8, 4, 9))
    assert result.checked == 2 and len(result.failures) == 2
    with rt.sessions() as s:
        for cid in (a_id, b_id):
            case = s.get(Case, cid)
            assert case is not None and "rule table unreadable" in (case.attention or "")
        failed = s.scalar(select(func.count()).select_from(CaseEvent)
                          .where(CaseEvent.kind == "plugin_failed"))
    assert failed == 2


def test_an_unregistered_case_still_goes_up_the_chain(runtime_factory: Any) -> None:
    listener = Listener()
    rt = setup(runtime_factory, listener)
    cid = new(rt, wib(2026, 8, 3))  # never registered: the default escalate is not from "received"
    first = sweep_deadlines(rt, wib(2026, 8, 12, 8))
    assert [(e.to, e.level) for e in first.escalated] == [("kabid", 1)]
    assert first.blocked == []
    late = sweep_deadlines(rt, wib(2026, 8, 19, 8))
    assert [m.deadline for m in late.missed] == ["overall"]
    assert [(e.to, e.level) for e in late.escalated] == [("kepala_dinas", 2)]
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.stage == "received"  # stays where it was left
        assert case.assigned_to == "kepala_dinas" and not case.attention
        kinds = [e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid))]
    assert kinds.count("escalate") == 2
    rt.dispatch_events()
    sent = [(n.kind, n.recipients) for n in listener.notifications]
    assert ("escalated", ("kabid",)) in sent and ("escalated", ("kepala_dinas",)) in sent
    # The missed deadline reaches the level above the desk, not only the petugas.
    missed = [r for k, r in sent if k == "deadline_missed"]
    assert "petugas" in missed[0] and "kabid" in missed[0]
    assert "kepala_dinas" in missed[-1]
    # The desk can still take it up where it stands.
    assert act(rt, wib(2026, 8, 19, 9)).register(cid, PETUGAS).stage == "registered"


def test_due_escalation_not_allowed_for_the_system_is_flagged_once(
        runtime_factory: Any) -> None:
    rt = runtime_factory(workflow={"transitions": {
        "escalate": {"roles": ["kabid"]}, "escalate_further": {"roles": ["kabid"]}}})
    cid = new(rt, wib(2026, 8, 3))
    first = sweep_deadlines(rt, wib(2026, 8, 12, 8))
    assert first.escalated == [] and len(first.blocked) == 1
    second = sweep_deadlines(rt, wib(2026, 8, 13, 8))
    assert len(second.blocked) == 1  # still blocked ...
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.stage == "received"
        assert (case.attention or "").count("Eskalasi") == 1  # ... but flagged once
        kinds = [e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid))]
    assert kinds.count("escalation_blocked") == 1


def test_answered_cases_wait_for_the_complainant(runtime_factory: Any) -> None:
    listener = Listener()
    rt = setup(runtime_factory, listener)
    cid = new(rt, wib(2026, 8, 3))
    handling(rt, cid, wib(2026, 8, 3, 10), severity="ringan")
    a = act(rt, wib(2026, 8, 4))
    a.record_step(cid, ANALIS, "konsep_jawaban", "konsep")
    a.approve(cid, Actor("Agus", "kabid"), "surat_jawaban")
    a.approve(cid, Actor("Hadi", "kepala_dinas"), "surat_jawaban")
    a.answer_delivered(cid, PETUGAS, "Sudah selesai.")
    result = sweep_deadlines(rt, wib(2026, 9, 30))
    assert (result.checked, result.missed, result.escalated) == (1, [], [])
    with rt.sessions() as s:
        assert s.scalar(select(func.count()).select_from(PendingEvent)) == 0


def test_now_must_be_aware(runtime_factory: Any) -> None:
    rt = runtime_factory()
    with pytest.raises(ValueError, match="timezone-aware"):
        sweep_deadlines(rt, datetime(2026, 8, 3))
