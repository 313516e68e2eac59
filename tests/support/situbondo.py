"""Situbondo's staff and the first steps of its SOP, shared by the scenario tests."""

from __future__ import annotations

import pytest

from bridge.services.actions import ActionNotAllowed, Actor
from bridge.testing import FakeLapor
from tests.support.profiles import Deployment
from tests.support.times import wib

UMUM = Actor("Siti Aminah (Subbag Umum dan Kepegawaian)", "petugas")
KADIS = Actor("Drs. Edy Wahyudi (Kepala Dinas)", "kepala_dinas")
KABID = Actor("Yuni Kartika, S.T. (Kabid Data, Informasi dan Pengaduan)", "kabid")
KASI = Actor("Moh. Hasan, S.Sos. (Kasi Penanganan Pengaduan)", "kasi")
STAF = Actor("Rizal Fahmi (Staf Penanganan Pengaduan)", "analis")
KABID_PT = Actor("Ir. Lilik Suryani (Kabid Pelayanan Terpadu)", "penangan")


def arrive(d: Deployment, lapor: FakeLapor, rid: int, title: str, content: str,
           **fields: object) -> int:
    lapor.add_report(id=rid, title=title, content=content, created_at=wib(2026, 5, 25, 8),
                     location="Desa Kilensari, Kec. Panarukan", **fields)
    (cid,) = d.pull()
    return cid


def to_kasi(d: Deployment, cid: int) -> None:
    a = d.actions()
    assert a.register(cid, UMUM).stage == "registered"
    assert a.files_complete(cid, UMUM).stage == "verified"
    with pytest.raises(ActionNotAllowed, match="kepala_dinas"):
        a.dispose(cid, KASI, "Kepala Seksi Penanganan Pengaduan")  # not the Kasi's to give
    assert a.dispose(cid, KADIS, "Kepala Bidang Data, Informasi dan Pengaduan").stage \
        == "disposed_kabid"
    assert a.dispose(cid, KABID, "Kepala Seksi Penanganan Pengaduan").stage \
        == "disposed_kasi"
