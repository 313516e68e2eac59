"""Roles (issue 13, item 9): an account holds several roles (an acting official, Plt, acts
in two), the web page shows each role's actions, command-line actions name an account
(``--user`` or ``$LAPOR_BRIDGE_USER``) checked as on the web, and the install's
``operator`` account is the only one whose ``--role`` is taken as given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from bridge.config import load_settings
from bridge.runtime import Runtime
from bridge.services.accounts import (
    NO_PASSWORD,
    OPERATOR,
    UnknownAccount,
    UserError,
    authenticate,
    command_line_actor,
    create_user,
    load_user,
    parse_roles,
    set_role,
)
from bridge.services.actions import ActionNotAllowed, Actor
from bridge.store.models import Case, CaseEvent, OutboxRow, User
from tests.support.web import (
    PASSWORD,
    PASSWORD_HASH,
    Env,
    csrf_of,
)
from tests.support.web_cli import run, write_config

ROLES = ["petugas", "analis", "kasi", "kabid", "kepala_dinas", "admin"]


# -- accounts -----------------------------------------------------------------------------


def test_roles_are_parsed_and_checked() -> None:
    assert parse_roles(["analis,kasi", "kasi", " kabid "], ROLES) == ["analis", "kasi", "kabid"]
    assert parse_roles("kabid", ROLES) == ["kabid"]
    with pytest.raises(UserError, match="unknown role 'camat'; expected one of petugas"):
        parse_roles(["kasi", "camat"], ROLES)
    with pytest.raises(UserError, match="at least one role"):
        parse_roles([" , "], ROLES)


def test_an_account_holds_several_roles_and_the_tag_covers_them(env: Env) -> None:
    with env.rt.sessions() as s, s.begin():
        create_user(s, "agus", "Agus Prasetyo", ["kabid", "kepala_dinas"], PASSWORD, ROLES)
    with env.rt.sessions() as s, s.begin():
        user = authenticate(s, "agus", PASSWORD)
    assert user is not None
    assert (user.roles, user.role, user.is_admin) == (("kabid", "kepala_dinas"), "kabid", False)
    assert user.holds_any({"kepala_dinas"}) and not user.holds_any({"kasi", "admin"})
    with env.rt.sessions() as s, s.begin():
        set_role(s, "agus", "kepala_dinas,admin", ROLES)
    with env.rt.sessions() as s:
        again = load_user(s, user.id)
        row = s.scalars(select(User).where(User.username == "agus")).one()
        assert row.roles == ["kepala_dinas", "admin"]
    assert again is not None and again.roles == ("kepala_dinas", "admin") and again.is_admin
    assert again.tag != user.tag  # every session of the old set of roles ends
    with env.rt.sessions() as s, s.begin(), pytest.raises(UserError, match="unknown role"):
        set_role(s, "agus", ["kabid", "lurah"], ROLES)
    with env.rt.sessions() as s:
        assert s.scalars(select(User).where(User.username == "agus")).one().roles == [
            "kepala_dinas", "admin"]


def test_the_service_acts_in_the_first_role_that_may(env: Env) -> None:
    cid = env.case()
    env.to_verified(cid)
    plt = Actor("Dewi (Plt Kasi)", "analis", also=("kasi",))
    a = env.rt.actions()
    assert a.classify(cid, plt, "sedang").stage == "classified"  # as analis
    assert a.dispose(cid, plt, "Seksi").stage == "handling"  # analis may not: as kasi
    with pytest.raises(ActionNotAllowed, match="role 'analis'"):
        a.escalate(cid, Actor("Budi", "analis", also=("petugas",)), "kabid", "lama")
    assert env.stage(cid)[0] == "handling"


# -- the migration ------------------------------------------------------------------------


def test_migration_carries_each_role_over_and_makes_the_operator(empty_db_url: str) -> None:
    from bridge.store.db import make_engine
    from bridge.store.migrate import upgrade
    from tests.support.migrations import differences, downgrade

    engine = make_engine(empty_db_url)
    try:
        upgrade(engine, "0009")
        with engine.begin() as conn:
            for name, role in (("dewi", "kasi"), ("budi", "analis")):
                conn.execute(text(
                    "INSERT INTO users (username, full_name, role, password_hash, active, "
                    "created_at, session_generation) VALUES (:n, :n, :r, 'x', :a, "
                    "'2026-11-01 02:00:00', 0)"), {"n": name, "r": role, "a": True})
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT u.username, r.role, r.position FROM user_roles r JOIN users u "
                "ON u.id = r.user_id ORDER BY u.username")).all()
            assert [tuple(r) for r in rows] == [("budi", "analis", 0), ("dewi", "kasi", 0),
                                               (OPERATOR, "admin", 0)]
            op = conn.execute(text("SELECT password_hash, active FROM users "
                                   "WHERE username = 'operator'")).one()
            assert op.password_hash == NO_PASSWORD and op.active
            assert differences(conn) == []
        downgrade(engine, "0009")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT username, role FROM users ORDER BY username"))
            assert [tuple(r) for r in back] == [("budi", "analis"), ("dewi", "kasi"),
                                               (OPERATOR, "admin")]
    finally:
        engine.dispose()


def test_the_operator_cannot_sign_in(env: Env) -> None:
    with env.rt.sessions() as s, s.begin():
        assert authenticate(s, OPERATOR, "") is None
        assert authenticate(s, OPERATOR, NO_PASSWORD) is None


# -- the web page ---------------------------------------------------------------------------


def _answer_drafted(env: Env) -> int:
    cid = env.case()
    env.to_answer_drafted(cid)
    return cid


def _sign_in(env: Env, username: str, roles: list[str]) -> Any:
    """Signed in as a new account ``username`` (a role name, as :meth:`Env.login` takes
    it) that holds ``roles``."""
    with env.rt.sessions() as s, s.begin():
        s.add(User(username=username, full_name="Agus Prasetyo", roles=roles,
                   password_hash=PASSWORD_HASH, active=True))
    return env.login(username)


def _approvals(env: Env, cid: int) -> list[tuple[str, str]]:
    with env.rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None
        return [(x["role"], x["by"]) for x in (case.data or {}).get("approvals", [])]


def test_a_plt_acts_in_both_roles_on_the_case_page(env: Env) -> None:
    cid = _answer_drafted(env)
    label = env.rt.workflow.role_label
    plt = _sign_in(env, "kabid", ["kabid", "kepala_dinas"])
    page = plt.get(f"/kasus/{cid}").text
    assert f"{label('kabid')} · {label('kepala_dinas')}" in page
    # The paraf is the Kabid's; an action both roles may do asks which one acts.
    assert "Paraf: Surat Jawaban Pengaduan" in page
    assert 'id="f-escalate-peran"' in page and "Bertindak sebagai" in page
    assert 'name="peran" value="kabid"' in page  # the paraf: one role, no choice
    before = env.counts()
    # A role the account does not hold, or one whose turn it is not: refused, nothing kept.
    r = env.act(plt, cid, "escalate", {"peran": "kasi", "tingkat": "kepala_dinas",
                                       "catatan": "terlambat"})
    assert r.status_code == 403 and "tidak memegang peran" in r.text
    r = env.act(plt, cid, "approve", {"peran": "kepala_dinas"})
    assert r.status_code == 403 and f"Sebagai {label('kepala_dinas')}" in r.text
    assert env.counts() == before and env.stage(cid)[0] == "answer_drafted"

    assert env.act(plt, cid, "approve", {"peran": "kabid"}).status_code == 303
    page = plt.get(f"/kasus/{cid}").text
    assert "Tanda tangan: Surat Jawaban Pengaduan" in page  # now as the Kepala Dinas
    assert env.act(plt, cid, "approve", {"nomor": ""}).status_code == 303
    assert env.stage(cid)[0] == "answer_approved"
    assert _approvals(env, cid) == [("kabid", "Agus Prasetyo (kabid)"),
                                    ("kepala_dinas", "Agus Prasetyo (kabid)")]


def test_one_role_sees_only_its_own_actions(env: Env) -> None:
    cid = _answer_drafted(env)
    kabid = _sign_in(env, "kabid", ["kabid"])
    page = kabid.get(f"/kasus/{cid}").text
    assert "Paraf: Surat Jawaban Pengaduan" in page and "Bertindak sebagai" not in page
    kadis = _sign_in(env, "kepaladinas", ["kepala_dinas"])
    assert "Paraf: Surat Jawaban" not in kadis.get(f"/kasus/{cid}").text


def test_an_account_with_a_role_the_profile_lacks_cannot_sign_in(env: Env) -> None:
    with env.rt.sessions() as s, s.begin():
        s.add(User(username="lurah", full_name="Lurah", roles=["kasi", "lurah"],
                   password_hash=PASSWORD_HASH, active=True))
    c = env.client()
    page = c.get("/masuk")
    r = c.post("/masuk", data={"username": "lurah", "password": PASSWORD,
                               "csrf_token": csrf_of(page.text), "next": "/antrean"},
               follow_redirects=False)
    assert r.status_code == 403 and "(lurah) tidak dikenal" in r.text


# -- the command line ---------------------------------------------------------------------


def _db(cfg: str) -> tuple[int, int, list[str]]:
    with Runtime(load_settings(cfg)) as rt, rt.sessions() as s:
        events = s.scalar(select(func.count()).select_from(CaseEvent)) or 0
        rows = s.scalar(select(func.count()).select_from(OutboxRow)) or 0
        actors = list(s.scalars(select(CaseEvent.actor).order_by(CaseEvent.id)))
        return events, rows, actors


def _add(cfg: str, name: str, *roles: str) -> None:
    args = ["user", "add", name, "--name", name.title(), "--password-stdin", "--config", cfg]
    for role in roles:
        args += ["--role", role]
    r = run(args, input="sandi-yang-panjang\n")
    assert r.exit_code == 0, r.output


def test_command_line_actions_name_an_account(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = str(write_config(tmp_path))
    _add(cfg, "siti", "petugas")
    _add(cfg, "budi", "analis,kasi")
    r = run(["user", "list", "--config", cfg])
    assert "analis,kasi" in r.output
    new = ["case", "new", "--title", "Jalan rusak", "--content", "Berlubang", "--channel",
           "surat", "--config", cfg]
    # Taking in a case needs an intake role, as the page's form does.
    r = run([*new, "--user", "budi"])
    assert r.exit_code == 2 and "needs one of" in r.output
    assert run([*new, "--user", "siti"]).exit_code == 0
    for step in (["register", "1"], ["complete", "1"]):
        assert run(["case", *step, "--user", "siti", "--config", cfg]).exit_code == 0
    r = run(["case", "classify", "1", "--severity", "sedang", "--user", "budi", "--config", cfg])
    assert r.exit_code == 0, r.output
    # Budi is analis first; the analis may not dispose, so he acts as kasi.
    r = run(["case", "dispose", "1", "--to", "Seksi", "--user", "budi", "--config", cfg])
    assert r.exit_code == 0 and "stage now 'handling'" in r.output
    events, rows, actors = _db(cfg)
    assert actors[-1] == "Budi (budi)" and "Siti (siti)" in actors

    followup = ["case", "followup", "1", "--text", "Sudah ditinjau", "--config", cfg]
    for extra, message in (
        (["--user", "nobody"], "no user 'nobody'"),
        (["--user", "siti", "--role", "analis"],
         "user 'siti' does not hold role 'analis' (holds petugas)"),
        (["--user", "budi", "--role", "kabid"], "does not hold role 'kabid'"),
    ):
        r = run([*followup, *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert r.stderr.strip().count("\n") == 0 and message in r.stderr
    # A role held that the workflow does not allow here: the service's own refusal.
    assert run([*followup, "--user", "siti"]).exit_code == 1
    assert _db(cfg)[:2] == (events, rows)

    assert run(["user", "disable", "budi", "--config", cfg]).exit_code == 0
    r = run([*followup, "--user", "budi"])
    assert r.exit_code == 2 and "user 'budi' is disabled" in r.stderr
    assert run(["user", "enable", "budi", "--config", cfg]).exit_code == 0
    monkeypatch.setenv("LAPOR_BRIDGE_USER", "budi")
    r = run(followup)
    assert r.exit_code == 0, r.output
    assert _db(cfg)[2][-1] == "Budi (budi)"


def test_without_user_the_operator_acts_in_any_role(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    new = ["case", "new", "--title", "Lampu mati", "--content", "Gelap", "--channel", "surat",
           "--config", cfg]
    assert run([*new, "--role", "petugas"]).exit_code == 0
    r = run(["case", "register", "1", "--role", "petugas", "--actor", "Sari", "--config", cfg])
    assert r.exit_code == 0, r.output
    assert _db(cfg)[2][-1] == "Sari"
    r = run(["case", "complete", "1", "--config", cfg])
    assert r.exit_code == 2 and "give --role" in r.stderr
    assert run(["user", "disable", OPERATOR, "--config", cfg]).exit_code == 0
    before = _db(cfg)
    r = run(["case", "complete", "1", "--role", "petugas", "--config", cfg])
    assert r.exit_code == 2 and "'operator' account is disabled" in r.stderr
    assert _db(cfg) == before


def test_user_role_takes_several_and_refuses_an_unknown_one(tmp_path: Path) -> None:
    cfg = str(write_config(tmp_path))
    _add(cfg, "dewi", "kasi")
    r = run(["user", "role", "dewi", "kasi", "--role", "analis", "--config", cfg])
    assert r.exit_code == 0 and "user dewi is now kasi, analis" in r.output
    r = run(["user", "role", "dewi", "camat", "--config", cfg])
    assert r.exit_code == 2 and "unknown role 'camat'" in r.stderr
    r = run(["user", "add", "x", "--role", "kasi,camat", "--name", "X", "--password-stdin",
             "--config", cfg], input="sandi-yang-panjang\n")
    assert r.exit_code == 2 and "unknown role 'camat'" in r.stderr
    with Runtime(load_settings(cfg)) as rt, rt.sessions() as s:
        users = {u.username: u.roles for u in s.scalars(select(User))}
    assert users == {"dewi": ["kasi", "analis"], OPERATOR: ["admin"]}


def test_command_line_actor_rules(env: Env) -> None:
    with env.rt.sessions() as s, s.begin():
        create_user(s, "agus", "Agus", ["kabid", "kepala_dinas", "admin"], PASSWORD, ROLES)
    with env.rt.sessions() as s:
        assert command_line_actor(s, "agus", None) == Actor(
            "Agus (agus)", "kabid", also=("kepala_dinas", "admin"))
        assert command_line_actor(s, "AGUS", "kepala_dinas") == Actor("Agus (agus)",
                                                                      "kepala_dinas")
        assert command_line_actor(s, None, "kasi", "Sari") == Actor("Sari", "kasi")
        assert command_line_actor(s, "agus", None, needs={"admin", "petugas"}) == Actor(
            "Agus (agus)", "admin")
        with pytest.raises(UnknownAccount, match="needs one of"):
            command_line_actor(s, "agus", "kabid", needs={"admin", "petugas"})
