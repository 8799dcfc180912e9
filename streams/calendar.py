"""Business calendars: when the SLA clock runs, to the millisecond.

A KPI target such as "1 business day" or "2 hours on 24/5" is measured on a
:class:`BusinessCalendar`: weekly working hours in local wall-clock time, in
one IANA time zone, minus holidays. The SLA core asks two questions of it:

* :meth:`BusinessCalendar.add`: when is the deadline, if ``business_ms`` of
  business time must elapse from ``start_ms``?
* :meth:`BusinessCalendar.elapsed`: how much business time lies between two
  instants (for the measured durations written to ClickHouse)?

Every instant is an ``int`` of UTC epoch **milliseconds** and every duration an
``int`` of milliseconds; working hours are minutes of local wall-clock time.

Semantics, chosen to be deterministic on every day of the year:

* An interval belongs to the local date it starts on. ``22:00-06:00`` on
  Friday is open from Friday 22:00 to Saturday 06:00 local; a holiday on the
  Saturday does not cut it (it only replaces the intervals *starting* on the
  Saturday), a holiday on the Friday removes it. ``00:00-24:00`` is a whole day.
* A holiday date either closes the whole day or carries its own intervals,
  which replace that weekday's hours for that date only.
* A local bound (date + wall-clock time) is resolved to the **first UTC
  instant at which the local clock reads that time or later**. For a time that
  exists this is zoneinfo's ``fold=0`` (the first of two occurrences when the
  clock falls back, so the repeated hour lies inside an interval that spans
  it). For a time in a spring-forward gap it is the instant of the transition,
  so an interval never counts the skipped wall time: ``01:00-02:30`` on the
  Berlin spring-forward day is 1 h long and ``02:30-05:00`` is 2 h.
  Resolution is monotonic, so consecutive local days tile the UTC time line
  exactly and a 24/7 calendar counts exactly wall time (a 23 h day in March,
  a 25 h day in October, in any zone).
* The open time is the union of all intervals: intervals that touch or overlap
  (for example a midnight-crossing interval running into the next day's hours)
  are counted once.

Speed: whole weeks are skipped arithmetically with the weekly business total;
only weeks that contain a holiday or a UTC-offset change (found per time zone
by sampling the offset every 6 hours, cached) are summed day by day. Per local
date UTC intervals are cached on the instance, so repeated calls cost a few
dictionary look-ups.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.errors import ConfigError, Problem

__all__ = [
    "PRESET_NAMES",
    "BusinessCalendar",
    "CalendarError",
    "Interval",
    "parse_calendar",
    "parse_interval",
    "preset",
]

MS_PER_MINUTE: Final = 60_000
MINUTES_PER_DAY: Final = 1440
_MINUTES_PER_WEEK: Final = 7 * MINUTES_PER_DAY
_SECONDS_PER_DAY: Final = 86_400
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
# date.fromordinal(1) (0001-01-01) is a Monday: week w covers ordinals 7w+1 .. 7w+7.
_BLOCK_WEEKS: Final = 64
_OFFSET_SAMPLE_S: Final = 6 * 3600
# Supported instants: years 100 to 9899 UTC, so that every cached block stays inside datetime's range.
_MIN_MS: Final = (date(100, 1, 1).toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY * 1000
_MAX_MS: Final = (date(9900, 1, 1).toordinal() - _EPOCH_ORDINAL) * _SECONDS_PER_DAY * 1000
_MAX_WEEK: Final = (date(9900, 1, 1).toordinal() - 1) // 7
_CACHE_LIMIT: Final = 50_000

DAY_NAMES: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class CalendarError(ConfigError, ValueError):
    """A calendar that cannot be built, or a question it cannot answer (negative duration, instant out of range).

    Not retriable: the same input fails the same way.
    """


class Interval(NamedTuple):
    """Working hours of one local date, in minutes after that date's local midnight.

    ``start`` is in ``[0, 1440)``; ``end`` is in ``(start, start + 1440]``. An ``end`` past 1440 means the interval
    crosses midnight and ends on the next local date: ``22:00-06:00`` is ``Interval(1320, 1800)``. The whole day is
    ``Interval(0, 1440)``.
    """

    start: int
    end: int

    def __str__(self) -> str:
        return f"{_hhmm(self.start)}-{_hhmm(self.end)}"


def _hhmm(minute: int) -> str:
    if minute != MINUTES_PER_DAY:
        minute %= MINUTES_PER_DAY
    return f"{minute // 60:02d}:{minute % 60:02d}"


_INTERVAL_RE: Final = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_INTERVAL_EXPECTED: Final = 'expected "HH:MM-HH:MM" (24-hour local time)'


def parse_interval(text: str) -> Interval:
    """Parse ``"HH:MM-HH:MM"`` (24-hour local time) into an :class:`Interval`.

    An end earlier than the start crosses midnight (``"22:00-06:00"``); ``"24:00"`` is allowed as an end only.
    Raises :class:`CalendarError` with a message suitable for a :class:`Problem`.
    """
    match = _INTERVAL_RE.match(text)
    if match is None:
        raise CalendarError(f"{_INTERVAL_EXPECTED}, got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 != 0):
        raise CalendarError(f"{_INTERVAL_EXPECTED}, got {text!r}")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end == start:
        raise CalendarError(f'{text!r} is empty; write "00:00-24:00" for a whole day')
    if end < start:
        end += MINUTES_PER_DAY
    return Interval(start, end)


def _interval_error(interval: Interval) -> str | None:
    start, end = interval
    if not isinstance(start, int) or not isinstance(end, int):
        return f"interval bounds must be int minutes, got {interval!r}"
    if not 0 <= start < MINUTES_PER_DAY:
        return f"interval start must be in [0, 1440) minutes, got {interval!r}"
    if not start < end <= start + MINUTES_PER_DAY:
        return f"interval end must be after its start and at most 24 h later, got {interval!r}"
    return None


def _overlaps(intervals: Sequence[Interval]) -> list[tuple[int, int]]:
    """Index pairs ``(earlier, later)`` of intervals of one date that overlap (touching is fine)."""
    found = []
    for j, b in enumerate(intervals):
        for i in range(j):
            a = intervals[i]
            if a.start < b.end and b.start < a.end:
                found.append((i, j))
    return found


def _normalise_day(raw: Iterable[Sequence[int]], what: str) -> tuple[Interval, ...]:
    day = []
    for item in raw:
        if len(item) != 2:
            raise CalendarError(f"{what}: an interval is (start, end) in minutes, got {item!r}")
        interval = Interval(item[0], item[1])
        error = _interval_error(interval)
        if error is not None:
            raise CalendarError(f"{what}: {error}")
        day.append(interval)
    day.sort()
    clashes = _overlaps(day)
    if clashes:
        i, j = clashes[0]
        raise CalendarError(f"{what}: intervals {day[i]} and {day[j]} overlap")
    return tuple(day)


def _load_zone(key: object) -> ZoneInfo:
    """The ZoneInfo for an IANA key; :class:`CalendarError` naming the value if there is none."""
    if not isinstance(key, str) or key == "localtime":
        raise CalendarError(f'unknown time zone {key!r} (expected an IANA name such as "Europe/Berlin")')
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise CalendarError(f'unknown time zone {key!r} (expected an IANA name such as "Europe/Berlin")') from exc


# ---------------------------------------------------------------------------------------------------------------
# Local wall clock <-> UTC


def _offset_s(moment: datetime) -> int:
    offset = moment.utcoffset()
    if offset is None:  # pragma: no cover - ZoneInfo always answers
        raise CalendarError(f"no UTC offset for {moment!r}")
    return offset // timedelta(seconds=1)


def _wall_s(zone: ZoneInfo, utc_s: int) -> int:
    """Local wall-clock reading at UTC second ``utc_s``, as seconds since the local 1970-01-01 00:00."""
    return utc_s + _offset_s(datetime.fromtimestamp(utc_s, zone))


@lru_cache(maxsize=1 << 16)
def _resolve(zone_key: str, ordinal: int, minute: int) -> int:
    """UTC ms of the first instant at which the local clock reads (``ordinal``, ``minute``) or later.

    ``ordinal`` is a proleptic Gregorian date ordinal, ``minute`` in ``[0, 1440)``. Equal to zoneinfo's ``fold=0``
    for times that exist; the instant of the transition for times inside a spring-forward gap. Monotonic in the
    local time, which is what makes consecutive days tile the time line.
    """
    zone = ZoneInfo(zone_key)
    naive = (ordinal - _EPOCH_ORDINAL) * _SECONDS_PER_DAY + minute * 60
    local = datetime.fromordinal(ordinal).replace(hour=minute // 60, minute=minute % 60, tzinfo=zone)
    first = naive - _offset_s(local)
    if _wall_s(zone, first) == naive:
        return first * 1000
    # In a gap: the transition lies between the two candidate instants; find the first second reading >= naive.
    other = naive - _offset_s(local.replace(fold=1))
    lo, hi = min(first, other), max(first, other)
    if _wall_s(zone, hi) < naive or _wall_s(zone, lo) >= naive:  # pragma: no cover - not a simple gap
        return first * 1000
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _wall_s(zone, mid) >= naive:
            hi = mid
        else:
            lo = mid
    return hi * 1000


def _local_ms(zone_key: str, ordinal: int, minute: int) -> int:
    """:func:`_resolve` for a minute that may run past the date (``minute`` in ``[0, 2880]``)."""
    return _resolve(zone_key, ordinal + minute // MINUTES_PER_DAY, minute % MINUTES_PER_DAY)


@lru_cache(maxsize=4096)
def _offset_change_weeks(zone_key: str, block: int) -> frozenset[int]:
    """Weeks of ``block`` whose local days could see a UTC-offset change (DST or otherwise).

    The offset is sampled every 6 hours (tzdata has no pair of transitions closer than that); each change marks the
    weeks of the local dates around it, one day of margin on each side (for intervals crossing midnight). Marking too
    many weeks only costs speed, never correctness.
    """
    zone = ZoneInfo(zone_key)
    first_week = block * _BLOCK_WEEKS
    first_ord = first_week * 7 + 1
    lo = (first_ord - 3 - _EPOCH_ORDINAL) * _SECONDS_PER_DAY
    hi = (first_ord + _BLOCK_WEEKS * 7 + 3 - _EPOCH_ORDINAL) * _SECONDS_PER_DAY
    weeks: set[int] = set()
    u = lo
    offset = _offset_s(datetime.fromtimestamp(u, zone))
    while u < hi:
        v = u + _OFFSET_SAMPLE_S
        next_offset = _offset_s(datetime.fromtimestamp(v, zone))
        if next_offset != offset:
            d1 = (u + offset) // _SECONDS_PER_DAY + _EPOCH_ORDINAL
            d2 = (v + next_offset) // _SECONDS_PER_DAY + _EPOCH_ORDINAL
            for ordinal in range(min(d1, d2) - 1, max(d1, d2) + 2):
                weeks.add((ordinal - 1) // 7)
        u, offset = v, next_offset
    return frozenset(w for w in weeks if first_week <= w < first_week + _BLOCK_WEEKS)


# ---------------------------------------------------------------------------------------------------------------
# Cached per-day, per-week and per-block data


class _Day:
    """One local date as UTC: its window ``[start, end)`` and the merged open spans inside it (ms)."""

    __slots__ = ("end", "spans", "start", "total")

    def __init__(self, start: int, end: int, spans: tuple[tuple[int, int], ...]) -> None:
        self.start = start
        self.end = end
        self.spans = spans
        self.total = sum(b - a for a, b in spans)

    def before(self, t: int) -> int:
        """Business ms in ``[self.start, t)``."""
        done = 0
        for a, b in self.spans:
            if t <= a:
                break
            done += (b if b < t else t) - a
        return done


class _Week:
    """Seven local dates from a Monday: cumulative business ms at each day start (``cum[0] == 0``)."""

    __slots__ = ("cum", "days", "total")

    def __init__(self, days: tuple[_Day, ...]) -> None:
        self.days = days
        cum = [0]
        for day in days:
            cum.append(cum[-1] + day.total)
        self.cum = tuple(cum)
        self.total = cum[-1]

    def locate(self, x: int) -> int:
        """Earliest instant at which ``x`` > 0 business ms have elapsed since the week's start."""
        k = bisect_left(self.cum, x) - 1
        x -= self.cum[k]
        for a, b in self.days[k].spans:
            if x <= b - a:
                return a + x
            x -= b - a
        raise AssertionError("week total and day spans disagree")  # pragma: no cover


class _Block:
    """Weeks of one block of 64 whose business total differs from the regular weekly total, with prefix sums."""

    __slots__ = ("deltas", "prefix", "weeks")

    def __init__(self, weeks: tuple[int, ...], deltas: tuple[int, ...]) -> None:
        self.weeks = weeks
        self.deltas = deltas
        prefix = [0]
        for delta in deltas:
            prefix.append(prefix[-1] + delta)
        self.prefix = tuple(prefix)


# ---------------------------------------------------------------------------------------------------------------
# The calendar


@dataclass(frozen=True)
class BusinessCalendar:
    """Weekly working hours in one time zone, minus holidays; immutable, picklable, safe to share.

    ``hours`` has seven entries, Monday first, each the sorted, non-overlapping :class:`Interval` s starting on that
    weekday (local wall-clock minutes). ``holidays`` pairs a local date with the intervals that replace its weekday's
    hours (an empty tuple closes the whole day). Constructor arguments are validated and normalised (sorted); a week
    without any working time is rejected, so :meth:`add` always terminates. See the module docstring for DST
    semantics.
    """

    name: str
    timezone: str
    hours: tuple[tuple[Interval, ...], ...]
    holidays: tuple[tuple[date, tuple[Interval, ...]], ...] = ()

    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _week_ms: int = field(init=False, repr=False, compare=False)
    _always_open: bool = field(init=False, repr=False, compare=False)
    _holiday_map: dict[int, tuple[Interval, ...]] = field(init=False, repr=False, compare=False)
    _holiday_weeks: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _last_holiday: int = field(init=False, repr=False, compare=False)
    _days: dict[int, _Day] = field(init=False, repr=False, compare=False)
    _weeks: dict[int, _Week] = field(init=False, repr=False, compare=False)
    _blocks: dict[int, _Block] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        zone = _load_zone(self.timezone)
        if len(self.hours) != 7:
            raise CalendarError(f"calendar {self.name!r}: hours needs 7 weekdays (Monday first), got {len(self.hours)}")
        hours = tuple(
            _normalise_day(day, f"calendar {self.name!r}, {DAY_NAMES[k]}") for k, day in enumerate(self.hours)
        )
        holiday_map: dict[int, tuple[Interval, ...]] = {}
        for entry in self.holidays:
            day_date, intervals = entry
            if not isinstance(day_date, date) or isinstance(day_date, datetime):
                raise CalendarError(f"calendar {self.name!r}: a holiday is a datetime.date, got {day_date!r}")
            if day_date.toordinal() in holiday_map:
                raise CalendarError(f"calendar {self.name!r}: holiday {day_date} given twice")
            holiday_map[day_date.toordinal()] = _normalise_day(intervals, f"calendar {self.name!r}, {day_date}")
        week_minutes = _weekly_open_minutes(hours)
        if week_minutes == 0:
            raise CalendarError(f"calendar {self.name!r} has no working hours in the week")
        holiday_weeks = sorted({(o - 1) // 7 for o in holiday_map} | {o // 7 for o in holiday_map})
        set_ = object.__setattr__
        set_(self, "hours", hours)
        set_(self, "holidays", tuple((date.fromordinal(o), holiday_map[o]) for o in sorted(holiday_map)))
        set_(self, "_zone", zone)
        set_(self, "_week_ms", week_minutes * MS_PER_MINUTE)
        set_(self, "_always_open", week_minutes == _MINUTES_PER_WEEK and not holiday_map)
        set_(self, "_holiday_map", holiday_map)
        set_(self, "_holiday_weeks", tuple(holiday_weeks))  # a holiday's week, and the next (Sunday spill)
        set_(self, "_last_holiday", max(holiday_map, default=0))
        set_(self, "_days", {})
        set_(self, "_weeks", {})
        set_(self, "_blocks", {})

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the public fields: caches are not pickled, and the constructor re-validates.
        return (type(self), (self.name, self.timezone, self.hours, self.holidays))

    @property
    def week_ms(self) -> int:
        """Business ms in a regular week (no holiday, no UTC-offset change)."""
        return self._week_ms

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The intervals starting on local date ``day``: its holiday hours if it is a holiday, else its weekday's."""
        return self._hours_for(day.toordinal())

    # -- public operations -------------------------------------------------------------------------------------

    def add(self, start_ms: int, business_ms: int) -> int:
        """Earliest UTC ms at which ``business_ms`` of business time has elapsed counting from ``start_ms``.

        Outside working hours the clock starts at the next opening; ``add(s, 0) == s``. The result is the end of
        the last business millisecond counted, so a deadline that fills an interval exactly lands on its closing
        instant (8 h from 09:00 on 09:00-17:00 is 17:00 that day, not 09:00 the next).
        """
        if business_ms < 0:
            raise CalendarError(f"business_ms must be >= 0, got {business_ms}")
        if business_ms == 0:
            return start_ms
        self._check(start_ms)
        if self._always_open:
            return self._checked(start_ms + business_ms)
        ordinal = self._ordinal_of(start_ms)
        w, k = divmod(ordinal - 1, 7)
        week = self._week(w)
        done = week.cum[k] + week.days[k].before(start_ms)
        remaining = business_ms
        if remaining <= week.total - done:
            return week.locate(done + remaining)
        remaining -= week.total - done
        w += 1
        regular = self._week_ms
        while w <= _MAX_WEEK:
            block_end = (w // _BLOCK_WEEKS + 1) * _BLOCK_WEEKS
            block = self._block(w // _BLOCK_WEEKS)
            for j in range(bisect_left(block.weeks, w), len(block.weeks)):
                odd = block.weeks[j]
                if remaining <= (odd - w) * regular:
                    return self._locate_regular(w, remaining)
                remaining -= (odd - w) * regular
                total = regular + block.deltas[j]
                if remaining <= total:
                    return self._week(odd).locate(remaining)
                remaining -= total
                w = odd + 1
            if remaining <= (block_end - w) * regular:
                return self._locate_regular(w, remaining)
            remaining -= (block_end - w) * regular
            w = block_end
        raise CalendarError(f"calendar {self.name!r}: deadline falls after the year 9899")

    def elapsed(self, start_ms: int, end_ms: int) -> int:
        """Business ms in ``[start_ms, end_ms)``; 0 if ``end_ms <= start_ms``."""
        if end_ms <= start_ms:
            return 0
        self._check(start_ms)
        self._check(end_ms)
        if self._always_open:
            return end_ms - start_ms
        ws, ks = divmod(self._ordinal_of(start_ms) - 1, 7)
        we, ke = divmod(self._ordinal_of(end_ms) - 1, 7)
        first = self._week(ws)
        done = first.cum[ks] + first.days[ks].before(start_ms)
        if ws == we:
            return first.cum[ke] + first.days[ke].before(end_ms) - done
        last = self._week(we)
        return first.total - done + self._sum_weeks(ws + 1, we) + last.cum[ke] + last.days[ke].before(end_ms)

    def is_open(self, at_ms: int) -> bool:
        """Whether the clock runs at ``at_ms`` (an interval includes its opening instant, not its closing one)."""
        self._check(at_ms)
        if self._always_open:
            return True
        return any(a <= at_ms < b for a, b in self._day(self._ordinal_of(at_ms)).spans)

    def next_change(self, at_ms: int) -> int | None:
        """The next instant after ``at_ms`` at which the calendar opens or closes; ``None`` if it never will.

        ``None`` only happens for a calendar open around the clock (24/7) once its last holiday is past.
        """
        self._check(at_ms)
        if self._always_open:
            return None
        ordinal = self._ordinal_of(at_ms)
        around_the_clock = self._week_ms == _MINUTES_PER_WEEK * MS_PER_MINUTE
        if around_the_clock and ordinal > self._last_holiday + 1:
            return None  # no holiday left to interrupt it (a holiday also reaches into the next day's window)
        horizon = max(ordinal, self._last_holiday) + 15
        run_end: int | None = None
        while True:
            for a, b in self._day(ordinal).spans:
                if b <= at_ms:
                    continue
                if run_end is None:
                    if a > at_ms:
                        return a
                    run_end = b
                elif a == run_end:
                    run_end = b
                else:
                    return run_end
            ordinal += 1
            if ordinal > horizon:
                if around_the_clock:
                    return None  # past the last holiday, open around the clock
                if ordinal > horizon + 14:  # pragma: no cover - a regular week always opens and closes
                    raise CalendarError(f"calendar {self.name!r}: no opening or closing found")

    # -- internals ---------------------------------------------------------------------------------------------

    def _check(self, t: int) -> None:
        if not _MIN_MS <= t < _MAX_MS:
            raise CalendarError(f"instant {t} ms is outside the supported years 100 to 9899")

    def _checked(self, t: int) -> int:
        self._check(t)
        return t

    def _hours_for(self, ordinal: int) -> tuple[Interval, ...]:
        holiday = self._holiday_map.get(ordinal)
        if holiday is not None:
            return holiday
        return self.hours[(ordinal - 1) % 7]

    def _ordinal_of(self, t: int) -> int:
        """The local date (ordinal) whose UTC window ``[start, end)`` holds ``t``."""
        ordinal = datetime.fromtimestamp(t // 1000, self._zone).toordinal()
        day = self._day(ordinal)
        # The wall-clock date and the window may disagree when the clock falls back across midnight.
        while t < day.start:
            ordinal -= 1
            day = self._day(ordinal)
        while t >= day.end:
            ordinal += 1
            day = self._day(ordinal)
        return ordinal

    def _day(self, ordinal: int) -> _Day:
        day = self._days.get(ordinal)
        if day is None:
            if len(self._days) >= _CACHE_LIMIT:
                self._days.clear()
            key = self.timezone
            start = _resolve(key, ordinal, 0)
            end = _resolve(key, ordinal + 1, 0)
            raw = []
            for source in (ordinal - 1, ordinal):
                for interval in self._hours_for(source):
                    a = max(_local_ms(key, source, interval.start), start)
                    b = min(_local_ms(key, source, interval.end), end)
                    if a < b:
                        raw.append((a, b))
            raw.sort()
            merged: list[tuple[int, int]] = []
            for a, b in raw:
                if merged and a <= merged[-1][1]:
                    if b > merged[-1][1]:
                        merged[-1] = (merged[-1][0], b)
                else:
                    merged.append((a, b))
            day = _Day(start, end, tuple(merged))
            self._days[ordinal] = day
        return day

    def _week(self, w: int) -> _Week:
        week = self._weeks.get(w)
        if week is None:
            if len(self._weeks) >= _CACHE_LIMIT // 7:
                self._weeks.clear()
            week = _Week(tuple(self._day(7 * w + 1 + k) for k in range(7)))
            self._weeks[w] = week
        return week

    def _block(self, b: int) -> _Block:
        block = self._blocks.get(b)
        if block is None:
            if len(self._blocks) >= _CACHE_LIMIT // 50:
                self._blocks.clear()
            first, stop = b * _BLOCK_WEEKS, (b + 1) * _BLOCK_WEEKS
            holiday_weeks = self._holiday_weeks[
                bisect_left(self._holiday_weeks, first) : bisect_left(self._holiday_weeks, stop)
            ]
            weeks, deltas = [], []
            for w in sorted(_offset_change_weeks(self.timezone, b).union(holiday_weeks)):
                delta = self._week(w).total - self._week_ms
                if delta:
                    weeks.append(w)
                    deltas.append(delta)
            block = _Block(tuple(weeks), tuple(deltas))
            self._blocks[b] = block
        return block

    def _sum_weeks(self, w1: int, w2: int) -> int:
        """Business ms in the whole weeks ``w1 .. w2 - 1``."""
        total = (w2 - w1) * self._week_ms
        b = w1 // _BLOCK_WEEKS
        while b * _BLOCK_WEEKS < w2:
            block = self._block(b)
            if block.weeks:
                i = bisect_left(block.weeks, w1)
                j = bisect_left(block.weeks, w2)
                total += block.prefix[j] - block.prefix[i]
            b += 1
        return total

    def _locate_regular(self, w: int, remaining: int) -> int:
        """Target inside the run of regular weeks starting at week ``w``, ``remaining`` > 0 ms into it."""
        skip = (remaining - 1) // self._week_ms
        return self._week(w + skip).locate(remaining - skip * self._week_ms)


def _weekly_open_minutes(hours: Sequence[Sequence[Interval]]) -> int:
    """Minutes in the union of the weekly intervals, on a circular week (Sunday's spill wraps to Monday)."""
    pieces: list[tuple[int, int]] = []
    for k, day in enumerate(hours):
        for start, end in day:
            a, b = k * MINUTES_PER_DAY + start, k * MINUTES_PER_DAY + end
            if b > _MINUTES_PER_WEEK:
                pieces.append((a, _MINUTES_PER_WEEK))
                pieces.append((0, b - _MINUTES_PER_WEEK))
            else:
                pieces.append((a, b))
    pieces.sort()
    total, reach = 0, 0
    for a, b in pieces:
        lo = max(a, reach)
        if b > lo:
            total += b - lo
            reach = b
    return total


# ---------------------------------------------------------------------------------------------------------------
# Presets

_WHOLE_DAY: Final = (Interval(0, MINUTES_PER_DAY),)
_NINE_TO_FIVE: Final = (Interval(9 * 60, 17 * 60),)
_PRESET_HOURS: Final[Mapping[str, tuple[tuple[Interval, ...], ...]]] = {
    "24/7": (_WHOLE_DAY,) * 7,
    "24/5": (_WHOLE_DAY,) * 5 + ((), ()),
    "8/5": (_NINE_TO_FIVE,) * 5 + ((), ()),
}
PRESET_NAMES: Final = tuple(_PRESET_HOURS)


def preset(name: str, timezone: str = "UTC") -> BusinessCalendar:
    """A preset calendar named ``name``, in local time of ``timezone``.

    ``"24/7"``: always open. ``"24/5"``: Monday 00:00 to Friday 24:00. ``"8/5"``: Monday to Friday 09:00-17:00.
    """
    hours = _PRESET_HOURS.get(name)
    if hours is None:
        raise CalendarError(f"unknown preset {name!r} (known: {', '.join(map(repr, PRESET_NAMES))})")
    return BusinessCalendar(name=name, timezone=timezone, hours=hours)


# ---------------------------------------------------------------------------------------------------------------
# Parsing from YAML-shaped data

_CALENDAR_KEYS: Final = ("preset", "timezone", "hours", "holidays")
_HOLIDAY_KEYS: Final = ("date", "hours")
_DATE_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class _Parser:
    """Collects every problem of one calendar definition instead of stopping at the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def intervals(self, value: object, path: str) -> list[tuple[Interval, str]] | None:
        """A list of "HH:MM-HH:MM" strings; each parsed interval with its own path. Overlaps are problems."""
        if not isinstance(value, list):
            self.add(path, f'expected a list of "HH:MM-HH:MM" intervals, got {value!r}')
            return None
        parsed: list[tuple[Interval, str]] = []
        texts: list[str] = []
        ok = True
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            if not isinstance(item, str):
                self.add(where, f"{_INTERVAL_EXPECTED}, got {item!r}")
                ok = False
                continue
            try:
                parsed.append((parse_interval(item), where))
                texts.append(item)
            except CalendarError as exc:
                self.add(where, str(exc))
                ok = False
        for i, j in _overlaps([interval for interval, _ in parsed]):
            self.add(parsed[j][1], f"{texts[j]!r} overlaps {texts[i]!r} ({parsed[i][1]})")
            ok = False
        return parsed if ok else None

    def day_key(self, key: object) -> list[int] | None:
        """``mon`` .. ``sun``, or a range such as ``mon-fri`` (wrapping ranges such as ``sun-thu`` are allowed)."""
        if not isinstance(key, str):
            return None
        parts = key.strip().lower().split("-")
        if len(parts) == 1 and parts[0] in DAY_NAMES:
            return [DAY_NAMES.index(parts[0])]
        if len(parts) == 2 and parts[0] in DAY_NAMES and parts[1] in DAY_NAMES:
            first, last = DAY_NAMES.index(parts[0]), DAY_NAMES.index(parts[1])
            return [(first + i) % 7 for i in range((last - first) % 7 + 1)]
        return None

    def week(self, value: object, path: str) -> tuple[tuple[Interval, ...], ...] | None:
        if not isinstance(value, Mapping):
            self.add(path, f"expected a mapping of weekdays (mon .. sun, or ranges such as mon-fri), got {value!r}")
            return None
        days: list[list[tuple[Interval, str]]] = [[] for _ in range(7)]
        given_by: dict[int, str] = {}
        ok = True
        for key, item in value.items():
            where = f"{path}.{key}"
            weekdays = self.day_key(key)
            if weekdays is None:
                self.add(
                    where,
                    f"unknown weekday {key!r}; expected mon, tue, wed, thu, fri, sat, sun or a range such as mon-fri",
                )
                ok = False
                continue
            parsed = self.intervals(item, where)
            ok = ok and parsed is not None
            for k in weekdays:
                if k in given_by:
                    self.add(where, f"{DAY_NAMES[k]} is already given by {given_by[k]!r}")
                    ok = False
                    continue
                given_by[k] = str(key)
                days[k] = parsed or []
        if not ok:
            return None
        # A midnight-crossing interval running into the next weekday's hours is almost surely a typo.
        for k in range(7):
            for interval, where in days[k]:
                spill = interval.end - MINUTES_PER_DAY
                for other, other_where in days[(k + 1) % 7]:
                    if other.start < spill:
                        self.add(other_where, f"'{other}' overlaps '{interval}' ({where}), which crosses midnight")
                        ok = False
        if not ok:
            return None
        if not any(days):
            self.add(path, "no working hours in the week; a calendar must be open some time every week")
            return None
        return tuple(tuple(interval for interval, _ in day) for day in days)

    def a_date(self, value: object, path: str) -> date | None:
        if isinstance(value, datetime):
            self.add(path, f"expected a date (YYYY-MM-DD), got a date and time {value.isoformat()!r}")
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str) and _DATE_RE.match(value.strip()):
            try:
                return date.fromisoformat(value.strip())
            except ValueError as exc:  # well formed, but no such day
                self.add(path, f"expected a date (YYYY-MM-DD) that exists, got {value!r} ({exc})")
                return None
        self.add(path, f"expected a date (YYYY-MM-DD), got {value!r}")
        return None

    def holidays(self, value: object, path: str) -> tuple[tuple[date, tuple[Interval, ...]], ...] | None:
        if not isinstance(value, list):
            self.add(path, f"expected a list of dates or {{date, hours}} mappings, got {value!r}")
            return None
        found: dict[date, str] = {}
        result: list[tuple[date, tuple[Interval, ...]]] = []
        ok = True
        for i, item in enumerate(value):
            where = f"{path}[{i}]"
            hours: tuple[Interval, ...] = ()
            if isinstance(item, Mapping):
                for key in item:
                    if key not in _HOLIDAY_KEYS:
                        self.add(f"{where}.{key}", f"unknown key {key!r}; expected date, hours")
                        ok = False
                if "date" not in item:
                    self.add(f"{where}.date", "required: the holiday's local date (YYYY-MM-DD)")
                    ok = False
                    day = None
                else:
                    day = self.a_date(item["date"], f"{where}.date")
                if "hours" in item:
                    parsed = self.intervals(item["hours"], f"{where}.hours")
                    if parsed is None:
                        ok = False
                    else:
                        hours = tuple(interval for interval, _ in parsed)
            else:
                day = self.a_date(item, where)
            if day is None:
                ok = False
                continue
            if day in found:
                self.add(where, f"{day.isoformat()} is already listed at {found[day]}")
                ok = False
                continue
            found[day] = where
            result.append((day, hours))
        return tuple(result) if ok else None


def parse_calendar(name: str, data: object, path: str, problems: list[Problem]) -> BusinessCalendar | None:
    """Build the calendar ``name`` from YAML-shaped ``data``, or report every problem in it.

    ``path`` is the dotted location of ``data`` in its file (``calendars.office``); each problem found is appended
    to ``problems`` with its own path (``calendars.office.hours.mon[1]``), and parsing goes on so that the user sees
    all of them at once. Returns ``None`` if this calendar had any problem. Accepted shape::

        {preset: "24/7" | "24/5" | "8/5", timezone: <IANA name, default UTC>, holidays: [...]}
        {timezone: <IANA name>, hours: {mon..sun or ranges like mon-fri: ["HH:MM-HH:MM", ...]}, holidays: [...]}

    A holiday is a date (``2026-12-25``, as ``datetime.date`` or string), closed all day, or
    ``{date: 2026-12-24, hours: ["08:00-12:00"]}`` whose hours replace that weekday's hours on that date.
    """
    parser = _Parser(problems)
    count = len(problems)
    if not isinstance(data, Mapping):
        parser.add(path, f"expected a mapping with preset or timezone and hours, got {data!r}")
        return None
    for key in data:
        if key not in _CALENDAR_KEYS:
            parser.add(f"{path}.{key}", f"unknown key {key!r}; expected one of: {', '.join(_CALENDAR_KEYS)}")

    preset_hours: tuple[tuple[Interval, ...], ...] | None = None
    if "preset" in data:
        value = data["preset"]
        hours_of_preset = _PRESET_HOURS.get(value) if isinstance(value, str) else None
        if hours_of_preset is None:
            parser.add(f"{path}.preset", f"unknown preset {value!r} (known: {', '.join(map(repr, PRESET_NAMES))})")
        else:
            preset_hours = hours_of_preset
        if "hours" in data:
            parser.add(f"{path}.hours", 'hours cannot be combined with a preset; drop "preset" or "hours"')

    timezone = "UTC"
    if "timezone" in data:
        try:
            _load_zone(data["timezone"])
            timezone = data["timezone"]
        except CalendarError as exc:
            parser.add(f"{path}.timezone", str(exc))
    elif "preset" not in data:
        parser.add(f"{path}.timezone", "required when no preset is given (an IANA name such as Europe/Berlin)")

    hours: tuple[tuple[Interval, ...], ...] | None = preset_hours
    if "preset" not in data:
        if "hours" in data:
            hours = parser.week(data["hours"], f"{path}.hours")
        else:
            parser.add(f"{path}.hours", "required when no preset is given (or give a preset: 24/7, 24/5, 8/5)")

    holidays: tuple[tuple[date, tuple[Interval, ...]], ...] | None = ()
    if "holidays" in data:
        holidays = parser.holidays(data["holidays"], f"{path}.holidays")

    if len(problems) > count or hours is None or holidays is None:
        return None
    try:
        return BusinessCalendar(name=name, timezone=timezone, hours=hours, holidays=holidays)
    except CalendarError as exc:  # pragma: no cover - the checks above cover the constructor's
        parser.add(path, str(exc))
        return None
