"""Business-calendar arithmetic with exact expected instants.

Expected instants are written as aware local datetimes so that a reader can check them against a wall calendar;
``at`` converts them to UTC epoch milliseconds, the unit of the whole SLA core.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from streams.calendar import (
    PRESET_NAMES,
    BusinessCalendar,
    CalendarError,
    Interval,
    parse_calendar,
    parse_interval,
    preset,
)
from streams.errors import ConfigError, Problem

BERLIN = "Europe/Berlin"
HOUR = 3_600_000
MINUTE = 60_000
DAY = 24 * HOUR


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = "UTC", fold: int = 0) -> int:
    """UTC epoch ms of a local wall-clock time in ``tz``."""
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz), fold=fold).timestamp()) * 1000


def calendar(data: Mapping[str, object], name: str = "test") -> BusinessCalendar:
    problems: list[Problem] = []
    cal = parse_calendar(name, data, f"calendars.{name}", problems)
    assert problems == []
    assert cal is not None
    return cal


OFFICE = {
    "timezone": BERLIN,
    "hours": {"mon-fri": ["08:00-12:00", "13:00-17:00"]},
    "holidays": [date(2026, 12, 25), {"date": "2026-12-24", "hours": ["08:00-12:00"]}],
}


# --- presets and the PRODUCT.md tiers --------------------------------------------------------------------------


def test_one_business_day_from_friday_afternoon_lands_monday_afternoon() -> None:
    cal = preset("8/5")
    # 2026-03-06 is a Friday: 16:00-17:00 Friday, then 09:00-16:00 Monday.
    assert cal.add(at(2026, 3, 6, 16), 8 * HOUR) == at(2026, 3, 9, 16)
    assert cal.elapsed(at(2026, 3, 6, 16), at(2026, 3, 9, 16)) == 8 * HOUR


def test_vip_tier_one_hour_on_24_7() -> None:
    cal = preset("24/7", BERLIN)
    assert cal.add(at(2026, 12, 25, 23, 30, BERLIN), HOUR) == at(2026, 12, 26, 0, 30, BERLIN)
    assert cal.add(at(2026, 12, 25, 23, 30, BERLIN), 24 * HOUR) == at(2026, 12, 26, 23, 30, BERLIN)


def test_premium_tier_two_hours_on_24_5_from_friday_night() -> None:
    cal = preset("24/5", BERLIN)
    # 2026-03-13 is a Friday: 30 minutes on Friday, 90 minutes from Monday 00:00.
    assert cal.add(at(2026, 3, 13, 23, 30, BERLIN), 2 * HOUR) == at(2026, 3, 16, 1, 30, BERLIN)
    assert not cal.is_open(at(2026, 3, 14, 12, tz=BERLIN))
    assert cal.next_change(at(2026, 3, 14, 12, tz=BERLIN)) == at(2026, 3, 16, 0, tz=BERLIN)
    assert cal.next_change(at(2026, 3, 16, 1, tz=BERLIN)) == at(2026, 3, 21, 0, tz=BERLIN)


def test_standard_tier_one_business_day_on_8_5() -> None:
    cal = preset("8/5", BERLIN)
    # Tuesday 11:15 + 8 business hours = Wednesday 11:15; 5 business days = the next Tuesday 11:15.
    assert cal.add(at(2026, 6, 2, 11, 15, BERLIN), 8 * HOUR) == at(2026, 6, 3, 11, 15, BERLIN)
    assert cal.add(at(2026, 6, 2, 11, 15, BERLIN), 5 * 8 * HOUR) == at(2026, 6, 9, 11, 15, BERLIN)


def test_preset_names_and_hours() -> None:
    assert PRESET_NAMES == ("24/7", "24/5", "8/5")
    assert preset("24/7").week_ms == 7 * 24 * HOUR
    assert preset("24/5").week_ms == 5 * 24 * HOUR
    assert preset("8/5").week_ms == 5 * 8 * HOUR
    assert preset("8/5").hours_on(date(2026, 3, 9)) == (Interval(9 * 60, 17 * 60),)
    assert preset("8/5").hours_on(date(2026, 3, 8)) == ()
    with pytest.raises(CalendarError, match="unknown preset '9/5'"):
        preset("9/5")
    with pytest.raises(CalendarError, match="Europe/Berln"):
        preset("24/7", "Europe/Berln")


# --- weekends, outside hours, holidays -------------------------------------------------------------------------


def test_weekend_stops_the_clock() -> None:
    cal = preset("8/5")
    assert cal.elapsed(at(2026, 3, 6, 17), at(2026, 3, 9, 9)) == 0
    assert cal.add(at(2026, 3, 7, 10), HOUR) == at(2026, 3, 9, 10)  # started on Saturday
    assert cal.elapsed(at(2026, 3, 6, 12), at(2026, 3, 10, 12)) == 5 * HOUR + 8 * HOUR + 3 * HOUR


def test_started_outside_working_hours() -> None:
    cal = preset("8/5")
    assert cal.add(at(2026, 3, 9, 7), 30 * MINUTE) == at(2026, 3, 9, 9, 30)  # before opening
    assert cal.add(at(2026, 3, 9, 17, 30), HOUR) == at(2026, 3, 10, 10)  # after closing
    assert cal.add(at(2026, 3, 9, 7), 0) == at(2026, 3, 9, 7)  # zero stays put
    # The earliest instant: a target filling the day exactly ends at the closing time, not the next opening.
    assert cal.add(at(2026, 3, 9, 9), 8 * HOUR) == at(2026, 3, 9, 17)


def test_whole_and_partial_holidays() -> None:
    cal = calendar(OFFICE)
    # Wednesday 2026-12-23 16:00: 1 h that day, Thursday 24th (partial) 08:00-12:00, Friday 25th closed.
    start = at(2026, 12, 23, 16, tz=BERLIN)
    assert cal.add(start, 4 * HOUR) == at(2026, 12, 24, 11, tz=BERLIN)
    assert cal.add(start, 5 * HOUR) == at(2026, 12, 24, 12, tz=BERLIN)
    assert cal.add(start, 6 * HOUR) == at(2026, 12, 28, 9, tz=BERLIN)
    assert cal.elapsed(start, at(2026, 12, 28, 9, tz=BERLIN)) == 6 * HOUR
    assert not cal.is_open(at(2026, 12, 24, 14, tz=BERLIN))
    assert cal.is_open(at(2026, 12, 23, 14, tz=BERLIN))
    assert cal.next_change(at(2026, 12, 24, 9, tz=BERLIN)) == at(2026, 12, 24, 12, tz=BERLIN)
    assert cal.next_change(at(2026, 12, 24, 12, tz=BERLIN)) == at(2026, 12, 28, 8, tz=BERLIN)
    assert cal.hours_on(date(2026, 12, 24)) == (Interval(8 * 60, 12 * 60),)
    assert cal.hours_on(date(2026, 12, 25)) == ()
    # Whole weeks skipped arithmetically up to the holiday week, landing exactly on the closing time before it.
    monday = at(2026, 11, 30, 8, tz=BERLIN)
    assert cal.add(monday, 3 * 40 * HOUR) == at(2026, 12, 18, 17, tz=BERLIN)
    assert cal.add(monday, 3 * 40 * HOUR + 1) == at(2026, 12, 21, 8, tz=BERLIN) + 1
    assert cal.add(monday, 3 * 40 * HOUR + 28 * HOUR) == at(2026, 12, 24, 12, tz=BERLIN)
    assert cal.add(monday, 3 * 40 * HOUR + 28 * HOUR + 1) == at(2026, 12, 28, 8, tz=BERLIN) + 1


def test_holidays_on_a_preset() -> None:
    cal = calendar({"preset": "24/7", "timezone": BERLIN, "holidays": ["2026-12-25"]})
    assert cal.add(at(2026, 12, 24, 23, tz=BERLIN), 2 * HOUR) == at(2026, 12, 26, 1, tz=BERLIN)
    assert cal.next_change(at(2026, 12, 20, tz=BERLIN)) == at(2026, 12, 25, tz=BERLIN)
    assert cal.next_change(at(2026, 12, 25, 3, tz=BERLIN)) == at(2026, 12, 26, tz=BERLIN)
    assert cal.next_change(at(2026, 12, 26, 3, tz=BERLIN)) is None
    assert preset("24/7").next_change(at(2026, 1, 1)) is None


def test_year_totals() -> None:
    # 2026 has 261 weekdays; the office calendar loses Friday the 25th (8 h) and half of the 24th (4 h).
    year = (at(2026, 1, 1, tz=BERLIN), at(2027, 1, 1, tz=BERLIN))
    assert preset("8/5", BERLIN).elapsed(*year) == 261 * 8 * HOUR
    assert calendar(OFFICE).elapsed(*year) == 261 * 8 * HOUR - 12 * HOUR
    assert preset("24/7", BERLIN).elapsed(*year) == 365 * 24 * HOUR


# --- daylight saving time --------------------------------------------------------------------------------------


def test_24_7_counts_wall_time_across_berlin_dst_days() -> None:
    cal = preset("24/7", BERLIN)
    # 2026-03-29 (spring forward) is 23 h long, 2026-10-25 (fall back) 25 h.
    assert cal.elapsed(at(2026, 3, 29, tz=BERLIN), at(2026, 3, 30, tz=BERLIN)) == 23 * HOUR
    assert cal.elapsed(at(2026, 10, 25, tz=BERLIN), at(2026, 10, 26, tz=BERLIN)) == 25 * HOUR
    assert cal.add(at(2026, 3, 28, 12, tz=BERLIN), 24 * HOUR) == at(2026, 3, 29, 13, tz=BERLIN)
    assert cal.add(at(2026, 10, 24, 12, tz=BERLIN), 24 * HOUR) == at(2026, 10, 25, 11, tz=BERLIN)


def test_8_5_keeps_local_hours_across_berlin_dst() -> None:
    cal = preset("8/5", BERLIN)
    # March: Friday 16:00 CET + 8 h = Monday 16:00 CEST; the office opens at 09:00 local both weeks.
    assert cal.add(at(2026, 3, 27, 16, tz=BERLIN), 8 * HOUR) == at(2026, 3, 30, 16, tz=BERLIN)
    assert not cal.is_open(at(2026, 3, 30, 8, 59, BERLIN))
    assert cal.is_open(at(2026, 3, 30, 9, tz=BERLIN))
    assert cal.elapsed(at(2026, 3, 23, tz=BERLIN), at(2026, 4, 6, tz=BERLIN)) == 80 * HOUR
    # October: Friday 16:00 CEST + 8 h = Monday 16:00 CET.
    assert cal.add(at(2026, 10, 23, 16, tz=BERLIN), 8 * HOUR) == at(2026, 10, 26, 16, tz=BERLIN)
    assert cal.next_change(at(2026, 10, 24, tz=BERLIN)) == at(2026, 10, 26, 9, tz=BERLIN)
    assert cal.elapsed(at(2026, 10, 19, tz=BERLIN), at(2026, 11, 2, tz=BERLIN)) == 80 * HOUR


def test_intervals_in_the_spring_gap_never_count_skipped_time() -> None:
    # On 2026-03-29 Berlin clocks jump from 02:00 to 03:00: 02:30 resolves to the transition instant (03:00 CEST).
    cal = calendar({"timezone": BERLIN, "hours": {"sun": ["01:00-02:30", "04:00-05:00"]}})
    day = (at(2026, 3, 29, tz=BERLIN), at(2026, 3, 30, tz=BERLIN))
    assert cal.elapsed(*day) == HOUR + HOUR
    assert cal.add(day[0], HOUR) == at(2026, 3, 29, 3, tz=BERLIN)  # the first interval ends at the jump
    late = calendar({"timezone": BERLIN, "hours": {"sun": ["02:30-05:00"]}})
    assert late.elapsed(*day) == 2 * HOUR
    assert late.add(day[0], 30 * MINUTE) == at(2026, 3, 29, 3, 30, BERLIN)


def test_intervals_in_the_autumn_overlap_start_at_the_first_occurrence() -> None:
    # On 2026-10-25 Berlin clocks go from 03:00 CEST back to 02:00 CET: 02:30 means the first 02:30 (fold=0).
    cal = calendar({"timezone": BERLIN, "hours": {"sun": ["02:30-04:00"]}})
    day = (at(2026, 10, 25, tz=BERLIN), at(2026, 10, 26, tz=BERLIN))
    assert cal.elapsed(*day) == 2 * HOUR + 30 * MINUTE
    assert cal.add(day[0], HOUR) == at(2026, 10, 25, 2, 30, BERLIN, fold=1)
    assert cal.next_change(day[0]) == at(2026, 10, 25, 2, 30, BERLIN, fold=0)


def test_clock_falling_back_across_midnight_and_a_skipped_day() -> None:
    # Sao Paulo 2018-02-18 00:00 fell back to 2018-02-17 23:00; Apia skipped 2011-12-30 entirely.
    sao = preset("24/7", "America/Sao_Paulo")
    assert sao.elapsed(at(2018, 2, 17, tz="America/Sao_Paulo"), at(2018, 2, 19, tz="America/Sao_Paulo")) == 49 * HOUR
    # The 17th's 24:00 is first read on the clock after the repeated hour, so 23:00-24:00 spans both passes.
    saturday_night = calendar({"timezone": "America/Sao_Paulo", "hours": {"sat": ["23:00-24:00"]}})
    noon = at(2018, 2, 17, 12, tz="America/Sao_Paulo")
    assert saturday_night.elapsed(noon, noon + DAY) == 2 * HOUR
    assert saturday_night.is_open(at(2018, 2, 17, 23, 30, "America/Sao_Paulo", fold=1))
    # Goose Bay 2006-10-29 00:00:59 fell back to 2006-10-28 23:01: the clock read the 29th, then the 28th again.
    # A second-pass 23:30 on the 28th belongs to the 29th (the general path, not the 24/7 shortcut, checks this).
    goose = "America/Goose_Bay"
    general = BusinessCalendar("g", goose, ((Interval(0, 1440),),) * 7, ((date(2000, 1, 1), ()),))
    noon, late = at(2006, 10, 28, 12, tz=goose), at(2006, 10, 28, 23, 30, goose, fold=1)
    assert late - noon == 12 * HOUR + 30 * MINUTE
    assert general.elapsed(noon, late) == 12 * HOUR + 30 * MINUTE
    assert general.add(noon, 12 * HOUR + 30 * MINUTE) == late
    goose_night = calendar({"timezone": goose, "hours": {"sat": ["23:00-24:00"]}})
    assert goose_night.elapsed(noon, noon + DAY) == HOUR
    assert not goose_night.is_open(late)
    assert goose_night.is_open(at(2006, 10, 28, 23, 30, goose, fold=0))
    apia = preset("24/7", "Pacific/Apia")
    start, end = at(2011, 12, 29, 12, tz="Pacific/Apia"), at(2011, 12, 31, 12, tz="Pacific/Apia")
    assert end - start == 24 * HOUR
    assert apia.elapsed(start, end) == 24 * HOUR
    week = preset("24/5", "Pacific/Apia")  # Thursday 29th 12:00 to Saturday 31st 12:00: the 30th never happened
    assert week.elapsed(start, end) == 12 * HOUR
    assert week.add(start, 13 * HOUR) == at(2012, 1, 2, 1, tz="Pacific/Apia")


# --- intervals crossing midnight -------------------------------------------------------------------------------


def test_interval_crossing_midnight_belongs_to_the_day_it_starts_on() -> None:
    cal = calendar({"timezone": "UTC", "hours": {"fri": ["22:00-06:00"]}})
    # 2026-03-06 is a Friday.
    assert cal.week_ms == 8 * HOUR
    assert cal.add(at(2026, 3, 6, 23), 2 * HOUR) == at(2026, 3, 7, 1)
    assert cal.add(at(2026, 3, 7, 5), 2 * HOUR) == at(2026, 3, 13, 23)
    assert cal.is_open(at(2026, 3, 7, 5, 59))
    assert not cal.is_open(at(2026, 3, 7, 6))
    assert cal.next_change(at(2026, 3, 7, 3)) == at(2026, 3, 7, 6)
    # A holiday on the Saturday does not cut Friday's interval; a holiday on the Friday removes it.
    saturday = calendar({"timezone": "UTC", "hours": {"fri": ["22:00-06:00"]}, "holidays": [date(2026, 3, 7)]})
    assert saturday.elapsed(at(2026, 3, 6), at(2026, 3, 9)) == 8 * HOUR
    friday = calendar({"timezone": "UTC", "hours": {"fri": ["22:00-06:00"]}, "holidays": [date(2026, 3, 6)]})
    assert friday.elapsed(at(2026, 3, 6), at(2026, 3, 9)) == 0
    assert friday.add(at(2026, 3, 6, 23), HOUR) == at(2026, 3, 13, 23)


def test_holiday_on_a_sunday_removes_the_spill_into_the_next_week() -> None:
    cal = calendar(
        {"timezone": "UTC", "hours": {"sun": ["22:00-06:00"], "wed": ["09:00-10:00"]}, "holidays": [date(2026, 3, 8)]}
    )
    assert cal.week_ms == 9 * HOUR
    # Four whole weeks from Monday 2026-03-02; Sunday the 8th loses 22:00-24:00 and Monday the 9th 00:00-06:00.
    assert cal.elapsed(at(2026, 3, 2), at(2026, 3, 30)) == 4 * 9 * HOUR - 8 * HOUR
    assert cal.elapsed(at(2026, 2, 23), at(2026, 4, 6)) == 6 * 9 * HOUR - 8 * HOUR
    assert cal.add(at(2026, 3, 5), 2 * HOUR) == at(2026, 3, 15, 23)  # Wednesday 1 h, then Sunday night


def test_sunday_interval_crossing_into_monday_and_touching_intervals() -> None:
    cal = calendar({"timezone": BERLIN, "hours": {"sun": ["20:00-24:00"], "mon": ["00:00-02:00", "02:00-04:00"]}})
    assert cal.week_ms == 8 * HOUR
    # 2026-03-29 is the spring-forward Sunday; the evening is unaffected.
    assert cal.add(at(2026, 3, 29, 21, tz=BERLIN), 5 * HOUR) == at(2026, 3, 30, 2, tz=BERLIN)
    assert cal.next_change(at(2026, 3, 29, 21, tz=BERLIN)) == at(2026, 3, 30, 4, tz=BERLIN)


# --- the object itself -----------------------------------------------------------------------------------------


def test_immutable_picklable_comparable() -> None:
    cal = calendar(OFFICE, name="office")
    copy = pickle.loads(pickle.dumps(cal))
    assert copy == cal
    assert hash(copy) == hash(cal)
    assert copy.add(at(2026, 12, 23, 16, tz=BERLIN), 6 * HOUR) == at(2026, 12, 28, 9, tz=BERLIN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cal.name = "other"  # type: ignore[misc]
    assert "office" in repr(cal)
    assert "_days" not in repr(cal)


def test_constructor_rejects_bad_calendars() -> None:
    with pytest.raises(CalendarError, match="no working hours"):
        BusinessCalendar("empty", "UTC", ((),) * 7)
    with pytest.raises(CalendarError, match="overlap"):
        BusinessCalendar("x", "UTC", ((Interval(60, 180), Interval(120, 240)),) + ((),) * 6)
    with pytest.raises(CalendarError, match="interval end"):
        BusinessCalendar("x", "UTC", ((Interval(60, 60),),) + ((),) * 6)
    with pytest.raises(CalendarError, match="7 weekdays"):
        BusinessCalendar("x", "UTC", ((Interval(60, 120),),))
    with pytest.raises(CalendarError, match="'Mars/Olympus'"):
        BusinessCalendar("x", "Mars/Olympus", ((Interval(60, 120),),) * 7)
    with pytest.raises(CalendarError, match="given twice"):
        BusinessCalendar("x", "UTC", ((Interval(60, 120),),) * 7, ((date(2026, 1, 1), ()), (date(2026, 1, 1), ())))
    assert issubclass(CalendarError, ConfigError)


def test_a_year_closed_by_holidays_is_skipped() -> None:
    every_day = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    cal = calendar({"preset": "8/5", "holidays": every_day})
    assert cal.add(at(2026, 1, 1), HOUR) == at(2027, 1, 1, 10)
    assert cal.elapsed(at(2025, 12, 31, 16), at(2027, 1, 1, 10)) == 2 * HOUR
    assert cal.next_change(at(2026, 6, 1)) == at(2027, 1, 1, 9)


def test_bad_arguments() -> None:
    cal = preset("8/5")
    with pytest.raises(CalendarError, match=">= 0"):
        cal.add(at(2026, 1, 1), -1)
    with pytest.raises(CalendarError, match="supported years"):
        cal.elapsed(at(2026, 1, 1), 10**16)
    assert cal.elapsed(at(2026, 1, 2), at(2026, 1, 1)) == 0


def test_parse_interval() -> None:
    assert parse_interval("08:00-12:00") == Interval(480, 720)
    assert parse_interval("22:00-06:00") == Interval(1320, 1800)
    assert parse_interval("00:00-24:00") == Interval(0, 1440)
    assert parse_interval("22:00-00:00") == Interval(1320, 1440)
    assert str(Interval(1320, 1800)) == "22:00-06:00"
    assert str(Interval(0, 1440)) == "00:00-24:00"
    for bad in ("25:00-26:00", "8-12", "24:00-06:00", "10:60-11:00", "10:00-24:30"):
        with pytest.raises(CalendarError, match="HH:MM-HH:MM"):
            parse_interval(bad)
    with pytest.raises(CalendarError, match="empty"):
        parse_interval("08:00-08:00")


# --- parsing ---------------------------------------------------------------------------------------------------


def test_parse_full_example() -> None:
    problems: list[Problem] = []
    office = parse_calendar(
        "office",
        {
            "timezone": BERLIN,
            "hours": {"mon-fri": ["08:00-12:00", "13:00-17:00"], "sat": ["22:00-06:00"]},
            "holidays": [date(2026, 12, 25), {"date": date(2026, 12, 24), "hours": ["08:00-12:00"]}],
        },
        "calendars.office",
        problems,
    )
    vip = parse_calendar("vip", {"preset": "24/7", "timezone": BERLIN}, "calendars.vip", problems)
    utc = parse_calendar("plain", {"preset": "8/5"}, "calendars.plain", problems)
    assert problems == []
    assert office is not None and vip is not None and utc is not None
    assert office.name == "office" and office.timezone == BERLIN
    assert office.hours[0] == (Interval(480, 720), Interval(780, 1020))
    assert office.hours[5] == (Interval(1320, 1800),)
    assert office.hours[6] == ()
    assert office.holidays == ((date(2026, 12, 24), (Interval(480, 720),)), (date(2026, 12, 25), ()))
    assert vip.name == "vip" and vip.week_ms == 7 * 24 * HOUR
    assert utc.timezone == "UTC"


def test_parse_wrapping_day_range() -> None:
    cal = calendar({"timezone": "Asia/Riyadh", "hours": {"sun-thu": ["08:00-16:00"]}})
    assert [bool(day) for day in cal.hours] == [True, True, True, True, False, False, True]


def test_parse_reports_every_problem_with_its_path() -> None:
    problems: list[Problem] = [Problem("policies[0]", "an earlier problem from the loader")]
    cal = parse_calendar(
        "office",
        {
            "timezone": "Europe/Berln",
            "hours": {
                "mon-fri": ["08:00-12:00", "25:00-26:00"],
                "fri": ["18:00-19:00"],
                "sat": ["10:00-14:00", "13:00-15:00"],
                "sun": "09:00-10:00",
                "funday": ["09:00-10:00"],
            },
            "holidays": [
                "2026-02-30",
                {"date": "2026-12-24", "hours": ["8:00-12"], "note": "x"},
                {"hours": ["08:00-12:00"]},
                date(2026, 12, 24),
                datetime(2026, 12, 31, 12, 0),
            ],
            "colour": "blue",
        },
        "calendars.office",
        problems,
    )
    assert cal is None
    got = {(p.path, p.message) for p in problems[1:]}
    assert got == {
        ("calendars.office.colour", "unknown key 'colour'; expected one of: preset, timezone, hours, holidays"),
        (
            "calendars.office.timezone",
            "unknown time zone 'Europe/Berln' (expected an IANA name such as \"Europe/Berlin\")",
        ),
        ("calendars.office.hours.mon-fri[1]", "expected \"HH:MM-HH:MM\" (24-hour local time), got '25:00-26:00'"),
        ("calendars.office.hours.fri", "fri is already given by 'mon-fri'"),
        ("calendars.office.hours.sat[1]", "'13:00-15:00' overlaps '10:00-14:00' (calendars.office.hours.sat[0])"),
        ("calendars.office.hours.sun", "expected a list of \"HH:MM-HH:MM\" intervals, got '09:00-10:00'"),
        (
            "calendars.office.hours.funday",
            "unknown weekday 'funday'; expected mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri",
        ),
        (
            "calendars.office.holidays[0]",
            "expected a date (YYYY-MM-DD) that exists, got '2026-02-30' (day is out of range for month)",
        ),
        ("calendars.office.holidays[1].note", "unknown key 'note'; expected date, hours"),
        ("calendars.office.holidays[1].hours[0]", "expected \"HH:MM-HH:MM\" (24-hour local time), got '8:00-12'"),
        ("calendars.office.holidays[2].date", "required: the holiday's local date (YYYY-MM-DD)"),
        ("calendars.office.holidays[3]", "2026-12-24 is already listed at calendars.office.holidays[1]"),
        (
            "calendars.office.holidays[4]",
            "expected a date (YYYY-MM-DD), got a date and time '2026-12-31T12:00:00'",
        ),
    }
    assert problems[0].path == "policies[0]"  # the caller's problems are kept


def test_parse_preset_and_structure_problems() -> None:
    problems: list[Problem] = []
    assert parse_calendar("a", {"preset": "9/5", "hours": {"mon": ["09:00-10:00"]}}, "calendars.a", problems) is None
    assert parse_calendar("b", {"hours": {"mon": ["09:00-10:00"]}}, "calendars.b", problems) is None
    assert parse_calendar("c", {"timezone": "UTC"}, "calendars.c", problems) is None
    assert parse_calendar("d", {"timezone": "UTC", "hours": {"mon": []}}, "calendars.d", problems) is None
    assert parse_calendar("e", "24/7", "calendars.e", problems) is None
    assert parse_calendar("f", {"preset": "24/7", "holidays": "2026-12-25"}, "calendars.f", problems) is None
    fri_sat = {"fri": ["22:00-06:00"], "sat": ["05:00-08:00"]}
    assert parse_calendar("g", {"timezone": "UTC", "hours": fri_sat}, "calendars.g", problems) is None
    paths = [p.path for p in problems]
    assert paths == [
        "calendars.a.preset",
        "calendars.a.hours",
        "calendars.b.timezone",
        "calendars.c.hours",
        "calendars.d.hours",
        "calendars.e",
        "calendars.f.holidays",
        "calendars.g.hours.sat[0]",
    ]
    assert "unknown preset '9/5'" in problems[0].message
    assert "no working hours" in problems[4].message
    assert "crosses midnight" in problems[7].message
