"""One case end to end through the real parts: Avro event -> Kafka -> Faust agent and table ->
warning and breach on the alerts topic, on time with no further event -> durations in ClickHouse."""

import asyncio
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.sink import catch_up
from agents.topics import TopicNames, ensure_topics
from schemas.codec import DEAD_LETTER, INPUT_MESSAGE, SLA_ALERT, encode_event
from sinks.clickhouse import open_sink
from streams.events import RecordEvent

pytestmark = pytest.mark.integration

POLICY = """
version: "slice-1"
policies:
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    kpis:
      - {name: first_response, target: 4s, warning: 50%, start: {kind: created}, stop: {kind: first_response}}
"""


async def wait_for_ticks(settings: Settings, worker: "subprocess.Popen[bytes]", timeout_s: float = 90.0) -> None:
    """The worker is up once its ticker writes into the input topic."""
    consumer = AIOKafkaConsumer(
        TopicNames.of(settings).case_events,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and worker.poll() is None:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                if any(INPUT_MESSAGE.decode(m.value)["body"][0] == "slaflow.ClockTick" for m in messages):
                    return
        raise AssertionError(f"the worker wrote no clock tick (exit code {worker.poll()})")
    finally:
        await consumer.stop()


async def read(bootstrap: str, topic: str, count: int, timeout_s: float = 60.0) -> list[tuple[float, bytes]]:
    """The first ``count`` messages of ``topic`` with the wall time each was received."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level="read_committed"
    )
    await consumer.start()
    got: list[tuple[float, bytes]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=200)).values():
                got += [(time.time(), m.value) for m in messages]
    finally:
        await consumer.stop()
    return got


def test_case_created_fires_warning_and_breach_and_lands_in_clickhouse(settings: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    settings = settings.replace(policies=policy)
    names = TopicNames.of(settings)
    asyncio.run(ensure_topics(settings))
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        asyncio.run(wait_for_ticks(settings, worker))
        start_ms = int(time.time() * 1000)
        event = RecordEvent("e-1", "C-1", "case", "created", start_ms, {"tier": "VIP", "owner": "ana", "queue": "q1"})

        async def produce() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
            await producer.start()
            await producer.send_and_wait(names.case_events, encode_event(event), key=b"C-1")
            await producer.send_and_wait(names.case_events, b"not avro at all", key=b"C-2")
            await producer.stop()

        asyncio.run(produce())
        alerts = asyncio.run(read(settings.kafka_bootstrap, names.alerts, 2))
        dead = asyncio.run(read(settings.kafka_bootstrap, names.dead_letters, 1))
    finally:
        code = stop_process(worker)
    log = (tmp_path / "worker.log").read_text()
    assert code in (0, -15), log[-3000:]

    decoded = [(received, SLA_ALERT.decode(value)) for received, value in alerts]
    assert [a["kind"] for _, a in decoded] == ["WARNING", "BREACH"], log[-3000:]
    warning, breach = (a for _, a in decoded)
    assert warning["alert_id"] == "C-1/first_response/0/WARNING"
    assert (warning["threshold_at_ms"], warning["business_elapsed_ms"]) == (start_ms + 2000, 2000)
    assert (breach["deadline_ms"], breach["business_elapsed_ms"], breach["policy_version"]) == (
        start_ms + 4000,
        4000,
        "slice-1",
    )
    assert breach["attributes"]["owner"] == "ana"
    for received, alert in decoded:  # fired by clock ticks alone, with no further event
        assert alert["fired_at_ms"] >= alert["threshold_at_ms"]
        assert received * 1000 - alert["threshold_at_ms"] < 5000

    [(_, letter)] = dead
    letter = DEAD_LETTER.decode(letter)
    assert (letter["reason"], letter["value"], letter["key"], letter["source_topic"]) == (
        "undecodable",
        b"not avro at all",
        b"C-2",
        names.case_events,
    )

    asyncio.run(catch_up(settings))  # the ClickHouse sink, until it has written everything
    with open_sink(settings.effective_clickhouse_url, settings.clickhouse_database) as sink:
        rows = sink.client.query(
            f"SELECT alert_id, kind, business_elapsed_ms, toUnixTimestamp64Milli(deadline), tier, owner "
            f"FROM {sink.database}.sla_alerts FINAL ORDER BY threshold_at"
        ).result_rows
    assert rows == [
        ("C-1/first_response/0/WARNING", "WARNING", 2000, start_ms + 4000, "VIP", "ana"),
        ("C-1/first_response/0/BREACH", "BREACH", 4000, start_ms + 4000, "VIP", "ana"),
    ]
