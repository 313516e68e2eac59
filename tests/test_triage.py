"""Triage of arriving cases on the default profile: suggestions, application when the
profile lets ``sistem`` act, failures flagged, idempotence."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from bridge.domain import CaseSnapshot, Classification, Notification, RoutingDecision
from bridge.hookspecs import hookimpl
from bridge.plugins import load_plugins
from bridge.services.actions import Actor, NewCase
from bridge.services.triage import triage_case, triage_new_cases, triage_pending
from bridge.store.models import Case, CaseEvent, OutboxRow, PendingEvent
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


class Picky:
    """Answers for most cases; raises for one, hangs past its time limit for another."""

    @hookimpl
    def classify_case(self, case: CaseSnapshot) -> Classification | None:
        return Classification("sedang", "kata kunci")

    @hookimpl
    def route_case(self, case: CaseSnapshot) -> RoutingDecision | None:
        if "rusak" in case.title:
            raise RuntimeError("tabel aturan rusak")
        if "lambat" in case.title:
            time.sleep(1.5)
        return RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="pencemaran")

    @hookimpl
    def notify(self, notification: Notification) -> None:
        pass


def test_one_case_failing_in_a_batch_touches_no_other(runtime_factory: Any) -> None:
    rt = runtime_factory(plugins={"timeout_seconds": 0.3})
    rt.plugins = load_plugins(rt.settings, calendar=rt.calendar, extra=[("picky", Picky())])
    titles = ["Limbah 1", "Limbah rusak", "Limbah 3", "Limbah lambat", "Limbah 5",
              "Limbah 6", "Limbah 7"]
    ids = [new(rt, title=t) for t in titles]
    # Batches of 3: the failures fall in the first and second batch, among good cases.
    result = triage_new_cases(rt, ids, now=NOW, batch_size=3)
    assert [c.case_id for c in result.cases] == ids
    by_title = dict(zip(titles, result.cases, strict=True))
    assert "RuntimeError: tabel aturan rusak" in by_title["Limbah rusak"].failures[0]
    assert "did not finish within 0.3 s" in by_title["Limbah lambat"].failures[0]
    assert result.failed == 2
    for title, cid in zip(titles, ids, strict=True):
        c, history = case(rt, cid), events(rt, cid)
        triage = (c.data or {})["triage"]
        failed = [e for e in history if e.kind == "plugin_failed"]
        # Every case got its classification and its one history entry for triage.
        assert triage["classification"]["status"] == "suggested"
        assert [e.kind for e in history].count("triage") == 1
        if title in ("Limbah rusak", "Limbah lambat"):
            assert triage["routing"]["status"] == "failed"
            assert c.attention is not None and "Plugin gagal saat triase" in c.attention
            assert [(e.actor, (e.changes or {}).get("hook")) for e in failed] == [
                ("plugin:picky", "route_case")]
        else:
            assert triage["routing"]["status"] == "suggested", title
            assert c.attention is None and failed == [], title
    with rt.sessions() as s:
        pending = list(s.scalars(select(PendingEvent).order_by(PendingEvent.id)))
        notes = [(p.case_id, p.data["kind"]) for p in pending if p.name == "notify"]
    # Each case is announced once; only the two failing ones get a failure notice, and
    # each case's notifications are queued together, in the order of the cases.
    expected = []
    for title, cid in zip(titles, ids, strict=True):
        expected.append((cid, "case_received"))
        if title in ("Limbah rusak", "Limbah lambat"):
            expected.append((cid, "plugin_failure"))
    assert notes == expected


def test_a_batch_reads_and_writes_in_a_few_statements(runtime_factory: Any) -> None:
    from sqlalchemy import event

    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules)
    ids = [new(rt, title=f"Limbah {n}") for n in range(40)]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split()[0].upper())

    event.listen(rt.engine, "before_cursor_execute", count)
    try:
        result = triage_new_cases(rt, ids, now=NOW)
    finally:
        event.remove(rt.engine, "before_cursor_execute", count)
    assert len(result.cases) == 40 and result.failed == 0
    # Not a few statements per case: the institutions, the batch's read, its re-read in
    # the write transaction, then one UPDATE and two INSERTs (executemany each).
    assert statements.count("SELECT") <= 4, statements
    assert statements.count("UPDATE") == 1 and statements.count("INSERT") == 2, statements
    with rt.sessions() as s:
        # 40 arrivals (more than [notifications] digest_threshold, 20): one digest.
        (digest,) = s.scalars(select(PendingEvent.data).where(PendingEvent.name == "notify"))
        assert digest["kind"] == "case_received_digest"
        assert digest["data"]["case_ids"] == ids
        assert s.scalar(select(func.count()).select_from(CaseEvent)
                        .where(CaseEvent.kind == "triage")) == 40


def test_what_changes_between_the_read_and_the_write_is_kept(runtime_factory: Any) -> None:
    """The write reads data and attention again in its transaction; a case whose version
    moved in between is read again in full, so its messages show it as committed."""
    from sqlalchemy import update

    ids: dict[str, int] = {}

    class Meanwhile(Rules):
        @hookimpl
        def route_case(self, case: CaseSnapshot) -> RoutingDecision | None:
            with rt.sessions() as s, s.begin():
                if case.id == ids["quiet"]:  # another writer that leaves the version
                    s.execute(update(Case).where(Case.id == case.id).values(
                        data={"catatan": "tetap"}, attention="periksa lampiran"))
                else:
                    s.execute(update(Case).where(Case.id == case.id).values(
                        title="Limbah B diperbarui", version=Case.version + 1))
            return self.route

    rules = Meanwhile(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules)
    quiet, moved = new(rt, title="Limbah A"), new(rt, title="Limbah B")
    ids["quiet"] = quiet
    result = triage_new_cases(rt, [quiet, moved], now=NOW)
    assert [c.skipped for c in result.cases] == [None, None]
    kept = case(rt, quiet)
    assert kept.data["catatan"] == "tetap" and "triage" in kept.data
    assert kept.attention == "periksa lampiran"
    with rt.sessions() as s:
        texts = [str(d) for d in s.scalars(select(PendingEvent.data)
                                           .where(PendingEvent.name == "notify"))]
    assert any("Limbah B diperbarui" in t for t in texts), texts
    assert not any("'Limbah B'" in t or "Limbah B\n" in t for t in texts)
