"""Many cases arriving at once are announced by digests ([notifications]
digest_threshold): one "N pengaduan baru" per recipient group and batch, every case
listed once; few arrivals keep one message each; a failing channel flags every case the
digest lists."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bridge.config import ConfigError
from bridge.domain import Notification, RoutingDecision
from bridge.hookspecs import hookimpl
from bridge.notify import renderer_from_settings
from bridge.services.triage import triage_new_cases
from bridge.store.models import Case, CaseEvent, PendingEvent
from tests.test_triage import NOW, Rules, new, setup


def pending_notes(rt: Any) -> list[dict[str, Any]]:
    with rt.sessions() as s:
        return list(s.scalars(select(PendingEvent.data).where(PendingEvent.name == "notify")
                              .order_by(PendingEvent.id)))


def register_nos(rt: Any, ids: list[int]) -> list[str]:
    with rt.sessions() as s:
        by_id = dict(s.execute(select(Case.id, Case.register_no).where(Case.id.in_(ids))).all())
    return [by_id[i] for i in ids]


def test_a_burst_is_announced_by_one_digest_per_batch(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules, notifications={"digest_threshold": 5})
    ids = [new(rt, title=f"Limbah {n}") for n in range(12)]
    result = triage_new_cases(rt, ids, now=NOW, batch_size=8)
    assert result.announced == 12 and all(c.announced for c in result.cases)
    notes = pending_notes(rt)
    # Two batches (8 + 4 cases), one recipient group: two digests, each case once.
    assert [n["kind"] for n in notes] == ["case_received_digest"] * 2
    assert [n["data"]["case_ids"] for n in notes] == [ids[:8], ids[8:]]
    assert all(n["case_id"] is None and n["recipients"] == ["petugas"] for n in notes)
    numbers = register_nos(rt, ids)
    first = notes[0]
    assert first["data"]["register_nos"] == numbers[:8] and first["data"]["count"] == 8
    assert first["subject"] == (f"[Kabupaten Uji] 8 pengaduan baru: {numbers[0]} s.d. "
                                f"{numbers[7]}")
    assert all(f"  {no}  " in first["body"] for no in numbers[:8])
    assert "Limbah ke sungai" not in first["body"] and "Siti" not in first["body"]
    # Triage itself is per case as before: every case has its state and history entry.
    with rt.sessions() as s:
        triaged = s.scalars(select(CaseEvent.case_id).where(CaseEvent.kind == "triage")).all()
    assert sorted(triaged) == ids
    # The channels get the digests.
    rt.dispatch_events()
    assert [n.kind for n in rules.notifications] == ["case_received_digest"] * 2


def test_few_arrivals_keep_one_message_each(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules, notifications={"digest_threshold": 5})
    ids = [new(rt, title=f"Limbah {n}") for n in range(5)]
    result = triage_new_cases(rt, ids, now=NOW)
    assert result.announced == 5
    notes = pending_notes(rt)
    assert [(n["kind"], n["case_id"]) for n in notes] == [("case_received", i) for i in ids]


def test_threshold_zero_never_digests(runtime_factory: Any) -> None:
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules, notifications={"digest_threshold": 0})
    ids = [new(rt, title=f"Limbah {n}") for n in range(25)]
    triage_new_cases(rt, ids, now=NOW)
    assert [n["case_id"] for n in pending_notes(rt)] == ids


def test_a_digest_the_template_cannot_render_falls_back_to_one_each(
        runtime_factory: Any, tmp_path: Any) -> None:
    (tmp_path / "case_received_digest.j2").write_text(
        "[{{ regency }}] {{ jumlah_yang_tidak_ada }}\nIsi\n", encoding="utf-8")
    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = setup(runtime_factory, rules,
               notifications={"digest_threshold": 2, "template_dir": str(tmp_path)})
    ids = [new(rt, title=f"Limbah {n}") for n in range(4)]
    result = triage_new_cases(rt, ids, now=NOW)
    assert result.announced == 4
    assert [(n["kind"], n["case_id"]) for n in pending_notes(rt)] == [
        ("case_received", i) for i in ids]


class BrokenChannel:
    @hookimpl
    def notify(self, notification: Notification) -> None:
        raise ConnectionError("SMTP menolak")


def test_a_failed_digest_is_flagged_on_every_case_it_lists(runtime_factory: Any) -> None:
    from bridge.plugins import load_plugins

    rules = Rules(RoutingDecision(ours=False, opd="Dinas Lingkungan Hidup", reason="x"))
    rt = runtime_factory(notifications={"digest_threshold": 2})
    rt.plugins = load_plugins(rt.settings, calendar=rt.calendar,
                              extra=[("rules", rules), ("broken", BrokenChannel())])
    ids = [new(rt, title=f"Limbah {n}") for n in range(3)]
    others = [new(rt, title="Limbah lain")]
    triage_new_cases(rt, ids, now=NOW)
    rt.dispatch_events()
    with rt.sessions() as s:
        flagged = {c.id: c.attention for c in s.scalars(select(Case))}
        failed = sorted(s.scalars(select(CaseEvent.case_id)
                                  .where(CaseEvent.kind == "plugin_failed")))
    assert failed == ids
    for cid in ids:
        assert flagged[cid] is not None and "SMTP menolak" in flagged[cid]
    assert flagged[others[0]] is None
    assert not pending_notes(rt)


def test_the_setting_is_checked(runtime_factory: Any) -> None:
    rt = runtime_factory(notifications={"digest_threshold": -1})
    with pytest.raises(ConfigError, match="digest_threshold"):
        renderer_from_settings(rt.settings)
    rt = runtime_factory()
    assert renderer_from_settings(rt.settings).digest_threshold == 20
