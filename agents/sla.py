"""The SLA agent: decode, call the core, emit, count.

One agent consumes the case-events topic. A message is either a record event
(applied to that record's state) or a clock tick (time has reached ``at_ms``
on that partition: advance every record of the partition whose next threshold
is due). Because ticks travel through the input topic, the deadline checks
and the table writes they cause are processed, committed and recovered exactly
like events.

Per-record state lives in a Faust table (backed by its changelog topic) as
``{"p": partition, "s": RecordState.snapshot()}``. The deadline index, one per
partition, is memory only and is rebuilt from the table at the first tick of a
partition after start-up or a rebalance.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from faust.types import EventT, StreamT, TableT, TopicT

from schemas.codec import DEAD_LETTER, INPUT_MESSAGE, SLA_ALERT, CodecError
from streams.deadlines import DeadlineIndex
from streams.events import RecordEvent
from streams.outputs import Alert
from streams.record_state import RecordState, SlaCore

log = logging.getLogger(__name__)

TICK = "slaflow.ClockTick"


@dataclass
class Counts:
    """Input accounting: ``received == processed + dead_lettered`` at every message boundary."""

    received: int = 0
    processed: int = 0
    dead_lettered: int = 0
    alerts: int = 0
    ticks: int = 0


def alert_value(alert: Alert) -> dict[str, Any]:
    """The SlaAlert message of an alert."""
    return {
        "alert_id": alert.alert_id,
        "kind": alert.kind.value,
        "record_id": alert.record_id,
        "entity_type": alert.entity_type,
        "policy": alert.policy,
        "policy_version": alert.policy_version,
        "kpi": alert.kpi,
        "kpi_instance": alert.kpi_instance,
        "started_at_ms": alert.started_at_ms,
        "threshold_at_ms": alert.threshold_at_ms,
        "deadline_ms": alert.deadline_ms,
        "fired_at_ms": alert.fired_at_ms,
        "target_ms": alert.target_ms,
        "business_elapsed_ms": alert.business_elapsed_ms,
        "wall_elapsed_ms": alert.wall_elapsed_ms,
        "paused_ms": alert.paused_ms,
        "attributes": dict(alert.attributes),
    }


@dataclass
class SlaProcessor:
    """What the agent does with each message; holds the core, the table and the per-partition indexes."""

    core: SlaCore
    table: TableT[str, Any]
    alerts: TopicT
    dead_letters: TopicT
    counts: Counts = field(default_factory=Counts)
    _indexes: dict[int, DeadlineIndex] = field(default_factory=dict)

    def invalidate_indexes(self) -> None:
        """Forget the deadline indexes (partitions moved); each is rebuilt from the table at its next tick."""
        self._indexes.clear()

    async def handle(self, event: EventT) -> None:
        """Process one message of the input topic."""
        message = event.message
        self.counts.received += 1
        try:
            decoded = INPUT_MESSAGE.decode(event.value)
        except CodecError as exc:
            await self._dead_letter(event, "undecodable", str(exc))
            return
        name, body = decoded["body"]
        if name == TICK:
            self.counts.ticks += 1
            await self._on_tick(message.partition, body["at_ms"])
        else:
            record = RecordEvent(**body)
            if message.key is not None and message.key.decode("utf-8", "replace") != record.record_id:
                await self._dead_letter(
                    event, "key_mismatch", f"message key {message.key!r} is not the record id {record.record_id!r}"
                )
                return
            await self._on_event(message.partition, record)
        self.counts.processed += 1

    async def _on_event(self, partition: int, event: RecordEvent) -> None:
        stored = self.table.get(event.record_id)
        state = RecordState.restore(stored["s"]) if stored else None
        state, outputs = self.core.apply(state, event)
        self._save(partition, state)
        await self._emit(outputs)

    async def _on_tick(self, partition: int, now_ms: int) -> None:
        index = self._index(partition)
        for record_id in index.pop_due(now_ms):
            stored = self.table.get(record_id)
            if not stored:
                continue
            state = RecordState.restore(stored["s"])
            outputs = self.core.advance(state, now_ms)
            self._save(partition, state)
            await self._emit(outputs)

    def _index(self, partition: int) -> DeadlineIndex:
        index = self._indexes.get(partition)
        if index is None:
            index = self._indexes[partition] = DeadlineIndex()
            for record_id, stored in self.table.items():
                if stored and stored["p"] == partition:
                    index.update(record_id, RecordState.restore(stored["s"]).next_due_ms())
            log.info(
                "deadline index of partition %d rebuilt: %d records with a pending threshold", partition, len(index)
            )
        return index

    def _save(self, partition: int, state: RecordState) -> None:
        self.table[state.record_id] = {"p": partition, "s": state.snapshot()}
        self._index(partition).update(state.record_id, state.next_due_ms())

    async def _emit(self, outputs: list[Alert]) -> None:
        for alert in outputs:
            await self.alerts.send(key=alert.record_id.encode(), value=SLA_ALERT.encode(alert_value(alert)))
            self.counts.alerts += 1

    async def _dead_letter(self, event: EventT, reason: str, detail: str) -> None:
        message = event.message
        log.warning("dead-lettered %s[%d]@%d: %s: %s", message.topic, message.partition, message.offset, reason, detail)
        value = DEAD_LETTER.encode(
            {
                "reason": reason,
                "detail": detail,
                "source_topic": message.topic,
                "source_partition": message.partition,
                "source_offset": message.offset,
                "key": message.key,
                "value": message.value,
                "dead_lettered_at_ms": int(time.time() * 1000),
            }
        )
        await self.dead_letters.send(key=message.key, value=value)
        self.counts.dead_lettered += 1


async def consume(processor: SlaProcessor, stream: StreamT) -> None:
    """The agent body: every message of the stream through :meth:`SlaProcessor.handle`."""
    async for event in stream.events():
        await processor.handle(event)
