"""Forwarding inside the deployment: two bodies (two Runtimes on two SQLite files) on one
multi-institution sandbox. A forward from body A to body B puts the case in B's queue
once, with the tembusan and A's files; A's case shows B's stage and answers; a case B
gives back returns to A's queue; LAPOR! hears what the API profile says."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bridge.app.cycle import run_cycle
from bridge.config import settings_from_mapping
from bridge.lapor.sandbox.multi import MultiSandboxServer
from bridge.runtime import Runtime
from bridge.services.actions import ActionNotAllowed, Actor, NewCase, Upload
from bridge.services.internal_forward import (
    DELIVERED,
    FINISHED,
    PENDING,
    RETURNED,
    InternalForwarding,
    forward_views,
    return_forward,
)
from bridge.store.models import Case, InternalArrival, InternalForward, OutboxRow, StoredFile
from tests.support.databases import migrated_sqlite
from tests.support.settings import BASE_CONFIG

PETUGAS = Actor("Sari (front office)", "petugas")
ANALIS = Actor("Budi (analis)", "analis")
KASI = Actor("Dewi (kasi)", "kasi")
A_ID, B_ID = 11, 12


def body_settings(tmp: Path, sandbox: MultiSandboxServer, code: str, name: str, iid: int,
                  other: tuple[str, str, int], mode: str) -> Any:
    data: dict[str, Any] = copy.deepcopy(BASE_CONFIG)
    data["regency"] = {**data["regency"], "code": code, "name": name}
    data["lapor"] = {**data["lapor"], "base_url": sandbox.url, "bearer_header": "auth",
                     "institution_id": iid, "api": {"internal_forward": mode}}
    data["database"] = {"url": migrated_sqlite(tmp / (code.lower() + ".db"))}
    data["opds"] = [{"code": other[0], "name": other[1], "lapor_institution_id": other[2]}]
    secrets = sandbox.secrets(iid)
    return settings_from_mapping(data, source=f"{code}.toml", env={
        "LAPOR_BRIDGE_BEARER": secrets.bearer.get_secret_value(),  # type: ignore[union-attr]
        "LAPOR_BRIDGE_TOKEN": secrets.token.get_secret_value()})  # type: ignore[union-attr]


class Pemda:
    def __init__(self, tmp: Path, mode: str) -> None:
        self.sandbox = MultiSandboxServer({A_ID: "DPMPTSP Kab. Uji", B_ID: "DLH Kab. Uji"},
                                          reports=3).start()
        self.a = Runtime(body_settings(tmp, self.sandbox, "DPM", "DPMPTSP Kab. Uji", A_ID,
                                       ("DLH", "Dinas Lingkungan Hidup", B_ID), mode))
        self.b = Runtime(body_settings(tmp, self.sandbox, "DLH", "DLH Kab. Uji", B_ID,
                                       ("DPM", "DPMPTSP", A_ID), mode))
        self.a.body_code, self.b.body_code = "DPM", "DLH"
        bodies = {"DPM": self.a.as_receiver(), "DLH": self.b.as_receiver()}
        self.a.receivers = self.b.receivers = bodies.get

    def close(self) -> None:
        self.a.close()
        self.b.close()
        self.sandbox.stop()

    def b_cases(self, **where: Any) -> list[Case]:
        with self.b.sessions() as s:
            stmt = select(Case).filter_by(**where).order_by(Case.id)
            out = list(s.scalars(stmt))
            s.expunge_all()
            return out

    def forward_row(self, case_id: int) -> InternalForward:
        with self.a.sessions() as s:
            row = s.scalars(select(InternalForward).where(
                InternalForward.case_id == case_id).order_by(InternalForward.id.desc())).first()
            assert row is not None
            s.expunge(row)
            return row


@pytest.fixture(params=["disposition", "followup"])
def pemda(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pemda]:
    p = Pemda(tmp_path, str(request.param))
    yield p
    p.close()


def verified(rt: Runtime, case_id: int) -> None:
    acts = rt.actions()
    acts.register(case_id, PETUGAS)
    acts.files_complete(case_id, PETUGAS)


def test_forward_from_lapor_reaches_receiver_queue_once(pemda: Pemda) -> None:
    mode = pemda.a.settings.lapor.api["internal_forward"]
    run_cycle(pemda.a)
    with pemda.a.sessions() as s:
        case_id, lapor_id, tracking = s.execute(
            select(Case.id, Case.lapor_id, Case.tracking_id).order_by(Case.id)).first()
    verified(pemda.a, case_id)
    done = pemda.a.actions().forward(case_id, KASI, "DLH", tembusan=["Pelapor", "Bupati Uji"],
                                     note="Izin lingkungan kewenangan DLH")
    assert done.stage == "forwarded"
    # Committed with the forward, delivered by the cycle: nothing in B's queue yet.
    assert pemda.forward_row(case_id).status == PENDING
    assert pemda.b_cases(lapor_id=lapor_id) == []

    run_cycle(pemda.a)
    run_cycle(pemda.a)  # a second cycle delivers nothing twice
    [got] = pemda.b_cases(lapor_id=lapor_id)
    assert got.tracking_id == tracking and got.stage == "received" and got.is_new
    origin = got.data["origin"]
    assert (origin["body"], origin["case_id"]) == ("DPM", case_id)
    assert origin["tembusan"] == ["Pelapor", "Bupati Uji"]
    assert origin["reason"] == "Izin lingkungan kewenangan DLH"
    row = pemda.forward_row(case_id)
    assert (row.status, row.remote_case_id) == (DELIVERED, got.id)

    # LAPOR! heard what the profile says, once.
    sender = pemda.sandbox.state(A_ID)
    to_b = [f for f in sender.followups_of(lapor_id) if f["institution_to"]["id"] == B_ID]
    if mode == "disposition":
        assert sender.report(lapor_id)["disposition_id"] == B_ID
        assert sender.writes["forwards"] == 1 and to_b == []
        # B's LAPOR! account now lists it: B's own pull finds the same case, not a new one.
        assert lapor_id in pemda.sandbox.state(B_ID).inbox_ids()
    else:
        assert sender.report(lapor_id)["disposition_id"] == A_ID
        assert sender.writes["forwards"] == 0 and len(to_b) == 1
        assert "Dinas Lingkungan Hidup" in to_b[0]["content"]
    run_cycle(pemda.b)
    [again] = pemda.b_cases(lapor_id=lapor_id)
    assert again.id == got.id and again.data["origin"]["body"] == "DPM"


def test_delivery_after_a_crash_makes_one_case_with_the_files(
        pemda: Pemda, monkeypatch: pytest.MonkeyPatch) -> None:
    acts = pemda.a.actions()
    photo = Upload("foto_limbah.jpg", b"\xff\xd8 limbah cair di selokan", "image/jpeg")
    case_id = acts.new_case(NewCase(title="Limbah pabrik tahu", content="Bau menyengat.",
                                    channel="surat", reporter={"name": "Siti"},
                                    attachments=[photo]), PETUGAS).case_id
    verified(pemda.a, case_id)
    acts.forward(case_id, KASI, "DLH", tembusan=["Pelapor"])

    real = InternalForwarding._mark_delivered
    calls = {"n": 0}

    def crash_once(self: InternalForwarding, *args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("sender's database went away")
        real(self, *args)

    monkeypatch.setattr(InternalForwarding, "_mark_delivered", crash_once)
    forwarding = pemda.a.forwarding()
    assert forwarding is not None
    first = forwarding.deliver()
    assert (first.delivered, first.retried) == (0, 1)
    # The receiver committed, the sender did not hear of it: still pending.
    assert pemda.forward_row(case_id).status == PENDING
    assert len(pemda.b_cases(title="Limbah pabrik tahu")) == 1
    with pemda.a.sessions() as s, s.begin():
        s.get(InternalForward, pemda.forward_row(case_id).id).next_attempt_at = None
    assert forwarding.deliver().delivered == 1
    [got] = pemda.b_cases(title="Limbah pabrik tahu")
    assert pemda.forward_row(case_id).status == DELIVERED
    with pemda.b.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InternalArrival)) == 1
        # The photo, and the surat penerusan the forward printed: each once.
        stored, letter = s.scalars(select(StoredFile).where(
            StoredFile.case_id == got.id).order_by(StoredFile.id)).all()
        assert letter.name.startswith("surat_penerusan-") and letter.content[:5] == b"%PDF-"
        assert (stored.name, stored.content) == (photo.name, photo.content)
    assert got.attachments == [{"id": f"local-{stored.id}", "name": "foto_limbah.jpg",
                                "size": len(photo.content), "mime": "image/jpeg"}]
    assert got.reporter == {"name": "Siti"} and got.channel == "surat"


def test_sender_sees_receiver_stage_and_answers_until_it_ends(pemda: Pemda) -> None:
    a, b = pemda.a, pemda.b
    case_id = a.actions().new_case(NewCase(title="Kebisingan genset", content="Tiap malam.",
                                           channel="telepon"), PETUGAS).case_id
    verified(a, case_id)
    a.actions().forward(case_id, KASI, "DLH")
    [before] = forward_views(a.sessions, case_id, a.receivers)
    assert (before.status, before.stage) == (PENDING, None)
    run_cycle(a)
    [got] = pemda.b_cases(title="Kebisingan genset")
    bacts = b.actions()
    verified(b, got.id)
    bacts.classify(got.id, ANALIS, "sedang")
    bacts.dispose(got.id, KASI, "Seksi Pengendalian Pencemaran")
    bacts.followup(got.id, ANALIS, "Petugas DLH memeriksa lokasi besok pagi.")
    [view] = forward_views(a.sessions, case_id, a.receivers)
    assert view.live and (view.stage, view.stage_label) == ("handling", "Dalam penanganan")
    assert view.register_no == got.register_no and view.to_name == "Dinas Lingkungan Hidup"
    assert [x["text"] for x in view.answers] == ["Petugas DLH memeriksa lokasi besok pagi."]

    # The receiver ends it: the sender keeps the last state and stops following.
    with b.sessions() as s, s.begin():
        s.get(Case, got.id).stage = "closed"
    run_cycle(a)
    assert pemda.forward_row(case_id).status == FINISHED
    [final] = forward_views(a.sessions, case_id, None)  # the receiver not even reachable
    assert (final.stage, final.ended, final.live) == ("closed", True, False)
    assert final.answers[0]["text"].startswith("Petugas DLH")


def test_receiver_gives_it_back_to_the_sender_queue(pemda: Pemda) -> None:
    mode = pemda.a.settings.lapor.api["internal_forward"]
    a, b = pemda.a, pemda.b
    run_cycle(a)
    with a.sessions() as s:
        case_id, lapor_id = s.execute(select(Case.id, Case.lapor_id).order_by(Case.id)).first()
    verified(a, case_id)
    a.actions().forward(case_id, KASI, "DLH", tembusan=["Pelapor"])
    run_cycle(a)
    [got] = pemda.b_cases(lapor_id=lapor_id)
    with pytest.raises(ActionNotAllowed, match="roles"):
        return_forward(b.actions(), got.id, ANALIS, "bukan kami")
    back = return_forward(b.actions(), got.id, KASI, "Izin gangguan kewenangan DPMPTSP")
    assert back.stage == "forwarded"
    with pytest.raises(ActionNotAllowed, match="given back already"):
        return_forward(b.actions(), got.id, KASI, "lagi")
    with b.sessions() as s:
        told = s.scalars(select(OutboxRow).where(OutboxRow.case_id == got.id)).all()
    if mode == "disposition":
        assert [(r.kind, r.payload["institution_id"]) for r in told] == [("forward", A_ID)]
    else:
        assert [(r.kind, r.payload["institution_to_id"]) for r in told] == [
            ("followup", A_ID)]

    run_cycle(b)  # B tells LAPOR!
    if mode == "disposition":
        assert pemda.sandbox.state(A_ID).report(lapor_id)["disposition_id"] == A_ID
    run_cycle(a)
    with a.sessions() as s:
        case = s.get(Case, case_id)
        assert case.stage == "verified" and case.forwarded_to is None
        assert "Izin gangguan kewenangan DPMPTSP" in (case.attention or "")
    assert pemda.forward_row(case_id).status == RETURNED
    [view] = forward_views(a.sessions, case_id, a.receivers)
    assert view.returned and view.return_note == "Izin gangguan kewenangan DPMPTSP"

    # Forwarded again: B's same case comes back into its queue, not a second one.
    a.actions().forward(case_id, KASI, "DLH")
    run_cycle(a)
    [again] = pemda.b_cases(lapor_id=lapor_id)
    assert (again.id, again.stage) == (got.id, "received")
    assert pemda.forward_row(case_id).status == DELIVERED
    with a.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow).where(
            OutboxRow.status != "done")) == 0


def test_sandbox_answers_each_institution_by_its_bearer_with_latency() -> None:
    import httpx

    with MultiSandboxServer([A_ID, B_ID], reports=2, faults={"latency_ms": 50}) as sandbox:
        seen = {}
        for iid in (A_ID, B_ID):
            secrets = sandbox.secrets(iid)
            headers = {"auth": f"Bearer {secrets.bearer.get_secret_value()}",  # type: ignore[union-attr]
                       "token": secrets.token.get_secret_value()}  # type: ignore[union-attr]
            got = httpx.get(f"{sandbox.url}/complaints/inbox", headers=headers).json()
            seen[iid] = sorted(item["id"] for item in got["results"]["data"])
        assert seen[A_ID] == sandbox.state(A_ID).inbox_ids() != seen[B_ID]
        assert not set(seen[A_ID]) & set(seen[B_ID])  # id ranges never overlap
        wrong = httpx.get(f"{sandbox.url}/complaints/inbox",
                          headers={"auth": "Bearer nope", "token": sandbox.token})
        assert wrong.status_code == 401
        admin = httpx.get(sandbox.admin_url(B_ID) + "/state").json()
        assert admin["institution_id"] == B_ID
        assert all(sandbox.state(i).counters()["latency"] == 1 for i in (A_ID, B_ID))
