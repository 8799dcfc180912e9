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
from streams.core import EventRejected, RecordState, SlaCore, snapshot
from streams.deadlines import DeadlineIndex
from streams.events import RecordEvent
from streams.outputs import Output

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


def alert_value(output: Output, fired_at_ms: int) -> dict[str, Any]:
    """The SlaAlert message of an alert output; ``fired_at_ms`` is the watermark when it was emitted."""
    return {
        "alert_id": output.output_id,
        "kind": output.kind.value,
        "record_id": output.record_id,
        "entity_type": output.entity_type,
        "policy": output.policy,
        "policy_version": output.policy_version,
        "kpi": output.kpi,
        "kpi_instance": output.kpi_instance,
        "started_at_ms": output.started_at_ms,
        "threshold_at_ms": output.at_ms,
        "deadline_ms": output.at_ms if output.deadline_ms is None else output.deadline_ms,
        "fired_at_ms": max(fired_at_ms, output.at_ms),
        "target_ms": output.target_ms,
        "business_elapsed_ms": output.business_elapsed_ms,
        "wall_elapsed_ms": output.wall_elapsed_ms,
        "paused_ms": output.paused_ms,
        "attributes": dict(output.attributes),
        "level": output.level,
        "actions": [action.to_json() for action in output.actions],
        "revision": output.revision,
        "revoked": output.revoked,
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
    _watermarks: dict[int, int] = field(default_factory=dict)

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
            try:
                await self._on_event(message.partition, record)
            except EventRejected as exc:
                await self._dead_letter(event, exc.reason, exc.detail)
                return
        self.counts.processed += 1

    async def _on_event(self, partition: int, event: RecordEvent) -> None:
        stored = self.table.get(event.record_id)
        state = self.core.restore(stored["s"]) if stored else None
        now_ms = self._watermarks.get(partition, event.occurred_at_ms)
        state, outputs = self.core.apply(state, event, now_ms)
        self._save(partition, state)
        await self._emit(outputs, now_ms)

    async def _on_tick(self, partition: int, now_ms: int) -> None:
        if now_ms <= self._watermarks.get(partition, now_ms - 1):
            return  # ticks never move time backwards
        self._watermarks[partition] = now_ms
        index = self._index(partition)
        for record_id in index.pop_due(now_ms):
            stored = self.table.get(record_id)
            if not stored:
                continue
            state = self.core.restore(stored["s"])
            outputs = self.core.advance(state, now_ms)
            self._save(partition, state)
            await self._emit(outputs, now_ms)

    def _index(self, partition: int) -> DeadlineIndex:
        index = self._indexes.get(partition)
        if index is None:
            index = self._indexes[partition] = DeadlineIndex()
            for record_id, stored in self.table.items():
                if stored and stored["p"] == partition:
                    index.update(record_id, self.core.next_due_ms(self.core.restore(stored["s"])))
            log.info(
                "deadline index of partition %d rebuilt: %d records with a pending threshold", partition, len(index)
            )
        return index

    def _save(self, partition: int, state: RecordState) -> None:
        self.table[state.record_id] = {"p": partition, "s": snapshot(state)}
        self._index(partition).update(state.record_id, self.core.next_due_ms(state))

    async def _emit(self, outputs: list[Output], now_ms: int) -> None:
        for output in outputs:
            if output.is_alert:
                value = SLA_ALERT.encode(alert_value(output, now_ms))
                await self.alerts.send(key=output.record_id.encode(), value=value)
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
