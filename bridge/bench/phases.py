"""One benchmark phase, run in a fresh process: ``python -m bridge.bench.phases SPEC``.

A phase runs in its own process so that its peak RSS (``VmHWM``) is its own and nothing
left over from an earlier phase (caches, the sandbox) weighs on the figures. ``SPEC`` is
a JSON object; the result is printed as one JSON line prefixed with ``RESULT_PREFIX``.

Phases:

- ``pull``: the bridge's Puller, from the cursor in the store (empty store: a full pull;
  otherwise an incremental sync).
- ``baseline``: the same inbox read with plain httpx paging and one bulk insert per page,
  no bridge code: what the bridge's overhead is measured against.
- ``push``: bulk-insert follow-ups into the outbox, then Pusher.run until drained.
- ``sync_once``: the ``lapor-bridge sync --once`` command (see :mod:`bridge.bench.whole`).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bridge.process import tune_gc

RESULT_PREFIX = "BENCH-RESULT "


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (VmHWM)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(frozen=True)
class Target:
    """A sandbox to talk to, with its (fake, sandbox-only) credentials."""

    url: str
    bearer: str
    token: str


def bench_settings(spec: dict[str, Any], target: Target) -> Any:
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from bridge.config import settings_from_mapping

    data = {
        "regency": {"name": "Kabupaten Bench", "code": "BENCH",
                    "register_format": "{code}/{year}/{seq:06d}"},
        "lapor": {
            "base_url": target.url,
            "bearer_header": "auth",
            "institution_id": 1,
            "user_id": 1,
            "page_size": int(spec.get("page_size", 1000)),
            # The bench measures the bridge, not the pacing: no request budget to speak of.
            "requests_per_second": 1_000_000,
            "read_timeout": 120,
        },
        "database": {"url": spec["db_url"]},
        "outbox": {"concurrency": int(spec.get("concurrency", 4)),
                   "backoff_initial": 0.05, "backoff_max": 0.5},
    }
    return settings_from_mapping(
        data, source="<bench>",
        env={"LAPOR_BRIDGE_BEARER": target.bearer, "LAPOR_BRIDGE_TOKEN": target.token},
    )


@contextmanager
def sandbox(spec: dict[str, Any]) -> Iterator[Target]:
    """The sandbox: one already running (``url``), or one started in this process (the
    in-process mode, to compare with; its threads then share this process's GIL)."""
    sb = spec["sandbox"]
    if "url" in sb:
        yield Target(str(sb["url"]), str(sb["bearer"]), str(sb["token"]))
        return
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from bridge.lapor.sandbox import SandboxServer

    server = SandboxServer(int(sb.get("seed", 0)), int(sb["reports"]))
    if sb.get("random_changes"):
        server.state.random_changes(int(sb["random_changes"]))
    with server:
        yield Target(server.url, server.bearer, server.token)


def _profiled(spec: dict[str, Any]) -> Any:
    path = spec.get("profile")
    if not path:
        return None
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    import cProfile

    return cProfile.Profile(), str(path)


def _profile_threads(pusher: Any) -> list[Any]:
    """Profile the push's worker threads too (cProfile sees only the thread it runs in)."""
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    import cProfile
    import threading

    local = threading.local()
    profiles: list[Any] = []
    drain = pusher._drain_case

    def profiled(case_id: int, result: Any) -> None:
        prof = getattr(local, "prof", None)
        if prof is None:
            prof = local.prof = cProfile.Profile()
            profiles.append(prof)
        prof.enable()
        try:
            drain(case_id, result)
        finally:
            prof.disable()

    pusher._drain_case = profiled
    return profiles


def _dump(prof: Any, more: list[Any]) -> None:
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    import pstats

    stats = pstats.Stats(prof[0])
    for extra in more:
        stats.add(extra)
    stats.dump_stats(prof[1])


def run_pull(spec: dict[str, Any]) -> dict[str, Any]:
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from sqlalchemy import func, select

    from bridge.runtime import Runtime
    from bridge.store.models import Case

    with sandbox(spec) as target:
        rt = Runtime(bench_settings(spec, target))  # schema created here, before the clock
        prof = _profiled(spec)
        with rt.client() as client:
            puller = rt.puller(client)
            if prof:
                prof[0].enable()
            started, cpu = time.perf_counter(), time.process_time()
            result = puller.run()
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if prof:
                prof[0].disable()
                prof[0].dump_stats(prof[1])
            requests = client.requests_made
        with rt.sessions() as session:
            stored = int(session.scalar(select(func.count()).select_from(Case)) or 0)
        rt.close()
    return {**result.as_json(), "seconds": seconds, "cpu_seconds": cpu, "requests": requests,
            "stored": stored}


#: What the baseline keeps of each report: the same fields the bridge keeps.
_BASELINE_COLUMNS = (
    "lapor_id", "tracking_id", "title", "content", "category", "location", "is_anonymous",
    "is_secret", "reporter", "attachments", "status_code", "status_name", "disposition_id",
    "disposition_name", "created_at", "updated_at", "raw",
)


def run_baseline(spec: dict[str, Any]) -> dict[str, Any]:
    """Plain paging and one bulk insert per page: the floor of what a pull must cost."""
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    import httpx
    from sqlalchemy import create_engine, text

    engine = create_engine(spec["db_url"])
    dialect = engine.dialect.name
    id_type = "BIGINT PRIMARY KEY" if dialect == "postgresql" else "INTEGER PRIMARY KEY"
    columns = ", ".join(f"{c} TEXT" for c in _BASELINE_COLUMNS[1:])
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS baseline_reports"))
        conn.execute(text(f"CREATE TABLE baseline_reports (lapor_id {id_type}, {columns})"))
    mark = "?" if dialect == "sqlite" else "%s"
    sql = (f"INSERT INTO baseline_reports ({', '.join(_BASELINE_COLUMNS)}) VALUES "
           f"({', '.join([mark] * len(_BASELINE_COLUMNS))})")
    page_size = int(spec.get("page_size", 1000))
    with sandbox(spec) as target:
        headers = {"auth": f"Bearer {target.bearer}", "token": target.token}
        requests = stored = 0
        with httpx.Client(base_url=target.url, headers=headers, timeout=120) as http:
            started, cpu = time.perf_counter(), time.process_time()
            page = 1
            while True:
                response = http.get("/complaints/inbox",
                                    params={"page": page, "page_size": page_size})
                response.raise_for_status()
                requests += 1
                results = response.json()["results"]
                rows = [
                    (
                        item["id"], item["tracking_id"], item["title"], item["content"],
                        _name(item.get("category")), _name(item.get("location")),
                        str(item["is_anonymous"]), str(item["is_secret"]),
                        json.dumps(item.get("reporter", item.get("user"))),
                        json.dumps(item.get("attachments")),
                        item["status_code"], item["status_name"],
                        str(item.get("disposition_id")), item.get("disposition_name"),
                        item["created_at"], item["updated_at"], json.dumps(item),
                    )
                    for item in results["data"]
                ]
                if rows:
                    with engine.begin() as conn:
                        conn.exec_driver_sql(sql, rows)
                    stored += len(rows)
                if not results.get("next_page_url"):
                    break
                page += 1
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    with engine.connect() as conn:
        counted = int(conn.execute(text("SELECT count(*) FROM baseline_reports")).scalar_one())
    engine.dispose()
    return {"seconds": seconds, "cpu_seconds": cpu, "requests": requests, "received": stored,
            "stored": counted}


def _name(value: Any) -> Any:
    # The v3 dialect gives category and location as {id, name}: the loader keeps the name,
    # as the bridge does (the least a real loader must do with that shape).
    return value.get("name") if isinstance(value, dict) else value


def run_push(spec: dict[str, Any]) -> dict[str, Any]:
    """Queue ``followups`` follow-ups over the store's cases, then push until drained."""
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from sqlalchemy import func, insert, select

    from bridge.runtime import Runtime
    from bridge.store.models import Case, OutboxRow, utcnow
    from bridge.sync.push import PENDING, Pusher

    count = int(spec["followups"])
    per_case = max(1, int(spec.get("per_case", 10)))
    with sandbox(spec) as target:
        rt = Runtime(bench_settings(spec, target))
        with rt.sessions() as session, session.begin():
            n_cases = max(1, -(-count // per_case))
            case_ids = list(session.scalars(
                select(Case.id).where(Case.lapor_id.is_not(None)).order_by(Case.id)
                .limit(n_cases)))
            if not case_ids:
                raise SystemExit("push: the store has no LAPOR! cases; pull first")
            now = utcnow()
            # Row ids ascend case by case in turn, as staff acting on many cases would
            # produce them; the per-case order is what the push must keep.
            rows = [
                {"case_id": case_ids[n % len(case_ids)], "kind": "followup",
                 "payload": {"content": f"Tindak lanjut bench nomor {n}: petugas sudah "
                                        "meninjau lokasi dan menjadwalkan perbaikan.",
                             "institution_to_id": 1, "file_ids": [], "purpose": "followup"},
                 "status": PENDING, "attempts": 0, "uncertain": False, "created_at": now,
                 "actor": "bench"}
                for n in range(count)
            ]
            session.execute(insert(OutboxRow), rows)
        prof = _profiled(spec)
        with rt.client() as client:
            pusher = Pusher(client, rt.sessions, rt.settings)
            thread_profiles = _profile_threads(pusher) if prof else []
            delivered = dead = runs = 0
            if prof:
                prof[0].enable()
            started, cpu = time.perf_counter(), time.process_time()
            while True:
                result = pusher.run()
                runs += 1
                delivered += result.delivered
                dead += result.dead
                with rt.sessions() as session:
                    left = int(session.scalar(select(func.count()).select_from(OutboxRow)
                                              .where(OutboxRow.status == PENDING)) or 0)
                if left == 0 or runs >= 1000:
                    break
                if not result.delivered:
                    time.sleep(0.05)  # only backoffs are left: let them expire
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            if prof:
                prof[0].disable()
                _dump(prof, thread_profiles)
            requests = client.requests_made
        rt.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "requests": requests,
            "delivered": delivered, "dead": dead,
            "left": left, "runs": runs, "cases": len(case_ids)}


def run_sync_once_phase(spec: dict[str, Any]) -> dict[str, Any]:
    """``lapor-bridge sync --once`` as a child of this otherwise childless process (so
    that the children's peak RSS is the command's own)."""
    # Lazy: each bench phase runs in its own process and loads only what it measures.
    from pathlib import Path

    from bridge.bench.whole import run_sync_once

    return run_sync_once(spec["box"], Path(spec["workdir"]), str(spec["name"]),
                         int(spec.get("page_size", 1000)))


PHASES = {"pull": run_pull, "baseline": run_baseline, "push": run_push,
          "sync_once": run_sync_once_phase}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bridge.bench.phases SPEC_JSON", file=sys.stderr)
        return 2
    spec = json.loads(argv[0])
    if spec["phase"] in ("pull", "push"):
        # The bridge's code runs as in its own processes (the command line tunes the
        # collector at start); the baseline keeps the interpreter's defaults.
        tune_gc()
    result = PHASES[spec["phase"]](spec)
    # A phase that measured a command of its own reports that command's peak.
    result.setdefault("peak_rss_mb", round(peak_rss_mb(), 1))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
