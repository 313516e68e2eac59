"""Deadlines and escalation levels of cases, on real 2026 dates."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from bridge.workflow import (
    CaseTimeline,
    Deadline,
    StageVisit,
    WorkingCalendar,
    build_workflow,
    compute_deadlines,
    default_workflow,
    escalation_due,
    escalation_schedule,
    overall_deadline,
)
from tests.support.times import end_of, wib

CUTI_BERSAMA_2026 = [date(2026, 3, 18), date(2026, 3, 20), date(2026, 3, 23),
                     date(2026, 3, 24), date(2026, 12, 24)]


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar(CUTI_BERSAMA_2026)


def by_name(items: list[Deadline]) -> dict[str, Deadline]:
    return {d.name: d for d in items}


def test_new_lapor_case_around_independence_day(cal: WorkingCalendar) -> None:
    tl = CaseTimeline(received_at=wib(2026, 8, 14))
    items = compute_deadlines(default_workflow(), cal, tl)
    assert [d.name for d in items] == [
        "overall", "stage:received", "national:verify", "national:followup",
        "national:silence_close", "national:completion"]
    d = by_name(items)
    assert d["overall"].due_at == end_of(2026, 9, 1)   # 10 hari kerja, skipping 17 and 25 Aug
    assert d["overall"].holidays == (
        (date(2026, 8, 17), "Hari Kemerdekaan Republik Indonesia"),
        (date(2026, 8, 25), "Maulid Nabi Muhammad"))
    assert d["overall"].basis.startswith(
        "10 hari kerja sejak pengaduan diterima (Jumat, 14 Agustus 2026)")
    assert "17 Agustus 2026 (Hari Kemerdekaan Republik Indonesia)" in d["overall"].basis
    assert d["stage:received"].due_at == end_of(2026, 8, 18)
    assert d["stage:received"].label == "Pencatatan di buku register"
    assert d["national:verify"].due_at == end_of(2026, 8, 20)
    assert d["national:followup"].due_at == end_of(2026, 8, 24)
    assert d["national:silence_close"].due_at is None
    assert d["national:silence_close"].basis == "belum berjalan: belum ada tindak lanjut"
    assert d["national:completion"].due_at is None
    assert "menunggu berkas dinyatakan lengkap" in d["national:completion"].basis
    assert not any(x.met for x in items)
    assert d["overall"].is_overdue(wib(2026, 9, 2, 0, 0, 1))
    assert not d["overall"].is_overdue(end_of(2026, 9, 1))


def test_deadlines_are_met_by_the_case_moving_on(cal: WorkingCalendar) -> None:
    tl = CaseTimeline(
        received_at=wib(2026, 8, 14),
        history=[StageVisit("received", wib(2026, 8, 14)),
                 StageVisit("registered", wib(2026, 8, 18, 10)),
                 StageVisit("verified", wib(2026, 8, 19, 11)),
                 StageVisit("classified", wib(2026, 8, 19, 14)),
                 StageVisit("handling", wib(2026, 8, 20, 8)),
                 StageVisit("answer_drafted", wib(2026, 8, 27, 8)),
                 StageVisit("in_approval", wib(2026, 8, 27, 15)),
                 StageVisit("answer_approved", wib(2026, 8, 28, 9)),
                 StageVisit("answer_delivered", wib(2026, 9, 2, 10))],
        files_complete_at=wib(2026, 8, 19, 11),
        first_followup_at=wib(2026, 8, 26, 16),
        last_followup_at=wib(2026, 9, 2, 10),
    )
    d = by_name(compute_deadlines(default_workflow(), cal, tl))
    assert d["stage:received"].met_at == wib(2026, 8, 18, 10)
    assert not d["stage:received"].met_late
    assert d["national:verify"].met_at == wib(2026, 8, 19, 11)
    # The first follow-up came two days after the national 5 working days.
    assert d["national:followup"].met_at == wib(2026, 8, 26, 16)
    assert d["national:followup"].met_late
    # Answer delivered on 2 September: one day after the SOP deadline.
    assert d["overall"].met_at == wib(2026, 9, 2, 10)
    assert d["overall"].met_late
    assert not d["overall"].is_overdue(wib(2026, 10, 1))
    # 60 calendar days from complete files (19 Aug) is Sunday 18 October.
    assert d["national:completion"].due_at == end_of(2026, 10, 18)
    assert d["national:completion"].met_at == wib(2026, 9, 2, 10)
    # LAPOR! closes after 10 working days of silence after the last follow-up.
    assert d["national:silence_close"].due_at == end_of(2026, 9, 16)
    assert d["national:silence_close"].met_at is None


def test_local_cases_skip_the_lapor_only_limits(cal: WorkingCalendar) -> None:
    tl = CaseTimeline(received_at=wib(2026, 8, 14), via_lapor=False)
    names = [d.name for d in compute_deadlines(default_workflow(), cal, tl)]
    assert names == ["overall", "stage:received", "national:completion"]


def test_received_on_a_holiday_counts_from_the_next_working_day(cal: WorkingCalendar) -> None:
    tl = CaseTimeline(received_at=wib(2026, 8, 17, 20))
    d = overall_deadline(default_workflow(), cal, tl)
    assert d.due_at == end_of(2026, 9, 2)   # 10 working days after Tuesday 18 August
    assert "dihitung dari hari kerja berikutnya (Selasa, 18 Agustus 2026)" in d.basis


def test_files_complete_basis_and_class_deadlines_over_christmas(cal: WorkingCalendar) -> None:
    # Seed 001: "2 s/d 10 hari kerja (setelah berkas persyaratan dinyatakan lengkap)".
    wf = build_workflow({
        "deadlines": {"overall": {"amount": 10, "counted_from": "files_complete"}},
        "classes": {"ringan": {"deadline": {"amount": 2, "counted_from": "files_complete"}}},
    })
    received = wib(2026, 12, 21)
    waiting = overall_deadline(wf, cal, CaseTimeline(received_at=received, severity="ringan"))
    assert waiting.due_at is None
    assert waiting.basis.startswith("belum berjalan: menunggu berkas dinyatakan lengkap")

    complete = wib(2026, 12, 23, 14)
    ringan = overall_deadline(wf, cal, CaseTimeline(
        received_at=received, files_complete_at=complete, severity="ringan"))
    # 24 Dec cuti bersama, 25 Natal, weekend: 28 and 29 December.
    assert ringan.due_at == end_of(2026, 12, 29)
    assert ringan.basis.startswith("2 hari kerja sejak berkas dinyatakan lengkap")
    assert "(ketentuan Pengaduan ringan)" in ringan.basis
    assert [d for d, _ in ringan.holidays] == [date(2026, 12, 24), date(2026, 12, 25)]
    sedang = overall_deadline(wf, cal, CaseTimeline(
        received_at=received, files_complete_at=complete, severity="sedang"))
    # 28-31 Dec; New Year's Day and Isra Mikraj (Tuesday 5 Jan 2027) skipped; 4, 6-8, 11-12.
    assert sedang.due_at == end_of(2027, 1, 12)
    assert (date(2027, 1, 5), "Isra Mikraj Nabi Muhammad") in sedang.holidays


def test_calendar_day_deadline_with_roll(cal: WorkingCalendar) -> None:
    # Klaten: "14 Hari"; read as calendar days, moved off a weekend when it ends on one.
    wf = build_workflow({"deadlines": {"overall": {
        "amount": 14, "unit": "calendar_days", "roll_to_working_day": True}}})
    d = overall_deadline(wf, cal, CaseTimeline(received_at=wib(2026, 8, 14)))
    assert d.due_at == end_of(2026, 8, 28)
    assert d.basis.startswith("14 hari kalender sejak pengaduan diterima")
    d = overall_deadline(wf, cal, CaseTimeline(received_at=wib(2026, 12, 5)))
    assert d.due_at == end_of(2026, 12, 21)    # Saturday 19 Dec -> Monday 21 Dec
    assert "diundur ke hari kerja berikutnya" in d.basis


def test_stage_deadline_uses_the_latest_visit(cal: WorkingCalendar) -> None:
    wf = build_workflow({"stages": {"escalated": {"deadline": {
        "amount": 5, "label": "Penanganan oleh Tim Penanganan Pengaduan"}}}})
    tl = CaseTimeline(
        received_at=wib(2026, 8, 3),
        history=[StageVisit("received", wib(2026, 8, 3)),
                 StageVisit("escalated", wib(2026, 8, 5)),
                 StageVisit("handling", wib(2026, 8, 6)),
                 StageVisit("escalated", wib(2026, 8, 19, 10))],
    )
    d = by_name(compute_deadlines(wf, cal, tl))
    esc = d["stage:escalated"]
    assert esc.label == "Penanganan oleh Tim Penanganan Pengaduan"
    assert esc.started_at == wib(2026, 8, 19, 10)
    assert esc.due_at == end_of(2026, 8, 27)   # 20, 21, 24, (25 Maulid), 26, 27
    assert esc.met_at is None
    assert esc.basis.startswith("5 hari kerja sejak masuk tahap Dieskalasi")
    assert d["stage:received"].met_at == wib(2026, 8, 5)


def test_default_escalation_levels(cal: WorkingCalendar) -> None:
    wf = default_workflow()
    tl = CaseTimeline(received_at=wib(2026, 8, 14),
                      history=[StageVisit("received", wib(2026, 8, 14)),
                               StageVisit("handling", wib(2026, 8, 18))])
    schedule = escalation_schedule(wf, cal, tl)
    assert [(s.level, s.role, s.due_at) for s in schedule] == [
        (1, "kabid", end_of(2026, 8, 24)), (2, "kepala_dinas", end_of(2026, 9, 1))]
    assert escalation_due(wf, cal, tl, wib(2026, 8, 24, 16)) is None
    first = escalation_due(wf, cal, tl, wib(2026, 8, 25, 8))
    assert first is not None and (first.level, first.role) == (1, "kabid")
    second = escalation_due(wf, cal, tl, wib(2026, 9, 2, 8))
    assert second is not None and (second.level, second.name) == (2, "kepala_dinas")
    # Nothing to escalate once the answer is delivered.
    done = CaseTimeline(received_at=tl.received_at, history=[
        *tl.history, StageVisit("answer_delivered", wib(2026, 8, 31))])
    assert escalation_due(wf, cal, done, wib(2026, 9, 10)) is None


def test_escalation_after_not_satisfied(cal: WorkingCalendar) -> None:
    # Dharmasraya: not satisfied -> Tim Penanganan Pengaduan (5 days) -> Kepala DPMPTSP.
    wf = build_workflow({
        "roles": {"tim_penanganan_pengaduan": {"label": "Tim Penanganan Pengaduan"}},
        "deadlines": {"escalation": {"counted_from": "entered:escalated", "levels": [
            {"name": "tpp", "label": "Tim Penanganan Pengaduan",
             "role": "tim_penanganan_pengaduan", "after": 0},
            {"name": "kepala_dinas", "label": "Kepala DPMPTSP", "role": "kepala_dinas",
             "after": 5},
        ]}},
    })
    delivered = [StageVisit("received", wib(2026, 8, 10)),
                 StageVisit("answer_delivered", wib(2026, 8, 18))]
    tl = CaseTimeline(received_at=wib(2026, 8, 10), history=delivered)
    assert escalation_due(wf, cal, tl, wib(2026, 8, 19)) is None
    assert escalation_schedule(wf, cal, tl)[0].due_at is None
    tl = CaseTimeline(received_at=wib(2026, 8, 10), history=[
        *delivered, StageVisit("escalated", wib(2026, 8, 19, 10))])
    assert escalation_due(wf, cal, tl, wib(2026, 8, 19, 9, 59)) is None
    now = escalation_due(wf, cal, tl, wib(2026, 8, 19, 10))
    assert now is not None and now.role == "tim_penanganan_pengaduan"
    assert now.basis.startswith("segera setelah masuk tahap Dieskalasi")
    later = escalation_due(wf, cal, tl, end_of(2026, 8, 27))
    assert later is not None and later.name == "tpp"
    last = escalation_due(wf, cal, tl, wib(2026, 8, 28, 7))
    assert last is not None and last.name == "kepala_dinas" and last.level == 2


def test_escalation_from_the_overall_deadline(cal: WorkingCalendar) -> None:
    wf = build_workflow({"deadlines": {"escalation": {"counted_from": "deadline", "levels": [
        {"name": "kabid", "label": "Kabid", "role": "kabid", "after": 0},
        {"name": "kepala_dinas", "label": "Kadis", "role": "kepala_dinas", "after": 2},
    ]}}})
    tl = CaseTimeline(received_at=wib(2026, 8, 14))
    assert escalation_due(wf, cal, tl, wib(2026, 9, 1, 12)) is None
    assert escalation_due(wf, cal, tl, end_of(2026, 9, 1)) is not None
    level = escalation_due(wf, cal, tl, wib(2026, 9, 4, 0, 0, 1))
    assert level is not None and level.name == "kepala_dinas"


def test_timeline_input_is_checked() -> None:
    with pytest.raises(ValueError, match="received_at is a naive datetime"):
        CaseTimeline(received_at=datetime(2026, 8, 14, 9))
    with pytest.raises(ValueError, match="naive"):
        StageVisit("received", datetime(2026, 8, 14, 9))
    with pytest.raises(ValueError, match="history out of order"):
        CaseTimeline(received_at=wib(2026, 8, 14), history=[
            StageVisit("received", wib(2026, 8, 14)),
            StageVisit("registered", wib(2026, 8, 13))])
    d = overall_deadline(default_workflow(), WorkingCalendar(),
                         CaseTimeline(received_at=wib(2026, 8, 14)))
    with pytest.raises(ValueError, match="naive"):
        d.is_overdue(datetime(2026, 9, 2))
