"""The corrections to Faust that exactly-once needs (:mod:`agents.faust_fixes`), on stand-ins of the Faust objects
they correct (no broker)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from types import SimpleNamespace
from typing import Any

from faust.tables.recovery import Recovery
from faust.types import TP
from mode.utils.logging import CompositeLogger
from mode.utils.queues import FlowControlEvent, FlowControlQueue

from agents import faust_fixes

INPUT = TP("case-events", 0)
CHANGELOG = TP("records-changelog", 0)


class Consumer:
    """A consumer whose fetcher delivers the next record into ``queue`` as soon as a partition is resumed: the
    record at the position it holds then (``assigned``: where it started reading at assignment; ``committed``:
    after the seek to the committed offset)."""

    def __init__(self, queue: FlowControlQueue[str]) -> None:
        self.queue = queue
        self.paused = {INPUT, CHANGELOG}
        self.position = "assigned"
        self.seeks_while_reading: list[bool] = []

    def assignment(self) -> set[TP]:
        return {INPUT, CHANGELOG}

    async def perform_seek(self) -> None:
        self.seeks_while_reading.append(INPUT not in self.paused)
        self.position = "committed"

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        for tp in tps:
            self.paused.discard(tp)
            self.queue.put_nowait(self.position)

    def resume_flow(self) -> None:
        pass


class Tables(dict[str, Any]):
    def on_actives_ready(self) -> None:
        pass

    def on_standbys_ready(self) -> None:
        pass


async def _nothing() -> None:
    pass


async def _wait(coro: Coroutine[Any, Any, None], timeout: float | None = None) -> None:
    await coro


def test_a_restore_seeks_the_input_before_reading_it_and_loses_nothing_it_read() -> None:
    """After a restore, the first record read from the input is the one at the committed offset, and no record read
    is dropped when flow control resumes (which empties the channel queues)."""

    async def scenario() -> Consumer:
        flow_control = FlowControlEvent()
        consumer = Consumer(FlowControlQueue(maxsize=10, flow_control=flow_control, clear_on_resume=True))
        app = SimpleNamespace(
            consumer=consumer,
            flow_control=flow_control,
            consumer_generation_id=1,
            conf=SimpleNamespace(broker_request_timeout=1.0),
            on_rebalance_complete=SimpleNamespace(send=_nothing),
            _fetcher=SimpleNamespace(maybe_start=_nothing),
            assignor=SimpleNamespace(assigned_standbys=set),
            on_rebalance_end=lambda: None,
        )
        recovery = SimpleNamespace(
            app=app,
            log=CompositeLogger(logging.getLogger(__name__)),
            tables=Tables(),
            actives_for_table={},
            standbys_for_table={},
            completed=asyncio.Event(),
            _set_recovery_ended=lambda: None,
            _wait=_wait,
            _is_changelog_tp=lambda tp: tp == CHANGELOG,
        )
        faust_fixes.apply()
        await Recovery.on_recovery_completed(recovery, 1)  # type: ignore[arg-type]
        assert recovery.completed.is_set() and flow_control.is_active()
        return consumer

    consumer = asyncio.run(scenario())
    assert consumer.seeks_while_reading == [False]
    assert consumer.paused == {CHANGELOG}
    assert list(consumer.queue._queue) == ["committed"]  # type: ignore[attr-defined]
