"""The product brief's stories end to end through the real broker and a worker: Avro in, alerts out.

Time is simulated: the test writes the clock ticks itself (the worker's ticker is off), a tick at each event's
instant into every partition, so each deadline fires at a known watermark with no event on the case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics
from schemas.codec import KPI_DURATION, KPI_TRANSITION, SLA_ALERT, encode_input, encode_tick
from streams.events import CallEvent, RecordEvent, routing_key
from tests.integration.pipeline import Message, produce, read_all, wait_caught_up

pytestmark = pytest.mark.integration

H = 3_600_000
D = 24 * H
T0 = int(datetime(2026, 5, 4, 7, 0, tzinfo=UTC).timestamp() * 1000)  # Monday 09:00 in Berlin


def case(record_id: str, kind: str, at_ms: int, **attributes: str) -> RecordEvent:
    return RecordEvent(f"{record_id}-{kind}-{at_ms}", record_id, "case", kind, at_ms, attributes)


COFFEE = [
    # 1. the plug was loose: cancelled after 15 minutes
    case("coffee-cancel", "created", T0, type="field_service", owner="tech-1"),
    case("coffee-cancel", "cancelled", T0 + H // 4),
    # 2. repaired on site and closed
    case("coffee-onsite", "created", T0, type="field_service", owner="tech-2"),
    case("coffee-onsite", "status_changed", T0 + 2 * H + H // 2, status="diagnosed"),
    case("coffee-onsite", "resolved", T0 + 5 * H),
    # 3. repaired at the manufacturer: paused at the external service, resumed when back in the warehouse
    case("coffee-external", "created", T0, type="field_service", owner="tech-3"),
    case("coffee-external", "status_changed", T0 + 2 * H, status="diagnosed"),
    case("coffee-external", "status_changed", T0 + D, status="at_external_service"),
    case("coffee-external", "status_changed", T0 + 3 * D, status="back_in_warehouse"),
    case("coffee-external", "resolved", T0 + 4 * D + 6 * H),
    # 4. time runs out: not back after 3 days
    case("coffee-late", "created", T0, type="field_service", owner="tech-4"),
    case("coffee-late", "status_changed", T0 + 2 * H, status="diagnosed"),
]


def timeline(settings: Settings, events: list[Any], end_ms: int) -> Iterator[Message]:
    """Each event on its topic with its routing key, then a tick at its instant into every partition."""
    names = TopicNames.of(settings)
    for event in sorted(events, key=lambda e: e.occurred_at_ms):
        topic = names.calls if isinstance(event, CallEvent) else names.case_events
        yield topic, routing_key(event).encode(), encode_input(event), None
        for partition in range(settings.partitions):
            yield names.case_events, None, encode_tick(event.occurred_at_ms, "test"), partition
    for partition in range(settings.partitions):
        yield names.case_events, None, encode_tick(end_ms, "test"), partition


def run_story(
    settings: Settings, tmp_path: Path, events: list[Any], end_ms: int, store: str = "memory"
) -> dict[str, list[dict[str, Any]]]:
    """Run a worker over the events; return the decoded alerts, transitions and durations."""
    settings = settings.replace(tick_interval_s=0, web_port=0, store=store)
    asyncio.run(ensure_topics(settings))
    names = TopicNames.of(settings)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        # one message at a time in order, so that the calls topic and the case events interleave as written
        for message in timeline(settings, events, end_ms):
            asyncio.run(produce(settings.kafka_bootstrap, [message]))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))
    finally:
        stop_process(worker)

    def read(topic: str, codec: Any) -> list[dict[str, Any]]:
        return [codec.decode(r.value) for r in asyncio.run(read_all(settings.kafka_bootstrap, [topic]))]

    return {
        "alerts": sorted(read(names.alerts, SLA_ALERT), key=lambda a: (a["threshold_at_ms"], a["record_id"], a["kpi"])),
        "transitions": read(names.transitions, KPI_TRANSITION),
        "durations": read(names.durations, KPI_DURATION),
    }


def test_coffee_machine_story(settings: Settings, tmp_path: Path) -> None:
    out = run_story(settings, tmp_path, COFFEE, T0 + 6 * D)
    alerts = [(a["record_id"], a["kpi"], a["kind"], a["level"], a["threshold_at_ms"]) for a in out["alerts"]]
    assert alerts == [
        ("coffee-late", "repair", "WARNING", 0, T0 + 2 * D),  # 2 of 3 business days (Mon-Sat 08-18) used
        ("coffee-late", "repair", "BREACH", 0, T0 + 3 * D),  # Thursday 09:00: the failure is recorded ...
        ("coffee-late", "repair", "ESCALATION", 1, T0 + 3 * D + 4 * H),  # ... and 4 business hours on, the director
        # back in the warehouse on Thursday 09:00, one business day later the return to the customer is due ...
        ("coffee-external", "equipment_return", "WARNING", 0, T0 + 4 * D),
        ("coffee-external", "repair", "WARNING", 0, T0 + 4 * D),  # ... and 2 days used: the days away do not count
    ]
    late_breach = out["alerts"][1]
    assert [(a["type"], a["targets"]) for a in late_breach["actions"]] == [
        ("notify", ["owner", "supervisor"]),
        ("notify", ["customer"]),
    ]
    assert late_breach["attributes"]["owner"] == "tech-4"

    def kinds(record_id: str) -> list[tuple[str, str]]:
        return [(t["kpi"], t["kind"]) for t in out["transitions"] if t["record_id"] == record_id]

    assert sorted(kinds("coffee-cancel")) == sorted([
        ("arrive_and_diagnose", "KPI_STARTED"), ("repair", "KPI_STARTED"),
        ("arrive_and_diagnose", "KPI_CANCELLED"), ("repair", "KPI_CANCELLED"),
    ])  # fmt: skip
    assert not [a for a in out["alerts"] if a["record_id"] == "coffee-cancel"]  # the technician is never told
    durations = {(d["record_id"], d["kpi"]): d for d in out["durations"]}
    onsite = durations[("coffee-onsite", "repair")]
    assert (onsite["outcome"], onsite["business_ms"], onsite["paused_ms"]) == ("met", 5 * H, 0)
    assert durations[("coffee-onsite", "arrive_and_diagnose")]["business_ms"] == 2 * H + H // 2
    external = durations[("coffee-external", "repair")]
    # net time: Monday 09:00 to Tuesday 09:00 (10 business hours), Thursday 09:00 to Friday 15:00 (16)
    assert (external["outcome"], external["business_ms"], external["paused_ms"]) == ("met", 26 * H, 2 * D)
    assert durations[("coffee-cancel", "repair")]["outcome"] == "cancelled"
    assert ("coffee-late", "repair") not in durations  # still open: failed, not ended


def test_answered_outbound_call_is_the_first_response_of_its_case_with_the_rocksdb_store(
    settings: Settings, tmp_path: Path
) -> None:
    vip = case("vip-1", "created", T0, tier="VIP", owner="ana", queue="vip-desk")
    call = CallEvent("call-7-answered", "call-7", "answered", "outbound", "vip-desk", "ana", "vip-1",
                     T0 + 20 * 60_000, {})  # fmt: skip
    out = run_story(settings, tmp_path, [vip, call], T0 + 2 * D, store="rocksdb")
    assert list((tmp_path / "data" / "worker").rglob("*-records-*.db")), "the table is in RocksDB, one db per partition"
    first = [t for t in out["transitions"] if t["kpi"] == "first_response"]
    assert [(t["kind"], t["business_elapsed_ms"]) for t in first] == [
        ("KPI_STARTED", 0),
        ("KPI_SUCCEEDED", 20 * 60_000),
    ]
    assert not [a for a in out["alerts"] if a["kpi"] == "first_response"]
