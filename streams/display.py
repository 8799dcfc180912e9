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
    """A duration for people, to the minute from an hour on and to the second below: ``40 h``, ``1 h 30 min``,
    ``45 min``, ``2 min 5 s``, ``20 s``; negative durations get a minus sign. Never in days: a business day is
    not 24 hours, and a target of 40 business hours read as "1 d 16 h" would mislead."""
    if ms < 0:
        return f"-{format_span(-ms)}"
    if ms >= HOUR_MS:
        hours, rest = divmod(round(ms / MINUTE_MS) * MINUTE_MS, HOUR_MS)
        minutes = rest // MINUTE_MS
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    minutes, rest = divmod(round(ms / SECOND_MS) * SECOND_MS, MINUTE_MS)
    if minutes == 60:
        return "1 h"
    secs = rest // SECOND_MS
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def format_count(value: float) -> str:
    """A count with thousands separators: ``1,234``."""
    return f"{value:,.0f}"


def format_share(share: float | None) -> str:
    """A share as a percentage with one decimal: ``40.5 %``; ``-`` when there is none."""
    return "-" if share is None else f"{100 * share:.1f} %"
