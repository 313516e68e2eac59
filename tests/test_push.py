"""Push worker: each failure class with respx, then the real sandbox with faults on."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from bridge.services.actions import Actor, NewCase
from bridge.services.outbox import list_outbox, retry
from bridge.store.models import Case, OutboxRow
from bridge.sync.push import Pusher, marker, markers_in

BASE = "http://lapor.test"
ANALIS = Actor("Budi", "analis")
PETUGAS = Actor("Sari", "petugas")
KASI = Actor("Dewi", "kasi")
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def handling_case(rt: Any, lapor_id: int) -> int:
    """A case that LAPOR! knows, in the handling stage (follow-ups allowed)."""
    a = rt.actions()
    cid = a.new_case(NewCase(title="Jalan rusak", content="Berlubang", channel="surat"),
                     PETUGAS).case_id
    with rt.sessions() as s, s.begin():
        case = s.get(Case, cid)
        assert case is not None
        case.lapor_id = lapor_id
        s.query(OutboxRow).filter(OutboxRow.case_id == cid).delete()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    a.classify(cid, ANALIS, "ringan")
    a.dispose(cid, KASI, "Seksi")
    return cid


def pusher(rt: Any, client: Any, now: datetime | None = None) -> Pusher:
    return Pusher(client, rt.sessions, rt.settings, clock=lambda: now or datetime.now(UTC))


def rows(rt: Any) -> list[OutboxRow]:
    with rt.sessions() as s:
        return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


def ok(new_id: int) -> httpx.Response:
    return httpx.Response(200, json={"results": {"data": {"id": new_id}}})


def listing(*contents: str) -> httpx.Response:
    data = [{"id": 900 + i, "complaint_id": 1, "content": c,
             "created_at": "01-11-2026 10:00:00"} for i, c in enumerate(contents)]
    return httpx.Response(200, json={"results": {"data": data, "next_page_url": None}})


@pytest.fixture
def rt(runtime_factory: Any) -> Any:
    return runtime_factory(BASE)


@respx.mock
def test_delivered_and_remote_id_stored(rt: Any) -> None:
    cid = handling_case(rt, 101)
    rt.actions().followup(cid, ANALIS, "Sudah dicek ke lapangan.")
    post = respx.post(f"{BASE}/complaints/followup/add").mock(return_value=ok(555))
    with rt.client() as client:
        result = pusher(rt, client).run()
    assert result.delivered == 1 and post.call_count == 1
    sent = post.calls[0].request.content.decode()
    assert "Sudah dicek ke lapangan." in sent and marker(rows(rt)[0].id) in sent
    (row,) = rows(rt)
    assert (row.status, row.remote_id) == ("done", "555")


@respx.mock
@pytest.mark.parametrize("applied", [True, False])
def test_post_timed_out_read_back_before_posting_again(rt: Any, applied: bool) -> None:
    cid = handling_case(rt, 102)
    rt.actions().followup(cid, ANALIS, "Tindak lanjut pertama")
    row_id = rows(rt)[0].id
    post = respx.post(f"{BASE}/complaints/followup/add").mock(
        side_effect=[httpx.ReadTimeout("slow"), ok(777)])
    back = respx.get(f"{BASE}/complaints/102/followups").mock(
        return_value=listing(f"Tindak lanjut pertama\n\n{marker(row_id)}") if applied
        else listing("jawaban lain"))
    with rt.client() as client:
        first = pusher(rt, client).run()
        assert first.retried == 1 and rows(rt)[0].uncertain
        second = pusher(rt, client, FAR_FUTURE).run()
    assert back.call_count == 1
    assert post.call_count == (1 if applied else 2)  # never posted twice when applied
    assert second.delivered == 1 and second.confirmed_by_readback == (1 if applied else 0)
    assert rows(rt)[0].status == "done"


@respx.mock
def test_server_error_after_apply_is_found_by_marker(rt: Any) -> None:
    cid = handling_case(rt, 103)
    rt.actions().followup(cid, ANALIS, "Teks")
    row_id = rows(rt)[0].id
    post = respx.post(f"{BASE}/complaints/followup/add").mock(
        return_value=httpx.Response(500, json={"message": "oops"}))
    respx.get(f"{BASE}/complaints/103/followups").mock(
        return_value=listing(f"Teks\n\n{marker(row_id)}"))
    with rt.client() as client:
        pusher(rt, client).run()
        pusher(rt, client, FAR_FUTURE).run()
    assert post.call_count == 1 and rows(rt)[0].status == "done"


@respx.mock
def test_422_dead_letter_blocks_later_rows_of_its_case_only(rt: Any) -> None:
    c1 = handling_case(rt, 104)
    c2 = handling_case(rt, 105)
    a = rt.actions()
    a.followup(c1, ANALIS, "satu")
    a.followup(c1, ANALIS, "dua")
    a.followup(c2, ANALIS, "lain")
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = request.content.decode()
        calls.append(body)
        if "satu" in body:
            return httpx.Response(422, json={"message": "The given data was invalid.",
                                             "errors": {"content": ["Isi terlalu pendek."]}})
        return ok(len(calls))

    respx.post(f"{BASE}/complaints/followup/add").mock(side_effect=answer)
    with rt.client() as client:
        result = pusher(rt, client).run()
    assert result.dead == 1 and result.delivered == 1
    with rt.sessions() as s:
        views = {v.id: v for v in list_outbox(s)}
    states = sorted((v.state, v.reason or "") for v in views.values())
    assert states[0][0] == "dead" and "Isi terlalu pendek." in states[0][1]
    assert states[1][0] == "waiting" and "menunggu" in states[1][1]
    assert not any("dua" in c for c in calls)  # never overtook the dead row
    with rt.sessions() as s:
        case = s.get(Case, c1)
        assert case is not None and case.attention and "Isi terlalu pendek" in case.attention

    # After the cause is fixed, the dead letter is retried alone, then the rest follows.
    respx.post(f"{BASE}/complaints/followup/add").mock(return_value=ok(9))
    dead_id = next(v.id for v in views.values() if v.state == "dead")
    with rt.sessions() as s, s.begin():
        retry(s, dead_id, "operator")
    with rt.client() as client:
        again = pusher(rt, client).run()
    assert again.delivered == 2
    assert all(r.status == "done" for r in rows(rt))


@respx.mock
def test_bad_credentials_abort_without_touching_rows(rt: Any) -> None:
    cid = handling_case(rt, 106)
    rt.actions().followup(cid, ANALIS, "x")
    respx.post(f"{BASE}/complaints/followup/add").mock(
        return_value=httpx.Response(401, json={"message": "Unauthenticated."}))
    with rt.client() as client:
        result = pusher(rt, client).run()
    assert result.errors and "credentials" in result.errors[0]
    (row,) = rows(rt)
    assert (row.status, row.attempts) == ("pending", 0)


@respx.mock
def test_too_many_attempts_become_dead(runtime_factory: Any) -> None:
    rt = runtime_factory(BASE, outbox={"max_attempts": 2, "backoff_initial": 0.01})
    cid = handling_case(rt, 107)
    rt.actions().followup(cid, ANALIS, "x")
    respx.post(f"{BASE}/complaints/followup/add").mock(
        return_value=httpx.Response(502, text="<html>Bad Gateway</html>"))
    respx.get(f"{BASE}/complaints/107/followups").mock(return_value=listing())
    with rt.client() as client:
        pusher(rt, client).run()
        pusher(rt, client, FAR_FUTURE).run()
    (row,) = rows(rt)
    assert row.status == "dead" and "gave up after 2 attempts" in (row.last_error or "")


@respx.mock
def test_forward_body_and_uncertain_forward(rt: Any) -> None:
    a = rt.actions()
    cid = a.new_case(NewCase(title="Sengketa", content="tanah", channel="surat"),
                     PETUGAS).case_id
    with rt.sessions() as s, s.begin():
        case = s.get(Case, cid)
        assert case is not None
        case.lapor_id = 108
        s.query(OutboxRow).delete()
    a.register(cid, PETUGAS)
    a.forward(cid, KASI, "BPN", ["Pelapor"], "urusan pertanahan")
    # The surat penerusan goes first, as a follow-up on our side; then the forward.
    letter = respx.post(f"{BASE}/complaints/followup/add").mock(return_value=ok(31))
    reject = respx.post(f"{BASE}/complaints/process/108/reject").mock(
        side_effect=[httpx.ReadTimeout("slow")])
    detail = respx.get(f"{BASE}/complaints/108/complaint").mock(return_value=httpx.Response(
        200, json={"results": {"data": {"id": 108, "status_code": "2", "status_name": "x",
                                        "disposition_id": 114}, "data_logs": []}}))
    with rt.client() as client:
        pusher(rt, client).run()
        pusher(rt, client, FAR_FUTURE).run()
    assert letter.call_count == 1 and b"surat_penerusan-" in letter.calls[0].request.content
    assert reject.call_count == 1 and detail.call_count == 1
    assert [r.status for r in rows(rt)] == ["done", "done"]
    # lapor-v3 (the default profile) sends the forward as a JSON body.
    body = json.loads(reject.calls[0].request.content)
    assert body["not_authority"] == 1 and body["reason"] == 114


# -- the real sandbox, with faults -----------------------------------------------------


def set_stage(rt: Any, cid: int, stage: str) -> None:
    with rt.sessions() as s, s.begin():
        case = s.get(Case, cid)
        assert case is not None
        case.stage = stage


#: Follow-ups and forwards (one in ten) queued before the faulty pushes. 500 meet every
#: fault kind many times over (the counters are checked); 1000 proved nothing more and
#: cost the suite ~10 s of CPU (each forward lays out its letter's PDF).
ACTIONS = 500


@pytest.mark.slow
def test_hundreds_of_actions_exactly_once_in_order_under_faults(runtime_factory: Any) -> None:
    from bridge.lapor.sandbox import SandboxServer
    from bridge.sync.pull import Puller  # noqa: F401  (pull fills the store first)
    from tests.support.settings import TEST_BEARER, TEST_TOKEN

    faults = {"error_rate": 0.2, "apply_then_fail_rate": 0.1, "slow_after_apply_s": 0.6,
              "throttle_every": 40, "throttle_burst": 3, "retry_after_s": 0,
              "drop_rate": 0.05, "seed": 11}
    with SandboxServer(seed=3, reports=200, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        rt = runtime_factory(sandbox.url, lapor={"read_timeout": 0.4, "max_attempts": 8,
                                                 "requests_per_second": 2000},
                             outbox={"concurrency": 8, "max_attempts": 50,
                                     "backoff_initial": 0.01, "backoff_max": 0.02})
        with rt.client() as client:
            rt.puller(client).run()
        with rt.sessions() as s, s.begin():
            # Put every case where follow-ups are allowed (the workflow is tested elsewhere).
            for case in s.scalars(select(Case)):
                case.stage = "handling"
            case_ids = list(s.scalars(select(Case.id)))
        rng = random.Random(5)
        a = rt.actions()
        expected: dict[int, list[str]] = defaultdict(list)
        opds = ["DLH", "PUPR"]
        for n in range(ACTIONS):
            cid = rng.choice(case_ids)
            if rng.random() < 0.1:
                set_stage(rt, cid, "classified")
                res = a.forward(cid, KASI, rng.choice(opds), ["Pelapor"], f"n{n}")
                set_stage(rt, cid, "handling")  # keep acting on it
            else:
                res = a.followup(cid, ANALIS, f"Tindak lanjut nomor {n}")
            expected[cid].extend(str(i) for i in res.outbox_ids)
        sandbox.state.set_faults(faults)
        with rt.client() as client:
            p = Pusher(client, rt.sessions, rt.settings)
            for _ in range(200):
                p.run()
                if all(r.status == "done" for r in rows(rt)):
                    break
                # Let backoffs expire without sleeping the test for long.
                p.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
        sandbox.state.set_faults(None)
        assert [r.status for r in rows(rt) if r.status != "done"] == []
        counters = sandbox.state.counters()
        assert counters.get("apply_then_fail_500", 0) + counters.get("slow_after_apply", 0) > 0
        assert counters.get("drop", 0) + counters.get("drop_after_apply", 0) > 0

        with rt.sessions() as s:
            lapor_of = {cid: lid for cid, lid in s.execute(select(Case.id, Case.lapor_id))}
        total = 0
        for cid, outbox_ids in expected.items():
            posted = sandbox.state.followups_of(int(lapor_of[cid]))
            markers = [str(m) for f in posted for m in markers_in(f["content"])]
            assert markers == outbox_ids, f"case {cid}: order or count differs"
            total += len(markers)
        assert total == ACTIONS


@respx.mock
def test_each_row_is_committed_in_flight_before_its_post(rt: Any) -> None:
    # What another connection sees while LAPOR! receives each POST: that row uncertain
    # (so a crash now reads back first), the row before it done, the row after it untouched.
    cid = handling_case(rt, 103)
    for text in ("satu", "dua", "tiga"):
        rt.actions().followup(cid, ANALIS, f"Tindak lanjut {text}")
    ids = [r.id for r in rows(rt)]
    seen: list[list[tuple[str, bool]]] = []

    def on_post(request: httpx.Request) -> httpx.Response:
        seen.append([(r.status, r.uncertain) for r in rows(rt)])
        return ok(600 + len(seen))

    respx.post(f"{BASE}/complaints/followup/add").mock(side_effect=on_post)
    with rt.client() as client:
        result = pusher(rt, client).run()
    assert result.delivered == 3
    assert seen == [
        [("pending", True), ("pending", False), ("pending", False)],
        [("done", False), ("pending", True), ("pending", False)],
        [("done", False), ("done", False), ("pending", True)],
    ]
    assert [(r.id, r.status, r.remote_id) for r in rows(rt)] == [
        (ids[0], "done", "601"), (ids[1], "done", "602"), (ids[2], "done", "603")]


@respx.mock
def test_a_stop_records_the_delivered_row_and_claims_no_more(rt: Any) -> None:
    cid = handling_case(rt, 104)
    rt.actions().followup(cid, ANALIS, "Tindak lanjut")
    rt.actions().followup(cid, ANALIS, "Tindak lanjut kedua")
    first_id = rows(rt)[0].id
    with rt.client() as client:
        p = pusher(rt, client)

        def post_then_stop(request: httpx.Request) -> httpx.Response:
            p.stop.set()  # a shutdown while the first POST is out
            return ok(700)

        post = respx.post(f"{BASE}/complaints/followup/add").mock(side_effect=post_then_stop)
        assert p.run().delivered == 1  # recorded, and the next row not claimed
        assert [(r.status, r.uncertain) for r in rows(rt)] == [("done", False),
                                                              ("pending", False)]
        assert post.call_count == 1
    assert rows(rt)[0].id == first_id
