"""Every Kafka topic of slaflow, declared once, with one naming pattern: ``{prefix}.{name}``.

=====================  ===========  ============================================
topic                  key          value (Avro single-object, ``schemas/``)
=====================  ===========  ============================================
PREFIX.case-events     record id    InputMessage: a RecordEvent of a case (or any
                                    other CRM record), or a ClockTick written by
                                    the ticker into every partition
PREFIX.alerts          record id    SlaAlert: warnings and breaches
PREFIX.dead-letters    original     DeadLetter: input that could not be
                                    processed, with its bytes and the reason
=====================  ===========  ============================================

Keys are record ids, so everything about one record lands on one partition and
its SLA state lives with that partition. Topics are created when missing with
the configured partitions and replication factor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agents.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicNames:
    """The names of slaflow's topics for one prefix."""

    prefix: str

    @property
    def case_events(self) -> str:
        """Input: record events and clock ticks."""
        return f"{self.prefix}.case-events"

    @property
    def alerts(self) -> str:
        """Output: SLA warnings and breaches."""
        return f"{self.prefix}.alerts"

    @property
    def dead_letters(self) -> str:
        """Output: input that could not be processed, with the reason."""
        return f"{self.prefix}.dead-letters"

    def all(self) -> tuple[str, ...]:
        """Every topic name."""
        return (self.case_events, self.alerts, self.dead_letters)


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create whichever of the topics is missing; return the names created."""
    names = TopicNames(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in names.all() if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                await admin.create_topics(
                    [NewTopic(n, settings.partitions, settings.replication_factor) for n in missing],
                    timeout_ms=int(timeout_s * 1000),
                )
            await _wait_until_ready(admin, settings.kafka_bootstrap, missing, timeout_s)
            log.info("created topics %s", ", ".join(missing))
        return missing
    finally:
        await admin.close()


async def _wait_until_ready(admin: AIOKafkaAdminClient, bootstrap: str, topics: list[str], timeout_s: float) -> None:
    """Wait until every partition of ``topics`` has a leader that answers."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        described = await admin.describe_topics(topics)
        if all(
            not t["error_code"] and t["partitions"] and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        ):
            break
        if loop.time() > deadline:
            raise TimeoutError(f"topics {topics} were created but have no partition leaders after {timeout_s} s")
        await asyncio.sleep(0.1)
    await _wait_for_offsets(bootstrap, described, deadline - loop.time())


async def _wait_for_offsets(bootstrap: str, described: list[dict[str, Any]], timeout_s: float) -> None:
    """Ask every new partition for its end offset: the leader may answer NotLeader for a moment after creation.

    aiokafka retries those answers itself and logs each at ERROR; they are expected here, so the
    fetcher's log is muted for the duration of this check only.
    """
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    fetcher_log = logging.getLogger("aiokafka.consumer.fetcher")
    level = fetcher_log.level
    fetcher_log.setLevel(logging.CRITICAL)
    try:
        await consumer.start()
        await asyncio.wait_for(consumer.end_offsets(partitions), timeout_s)
    finally:
        fetcher_log.setLevel(level)
        await consumer.stop()
