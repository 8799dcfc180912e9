"""Every Kafka topic of slaflow, declared once. Default names: ``{prefix}.{name}``; each can be overridden.

=====================  =============  ==========================================
topic                  key            value (Avro single-object, ``schemas/``)
=====================  =============  ==========================================
PREFIX.case-events     record id      InputMessage: a RecordEvent, an
                                      ActivityEvent (keyed by the record it
                                      regards), or a ClockTick written by the
                                      ticker into every partition
PREFIX.calls           case id, else  InputMessage: a CallEvent (telephony);
                       call id        calls of a case reach the case's state
PREFIX.alerts          record id      SlaAlert: warnings, breaches, escalations
PREFIX.kpi-transitions record id      KpiTransition: started, paused, resumed,
                                      re-targeted, reopened, met, cancelled
PREFIX.kpi-durations   record id      KpiDuration: the measured durations of a
                                      KPI instance when it ends
PREFIX.dead-letters    original key   DeadLetter: input that could not be
                                      processed, with its bytes and the reason
=====================  =============  ==========================================

Keys are record ids, so everything about one record lands on one partition and
its SLA state lives with that partition. The two input topics must have the
same partition count (they are co-partitioned: a case's calls and events meet
in one partition), and every output topic at least as many: an output is
written to the partition of the same number as its input, which keeps each
partition's effects in that partition's Kafka transaction. Topics are created
when missing with the configured partitions and replication factor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
)

from agents.settings import Settings
from streams.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)


class KafkaUnavailable(Unavailable):
    """Kafka cannot be reached at the configured address."""


@contextlib.contextmanager
def kafka_errors(bootstrap: str) -> Iterator[None]:
    """Around a client's start: a Kafka or network error becomes one :class:`KafkaUnavailable` that says what to
    do, and aiokafka's own log lines about the failed connection are held back (the error says it once)."""
    driver = logging.getLogger("aiokafka")
    level = driver.level
    driver.setLevel(logging.CRITICAL)
    try:
        yield
    except (KafkaError, OSError, TimeoutError) as exc:
        cause = "no broker answered" if isinstance(exc, KafkaConnectionError) else str(exc) or type(exc).__name__
        raise KafkaUnavailable(
            f"cannot reach Kafka at {bootstrap or '(no address)'} ({cause}). Is the broker running, and is "
            "KAFKA_BOOTSTRAP (or --bootstrap) right? `slaflow kafka` starts a local broker."
        ) from exc
    finally:
        driver.setLevel(level)


async def start_client(client: AIOKafkaProducer | AIOKafkaConsumer | AIOKafkaAdminClient, bootstrap: str) -> None:
    """Start a Kafka ``client``; if it cannot reach the broker, release it again and raise
    :class:`KafkaUnavailable` (see :func:`kafka_errors`)."""
    try:
        with kafka_errors(bootstrap):
            await client.start()
    except KafkaUnavailable:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise


@dataclass(frozen=True)
class TopicNames:
    """The names of slaflow's topics: ``{prefix}.{name}`` unless a name is given."""

    prefix: str
    case_events_name: str = ""
    calls_name: str = ""
    alerts_name: str = ""
    transitions_name: str = ""
    durations_name: str = ""
    dead_letters_name: str = ""

    @classmethod
    def of(cls, settings: Settings) -> TopicNames:
        """The topic names configured in ``settings`` (prefix and per-topic overrides)."""
        return cls(
            settings.topic_prefix,
            settings.topic_case_events,
            settings.topic_calls,
            settings.topic_alerts,
            settings.topic_transitions,
            settings.topic_durations,
            settings.topic_dead_letters,
        )

    @property
    def case_events(self) -> str:
        """Input: record and activity events, and clock ticks."""
        return self.case_events_name or f"{self.prefix}.case-events"

    @property
    def calls(self) -> str:
        """Input: telephony call events."""
        return self.calls_name or f"{self.prefix}.calls"

    @property
    def alerts(self) -> str:
        """Output: SLA warnings, breaches and escalations."""
        return self.alerts_name or f"{self.prefix}.alerts"

    @property
    def transitions(self) -> str:
        """Output: KPI transitions (everything that is not an alert)."""
        return self.transitions_name or f"{self.prefix}.kpi-transitions"

    @property
    def durations(self) -> str:
        """Output: measured durations of ended KPI instances."""
        return self.durations_name or f"{self.prefix}.kpi-durations"

    @property
    def dead_letters(self) -> str:
        """Output: input that could not be processed, with the reason."""
        return self.dead_letters_name or f"{self.prefix}.dead-letters"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The topics the SLA agent consumes."""
        return (self.case_events, self.calls)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The topics the SLA agent writes."""
        return (self.alerts, self.transitions, self.durations, self.dead_letters)

    def all(self) -> tuple[str, ...]:
        """Every topic name."""
        return (*self.inputs, *self.outputs)


async def missing_topics(settings: Settings, topics: Iterable[str]) -> list[str]:
    """Which of ``topics`` do not exist on the cluster (raises :class:`KafkaUnavailable` if it cannot be reached)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await start_client(admin, settings.kafka_bootstrap)
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    return [topic for topic in topics if topic not in existing]


async def require_topics(settings: Settings, topics: Iterable[str], *, create: bool | None) -> None:
    """Check that ``topics`` exist before using them; with ``create``, create slaflow's missing topics.

    A tool must not create a new set of topics because of a typo in a prefix: without ``create`` a missing
    topic is a :class:`ConfigError` that names it and says what to do (``create=None``: a reader, which has no
    ``--create-topics`` to suggest).
    """
    if create:
        await ensure_topics(settings)
        return
    missing = await missing_topics(settings, topics)
    if missing:
        which = f"topic {missing[0]} does not" if len(missing) == 1 else f"topics {', '.join(missing)} do not"
        hint = "" if create is None else "; pass --create-topics to create them here"
        raise ConfigError(
            f"{which} exist on {settings.kafka_bootstrap}. Check --topic-prefix (or SLAFLOW_TOPIC_PREFIX) and the "
            f"topic flags: a worker creates its topics when it starts{hint}"
        )


async def ensure_topics(settings: Settings, timeout_s: float = 30.0) -> list[str]:
    """Create whichever of the topics is missing; return the names created."""
    names = TopicNames.of(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout_s * 1000))
    await start_client(admin, settings.kafka_bootstrap)
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
        await _check_partitions(admin, names)
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


async def _check_partitions(admin: AIOKafkaAdminClient, names: TopicNames) -> None:
    """Refuse topics whose partition counts break co-partitioning (see the module doc)."""
    counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(list(names.all()))}
    inputs = {counts[name] for name in names.inputs}
    if len(inputs) != 1:
        raise ConfigError(
            f"the input topics {names.case_events} and {names.calls} must have the same number of partitions "
            f"(they are co-partitioned by record id), found {counts[names.case_events]} and {counts[names.calls]}"
        )
    (needed,) = inputs
    short = [f"{name} ({counts[name]})" for name in names.outputs if counts[name] < needed]
    if short:
        raise ConfigError(
            f"output topics need at least {needed} partitions, the input topics' count (each input partition "
            f"writes to its own number): {', '.join(short)}"
        )


async def group_progress(bootstrap: str, group: str, topics: list[str]) -> tuple[int, int]:
    """``(committed, end)``: the offsets of ``topics`` that consumer group ``group`` has committed, and their end
    offsets, each summed over all partitions (``committed == end``: the group has caught up)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        offsets = await group_offsets(admin, consumer, group, await topic_partitions(admin, topics))
        return sum(done for done, _ in offsets.values()), sum(end for _, end in offsets.values())
    finally:
        await consumer.stop()
        await admin.close()


async def topic_partitions(admin: AIOKafkaAdminClient, topics: list[str]) -> list[TopicPartition]:
    """Every partition of ``topics``, in topic then partition order."""
    described = await admin.describe_topics(topics)
    return sorted(TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"])


async def group_offsets(
    admin: AIOKafkaAdminClient, consumer: AIOKafkaConsumer, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, tuple[int, int]]:
    """``{partition: (committed, end)}`` of consumer group ``group`` (committed 0 where it has none yet), in two
    requests: the end offsets (as ``consumer``'s isolation level sees them) and the group's committed offsets."""
    ends = await consumer.end_offsets(partitions)
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
    except GroupCoordinatorNotAvailableError:  # the offsets topic is still being created
        committed = {}
    return {tp: (max(committed[tp].offset, 0) if tp in committed else 0, ends[tp]) for tp in partitions}
