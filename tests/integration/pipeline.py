"""Helpers of the pipeline tests: produce input, read outputs as a read_committed consumer, wait for a worker
to catch up, and compute from the input topic itself what the worker must have written."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord

from agents.app import load_policy_versions
from agents.settings import Settings
from agents.simulate import DEFAULT_START_MS, Simulation, SimulationConfig
from agents.sla import output_messages, step
from agents.topics import TopicNames, group_progress, topic_partitions
from schemas.codec import encode_event, encode_tick
from streams.core import SlaCore
from streams.events import RecordEvent
from streams.partition import PartitionLogic

Message = tuple[str, bytes | None, bytes, int | None]
"""(topic, key, value, partition or None for the key's partition)."""

TICK_EVERY = 250
"""Events between two clock ticks (in simulated time) written into every partition."""


def simulated_stream(settings: Settings, seed: int, days: float, cases_per_day: int) -> list[Message]:
    """A simulated contact centre's events in time order for the case-events topic, with clock ticks in
    simulated time every TICK_EVERY events; then a last tick two days later so that every pending deadline
    fires."""
    topic = TopicNames.of(settings).case_events
    config = SimulationConfig(seed=seed, start_ms=DEFAULT_START_MS, days=days, cases_per_day=cases_per_day)
    messages: list[Message] = []
    last = DEFAULT_START_MS
    for n, event in enumerate(Simulation(config).events(), 1):
        messages.append((topic, event.record_id.encode(), encode_event(event), None))
        last = max(last, event.occurred_at_ms)
        if n % TICK_EVERY == 0:
            messages += [(topic, None, encode_tick(last, "test"), p) for p in range(settings.partitions)]
    messages += [(topic, None, encode_tick(last + 2 * 86_400_000, "test"), p) for p in range(settings.partitions)]
    return messages


def events_and_ticks(settings: Settings, *items: RecordEvent | int) -> list[Message]:
    """Messages for the case-events topic: each event keyed by its record, each int a clock tick at that instant
    (UTC epoch ms) into every partition."""
    topic = TopicNames.of(settings).case_events
    messages: list[Message] = []
    for item in items:
        if isinstance(item, int):
            messages += [(topic, None, encode_tick(item, "test"), p) for p in range(settings.partitions)]
        else:
            messages.append((topic, item.record_id.encode(), encode_event(item), None))
    return messages


async def produce(bootstrap: str, messages: Iterable[Message]) -> int:
    """Send ``messages`` in order (idempotent producer, all acks); return how many."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        futures = []
        for topic, key, value, partition in messages:
            futures.append(await producer.send(topic, value, key=key, partition=partition))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def read_all(bootstrap: str, topics: list[str], *, committed: bool = True) -> list[ConsumerRecord]:
    """Every message of ``topics`` up to their current end, as a ``read_committed`` reader sees them (or all
    written ones with ``committed=False``), in partition then offset order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        partitions = await topic_partitions(admin, topics)
        assert {tp.topic for tp in partitions} == set(topics), f"missing topics: {set(topics)}"
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)  # read_committed: the last stable offsets
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 60
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topics} to their end")
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got += records
    finally:
        await consumer.stop()
        await admin.close()
    return sorted(got, key=lambda r: (r.topic, r.partition, r.offset))


async def lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages of ``topics`` that ``group`` has not committed yet (all partitions together)."""
    done, end = await group_progress(bootstrap, group, topics)
    return end - done


async def wait_caught_up(
    settings: Settings, alive: Callable[[], bool], timeout_s: float = 180.0, log: Path | None = None
) -> None:
    """Wait until the worker group has committed everything on the input topics."""
    names = TopicNames.of(settings)
    deadline = time.monotonic() + timeout_s
    remaining = -1
    while time.monotonic() < deadline:
        remaining = await lag(settings.kafka_bootstrap, settings.app_id, list(names.inputs))
        if remaining == 0:
            return
        if not alive():
            break
        await asyncio.sleep(0.5)
    tail = log.read_text()[-4000:] if log and log.exists() else ""
    raise AssertionError(f"the worker did not catch up: {remaining} messages left, alive={alive()}\n{tail}")


Source = tuple[int, int]
"""(input partition, input offset) of the message whose processing emitted an output."""


def expected_outputs(settings: Settings, inputs: list[ConsumerRecord]) -> dict[str, list[tuple[str, bytes]]]:
    """What the agent must write for these input messages: ``{topic kind: [(key, value), ...]}``.

    The same per-message logic as the agent (:func:`agents.sla.step`), one fresh partition state per
    partition, messages in offset order: the outputs of an uninterrupted run. ``inputs`` come from one topic
    (messages of two co-partitioned topics interleave in the order the worker happened to fetch them).
    """
    return {
        kind: [(key, value) for key, value, _ in outputs]
        for kind, outputs in expected_outputs_with_sources(settings, inputs).items()
    }


def expected_outputs_with_sources(
    settings: Settings, inputs: list[ConsumerRecord]
) -> dict[str, list[tuple[str, bytes, Source]]]:
    """:func:`expected_outputs` with the input partition and offset that emitted each output, so that a test
    can say which input a missing or unexpected output belongs to."""
    assert len({record.topic for record in inputs}) <= 1, "expected_outputs needs the messages of one topic"
    current, previous = load_policy_versions(settings)
    core = SlaCore(current, previous=previous)
    by_partition: dict[int, list[ConsumerRecord]] = defaultdict(list)
    for record in inputs:
        by_partition[record.partition].append(record)
    expected: dict[str, list[tuple[str, bytes, Source]]] = defaultdict(list)
    for partition in sorted(by_partition):
        logic = PartitionLogic(core, lambda _record_id: None)
        for record in sorted(by_partition[partition], key=lambda r: r.offset):
            source = (record.partition, record.offset)
            result = step(logic, record.key, record.value)
            if result.rejected:
                expected["dead_letters"].append((record.key.decode() if record.key else "", record.value, source))
            for kind, record_id, value in output_messages(result.outputs, logic.watermark_ms):
                expected[kind].append((record_id, value, source))
    return expected
