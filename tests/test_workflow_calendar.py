"""The working-day calendar, on real 2026 dates (17 August, Idul Fitri, Christmas)."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

from bridge.workflow.calendar import (
    JAKARTA,
    WorkingCalendar,
    calendar_from_mapping,
    end_of_day,
    format_tanggal,
    local_date,
)
from bridge.workflow.errors import WorkflowProfileError
from tests.support.times import end_of, wib

# Cuti bersama 2026 as the regency's config would list them (SKB 3 Menteri).
CUTI_BERSAMA_2026 = {
    date(2026, 2, 16), date(2026, 3, 18), date(2026, 3, 20), date(2026, 3, 23),
    date(2026, 3, 24), date(2026, 5, 15), date(2026, 5, 28), date(2026, 12, 24),
}


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return WorkingCalendar()


@pytest.fixture(scope="module")
def cal_cuti() -> WorkingCalendar:
    return WorkingCalendar(CUTI_BERSAMA_2026)


def test_the_package_knows_the_2026_dates_these_tests_rely_on() -> None:
    id2026 = holidays.country_holidays("ID", years=2026)
    assert date(2026, 8, 17) in id2026          # Hari Kemerdekaan, a Monday
    assert date(2026, 8, 25) in id2026          # Maulid Nabi, a Tuesday
    assert date(2026, 12, 25) in id2026         # Natal, a Friday
    assert date(2026, 3, 19) in id2026          # Nyepi, a Thursday
    assert date(2026, 3, 21) in id2026          # Idul Fitri, a Saturday
    assert date(2026, 12, 24) not in id2026     # cuti bersama: only from config
    assert date(2027, 1, 1) in holidays.country_holidays("ID", years=2027)


def test_is_working_day(cal: WorkingCalendar, cal_cuti: WorkingCalendar) -> None:
    assert cal.is_working_day(date(2026, 8, 14))          # Friday
    assert not cal.is_working_day(date(2026, 8, 15))      # Saturday
    assert not cal.is_working_day(date(2026, 8, 16))      # Sunday
    assert not cal.is_working_day(date(2026, 8, 17))      # Independence Day
    assert cal.is_working_day(date(2026, 8, 18))
    assert cal.is_working_day(date(2026, 12, 24))         # a plain Thursday without config
    assert not cal_cuti.is_working_day(date(2026, 12, 24))
    assert cal_cuti.non_working_reason(date(2026, 12, 24)) == "Cuti bersama"
    assert cal.non_working_reason(date(2026, 8, 17)) == "Hari Kemerdekaan Republik Indonesia"
    assert cal.non_working_reason(date(2026, 8, 15)) == "Sabtu"
    assert cal.non_working_reason(date(2026, 8, 18)) is None


def test_received_on_a_working_day_counts_the_following_working_days(
        cal: WorkingCalendar) -> None:
    # Friday 14 Aug; Sat, Sun and Monday 17 August are skipped.
    assert cal.add_working_days(wib(2026, 8, 14, 16, 30), 1) == end_of(2026, 8, 18)
    assert cal.add_working_days(date(2026, 8, 14), 0) == end_of(2026, 8, 14)
    # 10 working days also skip Maulid Nabi on Tuesday 25 August.
    assert cal.add_working_days(wib(2026, 8, 14), 10) == end_of(2026, 9, 1)
    assert cal.add_working_days(wib(2026, 8, 18), 5) == end_of(2026, 8, 26)


def test_received_on_a_non_working_day_counts_from_the_next_working_day(
        cal: WorkingCalendar) -> None:
    # Saturday, Sunday and the holiday Monday all behave like Tuesday 18 August.
    for day in (15, 16, 17):
        assert cal.effective_day(date(2026, 8, day)) == date(2026, 8, 18)
        assert cal.add_working_days(wib(2026, 8, day), 0) == end_of(2026, 8, 18)
        assert cal.add_working_days(wib(2026, 8, day), 1) == end_of(2026, 8, 19)
        assert cal.add_working_days(wib(2026, 8, day), 3) == end_of(2026, 8, 21)


def test_the_date_is_taken_in_jakarta_time(cal: WorkingCalendar) -> None:
    # 17:30 UTC on Friday is 00:30 on Saturday in Jakarta: received on a weekend.
    friday_utc = datetime(2026, 8, 14, 17, 30, tzinfo=UTC)
    assert local_date(friday_utc) == date(2026, 8, 15)
    assert cal.add_working_days(friday_utc, 1) == end_of(2026, 8, 19)
    # 16:59 UTC is still Friday 23:59 WIB.
    assert cal.add_working_days(datetime(2026, 8, 14, 16, 59, tzinfo=UTC), 1) == end_of(2026, 8, 18)
    due = cal.add_working_days(friday_utc, 1)
    assert due.utcoffset() == timedelta(hours=7)
    assert due.astimezone(UTC) == datetime(2026, 8, 19, 16, 59, 59, tzinfo=UTC)


def test_naive_datetimes_are_refused(cal: WorkingCalendar) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        cal.add_working_days(datetime(2026, 8, 14, 9, 0), 1)
    with pytest.raises(ValueError, match="days must be >= 0"):
        cal.add_working_days(date(2026, 8, 14), -1)


def test_christmas_with_and_without_cuti_bersama(cal: WorkingCalendar,
                                                 cal_cuti: WorkingCalendar) -> None:
    # Wednesday 23 Dec: the 24th is cuti bersama (config), the 25th Natal, then a weekend.
    assert cal_cuti.add_working_days(wib(2026, 12, 23), 1) == end_of(2026, 12, 28)
    assert cal.add_working_days(wib(2026, 12, 23), 1) == end_of(2026, 12, 24)
    # Across the year end: 31 Dec, then New Year's Day 2027 (Friday) is skipped.
    assert cal_cuti.add_working_days(wib(2026, 12, 30), 2) == end_of(2027, 1, 4)
    # 28, 29, 30, 31 December and 4 January.
    assert cal_cuti.working_days_between(wib(2026, 12, 23), wib(2027, 1, 4)) == 5


def test_idul_fitri_2026_week(cal_cuti: WorkingCalendar, cal: WorkingCalendar) -> None:
    # 18 cuti Nyepi, 19 Nyepi, 20 cuti, 21-22 Idul Fitri (weekend), 23-24 cuti Idul Fitri.
    assert cal_cuti.add_working_days(wib(2026, 3, 17), 1) == end_of(2026, 3, 25)
    assert cal_cuti.add_working_days(wib(2026, 3, 17), 3) == end_of(2026, 3, 27)
    assert cal_cuti.working_days_between(date(2026, 3, 17), date(2026, 3, 25)) == 1
    # Without the config only Nyepi (national) is skipped.
    assert cal.add_working_days(wib(2026, 3, 17), 3) == end_of(2026, 3, 23)


def test_package_joint_holidays_match_the_decree(cal_cuti: WorkingCalendar) -> None:
    from_package = WorkingCalendar(package_joint_holidays=True)
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert from_package.is_working_day(day) == cal_cuti.is_working_day(day), day
        day += timedelta(days=1)
    assert from_package.non_working_reason(date(2026, 12, 24)) == "Cuti Bersama Hari Raya Natal"


def test_working_days_between(cal: WorkingCalendar) -> None:
    assert cal.working_days_between(wib(2026, 8, 14), wib(2026, 8, 14, 17)) == 0
    assert cal.working_days_between(date(2026, 8, 14), date(2026, 8, 18)) == 1
    assert cal.working_days_between(date(2026, 8, 14), date(2026, 9, 1)) == 10
    # From a weekend: counted after the next working day (Tuesday 18 Aug).
    assert cal.working_days_between(date(2026, 8, 15), date(2026, 8, 18)) == 0
    assert cal.working_days_between(date(2026, 8, 15), date(2026, 8, 19)) == 1
    # Reversed arguments give a negative count.
    assert cal.working_days_between(date(2026, 9, 1), date(2026, 8, 14)) == -10


def test_calendar_days(cal_cuti: WorkingCalendar) -> None:
    # Klaten's "14 hari": calendar days; 14 days after Friday 14 Aug is Friday 28 Aug.
    assert cal_cuti.add_calendar_days(wib(2026, 8, 14), 14) == end_of(2026, 8, 28)
    # Ending on Saturday 12 Dec stays there, or rolls to Monday 14 Dec when asked.
    assert cal_cuti.add_calendar_days(date(2026, 12, 5), 7) == end_of(2026, 12, 12)
    assert cal_cuti.add_calendar_days(date(2026, 12, 5), 7, roll_to_working_day=True) == \
        end_of(2026, 12, 14)
    # Ending on cuti bersama 24 Dec rolls past Natal and the weekend.
    assert cal_cuti.add_calendar_days(date(2026, 12, 10), 14, roll_to_working_day=True) == \
        end_of(2026, 12, 28)


def test_other_time_zones() -> None:
    makassar = WorkingCalendar(tz="Asia/Makassar")
    due = makassar.add_working_days(date(2026, 8, 14), 1)
    assert due == datetime(2026, 8, 18, 23, 59, 59, tzinfo=ZoneInfo("Asia/Makassar"))
    assert due.utcoffset() == timedelta(hours=8)
    # 23:30 WIB on Friday is already Saturday in Makassar.
    late = datetime(2026, 8, 14, 23, 30, tzinfo=JAKARTA)
    assert makassar.local_date(late) == date(2026, 8, 15)
    assert local_date(late) == date(2026, 8, 14)
    assert local_date(datetime(2026, 8, 14, 23, 30, tzinfo=timezone(timedelta(hours=9))),
                      "Asia/Jakarta") == date(2026, 8, 14)


def test_holiday_sets_are_built_lazily_once_per_year(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = holidays.country_holidays

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(kwargs["years"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(holidays, "country_holidays", counting)
    cal = WorkingCalendar()
    assert calls == []
    for _ in range(50):
        cal.add_working_days(date(2026, 8, 14), 10)
    assert calls == [2026]
    cal.add_working_days(date(2026, 12, 30), 5)
    assert calls == [2026, 2027]
    WorkingCalendar(years=[2025, 2026])
    assert calls == [2026, 2027, 2025, 2026]


def test_weekend_is_configurable() -> None:
    six_day_week = WorkingCalendar(weekend=[6])
    assert six_day_week.is_working_day(date(2026, 8, 15))
    assert six_day_week.add_working_days(date(2026, 8, 14), 1) == end_of(2026, 8, 15)
    with pytest.raises(ValueError):
        WorkingCalendar(weekend=range(7))


def test_end_of_day_and_format_tanggal() -> None:
    assert end_of_day(date(2026, 8, 17)) == end_of(2026, 8, 17)
    assert format_tanggal(date(2026, 8, 17)) == "Senin, 17 Agustus 2026"
    assert format_tanggal(datetime(2026, 12, 24, 18, 0, tzinfo=UTC)) == "Jumat, 25 Desember 2026"
    assert format_tanggal(date(2026, 3, 1), weekday=False) == "1 Maret 2026"


def test_calendar_from_config_section() -> None:
    doc = tomllib.loads("""
[calendar]
cuti_bersama = [2026-12-24, "2026-03-20"]
local_holidays = { 2026-09-02 = "Hari Jadi Kabupaten" }
weekend = ["sabtu", "minggu"]
""")
    cal = calendar_from_mapping(doc["calendar"])
    assert not cal.is_working_day(date(2026, 12, 24))
    assert not cal.is_working_day(date(2026, 3, 20))
    assert cal.non_working_reason(date(2026, 9, 2)) == "Hari Jadi Kabupaten"
    assert cal.add_working_days(date(2026, 9, 1), 1) == end_of(2026, 9, 3)
    assert calendar_from_mapping({}).is_working_day(date(2026, 12, 24))


@pytest.mark.parametrize(("section", "key", "problem"), [
    ({"cuti_bersama": ["2026-02-30"]}, "calendar.cuti_bersama[0]", "day is out of range"),
    ({"cuti_bersama": "2026-12-24"}, "calendar.cuti_bersama", "expected a list of dates"),
    ({"cuti_bersama": [datetime(2026, 12, 24, 8, 0)]}, "calendar.cuti_bersama[0]",
     "expected a date"),
    ({"weekend": ["saturday", "caturday"]}, "calendar.weekend[1]", "unknown day 'caturday'"),
    ({"timezone": "Asia/Bandung"}, "calendar.timezone", "unknown time zone"),
    ({"holidays": []}, "calendar.holidays", "unknown key"),
    ({"package_joint_holidays": "yes"}, "calendar.package_joint_holidays", "true or false"),
])
def test_calendar_config_errors_name_the_key(section: dict[str, object], key: str,
                                             problem: str) -> None:
    with pytest.raises(WorkflowProfileError) as info:
        calendar_from_mapping(section)
    assert info.value.key == key
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{key}: ")
