"""The ``slaflow run`` feed: the contact-centre simulator, paced in accelerated time, written to Kafka as Avro.

Simulated time runs ``speed`` times faster than the wall clock from a weekday
morning, so that the shipped policies' warnings and breaches (a VIP first
response is due within an hour) show within the first minute. The feed is
also the clock: every ``tick_interval_s`` of wall time it writes the
simulated time as a ``ClockTick`` into every partition of the input topic, and
the demo's worker runs with its own wall-clock ticker off. A tick never
carries a time later than the next event it has yet to send, so no event is
ever late.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from agents.simulate import DEFAULT_START_MS, Simulation, SimulationConfig
from agents.topics import start_client
from schemas.codec import encode_event, encode_tick

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class DemoFeed:
    """How the demo's contact centre runs: the simulator's knobs and the pace of simulated time."""

    speed: float = 120.0
    """Simulated seconds per wall second: one simulated hour every 30 s."""
    tick_interval_s: float = 0.25
    """Wall seconds between clock ticks (15 simulated seconds at the default speed)."""
    config: SimulationConfig = field(
        default_factory=lambda: SimulationConfig(
            seed=7,
            start_ms=DEFAULT_START_MS + 9 * HOUR_MS,  # Monday 09:00 Berlin: every calendar is open
            days=1.0,
            cases_per_day=1_200,
            tier_mix={"VIP": 0.3, "Premium": 0.3, "Standard": 0.4},
            breach_share=0.3,
        )
    )


@dataclass(frozen=True)
class Fed:
    """What a feed did: the events it sent, and the simulated instant its last clock tick carried (UTC epoch ms)."""

    sent: int
    until_ms: int


async def run_feed(bootstrap: str, topic: str, partitions: int, stop: asyncio.Event, feed: DemoFeed) -> Fed:
    """Produce the simulated events and clock ticks in accelerated time until ``stop`` is set or the simulation
    ends; return what was sent."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await start_client(producer, bootstrap)
    origin_ms = feed.config.start_ms
    wall0 = time.monotonic()
    next_tick = wall0
    sent = 0
    ticked_ms = origin_ms

    def simulated_now() -> int:
        return origin_ms + int((time.monotonic() - wall0) * feed.speed * 1000)

    try:
        for event in Simulation(feed.config).events():
            due = wall0 + max(event.occurred_at_ms - origin_ms, 0) / 1000 / feed.speed
            while True:
                now = time.monotonic()
                if now >= next_tick:
                    ticked_ms = max(ticked_ms, min(simulated_now(), event.occurred_at_ms - 1))
                    tick = encode_tick(ticked_ms, "slaflow-run-feed")
                    for partition in range(partitions):
                        await producer.send(topic, tick, partition=partition)
                    next_tick = now + feed.tick_interval_s
                if now >= due or stop.is_set():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(due, next_tick) - now)
            if stop.is_set():
                break
            await producer.send(topic, encode_event(event), key=event.record_id.encode())
            sent += 1
    finally:
        await producer.stop()
    return Fed(sent, ticked_ms)
