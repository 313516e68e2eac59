"""``case ... --user NAME`` on a Pemda: the account is the deployment's, acting with its
roles in the body ``--body`` names, not the body's own store's."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.store.models import Case, CaseEvent
from tests.support.cli import invoke
from tests.support.pemda_web import new_case, pemda_deployment


def _history(sessions: object, case_id: int) -> list[tuple[str, str]]:
    with sessions() as s:  # type: ignore[operator]
        return [(e.kind, e.actor or "") for e in s.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id))]


def test_user_acts_with_their_roles_in_the_named_body(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pemda_deployment(tmp_path, monkeypatch) as (dep, _accounts):
        cfg = str(tmp_path / "pemda.toml")
        dlh = dep.runtime("DLH")
        case_id = new_case(dlh, "Izin reklame")
        forward = ["case", "forward", str(case_id), "--to", "DPM", "--note", "Kewenangan DPM",
                   "--body", "DLH", "--config", cfg]

        # sari is petugas and kasi in DPM, nothing in DLH: refused in one line, no change.
        before = _history(dlh.sessions, case_id)
        code, _out, err = invoke(*forward, "--user", "sari")
        assert code == 2, err
        assert "user 'sari' has no role in DLH (member of DPM)" in err
        assert err.strip().count("\n") == 0
        code, _out, err = invoke(*forward, "--user", "nobody")
        assert code == 2 and "no user 'nobody'" in err
        # budi is kasi in DLH: the forward is his (DLH's own store has no accounts at all).
        code, _out, err = invoke(*forward, "--user", "budi", "--role", "petugas")
        assert code == 2 and "user 'budi' does not hold role 'petugas' (holds kasi)" in err
        assert _history(dlh.sessions, case_id) == before
        code, out, err = invoke(*forward, "--user", "budi")
        assert code == 0, err
        assert "stage now 'forwarded'" in out
        assert _history(dlh.sessions, case_id)[-1] == ("forward_opd", "Budi DLH (budi)")

        # Taking a case in: sari may in DPM (petugas there), budi may not (no role there).
        new = ["case", "new", "--title", "Jalan rusak", "--content", "Berlubang",
               "--channel", "surat", "--body", "DPM", "--config", cfg]
        code, _out, err = invoke(*new, "--user", "budi")
        assert code == 2 and "user 'budi' has no role in DPM (member of DLH)" in err
        code, _out, err = invoke(*new, "--user", "sari")
        assert code == 0, err
        with dep.runtime("DPM").sessions() as s:
            made = s.scalars(select(Case).where(Case.title == "Jalan rusak")).one()
        assert _history(dep.runtime("DPM").sessions, made.id)[0][1] == "Sari DPM (sari)"
