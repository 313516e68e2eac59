"""Both sides change: LAPOR! owns its status and what the complainant adds; the local side
owns its stages and drafts. Neither loses the other's change (docs/sync.md)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bridge.lapor.sandbox import SandboxServer
from bridge.services.actions import Actor
from bridge.store.models import Case, CaseEvent, OutboxRow
from tests.support.sync import pull

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")


pytestmark = pytest.mark.sandbox(seed=9, reports=5)
#: A test using the sandbox runs once for each dialect it speaks.
each_dialect = pytest.mark.usefixtures("dialect")


@each_dialect
def test_remote_change_with_rows_in_the_outbox_loses_neither(runtime_factory: Any,
                                                             sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    pull(rt)
    with rt.sessions() as s:
        case = s.scalars(select(Case).order_by(Case.id)).first()
        assert case is not None
        cid, lapor_id = case.id, case.lapor_id
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, "sedang")
    a.dispose(cid, KASI, "Seksi Pengaduan")
    a.followup(cid, ANALIS, "Kami jadwalkan peninjauan lapangan.")
    # Meanwhile on LAPOR!: the complainant adds detail and the admin changes the status.
    sandbox.state.change_report(lapor_id, content="Tambahan: sudah 2 minggu.",
                                status_code="2", status_name="Dalam Proses")
    pull(rt)
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        # Remote-owned fields follow LAPOR!...
        assert case.content == "Tambahan: sudah 2 minggu."
        assert case.remote_status_code == "2"
        # ...local-owned ones keep what staff did.
        assert (case.stage, case.severity, case.assigned_to) == (
            "handling", "sedang", "Seksi Pengaduan")
        (row,) = s.scalars(select(OutboxRow).where(OutboxRow.case_id == cid)).all()
        assert row.status == "pending"
    with rt.client() as client:
        assert rt.pusher(client).run().delivered == 1
    assert any("peninjauan lapangan" in f["content"]
               for f in sandbox.state.followups_of(lapor_id))
    # Our own follow-up comes back as a LAPOR! change of status/updated_at: still no loss.
    pull(rt)
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.stage == "handling" and case.severity == "sedang"
        kinds = [e.kind for e in s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid))]
    assert kinds.count("followup") == 1 and "remote_changed" in kinds


@each_dialect
def test_stale_page_never_overwrites_newer_data(runtime_factory: Any,
                                                sandbox: SandboxServer) -> None:
    from datetime import timedelta

    from bridge.lapor.models import Page, RemoteComplaint
    from bridge.sync.pull import Puller

    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    pull(rt)
    with rt.sessions() as s:
        case = s.scalars(select(Case).order_by(Case.id)).first()
        assert case is not None and case.raw is not None
        with rt.client() as client:
            newer, _ = client.parse_item(case.raw, RemoteComplaint)
        assert newer is not None
    older = newer.model_copy(update={"title": "judul lama",
                                     "updated_at": newer.updated_at - timedelta(hours=1)})

    class Replay:
        def inbox_page(self, updated_since: Any, page: int = 1, page_size: Any = None
                       ) -> Page[RemoteComplaint]:
            return Page[RemoteComplaint](items=[older], next_page_url=None)

    result = Puller(Replay(), rt.sessions, rt.register_format, page_size=50,
                    lookback=timedelta(0)).run()
    assert result.stale == 1 and result.updated == 0
    with rt.sessions() as s:
        again = s.get(Case, case.id)
        assert again is not None and again.title == newer.title
