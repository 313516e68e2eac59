"""Property tests (hypothesis) of the merge of remote and local changes (docs/sync.md).

The Puller is driven by fake inbox sources (no HTTP) on SQLite, with staff actions through
CaseActions in between:

1. any interleaving of remote versions (in any order, stale ones included, repeated) and
   local actions leaves the LAPOR!-owned fields equal to the newest version delivered, the
   local-owned fields as the local actions left them, one ``remote_changed`` event per real
   change applied (with exactly the changed fields), and never lets a stale version
   overwrite newer data;
2. a server that follows the paging contract but answers from lagging replicas (stale
   snapshots) and with clock skew within the look-back, read with tiny pages, ends with
   the store equal to the newest versions and a history chain without gaps or repeats.

The working-day calendar and the workflow have their own properties in
tests/test_workflow_properties.py.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import tempfile
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bridge.lapor.models import Page, RemoteComplaint
from bridge.runtime import Runtime
from bridge.services.actions import ActionError, Actor
from bridge.store.models import Case, CaseEvent
from bridge.sync.pull import PaginationError, Puller
from tests.support.settings import make_settings

PROPS = settings(max_examples=60, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

T0 = datetime(2026, 10, 1, 1, 0, tzinfo=UTC)
STATUS = {"1": "Terverifikasi", "2": "Dalam Proses", "3": "Selesai"}
ATTACHMENT = {"id": "77", "name": "foto.jpg", "url": "https://lapor.example/77", "size": 10,
              "mime": "image/jpeg"}

#: Wire field -> the case columns it sets.
COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title",),
    "content": ("content",),
    "category": ("category",),
    "location": ("location",),
    "status_code": ("remote_status_code", "remote_status_name"),
    "is_secret": ("is_secret",),
    "attachments": ("attachments",),
}
REMOTE_COLUMNS = tuple(c for cols in COLUMNS.values() for c in cols)
LOCAL_COLUMNS = ("register_no", "channel", "stage", "severity", "assigned_to", "forwarded_to",
                 "data", "files_complete_at")

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")

# -- a template database, copied per example (the schema is built once) -----------------

_TEMPLATE_DIR = Path(tempfile.mkdtemp(prefix="lb-merge-"))
atexit.register(shutil.rmtree, _TEMPLATE_DIR, True)
_template: Path | None = None


def fresh_runtime(**lapor: Any) -> Runtime:
    global _template
    if _template is None:
        _template = _TEMPLATE_DIR / "template.db"
        Runtime(make_settings(f"sqlite:///{_template}")).close()
    work = Path(tempfile.mkdtemp(dir=_TEMPLATE_DIR))
    shutil.copy(_template, work / "bridge.db")
    return Runtime(make_settings(f"sqlite:///{work / 'bridge.db'}", lapor=lapor))


# -- remote versions -------------------------------------------------------------------


@dataclass(frozen=True)
class Version:
    report: int
    updated_at: datetime
    fields: tuple[tuple[str, Any], ...]

    @property
    def key(self) -> tuple[datetime, int]:
        return (self.updated_at, self.report)

    def columns(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, value in self.fields:
            if name == "status_code":
                out["remote_status_code"], out["remote_status_name"] = value, STATUS[value]
            elif name == "attachments":
                out["attachments"] = [ATTACHMENT] if value else []
            else:
                out[COLUMNS[name][0]] = value
        return out

    def item(self) -> RemoteComplaint:
        f = dict(self.fields)
        return RemoteComplaint.model_validate({
            "id": self.report, "tracking_id": str(1_900_000 + self.report),
            "title": f["title"], "content": f["content"], "category": f["category"],
            "location": f["location"], "status_code": f["status_code"],
            "status_name": STATUS[f["status_code"]], "disposition_id": 1,
            "disposition_name": "DPMPTSP", "is_anonymous": 0, "is_secret": int(f["is_secret"]),
            "channel": "Website", "reporter": {"name": "Warga", "phone": "0812"},
            "attachments": [ATTACHMENT] if f["attachments"] else [],
            "created_at": T0.isoformat(), "updated_at": self.updated_at.isoformat(),
        })


# Small alphabets, so that a new version often changes nothing (a "touch") or one field.
remote_fields = st.fixed_dictionaries({
    "title": st.sampled_from(["Jalan rusak", "Lampu jalan mati"]),
    "content": st.sampled_from(["Berlubang", "Berlubang; sudah dua minggu", "<b>isi</b>"]),
    "category": st.sampled_from(["Infrastruktur Jalan", "Perizinan"]),
    "location": st.sampled_from(["Kel. Sukamaju, Kec. Sukamaju", "Desa Talun, Kec. Jatiroto"]),
    "status_code": st.sampled_from(sorted(STATUS)),
    "is_secret": st.booleans(),
    "attachments": st.booleans(),
}).map(lambda d: tuple(sorted(d.items())))


@st.composite
def histories(draw: st.DrawFn, max_reports: int = 3, max_versions: int = 5,
              spread: int = 600) -> dict[int, list[Version]]:
    """Per report, versions with strictly increasing updated_at (second resolution;
    different reports may share a second)."""
    n = draw(st.integers(1, max_reports))
    out: dict[int, list[Version]] = {}
    for report in range(1, n + 1):
        offsets = sorted(draw(st.sets(st.integers(0, spread), min_size=1,
                                      max_size=max_versions)))
        out[report] = [Version(report, T0 + timedelta(seconds=o), draw(remote_fields))
                       for o in offsets]
    return out


def real_changes(versions: list[Version]) -> int:
    return sum(1 for a, b in zip(versions, versions[1:], strict=False) if a.fields != b.fields)


# -- the store, read back ----------------------------------------------------------------


def case_of(rt: Runtime, report: int) -> Case | None:
    with rt.sessions() as s:
        return s.scalars(select(Case).where(Case.lapor_id == report)).first()


def remote_part(case: Case) -> dict[str, Any]:
    return {c: getattr(case, c) for c in REMOTE_COLUMNS}


def local_part(case: Case) -> dict[str, Any]:
    return {c: getattr(case, c) for c in LOCAL_COLUMNS}


def events(rt: Runtime, case_id: int, kind: str) -> list[CaseEvent]:
    with rt.sessions() as s:
        return list(s.scalars(select(CaseEvent).where(CaseEvent.case_id == case_id,
                                                      CaseEvent.kind == kind)
                              .order_by(CaseEvent.id)))


# -- local actions -----------------------------------------------------------------------

#: What staff may do next, by stage: each local step takes one of these (the walk goes on
#: through the workflow, so later remote changes meet cases in every stage).
NEXT_ACTIONS: dict[str, list[Any]] = {
    "received": [lambda a, cid: a.register(cid, PETUGAS)],
    "registered": [lambda a, cid: a.files_complete(cid, PETUGAS)],
    "verified": [lambda a, cid: a.classify(cid, ANALIS, "ringan"),
                 lambda a, cid: a.classify(cid, ANALIS, "berat"),
                 lambda a, cid: a.forward(cid, KASI, "DLH", ["Pelapor"], "kewenangan DLH")],
    "classified": [lambda a, cid: a.dispose(cid, KASI, "Seksi Penanganan"),
                   lambda a, cid: a.forward(cid, KASI, "PUPR", [], "kewenangan PUPR")],
}
#: Refused in most stages: a refusal must change nothing.
OUT_OF_TURN = [lambda a, cid: a.dispose(cid, KASI, "Seksi Lain"),
               lambda a, cid: a.register(cid, PETUGAS)]


@dataclass
class Expected:
    """What the store must hold for one report (the reference model)."""

    stored: Version | None = None
    diffs: list[set[str]] = field(default_factory=list)
    local: dict[str, Any] | None = None


def deliver(model: Expected, version: Version) -> None:
    if model.stored is None:
        model.stored = version
    elif version.updated_at < model.stored.updated_at:
        pass  # stale: never applied
    else:
        old, new = model.stored.columns(), version.columns()
        changed = {c for c in new if new[c] != old[c]}
        if changed:
            model.diffs.append(changed)
            model.stored = version
        else:
            # A touch: the stored time moves on, the fields stay.
            model.stored = Version(version.report, version.updated_at, model.stored.fields)


class Scripted:
    """An inbox that answers each run with one scripted page (whatever is asked)."""

    def __init__(self) -> None:
        self.page: list[RemoteComplaint] = []

    def inbox_page(self, updated_since: datetime | None, page: int = 1,
                   page_size: int | None = None) -> Page[RemoteComplaint]:
        return Page[RemoteComplaint](items=self.page, next_page_url=None, page=page)


def check_store(rt: Runtime, model: dict[int, Expected]) -> None:
    for report, exp in model.items():
        case = case_of(rt, report)
        if exp.stored is None:
            assert case is None
            continue
        assert case is not None, f"report {report} was delivered but is not stored"
        assert remote_part(case) == exp.stored.columns(), f"report {report}"
        assert case.remote_updated_at == exp.stored.updated_at
        if exp.local is not None:
            assert local_part(case) == exp.local, f"a pull changed local fields of {report}"
        assert len(events(rt, case.id, "received")) == 1
        changed = events(rt, case.id, "remote_changed")
        assert [set(e.changes or {}) for e in changed] == exp.diffs, f"history of {report}"
        for e in changed:
            for column, (old, new) in (e.changes or {}).items():
                assert old != new, f"{column}: a no-op recorded as a change"


#: (which case, which action, 0 = out of turn, how many actions in a row)
local_step = st.tuples(st.just("local"), st.tuples(st.integers(0, 10_000), st.integers(0, 10_000),
                                                  st.integers(0, 5), st.integers(1, 5)))
steps = st.lists(
    st.one_of(
        st.tuples(st.just("page"), st.lists(st.integers(0, 10_000), min_size=1, max_size=4)),
        local_step,
        local_step,
        st.tuples(st.just("again"), st.just(0)),
    ),
    min_size=2,
    max_size=20,
)


@PROPS
@given(history=histories(max_reports=2, max_versions=6), script=steps, data=st.data())
def test_any_interleaving_converges_to_newest_remote_and_keeps_local(
        history: dict[int, list[Version]], script: list[Any], data: st.DataObject) -> None:
    everything = [v for versions in history.values() for v in versions]
    # LAPOR!'s own order of changes: every version once, oldest first...
    honest = [("page", [everything.index(v)])
              for v in sorted(everything, key=lambda v: v.key)]
    # ...interleaved at random with the drawn steps (staff actions, repeated pages, pages
    # of any versions: stale ones, duplicates) while keeping its own order.
    mixed = data.draw(st.permutations([*(("h", i) for i in range(len(honest))),
                                       *(("s", i) for i in range(len(script)))]))
    walk = iter(honest)
    script = [next(walk) if tag == "h" else script[i] for tag, i in mixed]

    rt = fresh_runtime()
    source = Scripted()
    puller = Puller(source, rt.sessions, rt.register_format, page_size=10,
                    lookback=timedelta(0))
    actions = rt.actions()
    model = {r: Expected() for r in history}
    last_page: list[Version] = []
    try:
        for kind, arg in script:
            if kind in ("page", "again"):
                page = [everything[i % len(everything)] for i in arg] if kind == "page" \
                    else last_page
                last_page = page
                source.page = [v.item() for v in page]
                puller.run()
                # Within one page the newest version of an id wins, whatever its place.
                latest: dict[int, Version] = {}
                for v in page:
                    if v.report not in latest or v.key >= latest[v.report].key:
                        latest[v.report] = v
                for v in latest.values():
                    deliver(model[v.report], v)
                    if model[v.report].local is None:
                        case = case_of(rt, v.report)
                        assert case is not None
                        model[v.report].local = local_part(case)
            else:
                index, which, out_of_turn, times = arg
                stored = [r for r, m in model.items() if m.stored is not None]
                if not stored:
                    continue
                report = stored[index % len(stored)]
                case = case_of(rt, report)
                assert case is not None
                before_remote = remote_part(case)
                for n in range(times):
                    current = case_of(rt, report)
                    assert current is not None
                    before_local = local_part(current)
                    choices = NEXT_ACTIONS.get(current.stage, [])
                    if (out_of_turn == 0 and n == 0) or not choices:
                        choices = OUT_OF_TURN
                    try:
                        choices[which % len(choices)](actions, case.id)
                    except ActionError:
                        # A refused action changes nothing at all.
                        after = case_of(rt, report)
                        assert after is not None and local_part(after) == before_local
                after = case_of(rt, report)
                assert after is not None
                assert remote_part(after) == before_remote, "a local action changed LAPOR!'s fields"
                model[report].local = local_part(after)
            check_store(rt, model)
        # Every report ends at its newest version: nothing older can have overwritten it.
        for report, versions in history.items():
            case = case_of(rt, report)
            assert case is not None
            assert remote_part(case) == versions[-1].columns()
            assert case.remote_updated_at == versions[-1].updated_at
            assert len(model[report].diffs) <= real_changes(versions)
    finally:
        rt.close()


# -- a paging server with lagging replicas and clock skew --------------------------------


class LaggingInbox:
    """Follows the paging contract (ordered by (updated_at, id), ``updated_since``
    inclusive, page numbers), but each run is answered by a replica that may lag: it
    knows only the first ``known`` versions of the global history. Within a run the
    replica only moves forward: reports change between two requests, also while the
    Puller steps through page numbers at one shared second."""

    def __init__(self, order: list[Version]) -> None:
        self.order = order
        self.known = len(order)
        self.advance: list[int] = []
        self.served: list[list[Version]] = []

    def listing(self) -> list[Version]:
        latest: dict[int, Version] = {}
        for v in self.order[: self.known]:
            latest[v.report] = v  # creation order: the last one known is current
        return sorted(latest.values(), key=lambda v: v.key)

    def inbox_page(self, updated_since: datetime | None, page: int = 1,
                   page_size: int | None = None) -> Page[RemoteComplaint]:
        if self.advance:
            self.known = min(len(self.order), self.known + self.advance.pop(0))
        size = page_size or 10
        rows = self.listing()
        lo = 0
        if updated_since is not None:
            since = updated_since.replace(microsecond=0)  # LAPOR! has second resolution
            lo = bisect_left([v.updated_at for v in rows], since)
        start = lo + (page - 1) * size
        chunk = rows[start:start + size]
        self.served.append(chunk)
        more = start + size < len(rows)
        return Page[RemoteComplaint](items=[v.item() for v in chunk],
                                     next_page_url=f"?page={page + 1}" if more else None,
                                     page=page)


@st.composite
def skewed_history(draw: st.DrawFn
                   ) -> tuple[dict[int, list[Version]], list[Version], int, list[int]]:
    """Versions created one after another; each gets LAPOR!'s clock at creation minus a
    skew up to ``skew`` seconds (so creation order and updated_at order may differ by that
    much), strictly increasing per report. Also returns the clock at each creation."""
    n_reports = draw(st.integers(1, 4))
    n_versions = draw(st.integers(n_reports, 14))
    skew = draw(st.sampled_from([0, 20, 60]))
    history: dict[int, list[Version]] = {}
    order: list[Version] = []
    clocks: list[int] = []
    clock = 0
    for k in range(n_versions):
        report = k + 1 if k < n_reports else draw(st.integers(1, n_reports))
        clock += draw(st.integers(0, 10))
        at = T0 + timedelta(seconds=clock - draw(st.integers(0, skew)))
        previous = history.get(report)
        if previous and at <= previous[-1].updated_at:
            at = previous[-1].updated_at + timedelta(seconds=1)
            # LAPOR!'s clock has reached that time: were the clock left behind, a later
            # version of another report could fall further behind this one than ``skew``,
            # past any look-back the test grants.
            clock = max(clock, int((at - T0).total_seconds()))
        v = Version(report, at, draw(remote_fields))
        history.setdefault(report, []).append(v)
        order.append(v)
        clocks.append(clock)
    return history, order, skew, clocks


@settings(PROPS, max_examples=100)
@given(generated=skewed_history(), data=st.data())
def test_lagging_replicas_and_skew_within_lookback_lose_nothing(
        generated: tuple[dict[int, list[Version]], list[Version], int, list[int]],
        data: st.DataObject) -> None:
    history, order, skew, clocks = generated
    page_size = data.draw(st.integers(1, 3))
    runs = data.draw(st.lists(st.tuples(st.integers(0, len(order)),
                                        st.lists(st.integers(0, 2), max_size=6)),
                              min_size=1, max_size=6))
    # A change made while a run reads may carry a time up to ``skew`` behind what the run
    # has reached, and the run reads on past it up to what LAPOR!'s clock says when it
    # ends: the look-back must cover the skew plus how far the clock moves during one run
    # (plus the second that rounding ``updated_since`` down may cost).
    during = max((clocks[min(len(order), k + sum(adv)) - 1] - clocks[max(k - 1, 0)]
                  for k, adv in runs if order), default=0)
    rt = fresh_runtime()
    server = LaggingInbox(order)
    puller = Puller(server, rt.sessions, rt.register_format, page_size=page_size,
                    lookback=timedelta(seconds=skew + max(during, 0) + 1))
    try:
        for known, advance in runs:
            server.known, server.advance = known, list(advance)
            # Offset paging at one shared second can shift under a change made in that very
            # second: the run stops (PaginationError), keeps its cursor, the next goes on.
            with contextlib.suppress(PaginationError):
                puller.run()
        # The replicas catch up; one more run reads the current state.
        server.known, server.advance = len(order), []
        puller.run()
        for report, versions in history.items():
            case = case_of(rt, report)
            assert case is not None, f"report {report} lost"
            assert remote_part(case) == versions[-1].columns(), f"report {report}"
            assert case.remote_updated_at == versions[-1].updated_at
            received = events(rt, case.id, "received")
            changed = events(rt, case.id, "remote_changed")
            assert len(received) == 1
            assert len(changed) <= real_changes(versions)
            # The history is a chain: each change of a field starts where the previous
            # change of it ended, and the last one ends at the newest version.
            state: dict[str, Any] = {}
            for e in changed:
                for column, (old, new) in (e.changes or {}).items():
                    if column in state:
                        assert state[column] == old, f"{column}: the history has a gap"
                    assert old != new
                    state[column] = new
            final = versions[-1].columns()
            assert all(final[column] == value for column, value in state.items())
    finally:
        rt.close()



def test_change_while_stepping_through_a_shared_second() -> None:
    same = (("attachments", False), ("category", "Perizinan"), ("content", "Berlubang"),
            ("is_secret", False), ("location", "Desa Talun, Kec. Jatiroto"),
            ("status_code", "1"), ("title", "Jalan rusak"))
    # Three reports share a second; a fourth came an hour later.
    r1, r2, r3 = (Version(r, T0, same) for r in (1, 2, 3))
    r4 = Version(4, T0 + timedelta(hours=1), same)
    r1_later = Version(1, T0 + timedelta(hours=1, seconds=1), same)
    server = LaggingInbox([r1, r2, r3, r4, r1_later])
    server.known = 4

    class Moving(LaggingInbox):
        def inbox_page(self, updated_since: datetime | None, page: int = 1,
                       page_size: int | None = None) -> Page[RemoteComplaint]:
            if page == 3:
                self.known = 5  # report 1 changes while page 3 is being asked for
            return super().inbox_page(updated_since, page, page_size)

    server.__class__ = Moving
    rt = fresh_runtime()
    try:
        # The default look-back (300 s) does not reach back: the cursor moved an hour on.
        puller = Puller(server, rt.sessions, rt.register_format, page_size=1,
                        lookback=timedelta(seconds=300))
        puller.run()
        puller.run()  # and again, with nothing changing any more
        assert all(case_of(rt, r) is not None for r in (1, 2, 4))
        assert case_of(rt, 3) is not None, "report 3 was never read"
    finally:
        rt.close()


_PLAIN = (("attachments", False), ("category", "Infrastruktur Jalan"),
          ("content", "Berlubang"), ("is_secret", False),
          ("location", "Kel. Sukamaju, Kec. Sukamaju"), ("status_code", "1"),
          ("title", "Jalan rusak"))


def at(report: int, second: int) -> Version:
    """A version of ``report`` with the same plain fields, ``second`` seconds after T0."""
    return Version(report, T0 + timedelta(seconds=second), _PLAIN)


def test_a_report_leaving_a_shared_second_does_not_hide_the_next_one() -> None:
    # Found by the property above: reading a shared second page by page (a page of one),
    # report 1 leaves it (a newer version) and the pages shift left by one, so the next
    # page skips report 2, which stands just after that second. The run sees report 1
    # again, newer, and reads the second once more: report 2 must be taken then, for the
    # cursor is already three seconds past it, beyond the look-back.
    order = [at(1, 0), at(2, 1), at(3, 3), at(4, 3), at(1, 3), at(1, 4)]
    rt = fresh_runtime()
    server = LaggingInbox(order)
    puller = Puller(server, rt.sessions, rt.register_format, page_size=1,
                    lookback=timedelta(seconds=2))
    try:
        server.known, server.advance = 3, [0, 1, 2]
        puller.run()
        server.known, server.advance = len(order), []
        puller.run()
        assert [case_of(rt, r) is not None for r in (1, 2, 3, 4)] == [True] * 4
        assert case_of(rt, 1).remote_updated_at == T0 + timedelta(seconds=4)
    finally:
        rt.close()


def test_a_second_pass_counts_each_report_once() -> None:
    # Four reports share a second (pages of three); report 1 changes while the second is
    # read. The second pass takes what it missed, and nothing the run already stored is
    # counted as received again (the page past the second holds reports already taken).
    order = [at(1, 0), at(2, 0), at(3, 0), at(4, 0), at(5, 1), at(6, 2), at(1, 5)]
    rt = fresh_runtime()
    server = LaggingInbox(order)
    server.known, server.advance = 6, [0, 0, 1]
    puller = Puller(server, rt.sessions, rt.register_format, page_size=3,
                    lookback=timedelta(0))
    try:
        result = puller.run()
        assert all(case_of(rt, r) is not None for r in range(1, 7))
        # Six reports, and report 1's newer version (the same fields: unchanged).
        assert (result.received, result.created, result.unchanged) == (7, 6, 1)
    finally:
        rt.close()
