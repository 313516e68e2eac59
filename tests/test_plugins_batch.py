"""Many calls of one hook handed to a plugin together (``classify_many``,
``route_many``): each call still isolated, answered in order and timed on its own; a call
past its limit leaves its worker, and the calls behind it run on a new one."""

from __future__ import annotations

import threading
import time
from typing import Any

from bridge.domain import Classification, RoutingDecision
from bridge.hookspecs import hookimpl
from bridge.testing import make_case, make_host


class PerTitle:
    """Answers by title: "rusak" raises, "lambat" hangs until released, "kosong" is no
    answer, "salah" is the wrong type; the others get a class named after their id."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.threads: set[int] = set()
        self.order: list[int] = []

    @hookimpl
    def classify_case(self, case: Any) -> Any:
        self.order.append(case.id)
        self.threads.add(threading.get_ident())
        if "rusak" in case.title:
            raise RuntimeError("tabel rusak")
        if "lambat" in case.title:
            self.release.wait(30)
        if "kosong" in case.title:
            return None
        if "salah" in case.title:
            return "sedang"
        return Classification("sedang", f"kasus {case.id}")


class Fallback:
    def __init__(self) -> None:
        self.asked: list[int] = []

    @hookimpl(trylast=True)
    def classify_case(self, case: Any) -> Classification:
        self.asked.append(case.id)
        return Classification("ringan", "bawaan")


def test_a_batch_is_answered_case_by_case_in_order() -> None:
    first, fallback = PerTitle(), Fallback()
    host = make_host(("fallback", fallback), ("first", first), timeout_seconds=0.3)
    titles = ["a", "rusak", "b", "lambat", "kosong", "c", "salah", "d"]
    cases = [make_case(id=n + 1, title=f"Jalan {t}") for n, t in enumerate(titles)]
    started = time.monotonic()
    outcomes = host.classify_many(cases, ("ringan", "sedang", "berat"))
    first.release.set()
    assert time.monotonic() - started < 5  # one time-out, not one per queued call
    assert first.order == [1, 2, 3, 4, 5, 6, 7, 8]  # every call made, in order
    got = {c.title.split()[1]: o for c, o in zip(cases, outcomes, strict=True)}
    for ok, cid in (("a", 1), ("b", 3), ("c", 6), ("d", 8)):
        assert (got[ok].value, got[ok].plugin, got[ok].failures) == (
            Classification("sedang", f"kasus {cid}"), "first", ())
    kinds = {t: [(f.plugin, f.kind, f.case_id) for f in got[t].failures]
             for t in ("rusak", "lambat", "kosong", "salah")}
    assert kinds == {"rusak": [("first", "error", 2)], "lambat": [("first", "timeout", 4)],
                     "kosong": [], "salah": [("first", "bad_return", 7)]}
    # The next plugin is asked only about what the first left open.
    assert fallback.asked == [2, 4, 5, 7]
    assert all(got[t].value == Classification("ringan", "bawaan")
               for t in ("rusak", "lambat", "kosong", "salah"))
    # The hung call's worker was left behind: the calls after it ran on another thread.
    assert len(first.threads) == 2


def test_route_many_checks_each_answer() -> None:
    class Router:
        @hookimpl
        def route_case(self, case: Any) -> RoutingDecision:
            return RoutingDecision(ours=False, opd="DLH" if case.id % 2 else "Dinas X")

    host = make_host(("router", Router()))
    outcomes = host.route_many([make_case(id=n) for n in (1, 2, 3)], ["DLH"])
    assert [o.value.opd if o.value else None for o in outcomes] == ["DLH", None, "DLH"]
    assert [f.kind for f in outcomes[1].failures] == ["bad_return"]
    assert "unknown OPD 'Dinas X'" in outcomes[1].failures[0].message
