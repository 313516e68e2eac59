"""The plugin host: discovery, start-up checks, isolation of failing plugins, first result."""

from __future__ import annotations

import logging
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict

from bridge.config import ConfigError
from bridge.domain import (
    Classification,
    ConfigSection,
    EscalationDecision,
    JobSpec,
    Notification,
    RoutingDecision,
)
from bridge.hookspecs import hookimpl
from bridge.plugins import PluginConfigError, PluginError, load_plugins
from bridge.testing import make_case, make_host, settings_for_tests

NOW = datetime(2026, 3, 20, 3, 0, tzinfo=UTC)


def write_module(path: Path, name: str, source: str) -> None:
    (path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")


@pytest.fixture
def plugin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on sys.path for plugin modules written by the test."""
    directory = tmp_path / "site"
    directory.mkdir()
    monkeypatch.syspath_prepend(str(directory))
    return directory


def settings_with(plugins: dict[str, Any], **sections: Any) -> Any:
    return settings_for_tests(extra={"plugins": {"entry_points": False, **plugins}, **sections})


# -- discovery -------------------------------------------------------------------------


def test_modules_from_config_are_loaded_and_described(plugin_dir: Path) -> None:
    write_module(plugin_dir, "kab_rules", """
        from bridge.domain import Classification
        from bridge.hookspecs import hookimpl
        __version__ = "2.3"

        @hookimpl
        def classify_case(case):
            return Classification("berat", "test")
    """)
    host = load_plugins(settings_with({"modules": ["kab_rules"], "enable": ["notify_log"]}))
    infos = {i.name: i for i in host.describe()}
    assert infos["kab_rules"].version == "2.3"
    assert infos["kab_rules"].hooks == ("classify_case",)
    assert infos["kab_rules"].origin == "config module"
    assert infos["notify_log"].hooks == ("config_section", "notify")
    assert infos["notify_log"].origin == "package lapor-bridge"
    assert host.classify(make_case()).value == Classification("berat", "test")


def test_entry_point_plugins_are_discovered_with_their_version(plugin_dir: Path) -> None:
    write_module(plugin_dir, "epplug", """
        from bridge.domain import RoutingDecision
        from bridge.hookspecs import hookimpl

        @hookimpl
        def route_case(case):
            return RoutingDecision(ours=True, unit="Seksi Pengaduan")
    """)
    dist = plugin_dir / "lapor_bridge_epplug-4.5.6.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lapor-bridge-epplug\n"
                                   "Version: 4.5.6\n")
    (dist / "entry_points.txt").write_text("[lapor_bridge]\nepplug = epplug\n")
    host = load_plugins(settings_with({"entry_points": True}))
    info = {i.name: i for i in host.describe()}["epplug"]
    assert info.version == "4.5.6"
    assert info.origin == "package lapor-bridge-epplug"
    assert host.route(make_case(), []).value == RoutingDecision(ours=True, unit="Seksi Pengaduan")
    # disabled by name, it is not loaded; with entry points off, neither
    assert "epplug" not in load_plugins(settings_with({"entry_points": True,
                                                       "disable": ["epplug"]})).plugin_names
    assert "epplug" not in load_plugins(settings_with({})).plugin_names


def test_entry_point_that_does_not_import_names_plugin_and_package(plugin_dir: Path) -> None:
    write_module(plugin_dir, "brokenep", "import does_not_exist_anywhere\n")
    dist = plugin_dir / "lapor_bridge_brokenep-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lapor-bridge-brokenep\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[lapor_bridge]\nbrokenep = brokenep\n")
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"entry_points": True}))
    assert err.value.plugin == "brokenep"
    assert "lapor-bridge-brokenep" in str(err.value)
    assert "does_not_exist_anywhere" in str(err.value)


# -- bad input stops the start -----------------------------------------------------------


def test_module_not_found(plugin_dir: Path) -> None:
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"modules": ["kab_missing"]}))
    assert str(err.value).startswith("plugin 'kab_missing': module not found")


def test_module_that_raises_on_import(plugin_dir: Path) -> None:
    write_module(plugin_dir, "kab_crash", "raise RuntimeError('tabel aturan rusak')\n")
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"modules": ["kab_crash"]}))
    assert err.value.plugin == "kab_crash"
    assert "RuntimeError: tabel aturan rusak" in str(err.value)


def test_module_with_syntax_error(plugin_dir: Path) -> None:
    write_module(plugin_dir, "kab_syntax", "def classify_case(:\n")
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"modules": ["kab_syntax"]}))
    assert "kab_syntax" in str(err.value) and "SyntaxError" in str(err.value)


def test_unknown_hook_is_refused_with_a_suggestion(plugin_dir: Path) -> None:
    write_module(plugin_dir, "kab_typo", """
        from bridge.hookspecs import hookimpl

        @hookimpl
        def clasify_case(case):
            return None
    """)
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"modules": ["kab_typo"]}))
    assert str(err.value) == ("plugin 'kab_typo': implements unknown hook 'clasify_case' "
                              "(did you mean 'classify_case'?)")


def test_unknown_argument_is_refused_naming_the_hook(plugin_dir: Path) -> None:
    write_module(plugin_dir, "kab_args", """
        from bridge.hookspecs import hookimpl

        @hookimpl
        def route_case(case, opds):
            return None
    """)
    with pytest.raises(PluginError) as err:
        load_plugins(settings_with({"modules": ["kab_args"]}))
    message = str(err.value)
    assert "kab_args" in message and "route_case" in message and "opds" in message
    assert "case, known_opds, config" in message


def test_plugin_without_hooks_and_hook_wrappers_are_refused() -> None:
    class Nothing:
        def classify_case(self, case: Any) -> None:  # not marked: a mistake
            return None

    with pytest.raises(PluginError, match="implements no hook"):
        make_host(("nothing", Nothing()))

    class Wrapper:
        @hookimpl(wrapper=True)
        def classify_case(self, case: Any) -> Any:
            return (yield)

    with pytest.raises(PluginError, match="hook wrappers are not supported"):
        make_host(("wrapper", Wrapper()))


def test_same_plugin_twice_is_refused() -> None:
    import lapor_bridge_plugins.notify_log as notify_log

    with pytest.raises(PluginError, match="load it once"):
        make_host(notify_log, ("again", notify_log))


def test_plugins_section_is_validated() -> None:
    with pytest.raises(ConfigError) as err:
        load_plugins(settings_with({"modulez": ["x"]}))
    assert err.value.key == "plugins.modulez"
    assert err.value.problem == "unknown key"
    with pytest.raises(ConfigError) as err:
        load_plugins(settings_with({"timeout_seconds": -1}))
    assert err.value.key == "plugins.timeout_seconds"


class _StrictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: int
    units: list[str] = []


class _Configured:
    @hookimpl
    def config_section(self) -> ConfigSection:
        return ConfigSection("kab_thresholds", _StrictConfig)

    @hookimpl
    def classify_case(self, case: Any, config: _StrictConfig) -> Classification:
        return Classification("berat" if len(case.content) > config.threshold else "ringan")


def test_config_section_reaches_the_plugin() -> None:
    host = make_host(("kab", _Configured()), sections={"kab_thresholds": {"threshold": 5}})
    assert isinstance(host.config_of("kab"), _StrictConfig)
    assert host.declared_sections == {"kab_thresholds": "kab"}
    assert host.classify(make_case(content="panjang sekali")).value == Classification("berat")


@pytest.mark.parametrize(("section", "key", "problem"), [
    ({}, "kab_thresholds.threshold", "missing required key"),
    ({"treshold": 5}, "kab_thresholds.treshold", "unknown key"),
    ({"threshold": 5, "unitz": []}, "kab_thresholds.unitz", "unknown key"),
    ({"threshold": "lima"}, "kab_thresholds.threshold", "Input should be a valid integer"),
])
def test_config_section_typo_names_plugin_key_and_problem(
    section: dict[str, Any], key: str, problem: str
) -> None:
    with pytest.raises(PluginConfigError) as err:
        make_host(("kab", _Configured()), sections={"kab_thresholds": section})
    assert err.value.key == key
    assert err.value.plugin == "kab"
    assert problem in str(err.value)
    assert str(err.value).startswith(f"<test>: {key}: ")


def test_config_section_declarations_are_checked() -> None:
    class Loose(BaseModel):
        x: int = 1

    class LoosePlugin:
        @hookimpl
        def config_section(self) -> ConfigSection:
            return ConfigSection("loose", Loose)

    with pytest.raises(PluginError, match="must refuse unknown keys"):
        make_host(("loose", LoosePlugin()))

    class Reserved:
        @hookimpl
        def config_section(self) -> ConfigSection:
            return ConfigSection("lapor", _StrictConfig)

    with pytest.raises(PluginError, match=r"\[lapor\] belongs to the core"):
        make_host(("reserved", Reserved()))

    with pytest.raises(PluginError, match="already declared by plugin 'a'"):
        make_host(("a", _Configured()), ("b", _Configured()),
                  sections={"kab_thresholds": {"threshold": 1}})

    class WrongType:
        @hookimpl
        def config_section(self) -> Any:
            return {"name": "x"}

    with pytest.raises(PluginError, match="expected ConfigSection"):
        make_host(("wrongtype", WrongType()))


# -- run time: isolation -----------------------------------------------------------------


class Raises:
    @hookimpl
    def classify_case(self, case: Any) -> Any:
        raise KeyError("kategori")

    @hookimpl
    def notify(self, notification: Any) -> None:
        raise ConnectionRefusedError("smtp down")


class Hangs:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    @hookimpl
    def classify_case(self, case: Any) -> Any:
        self.calls += 1
        self.release.wait(30)
        return Classification("berat")


class WrongType:
    @hookimpl
    def classify_case(self, case: Any) -> Any:
        return "sedang"

    @hookimpl
    def notify(self, notification: Any) -> Any:
        return True


class Answers:
    def __init__(self) -> None:
        self.notified: list[Notification] = []

    @hookimpl(trylast=True)
    def classify_case(self, case: Any) -> Classification:
        return Classification("ringan", "default")

    @hookimpl
    def notify(self, notification: Notification) -> None:
        self.notified.append(notification)


def _note(case_id: int = 7) -> Notification:
    return Notification("case_received", ["petugas"], "s", "b", case_id=case_id)


def test_raising_plugin_is_a_failure_and_the_next_plugin_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = Answers()
    host = make_host(("answers", answers), ("raises", Raises()))
    case = make_case(id=42)
    with caplog.at_level(logging.ERROR, logger="bridge.plugins"):
        outcome = host.classify(case)
    assert outcome.value == Classification("ringan", "default")
    assert outcome.plugin == "answers"
    [failure] = outcome.failures
    assert (failure.plugin, failure.hook, failure.kind, failure.case_id) == (
        "raises", "classify_case", "error", 42)
    assert "KeyError" in failure.message
    assert "plugin 'raises' failed in classify_case (case 42)" in caplog.text
    assert outcome.attention is not None and "raises" in outcome.attention
    # every channel is called even when one raises
    failures = host.notify(_note())
    assert [f.plugin for f in failures] == ["raises"]
    assert "ConnectionRefusedError: smtp down" in failures[0].message
    assert len(answers.notified) == 1
    assert host.failure_counts[("raises", "notify")] == 1


def test_slow_plugin_times_out_and_stops_being_called_while_stuck() -> None:
    hangs = Hangs()
    host = make_host(("answers", Answers()), ("hangs", hangs), timeout_seconds=0.2,
                     max_stuck_calls=2)
    for _ in range(2):
        outcome = host.classify(make_case())
        assert outcome.value == Classification("ringan", "default")
        assert [(f.plugin, f.kind) for f in outcome.failures] == [("hangs", "timeout")]
        assert "did not finish within 0.2 s" in outcome.failures[0].message
    outcome = host.classify(make_case())
    assert [(f.plugin, f.kind) for f in outcome.failures] == [("hangs", "skipped")]
    assert hangs.calls == 2
    hangs.release.set()
    deadline = time.monotonic() + 10
    while host._stuck["hangs"] and time.monotonic() < deadline:
        time.sleep(0.01)
    # once the stuck calls finish, the plugin is called again (and answers in time)
    assert host.classify(make_case()).value == Classification("berat")
    assert hangs.calls == 3


def test_per_plugin_time_limit() -> None:
    from bridge.plugins import PluginSource, PluginsSettings, build_host

    hangs = Hangs()
    hangs.release.set()
    options = PluginsSettings(timeout_seconds=0.01, timeouts={"hangs": 30})
    host = build_host([PluginSource("hangs", hangs, "given", "-")], {}, options)
    assert host.timeout_for("hangs") == 30
    assert host.classify(make_case()).value == Classification("berat")


def test_wrong_return_type_is_a_failure_naming_the_plugin() -> None:
    host = make_host(("answers", Answers()), ("wrong", WrongType()))
    outcome = host.classify(make_case())
    assert outcome.value == Classification("ringan", "default")
    [failure] = outcome.failures
    assert (failure.plugin, failure.kind) == ("wrong", "bad_return")
    assert "returned str ('sedang'), expected Classification" in failure.message
    [failure] = host.notify(_note())
    assert failure.plugin == "wrong" and "must return None" in failure.message


def test_severity_outside_the_profile_is_refused() -> None:
    class Sangat:
        @hookimpl
        def classify_case(self, case: Any) -> Classification:
            return Classification("sangat berat")

    outcome = make_host(("sangat", Sangat())).classify(make_case(), ["ringan", "sedang"])
    assert outcome.value is None
    assert "not one of the profile's classes (ringan, sedang)" in outcome.failures[0].message


def test_invalid_decision_raised_inside_the_plugin_is_a_failure() -> None:
    class Half:
        @hookimpl
        def route_case(self, case: Any) -> RoutingDecision:
            return RoutingDecision(ours=False)  # neither opd nor body

    outcome = make_host(("half", Half())).route(make_case(), ["Dinas PUPR"])
    assert outcome.value is None
    assert "exactly one of opd or body_id" in outcome.failures[0].message


# -- first result ------------------------------------------------------------------------


class NoOpinion:
    def __init__(self) -> None:
        self.asked = 0

    @hookimpl
    def route_case(self, case: Any, known_opds: Any) -> None:
        self.asked += 1
        return None


class ToOpd:
    def __init__(self, opd: str) -> None:
        self.opd = opd

    @hookimpl
    def route_case(self, case: Any) -> RoutingDecision:
        return RoutingDecision(ours=False, opd=self.opd, tembusan=["pelapor"], reason="r")


def test_none_means_ask_the_next_plugin() -> None:
    silent = NoOpinion()
    host = make_host(("opd", ToOpd("Dinas PUPR")), ("silent", silent))
    assert host.implementers("route_case") == ["silent", "opd"]
    outcome = host.route(make_case(), ["Dinas PUPR"])
    assert silent.asked == 1
    assert outcome.plugin == "opd" and outcome.ok
    assert outcome.value is not None and outcome.value.tembusan == ("pelapor",)
    nobody = make_host(("silent", NoOpinion())).route(make_case(), [])
    assert nobody.value is None and nobody.plugin is None and nobody.ok


def test_unknown_opd_or_body_is_rejected() -> None:
    host = make_host(("opd", ToOpd("Dinas Lingkungan Hidop")))
    outcome = host.route(make_case(), ["Dinas Lingkungan Hidup", "Dinas PUPR"])
    assert outcome.value is None
    assert outcome.failures[0].message == (
        "routed to unknown OPD 'Dinas Lingkungan Hidop' (did you mean 'Dinas Lingkungan Hidup'?)")

    class ToBody:
        @hookimpl
        def route_case(self) -> RoutingDecision:
            return RoutingDecision(ours=False, body_id=99)

    host = make_host(("body", ToBody()))
    assert host.route(make_case(), [], known_bodies=[99]).value is not None
    refused = host.route(make_case(), [], known_bodies=[1, 2])
    assert refused.value is None and "institution 99" in refused.failures[0].message


def test_stage_deadline_and_escalation_checks() -> None:
    start = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)

    class Deadlines:
        @hookimpl
        def stage_deadline(self, stage: str, started_at: datetime) -> Any:
            if stage == "naive":
                return datetime(2026, 3, 10)
            if stage == "early":
                return started_at - timedelta(days=1)
            return started_at + timedelta(days=14)

        @hookimpl
        def decide_escalation(self, case: Any, now: datetime) -> EscalationDecision:
            return EscalationDecision(1, "kabid", f"cek {now:%Y-%m-%d}")

    host = make_host(("d", Deadlines()))
    case = make_case()
    assert host.stage_deadline(case, "case", start).value == start + timedelta(days=14)
    received = make_case(received_at=start - timedelta(days=1))
    assert host.stage_deadline(received, "case").value == start + timedelta(days=13)
    assert "naive" in host.stage_deadline(case, "naive", start).failures[0].message
    assert "before the stage started" in host.stage_deadline(case, "early", start) \
        .failures[0].message
    assert host.escalation(case, NOW).value == EscalationDecision(1, "kabid", "cek 2026-03-20")
    with pytest.raises(ValueError):
        host.escalation(case, datetime(2026, 3, 20))


# -- events and jobs ---------------------------------------------------------------------


def test_emit_calls_every_plugin_with_its_arguments() -> None:
    seen: list[tuple[str, Any]] = []

    class A:
        @hookimpl
        def case_changed(self, case: Any, changes: Any, side: Any, event_id: int) -> None:
            seen.append(("a", (case.id, dict(changes), side, event_id)))

        @hookimpl
        def deadline_near(self, working_days_left: Any) -> None:
            seen.append(("a-near", working_days_left))

    class B:
        @hookimpl
        def case_changed(self, case: Any) -> None:
            raise RuntimeError("b broke")

    host = make_host(("a", A()), ("b", B()))
    case = make_case(id=5)
    failures = host.emit("case_changed", case, event_id=9, changes={"stage": ["a", "b"]},
                         side="local")
    assert [f.plugin for f in failures] == ["b"]
    assert ("a", (5, {"stage": ["a", "b"]}, "local", 9)) in seen
    host.emit("case_changed", case)
    assert ("a", (5, {}, None, 0)) in seen
    host.emit("deadline_near", case, working_days_left=2)
    assert ("a-near", 2) in seen
    with pytest.raises(ValueError, match="unknown event"):
        host.emit("case_exploded", case)
    with pytest.raises(ValueError, match="not \\['colour'\\]"):
        host.emit("case_received", case, colour="red")


def test_scheduler_jobs_are_prefixed_checked_and_guarded(caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    class Jobs:
        @hookimpl
        def scheduler_jobs(self) -> list[JobSpec]:
            return [JobSpec("rekap", "cron", lambda: ran.append("rekap"),
                            {"day": 1, "hour": 7}),
                    JobSpec("boom", "interval", lambda: 1 / 0, {"minutes": 5})]

    host = make_host(("jobs", Jobs()))
    jobs = host.scheduler_jobs()
    assert [(j.id, j.plugin, j.trigger) for j in jobs] == [
        ("jobs:rekap", "jobs", "cron"), ("jobs:boom", "jobs", "interval")]
    jobs[0].func()
    assert ran == ["rekap"]
    with caplog.at_level(logging.ERROR, logger="bridge.plugins"):
        jobs[1].func()  # does not raise into the scheduler
    assert "plugin 'jobs' failed in job boom" in caplog.text
    assert jobs[0].make_trigger() is not None

    class BadTrigger:
        @hookimpl
        def scheduler_jobs(self) -> list[JobSpec]:
            return [JobSpec("x", "cron", lambda: None, {"hour": 25})]

    with pytest.raises(PluginError, match="plugin 'bad': job 'x': bad cron trigger"):
        make_host(("bad", BadTrigger())).scheduler_jobs()

    class NotAList:
        @hookimpl
        def scheduler_jobs(self) -> Any:
            return "rekap"

    with pytest.raises(PluginError, match="must return a list of JobSpec"):
        make_host(("notalist", NotAList())).scheduler_jobs()


# -- CLI -------------------------------------------------------------------------------


def _config_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "deploy.toml"
    path.write_text(textwrap.dedent("""
        [regency]
        name = "Kabupaten Contoh"
        code = "CTH"
        [lapor]
        base_url = "https://lapor.test/api"
    """) + textwrap.dedent(body), encoding="utf-8")
    return path


def test_cli_lists_plugins_and_reports_bad_ones(tmp_path: Path) -> None:
    from bridge.cli import main

    good = _config_file(tmp_path, """
        [plugins]
        entry_points = false
        enable = ["routing_rules", "notify_log"]
        [routing_rules]
        default_unit = "Seksi Pengaduan"
    """)
    runner = CliRunner()
    result = runner.invoke(main, ["--config", str(good), "plugins"])
    assert result.exit_code == 0, result.output
    assert "routing_rules  0.1.0  config_section, route_case  [package lapor-bridge]" \
        in result.output
    result = runner.invoke(main, ["plugins", "--config", str(good), "--json"])
    assert '"section": "routing_rules"' in result.output

    bad = _config_file(tmp_path, """
        [plugins]
        entry_points = false
        enable = ["routing_rules"]
        [routing_rules]
        default_unit = "Seksi Pengaduan"
        defualt_tembusan = ["pelapor"]
    """)
    result = runner.invoke(main, ["--config", str(bad), "plugins"])
    assert result.exit_code == 2
    assert "routing_rules.defualt_tembusan: unknown key (plugin 'routing_rules')" \
        in result.output


def test_cli_plugin_new(tmp_path: Path) -> None:
    from bridge.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["plugin", "new", "kab-uji", "--dest", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "lapor-bridge-kab-uji" / "lapor_bridge_kab_uji" / "plugin.py").exists()
    again = runner.invoke(main, ["plugin", "new", "kab-uji", "--dest", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(main, ["plugin", "new", "Kab Uji!", "--dest", str(tmp_path)])
    assert bad.exit_code == 2 and "invalid plugin name" in bad.output
