"""The SLA agent: decode, call the core, emit, count, one batch at a time.

The agent consumes the input topics (case events and calls) in batches
(:meth:`SlaProcessor.process`). A message is a record event, an activity or a
call event (applied to the state of the record it concerns), or a clock tick
(time has reached ``at_ms`` on that partition: every record of the partition
whose next threshold is due is advanced). Because ticks travel through the
input topic, the deadline checks and the table writes they cause are
processed, committed and recovered exactly like events.

Per partition, a :class:`~streams.partition.PartitionLogic` holds the
watermark, the live record states and the deadline and urgency indexes. At the
end of a batch every record the batch changed is written once to the Faust
table (its changelog partition is the input partition), the partition's
watermark too, and the outputs are sent to the partition of the same number
on the output topics. Then the batch's offsets are acknowledged, and, at most
every ``commit_interval_s``, committed: with ``exactly_once`` the outputs,
the table writes and the input offsets of a partition commit in one Kafka
transaction, so a worker killed at any moment leaves either all of a batch's
effects or none.

The indexes are memory only: after a restart or a rebalance they are rebuilt
from the table, for every held partition in one scan of the table, as soon as
the table is restored (or when the first message arrives, whichever is first).

A record view (:meth:`SlaProcessor.record_view`) asks only the partition that
owns the record, and reads without caching: a view never creates state. The
gauge of open KPIs by state is the sum of the partitions' counts, which are
kept as records change (:meth:`streams.partition.PartitionLogic.open_kpis`).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import TopicPartition
from faust.types import TP, AppT, EventT, StreamT, TableT

from agents import faust_fixes
from agents.topics import TopicNames
from schemas.codec import DEAD_LETTER, KPI_DURATION, KPI_TRANSITION, SLA_ALERT, CodecError, decode_input
from schemas.messages import alert_message, duration_message, transition_message
from sinks.metrics import SlaMetrics
from streams.core import EventRejected, RecordState, SlaCore
from streams.errors import DeadLetterReason
from streams.events import Tick, core_event, routing_key
from streams.outputs import Output
from streams.partition import WATERMARK_KEY_PREFIX, PartitionLogic, Stored, read_stored, watermark_key
from streams.urgency import UrgentKpi

log = logging.getLogger(__name__)


DEAD_LETTER_CHECK_MIN: Final = 20
"""Input events counted before the share dead-lettered is judged (see :class:`DeadLetterWatch`)."""
DEAD_LETTER_WINDOW: Final = 1000
"""Input events after which the count starts again, so that a stream that turns bad is noticed."""
DEAD_LETTER_WARN_EVERY_S: Final = 3600.0
"""The warning that most input is dead-lettered repeats at most this often."""


class DeadLetterWatch:
    """Says loudly, with the counts, when most of the input is being dead-lettered.

    A worker fed events it cannot use (a replay of past events into a worker on wall-clock time: every event is
    ``late``) looks healthy otherwise; one warning in the log with the reasons saves the user a search. Counts
    input events (not ticks) since the last judgement; at the end of a batch, once at least
    :data:`DEAD_LETTER_CHECK_MIN` are counted and more than half were dead-lettered, :meth:`verdict` returns the
    warning (at most every :data:`DEAD_LETTER_WARN_EVERY_S`); every :data:`DEAD_LETTER_WINDOW` events the count
    starts again.
    """

    def __init__(self) -> None:
        self.seen = 0
        self.reasons: Counter[str] = Counter()
        self._warned_at: float | None = None

    def count(self, reason: str | None) -> None:
        """One input event: ``reason`` is its dead-letter reason, ``None`` if it was processed."""
        self.seen += 1
        if reason is not None:
            self.reasons[reason] += 1

    def verdict(self, now_s: float) -> str | None:
        """The warning to log now, if any (``now_s``: a monotonic clock, seconds)."""
        dead = sum(self.reasons.values())
        if self.seen < DEAD_LETTER_CHECK_MIN or 2 * dead <= self.seen:
            if self.seen >= DEAD_LETTER_WINDOW:
                self.seen, self.reasons = 0, Counter()
            return None
        warned, self._warned_at = self._warned_at, now_s
        by_reason = ", ".join(f"{reason} {n}" for reason, n in self.reasons.most_common())
        message = (
            f"{dead} of the last {self.seen} input events were dead-lettered ({by_reason}); see the dead-letters "
            "topic (slaflow alerts --dead-letters) for each one and its reason"
        )
        if self.reasons[DeadLetterReason.LATE] * 2 > self.seen:
            message += (
                ". 'late' means older than the watermark minus the maximum lateness: a worker on wall-clock time "
                "(the ticker on) only takes events of about now; to feed past events, run the worker with "
                "SLAFLOW_TICK_INTERVAL=0 and ticks in the stream (slaflow simulate --kafka --speed N), or "
                "generate them from now (slaflow simulate --start now --speed 1)"
            )
        self.seen, self.reasons = 0, Counter()
        if warned is not None and now_s - warned < DEAD_LETTER_WARN_EVERY_S:
            self._warned_at = warned
            return None
        return message


@dataclass(slots=True)
class _Send:
    topic: str
    key: bytes | None
    value: bytes
    partition: int


@dataclass(frozen=True, slots=True)
class Step:
    """What one input message did: its outputs, whether it was a clock tick, or why it was rejected."""

    outputs: list[Output] = field(default_factory=list)
    tick: bool = False
    rejected: tuple[str, str] | None = None
    """``(reason, detail)`` of a message to dead-letter; the reason is a :class:`DeadLetterReason`."""


def step(logic: PartitionLogic, key: bytes | None, value: bytes | None) -> Step:
    """One input message through the partition's logic: decode, check the key, call the core.

    Pure apart from the state in ``logic``: the agent runs it per message, and the tests run it over the
    messages of a topic to know what the agent must have written.
    """
    try:
        decoded = decode_input(value or b"")  # a tombstone (no value) is undecodable
    except CodecError as exc:
        return Step(rejected=(exc.reason, str(exc)))
    if isinstance(decoded, Tick):
        return Step(logic.on_tick(decoded.at_ms), tick=True)
    expected = routing_key(decoded)
    if key is None or key != expected.encode():
        return Step(
            rejected=(DeadLetterReason.KEY_MISMATCH, f"message key {key!r} is not {expected!r}, the record it concerns")
        )
    record_event = core_event(decoded)
    if record_event is None:
        return Step()  # a call with no case: nothing for the SLA state (the sink records calls)
    try:
        return Step(logic.on_event(record_event))
    except EventRejected as exc:
        return Step(rejected=(exc.reason, exc.detail))


def output_messages(outputs: list[Output], watermark_ms: int | None) -> list[tuple[str, str, bytes]]:
    """``(topic kind, record id, Avro value)`` of each output: ``alerts``, ``transitions``, ``durations``.

    An alert's ``fired_at_ms`` is the watermark that released it (never before its threshold).
    """
    messages = []
    for output in outputs:
        fired_at = output.at_ms if watermark_ms is None else watermark_ms
        if output.is_alert:
            messages.append(("alerts", output.record_id, SLA_ALERT.encode(alert_message(output, fired_at))))
        else:
            messages.append(
                ("transitions", output.record_id, KPI_TRANSITION.encode(transition_message(output, fired_at)))
            )
        duration = duration_message(output)
        if duration is not None:
            messages.append(("durations", output.record_id, KPI_DURATION.encode(duration)))
    return messages


class SlaProcessor:
    """What the agent does with each batch; holds the core, the table and one PartitionLogic per partition."""

    def __init__(
        self,
        app: AppT,
        core: SlaCore,
        table: TableT[bytes, bytes],
        topics: TopicNames,
        metrics: SlaMetrics,
        *,
        exactly_once: bool,
        commit_interval_s: float,
        max_cached_records: int,
    ) -> None:
        self.app = app
        self.core = core
        self.table = table
        self.topics = topics
        self.exactly_once = exactly_once
        self.metrics = metrics
        self.commit_interval_s = commit_interval_s
        self.max_cached_records = max_cached_records
        self.partitions: dict[int, PartitionLogic] = {}
        self.positions: dict[tuple[str, int], int] = {}
        """Last processed offset per (topic, partition), for the consumer-lag gauge."""
        self._last_commit = time.monotonic()
        self.batch_lock = asyncio.Lock()
        self._batch_open = False
        """A batch has started and is not yet fully sent and acknowledged."""
        self._uncommitted: dict[tuple[str, int], int] = {}
        """Last processed offset per input (topic, partition) since the last commit."""
        self._revoked_generation = -1
        """The consumer generation whose partitions were last revoked: messages read in it are not processed."""
        self.dead_letter_watch = DeadLetterWatch()

    def forget_partitions(self) -> None:
        """Partitions moved: drop every PartitionLogic; they are rebuilt from the table at the next message."""
        log.info("partitions revoked: forgetting the state of partitions %s", sorted(self.partitions))
        self.partitions.clear()
        self.positions.clear()

    async def process(self, stream: StreamT, events: Sequence[EventT]) -> None:
        """Process one batch: compute everything, write the table, send the outputs, ack, maybe commit.

        Holds the batch lock throughout, so that the commit at a partition revocation
        (:meth:`on_partitions_revoked`) never lands in the middle of a batch.
        """
        started = time.perf_counter()
        async with self.batch_lock:
            events = self._of_current_assignment(events)
            if events:
                await self._process(stream, events)
            if time.monotonic() - self._last_commit >= self.commit_interval_s:
                await self.commit()
        self.metrics.batch(len(events), time.perf_counter() - started)
        self.metrics.flush()

    async def commit(self) -> None:
        """Commit what the batches since the last commit did.

        With exactly-once: for each input partition, its next offsets go into its own transaction (the one its
        outputs and table writes were sent in), and the transaction commits; a new one begins. Otherwise Faust
        commits the acknowledged offsets after flushing its producer.
        """
        if self.exactly_once:
            by_transaction: dict[str, dict[TopicPartition, int]] = {}
            for (topic, partition), offset in self._uncommitted.items():
                tid = self._transaction(partition)
                assert tid is not None
                by_transaction.setdefault(tid, {})[TopicPartition(topic, partition)] = offset + 1
            if by_transaction:
                await self.app.producer.commit_transactions(by_transaction, self.app.conf.id)
        else:
            await self.app.consumer.commit()
        self._uncommitted.clear()
        self._last_commit = time.monotonic()

    async def commit_if_idle(self) -> None:
        """Commit what is left uncommitted when no batch came for a commit interval (the input went quiet)."""
        if self._uncommitted and time.monotonic() - self._last_commit >= self.commit_interval_s:
            async with self.batch_lock:
                await self.commit()

    async def on_shutdown(self) -> None:
        """The worker stops: commit the finished batches, so that nothing done is redone or held back.

        A batch cut short by the stop is not committed: its transaction is aborted and the next worker redoes it.
        """
        async with self.batch_lock:
            if not self._batch_open:
                await self.commit()

    async def on_partitions_revoked(self) -> None:
        """A rebalance: commit everything processed (after the batch in progress), forget every partition, and
        process nothing more that was read before it (:meth:`_of_current_assignment`)."""
        async with self.batch_lock:
            await self.commit()
            self.forget_partitions()
            self._revoked_generation = self.app.consumer_generation_id

    def _of_current_assignment(self, events: Sequence[EventT]) -> Sequence[EventT]:
        """The events of ``events`` read after the last revocation.

        Faust clears its queues at a revocation, but not the batch that ``take_events`` is filling, which it hands
        over after the revocation's commit, even after the next assignment (seen here: a message read in
        generation 5 processed in generation 6, after the revocation had committed its partition): processing it
        would write outputs and table records into a transaction that may never commit (for a partition that moved
        away) or that holds them twice (the partition is read again from its committed offset). A message carries
        the consumer generation it was read in; one read at or before the revoked generation is left to be read
        again from the committed offsets.
        """
        revoked = self._revoked_generation
        current = [event for event in events if (event.message.generation_id or 0) > revoked]
        if len(current) < len(events):
            log.info(
                "%d messages read before the rebalance of generation %d are left to be read again from the "
                "committed offsets", len(events) - len(current), revoked,
            )  # fmt: skip
        return current

    async def _process(self, stream: StreamT, events: Sequence[EventT]) -> None:
        self._batch_open = True
        sends: list[_Send] = []
        touched: dict[int, EventT] = {}
        for event in events:
            message = event.message
            self.positions[(message.topic, message.partition)] = message.offset
            self._uncommitted[(message.topic, message.partition)] = message.offset
            reason = self._one(event, sends)
            if reason:
                self._dead_letter(event, *reason, sends=sends)
            else:
                self.metrics.event(message.topic, "processed")
            touched[message.partition] = event
        for partition, event in touched.items():
            with faust_fixes.writing_for(event):
                self._persist(partition, sends)
            self._report_set_aside(partition)
        warning = self.dead_letter_watch.verdict(time.monotonic())
        if warning:
            log.warning("%s", warning)
        by_transaction: dict[str | None, dict[tuple[str, int], list[tuple[bytes | None, bytes]]]] = {}
        for send in sends:
            grouped = by_transaction.setdefault(self._transaction(send.partition), {})
            grouped.setdefault((send.topic, send.partition), []).append((send.key, send.value))
        delivered = []
        for tid, messages in by_transaction.items():
            delivered += await faust_fixes.send_batched(self.app, tid, messages)
        await asyncio.gather(*delivered)
        for event in events:
            await stream.ack(event)
        self._batch_open = False

    def _transaction(self, partition: int) -> str | None:
        """The Kafka transaction of an input partition's effects: Faust's own id for that partition's producer.

        Faust picks a send's transaction from the destination partition of a topic its consumer subscribes to,
        and sends to other topics (our outputs) outside any transaction; so the agent names it itself.
        """
        if not self.exactly_once:
            return None
        group = self.app.assignor.group_for_topic(self.topics.case_events)
        return f"{self.app.conf.id}-{group}-{partition}"

    def _one(self, event: EventT, sends: list[_Send]) -> tuple[str, str] | None:
        """Process one message; return ``(reason, detail)`` if it must be dead-lettered."""
        message = event.message
        logic = self._partition(message.partition)
        result = step(logic, message.key, message.value)
        if result.tick:
            self.metrics.tick(message.topic)
        else:
            self.dead_letter_watch.count(result.rejected[0] if result.rejected else None)
        if result.outputs:
            self._emit(result.outputs, message.partition, logic.watermark_ms, sends)
        return result.rejected

    def _emit(self, outputs: list[Output], partition: int, watermark_ms: int | None, sends: list[_Send]) -> None:
        wall_s = time.time()
        topics = {"alerts": self.topics.alerts, "transitions": self.topics.transitions,
                  "durations": self.topics.durations}  # fmt: skip
        for output in outputs:
            if output.is_alert:
                self.metrics.alert(output.kind.value, output.policy, wall_s - output.at_ms / 1000)
            else:
                self.metrics.transition(output.kind.value, output.policy)
        for kind, record_id, value in output_messages(outputs, watermark_ms):
            sends.append(_Send(topics[kind], record_id.encode(), value, partition))

    def _persist(self, partition: int, sends: list[_Send]) -> None:
        """Write the partition's changed records and its watermark to the table and its changelog partition.

        The changelog messages are sent with the outputs (awaited, before the offsets are acknowledged), not
        through Faust's background buffer, so that they belong to the same transaction as the batch.
        """
        logic = self.partitions[partition]
        changelog = self.table.changelog_topic.get_topic_name()
        for state in logic.take_dirty():
            key = state.record_id.encode()
            value = logic.stored(partition, state)
            self.table.data[key] = value
            sends.append(_Send(changelog, key, value, partition))
        if logic.watermark_moved and logic.watermark_ms is not None:
            logic.watermark_moved = False
            key, value = watermark_key(partition).encode(), str(logic.watermark_ms).encode()
            self.table.data[key] = value
            sends.append(_Send(changelog, key, value, partition))
        logic.evict(self.max_cached_records)

    def _report_set_aside(self, partition: int) -> None:
        """Log, once each, the records of ``partition`` newly set aside (pinned to an unknown policy version)."""
        found = self.partitions[partition].take_set_aside()
        if found:
            examples = "; ".join(f"{record_id}: {why}" for record_id, why in found[:3])
            log.warning(
                "partition %d: %d record(s) set aside, their state cannot be restored (%s%s)",
                partition, len(found), examples, "; ..." if len(found) > 3 else "",
            )  # fmt: skip

    def _partition(self, partition: int) -> PartitionLogic:
        logic = self.partitions.get(partition)
        if logic is None:
            self._rebuild({partition} | self._assigned_partitions())
            logic = self.partitions[partition]
        return logic

    def _assigned_partitions(self) -> set[int]:
        inputs = set(self.topics.inputs)
        return {tp.partition for tp in self.app.consumer.assignment() if tp.topic in inputs}

    def build_restored_partitions(self) -> None:
        """Build the PartitionLogic of every held input partition whose table is restored and not built yet, so
        that views and gauges are right after a restart before any message arrives."""
        ready = faust_fixes.restored_partitions(self.app, self.topics.inputs)
        if ready - self.partitions.keys():
            self._rebuild(ready)

    def _rebuild(self, partitions: set[int]) -> None:
        """The PartitionLogic of every partition in ``partitions`` not built yet, from one scan of the table:
        its watermark and both indexes. (The table may also hold records of partitions this worker no longer
        holds; they are left out.)"""
        wanted = partitions - self.partitions.keys()
        started = time.perf_counter()
        known: dict[int, list[tuple[str, Stored]]] = {p: [] for p in wanted}
        watermarks: dict[int, int] = {}
        prefix = WATERMARK_KEY_PREFIX.encode()
        for key, value in self.table.data.items():
            if key.startswith(prefix):
                partition = int(key[len(prefix) :])
                if partition in wanted:
                    watermarks[partition] = int(value)
                continue
            record_id = key.decode()
            stored = read_stored(record_id, value, header_only=True)
            if stored.partition in wanted:
                known[stored.partition].append((record_id, stored))
        for partition in sorted(wanted):
            logic = self.partitions[partition] = PartitionLogic(
                self.core, self._load, watermarks.get(partition), known[partition]
            )
            log.info(
                "partition %d: state rebuilt from the table: %d records, %d with a pending threshold, watermark %s",
                partition, len(known[partition]), len(logic), watermarks.get(partition),
            )  # fmt: skip
        log.info("rebuilt %d partitions in one table scan of %.3f s", len(wanted), time.perf_counter() - started)

    def _load(self, record_id: str) -> RecordState | None:
        value = self.table.data.get(record_id.encode())
        if value is None:
            return None
        stored = read_stored(record_id, value)
        assert stored.snapshot is not None
        return self.core.restore(stored.snapshot)

    def _dead_letter(self, event: EventT, reason: str, detail: str, *, sends: list[_Send]) -> None:
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
        sends.append(_Send(self.topics.dead_letters, message.key, value, message.partition))
        self.metrics.event(message.topic, "dead_lettered", reason)

    def update_gauges(self) -> None:
        """Open KPIs by state (every open KPI of the partitions this worker holds, from their kept counts), the
        records set aside, and consumer lag."""
        self.build_restored_partitions()
        states: Counter[str] = Counter()
        for logic in self.partitions.values():
            states.update(logic.open_kpis())
        self.metrics.set_open_kpis(dict(states))
        self.metrics.set_records_set_aside(sum(len(logic.set_aside) for logic in self.partitions.values()))
        lag = {}
        assigned = self.app.consumer.assignment()
        for (topic, partition), offset in self.positions.items():
            tp = TP(topic, partition)
            highwater = self.app.consumer.highwater(tp) if tp in assigned else None
            if highwater is not None:
                lag[(topic, partition)] = max(0, highwater - offset - 1)
        self.metrics.set_lag(lag)
        self.metrics.flush()

    def record_view(self, record_id: str, now_ms: int) -> dict[str, Any] | None:
        """The JSON of ``GET /sla/records/{id}`` if this worker holds the record, else ``None``.

        Only the partition that owns the record (its key's partition) is asked, and reading caches nothing.
        Times are shown at the partition's watermark, the stream's "now" (the wall clock when the ticker runs,
        the simulated time of a replay), or at ``now_ms`` before the partition's first tick. Raises
        :class:`~streams.core.SnapshotError` for a record set aside (pinned to an unknown policy version).
        """
        partition = self.app.consumer.key_partition(self.topics.case_events, record_id.encode())
        if partition is None:
            return None
        self.build_restored_partitions()
        logic = self.partitions.get(partition)
        state = None if logic is None else logic.peek(record_id)
        if logic is None or state is None:
            return None
        return record_view(state, now_ms if logic.watermark_ms is None else logic.watermark_ms)

    def stream_now_ms(self, now_ms: int) -> int:
        """The latest watermark of this worker's partitions, or ``now_ms`` before any tick."""
        return max((p.watermark_ms for p in self.partitions.values() if p.watermark_ms is not None), default=now_ms)

    def urgent(self, limit: int, *, owner: str | None, queue: str | None, tier: str | None) -> list[UrgentKpi]:
        """The ``limit`` open KPIs of this worker's partitions with the earliest deadlines, filtered."""
        found = [
            entry
            for logic in self.partitions.values()
            for entry in logic.urgency.most_urgent(limit, owner=owner, queue=queue, tier=tier)
        ]
        return heapq.nsmallest(limit, found, key=lambda e: (e.deadline_ms, e.record_id, e.kpi, e.kpi_instance))


def record_view(state: RecordState, now_ms: int) -> dict[str, Any]:
    """A record's KPIs at ``now_ms`` as the web view shows them (times in UTC epoch ms, durations in ms)."""
    kpis = []
    for clock in state.clocks():
        deadline = clock.deadline_ms()
        kpis.append(
            {
                "kpi": clock.name,
                "instance": clock.instance,
                "policy": clock.policy,
                "policy_version": clock.version,
                "state": clock.state_at(now_ms).value,
                "started_at_ms": clock.started_at_ms,
                "deadline_ms": deadline,
                "remaining_ms": None if deadline is None or clock.ended_at_ms is not None else deadline - now_ms,
                "target_ms": clock.spec.target_ms,
                "business_elapsed_ms": clock.business_elapsed(now_ms),
                "paused_ms": clock.paused_elapsed(now_ms),
                "ended_at_ms": clock.ended_at_ms,
            }
        )
    return {
        "record_id": state.record_id,
        "entity_type": state.live.entity_type,
        "attributes": dict(state.live.attributes),
        "now_ms": now_ms,
        "kpis": kpis,
    }
