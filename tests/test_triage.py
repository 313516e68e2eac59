"""Triage of arriving cases on the default profile: suggestions, application when the
profile lets ``sistem`` act, failures flagged, idempotence."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from bridge.domain import CaseSnapshot, Classification, Notification, RoutingDecision
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.services.actions import Actor, NewCase
from bridge.services.triage import triage_case, triage_new_cases, triage_pending
from bridge.store.models import Case, CaseEvent, OutboxRow
from bridge.workflow.calendar import JAKARTA

PETUGAS = Actor("Sari", "petugas")
NOW = datetime(2026, 8, 3, 10, tzinfo=JAKARTA)


class Rules:
    def __init__(self, route: RoutingDecision | None = None, classify: str | None = "sedang",
                 broken: bool = False) -> None:
        self.route = route
        self.severity = classify
        self.broken = broken
        self.seen: list[CaseSnapshot] = []
        self.notifications: list[Notification] = []

    @hookimpl
    def classify_case(self, case: CaseSnapshot) -> Classification | None:
        self.seen.append(case)
        if self.broken:
            raise KeyError("kategori")
        return Classification(self.severity, "kata kunci 'limbah'") if self.severity else None

    @hookimpl
    def route_case(self, case: CaseSnapshot) -> RoutingDecision | None:
        self.seen.append(case)
        return self.route

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.notifications.append(notification)


def setup(runtime_factory: Any, rules: Rules, **sections: Any) -> Any:
    rt = runtime_factory(**sections)
    rt.plugins = load_plugins(rt.settings, calendar=rt.calendar, extra=[("rules", rules)])
    return rt


def new(rt: Any, **kw: Any) -> int:
    fields: dict[str, Any] = {"title": "Limbah pabrik", "content": "Limbah ke sungai.", "channel": "surat",
              "location": "Kel. Sukamaju, Kec. Kota", "reporter": {"name": "Siti"}}
    fields.update(kw)
    return int(rt.actions().new_case(NewCase(**fields), PETUGAS).case_id)


def events(rt: Any, cid: int) -> list[CaseEvent]:
    with rt.sessions() as s:
        rows = list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid)
                              .order_by(CaseEvent.id)))
        s.expunge_all()
        return rows


def case(rt: Any, cid: int) -> Case:
    with rt.sessions() as s:
        row = s.get(Case, cid)
        assert row is not None
        s.expunge(row)
        return row


def test_on_arrival_decisions_are_suggestions(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup",
                                  tembusan=["pelapor"], reason="pencemaran"))
    rt = setup(runtime_factory, rules)
    cid = new(rt)
    result = triage_new_cases(rt, [cid], now=NOW)
    (tri,) = result.cases
    assert tri.classification is not None and tri.routing is not None
    assert tri.classification["status"] == "suggested"
    assert (tri.routing["status"], tri.routing["opd"], tri.routing["opd_name"]) == (
        "suggested", "DLH", "Dinas Lingkungan Hidup")
    # The route hook saw the suggested class.
    assert rules.seen[-1].severity == "sedang"
    c = case(rt, cid)
    assert (c.stage, c.severity, c.forwarded_to) == ("received", None, None)
    assert c.data is not None and c.data["triage"]["routing"]["tembusan"] == ["pelapor"]
    (entry,) = [e for e in events(rt, cid) if e.kind == "triage"]
    assert entry.note == ("Triase otomatis: klasifikasi sedang disarankan; penanganan oleh "
                          "Dinas Lingkungan Hidup disarankan")
    rt.dispatch_events()
    assert [n.kind for n in rules.notifications] == ["case_received"]
    assert rules.notifications[0].recipients == ("petugas",)
    assert result.summary() == ("triage: 1 cases, 0 decisions applied, 2 suggested, "
                                "0 with plugin failures")
    # Asking again changes nothing.
    before = len(events(rt, cid))
    again = triage_case(rt, cid, now=NOW)
    assert again.newly_applied == [] and len(events(rt, cid)) == before


def test_applied_once_the_stage_allows_the_system(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup",
                                  tembusan=["pelapor", "Camat Kota"], reason="pencemaran"))
    workflow = {"transitions": {"forward_opd": {"roles": ["kasi", "kabid", "sistem"]}}}
    rt = setup(runtime_factory, rules, workflow=workflow)
    cid = new(rt)
    triage_new_cases(rt, [cid], now=NOW)
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    result = triage_pending(rt, now=NOW)
    (tri,) = result.cases
    assert tri.newly_applied == ["classification", "routing"]
    c = case(rt, cid)
    assert (c.stage, c.severity, c.forwarded_to) == ("forwarded", "sedang", "DLH")
    actors = [(e.kind, e.actor) for e in events(rt, cid) if e.kind in ("classify",
                                                                       "forward_opd")]
    assert actors == [("classify", "Sistem (otomatis)"), ("forward_opd", "Sistem (otomatis)")]
    with rt.sessions() as s:
        rows = list(s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid,
                                                      OutboxRow.kind == "followup")))
    assert rows[-1].payload["institution_to_id"] == 102
    assert "Tembusan: pelapor; Camat Kota" in rows[-1].payload["content"]
    rt.dispatch_events()
    (forwarded,) = [n for n in rules.notifications if n.kind == "forwarded"]
    assert "Tembusan: pelapor, Camat Kota." in forwarded.body
    assert triage_pending(rt, now=NOW).cases == []  # nothing left to decide


def test_failing_plugin_flags_the_case(runtime_factory: Any) -> None:
    rules = Rules(broken=True)
    rt = setup(runtime_factory, rules)
    cid = new(rt)
    (tri,) = triage_new_cases(rt, [cid], now=NOW).cases
    assert tri.failures and "KeyError" in tri.failures[0]
    assert tri.classification is not None and tri.classification["status"] == "failed"
    c = case(rt, cid)
    assert c.attention is not None and "Plugin gagal saat triase" in c.attention
    failed = [e for e in events(rt, cid) if e.kind == "plugin_failed"]
    assert [(e.actor, (e.changes or {}).get("hook")) for e in failed] == [
        ("plugin:rules", "classify_case")]
    rt.dispatch_events()
    assert "plugin_failure" in [n.kind for n in rules.notifications]


def test_routing_to_an_unknown_opd_is_refused(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungn Hidup", reason="typo"),
                  classify=None)
    rt = setup(runtime_factory, rules)
    cid = new(rt)
    (tri,) = triage_new_cases(rt, [cid], now=NOW).cases
    assert tri.routing is not None and tri.routing["status"] == "failed"
    assert "did you mean 'Dinas Lingkungan Hidup'" in tri.failures[0]
    assert "Dinas Lingkungn Hidup" in (case(rt, cid).attention or "")


def test_our_unit_and_its_team_are_told(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=True, unit="Seksi Pengaduan",
                                  tembusan=["Tim Teknis", "Camat Kota"], reason="kelas sedang"))
    workflow = {"transitions": {"dispose": {"roles": ["kasi", "sistem"]}}}
    rt = setup(runtime_factory, rules, workflow=workflow)
    cid = new(rt)
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    (tri,) = triage_new_cases(rt, [cid], now=NOW).cases
    assert tri.newly_applied == ["classification", "routing"]
    c = case(rt, cid)
    assert (c.stage, c.assigned_to) == ("handling", "Seksi Pengaduan")
    rt.dispatch_events()
    (assigned,) = [n for n in rules.notifications if n.kind == "assigned"]
    assert assigned.recipients == ("Seksi Pengaduan", "Tim Teknis", "Camat Kota")


def test_unknown_and_terminal_cases_are_skipped(runtime_factory: Any) -> None:
    rt = setup(runtime_factory, Rules())
    result = triage_new_cases(rt, [999], now=NOW)
    assert result.cases[0].skipped == "case not found"
