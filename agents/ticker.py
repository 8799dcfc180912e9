"""The ticker: wall-clock time written into every partition of the case-events topic.

A clock tick is an input message like any other, so the deadline checks it
triggers run inside the SLA agent's batches, under the same processing
guarantee as events (the agent writes the table and the outputs; the ticker
writes nothing else). Only the worker that leads the consumer group ticks.

The ticker has its own plain (non-transactional) producer on purpose: a tick
written inside the agent's transaction would stay invisible to the agent's
own ``read_committed`` consumer until that transaction committed, and the
transaction commits only after the agent has read something.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaProducer
from mode import Service

from schemas.codec import encode_tick

log = logging.getLogger(__name__)


class Ticker(Service):
    """Every ``interval_s`` seconds, while ``is_leader()``, one ClockTick per partition of ``topic``."""

    def __init__(
        self, bootstrap: str, topic: str, interval_s: float, source: str, is_leader: Callable[[], bool]
    ) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.topic = topic
        self.interval_s = interval_s
        self.source = source
        self.is_leader = is_leader
        self.ticks_sent = 0
        self._producer: AIOKafkaProducer | None = None

    async def on_start(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        await self._producer.start()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @Service.task
    async def _tick(self) -> None:
        producer = self._producer
        assert producer is not None
        while not self.should_stop:
            started = time.monotonic()
            if self.is_leader():
                partitions = await producer.partitions_for(self.topic)
                value = encode_tick(int(time.time() * 1000), self.source)
                sent = [await producer.send(self.topic, value, partition=p) for p in sorted(partitions)]
                await asyncio.gather(*sent)
                self.ticks_sent += len(sent)
            await self.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))
