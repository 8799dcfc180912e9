"""Instants and durations as people read them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from streams.display import format_clock, format_relative, format_span, format_when

BERLIN = ZoneInfo("Europe/Berlin")
T = 1_772_443_985_170  # 2026-03-02T09:33:05.170Z


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0 s"),
        (20_000, "20 s"),
        (125_400, "2 min 5 s"),
        (45 * 60_000, "45 min"),
        (3_599_600, "1 h"),
        (5_400_000, "1 h 30 min"),
        (40 * 3_600_000, "40 h"),
        (-90_000, "-1 min 30 s"),
    ],
)
def test_durations_in_hours_and_minutes(ms: int, text: str) -> None:
    assert format_span(ms) == text


def test_instants_in_the_display_zone() -> None:
    assert format_when(T, BERLIN) == "Mon 2026-03-02 10:33 CET"
    assert format_when(T, BERLIN, seconds=True) == "Mon 2026-03-02 10:33:05 CET"
    assert format_clock(T, ZoneInfo("UTC")) == "09:33 UTC"
    assert format_relative(T + 3_600_000, T, BERLIN) == "11:33 CET"
    assert format_relative(T + 86_400_000, T, BERLIN) == "Tue 2026-03-03 10:33 CET"
