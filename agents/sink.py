"""The ClickHouse sink task: alerts topic -> ``sinks.clickhouse``, as its own consumer group.

It runs beside the SLA agent in the worker process but consumes with a group
of its own (``{app_id}-clickhouse``), so a slow or absent ClickHouse never
delays an alert. Offsets are committed only after ClickHouse acknowledged the
insert; when an insert fails, the rows stay buffered and the insert is retried
with exponential back-off (0.5 s doubling to 30 s), and nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer
from mode import Service

from agents.settings import Settings
from agents.topics import TopicNames
from schemas.codec import SLA_ALERT, CodecError
from sinks.clickhouse import ClickHouseSink, SinkError, connect

log = logging.getLogger(__name__)


def sink_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The sink's consumer of the alerts topic: its own group, manual commits, committed reads only."""
    return AIOKafkaConsumer(
        TopicNames.of(settings).alerts,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-clickhouse",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )


async def sink_batch(consumer: AIOKafkaConsumer, sink: ClickHouseSink, settings: Settings) -> int:
    """Fetch one batch of alerts, insert it (retrying until ClickHouse takes it), commit; return rows written."""
    batch = await consumer.getmany(timeout_ms=int(settings.sink_flush_s * 1000), max_records=settings.sink_batch_rows)
    for messages in batch.values():
        for message in messages:
            try:
                sink.add(SLA_ALERT.decode(message.value))
            except CodecError as exc:
                log.error(
                    "skipping undecodable alert %s[%d]@%d: %s", message.topic, message.partition, message.offset, exc
                )
    if not sink.pending:
        return 0
    written = await _flush_until_acknowledged(sink)
    await consumer.commit()
    return written


def backoff_delays(first_s: float = 0.5, most_s: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each retry: ``first_s``, doubling up to ``most_s``, for ever."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, most_s)


async def _flush_until_acknowledged(sink: ClickHouseSink) -> int:
    delays = backoff_delays()
    while True:
        try:
            return await asyncio.to_thread(sink.flush)
        except SinkError as exc:
            delay = next(delays)
            log.warning("ClickHouse insert failed (%s); %d rows kept, retrying in %.1f s", exc, sink.pending, delay)
            await asyncio.sleep(delay)


async def catch_up(settings: Settings, sink: ClickHouseSink) -> int:
    """Write every alert the sink's group has not committed yet, up to the end of the topic; return rows written."""
    consumer = sink_consumer(settings)
    await consumer.start()
    written = 0
    try:
        while True:
            written += await sink_batch(consumer, sink, settings)
            assignment = consumer.assignment()
            if assignment:
                ends = await consumer.end_offsets(list(assignment))
                positions = {tp: await consumer.position(tp) for tp in assignment}
                if all(positions[tp] >= ends[tp] for tp in assignment):
                    return written
    finally:
        await consumer.stop()


class ClickHouseSinkService(Service):
    """Consumes the alerts topic and writes every alert into ClickHouse in batches."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sink: ClickHouseSink | None = None
        self.rows_written = 0
        super().__init__()

    async def _connect(self) -> ClickHouseSink:
        """Connect to ClickHouse (creating the tables), retrying with back-off: an absent ClickHouse must not
        stop the worker, whose alerts do not depend on it."""
        s = self.settings
        delays = backoff_delays()
        while True:
            try:
                client = await asyncio.to_thread(connect, s.effective_clickhouse_url, s.clickhouse_database)
            except SinkError as exc:
                delay = next(delays)
                log.warning("ClickHouse unavailable (%s); retrying in %.1f s", exc, delay)
                await self.sleep(delay)
                continue
            log.info("ClickHouse sink writing to %s (database %s)", s.effective_clickhouse_url, s.clickhouse_database)
            return ClickHouseSink(client, s.clickhouse_database)

    @Service.task
    async def _consume(self) -> None:
        self.sink = await self._connect()
        consumer = sink_consumer(self.settings)
        await consumer.start()
        try:
            while not self.should_stop:
                self.rows_written += await sink_batch(consumer, self.sink, self.settings)
        finally:
            await consumer.stop()

    async def on_stop(self) -> None:
        """Close the ClickHouse client (rows not flushed are re-read from Kafka by the next run)."""
        if self.sink is not None:
            self.sink.client.close()
            log.info("ClickHouse sink stopped after writing %d rows", self.rows_written)
