"""Classification (issue 13, item 8): the class is one of the profile's on every path, a
case can be reclassified in any handling stage, the class's team is recorded in the same
transaction, and a change to a class that needs a higher authority escalates at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bridge.cli import main
from bridge.services.actions import ActionNotAllowed, Actor, BadInput, NewCase
from bridge.store.models import Case, CaseEvent, OutboxRow
from tests.support.settings import TEST_BEARER, TEST_TOKEN

PETUGAS = Actor("Sari", "petugas")
ANALIS = Actor("Budi", "analis")
KASI = Actor("Dewi", "kasi")


def _new(rt: Any) -> int:
    return rt.actions().new_case(NewCase(title="Izin belum terbit", content="Menunggu.",
                                         channel="surat"), PETUGAS).case_id


def _counts(rt: Any) -> tuple[int, int]:
    with rt.sessions() as s:
        return (s.scalar(select(func.count()).select_from(CaseEvent)) or 0,
                s.scalar(select(func.count()).select_from(OutboxRow)) or 0)


def _case(rt: Any, cid: int) -> Case:
    with rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        s.expunge(case)
        return case


def test_unknown_class_is_refused_and_writes_nothing(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = _new(rt)
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    before = _counts(rt)
    with pytest.raises(BadInput, match="unknown class 'parah'; known classes: ringan, "
                                       "sedang, berat"):
        a.classify(cid, ANALIS, "parah")
    assert _counts(rt) == before and _case(rt, cid).severity is None


def test_reclassified_in_handling_stays_and_takes_the_new_team(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = _new(rt)
    a = rt.actions()
    a.register(cid, PETUGAS)
    a.files_complete(cid, PETUGAS)
    assert a.classify(cid, ANALIS, "sedang").stage == "classified"
    assert (_case(rt, cid).data or {})["team"] == ["analis", "kasi", "kabid",
                                                    "kepala_dinas", "penangan"]
    a.dispose(cid, KASI, "Seksi Pengaduan")
    done = a.classify(cid, KASI, "ringan", "hanya soal biaya")
    assert done.stage == "handling"  # corrected where it stands
    case = _case(rt, cid)
    assert case.severity == "ringan" and (case.data or {})["team"] == ["petugas", "analis"]
    with rt.sessions() as s:
        last = s.scalars(select(CaseEvent).where(CaseEvent.case_id == cid,
                                                 CaseEvent.kind == "classify")
                         .order_by(CaseEvent.id.desc())).first()
        assert last is not None and last.changes["severity"] == ["sedang", "ringan"]
    # Not by a role the classify rules do not name.
    with pytest.raises(ActionNotAllowed):
        a.classify(cid, PETUGAS, "sedang")


def test_unclassified_case_follows_the_profile(runtime_factory: Any) -> None:
    rt = runtime_factory()
    cid = _new(rt)
    rt.actions().register(cid, PETUGAS)
    # Classification itself is still where the profile puts it (after verification).
    with pytest.raises(ActionNotAllowed, match="not allowed in stage 'registered'"):
        rt.actions().classify(cid, ANALIS, "sedang")


def test_cli_unknown_class_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(f"""
[regency]
name = "Kabupaten Uji"
code = "UJI"

[lapor]
base_url = "http://127.0.0.1:9"

[database]
url = "sqlite:///{tmp_path / 'b.db'}"
""", encoding="utf-8")
    env = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}
    run = CliRunner().invoke
    new = run(main, ["--config", str(config), "case", "new", "--title", "Surat",
                     "--content", "Isi", "--channel", "surat", "--role", "petugas"], env=env)
    assert new.exit_code == 0, new.output
    register_no = new.stdout.split(":")[0]
    result = run(main, ["--config", str(config), "case", "classify", register_no,
                        "--severity", "parah", "--role", "analis"], env=env)
    assert result.exit_code == 1
    assert "unknown class 'parah'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
