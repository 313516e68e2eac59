"""The reference plugins in plugins/: routing, escalation, and the three channels."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import lapor_bridge_plugins.escalation_chain as escalation_chain
import lapor_bridge_plugins.notify_email as notify_email
import lapor_bridge_plugins.notify_log as notify_log
import lapor_bridge_plugins.notify_webhook as notify_webhook
import lapor_bridge_plugins.routing_rules as routing_rules
from bridge.domain import Notification, RoutingDecision
from bridge.plugins import PluginConfigError
from bridge.testing import SmtpSink, make_case, make_host, run_hooks
from bridge.workflow.calendar import WorkingCalendar
from tests.support.ports import refused_port

OPDS = ["Dinas Lingkungan Hidup", "Dinas PUPR", "Satpol PP"]

ROUTING = {
    "default_unit": "Seksi Penanganan Pengaduan",
    "rules": [
        {"name": "lingkungan", "categories": ["Lingkungan Hidup"],
         "keywords": ["limbah", "pencemaran"], "opd": "Dinas Lingkungan Hidup",
         "tembusan": ["Camat {kecamatan}", "Lurah {kelurahan}"]},
        {"name": "jalan", "keywords": ["jalan rusak"], "locations": ["Kec. Tengah"],
         "opd": "Dinas PUPR"},
        {"name": "nasional", "keywords": ["paspor"], "body_id": 3},
        {"name": "izin berat", "categories": ["Perizinan"], "severities": ["berat"],
         "unit": "Tim Teknis Perizinan"},
    ],
}


# -- routing_rules ---------------------------------------------------------------------


def test_routing_to_opd_with_tembusan_from_location() -> None:
    case = make_case(category="Lingkungan Hidup", content="Limbah pabrik tahu ke sungai",
                     location="Kel. Sukamaju, Kec. Tengah")
    run = run_hooks(routing_rules, case, config=ROUTING, known_opds=OPDS)
    assert run.failures == []
    assert run.routing == RoutingDecision(
        ours=False, opd="Dinas Lingkungan Hidup",
        tembusan=["pelapor", "Camat Tengah", "Lurah Sukamaju"],
        reason="cocok dengan aturan 'lingkungan'")
    [_, forwarded] = run.notifications
    assert forwarded.kind == "forwarded"
    assert "diteruskan ke Dinas Lingkungan Hidup" in forwarded.subject
    assert "Tembusan: pelapor, Camat Tengah, Lurah Sukamaju." in forwarded.body


def test_routing_criteria_must_all_match_and_default_unit() -> None:
    elsewhere = make_case(title="Jalan rusak parah", category="Pekerjaan Umum",
                          location="Kel. Timur, Kec. Utara")
    run = run_hooks(routing_rules, elsewhere, config=ROUTING, known_opds=OPDS)
    assert run.routing == RoutingDecision(ours=True, unit="Seksi Penanganan Pengaduan",
                                          reason="tidak ada aturan yang cocok; unit bawaan")
    here = make_case(title="Jalan rusak parah", location="Kec. Tengah")
    assert run_hooks(routing_rules, here, config=ROUTING, known_opds=OPDS).routing.opd == \
        "Dinas PUPR"  # type: ignore[union-attr]
    # a place the location does not name is left out of the tembusan
    no_place = make_case(category="Lingkungan Hidup", content="pencemaran udara",
                         location="Desa Jati")
    routed = run_hooks(routing_rules, no_place, config=ROUTING, known_opds=OPDS).routing
    assert routed is not None and routed.tembusan == ("pelapor",)


def test_routing_to_lapor_body_and_by_severity() -> None:
    run = run_hooks(routing_rules, make_case(content="Paspor saya hilang"), config=ROUTING,
                    known_opds=OPDS, known_bodies=[1, 2, 3])
    assert run.routing is not None and run.routing.body_id == 3
    grave = make_case(category="Perizinan", severity="berat")
    host = make_host(routing_rules, sections={"routing_rules": ROUTING})
    assert host.route(grave, OPDS).value == RoutingDecision(
        ours=True, unit="Tim Teknis Perizinan", reason="cocok dengan aturan 'izin berat'")


def test_routing_without_default_has_no_opinion() -> None:
    config = {"rules": [{"keywords": ["paspor"], "body_id": 3}]}
    run = run_hooks(routing_rules, make_case(), config=config, known_opds=OPDS)
    assert run.routing is None and run.failures == []


def test_routing_to_an_opd_the_profile_does_not_know_is_flagged() -> None:
    config = {"rules": [{"keywords": ["izin"], "opd": "Dinas Perizinan"}]}
    run = run_hooks(routing_rules, make_case(), config=config, known_opds=OPDS)
    assert run.routing is None
    assert [f.plugin for f in run.failures] == ["lapor_bridge_plugins.routing_rules"]
    assert "unknown OPD 'Dinas Perizinan'" in run.failures[0].message


@pytest.mark.parametrize(("rule", "key", "problem"), [
    ({"keywords": ["x"]}, "routing_rules.rules.0", "exactly one of unit, opd or body_id"),
    ({"keywords": ["x"], "unit": "A", "opd": "B"}, "routing_rules.rules.0", "exactly one"),
    ({"unit": "A"}, "routing_rules.rules.0", "at least one of categories"),
    ({"keyword": ["x"], "unit": "A"}, "routing_rules.rules.0.keyword", "unknown key"),
    ({"keywords": ["x"], "body_id": 0}, "routing_rules.rules.0.body_id", "greater than or"),
])
def test_routing_config_errors(rule: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(PluginConfigError) as err:
        make_host(routing_rules, sections={"routing_rules": {"rules": [rule]}})
    assert err.value.key == key and problem in str(err.value)
    assert err.value.plugin == "lapor_bridge_plugins.routing_rules"


# -- escalation_chain ---------------------------------------------------------------------

CHAIN = {
    "levels": [
        {"after_working_days": 5, "to_role": "kabid"},
        {"after_working_days": 10, "to_role": "kepala_dinas"},
        {"after_working_days": 10, "to_role": "kepala_daerah", "severities": ["berat"]},
    ],
    "deadlines": {"case": 10},
}
# Monday 2 March 2026, 09:00 WIB
RECEIVED = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 5, 0, tzinfo=UTC)


def test_escalation_levels_follow_working_days() -> None:
    calendar = WorkingCalendar()
    host = make_host(escalation_chain, sections={"escalation_chain": CHAIN}, calendar=calendar)
    case = make_case(received_at=RECEIVED)
    # 4 working days later: nothing yet
    assert host.escalation(case, at(date(2026, 3, 6))).value is None
    # 5 working days (Mon 9 March): the Kabid
    decision = host.escalation(case, at(date(2026, 3, 9))).value
    assert decision is not None and (decision.level, decision.to_role) == (1, "kabid")
    assert decision.reason.startswith("5 hari kerja sejak pengaduan diterima")
    # a case already at level 1 is not escalated to it again
    at_one = make_case(received_at=RECEIVED, data={"escalation_level": 1})
    assert host.escalation(at_one, at(date(2026, 3, 10))).value is None
    # forgotten for longer: straight to the highest level reached
    late = host.escalation(case, at(date(2026, 3, 30))).value
    assert late is not None and late.to_role == "kepala_dinas" and late.level == 2
    grave = make_case(received_at=RECEIVED, severity="berat")
    top = host.escalation(grave, at(date(2026, 3, 30))).value
    assert top is not None and (top.level, top.to_role) == (3, "kepala_daerah")
    closed = make_case(received_at=RECEIVED, stage="closed")
    assert host.escalation(closed, at(date(2026, 4, 30))).value is None


def test_escalation_counts_holidays_from_the_calendar() -> None:
    # Nyepi (19 March 2026) and cuti bersama on 18 and 20 March are not working days
    config = {**CHAIN, "calendar": {"cuti_bersama": ["2026-03-18", "2026-03-20"]}}
    host = make_host(escalation_chain, sections={"escalation_chain": config})
    case = make_case(received_at=datetime(2026, 3, 16, 2, 0, tzinfo=UTC))
    # Tue 17, (18, 19, 20 off), Mon 23, Tue 24 ... : 5 working days are reached on 25 March
    # unless 23-24 March (Idul Fitri holidays) are off too; the calendar decides.
    cal = WorkingCalendar({date(2026, 3, 18): "Cuti bersama", date(2026, 3, 20): "Cuti bersama"})
    expected = cal.add_working_days(case.received_at, 5)  # type: ignore[arg-type]
    day_before = cal.add_working_days(case.received_at, 4)  # type: ignore[arg-type]
    assert host.escalation(case, day_before).value is None
    decision = host.escalation(case, expected).value
    assert decision is not None and decision.to_role == "kabid"


def test_escalation_from_complete_files_and_deadline() -> None:
    config = {**CHAIN, "count_from": "files_complete"}
    host = make_host(escalation_chain, sections={"escalation_chain": config},
                     calendar=WorkingCalendar())
    waiting = make_case(received_at=RECEIVED, files_complete_at=None)
    assert host.escalation(waiting, at(date(2026, 4, 30))).value is None
    due = host.stage_deadline(waiting, "case", RECEIVED).value
    # 10 working days after Monday 2 March 2026: Monday 16 March, end of day WIB
    assert due == datetime(2026, 3, 16, 16, 59, 59, tzinfo=UTC)
    assert host.stage_deadline(waiting, "tpp", RECEIVED).value is None


def test_escalation_run_notifies_the_role() -> None:
    run = run_hooks(escalation_chain, make_case(received_at=RECEIVED), config=CHAIN,
                    now=at(date(2026, 3, 17)), calendar=WorkingCalendar())
    assert run.escalation is not None and run.escalation.to_role == "kepala_dinas"
    escalated = [n for n in run.notifications if n.kind == "escalated"]
    assert escalated and escalated[0].recipients == ("kepala_dinas",)
    assert "kepada Kepala Dinas" in escalated[0].subject


@pytest.mark.parametrize(("config", "key", "problem"), [
    ({"levels": []}, "escalation_chain.levels", "at least 1 item"),
    ({"levels": [{"after_working_days": 10, "to_role": "a"},
                 {"after_working_days": 5, "to_role": "b"}]}, "escalation_chain",
     "increasing order"),
    ({"levels": [{"after_working_days": 5, "to_role": "a"}],
      "calendar": {"cuti_bersama": ["2026-02-30"]}}, "escalation_chain",
     "calendar.cuti_bersama[0]"),
    ({"levels": [{"after_days": 5, "to_role": "a"}]}, "escalation_chain.levels.0.after_days",
     "unknown key"),
])
def test_escalation_config_errors(config: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(PluginConfigError) as err:
        make_host(escalation_chain, sections={"escalation_chain": config})
    assert err.value.key == key and problem in str(err.value)


# -- notify_log ------------------------------------------------------------------------------


def test_notify_log_writes_one_line(caplog: pytest.LogCaptureFixture) -> None:
    host = make_host(notify_log)
    note = Notification("escalated", ["kabid"], "Eskalasi CTH/1", "isi", case_id=1,
                        register_no="CTH/1")
    with caplog.at_level(logging.INFO, logger="bridge.notifications"):
        assert host.notify(note) == []
    assert "notification escalated case=CTH/1 to=kabid: Eskalasi CTH/1" in caplog.text
    quiet = make_host(notify_log, sections={"notify_log": {"kinds": ["dead_letter"]}})
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bridge.notifications"):
        quiet.notify(note)
    assert "Eskalasi" not in caplog.text


# -- notify_email (a real SMTP server on loopback) -------------------------------------------


def email_config(sink: SmtpSink, **extra: Any) -> dict[str, Any]:
    return {"host": sink.host, "port": sink.port, "from_addr": "pengaduan@dpmptsp.contoh.go.id",
            "timeout_seconds": 10,
            "addresses": {"kabid": ["kabid@dpmptsp.contoh.go.id"],
                          "kepala_dinas": ["kadis@dpmptsp.contoh.go.id"]}, **extra}


def test_notify_email_delivers_over_smtp_without_reporter_identity(smtp_sink: SmtpSink) -> None:
    case = make_case(received_at=RECEIVED, is_secret=True,
                     reporter={"name": "Budi Santoso", "phone": "081299998888",
                               "email": "budi@rahasia.id"})
    run = run_hooks(escalation_chain, case, config=CHAIN, others=[notify_email],
                    sections={"notify_email": email_config(smtp_sink)},
                    now=at(date(2026, 3, 9)), calendar=WorkingCalendar())
    # case_received (to "petugas", which has no address) fails loudly; escalation is sent
    failed = [f for f in run.failures if f.plugin == "lapor_bridge_plugins.notify_email"]
    assert len(failed) == 1 and "no e-mail address for recipients ['petugas']" in \
        failed[0].message
    [message] = smtp_sink.messages
    assert smtp_sink.envelopes[0] == ("pengaduan@dpmptsp.contoh.go.id",
                                      ["kabid@dpmptsp.contoh.go.id"])
    assert message["Subject"].startswith("[Kabupaten Contoh] Eskalasi tingkat 1 pengaduan")
    assert message["X-Lapor-Bridge-Case"] == case.register_no
    body = message.get_content()
    assert "Pelapor        : Dirahasiakan" in body
    for secret in ("Budi", "081299998888", "budi@rahasia.id"):
        assert secret not in message.as_string()


def test_notify_email_addresses_and_errors(smtp_sink: SmtpSink) -> None:
    host = make_host(notify_email, sections={"notify_email": email_config(smtp_sink)})
    note = Notification("deadline_missed", ["kabid", "staf@contoh.go.id", "kabid"], "S", "B")
    assert host.notify(note) == []
    assert smtp_sink.envelopes[-1][1] == ["kabid@dpmptsp.contoh.go.id", "staf@contoh.go.id"]
    # an unreachable server is a failure of this channel, named
    with refused_port() as dead_port:
        dead = make_host(notify_email, sections={
            "notify_email": {**email_config(smtp_sink), "port": dead_port}})
        [failure] = dead.notify(note)
    assert failure.plugin == "lapor_bridge_plugins.notify_email" and "ConnectionRefusedError" in \
        failure.message
    missing_secret = make_host(notify_email, sections={"notify_email": {
        **email_config(smtp_sink), "username": "u", "password_env": "LB_TEST_NO_SUCH_VAR"}})
    [failure] = missing_secret.notify(note)
    assert "LB_TEST_NO_SUCH_VAR" in failure.message
    with pytest.raises(PluginConfigError, match="notify_email.addresses"):
        make_host(notify_email, sections={"notify_email": {
            **email_config(smtp_sink), "addresses": {"kabid": ["bukan-alamat"]}}})


# -- notify_webhook (a real HTTP server on loopback) -----------------------------------------


class Hook:
    def __init__(self) -> None:
        self.failures_left = 0
        self.status = 503
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0


@pytest.fixture
def webhook() -> Iterator[tuple[str, Hook]]:
    state = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            state.attempts += 1
            if state.failures_left > 0:
                state.failures_left -= 1
                self.send_response(state.status)
                self.end_headers()
                return
            state.bodies.append(body)
            state.headers.append(dict(self.headers))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_retries_transient_errors_then_delivers(
    webhook: tuple[str, Hook], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, state = webhook
    state.failures_left = 2
    monkeypatch.setenv("LB_TEST_WEBHOOK_SECRET", "rahasia-bersama")
    host = make_host(notify_webhook, sections={"notify_webhook": {
        "url": url, "attempts": 4, "backoff_seconds": 0.01,
        "secret_env": "LB_TEST_WEBHOOK_SECRET"}})
    note = Notification("deadline_near", ["kabid"], "Subjek", "Isi", case_id=3,
                        register_no="CTH/3", data={"working_days_left": 2})
    assert host.notify(note) == []
    assert state.attempts == 3
    [body] = state.bodies
    sent = json.loads(body)
    assert sent["kind"] == "deadline_near" and sent["register_no"] == "CTH/3"
    assert sent["data"] == {"working_days_left": 2} and "sent_at" in sent
    expected = hmac.new(b"rahasia-bersama", body, hashlib.sha256).hexdigest()
    assert state.headers[0]["X-Lapor-Bridge-Signature"] == f"sha256={expected}"


def test_webhook_gives_up_after_attempts_and_does_not_retry_4xx(
    webhook: tuple[str, Hook],
) -> None:
    url, state = webhook
    state.failures_left = 10
    host = make_host(notify_webhook, sections={"notify_webhook": {
        "url": url, "attempts": 3, "backoff_seconds": 0.01}})
    note = Notification("dead_letter", ["petugas"], "S", "B")
    [failure] = host.notify(note)
    assert failure.plugin == "lapor_bridge_plugins.notify_webhook" and "503" in failure.message
    assert state.attempts == 3
    state.attempts, state.failures_left, state.status = 0, 10, 400
    [failure] = host.notify(note)
    assert "400" in failure.message and state.attempts == 1


def test_webhook_config_refuses_bad_url() -> None:
    with pytest.raises(PluginConfigError) as err:
        make_host(notify_webhook, sections={"notify_webhook": {"url": "ftp://x"}})
    assert err.value.key == "notify_webhook.url"
