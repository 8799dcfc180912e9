"""The SLA agent's batch handling around rebalances (:class:`agents.sla.SlaProcessor`), on stand-ins of the app."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from agents.sla import SlaProcessor


async def _nothing() -> None:
    pass


def read_in(generation: int) -> Any:
    """An event whose message was read in consumer generation ``generation``."""
    return SimpleNamespace(message=SimpleNamespace(generation_id=generation))


def test_messages_read_before_a_revocation_are_left_to_be_read_again() -> None:
    app: Any = SimpleNamespace(consumer_generation_id=5, consumer=SimpleNamespace(commit=_nothing))
    none: Any = None
    processor = SlaProcessor(app, none, none, none, none, exactly_once=False, commit_interval_s=1.0,
                             max_cached_records=10)  # fmt: skip
    before, during, after = read_in(5), read_in(5), read_in(6)
    assert processor._of_current_assignment([before]) == [before]
    asyncio.run(processor.on_partitions_revoked())
    assert processor._of_current_assignment([before, during]) == []  # handed over after the revocation's commit
    app.consumer_generation_id = 6
    assert processor._of_current_assignment([before, after]) == [after]  # mixed in one batch after the assignment
