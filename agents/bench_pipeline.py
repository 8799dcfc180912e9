"""``slaflow bench pipeline``: end-to-end throughput and alert lateness through a real broker, one worker.

Three measurements in one run, so that their ratio holds on a noisy machine:

1. **Pipeline.** The ``bench core`` workload (cases of every tier on the shipped
   policies, ticks every simulated minute) is written to the input topic first;
   then one ``slaflow worker`` (exactly-once) processes it. Events per second
   = input messages / time from the worker's first commit to its last, read
   from the group's committed offsets.
2. **Baseline.** The same topic read by a bare aiokafka consumer in batches
   (``getmany``) with fastavro decoding each message, nothing else.
3. **Lateness.** A worker in wall-clock mode (its ticker on) under a steady
   load of new cases whose warnings and breaches fall due seconds later; a
   ``read_committed`` consumer of the alerts topic records when each alert
   becomes visible. Lateness = that instant minus the alert's threshold.

The broker is started for the run (or taken from ``KAFKA_BOOTSTRAP``); every
topic is fresh. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from agents.bench import GOAL_P99_LATENESS_S, GOAL_PIPELINE_RATIO, Workload, workload
from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics, group_progress
from deploy.kafka.broker import LocalKafka
from schemas.codec import INPUT_MESSAGE, SLA_ALERT, encode_event, encode_tick
from streams.events import RecordEvent

PARTITIONS = 4

LATENESS_POLICY = """\
version: "bench-lateness-1"
lateness: {allowed: 0s, max: 1h}
calendars:
  always: {preset: "24/7", timezone: UTC}
policies:
  - name: bench
    applies_when: {entity_type: case}
    calendar: always
    kpis:
      - {name: first_response, target: 4s, warning: 2s, start: {kind: created}, stop: {kind: first_response}}
"""


async def _produce(bootstrap: str, topic: str, items: Iterator[RecordEvent | int]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    sent = 0
    try:
        pending = []
        for item in items:
            if isinstance(item, int):
                tick = encode_tick(item, "bench")
                pending += [await producer.send(topic, tick, partition=p) for p in range(PARTITIONS)]
                sent += PARTITIONS
            else:
                pending.append(await producer.send(topic, encode_event(item), key=item.record_id.encode()))
                sent += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def _pipeline(settings: Settings, log: Path, cases: int) -> dict[str, Any]:
    topic = TopicNames.of(settings).case_events
    messages = await _produce(settings.kafka_bootstrap, topic, workload(Workload(cases=cases)))
    worker = start_worker(settings, log)
    try:
        first: tuple[float, int] | None = None
        while True:
            done, end = await group_progress(settings.kafka_bootstrap, settings.app_id, [topic])
            now = time.monotonic()
            if first is None and done > 0:
                first = (now, done)
            if done >= end:
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log}")
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stop_process, worker)
    assert first is not None
    elapsed = max(now - first[0], 1e-3)
    return {"messages": messages, "seconds": round(elapsed, 3), "events_per_second": round((end - first[1]) / elapsed)}


async def _baseline(settings: Settings) -> dict[str, Any]:
    """A bare consumer of the same topic: batch fetch and fastavro decode, nothing else."""
    topic = TopicNames.of(settings).case_events
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=64 << 20)  # fmt: skip
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        total = sum((await consumer.end_offsets(partitions)).values())
        decode = INPUT_MESSAGE.decode
        count = 0
        started = time.perf_counter()
        while count < total:
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                for record in records:
                    decode(record.value)
                count += len(records)
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"messages": count, "seconds": round(elapsed, 3), "events_per_second": round(count / elapsed)}


async def _lateness(settings: Settings, log: Path, rate: int, seconds: float) -> dict[str, Any]:
    """Cases created at ``rate`` per second for ``seconds``; the visible-at minus threshold of every alert."""
    names = TopicNames.of(settings)
    worker = start_worker(settings, log)
    consumer = AIOKafkaConsumer(names.alerts, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                isolation_level="read_committed", enable_auto_commit=False)  # fmt: skip
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    lateness: list[float] = []
    expected = 0
    producing = True

    async def read_until(deadline: float) -> None:
        while time.monotonic() < deadline and (producing or len(lateness) < expected):
            for records in (await consumer.getmany(timeout_ms=100)).values():
                seen = time.time()
                lateness.extend(seen - SLA_ALERT.decode(r.value)["threshold_at_ms"] / 1000 for r in records)

    try:
        await _wait_for_ticks(settings, worker, log)
        reader = asyncio.create_task(read_until(time.monotonic() + seconds + 60))
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate)
            while n < due:
                now_ms = int(time.time() * 1000)
                event = RecordEvent(f"b{n}", f"B-{n}", "case", "created", now_ms, {"tier": "VIP"})
                await producer.send(names.case_events, encode_event(event), key=event.record_id.encode())
                n += 1
            await asyncio.sleep(0.01)
        expected = 2 * n
        producing = False
        await reader
    finally:
        await producer.stop()
        await consumer.stop()
        await asyncio.to_thread(stop_process, worker)
    if len(lateness) < expected:
        raise RuntimeError(f"only {len(lateness)} of {expected} alerts arrived; see {log}")
    cuts = statistics.quantiles(lateness, n=100, method="inclusive")
    return {"events": n, "alerts": len(lateness), "rate_per_second": rate,
            "p50_s": round(cuts[49], 3), "p99_s": round(cuts[98], 3), "max_s": round(max(lateness), 3)}  # fmt: skip


async def _wait_for_ticks(settings: Settings, worker: Any, log: Path) -> None:
    """The worker is ready once its ticker writes into the input topic and it commits."""
    topic = TopicNames.of(settings).case_events
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        done, _ = await group_progress(settings.kafka_bootstrap, settings.app_id, [topic])
        if done > 0:
            return
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with code {worker.returncode}; see {log}")
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the worker did not start within 120 s; see {log}")


def bench_pipeline(cases: int = 40_000, rate: int = 1_000, seconds: float = 20.0) -> dict[str, Any]:
    """The ``bench pipeline`` figures (see the module doc)."""
    with tempfile.TemporaryDirectory(prefix="slaflow-bench-") as tmp, contextlib.ExitStack() as stack:
        root = Path(tmp)
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "")
        if not bootstrap:
            kafka = LocalKafka(data_dir=root / "kafka")
            bootstrap = kafka.start()
            stack.callback(kafka.stop)
        policy = root / "lateness.yaml"
        policy.write_text(LATENESS_POLICY)
        run = f"bench{int(time.time())}"
        base = Settings.from_env().replace(kafka_bootstrap=bootstrap, partitions=PARTITIONS, web_port=0,
                                           processing_guarantee="exactly_once")  # fmt: skip
        throughput = base.replace(topic_prefix=f"{run}-t", app_id=f"{run}-t", data_dir=root / "t", tick_interval_s=0)
        late = base.replace(topic_prefix=f"{run}-l", app_id=f"{run}-l", data_dir=root / "l", policies=policy)
        asyncio.run(ensure_topics(throughput))
        asyncio.run(ensure_topics(late))
        pipeline = asyncio.run(_pipeline(throughput, root / "pipeline.log", cases))
        baseline = asyncio.run(_baseline(throughput))
        lateness = asyncio.run(_lateness(late, root / "lateness.log", rate, seconds))
    ratio = pipeline["events_per_second"] / baseline["events_per_second"]
    return {
        "benchmark": "pipeline",
        "events_per_second": pipeline["events_per_second"],
        "baseline_events_per_second": baseline["events_per_second"],
        "ratio": round(ratio, 3),
        "ratio_goal": GOAL_PIPELINE_RATIO,
        "alert_lateness_p50_s": lateness["p50_s"],
        "alert_lateness_p99_s": lateness["p99_s"],
        "alert_lateness_p99_goal_s": GOAL_P99_LATENESS_S,
        "goals_met": ratio >= GOAL_PIPELINE_RATIO and lateness["p99_s"] <= GOAL_P99_LATENESS_S,
        "pipeline": pipeline,
        "baseline": baseline,
        "lateness": lateness,
        "processing_guarantee": "exactly_once",
        "partitions": PARTITIONS,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }
