"""Property tests of the business calendar, with a brute-force oracle.

The oracle recomputes open time independently of ``streams.calendar``: it reads the local wall clock at every UTC
minute around the range, resolves each interval bound to the first minute at which the clock reads that time or
later (the documented semantics), and measures the union of the resulting UTC spans.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.calendar import BusinessCalendar, Interval, preset

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
EPOCH = date(1970, 1, 1)

# 2025-01-01 .. 2027-01-01 UTC: holidays and several DST transitions of every zone above.
LOW = int(datetime(2025, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp()) * 1000
HIGH = int(datetime(2027, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp()) * 1000

SETTINGS = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def day_hours(draw: st.DrawFn) -> tuple[Interval, ...]:
    """0-3 disjoint intervals on a 15-minute grid (so that bounds hit DST transitions), some crossing midnight."""
    points = sorted(draw(st.lists(st.integers(0, 191), unique=True, max_size=6)))
    intervals = []
    for start, end in zip(points[::2], points[1::2], strict=False):
        if start * 15 < 1440 and end - start <= 96:
            intervals.append(Interval(start * 15, end * 15))
    return tuple(intervals)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    hours = list(draw(st.lists(day_hours(), min_size=7, max_size=7)))
    if not any(hours):
        hours[draw(st.integers(0, 6))] = (Interval(540, 1020),)
    days = draw(st.lists(st.dates(date(2025, 1, 1), date(2026, 12, 31)), unique=True, max_size=6))
    holidays = tuple((d, draw(st.one_of(st.just(()), day_hours()))) for d in days)
    return BusinessCalendar("random", draw(st.sampled_from(ZONES)), tuple(hours), holidays)


instants = st.integers(LOW, HIGH)
durations = st.integers(0, 40 * DAY)


# --- the oracle ------------------------------------------------------------------------------------------------


def oracle_elapsed(cal: BusinessCalendar, start_ms: int, end_ms: int) -> int:
    """Business ms in [start_ms, end_ms), computed per minute of wall clock around the range."""
    zone = ZoneInfo(cal.timezone)
    first_minute = start_ms // MINUTE - 3 * 1440
    last_minute = end_ms // MINUTE + 3 * 1440
    # wall[i]: the local clock at UTC minute first_minute + i, in minutes since local 1970-01-01 00:00.
    running = -(10**12)
    reach = []
    for minute in range(first_minute, last_minute + 1):
        local = datetime.fromtimestamp(minute * 60, zone).replace(tzinfo=None)
        wall = (local - datetime(1970, 1, 1)) // timedelta(minutes=1)
        running = max(running, wall)
        reach.append(running)

    def resolve(day: date, minute: int) -> int:
        local = (day - EPOCH).days * 1440 + minute
        return (first_minute + bisect_left(reach, local)) * MINUTE

    holidays = dict(cal.holidays)
    spans = []
    first_day = datetime.fromtimestamp(start_ms // 1000, zone).date() - timedelta(days=2)
    last_day = datetime.fromtimestamp(end_ms // 1000, zone).date() + timedelta(days=1)
    day = first_day
    while day <= last_day:
        for interval in holidays.get(day, cal.hours[day.weekday()]):
            spans.append((resolve(day, interval.start), resolve(day, interval.end)))
        day += timedelta(days=1)
    spans.sort()
    total, covered = 0, start_ms
    for a, b in spans:
        lo, hi = max(a, covered), min(b, end_ms)
        if hi > lo:
            total += hi - lo
        covered = max(covered, min(b, end_ms))
    return total


@SETTINGS
@given(cal=calendars(), start=instants, length=st.integers(0, 3 * DAY))
def test_elapsed_matches_brute_force_oracle(cal: BusinessCalendar, start: int, length: int) -> None:
    end = start + length
    assert cal.elapsed(start, end) == oracle_elapsed(cal, start, end)
    assert cal.is_open(start) == (oracle_elapsed(cal, start, start + 1) == 1)


def offset_changes(zone: str, year: int) -> list[date]:
    """Local dates in ``year`` on which the UTC offset of ``zone`` changes."""
    tz = ZoneInfo(zone)
    found = []
    previous = datetime(year, 1, 1, tzinfo=tz).utcoffset()
    for day in range(366):
        moment = datetime(year, 1, 1, tzinfo=tz) + timedelta(days=day)  # same wall time, offset recomputed
        if moment.utcoffset() != previous:
            previous = moment.utcoffset()
            found.append(moment.date())
    return found


TRANSITIONS = [(zone, day) for zone in ZONES for year in (2025, 2026) for day in offset_changes(zone, year)]


def test_transitions_cover_every_kind_of_dst() -> None:
    zones = {zone for zone, _ in TRANSITIONS}
    assert zones == {"Europe/Berlin", "America/New_York", "Australia/Lord_Howe"}
    assert len(TRANSITIONS) == 12


@settings(deadline=None, max_examples=120)
@given(
    transition=st.sampled_from(TRANSITIONS),
    hours=st.lists(day_hours(), min_size=7, max_size=7),
    shift=st.integers(-3 * DAY, DAY),
    length=st.integers(0, 4 * DAY),
)
def test_oracle_around_dst_transitions(
    transition: tuple[str, date], hours: list[tuple[Interval, ...]], shift: int, length: int
) -> None:
    """Random hours, random ranges around every DST change of 2025-2026, against the oracle."""
    zone, day = transition
    if not any(hours):
        hours[0] = (Interval(120, 180),)
    cal = BusinessCalendar("dst", zone, tuple(hours))
    midnight = int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp()) * 1000
    start = midnight + shift
    assert cal.elapsed(start, start + length) == oracle_elapsed(cal, start, start + length)
    business = cal.elapsed(start, start + length)
    assert cal.add(start, business) <= start + length


def test_oracle_on_every_transition_weekend() -> None:
    """Deterministic sweep: bounds inside the gaps (02:15, 02:30) around every DST change, against the oracle."""
    hours = (Interval(30, 135), Interval(150, 300), Interval(1380, 1530))
    for zone, day in TRANSITIONS:
        cal = BusinessCalendar("sweep", zone, (hours,) * 7)
        start = int(datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp()) * 1000 - 3 * DAY
        assert cal.elapsed(start, start + 5 * DAY) == oracle_elapsed(cal, start, start + 5 * DAY), (zone, day)


# --- algebraic properties --------------------------------------------------------------------------------------


@SETTINGS
@given(cal=calendars(), start=instants, business=durations)
def test_add_and_elapsed_are_inverse(cal: BusinessCalendar, start: int, business: int) -> None:
    deadline = cal.add(start, business)
    assert deadline >= start
    assert cal.elapsed(start, deadline) == business
    if business > 0:
        # The earliest such instant: one millisecond earlier is not enough, and it is open just before it.
        assert cal.elapsed(start, deadline - 1) == business - 1
        assert cal.is_open(deadline - 1)


@SETTINGS
@given(cal=calendars(), start=instants, length=st.integers(0, 400 * DAY))
def test_elapsed_at_most_wall_time(cal: BusinessCalendar, start: int, length: int) -> None:
    assert 0 <= cal.elapsed(start, start + length) <= length
    assert cal.elapsed(start + length, start) == 0


@SETTINGS
@given(cal=calendars(), points=st.lists(st.integers(LOW, HIGH + 200 * DAY), min_size=3, max_size=3))
def test_elapsed_is_additive(cal: BusinessCalendar, points: list[int]) -> None:
    a, b, c = sorted(points)
    assert cal.elapsed(a, c) == cal.elapsed(a, b) + cal.elapsed(b, c)


@SETTINGS
@given(cal=calendars(), start=instants, d1=durations, d2=durations)
def test_add_is_monotonic(cal: BusinessCalendar, start: int, d1: int, d2: int) -> None:
    lo, hi = sorted((d1, d2))
    assert cal.add(start, lo) <= cal.add(start, hi)
    assert cal.add(start, 0) == start


@SETTINGS
@given(cal=calendars(), start=instants)
def test_next_change_is_the_first_change(cal: BusinessCalendar, start: int) -> None:
    change = cal.next_change(start)
    assert change is not None  # random calendars are never open around the clock for good
    assert change > start
    now = cal.is_open(start)
    assert cal.is_open(change) != now
    assert cal.elapsed(start, change) == (change - start if now else 0)


@settings(deadline=None, max_examples=200)
@given(
    zone=st.sampled_from([*ZONES, "America/Sao_Paulo", "Pacific/Apia", "Europe/London"]),
    start=st.integers(0, 100 * 365 * DAY),
    length=st.integers(0, 3 * 365 * DAY),
)
def test_24_7_is_wall_time_in_every_zone(zone: str, start: int, length: int) -> None:
    cal = preset("24/7", zone)
    assert cal.elapsed(start, start + length) == length
    assert cal.add(start, length) == start + length
    # The same week with a holiday far away goes the general way, and still counts wall time.
    general = BusinessCalendar("24/7+", zone, cal.hours, ((date(1960, 1, 1), ()),))
    assert general.elapsed(start, start + length) == length
    assert general.add(start, length) == start + length
