"""Notification templates: Bahasa Indonesia, overridable per regency, never the reporter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bridge.config import ConfigError
from bridge.domain import Notification
from bridge.notify import (
    KINDS,
    NotificationError,
    NotificationRenderer,
    format_tanggal,
    renderer_from_settings,
)
from bridge.testing import make_case, settings_for_tests

CONTEXT = {
    "unit": "Seksi Penanganan Pengaduan", "target": "Dinas Lingkungan Hidup",
    "tembusan": ["pelapor", "Camat Tengah"], "reason": "alasan uji", "level": 2,
    "to_role": "kepala_dinas", "deadline_at": datetime(2026, 3, 16, 16, 59, 59, tzinfo=UTC),
    "working_days_left": 2, "remote_id": "50001", "what": "followup",
    "error": "422 content wajib diisi", "failures": ["plugin 'x' failed"],
}

REPORTER = {"name": "Budi Santoso", "phone": "081299998888", "email": "budi@rahasia.id",
            "address": "Jl. Melati 7", "id_number": "3310012345670001"}
SECRETS = ("Budi", "081299998888", "budi@rahasia.id", "Melati", "3310012345670001")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("flags", [{"is_anonymous": True}, {"is_secret": True}, {}])
def test_no_template_shows_the_reporter(kind: str, flags: dict[str, bool]) -> None:
    case = make_case(reporter=REPORTER, content="Saya Budi Santoso dari Jl. Melati 7 melapor",
                     **flags)
    note = NotificationRenderer(regency="Kabupaten Contoh").render(kind, case, ["kabid"],
                                                                  **CONTEXT)
    text = note.subject + note.body + repr(note.to_dict())
    for secret in SECRETS:
        assert secret not in text
    expected = "Anonim" if flags.get("is_anonymous") else (
        "Dirahasiakan" if flags.get("is_secret") else "Tercatat di sistem")
    assert f"Pelapor        : {expected}" in note.body
    assert note.register_no == case.register_no and note.case_id == case.id
    assert "\n" not in note.subject and note.subject.startswith("[Kabupaten Contoh]")


def test_rendered_text_is_indonesian_with_local_dates() -> None:
    case = make_case(deadline_at=CONTEXT["deadline_at"], tracking_id="1916449")
    note = NotificationRenderer(regency="Kab. Klaten").render(
        "deadline_near", case, ["kabid", "petugas"], deadline_at=CONTEXT["deadline_at"],
        working_days_left=2)
    assert note.subject == f"[Kab. Klaten] Batas waktu pengaduan {case.register_no} segera berakhir"
    assert note.body.startswith("Yth. Kepala Bidang, Petugas Pengaduan,\n")
    assert "jatuh pada Senin, 16 Maret 2026 pukul 23.59 WIB (sisa 2 hari kerja)" in note.body
    assert "Tautan LAPOR!  : https://www.lapor.go.id/pengaduan/1916449" in note.body
    assert note.data["deadline_at"] == "2026-03-16T16:59:59+00:00"
    assert Notification.from_dict(note.to_dict()) == note


def test_format_tanggal() -> None:
    assert format_tanggal(datetime(2026, 8, 17, 3, 0, tzinfo=UTC)) == \
        "Senin, 17 Agustus 2026 pukul 10.00 WIB"
    assert format_tanggal(datetime(2026, 8, 17, 3, 0, tzinfo=UTC), "Asia/Makassar").endswith(
        "11.00 WITA")
    with pytest.raises(NotificationError, match="naive"):
        format_tanggal(datetime(2026, 8, 17))
    # Cached, yet a repeated local hour's second pass (equal to the first) keeps its own
    # instant: 01:30 EDT is 12.30 WIB, 01:30 EST an hour later.
    from zoneinfo import ZoneInfo

    first = datetime(2026, 11, 1, 1, 30, tzinfo=ZoneInfo("America/New_York"))
    assert [format_tanggal(v) for v in (first, first.replace(fold=1), first)] == [
        "Minggu, 1 November 2026 pukul 12.30 WIB", "Minggu, 1 November 2026 pukul 13.30 WIB",
        "Minggu, 1 November 2026 pukul 12.30 WIB"]


def test_regency_override_replaces_one_template(tmp_path: Path) -> None:
    (tmp_path / "case_received.j2").write_text(
        "Aduan masuk {{ case.register_no }} ({{ regency }})\n"
        "Kepada {{ recipients_text }}: silakan cek {{ case.title }}.\n", encoding="utf-8")
    renderer = NotificationRenderer(tmp_path, regency="Kota Prabumulih")
    renderer.check()
    case = make_case()
    note = renderer.render("case_received", case, ["petugas"])
    assert note.subject == f"Aduan masuk {case.register_no} (Kota Prabumulih)"
    assert note.body == f"Kepada Petugas Pengaduan: silakan cek {case.title}.\n"
    # the others still come from the built-in set
    assert renderer.render("escalated", case, ["kabid"], level=1, to_role="kabid",
                           reason="x").subject.startswith("[Kota Prabumulih] Eskalasi")


def test_override_asking_for_the_reporter_fails_instead_of_leaking(tmp_path: Path) -> None:
    (tmp_path / "assigned.j2").write_text("Subjek\nPelapor: {{ case.reporter.name }}\n")
    renderer = NotificationRenderer(tmp_path)
    with pytest.raises(NotificationError, match="assigned.j2.*has no attribute 'reporter'"):
        renderer.render("assigned", make_case(reporter=REPORTER), ["kabid"], unit="A",
                        reason="")
    with pytest.raises(NotificationError, match="may not contain"):
        renderer.render("assigned", make_case(), ["kabid"], unit="A", reason="",
                        reporter=REPORTER)


def test_bad_templates_are_reported_at_start(tmp_path: Path) -> None:
    (tmp_path / "escalated.j2").write_text("{% if %}\n")
    with pytest.raises(NotificationError, match=r"escalated.j2 line 1"):
        NotificationRenderer(tmp_path).check()
    (tmp_path / "escalated.j2").write_text("satu baris saja\n")
    with pytest.raises(NotificationError, match="subject on its first line"):
        NotificationRenderer(tmp_path).render("escalated", make_case(), ["kabid"])
    with pytest.raises(NotificationError, match="no template for notification kind 'rekap'"):
        NotificationRenderer().render("rekap", make_case(), ["kabid"])
    with pytest.raises(NotificationError, match="template directory not found"):
        NotificationRenderer(tmp_path / "nope")


def test_renderer_from_settings(tmp_path: Path) -> None:
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "dead_letter.j2").write_text("Gagal {{ case.register_no }}\nCek.\n")
    settings = settings_for_tests(extra={"notifications": {"template_dir": str(tmp_path / "tpl")}})
    renderer = renderer_from_settings(settings)
    assert renderer.regency == "Kabupaten Contoh"
    assert renderer.render("dead_letter", make_case(id=9), ["petugas"]).subject == \
        "Gagal CTH/2026/00009"
    with pytest.raises(ConfigError) as err:
        renderer_from_settings(settings_for_tests(extra={"notifications": {"template_dri": "x"}}))
    assert err.value.key == "notifications.template_dri"
    with pytest.raises(ConfigError) as err:
        renderer_from_settings(settings_for_tests(
            extra={"notifications": {"template_dir": str(tmp_path / "missing")}}))
    assert err.value.key == "notifications.template_dir"
    assert "not found" in err.value.problem
