"""`slaflow simulate --kafka` against the real broker: every event arrives, as fast as possible or paced."""

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from agents.settings import Settings
from agents.topics import TopicNames
from schemas.codec import INPUT_MESSAGE

pytestmark = pytest.mark.integration


async def count_messages(settings: Settings, expected_events: int) -> Counter[str]:
    topic = TopicNames.of(settings).case_events
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    kinds: Counter[str] = Counter()
    try:
        while kinds["slaflow.RecordEvent"] < expected_events:
            batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 30)
            for messages in batch.values():
                kinds.update(INPUT_MESSAGE.decode(m.value)["body"][0] for m in messages)
    finally:
        await consumer.stop()
    return kinds


@pytest.mark.parametrize("speed", ["0", "7200"])
def test_every_simulated_event_reaches_the_input_topic(settings: Settings, tmp_path: Path, speed: str) -> None:
    args = ["--seed", "3", "--days", "0.05", "--cases-per-day", "2000"]
    lines = subprocess.run(
        [sys.executable, "-m", "agents.cli", "simulate", *args, "--quiet"],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    sent = subprocess.run(
        [sys.executable, "-m", "agents.cli", "simulate", *args, "--kafka", "--bootstrap", settings.kafka_bootstrap,
         "--topic-prefix", settings.topic_prefix, "--speed", speed, "--truth", str(tmp_path / "truth.jsonl"),
         "--create-topics"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    kinds = asyncio.run(count_messages(settings, len(lines)))
    assert kinds["slaflow.RecordEvent"] == len(lines)
    assert (kinds["slaflow.ClockTick"] > 0) == (speed != "0")  # paced: the feed is the clock
    assert all(json.loads(row)["expected"] for row in (tmp_path / "truth.jsonl").read_text().splitlines())
