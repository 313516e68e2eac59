"""Several ``lapor-bridge run`` workers over a Pemda's bodies on one PostgreSQL (issue #17).

Three real worker processes share 12 bodies, each an institution of one multi-institution
sandbox that answers after a latency. Staff act on cases of a few bodies through
CaseActions while the workers sync; one worker is killed with SIGKILL mid-sync. At the
end every body's store equals its institution on the sandbox, and every follow-up is on
LAPOR! exactly once, in the order staff wrote it.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from bridge.bench.scale import (
    FIRST_INSTITUTION,
    Counts,
    ScaleOptions,
    _kill_one,
    body_code,
    pemda_toml,
    secrets_env,
    workers,
)
from bridge.bodies import bodies_of
from bridge.config import load_settings
from bridge.lapor.sandbox.multi import MultiSandboxServer
from bridge.runtime import Runtime
from bridge.services.actions import ActionError, Actor
from bridge.store.db import make_engine
from bridge.store.models import Case, OutboxRow
from bridge.sync.push import markers_in
from tests.support.cli import run_cli
from tests.support.daemon import ROOT, assert_store_matches_sandbox, daemon_env, wait_for

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")

OPTS = ScaleOptions(bodies=12, workers=3, reports=150, latency_ms=50, page_size=3,
                    requests_per_second=200, pull_interval=0.3, lease_ttl=2.0,
                    lease_renew_interval=0.3, standby_poll_interval=0.3)
#: Bodies whose staff write follow-ups while the workers run.
STAFF_BODIES = 3


class BodyStaff:
    """Staff of one body at work in the test process."""

    def __init__(self, rt: Runtime, rng: random.Random) -> None:
        self.rt = rt
        self.actions = rt.actions()
        self.rng = rng
        self.handling: list[int] = []
        self.written: dict[int, list[int]] = defaultdict(list)

    def work(self) -> None:
        if len(self.handling) < 3:
            with self.rt.sessions() as s:
                fresh = list(s.scalars(select(Case.id).where(Case.lapor_id.is_not(None),
                                                            Case.stage == "received")))
            for cid in fresh[:3 - len(self.handling)]:
                try:
                    self.actions.register(cid, PETUGAS)
                    self.actions.files_complete(cid, PETUGAS)
                    self.actions.classify(cid, ANALIS, "ringan")
                    self.actions.dispose(cid, KASI, "Seksi Penanganan")
                except ActionError:
                    continue
                self.handling.append(cid)
        if self.handling:
            cid = self.rng.choice(self.handling)
            n = sum(map(len, self.written.values())) + 1
            result = self.actions.followup(cid, ANALIS, f"Tindak lanjut uji skala {n}.")
            self.written[cid].extend(result.outbox_ids)


@pytest.mark.slow
def test_three_workers_over_twelve_bodies_survive_a_sigkill(pg_url: str, tmp_path: Path
                                                            ) -> None:
    rng = random.Random(17)
    ids = [FIRST_INSTITUTION + k for k in range(OPTS.bodies)]
    codes = [body_code(k) for k in range(OPTS.bodies)]
    log = tmp_path / "workers.log"
    with MultiSandboxServer(ids, reports=OPTS.reports, seed=5,
                            faults={"latency_ms": OPTS.latency_ms}) as sandbox:
        config = tmp_path / "pemda.toml"
        config.write_text(pemda_toml(OPTS, sandbox.url, pg_url), encoding="utf-8")
        env = daemon_env(**secrets_env(OPTS, sandbox.world.bearer_prefix, sandbox.token))
        settings = load_settings(config, env=env)
        bodies = bodies_of(settings)
        staff = [BodyStaff(Runtime(b.settings), rng) for b in bodies[:STAFF_BODIES]]
        engine = make_engine(pg_url)
        counts = Counts(engine, codes, OPTS.reports)
        try:
            with workers(OPTS.workers, config, env, log) as procs:
                wait_for("cases in the staff's bodies",
                         lambda: all(counts.read()[c] > 3 for c in codes[:STAFF_BODIES]),
                         timeout=90, procs=procs, log=log)
                for _ in range(5):  # staff at work, the workers mid-sync
                    # The kill must land mid-sync: on a loaded machine the staff's rounds
                    # can outlast the whole first pull, so they end early once half the
                    # bodies are complete (it failed as "held no unfinished body").
                    if sum(n >= OPTS.reports for n in counts.read().values()) * 2 >= len(codes):
                        break
                    for st in staff:
                        st.work()
                killed = _kill_one(engine, codes, procs, counts, {})
                assert killed["bodies"], "the killed worker held no unfinished body"
                live = [p for p in procs if p.pid != killed["pid"]]
                for _ in range(15):  # staff go on while the others take over
                    for st in staff:
                        st.work()
                    time.sleep(0.05)

                def caught_up() -> bool:
                    if any(n < OPTS.reports for n in counts.read().values()):
                        return False
                    for st in staff:
                        with st.rt.sessions() as s:
                            rows = s.scalars(select(OutboxRow.status)).all()
                        if any(status != "done" for status in rows):
                            return False
                    return True

                wait_for("every body's store full and the outbox drained", caught_up,
                         timeout=60, procs=live, log=log)

                def matches() -> bool:
                    # Our follow-ups change reports on LAPOR!: wait for the next pulls.
                    try:
                        for k, body in enumerate(bodies):
                            n = assert_store_matches_sandbox(
                                pg_url, SimpleNamespace(state=sandbox.state(ids[k])),
                                schema=body.settings.database.db_schema)
                            assert n == OPTS.reports
                    except AssertionError:
                        return False
                    return True

                wait_for("every body's store equal to its sandbox", matches, timeout=30,
                         procs=live, log=log)
            # Errors, and the stacks a worker slow to stop wrote on SIGUSR1 (bench.scale).
            trouble = [line for line in log.read_text(errors="replace").splitlines()
                       if " ERROR " in line or " CRITICAL " in line or "Traceback" in line
                       or line.startswith(("Thread 0x", "Current thread", "  File "))]
            assert all(p.returncode == 0 for p in live), (
                [p.returncode for p in live], "\n".join(trouble[-80:]))
        finally:
            engine.dispose()
            for st in staff:
                st.rt.close()
        for k, body in enumerate(bodies):  # the assertion's own message, if any
            assert_store_matches_sandbox(pg_url, SimpleNamespace(state=sandbox.state(ids[k])),
                                         schema=body.settings.database.db_schema)
        written = 0
        for k, st in enumerate(staff):
            with st.rt.sessions() as s:
                lapor_of = dict(s.execute(select(Case.id, Case.lapor_id)).all())
            for cid, outbox_ids in st.written.items():
                posted = sandbox.state(ids[k]).followups_of(lapor_of[cid] or 0)
                markers = [m for f in posted for m in markers_in(str(f["content"]))]
                assert markers == outbox_ids, (
                    f"{codes[k]} case {cid}: LAPOR! holds {markers}, staff wrote "
                    f"{outbox_ids} (a follow-up lost, doubled or out of order)")
                written += len(outbox_ids)
        assert written >= 20, "too few follow-ups to mean anything"


@pytest.mark.slow
def test_bench_bodies_counts_in_the_json(tmp_path: Path, pg_cluster: Any) -> None:
    # pg_cluster: skips with its reason when there are no server binaries; the bench
    # starts its own.
    result = run_cli("bench", "--bodies", "3", "--workers", "2", "--body-reports", "100",
                     "--latency-ms", "20", "--postgres", "--json", "--workdir",
                     str(tmp_path / "bench"), cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    data: dict[str, Any] = json.loads(result.stdout)
    scale = data["scale"]
    assert set(scale["runs"]) == {"one", "many", "failover"}
    for run in scale["runs"].values():
        assert run["reports"] == 300
        assert run["stored"] == {body_code(k): 100 for k in range(3)}
        assert set(run["per_body"]) == {body_code(k) for k in range(3)}
    assert scale["runs"]["many"]["workers"] == 2 and scale["runs"]["one"]["workers"] == 1
    assert scale["speedup"] > 0
    assert scale["failover_s"] is not None and scale["failover_s"] > 0
    assert [c["ok"] for c in data["checks"]] == [True] * 3
    assert {t["status"] for t in data["targets"]} <= {"PASS", "MISS"}
