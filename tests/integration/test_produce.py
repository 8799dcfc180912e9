"""`slaflow produce` against the real broker: valid lines arrive as Avro keyed by record id, bad lines are named."""

import asyncio
import io
import json

import pytest
from aiokafka import AIOKafkaConsumer

from agents.produce import LineReader, produce, read_events
from agents.settings import Settings
from agents.topics import TopicNames
from schemas.codec import INPUT_MESSAGE

pytestmark = pytest.mark.integration


def test_valid_lines_are_sent_keyed_by_record_and_bad_lines_reported(settings: Settings) -> None:
    good = [
        {"event_id": f"e{i}", "record_id": f"C-{i % 3}", "entity_type": "case", "kind": "created",
         "occurred_at": "2026-05-04T08:00:00Z", "attributes": {"tier": "VIP"}}
        for i in range(30)
    ]  # fmt: skip
    lines = [json.dumps(e) for e in good]
    lines.insert(5, "{not json")
    lines.insert(9, json.dumps({"event_id": "x", "record_id": "C-9", "kind": "created"}))
    errors = io.StringIO()
    reader = LineReader("events.jsonl", errors)
    sent = asyncio.run(produce(settings, read_events([line.encode() for line in lines], reader)))
    assert reader.rejected == 2
    assert sent == 30
    assert "events.jsonl:6: bad_json" in errors.getvalue()
    assert "events.jsonl:10: missing_field" in errors.getvalue()

    async def consume() -> list[tuple[bytes, dict]]:
        topic = TopicNames.of(settings).case_events
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[bytes, dict]] = []
        try:
            while len(got) < 30:
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    got += [(m.key, INPUT_MESSAGE.decode(m.value)["body"][1]) for m in messages]
        finally:
            await consumer.stop()
        return got

    received = asyncio.run(asyncio.wait_for(consume(), 60))
    assert sorted(body["event_id"] for _, body in received) == sorted(e["event_id"] for e in good)
    assert all(key == body["record_id"].encode() for key, body in received)
