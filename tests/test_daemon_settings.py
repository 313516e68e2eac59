"""[daemon] and [logging] settings, the log formats and their scrubbing of secrets."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, load_settings
from bridge.daemon.logging_setup import JsonFormatter, PlainFormatter, Scrubber, configure
from bridge.daemon.settings import (
    DaemonSettings,
    HealthThresholds,
    JobTimeouts,
    LoggingSettings,
    daemon_settings,
    logging_settings,
)
from tests.support.cli import run_cli
from tests.support.daemon import ROOT, write_config
from tests.support.settings import TEST_BEARER, TEST_TOKEN, make_settings

SQLITE = "sqlite:///unused.db"


def _seconds_keys(model: type[Any], prefix: str) -> list[str]:
    return [f"{prefix}{name}" for name, f in model.model_fields.items()
            if f.annotation is float]


DURATIONS = (_seconds_keys(DaemonSettings, "") + _seconds_keys(JobTimeouts, "timeouts.")
             + _seconds_keys(HealthThresholds, "health."))


def daemon(**values: Any) -> DaemonSettings:
    return daemon_settings(make_settings(SQLITE, daemon=values))


def nested(key: str, value: Any) -> dict[str, Any]:
    if "." in key:
        table, name = key.split(".")
        return {table: {name: value}}
    return {key: value}


def test_defaults_are_valid_and_take_over_within_a_minute() -> None:
    cfg = daemon()
    assert cfg.lease_ttl + cfg.standby_poll_interval < 60
    assert cfg.lease_renew_interval < cfg.lease_ttl
    assert cfg.http_port is None
    assert set(cfg.recaps) == {"monthly", "semester", "yearly"}
    assert logging_settings(make_settings(SQLITE)) == LoggingSettings()


def test_every_duration_is_a_setting_checked_for_zero() -> None:
    # The list is not empty and covers the intervals the issue names.
    for key in ("pull_interval", "push_interval", "deadline_interval", "refresh_interval",
                "reconcile_interval", "lease_ttl", "stop_timeout", "timeouts.pull",
                "health.max_lag", "health.max_pull_age"):
        assert key in DURATIONS


@pytest.mark.parametrize("key", DURATIONS)
@pytest.mark.parametrize("value", [0, -5])
def test_zero_or_negative_durations_name_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError) as err:
        daemon(**nested(key, value))
    assert err.value.key == f"daemon.{key}"
    assert err.value.problem == f"must be greater than 0 seconds, got {value}"


@pytest.mark.parametrize("values, key, problem", [
    ({"pull_interval": True}, "daemon.pull_interval", "got a boolean"),
    ({"pull_interval": "soon"}, "daemon.pull_interval", "valid number"),
    ({"pull_intervall": 5}, "daemon.pull_intervall", "unknown key"),
    ({"timeouts": {"pul": 5}}, "daemon.timeouts.pul", "unknown key"),
    ({"lease_renew_interval": 30}, "daemon.lease_renew_interval", "less than daemon.lease_ttl"),
    ({"standby_poll_interval": 31}, "daemon.standby_poll_interval", "less than"),
    ({"recaps": {"monthly": "every month"}}, "daemon.recaps.monthly", "not a crontab"),
    ({"recaps": {"month-ly": "0 7 1 * *"}}, "daemon.recaps.month-ly", "letters, digits"),
    ({"http_port": 70000}, "daemon.http_port", "less than or equal to 65535"),
    ({"health": {"max_dead": -1}}, "daemon.health.max_dead", "greater than or equal to 0"),
])
def test_bad_values_name_the_key(values: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        daemon(**values)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(err.value).startswith(f"test.toml: {key}: ")


def test_fractional_seconds_for_tests() -> None:
    cfg = daemon(pull_interval=0.2, lease_ttl=1.5, lease_renew_interval=0.5,
                 standby_poll_interval=0.25)
    assert (cfg.pull_interval, cfg.lease_ttl) == (0.2, 1.5)


@pytest.mark.parametrize("values, key", [
    ({"format": "xml"}, "logging.format"),
    ({"level": "loud"}, "logging.level"),
    ({"file": "x.log"}, "logging.file"),
])
def test_bad_logging_settings(values: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        logging_settings(make_settings(SQLITE, logging=values))
    assert err.value.key == key


def test_logging_level_any_case() -> None:
    assert logging_settings(make_settings(SQLITE, logging={"level": "debug"})).level == "DEBUG"


@pytest.mark.parametrize("command", ["run", "status", "check-config"])
def test_commands_exit_2_with_file_key_and_problem(tmp_path: Path, command: str) -> None:
    config = write_config(tmp_path / "bad.toml", "http://127.0.0.1:9",
                          f"sqlite:///{tmp_path / 'x.db'}", daemon={"pull_interval": 0})
    proc = run_cli(command, str(config)) if command == "check-config" else run_cli(
        command, "--config", str(config))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: {config}: daemon.pull_interval: must be greater than 0 seconds, "
                     "got 0"]
    assert not (tmp_path / "x.db").exists()


def test_postgresql_example_config_is_valid() -> None:
    settings = load_settings(ROOT / "config" / "postgresql.example.toml", env={})
    assert settings.database.url.startswith("postgresql")
    cfg = daemon_settings(settings)
    assert cfg.http_port is not None
    assert logging_settings(settings).format == "json"


# -- log formats and secrets -------------------------------------------------------------


def _record(msg: str, *args: Any, exc: BaseException | None = None, **extra: Any
            ) -> logging.LogRecord:
    record = logging.LogRecord("bridge.test", logging.ERROR, __file__, 1, msg, args,
                               (type(exc), exc, exc.__traceback__) if exc else None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _secrets() -> Scrubber:
    settings = make_settings(SQLITE)
    return Scrubber([settings.secrets.bearer, settings.secrets.token])


def test_scrubber_removes_secrets_everywhere() -> None:
    scrub = _secrets()
    inner = TEST_TOKEN.strip("{}")
    try:
        raise RuntimeError(f"boom with {TEST_BEARER}")
    except RuntimeError as exc:
        err = exc
    record = _record("auth %s token %s bare %s", f"Bearer {TEST_BEARER}", TEST_TOKEN,
                     inner.lower(), exc=err, header=TEST_TOKEN)
    for formatter in (PlainFormatter(scrub), JsonFormatter(scrub)):
        line = formatter.format(record)
        assert TEST_BEARER not in line and inner.lower() not in line.lower(), line
        assert "***" in line
    assert TEST_BEARER not in repr(scrub)


def test_json_lines_carry_the_extra_fields() -> None:
    line = JsonFormatter(_secrets()).format(
        _record("job %s ok", "pull", job="pull", duration_s=0.25, counts={"created": 3}))
    data = json.loads(line)
    assert data["message"] == "job pull ok"
    assert (data["job"], data["duration_s"], data["counts"]) == ("pull", 0.25, {"created": 3})
    assert data["level"] == "ERROR" and data["logger"] == "bridge.test"
    assert data["ts"].endswith("+00:00")


def test_configure_replaces_handlers_and_quiets_apscheduler() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        settings = make_settings(SQLITE)
        configure(settings, LoggingSettings(format="json", level="INFO"), stream)
        logging.getLogger("bridge.x").info("hello %s", TEST_BEARER)
        logging.getLogger("apscheduler.executors.default").error("noise")
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1
        assert json.loads(lines[0])["message"] == "hello ***"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


# -- the systemd unit --------------------------------------------------------------------


def _unit() -> dict[str, dict[str, str]]:
    import configparser

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "config" / "lapor-bridge.service", encoding="utf-8")
    return {name: dict(parser[name]) for name in parser.sections()}


def test_systemd_unit_restarts_on_failure_and_outwaits_the_clean_stop() -> None:
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "lapor-bridge"
    assert service["EnvironmentFile"].startswith("/etc/lapor-bridge/")
    assert service["RestartPreventExitStatus"] == "2"
    assert " run --config " in service["ExecStart"]
    stop_sec = float(service["TimeoutStopSec"])
    assert stop_sec > DaemonSettings().stop_timeout, "systemd would SIGKILL a clean stop"
    assert service["KillSignal"] == "SIGTERM"


def test_systemd_unit_verifies() -> None:
    import shutil
    import subprocess

    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    proc = subprocess.run([tool, "verify", str(ROOT / "config" / "lapor-bridge.service")],
                          capture_output=True, text=True, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines()
                  if line.strip() and "is not executable" not in line
                  and "/opt/lapor-bridge" not in line]
    assert not complaints, complaints
