"""Bad input on the real broker: every kind goes to the dead-letter topic with its bytes, origin and reason, the
worker keeps going, and the counts add up: messages in = processed + dead-lettered."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics
from schemas.codec import DEAD_LETTER, INPUT_MESSAGE, encode_event, encode_tick
from streams.events import RecordEvent
from tests.integration.pipeline import produce, read_all, wait_caught_up
from tests.integration.web import free_port, get, wait_ready

pytestmark = pytest.mark.integration

H = 3_600_000
T0 = 1_777_878_000_000

POLICY = """
version: "dl-1"
lateness: {allowed: 0s, max: 1h}
unmatched: reject
calendars:
  always: {preset: "24/7", timezone: UTC}
policies:
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    calendar: always
    kpis:
      - {name: first_response, target: 1h, warning: 30m, start: {kind: created}, stop: {kind: first_response}}
"""


def test_bad_input_is_dead_lettered_and_counts_add_up(settings: Settings, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    port = free_port()
    settings = settings.replace(policies=policy, tick_interval_s=0, web_port=port)
    asyncio.run(ensure_topics(settings))
    topic = TopicNames.of(settings).case_events
    good = [RecordEvent(f"g{n}", f"C-{n}", "case", "created", T0 + 3 * H + n, {"tier": "VIP"}) for n in range(20)]
    violation = INPUT_MESSAGE.encode({"body": ("slaflow.RecordEvent", {
        "event_id": "", "record_id": "C-9", "entity_type": "case", "kind": "created", "occurred_at_ms": T0,
        "attributes": {}})})  # fmt: skip
    late = RecordEvent("late", "C-0", "case", "first_response", T0, {})  # 3 h behind the watermark, max is 1 h
    uncovered = RecordEvent("u1", "L-1", "lead", "created", T0 + 3 * H, {})  # no policy covers a lead: reject
    messages = [(topic, None, encode_tick(T0 + 3 * H, "test"), p) for p in range(settings.partitions)]
    messages += [(topic, e.record_id.encode(), encode_event(e), None) for e in good]
    bad = [
        (topic, b"C-1", b"\x00not avro", None),
        (topic, b"C-9", violation, None),
        (topic, b"C-0", encode_event(late), None),
        (topic, b"L-1", encode_event(uncovered), None),
        (topic, b"someone-else", encode_event(good[0]), None),
    ]
    messages += bad
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        wait_ready(port)
        asyncio.run(produce(settings.kafka_bootstrap, messages))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))
        letters = [DEAD_LETTER.decode(r.value) for r in
                   asyncio.run(read_all(settings.kafka_bootstrap, [TopicNames.of(settings).dead_letters]))]  # fmt: skip
        status, text = get(port, "/metrics")
        assert worker.poll() is None, "the worker must keep going"
        assert "input events were dead-lettered" not in log.read_text()  # 5 of 25: no alarm

        # Then a feed of past events (a replay into a wall-clock worker): every one is late, and the log says so.
        past = [RecordEvent(f"p{n}", f"P-{n}", "case", "created", T0, {"tier": "VIP"}) for n in range(30)]
        asyncio.run(
            produce(settings.kafka_bootstrap, [(topic, e.record_id.encode(), encode_event(e), None) for e in past])
        )
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))
    finally:
        stop_process(worker)
    (warning,) = [line for line in log.read_text().splitlines() if "input events were dead-lettered" in line]
    assert "(late " in warning and "SLAFLOW_TICK_INTERVAL=0" in warning and "--start now" in warning, warning

    assert Counter(letter["reason"] for letter in letters) == Counter(
        {"undecodable": 1, "schema_violation": 1, "late": 1, "no_policy": 1, "key_mismatch": 1}
    )
    for letter in letters:
        assert letter["source_topic"] == topic and letter["source_offset"] >= 0 and letter["detail"]
        assert (letter["key"], letter["value"]) in {(key, value) for _, key, value, _ in bad}

    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(text)}
    by_outcome: Counter[str] = Counter()
    for sample in families["slaflow_events"].samples:
        if sample.name == "slaflow_events_total":
            by_outcome[sample.labels["outcome"]] += int(sample.value)
    assert by_outcome["dead_lettered"] == 5
    assert by_outcome["processed"] + by_outcome["dead_lettered"] == len(messages)  # in = processed + dead-lettered
