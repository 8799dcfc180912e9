"""Corrections to faust-streaming (0.15) that exactly-once processing needs. Installed by :func:`apply`.

**Changelog highwaters.** With ``processing_guarantee="exactly_once"`` Faust
asks its consumer for the *last stable offset* of each changelog partition to
know how far to restore a table (``AIOKafkaConsumerThread._highwaters`` calls
``last_stable_offset(tp)``). aiokafka only knows that value for partitions it
has already fetched from; for a partition that has just moved to this worker
it is unknown, Faust reads it as -1, restores nothing, and the agent runs on an
empty table (seen here: a partition taken over from a killed worker came up
with 0 records, and its alerts never fired). The fix asks the broker:
``end_offsets`` sends a ListOffsets request with the consumer's isolation
level, and under ``read_committed`` the broker answers with the last stable
offset, for any partition.

**Commits.** Faust commits on its own schedule and, during a rebalance, while
messages are still being processed; a commit requested while another is in
flight is silently skipped. Either way a partition's transaction can be left
open with outputs whose offsets were never committed; after the rebalance
Faust seeks back to the committed offsets, the batch is processed again, and
its outputs land twice in the same transaction (seen here: 11 alerts
repeated after one rebalance). With exactly-once, the SLA agent therefore
commits itself (:class:`agents.sla.SlaProcessor`): between batches, and when
partitions are revoked, each partition's offsets in that partition's
transaction. For an app marked with :func:`commits_itself`, Faust's own
commits and its acknowledgement bookkeeping (which only its commits trim) are
switched off.

**The in-memory store forgets partitions it will not re-read.** After each
recovery, Faust's memory store drops the records of partitions this worker
no longer holds, but Faust remembers how far it had read their changelogs;
when such a partition comes back, recovery resumes from there, and the
records it dropped are gone (seen here: an alert fired a second time after a
partition left a worker and came back). The fix keeps them: records of a
partition that comes back are then overwritten by everything written since,
in order, which leaves exactly the committed state. The agent only reads
records of the partitions it holds.

**Resuming the input after a restore.** When a table is restored, Faust
(``Recovery.on_recovery_completed``) resumes the input partitions, *then*
seeks them to their committed offsets, *then* resumes flow control, which
empties every channel queue (``FlowControlEvent.resume`` clears the queues
created with ``clear_on_resume``). The consumer has fetched the input from the
position it took at assignment meanwhile, so messages are read in that window:
those still in the queue at the clear are dropped although their read offset
has moved on, and the records the consumer already holds keep being delivered
after the seek, so the same records fetched again from the committed offset are
dropped as already read, all but the last, which is read twice (seen here:
after a SIGKILL and restart, an event of the first batch was never processed, so
its KPI never started, or a call's ``call_answered`` was lost and the KPI
breached instead of being met). The fix seeks first, clears the queues while the
input is still paused, and only then resumes the input partitions, so that the
first message read after a restore is the one at the committed offset and
every later one follows it once.

**Writing a table outside stream iteration.** Faust's RocksDB store keeps one
database per partition and picks it from the *current event* (a context
variable Faust sets while a stream yields one event). The agent works on
batches and writes each changed record once per batch, outside that
iteration; :func:`writing_for` sets the current event to one of the batch's
events of the partition being written, as Faust would have.

**Sending in batches.** Faust's ``Producer.send`` costs tens of microseconds a
message, and the agent sends two to three messages per input message
(outputs and table writes). :func:`send_batched` hands aiokafka one
``BatchBuilder`` per topic partition instead, on the producer Faust keeps for
the transaction (or its plain producer without exactly-once). aiokafka's
``send_batch`` does not add the partition to the open transaction as ``send``
does, so :func:`send_batched` does that first.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from faust import streams as faust_streams
from faust.stores import memory as faust_memory
from faust.tables import recovery as faust_recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT, EventT

_MARK = "slaflow_commits_itself"
_force_commit = faust_consumer.Consumer.force_commit
_ack = faust_consumer.Consumer.ack


async def _highwaters(self: Any, partitions: list[Any]) -> Mapping[Any, int]:
    """The end offsets of ``partitions``: the last stable offsets when reading committed data only."""
    return dict(await self._ensure_consumer().end_offsets(partitions))


async def _on_recovery_completed(self: Any, generation_id: int = 0) -> None:
    """Faust's ``Recovery.on_recovery_completed`` with the input resumed last: see "Resuming the input after a
    restore" in the module doc. Everything else is as in faust-streaming 0.15.3."""
    app: Any = self.app
    consumer = app.consumer
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callbacks = [
        asyncio.ensure_future(table.on_recovery_completed(self.actives_for_table[table],
                                                          self.standbys_for_table[table]))
        for table in self.tables.values()
    ]  # fmt: skip
    if callbacks:
        await asyncio.wait(callbacks)
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning(f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}")
        return
    if assignment:
        # The input partitions are still paused: no message is read from the position the seek replaces.
        self.log.info("Seek stream partitions to committed offsets.")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
    self.completed.set()
    app.flow_control.resume()  # clears the channel queues, which hold nothing of the paused input
    consumer.resume_flow()
    consumer.resume_partitions({tp for tp in assignment if not self._is_changelog_tp(tp)})
    await app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


async def _force_commit_unless_agent_commits(self: Any, *args: Any, **kwargs: Any) -> bool:
    if getattr(self.app, _MARK, False):
        return False
    return bool(await _force_commit(self, *args, **kwargs))


async def _keep_records_of_other_partitions(self: Any, active_tps: Any, standby_tps: Any) -> None:
    """Nothing to drop: see "The in-memory store forgets partitions" in the module doc."""


def _ack_unless_agent_commits(self: Any, message: Any) -> bool:
    if getattr(self.app, _MARK, False):
        message.acked = True
        return False
    return bool(_ack(self, message))


@contextlib.contextmanager
def writing_for(event: EventT) -> Iterator[None]:
    """Table writes inside this block go to ``event``'s partition (the RocksDB store's database of it)."""
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def _aiokafka_producer(app: AppT, transactional_id: str | None) -> AIOKafkaProducer:
    producer: Any = app.producer
    if transactional_id is None:
        return producer._ensure_producer()
    found = producer._transaction_producers.get(transactional_id)
    if found is None:
        raise RuntimeError(f"no transaction producer {transactional_id!r}: the partition is not assigned here")
    return found


async def send_batched(
    app: AppT, transactional_id: str | None, messages: Mapping[tuple[str, int], list[tuple[bytes | None, bytes]]]
) -> list[Any]:
    """Queue ``{(topic, partition): [(key, value), ...]}`` on the producer of ``transactional_id``; return the
    delivery futures (one per aiokafka batch)."""
    producer = _aiokafka_producer(app, transactional_id)
    txn = producer._txn_manager
    futures = []
    for (topic, partition), items in messages.items():
        if transactional_id is not None and txn is not None:
            txn.maybe_add_partition_to_txn(TopicPartition(topic, partition))
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


def restored_partitions(app: AppT, topics: tuple[str, ...]) -> set[int]:
    """The partitions of ``topics`` this worker holds whose table is restored: assigned, not rebalancing, and
    active (Faust keeps a partition paused until its changelog is read; ``_get_active_partitions`` is private)."""
    consumer: Any = app.consumer
    if app.rebalancing or consumer is None:
        return set()
    return {tp.partition for tp in consumer._get_active_partitions() if tp.topic in topics}


def commits_itself(app: AppT) -> None:
    """Mark ``app``: its agent commits its transactions itself; Faust must not."""
    setattr(app, _MARK, True)


def apply() -> None:
    """Install the corrections (idempotent); :func:`agents.app.create_app` calls it."""
    faust_aiokafka.AIOKafkaConsumerThread._highwaters = _highwaters  # type: ignore[method-assign]
    faust_consumer.Consumer.force_commit = _force_commit_unless_agent_commits  # type: ignore[method-assign]
    faust_consumer.Consumer.ack = _ack_unless_agent_commits  # type: ignore[method-assign]
    faust_memory.Store.on_recovery_completed = _keep_records_of_other_partitions  # type: ignore[method-assign]
    faust_recovery.Recovery.on_recovery_completed = _on_recovery_completed  # type: ignore[method-assign]
