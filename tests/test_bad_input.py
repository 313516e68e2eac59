"""The bad input corpus (tests/corpus/): every file with the outcome written beside it.

- ``corpus/inbox/NAME.N.json`` (or ``.N.bin`` for raw bytes): the N-th answer of LAPOR!'s
  inbox, served with respx to a real LaporClient and Puller on SQLite and PostgreSQL;
  ``NAME.expect.json`` says what must be stored, what quarantined (with which reason), and
  which error the pull must stop with.
- ``corpus/config/NAME.toml``: run through ``lapor-bridge check-config`` in a subprocess;
  ``NAME.expect.json`` gives the exit code and the exact error line (and the secrets that
  must never be printed).

Whatever the input, nothing is lost silently: every item of every page the pull accepted
is either stored or quarantined whole, with its raw text and a one-line reason.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from bridge.lapor.client import LaporClient
from bridge.lapor.errors import LaporError
from bridge.runtime import Runtime
from bridge.store.models import Case, QuarantinedItem, SyncCursor
from bridge.sync.pull import PaginationError
from tests.support.cli import run_cli
from tests.support.settings import make_settings

CORPUS = Path(__file__).parent / "corpus"
BASE = "http://lapor.test/api"


def corpus_cases() -> list[Any]:
    params = []
    for kind in ("inbox", "config"):
        for expect in sorted((CORPUS / kind).glob("*.expect.json")):
            name = expect.name.removesuffix(".expect.json")
            spec = json.loads(expect.read_text(encoding="utf-8"))
            marks = [pytest.mark.xfail(strict=True, reason=spec["xfail"])] \
                if spec.get("xfail") else []
            params.append(pytest.param(kind, name, spec, id=f"{kind}/{name}", marks=marks))
    return params


@pytest.mark.parametrize(("kind", "name", "spec"), corpus_cases())
def test_corpus(kind: str, name: str, spec: dict[str, Any], request: pytest.FixtureRequest
                ) -> None:
    if kind == "config":
        check_config_case(name, spec)
    else:
        for db in spec.get("databases", ["sqlite", "postgresql"]):
            inbox_case(name, spec, db, request)


# -- config files -------------------------------------------------------------------------


def check_config_case(name: str, spec: dict[str, Any]) -> None:
    proc = run_cli(spec.get("command", "check-config"), f"{name}.toml", cwd=CORPUS / "config")
    assert proc.returncode == spec["exit"], proc.stderr
    if "stderr" in spec:
        # One line, naming the file, the key and the problem; no traceback.
        assert proc.stderr.splitlines() == [spec["stderr"]]
    if "stdout" in spec:
        assert proc.stdout.splitlines() == [spec["stdout"]]
    for secret in spec.get("must_not_print", []):
        assert secret not in proc.stdout + proc.stderr


# -- inbox pages --------------------------------------------------------------------------


def answers(name: str) -> list[httpx.Response]:
    out = []
    n = 1
    while True:
        text, raw = CORPUS / "inbox" / f"{name}.{n}.json", CORPUS / "inbox" / f"{name}.{n}.bin"
        if text.exists():
            out.append(httpx.Response(200, content=text.read_bytes(),
                                      headers={"Content-Type": "application/json"}))
        elif raw.exists():
            out.append(httpx.Response(200, content=raw.read_bytes(),
                                      headers={"Content-Type": "application/json"}))
        else:
            return out
        n += 1


def served_items(responses: list[httpx.Response]) -> list[Any]:
    items: list[Any] = []
    for r in responses:
        try:
            data = json.loads(r.content)["results"]["data"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(data, list):
            items.extend(data)
    return items


def db_url_for(db: str, name: str, request: pytest.FixtureRequest) -> str:
    # Copies of the session's migrated templates (conftest): what is tested here is the
    # pull, not the migrations, which ran once per database per case before.
    if db == "sqlite":
        tmp: Path = request.getfixturevalue("tmp_path")
        shutil.copyfile(request.getfixturevalue("sqlite_template"), tmp / (name + ".db"))
        return f"sqlite:///{tmp / (name + '.db')}"
    cluster = request.getfixturevalue("pg_cluster")  # skips when there is no PostgreSQL
    template = request.getfixturevalue("pg_template")
    return str(cluster.create_database(f"corpus_{name}"[:60].lower(), template=template))


def inbox_case(name: str, spec: dict[str, Any], db: str, request: pytest.FixtureRequest
               ) -> None:
    responses = answers(name)
    assert responses, f"no pages for {name}"
    rt = Runtime(make_settings(db_url_for(db, name, request), BASE,
                               lapor=spec.get("settings", {})))
    router = respx.Router(base_url=BASE, assert_all_called=False)
    calls = {"n": 0}

    def answer(req: httpx.Request) -> httpx.Response:
        i = calls["n"]
        calls["n"] += 1
        if i >= len(responses):
            if not spec.get("repeat_last"):
                raise AssertionError(f"{name}: request {i + 1} but only {len(responses)} pages")
            i = len(responses) - 1
        return responses[i]

    router.get("/complaints/inbox").mock(side_effect=answer)
    where = f"{name} on {db}"
    try:
        with LaporClient(rt.settings.lapor, rt.settings.secrets,
                         transport=httpx.MockTransport(router.handler)) as client:
            error: Exception | None = None
            try:
                rt.puller(client).run()
            except (LaporError, PaginationError) as exc:
                error = exc
        if spec.get("error"):
            assert error is not None, f"{where}: expected the pull to stop"
            assert type(error).__name__ == spec["error_type"], f"{where}: {error!r}"
            assert spec["error"] in str(error), f"{where}: {error}"
            # The error is recorded for the operator; the cursor did not run ahead.
            with rt.sessions() as s:
                cursor = s.get(SyncCursor, "inbox")
                assert cursor is not None and spec["error"] in (cursor.last_error or "")
        else:
            assert error is None, f"{where}: {error!r}"
        with rt.sessions() as s:
            cases = {c.lapor_id: c for c in s.scalars(select(Case)) if c.lapor_id is not None}
            quarantined = list(s.scalars(select(QuarantinedItem).order_by(QuarantinedItem.id)))
        assert sorted(cases) == sorted(spec.get("stored", [])), where
        expected_q = spec.get("quarantined", [])
        assert len(quarantined) == len(expected_q), \
            f"{where}: {[(q.remote_id, q.reason) for q in quarantined]}"
        for got, want in zip(quarantined, expected_q, strict=True):
            assert got.remote_id == want["remote_id"], where
            assert want["reason"] in got.reason, f"{where}: {got.reason!r}"
            assert "\n" not in got.reason and got.payload, where
            json.loads(got.payload)  # the raw item, whole
        for lapor_id, fields in spec.get("cases", {}).items():
            case = cases[int(lapor_id)]
            for field, value in fields.items():
                got_value = getattr(case, field)
                if field.endswith("_at") and got_value is not None:
                    got_value = got_value.isoformat()
                assert got_value == value, f"{where}: case {lapor_id}.{field}: {got_value!r}"
        if not spec.get("error") and calls["n"] <= len(responses):
            # Nothing lost silently: each item served is stored or quarantined (a page
            # may repeat an item; the newest copy is the one stored).
            items = served_items(responses)
            ids = {i.get("id") for i in items if isinstance(i, dict)}
            accounted = set(cases) | {int(q.remote_id) for q in quarantined
                                      if q.remote_id and q.remote_id.lstrip("-").isdigit()}
            assert {i for i in ids if isinstance(i, int) and not isinstance(i, bool)} \
                <= accounted, where
            assert len(cases) + len(quarantined) >= len(ids - {None}), where
    finally:
        rt.close()
