"""The staff page under test: an app on a real database, clients, users and forms."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from bridge.runtime import Runtime
from bridge.services.actions import Actor, NewCase
from bridge.store.models import Case, CaseEvent, OutboxRow, User
from bridge.web.app import create_app
from bridge.web.settings import SigningKey, WebSettings
from tests.support.clock import Clock
from tests.support.passwords import TEST_HASHER
from tests.support.settings import make_settings

PASSWORD = "kata-sandi-uji-123"
#: Hashed once: hashing is deliberately slow, and every test signs people in.
PASSWORD_HASH = TEST_HASHER.hash(PASSWORD)

PETUGAS = Actor("Sari (petugas)", "petugas")
ANALIS = Actor("Budi (analis)", "analis")
KASI = Actor("Dewi (kasi)", "kasi")
KABID = Actor("Agus (kabid)", "kabid")

NAMES = {"petugas": "Sari Wulandari", "analis": "Budi Santoso", "kasi": "Dewi Lestari",
         "kabid": "Agus Prasetyo", "kepala_dinas": "Hadi Susanto", "admin": "Admin TI",
         "penangan": "Tim Teknis"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "page has no CSRF field"
    return found.group(1)


def version_of(html: str) -> str:
    found = re.search(r'name="versi" value="(\d+)"', html)
    assert found, "page has no action form"
    return found.group(1)


@dataclass
class Env:
    rt: Runtime
    clock: Clock
    web: WebSettings
    app: Any
    clients: list[TestClient] = field(default_factory=list)

    def client(self, ip: str = "10.0.0.1", raise_errors: bool = True) -> TestClient:
        c = TestClient(self.app, client=(ip, 50000), raise_server_exceptions=raise_errors)
        self.clients.append(c)
        return c

    def user(self, role: str, username: str | None = None) -> str:
        username = username or role.replace("_", "")
        with self.rt.sessions() as s, s.begin():
            if s.scalar(select(User.id).where(User.username == username)) is None:
                s.add(User(username=username, full_name=NAMES.get(role, role), role=role,
                           password_hash=PASSWORD_HASH, active=True))
        return username

    def login(self, role: str, ip: str = "10.0.0.1") -> TestClient:
        username = self.user(role)
        c = self.client(ip)
        page = c.get("/masuk")
        r = c.post("/masuk", data={"username": username, "password": PASSWORD,
                                   "csrf_token": csrf_of(page.text), "next": "/antrean"},
                   follow_redirects=False)
        assert r.status_code == 303, r.text
        return c

    def case(self, **kw: Any) -> int:
        fields = {"title": "Izin usaha belum terbit", "content": "Sudah 3 bulan menunggu.",
                  "channel": "surat", "reporter": {"name": "Siti Aminah"}}
        fields.update(kw)
        return self.rt.actions().new_case(NewCase(**fields), PETUGAS).case_id

    def to_verified(self, cid: int) -> None:
        a = self.rt.actions()
        a.register(cid, PETUGAS)
        a.files_complete(cid, PETUGAS)

    def to_answer_drafted(self, cid: int) -> None:
        """Verified, classified sedang, disposed and drafted: the approvals are next."""
        self.to_verified(cid)
        a = self.rt.actions()
        a.classify(cid, ANALIS, "sedang")
        a.dispose(cid, KASI, "Seksi")
        a.record_step(cid, ANALIS, "konsep_jawaban", "konsep v1")

    def stage(self, cid: int) -> tuple[str, int]:
        with self.rt.sessions() as s:
            c = s.get(Case, cid)
            assert c is not None
            return c.stage, c.version

    def counts(self) -> tuple[int, int]:
        with self.rt.sessions() as s:
            return (s.scalar(select(func.count()).select_from(CaseEvent)) or 0,
                    s.scalar(select(func.count()).select_from(OutboxRow)) or 0)

    def act(self, c: TestClient, cid: int, key: str, data: dict[str, str] | None = None,
            files: Any = None, version: str | None = None) -> Any:
        page = c.get(f"/kasus/{cid}")
        form = {"csrf_token": csrf_of(page.text),
                "versi": version or version_of(page.text), **(data or {})}
        return c.post(f"/kasus/{cid}/aksi/{key}", data=form, files=files,
                      follow_redirects=False)


def build_env(db_url: str, **web: Any) -> Env:
    rt = Runtime(make_settings(db_url))
    clock = Clock()
    ws = WebSettings(**{"poll_seconds": 1, **web})
    app = create_app(rt, web=ws, key=SigningKey("k" * 48, "test"), clock=clock)
    return Env(rt, clock, ws, app)
