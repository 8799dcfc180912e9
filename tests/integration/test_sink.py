"""The ClickHouse sink on the real broker and the embedded engine: every outcome exactly once, replays change
no result, and ClickHouse away mid-stream (its directory locked by another process) loses nothing."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents.demo import start_sink, start_worker, stop_process
from agents.settings import Settings
from agents.sink import catch_up, sink_group, sink_topics
from agents.topics import TopicNames, ensure_topics, group_progress
from schemas.codec import KPI_DURATION, KPI_TRANSITION, SLA_ALERT, encode_event
from sinks.clickhouse import open_sink
from streams.events import ActivityEvent, CallEvent
from tests.integration.pipeline import Message, lag, produce, read_all, simulated_stream, wait_caught_up
from tests.integration.web import free_port, get

pytestmark = pytest.mark.integration

RESULTS = {
    "durations": "SELECT count(), sum(business_ms), sum(breached) FROM {db}.kpi_durations FINAL WHERE NOT revoked",
    "instances": "SELECT outcome, count(), sum(breached), sum(warned) FROM {db}.kpi_instances GROUP BY outcome "
    "ORDER BY outcome",
    "alerts": "SELECT kind, count() FROM {db}.sla_alerts FINAL WHERE NOT revoked GROUP BY kind ORDER BY kind",
    "transitions": "SELECT count() FROM {db}.kpi_transitions FINAL",
    "segments": "SELECT status, count(), sum(duration_ms) FROM {db}.status_segments GROUP BY status ORDER BY status",
    "activities": "SELECT direction, count() FROM {db}.activities FINAL GROUP BY direction ORDER BY direction",
    "calls": "SELECT queue, count(), sum(answered), sum(wait_ms) FROM {db}.telephony_calls GROUP BY queue "
    "ORDER BY queue",
}
"""Query results that a replay of the topics must leave exactly as they were."""


def telephony(settings: Settings) -> list[Message]:
    """Calls on the calls topic (one with a case, one without) and an e-mail activity on case-events."""
    names = TopicNames.of(settings)
    t0 = 1_772_445_600_000  # Monday 2026-03-02 10:00 UTC
    call = [
        CallEvent("k1", "CALL-1", "offered", "inbound", "hotline", "", "C-0000001", t0),
        CallEvent("k2", "CALL-1", "answered", "inbound", "hotline", "ag-1", "C-0000001", t0 + 15_000),
        CallEvent("k3", "CALL-1", "ended", "inbound", "hotline", "ag-1", "C-0000001", t0 + 315_000),
        CallEvent("k4", "CALL-2", "offered", "inbound", "hotline", "", None, t0 + 1_000),
        CallEvent("k5", "CALL-2", "abandoned", "inbound", "hotline", "", None, t0 + 61_000),
    ]
    email = ActivityEvent("a1", "EM-1", "email", "email_sent", "outbound", "C-0000001", "case", t0 + 400_000)
    return [
        *((names.calls, (c.case_id or c.call_id).encode(), encode_event(c), None) for c in call),
        (names.case_events, b"C-0000001", encode_event(email), None),
        (names.case_events, b"C-0000001", b"not avro at all", None),
    ]


def sink_metric(port: int, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` on the sink's /metrics whose labels include ``labels``."""
    status, text = get(port, "/metrics")
    assert status == 200
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def lock_directory(path: Path) -> subprocess.Popen[str]:
    """Another process holding the embedded ClickHouse directory: nobody else can open it until it exits."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, chdb; c = chdb.connect(sys.argv[1]); print('locked', flush=True); "
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def results(settings: Settings) -> dict[str, list[tuple[object, ...]]]:
    with open_sink(settings.effective_clickhouse_url, settings.clickhouse_database) as sink:
        return {
            name: sink.client.query(sql.format(db=settings.clickhouse_database)).result_rows
            for name, sql in RESULTS.items()
        }


def test_outcomes_land_exactly_once_survive_clickhouse_away_and_replays(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    settings = settings.replace(tick_interval_s=0, sink_metrics_port=port, sink_batch_rows=2000)
    names = TopicNames.of(settings)
    asyncio.run(ensure_topics(settings))
    stream = simulated_stream(settings, seed=5, days=1.0, cases_per_day=1_200)
    half = len(stream) // 2
    directory = Path(settings.effective_clickhouse_url.removeprefix("chdb://"))
    topics = list(sink_topics(settings))
    inputs = list(names.inputs)
    worker = start_worker(settings, tmp_path / "worker.log")
    sink = start_sink(settings, tmp_path / "sink.log")
    holder: subprocess.Popen[str] | None = None
    try:
        asyncio.run(produce(settings.kafka_bootstrap, stream[:half]))
        wait_until(lambda: sink_metric(port, "slaflow_sink_rows_total", table="kpi_durations") > 0, "the first rows")

        # ClickHouse goes away mid-stream: the sink stops, another process takes the directory, the sink
        # restarts and cannot open it; the second half of the stream arrives meanwhile.
        assert stop_process(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]
        holder = lock_directory(directory)
        inputs_before, _ = asyncio.run(group_progress(settings.kafka_bootstrap, sink_group(settings), inputs))
        sink = start_sink(settings, tmp_path / "sink.log")
        asyncio.run(produce(settings.kafka_bootstrap, stream[half:] + telephony(settings)))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=tmp_path / "worker.log"))
        wait_until(lambda: sink_metric(port, "slaflow_sink_errors_total", table="connect") >= 2, "failed connects")
        wait_until(lambda: sink_metric(port, "slaflow_sink_backlog_messages", topic="kpi_durations") > 0, "a backlog")
        assert sink.poll() is None, "the sink must wait for ClickHouse, not exit"
        assert sink_metric(port, "slaflow_sink_rows_total") == 0

        holder.communicate("", timeout=30)  # its stdin closes: it lets go, and ClickHouse is back
        assert holder.returncode == 0
        holder = None
        wait_until(lambda: asyncio.run(lag(settings.kafka_bootstrap, sink_group(settings), topics)) == 0,
                   "the sink to catch up", timeout_s=180)  # fmt: skip
        wait_until(lambda: sink_metric(port, "slaflow_sink_backlog_messages") == 0, "the backlog gauge to reach 0")
        read = sum(sink_metric(port, "slaflow_sink_messages_total", topic=topic) for topic in ("case_events", "calls"))
        refused = sink_metric(port, "slaflow_sink_messages_total", outcome="refused")
        skipped = sink_metric(port, "slaflow_sink_messages_total", outcome="skipped")
        inputs_after, _ = asyncio.run(group_progress(settings.kafka_bootstrap, sink_group(settings), inputs))
    finally:
        if holder is not None:
            holder.kill()
            holder.communicate()
        stop_process(worker)
        assert stop_process(sink) == 0, (tmp_path / "sink.log").read_text()[-3000:]

    # Counts add up: the restarted sink counted every input message it committed as written, skipped (ticks) or
    # refused (the one undecodable message), none dropped. (Offsets of the transactional output topics also
    # count the transaction markers, so the input topics are the ones to compare.)
    assert read == inputs_after - inputs_before > 0
    assert refused == 1 and skipped > 0

    # Every KPI outcome on the topic is in ClickHouse exactly once: the latest end of each instance.
    latest: dict[str, tuple[int, int, dict[str, object]]] = {}
    for record in asyncio.run(read_all(settings.kafka_bootstrap, [names.durations])):
        d = KPI_DURATION.decode(record.value)
        if d["duration_id"] not in latest or latest[d["duration_id"]][:2] < (d["sequence"], d["revision"]):
            latest[d["duration_id"]] = (d["sequence"], d["revision"], d)
    want = sorted((d["duration_id"], d["outcome"], d["business_ms"]) for _, _, d in latest.values() if not d["revoked"])
    assert len(want) > 500
    reopened: dict[str, dict[str, object]] = {}
    for record in asyncio.run(read_all(settings.kafka_bootstrap, [names.transitions])):
        t = KPI_TRANSITION.decode(record.value)
        if t["kind"] == "KPI_REOPENED":
            reopened[t["transition_id"]] = t  # the latest revision of each
    reopens = Counter(f"{t['record_id']}/{t['kpi']}/{t['kpi_instance']}" for t in reopened.values() if not t["revoked"])
    alerts = {
        SLA_ALERT.decode(r.value)["alert_id"] for r in asyncio.run(read_all(settings.kafka_bootstrap, [names.alerts]))
    }
    db = settings.clickhouse_database
    with open_sink(settings.effective_clickhouse_url, db) as clickhouse:
        q = clickhouse.client.query
        got = sorted(
            q(f"SELECT instance_id, outcome, business_ms FROM {db}.kpi_durations FINAL WHERE NOT revoked").result_rows
        )
        assert got == want
        # An instance ended unless it was reopened after its latest end (an end's sequence counts the reopens
        # before it): those are open again.
        ended = sorted((i, outcome, ms) for i, outcome, ms in want if latest[i][0] >= reopens.get(i, 0))
        assert len(ended) < len(want) or not reopens
        assert (
            sorted(
                q(
                    f"SELECT instance_id, outcome, business_ms FROM {db}.kpi_instances WHERE outcome != 'open'"
                ).result_rows
            )
            == ended
        )
        assert q(f"SELECT count() - uniqExact(instance_id) FROM {db}.kpi_instances").result_rows == [(0,)]
        assert q(f"SELECT count() FROM {db}.sla_alerts FINAL").result_rows == [(len(alerts),)]
        assert q(f"SELECT answered, abandoned, wait_ms, handle_ms FROM {db}.telephony_calls WHERE call_id IN "
                 "('CALL-1', 'CALL-2') ORDER BY call_id").result_rows == [(True, False, 15_000, 300_000),
                                                                         (False, True, 60_000, None)]  # fmt: skip
    before = results(settings)

    # A replay of every topic (a new sink group reads them from the start) changes no result.
    replay = settings.replace(app_id=f"{settings.app_id}-replay")
    assert asyncio.run(catch_up(replay)) > len(want) + len(alerts)  # every row written a second time
    assert results(settings) == before
