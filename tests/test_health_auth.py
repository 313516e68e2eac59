"""/healthz shows the status to anyone and the details (problems, last errors, instance)
only with the token from $LAPOR_BRIDGE_HEALTH_TOKEN or daemon.health_token_file."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.daemon.health import HealthServer, Metrics, collect, health_token
from bridge.daemon.settings import DaemonSettings
from bridge.runtime import Runtime
from tests.support.settings import make_settings

TOKEN = "token-kesehatan-uji-12345"


def _get(url: str, auth: str | None = None) -> tuple[int, dict[str, object]]:
    req = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Runtime]]:
    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'h.db'}"))
    cfg = DaemonSettings()
    server = HealthServer("127.0.0.1", 0, lambda: collect(rt.engine, rt.sessions, cfg),
                          Metrics(), extra=lambda: {"instance": "host-1"}, token=TOKEN).start()
    yield f"http://127.0.0.1:{server.port}/healthz", rt
    server.stop()
    rt.close()


def test_status_only_without_the_token(served: tuple[str, Runtime]) -> None:
    url, _ = served
    for auth in (None, "Bearer salah", f"Bearer {TOKEN}x", TOKEN, f"bearer  {TOKEN}"):
        code, body = _get(url, auth)
        assert set(body) == {"healthy", "status"}, (auth, body)
        assert body["status"] in ("ok", "unhealthy") and code in (200, 503)
    code, body = _get(url, f"Bearer {TOKEN}")
    assert "problems" in body and body["instance"] == "host-1"


def test_database_down_shows_no_error_text_without_the_token(
        served: tuple[str, Runtime]) -> None:
    url, rt = served
    rt.engine.dispose()
    Path(rt.engine.url.database or "").unlink()
    (Path(rt.engine.url.database or "")).mkdir()  # a directory: the database cannot open
    code, body = _get(url)
    assert code == 503 and body == {"healthy": False, "status": "unhealthy"}
    code, body = _get(url, f"Bearer {TOKEN}")
    assert code == 503 and "cannot read the database" in str(body["problems"])


def test_health_token_sources(tmp_path: Path) -> None:
    assert health_token(None, env={}) is None
    assert health_token(None, env={"LAPOR_BRIDGE_HEALTH_TOKEN": TOKEN}) == TOKEN
    f = tmp_path / "health.token"
    f.write_text(TOKEN + "\n")
    f.chmod(0o600)
    assert health_token(str(f), env={}) == TOKEN
    f.chmod(0o644)
    with pytest.raises(ValueError, match="others may read"):
        health_token(str(f), env={})
    f.chmod(0o600)
    f.write_text("pendek\n")
    with pytest.raises(ValueError, match="too short"):
        health_token(str(f), env={})


def test_a_pemda_body_is_judged_by_its_own_lease(tmp_path: Path) -> None:
    # A Pemda's workers hold one lease per body (body:<code>), never the one-body `sync`.
    from bridge.daemon.lease import LeaseManager
    from bridge.daemon.share import body_lease, lease_names

    rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'p.db'}"))
    try:
        assert lease_names(["DLH", "DPM"])["DLH"] == body_lease("DLH")
        worker = LeaseManager(rt.engine, 30, holder="pemda-host:7:abc", name=body_lease("DLH"))
        assert worker.acquire()
        cfg = DaemonSettings()
        held = collect(rt.engine, rt.sessions, cfg, body="DLH", lease_name=body_lease("DLH"))
        assert held.lease is not None and held.lease.holder == "pemda-host:7:abc"
        assert collect(rt.engine, rt.sessions, cfg, body="DLH").lease is None
    finally:
        rt.close()
