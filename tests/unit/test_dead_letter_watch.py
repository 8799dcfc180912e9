"""The worker's warning when most of its input is dead-lettered (a documented feeding recipe once lost every
event as 'late' without a word in the log)."""

from __future__ import annotations

from agents.sla import DEAD_LETTER_CHECK_MIN, DEAD_LETTER_WARN_EVERY_S, DEAD_LETTER_WINDOW, DeadLetterWatch
from streams.errors import DeadLetterReason


def test_it_warns_once_with_the_counts_when_most_input_is_late() -> None:
    watch = DeadLetterWatch()
    for _ in range(DEAD_LETTER_CHECK_MIN - 1):
        watch.count(DeadLetterReason.LATE)
    assert watch.verdict(0.0) is None  # too few to judge
    watch.count(DeadLetterReason.LATE)
    warning = watch.verdict(1.0)
    assert warning is not None and f"{DEAD_LETTER_CHECK_MIN} of the last {DEAD_LETTER_CHECK_MIN}" in warning
    assert "late 20" in warning and "SLAFLOW_TICK_INTERVAL=0" in warning and "--start now" in warning
    for _ in range(100):
        watch.count(DeadLetterReason.LATE)
    assert watch.verdict(2.0) is None  # not again within the hour
    for _ in range(100):
        watch.count(DeadLetterReason.LATE)
    assert watch.verdict(2.0 + DEAD_LETTER_WARN_EVERY_S) is not None


def test_a_healthy_stream_never_warns_and_a_stream_that_turns_bad_is_noticed() -> None:
    watch = DeadLetterWatch()
    for n in range(DEAD_LETTER_WINDOW):
        watch.count(DeadLetterReason.KEY_MISMATCH if n % 3 == 0 else None)
        assert watch.verdict(float(n)) is None
    for _ in range(DEAD_LETTER_CHECK_MIN):
        watch.count(DeadLetterReason.UNDECODABLE)
    warning = watch.verdict(5000.0)
    assert warning is not None and "undecodable" in warning and "late" not in warning.split("(")[1]
