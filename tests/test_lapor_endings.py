"""LAPOR! hears the end (issue 13, item 4): closing, archiving, the complainant's verdict
and reopening each post the follow-up the profile words (template code, text, rating),
through the outbox, against the real sandbox in both dialects; LAPOR!'s status change is
read back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bridge.lapor.sandbox import SandboxServer
from bridge.services.actions import Actor
from bridge.store.models import Case
from bridge.sync.push import strip_markers
from bridge.workflow import build_workflow
from bridge.workflow.errors import WorkflowProfileError
from tests.support.settings import TEST_BEARER, TEST_TOKEN

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")
KABID = Actor("Hendra", "kabid")
KADIS = Actor("Rina", "kepala_dinas")


@pytest.fixture
def sandbox(dialect: str) -> Iterator[SandboxServer]:
    with SandboxServer(seed=3, reports=3, bearer=TEST_BEARER, token=TEST_TOKEN,
                       bearer_header="Authorization", dialect=dialect) as server:
        yield server


def _sync(rt: Any) -> None:
    with rt.client() as client:
        rt.pusher(client).run()
        rt.puller(client).run()


def _answered(rt: Any, cid: int) -> None:
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, "sedang")
    a.dispose(cid, KASI, "Seksi Pengaduan")
    a.record_step(cid, ANALIS, "konsep_jawaban", "konsep v1")
    a.approve(cid, KABID, "surat_jawaban")
    a.approve(cid, KADIS, "surat_jawaban")
    a.answer_delivered(cid, PETUGAS, "Izin Anda terbit hari ini.")


def _status(rt: Any, cid: int) -> str | None:
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        return case.remote_status_code


def test_verdict_closes_the_report_and_reopening_opens_it(
        runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect)
    with rt.client() as client:
        rt.puller(client).run()
    with rt.sessions() as s:
        case = s.scalars(select(Case).order_by(Case.id)).first()
        assert case is not None
        cid, rid, register_no = case.id, int(case.lapor_id or 0), case.register_no
    _answered(rt, cid)
    a = rt.actions()
    a.satisfaction(cid, PETUGAS, True, "Disampaikan lewat telepon")
    _sync(rt)
    last = sandbox.state.followups_of(rid)[-1]
    assert (last["template_code"], last["rating"]) == ("TL-SELESAI", 5)
    assert strip_markers(last["content"]) == (
        f"Pengadu menyatakan puas atas penyelesaian pengaduan No. Register {register_no}. "
        "Pengaduan selesai. Terima kasih. Disampaikan lewat telepon")
    assert sandbox.state.report(rid)["status_code"] == "3"
    assert _status(rt, cid) == "3"  # read back: Selesai

    a.reopen(cid, KABID, "Pengadu melapor izin dicabut lagi")
    _sync(rt)
    last = sandbox.state.followups_of(rid)[-1]
    assert last["template_code"] == "TL-BUKA" and "buka kembali" in last["content"]
    assert _status(rt, cid) == "2"

    # Not satisfied: the verdict travels as the rating, and the report stays open.
    a.record_step(cid, ANALIS, "konsep_jawaban", "konsep v2")
    a.approve(cid, KABID, "surat_jawaban")
    a.approve(cid, KADIS, "surat_jawaban")
    a.answer_delivered(cid, PETUGAS, "Izin Anda dipulihkan.")
    a.satisfaction(cid, PETUGAS, False, "Masih ada denda")
    _sync(rt)
    last = sandbox.state.followups_of(rid)[-1]
    assert (last["template_code"], last["rating"]) == ("", 1)
    assert "belum puas" in last["content"] and "Masih ada denda" in last["content"]
    assert _status(rt, cid) == "2"


def test_close_and_archive_after_forward_say_what_the_profile_says(
        runtime_factory: Any, sandbox: SandboxServer) -> None:
    rt = runtime_factory(sandbox.url, dialect=sandbox.dialect, workflow={"lapor": {
        "close": {"template_code": "SELESAI-01", "text": "Selesai: {register_no}."}}})
    sandbox.state.status_templates["SELESAI-01"] = "3"
    with rt.client() as client:
        rt.puller(client).run()
    with rt.sessions() as s:
        first, second = s.scalars(select(Case).order_by(Case.id)).all()[:2]
        a_id, a_rid, a_no = first.id, int(first.lapor_id or 0), first.register_no
        b_id, b_rid = second.id, int(second.lapor_id or 0)
    a = rt.actions()
    # A returned, never completed case is closed: the office's own completion template.
    a.register(a_id, PETUGAS)
    a.return_incomplete(a_id, PETUGAS, "fotokopi KTP")
    a.close(a_id, PETUGAS, "tidak dilengkapi")
    # Not ours: forwarded to another body, then archived.
    a.register(b_id, PETUGAS)
    a.files_complete(b_id, PETUGAS)
    a.forward(b_id, PETUGAS, "BPN", note="Sengketa tanah")
    a.archive(b_id, PETUGAS, "Diteruskan ke Kantor Pertanahan")
    _sync(rt)
    last = sandbox.state.followups_of(a_rid)[-1]
    assert (last["template_code"], strip_markers(last["content"])) == (
        "SELESAI-01", f"Selesai: {a_no}.")
    assert _status(rt, a_id) == "3"
    last = sandbox.state.followups_of(b_rid)[-1]
    assert last["template_code"] == "TL-ARSIP" and "bukan merupakan kewenangan" in \
        last["content"]
    assert sandbox.state.report(b_rid)["status_code"] == "4"


@pytest.mark.parametrize(("section", "message"), [
    ({"close": {"text": "Selesai {nomor}"}}, "workflow.lapor.close.text: unknown field {nomor}"),
    ({"selesai": {"text": "x"}}, "workflow.lapor.selesai: unknown action 'selesai'"),
    ({"archive": {"from": ["gudang"]}}, "workflow.lapor.archive.from[0]: unknown stage"),
    ({"satisfied": {"rating": 9}}, "workflow.lapor.satisfied.rating"),
])
def test_bad_lapor_messages_are_named(section: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowProfileError, match=message.replace("{", r"\{").replace(
            "[", r"\[").replace("(", r"\(")):
        build_workflow({"lapor": section})
