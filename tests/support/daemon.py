"""Helpers shared by the daemon tests: config files, daemon processes, store checks."""

from __future__ import annotations

import copy
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bridge.lapor.sandbox import SandboxServer
from bridge.store.db import make_engine
from bridge.store.models import Case, OutboxRow
from bridge.sync.push import markers_in
from tests.support.settings import BASE_CONFIG, TEST_BEARER, TEST_TOKEN

ROOT = Path(__file__).resolve().parents[2]

#: Small numbers so that the daemon tests run in seconds.
FAST_DAEMON: dict[str, Any] = {
    "pull_interval": 0.3,
    "push_interval": 0.3,
    "events_interval": 0.3,
    "deadline_interval": 1.0,
    "refresh_interval": 3600.0,
    "reconcile_interval": 3600.0,
    "health_log_interval": 1.0,
    "lease_ttl": 2.0,
    "lease_renew_interval": 0.5,
    "standby_poll_interval": 0.3,
    "stop_timeout": 10.0,
    "start_timeout": 5.0,
    "start_retry_max_delay": 0.5,
    "recaps": {},
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(data: Mapping[str, Any]) -> str:
    """Enough TOML for a deployment file: tables, sub-tables, arrays of tables."""
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, Mapping)
                   and not (isinstance(v, list) and v and isinstance(v[0], Mapping))}
        lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            lines.append(f'"{key}" = {_toml_value(value)}')
        for key, value in body.items():
            if isinstance(value, Mapping):
                table(f"{prefix}.{key}", value)
            elif isinstance(value, list) and value and isinstance(value[0], Mapping):
                for item in value:
                    lines.append(f"[[{prefix}.{key}]]")
                    for k, v in item.items():
                        lines.append(f'"{k}" = {_toml_value(v)}')

    for name, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], Mapping):
            for item in value:
                lines.append(f"[[{name}]]")
                for k, v in item.items():
                    lines.append(f'"{k}" = {_toml_value(v)}')
        elif isinstance(value, Mapping):
            table(name, value)
        else:
            lines.insert(0, f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(path: Path, base_url: str, db_url: str, **sections: Any) -> Path:
    """A deployment file for a daemon process (secrets come from the environment)."""
    data: dict[str, Any] = copy.deepcopy(BASE_CONFIG)
    data["lapor"]["base_url"] = base_url
    data["database"] = {"url": db_url}
    data["daemon"] = dict(FAST_DAEMON)
    for name, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(name), dict):
            data[name] = {**data[name], **value}
        else:
            data[name] = value
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def daemon_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN,
                "PYTHONUNBUFFERED": "1"})
    env.pop("LAPOR_BRIDGE_CONFIG", None)
    env.update(extra)
    return env


def start_daemon(config: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python -m bridge run --config CONFIG``, its stderr appended to ``log``."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--config", str(config)],
            cwd=ROOT, env=daemon_env(**env), stdout=fh, stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], cwd=ROOT,
                          env=daemon_env(), capture_output=True, text=True, timeout=timeout)


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=timeout)


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0,
             interval: float = 0.1, procs: list[subprocess.Popen[bytes]] | None = None,
             log: Path | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after timeout."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for proc in procs or []:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:] if log else ""
                raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for "
                                     f"{what}\n{tail}")
        if time.monotonic() > end:
            tail = log.read_text(errors="replace")[-3000:] if log else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")
        time.sleep(interval)


class Store:
    """Read-only view of a deployment's database from the test process."""

    def __init__(self, db_url: str) -> None:
        self.engine = make_engine(db_url)

    def close(self) -> None:
        self.engine.dispose()

    def scalar(self, sql: str) -> Any:
        from sqlalchemy import text

        try:
            with self.engine.connect() as conn:
                return conn.execute(text(sql)).scalar()
        except Exception:  # the table may not exist yet
            return None

    def lease_holder(self) -> str | None:
        from bridge.daemon.lease import read_lease

        try:
            info = read_lease(self.engine)
        except Exception:
            return None
        return None if info is None or info.expired else info.holder

    def case_count(self) -> int:
        return int(self.scalar("SELECT count(*) FROM cases") or 0)

    def caught_up(self, expected_cases: int) -> bool:
        """Every report in the store and every outbox row delivered."""
        return self.case_count() >= expected_cases and self.scalar(
            "SELECT count(*) FROM outbox WHERE status = 'done'"
        ) == self.scalar("SELECT count(*) FROM outbox")

    def last_pull_success(self) -> Any:
        return self.scalar("SELECT last_success_at FROM sync_cursors WHERE stream = 'inbox'")

    def wait_for_one_more_pull(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        """Wait until the daemon finishes a pull that starts after now, so that the last
        remote changes (our own follow-ups bump reports on LAPOR!) are in."""
        # Two completions, not one: the pull that completes first may have started (and
        # read LAPOR!) before now; a daemon's pulls never overlap, so the second one
        # started after now.
        for _ in range(2):
            mark = self.last_pull_success()
            wait_for("one more successful pull", lambda m=mark: self.last_pull_success() != m,
                     timeout=30, procs=[proc], log=log)

    def roles(self) -> dict[int, str]:
        """pid -> role of the daemons' status rows."""
        from bridge.daemon.status import read_statuses

        try:
            return {s.pid: s.role for s in read_statuses(self.engine)}
        except Exception:
            return {}


def holder_pid(holder: str | None) -> int | None:
    if not holder:
        return None
    return int(holder.split(":")[-2])


def assert_store_matches_sandbox(db_url: str, sandbox: SandboxServer | Any,
                                 schema: str | None = None) -> int:
    """Every listed sandbox report is a case with the same title, content and status, once;
    register numbers have no gaps and no repeats. Returns the number of cases. (``sandbox``:
    anything with a ``.state``; ``schema``: a body's schema on PostgreSQL.)"""
    from sqlalchemy.orm import Session

    remote = {r["id"]: r for r in sandbox.state.reports(listed_only=True)}
    engine = make_engine(db_url, schema=schema)
    try:
        with Session(engine) as s:
            cases = list(s.scalars(select(Case).where(Case.channel == "lapor")))
    finally:
        engine.dispose()
    by_id = Counter(c.lapor_id for c in cases)
    dupes = [lid for lid, n in by_id.items() if n > 1]
    assert not dupes, f"duplicate cases for LAPOR! ids {dupes[:10]}"
    stored = {c.lapor_id: c for c in cases}
    missing = sorted(set(remote) - set(stored))
    assert not missing, f"{len(missing)} sandbox reports missing, e.g. {missing[:10]}"
    extra = sorted(set(stored) - set(remote))
    assert not extra, f"cases for reports the sandbox does not list: {extra[:10]}"
    wrong = [rid for rid, r in remote.items()
             if (stored[rid].title, stored[rid].content, stored[rid].remote_status_code)
             != (r["title"], r["content"], str(r["status_code"]))]
    assert not wrong, f"{len(wrong)} cases differ from the sandbox, e.g. {wrong[:10]}"
    seqs: dict[str, list[int]] = {}
    for c in cases:
        m = re.fullmatch(r"(.*)/(\d+)", c.register_no)
        assert m, c.register_no
        seqs.setdefault(m.group(1), []).append(int(m.group(2)))
    for scope, numbers in seqs.items():
        assert sorted(numbers) == list(range(1, len(numbers) + 1)), (
            f"register numbers of {scope} have gaps or repeats")
    return len(cases)


def followup_markers(sandbox: SandboxServer, lapor_ids: list[int]) -> Counter[str]:
    """How many times each outbox row's marker was posted to the sandbox, keyed
    ``[lb:<id>]`` whatever the marker's style."""
    found: Counter[str] = Counter()
    for rid in lapor_ids:
        for f in sandbox.state.followups_of(rid):
            for row_id in markers_in(str(f.get("content", ""))):
                found[f"[lb:{row_id}]"] += 1
    return found


def add_followups(db_url: str, count: int, text: str = "Tindak lanjut uji") -> dict[int, int]:
    """Queue ``count`` follow-ups on existing LAPOR! cases; returns outbox id -> lapor id."""
    from sqlalchemy.orm import Session

    engine = make_engine(db_url)
    out: dict[int, int] = {}
    try:
        with Session(engine) as s, s.begin():
            cases = list(s.scalars(select(Case).where(Case.lapor_id.is_not(None))
                                   .order_by(Case.id).limit(count)))
            for n, case in enumerate(cases):
                row = OutboxRow(case_id=case.id, kind="followup",
                                payload={"content": f"{text} {n}"}, status="pending")
                s.add(row)
                s.flush()
                assert case.lapor_id is not None
                out[row.id] = case.lapor_id
    finally:
        engine.dispose()
    return out


__all__ = [
    "FAST_DAEMON",
    "ROOT",
    "Store",
    "add_followups",
    "assert_store_matches_sandbox",
    "cli",
    "daemon_env",
    "followup_markers",
    "holder_pid",
    "kill_all",
    "start_daemon",
    "stop",
    "to_toml",
    "wait_for",
    "write_config",
]
