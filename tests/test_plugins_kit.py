"""The test kit (bridge.testing): report builders, the respx LAPOR!, the store, run_hooks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect as sa_inspect

from bridge.config import Settings
from bridge.domain import CaseSnapshot, Classification
from bridge.hookspecs import hookimpl
from bridge.lapor.client import LaporClient
from bridge.lapor.errors import AuthError, NotFound
from bridge.lapor.models import FollowupRequest, ForwardRequest, RemoteComplaint
from bridge.testing import (
    FAKE_BASE_URL,
    FakeLapor,
    TempStore,
    make_case,
    make_report,
    run_hooks,
    settings_for_tests,
)


def test_make_report_is_a_valid_inbox_item() -> None:
    plain = RemoteComplaint.model_validate(make_report())
    assert plain.reporter is not None and plain.created_at.tzinfo is not None
    anonymous = RemoteComplaint.model_validate(make_report(is_anonymous=True, is_secret=True))
    assert anonymous.is_anonymous and anonymous.is_secret and anonymous.reporter is None
    when = datetime(2026, 4, 1, 1, 2, 3, tzinfo=UTC)
    custom = make_report(id=77, title="Pungli", updated_at=when, status_code=3)
    assert custom["updated_at"] == "2026-04-01T08:02:03+07:00"
    parsed = RemoteComplaint.model_validate(custom)
    assert (parsed.id, parsed.title, parsed.status_code, parsed.updated_at) == (
        77, "Pungli", "3", when)
    assert make_report()["id"] != make_report()["id"]


def test_make_case_builds_snapshots() -> None:
    case = make_case(id=5, severity="sedang", data={"escalation_level": 1})
    assert isinstance(case, CaseSnapshot) and case.register_no == "CTH/2026/00005"
    assert case.reporter is not None and case.reporter.name == "Siti Rahmawati"
    assert make_case(is_anonymous=True).reporter is None
    with pytest.raises(TypeError):
        case.data["escalation_level"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        case.stage = "closed"  # type: ignore[misc]


def client(settings: Settings) -> LaporClient:
    return LaporClient(settings.lapor, settings.secrets)


def test_lapor_mock_serves_the_inbox_to_the_real_client(
    lapor_mock: FakeLapor, bridge_settings: Settings
) -> None:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    for i in range(5):
        lapor_mock.add_report(id=100 + i, updated_at=start + timedelta(minutes=i))
    with client(bridge_settings) as lapor:
        first = lapor.inbox_page(start, page=1, page_size=2)
        assert [c.id for c in first.items] == [100, 101]
        assert first.next_page_url is not None
        last = lapor.inbox_page(start, page=3, page_size=2)
        assert [c.id for c in last.items] == [104] and last.next_page_url is None
        later = lapor.inbox_page(start + timedelta(minutes=3), page_size=10)
        assert [c.id for c in later.items] == [103, 104]
        lapor_mock.change_report(101, title="Judul baru", updated_at=start + timedelta(minutes=9))
        changed = lapor.inbox_page(start + timedelta(minutes=4), page_size=10)
        assert [c.id for c in changed.items] == [104, 101]
        assert changed.items[1].title == "Judul baru"


def test_lapor_mock_followups_forward_and_errors(
    lapor_mock: FakeLapor, bridge_settings: Settings
) -> None:
    report = lapor_mock.add_report(id=300)
    with client(bridge_settings) as lapor:
        new_id = lapor.add_followup(FollowupRequest(
            complaint_id=300, user_id=1, institution_from_id=1, institution_to_id=1,
            content="Sedang kami tindak lanjuti\n\n[lb:7]"), [("surat.pdf", b"%PDF", "application/pdf")])
        [followup] = lapor.followups(300)
        assert followup.id == new_id and followup.content.endswith("[lb:7]")
        assert lapor_mock.reports[300]["status_code"] == "2"
        assert lapor_mock.reports[300]["updated_at"] > report["updated_at"]
        lapor.forward(ForwardRequest(complaint_id=300, institution_id=2,
                                     reason_description="Kewenangan DLH"))
        assert lapor.complaint(300).disposition_id == 2
        assert lapor_mock.forwards[0]["reason_description"] == "Kewenangan DLH"
        assert {i.id for i in lapor.institutions()} == {1, 2, 3}
        with pytest.raises(NotFound):
            lapor.complaint(999)
    wrong = settings_for_tests(lapor_mock.base_url)
    wrong = Settings.model_validate({**wrong.model_dump(), "secrets": {
        "bearer": "salah", "token": wrong.secrets.token.get_secret_value()}})  # type: ignore[union-attr]
    with client(wrong) as lapor, pytest.raises(AuthError):
        lapor.inbox_page(None)


def test_lapor_mock_lets_loopback_through_and_stops_other_hosts(lapor_mock: FakeLapor) -> None:
    import respx

    assert FAKE_BASE_URL.startswith("https://lapor.test")
    with httpx.Client() as http:
        with pytest.raises(httpx.ConnectError):
            # loopback passes through to the real network stack (nothing listens there)
            http.get("http://127.0.0.1:9/")
        with pytest.raises(respx.models.AllMockedAssertionError):
            http.get("https://lapor.go.id/")


def test_bridge_store_is_migrated(bridge_store: TempStore) -> None:
    tables = set(sa_inspect(bridge_store.engine).get_table_names())
    assert {"cases", "pending_events", "case_events", "outbox"} <= tables


def test_run_hooks_on_a_plain_plugin_in_ten_lines() -> None:
    class Keywords:
        @hookimpl
        def classify_case(self, case: CaseSnapshot) -> Classification | None:
            if "limbah" in case.content.lower():
                return Classification("sedang", "dampak lingkungan")
            return None

    run = run_hooks(Keywords(), make_case(content="Limbah pabrik mencemari sungai"))
    assert run.classification == Classification("sedang", "dampak lingkungan")
    assert run.case.severity == "sedang" and run.failures == []
    assert [n.kind for n in run.notifications] == ["case_received"]
    assert run_hooks(Keywords(), make_case()).classification is None


def test_run_hooks_reports_failures_and_refuses_config_without_section() -> None:
    class Broken:
        @hookimpl
        def classify_case(self) -> Any:
            raise ValueError("tabel kosong")

    run = run_hooks(Broken(), make_case())
    assert [(f.hook, f.kind) for f in run.failures] == [("classify_case", "error")]
    with pytest.raises(ValueError, match="declares no config_section"):
        run_hooks(Broken(), make_case(), config={"x": 1})
