"""Instants and durations as people read them: in a display time zone, in hours and minutes.

Machines get UTC epoch milliseconds (every JSON output keeps them); people get
``Mon 2026-03-02 10:15 CET`` and ``1 h 30 min``. The zone is passed in (the
settings resolve ``SLAFLOW_DISPLAY_TZ``, or the machine's zone), so these
functions stay pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Final

SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS
HOUR_MS: Final = 60 * MINUTE_MS
DAY_MS: Final = 24 * HOUR_MS


def _local(ms: int, zone: tzinfo) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(zone)


def format_when(ms: int, zone: tzinfo, *, seconds: bool = False) -> str:
    """An instant with its day: ``Mon 2026-03-02 10:15 CET`` (``10:15:07`` with ``seconds``)."""
    local = _local(ms, zone)
    return local.strftime(f"%a %Y-%m-%d %H:%M{':%S' if seconds else ''} %Z").rstrip()


def format_clock(ms: int, zone: tzinfo, *, seconds: bool = False) -> str:
    """An instant's time of day: ``10:15 CET`` (``10:15:07 CET`` with ``seconds``)."""
    return _local(ms, zone).strftime(f"%H:%M{':%S' if seconds else ''} %Z").rstrip()


def format_relative(ms: int, reference_ms: int, zone: tzinfo) -> str:
    """An instant near ``reference_ms``: its time of day when on the same local day, else with its day."""
    same_day = _local(ms, zone).date() == _local(reference_ms, zone).date()
    return format_clock(ms, zone) if same_day else format_when(ms, zone)


def format_span(ms: int) -> str:
    """A duration for people, to the minute above an hour and to the second below: ``2 d 3 h``, ``1 h 30 min``,
    ``45 min``, ``20 s``, ``2 min 5 s``; negative durations get a minus sign."""
    if ms < 0:
        return f"-{format_span(-ms)}"
    if ms >= DAY_MS:
        days, rest = divmod(round(ms / HOUR_MS) * HOUR_MS, DAY_MS)
        hours = rest // HOUR_MS
        return f"{days} d {hours} h" if hours else f"{days} d"
    if ms >= HOUR_MS:
        hours, rest = divmod(round(ms / MINUTE_MS) * MINUTE_MS, HOUR_MS)
        if hours == 24:
            return "1 d"
        minutes = rest // MINUTE_MS
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    minutes, rest = divmod(round(ms / SECOND_MS) * SECOND_MS, MINUTE_MS)
    secs = rest // SECOND_MS
    if minutes == 60:
        return "1 h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
