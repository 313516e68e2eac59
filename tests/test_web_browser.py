"""The staff page in a real browser: Playwright driving Debian's Chromium against the page
served by uvicorn, with the LAPOR! sandbox behind the bridge.

The setup installs the ``chromium`` package with apt when /usr/bin/chromium is missing
(never ``playwright install``); the tests are skipped, with the reason, if that fails.

Screenshots go to the test's temporary directory; with LAPOR_BRIDGE_SCREENSHOTS=1 they
are also written to docs/web-queue.png and docs/web-case.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bridge.runtime import Runtime
from bridge.services.actions import Actor
from bridge.store.models import Case, User
from bridge.web.app import create_app
from bridge.web.serve import ThreadedServer
from bridge.web.settings import SigningKey, WebSettings
from tests.support.passwords import TEST_HASHER
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parent.parent / "docs"
PASSWORD = "kata-sandi-browser-1"
#: Generous: the wait ends as soon as the page shows it; only a broken page waits this long.
WAIT_MS = 20_000

pytestmark = pytest.mark.slow


def _install_chromium() -> str | None:
    """None when Chromium is there (installing it if needed), else why it is not."""
    if os.path.exists(CHROMIUM):
        return None
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} is missing and apt-get is not available to install it"
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=900,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not install chromium with apt-get: {exc}"
    return None if os.path.exists(CHROMIUM) else f"{CHROMIUM} still missing after apt-get"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _install_chromium()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@dataclass
class World:
    rt: Runtime
    sandbox: Any
    url: str

    def pull(self) -> None:
        with self.rt.client() as client:
            self.rt.puller(client).run()

    def push(self) -> Any:
        with self.rt.client() as client:
            return self.rt.pusher(client).run()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    from bridge.lapor.sandbox import SandboxServer

    with SandboxServer(seed=7, reports=14, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        # Counted from the citizen's filing: the sandbox's listing has no disposition log,
        # so counted from receipt its old reports would all be due from today.
        rt = Runtime(make_settings(f"sqlite:///{tmp_path / 'browser.db'}", sandbox.url,
                                   regency={"name": "Kabupaten Uji"},
                                   workflow={"deadlines": {"overall": {
                                       "counted_from": "filed"}}}))
        hasher = TEST_HASHER
        with rt.sessions() as s, s.begin():
            for username, role, name in (("dewi", "kasi", "Dewi Lestari"),
                                         ("sari", "petugas", "Sari Wulandari")):
                s.add(User(username=username, full_name=name, role=role,
                           password_hash=hasher.hash(PASSWORD), active=True))
        world = World(rt, sandbox, "")
        world.pull()
        _variety(rt)
        app = create_app(rt, web=WebSettings(poll_seconds=1),
                         key=SigningKey("b" * 48, "test"))
        with ThreadedServer(app) as server:
            world.url = server.url
            yield world
        rt.close()


def _variety(rt: Runtime) -> None:
    """A queue that looks like a working day: some cases moved on, some opened."""
    petugas, analis, kasi = Actor("Sari", "petugas"), Actor("Budi", "analis"), \
        Actor("Dewi", "kasi")
    a = rt.actions()
    with rt.sessions() as s:
        ids = list(s.scalars(select(Case.id).order_by(Case.deadline_at.desc())))
    for i, cid in enumerate(ids[:8]):
        a.register(cid, petugas)
        if i < 5:
            a.files_complete(cid, petugas)
        if i < 3:
            a.classify(cid, analis, ("ringan", "sedang", "berat")[i])
        if i < 2:
            a.dispose(cid, kasi, "Seksi Penanganan Pengaduan")


def sign_in(page: Any, url: str, username: str) -> None:
    page.goto(url + "/masuk")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Masuk')")
    page.wait_for_url(url + "/antrean", timeout=WAIT_MS)


def shot(page: Any, tmp_path: Path, name: str, full_page: bool = False) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=full_page)
    assert path.stat().st_size > 10_000  # a rendered page, not a blank one
    if os.environ.get("LAPOR_BRIDGE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / name)
    return path


def open_form(page: Any, summary: str) -> Any:
    details = page.locator("details.aksi", has=page.locator(f"summary:has-text('{summary}')"))
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    return details


def test_ticket_arrives_live_and_is_forwarded_to_lapor(browser: Any, world: World,
                                                       tmp_path: Path) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    page = ctx.new_page()
    sign_in(page, world.url, "dewi")
    page.evaluate("window.__noReload = 'still here'")

    # A citizen files a report on LAPOR!; the bridge pulls it; the open page shows it.
    title = "Limbah pabrik tahu mencemari Sungai Dengkeng"
    added = world.sandbox.state.add_report(
        title=title, category="Lingkungan Hidup", location="Kel. Gayamprit, Kec. Klaten Selatan",
        content="Sejak dua minggu air sungai berbau dan berbusa. Mohon ditindak.")
    lapor_id = added["id"]
    world.pull()
    row = page.locator("#antrean-isi tr", has_text=title)
    row.wait_for(timeout=WAIT_MS)
    assert page.evaluate("window.__noReload") == "still here"  # no reload happened
    assert "baru" in (row.get_attribute("class") or "")
    assert row.locator(".lencana.baru").inner_text() == "Baru"
    assert "pengaduan baru masuk" in page.locator("#antrean-status").inner_text()
    # Sandbox reports were filed up to 60 days ago: overdue ones stand out.
    assert page.locator("#antrean-isi tr.lewat").count() > 0
    shot(page, tmp_path, "web-queue.png", full_page=True)

    # The front office registers it and finds the files complete (their role, their page).
    sari = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    sign_in(sari, world.url, "sari")
    with world.rt.sessions() as s:
        cid = s.scalars(select(Case.id).where(Case.lapor_id == lapor_id)).one()
    sari.goto(f"{world.url}/kasus/{cid}")
    open_form(sari, "Catat di buku register").locator("button[type=submit]").click()
    sari.wait_for_selector("text=«Catat di buku register» tersimpan", timeout=WAIT_MS)
    open_form(sari, "Berkas lengkap dan sah").locator("button[type=submit]").click()
    sari.wait_for_selector("text=Tahap sekarang: Berkas lengkap dan terverifikasi",
                           timeout=WAIT_MS)

    # The Kasi opens it from the queue (which clears "new") and forwards it to the DLH.
    row.locator("a").click()
    page.wait_for_url(f"{world.url}/kasus/{cid}", timeout=WAIT_MS)
    form = open_form(page, "Teruskan ke OPD terkait")
    form.locator("select[name=opd]").select_option("DLH")
    form.locator("textarea[name=tembusan]").fill("Pelapor\nCamat Klaten Selatan")
    form.locator("textarea[name=catatan]").fill("Pencemaran sungai adalah kewenangan DLH.")
    shot(page, tmp_path, "web-case.png")
    form.locator("button[type=submit]").click()
    page.wait_for_selector("text=Akan dikirim ke LAPOR! oleh proses sinkronisasi",
                           timeout=WAIT_MS)
    waiting = page.locator("ul.kiriman li")
    assert "Tindak lanjut" in waiting.first.inner_text()
    with world.rt.sessions() as s:
        case = s.get(Case, cid)
        assert case is not None and case.is_new is False and case.stage == "forwarded"

    # The push carries it to LAPOR!: the forward and its tembusan arrive at the sandbox.
    result = world.push()
    assert result.delivered >= 1
    texts = [f["content"] for f in world.sandbox.state.followups_of(lapor_id)]
    forward = next(t for t in texts if "Dinas Lingkungan Hidup" in t)
    assert "Tembusan: Pelapor; Camat Klaten Selatan" in forward
    assert "Pencemaran sungai adalah kewenangan DLH." in forward
    page.reload()
    assert "Tidak ada kiriman yang tertunda." in page.inner_text("body")
    assert "Terkirim ke LAPOR!" in page.inner_text("ol.riwayat")
    ctx.close()


def test_a_walk_in_complaint_is_taken_in_on_the_page(browser: Any, world: World) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    sign_in(page, world.url, "sari")
    page.click("text=+ Catat pengaduan baru")
    page.wait_for_url(f"{world.url}/kasus/baru", timeout=WAIT_MS)
    page.select_option("select[name=kanal]", "langsung")
    page.fill("input[name=judul]", "Warga datang: jalan desa berlubang")
    page.fill("textarea[name=isi]", "Pak Darto datang ke loket melaporkan jalan berlubang.")
    page.fill("input[name=tanggal_terima]", "2026-11-02")
    page.check("input[name=rahasia]")
    page.set_input_files("input[name=lampiran]", files=[{
        "name": "foto.png", "mimeType": "image/png",
        "buffer": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64}])
    page.click("text=Simpan dan beri nomor register")
    page.wait_for_selector("text=Pengaduan dicatat dengan nomor register", timeout=WAIT_MS)
    body = page.inner_text("body")
    assert "Warga datang: jalan desa berlubang" in body and "Rahasia" in body
    with world.rt.sessions() as s:
        case = s.scalars(select(Case).where(Case.channel == "langsung")).one()
        assert case.is_secret and [a["name"] for a in case.attachments] == ["foto.png"]
    ctx.close()


def test_phone_sized_screen(browser: Any, world: World, tmp_path: Path) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True)
    page = ctx.new_page()
    sign_in(page, world.url, "sari")
    fits = "document.documentElement.scrollWidth <= window.innerWidth + 1"
    assert page.evaluate(fits), "the queue scrolls sideways on a phone"
    first = page.locator("#antrean-isi tr.baris a").first
    first.click()
    page.wait_for_selector("h2:has-text('Riwayat')", timeout=WAIT_MS)
    assert page.evaluate(fits), "the case page scrolls sideways on a phone"
    # The actions come first on a narrow screen (the aside is ordered before the report).
    actions_top = page.locator("#tindakan").bounding_box()
    report_top = page.locator("h2:has-text('Laporan')").bounding_box()
    assert actions_top and report_top and actions_top["y"] < report_top["y"]
    page.screenshot(path=str(tmp_path / "phone-case.png"))
    for path in ("/kotak-keluar", "/rekap"):
        page.goto(world.url + path)
        assert page.evaluate(fits), f"{path} scrolls sideways on a phone"
        page.screenshot(path=str(tmp_path / f"phone{path.replace('/', '-')}.png"),
                        full_page=True)
    ctx.close()


def test_page_loads_nothing_from_outside(browser: Any, world: World) -> None:
    ctx = browser.new_context()
    page = ctx.new_page()
    outside: list[str] = []
    page.on("request", lambda req: outside.append(req.url)
            if not req.url.startswith(world.url) else None)
    sign_in(page, world.url, "dewi")
    for path in ("/antrean", "/kotak-keluar", "/rekap"):
        page.goto(world.url + path)
    with world.rt.sessions() as s:
        cid = s.scalars(select(Case.id)).first()
    page.goto(f"{world.url}/kasus/{cid}")
    assert outside == []
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(world.url + "/antrean")
    page.wait_for_timeout(1500)  # let one poll run: it must not raise a script error
    assert errors == []
    ctx.close()



@pytest.fixture
def pemda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A Pemda of two bodies (DPM sends, DLH receives) on SQLite, its staff page served."""
    from bridge.web.pemda import create_pemda_app
    from tests.support.pemda_web import pemda_deployment

    with pemda_deployment(tmp_path, monkeypatch) as (dep, accounts):
        app = create_pemda_app(dep, accounts,  # type: ignore[arg-type]
                               web=WebSettings(poll_seconds=1),
                               key=SigningKey("p" * 48, "test"))
        with ThreadedServer(app) as server:
            yield dep, server.url


def test_forward_between_bodies_reaches_the_receiver_and_shows_on_the_sender(
        browser: Any, pemda: tuple[Any, str], tmp_path: Path) -> None:
    from tests.support.pemda_web import PASSWORD as PEMDA_PASSWORD
    from tests.support.pemda_web import deliver, new_case

    dep, url = pemda
    dpm, dlh = dep.runtime("DPM"), dep.runtime("DLH")
    title = "Limbah cair pabrik tahu di Desa Karangasem"
    case_id = new_case(dpm, title)

    def sign_in_body(page: Any, code: str, username: str) -> None:
        page.goto(f"{url}/b/{code}/masuk")
        page.fill("#username", username)
        page.fill("#password", PEMDA_PASSWORD)
        page.click("button:has-text('Masuk')")
        page.wait_for_url(f"{url}/b/{code}/antrean", timeout=WAIT_MS)

    # DPM's kasi forwards the case to the DLH through the case page's form.
    sari_ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    sari = sari_ctx.new_page()
    sign_in_body(sari, "DPM", "sari")
    sari.goto(f"{url}/b/DPM/kasus/{case_id}")
    form = open_form(sari, "Teruskan ke OPD terkait")
    form.locator("select[name=opd]").select_option("DLH")
    form.locator("textarea[name=tembusan]").fill("Pelapor")
    form.locator("textarea[name=catatan]").fill("Pencemaran adalah kewenangan DLH.")
    form.locator("button[type=submit]").click()
    sari.wait_for_url(f"{url}/b/DPM/kasus/{case_id}", timeout=WAIT_MS)
    sari.wait_for_selector("#penerusan >> text=Menunggu dikirim ke antrean",
                           timeout=WAIT_MS)

    # The sender's sync cycle delivers it into the DLH's queue.
    deliver(dpm)
    with dlh.sessions() as s:
        dlh_id, stage = s.execute(select(Case.id, Case.stage)
                                  .where(Case.title == title)).one()

    budi_ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID")
    budi = budi_ctx.new_page()
    sign_in_body(budi, "DLH", "budi")
    row = budi.locator("#antrean-isi tr", has_text=title)
    row.wait_for(timeout=WAIT_MS)
    row.locator("a").click()
    budi.wait_for_url(f"{url}/b/DLH/kasus/{dlh_id}", timeout=WAIT_MS)
    assert "Pelapor" in budi.inner_text("body")  # the tembusan came along

    # The sender's case page shows where it stands at the receiver; its own copy is
    # at the forwarded stage meanwhile.
    sari.goto(f"{url}/b/DPM/antrean")
    assert sari.locator("#antrean-isi tr", has_text=title).locator(
        "td[data-label=Tahap]").inner_text() == dpm.workflow.stage_label("forwarded")
    sari.goto(f"{url}/b/DPM/kasus/{case_id}")
    shown = sari.locator("#penerusan .penerusan[data-body=DLH] .tahap-tujuan")
    shown.wait_for(timeout=WAIT_MS)
    assert shown.inner_text() == dlh.workflow.stage_label(stage)
    shot(sari, tmp_path, "web-pemda-sender.png")

    # The DLH gives it back; once the sender's cycle follows up, it is in DPM's queue again.
    give_back = open_form(budi, "Kembalikan ke pengirim (DPM)")
    give_back.locator("textarea[name=alasan]").fill("Izin lingkungan diterbitkan DPMPTSP.")
    give_back.locator("button[type=submit]").click()
    budi.wait_for_selector("text=Pengaduan dikembalikan kepada pengirim", timeout=WAIT_MS)
    forwarding = dpm.forwarding()
    assert forwarding is not None
    forwarding.follow()
    with dpm.sessions() as s:
        back = s.get(Case, case_id)
        assert back is not None and back.stage != "forwarded" and back.closed_at is None
    sari.goto(f"{url}/b/DPM/antrean")
    mine = sari.locator("#antrean-isi tr", has_text=title)
    mine.wait_for(timeout=WAIT_MS)
    assert mine.locator("td[data-label=Tahap]").inner_text() == \
        dpm.workflow.stage_label(back.stage)
    sari.goto(f"{url}/b/DPM/kasus/{case_id}")
    assert "Dikembalikan oleh" in sari.inner_text("#penerusan")
    assert "Izin lingkungan diterbitkan DPMPTSP." in sari.inner_text("#penerusan")
    sari_ctx.close()
    budi_ctx.close()
