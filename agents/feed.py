"""A small simulated contact centre for the ``slaflow run`` demo, written to Kafka as Avro.

Every ``interval_s`` a customer opens a case (tier VIP, Premium or Standard).
Some cases get a first response in time, some are cancelled (the customer
solved it), and some are left alone, so that the demo policy's warnings and
breaches fire within the first minute. Deterministic for a given seed.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from schemas.codec import INPUT_MESSAGE
from streams.events import RecordEvent

TIERS = ("VIP", "Premium", "Standard")
OWNERS = ("ana", "bruno", "chen", "dara", "emil")
QUEUES = ("billing", "repairs", "sales")


@dataclass(frozen=True)
class FeedPlan:
    """How the simulated centre behaves: shares of outcomes; times in seconds after the case opened."""

    interval_s: float = 1.5
    answered_share: float = 0.35
    cancelled_share: float = 0.15
    answer_after_s: tuple[float, float] = (3.0, 25.0)
    cancel_after_s: float = 6.0


def simulated_events(start_ms: int, seed: int = 7, plan: FeedPlan | None = None) -> Iterator[RecordEvent]:
    """Endless record events in time order, the first case opening at ``start_ms`` (UTC epoch ms)."""
    plan = plan or FeedPlan()
    rng = random.Random(seed)
    pending: list[tuple[int, int, RecordEvent]] = []
    sequence = 0
    next_case_ms = start_ms
    while True:
        if pending and pending[0][0] <= next_case_ms:
            yield heapq.heappop(pending)[2]
            continue
        sequence += 1
        record_id = f"C-{sequence:05d}"
        attributes = {
            "tier": rng.choice(TIERS),
            "owner": rng.choice(OWNERS),
            "queue": rng.choice(QUEUES),
            "priority": rng.choice(("normal", "high")),
            "subject": "coffee grinder broken" if sequence % 4 == 0 else "invoice question",
        }
        yield RecordEvent(f"{record_id}-created", record_id, "case", "created", next_case_ms, attributes)
        roll = rng.random()
        if roll < plan.answered_share:
            at = next_case_ms + int(rng.uniform(*plan.answer_after_s) * 1000)
            heapq.heappush(
                pending, (at, sequence, RecordEvent(f"{record_id}-reply", record_id, "case", "first_response", at))
            )
        elif roll < plan.answered_share + plan.cancelled_share:
            at = next_case_ms + int(plan.cancel_after_s * 1000)
            heapq.heappush(
                pending, (at, sequence, RecordEvent(f"{record_id}-cancel", record_id, "case", "cancelled", at))
            )
        next_case_ms += int(plan.interval_s * 1000)


def encode_event(event: RecordEvent) -> bytes:
    """The InputMessage bytes of a record event."""
    body = {
        "event_id": event.event_id,
        "record_id": event.record_id,
        "entity_type": event.entity_type,
        "kind": event.kind,
        "occurred_at_ms": event.occurred_at_ms,
        "attributes": dict(event.attributes),
    }
    return INPUT_MESSAGE.encode({"body": ("slaflow.RecordEvent", body)})


async def run_feed(bootstrap: str, topic: str, stop: asyncio.Event, seed: int = 7) -> int:
    """Produce the simulated events in real time until ``stop`` is set; return how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    sent = 0
    try:
        for event in simulated_events(int(time.time() * 1000), seed):
            delay = event.occurred_at_ms / 1000 - time.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            await producer.send_and_wait(topic, encode_event(event), key=event.record_id.encode())
            sent += 1
    finally:
        await producer.stop()
    return sent
