"""What staff read in a terminal: the history as sentences, the reporter, attachments,
HTML entities, the queue search and the recap CSV (issue 14, small things)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.lapor.sandbox import SandboxServer
from bridge.services.history import describe_event, reporter_text, size_text
from tests.support.cli import write_config
from tests.support.settings import TEST_BEARER, TEST_TOKEN

ENV = {"LAPOR_BRIDGE_BEARER": TEST_BEARER, "LAPOR_BRIDGE_TOKEN": TEST_TOKEN}


def invoke(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env=ENV)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[tuple[Path, SandboxServer]]:
    with SandboxServer(seed=3, reports=12, bearer=TEST_BEARER, token=TEST_TOKEN) as sandbox:
        sandbox.state.add_report(title="Pungli & calo di loket KTP_el 100% nyata",
                                 content="Petugas &amp; calo &quot;bekerja sama&quot;.",
                                 category="Administrasi Kependudukan")
        config = write_config(tmp_path, sandbox.url)
        code, _, err = invoke(config, "sync", "--once")
        assert code == 0, err
        yield config, sandbox


def test_history_reads_as_sentences(synced: tuple[Path, SandboxServer]) -> None:
    config, _ = synced
    for args in (["register", "1", "--role", "petugas"], ["complete", "1", "--role", "petugas"],
                 ["classify", "1", "--severity", "sedang", "--role", "analis"]):
        assert invoke(config, "case", *args)[0] == 0
    code, out, _ = invoke(config, "case", "show", "1")
    history = out.split("Riwayat:", 1)[1]
    assert "LAPOR!: Laporan diterima dari LAPOR! dengan nomor register UJI/" in history
    assert "Dicatat di buku register; tahap menjadi" in history
    assert "Berkas dinyatakan lengkap; tahap menjadi" in history
    assert "Diklasifikasikan sebagai sedang" in history
    for raw in ("files_complete", "register_no", "files_complete_at", "stage\n"):
        assert raw not in history


def test_triage_and_plugin_failure_sentences() -> None:
    triage = describe_event({"kind": "triage", "side": "system", "actor": "Sistem (otomatis)",
                             "changes": {"triage": [None, {"routing": "suggested"}]},
                             "note": "Triase otomatis: penanganan oleh DLH disarankan"})
    assert triage == "Triase otomatis: penanganan oleh DLH disarankan."
    failed = describe_event({"kind": "plugin_failed", "side": "system",
                             "actor": "plugin:plugins.routing_rules",
                             "changes": {"hook": "route_case", "failure": "timeout",
                                         "during": "triase"},
                             "note": "no answer within 5.0 s"})
    assert failed == ("Plugin plugins.routing_rules gagal (melewati batas waktu) pada "
                      "penentuan kewenangan saat triase: no answer within 5.0 s.")
    assert "triage triage" not in triage and "during, failure, hook" not in failed


def test_reporter_is_readable(synced: tuple[Path, SandboxServer]) -> None:
    config, _ = synced
    code, out, _ = invoke(config, "case", "show", "1", "--json")
    reporter = json.loads(out)["reporter"]
    code, out, _ = invoke(config, "case", "show", "1")
    line = next(x for x in out.splitlines() if x.strip().startswith("Pelapor"))
    assert "{" not in line and '"name"' not in line
    if isinstance(reporter, dict) and reporter.get("name"):
        assert reporter["name"] in line
    assert reporter_text({"name": "Siti", "email": "s@x.id", "phone": "0812"}) == \
        "Siti (s@x.id, 0812)"


def test_attachment_size_is_shown(synced: tuple[Path, SandboxServer]) -> None:
    config, _ = synced
    code, out, _ = invoke(config, "queue", "--json")
    for row in json.loads(out):
        code, out, _ = invoke(config, "case", "show", str(row["id"]), "--json")
        attachments = json.loads(out)["attachments"]
        if attachments and attachments[0].get("size"):
            break
    else:
        pytest.fail("no seeded report with an attachment size")
    code, out, _ = invoke(config, "case", "show", str(row["id"]))
    size = size_text(attachments[0]["size"])
    assert size is not None and f", {size})" in out
    assert "(?)" not in out
    assert size_text(2048) == "2.0 KB" and size_text(None) is None


def test_html_entities_are_unescaped_for_display(synced: tuple[Path, SandboxServer]) -> None:
    config, _ = synced
    code, out, _ = invoke(config, "queue", "--text", "pungli", "--json")
    (row,) = json.loads(out)
    code, out, _ = invoke(config, "case", "show", str(row["id"]))
    assert 'Petugas & calo "bekerja sama".' in out
    assert "&amp;" not in out and "&quot;" not in out


def test_percent_and_underscore_are_literal_in_search(synced: tuple[Path, SandboxServer]
                                                      ) -> None:
    config, _ = synced
    code, out, _ = invoke(config, "queue", "--json")
    total = len(json.loads(out))
    assert total == 13
    for text, expected in (("%", 1), ("_", 1), ("100%", 1), ("ktp_el", 1), ("a_b", 0),
                           ("%%", 0)):
        code, out, _ = invoke(config, "queue", "--text", text, "--json")
        assert code == 0
        assert len(json.loads(out)) == expected, text


def test_queue_stage_bogus_names_the_stages(synced: tuple[Path, SandboxServer]) -> None:
    config, _ = synced
    code, out, err = invoke(config, "queue", "--stage", "bogus")
    assert code == 2 and "Antrean kosong" not in out
    assert err.startswith("error: unknown stage 'bogus'; stages: received, ")


def test_recap_csv_has_no_quoted_dash(synced: tuple[Path, SandboxServer], tmp_path: Path
                                      ) -> None:
    config, _ = synced
    out_dir = tmp_path / "rekap"
    year = str(datetime.now(UTC).year)  # the sandbox's reports are of the last weeks
    code, _, err = invoke(config, "report", "--period", year, "--out", str(out_dir))
    assert code == 0, err
    csvs = sorted(out_dir.glob("*.csv"))
    assert csvs
    for path in csvs:
        assert "'-" not in path.read_text("utf-8-sig")
