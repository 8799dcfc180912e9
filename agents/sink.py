"""``slaflow sink``: the output and input topics -> ClickHouse, as a process and consumer group of its own.

It reads the alerts, kpi-transitions, kpi-durations, case-events and calls topics with the group
``{app_id}-clickhouse`` (``read_committed``: only what the SLA agents committed), separate from the SLA
workers, so that a slow or absent ClickHouse never delays an alert. Messages become rows
(:mod:`sinks.rows`), buffered per table and inserted in batches bounded in rows (``sink_batch_rows``) and time
(``sink_flush_s``). Offsets are committed only after ClickHouse acknowledged every row of the batch: when an
insert fails, the rows stay buffered and the insert is retried with exponential back-off (0.5 s doubling to
30 s) for as long as it takes, and nothing is lost. A crash between the insert and the commit makes the next
run insert those rows again; the tables' ReplacingMergeTree keys make that harmless (``sinks/clickhouse.py``).

Counts add up: every message read is ``written`` (rows made), ``skipped`` (a clock tick) or ``refused`` (bytes
the SLA agent dead-letters as undecodable or schema_violation), on ``/metrics`` as
``slaflow_sink_messages_total``, with the backlog (messages not yet in ClickHouse) per topic.

With the embedded engine (``chdb://``) one sink process owns the data directory: run one sink. A ClickHouse
server takes several sink processes (the group shares the partitions among them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from prometheus_client import start_http_server

from agents.settings import Settings, ensure_free_port
from agents.topics import KafkaUnavailable, TopicNames, group_offsets, start_client, topic_partitions
from sinks.clickhouse import ClickHouseSink, SinkError, connect, masked, migrate
from sinks.metrics import SinkMetrics
from sinks.rows import TOPIC_ATTRIBUTES

log = logging.getLogger(__name__)

EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
BACKLOG_INTERVAL_S: Final = 2.0
"""Seconds between two updates of the backlog gauge (it asks the broker for offsets)."""


def sink_group(settings: Settings) -> str:
    """The sink's consumer group: separate from the SLA agents'."""
    return f"{settings.app_id}-clickhouse"


def sink_topics(settings: Settings) -> dict[str, str]:
    """The names of the topics the sink reads, each with its key in :data:`sinks.rows.TOPIC_ATTRIBUTES`."""
    names = TopicNames.of(settings)
    return {getattr(names, attribute): topic for topic, attribute in TOPIC_ATTRIBUTES.items()}


def sink_consumer(settings: Settings) -> AIOKafkaConsumer:
    """The sink's consumer of its topics: its own group, manual commits, committed reads only."""
    return AIOKafkaConsumer(
        *sink_topics(settings),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=sink_group(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=settings.sink_batch_rows,
    )


def backoff_delays(first_s: float = 0.5, most_s: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each retry: ``first_s``, doubling up to ``most_s``, for ever."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, most_s)


class SinkLoop:
    """One consumer, one ClickHouse sink: fetch a batch, make rows, insert until acknowledged, commit.

    ``sink`` is None until ClickHouse could be reached (:meth:`run` connects with back-off); the backlog is
    reported meanwhile, from the broker's offsets alone.
    """

    def __init__(
        self, settings: Settings, consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient, metrics: SinkMetrics
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.admin = admin
        self.metrics = metrics
        self.sink: ClickHouseSink | None = None
        self.messages: Counter[str] = Counter()
        """Messages read per outcome (written, skipped, refused) since the start."""
        self._topic_of = sink_topics(settings)
        self._backlog_at = 0.0

    async def connect(self, stop: asyncio.Event, *, retry: bool = True) -> bool:
        """Reach ClickHouse and migrate its schema, retrying with back-off until it works or ``stop`` is set (without
        ``retry``, a failure is raised at once: a one-off catch-up has no one to wait for)."""
        s = self.settings
        delays = backoff_delays()
        while not stop.is_set():
            try:
                client = await asyncio.to_thread(connect, s.effective_clickhouse_url, s.clickhouse_database)
                report = await asyncio.to_thread(migrate, client, s.clickhouse_database)
            except SinkError as exc:
                if not retry:
                    raise
                self.metrics.error("connect")
                delay = next(delays)
                log.warning("ClickHouse unavailable (%s); retrying in %.1f s", exc, delay)
                await self.update_backlog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            self.sink = ClickHouseSink(client, s.clickhouse_database)
            log.info(
                "ClickHouse sink writing to %s, database %s, schema version %d (applied now: %s)",
                masked(s.effective_clickhouse_url), s.clickhouse_database, report.version,
                ", ".join(report.applied) or "none",
            )  # fmt: skip
            return True
        return False

    async def batch(self, stop: asyncio.Event) -> int:
        """Read until ``sink_batch_rows`` rows are buffered or ``sink_flush_s`` has passed, write them (retrying
        until ClickHouse acknowledges them, or ``stop``), then commit; return the rows written."""
        assert self.sink is not None, "connect() first"
        s = self.settings
        fetched = 0
        ends_at = time.monotonic() + s.sink_flush_s
        while self.sink.pending < s.sink_batch_rows and not stop.is_set():
            left_ms = int((ends_at - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            batch = await self.consumer.getmany(timeout_ms=left_ms, max_records=s.sink_batch_rows)
            for tp, messages in batch.items():
                fetched += len(messages)
                self.sink.add_messages(
                    self._topic_of[tp.topic],
                    [m.value or b"" for m in messages],
                    tp.partition,
                    [m.offset for m in messages],
                )
        written = await self._flush_until_acknowledged(stop) if self.sink.pending else 0
        if self.sink.pending:
            return written  # stopped while ClickHouse was away: nothing committed, the next run reads them again
        if fetched:
            await self._commit()
        outcomes = self.sink.take_outcomes()
        for refused in outcomes.refused:
            log.warning(
                "refused %s[%d]@%d (%s): %s",
                refused.topic, refused.partition, refused.offset, refused.error.reason, refused.error,
            )  # fmt: skip
        for (topic, outcome, reason), n in outcomes.counts.items():
            self.metrics.messages(topic, outcome, reason, n)
            self.messages[outcome] += n
        if time.monotonic() - self._backlog_at >= BACKLOG_INTERVAL_S:
            await self.update_backlog()
        return written

    async def _flush_until_acknowledged(self, stop: asyncio.Event) -> int:
        """Flush until every buffered row is written; give up only when ``stop`` is set and a try failed."""
        assert self.sink is not None
        delays = backoff_delays()
        written = 0
        self.metrics.set_buffered(self.sink.pending)
        while self.sink.pending:
            try:
                done = await asyncio.to_thread(self.sink.flush)
            except SinkError as exc:
                self.metrics.error(exc.table)
                if stop.is_set():
                    break
                delay = next(delays)
                log.warning("%s; %d rows kept, retrying in %.1f s", exc, self.sink.pending, delay)
                await self.update_backlog()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                continue
            written += sum(done.values())
            self.metrics.rows(done, time.time())
        self.metrics.set_buffered(self.sink.pending)
        return written

    async def _commit(self) -> None:
        try:
            await self.consumer.commit()
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced while ClickHouse was slow: the partitions' next owner reads these messages
            # again and writes the same rows, which the tables' keys collapse. Nothing is lost.
            log.warning("commit after insert failed (%s): the rows will be written again, harmlessly", exc)

    async def update_backlog(self) -> None:
        """Set the backlog gauge: per topic, end offsets minus the group's committed offsets."""
        self._backlog_at = time.monotonic()
        partitions = [
            TopicPartition(topic, p)
            for topic in self._topic_of
            for p in sorted(self.consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return
        try:
            offsets = await group_offsets(self.admin, self.consumer, sink_group(self.settings), partitions)
        except KafkaError as exc:
            log.warning("backlog unknown: %s", exc)
            return
        backlog: Counter[str] = Counter(dict.fromkeys(TOPIC_ATTRIBUTES, 0))
        for tp, (committed, end) in offsets.items():
            backlog[self._topic_of[tp.topic]] += max(0, end - committed)
        self.metrics.set_backlog(backlog)

    async def caught_up(self, targets: dict[TopicPartition, int]) -> bool:
        """Whether every assigned partition has been read (and committed) up to its offset in ``targets``."""
        assignment = self.consumer.assignment()
        if not assignment:
            return False
        for tp in assignment:
            if await self.consumer.position(tp) < targets.get(tp, 0):
                return False
        return True


async def run_sink(
    settings: Settings, stop: asyncio.Event, metrics: SinkMetrics, *, until_caught_up: bool = False
) -> int:
    """Run the sink until ``stop`` is set (or, with ``until_caught_up``, until every topic is written up to the
    end it had when the sink started); return the rows written."""
    consumer = sink_consumer(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await start_client(consumer, settings.kafka_bootstrap)
    try:
        await start_client(admin, settings.kafka_bootstrap)
    except KafkaUnavailable:
        await consumer.stop()
        raise
    loop = SinkLoop(settings, consumer, admin, metrics)
    written = 0
    try:
        # Up to the ends the topics have now: with a worker's ticker writing into case-events, the end moves on.
        targets = await consumer.end_offsets(await topic_partitions(admin, list(sink_topics(settings))))
        if not await loop.connect(stop, retry=not until_caught_up):
            return 0
        while not stop.is_set():
            written += await loop.batch(stop)
            if until_caught_up and await loop.caught_up(targets):
                break
    finally:
        await admin.close()
        await consumer.stop()
        if loop.sink is not None:
            loop.sink.close()
            loop.sink.client.close()
    counted = ", ".join(f"{outcome} {n:,}" for outcome, n in sorted(loop.messages.items())) or "none"
    log.info("ClickHouse sink stopped: %d rows written; messages read: %s", written, counted)
    return written


async def catch_up(settings: Settings) -> int:
    """Write everything the sink's group has not committed yet, up to the end of its topics; return rows written."""
    return await run_sink(settings, asyncio.Event(), SinkMetrics(), until_caught_up=True)


def serve(settings: Settings, *, catch_up: bool = False) -> int:
    """``slaflow sink``: serve ``/metrics`` on ``sink_metrics_port`` and sink until SIGTERM or SIGINT (with
    ``catch_up``: until every topic is written up to its end, then say how many rows). Exit code: 0, or 130 after
    a SIGINT (Ctrl-C); a catch-up stopped by a signal before it caught up says so (130, or 1 after SIGTERM)."""
    metrics = SinkMetrics()
    if settings.sink_metrics_port:
        ensure_free_port(settings, "sink_metrics_port")
        start_http_server(settings.sink_metrics_port, settings.web_bind, registry=metrics.registry)
        log.info("sink metrics on http://%s:%d/metrics", settings.web_bind, settings.sink_metrics_port)
    received: list[int] = []

    async def main() -> int:
        stop = asyncio.Event()
        running = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            received.append(signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(signum, on_signal, signum)
        return await run_sink(settings, stop, metrics, until_caught_up=catch_up)

    written = asyncio.run(main())
    code = EXIT_INTERRUPTED if signal.SIGINT in received else 0
    if catch_up:
        where = f"{written:,} rows written to {masked(settings.effective_clickhouse_url)}, database " + (
            settings.clickhouse_database
        )
        if received:
            print(f"slaflow sink: stopped before it caught up: {where}", file=sys.stderr)
            return code or EXIT_FAILED
        print(f"slaflow sink: caught up: {where}", file=sys.stderr)
    return code
