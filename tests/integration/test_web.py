"""The worker's web views with two workers: a record is answered by any worker (routed to its holder), the
urgent list gathers the KPIs of every partition whichever worker holds them, and /metrics, /health, /ready."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics
from schemas.codec import encode_event, encode_tick
from streams.events import RecordEvent
from tests.integration.pipeline import produce, wait_caught_up
from tests.integration.web import free_port, get, wait_ready

pytestmark = pytest.mark.integration

H = 3_600_000
T0 = 1_777_878_000_000  # Monday 2026-05-04 09:00 in Berlin


def test_views_answer_across_two_workers(settings: Settings, tmp_path: Path) -> None:
    ports = free_port(), free_port()
    base = settings.replace(tick_interval_s=0)
    first = base.replace(web_port=ports[0])
    second = base.replace(web_port=ports[1], data_dir=tmp_path / "data-b",
                          clickhouse_url=f"chdb://{tmp_path / 'clickhouse-b'}")  # fmt: skip
    asyncio.run(ensure_topics(base))
    names = TopicNames.of(base)
    workers = [start_worker(first, tmp_path / "a.log"), start_worker(second, tmp_path / "b.log")]
    try:
        for port in ports:
            wait_ready(port)
        time.sleep(8)  # the second worker's join: both hold partitions now
        for port in ports:
            wait_ready(port)
        cases = [RecordEvent(f"e{n}", f"C-{n}", "case", "created", T0 + n * 60_000,
                             {"tier": "VIP", "owner": "ana" if n % 2 else "bo", "queue": "billing"})
                 for n in range(12)]  # fmt: skip
        messages = [(names.case_events, e.record_id.encode(), encode_event(e), None) for e in cases]
        messages += [(names.case_events, None, encode_tick(T0 + 20 * 60_000, "test"), p) for p in range(4)]
        asyncio.run(produce(base.kafka_bootstrap, messages))
        asyncio.run(wait_caught_up(base, lambda: all(w.poll() is None for w in workers), log=tmp_path / "a.log"))

        # Any worker answers for any record.
        for port in ports:
            status, view = get(port, "/sla/records/C-3")
            assert status == 200, view
            first_response = next(k for k in view["kpis"] if k["kpi"] == "first_response")
            assert first_response["state"] == "in_progress"
            assert first_response["deadline_ms"] == T0 + 3 * 60_000 + H
            assert first_response["remaining_ms"] == T0 + 3 * 60_000 + H - view["now_ms"]
            assert first_response["business_elapsed_ms"] == 17 * 60_000  # watermark T0+20 min, started T0+3 min
            assert first_response["paused_ms"] == 0
        assert get(ports[0], "/sla/records/nobody")[0] == 404

        # The urgent list is the same from either worker and spans every partition.
        answers = [get(port, "/sla/urgent?owner=ana&limit=3")[1]["kpis"] for port in ports]
        assert answers[0] == answers[1]
        assert [(k["record_id"], k["kpi"]) for k in answers[0]] == [
            ("C-1", "first_response"), ("C-3", "first_response"), ("C-5", "first_response"),
        ]  # fmt: skip
        everyone = get(ports[1], "/sla/urgent?limit=10000")[1]["kpis"]
        assert {k["record_id"] for k in everyone} == {f"C-{n}" for n in range(12)}
        assert get(ports[0], "/sla/urgent?limit=0")[0] == 400

        assert get(ports[0], "/health") == (200, {"status": "ok"})
        status, text = get(ports[0], "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        processed = sum(s.value for s in families["slaflow_events"].samples if s.labels.get("outcome") == "processed")
        assert processed > 0
    finally:
        for worker in workers:
            stop_process(worker)
