"""SlaMetrics: nothing is visible before flush(), exact values after; gauges replace; exposition parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from sinks.metrics import CONTENT_TYPE, KPI_STATES, SinkMetrics, SlaMetrics

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules.yml"


@pytest.fixture
def metrics() -> SlaMetrics:
    return SlaMetrics(version="1.2.3")


def sample(metrics: SlaMetrics | SinkMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counters_are_invisible_before_flush_and_exact_after(metrics: SlaMetrics) -> None:
    for _ in range(1000):
        metrics.event("crm", "processed")
    metrics.event("crm", "dead_lettered", "undecodable", n=3)
    metrics.event("crm", "dead_lettered", "late")
    metrics.tick("ticks")
    metrics.tick("ticks")
    metrics.alert("BREACH", "vip", 0.2)
    metrics.transition("started", "vip", n=5)
    metrics.batch(1004, 0.012)

    assert sample(metrics, "slaflow_events_total", topic="crm", outcome="processed", reason="") is None
    assert sample(metrics, "slaflow_batch_size_count") == 0

    metrics.flush()
    assert sample(metrics, "slaflow_events_total", topic="crm", outcome="processed", reason="") == 1000
    assert sample(metrics, "slaflow_events_total", topic="crm", outcome="dead_lettered", reason="undecodable") == 3
    assert sample(metrics, "slaflow_events_total", topic="crm", outcome="dead_lettered", reason="late") == 1
    assert sample(metrics, "slaflow_ticks_total", topic="ticks") == 2
    assert sample(metrics, "slaflow_alerts_total", kind="BREACH", policy="vip") == 1
    assert sample(metrics, "slaflow_kpi_transitions_total", kind="started", policy="vip") == 5
    assert sample(metrics, "slaflow_batch_size_count") == 1
    assert sample(metrics, "slaflow_batch_size_sum") == 1004
    assert sample(metrics, "slaflow_batch_seconds_sum") == pytest.approx(0.012)
    assert sample(metrics, "slaflow_build_info", version="1.2.3") == 1

    # A second flush adds only what was recorded since the first.
    metrics.event("crm", "processed", n=10)
    metrics.flush()
    metrics.flush()
    assert sample(metrics, "slaflow_events_total", topic="crm", outcome="processed", reason="") == 1010
    assert sample(metrics, "slaflow_ticks_total", topic="ticks") == 2


def test_an_unknown_outcome_is_refused(metrics: SlaMetrics) -> None:
    with pytest.raises(ValueError, match="outcome"):
        metrics.event("crm", "dropped")


def test_open_kpis_replace_the_previous_values(metrics: SlaMetrics) -> None:
    assert {state: sample(metrics, "slaflow_open_kpis", state=state) for state in KPI_STATES} == dict.fromkeys(
        KPI_STATES, 0.0
    )
    metrics.set_open_kpis({"running": 10, "warned": 2, "breached": 1})
    assert sample(metrics, "slaflow_open_kpis", state="running") == 0
    metrics.flush()
    metrics.set_open_kpis({"running": 7, "paused": 3})
    metrics.flush()
    assert {state: sample(metrics, "slaflow_open_kpis", state=state) for state in KPI_STATES} == {
        "running": 7,
        "paused": 3,
        "warned": 0,
        "breached": 0,
    }


def test_open_kpis_take_kpi_state_values(metrics: SlaMetrics) -> None:
    metrics.set_open_kpis({"in_progress": 4, "running": 1, "warning": 2, "paused": 1})
    metrics.flush()
    assert {state: sample(metrics, "slaflow_open_kpis", state=state) for state in KPI_STATES} == {
        "running": 5,
        "paused": 1,
        "warned": 2,
        "breached": 0,
    }
    assert sample(metrics, "slaflow_open_kpis", state="in_progress") is None


def test_lag_replaces_the_previous_partitions(metrics: SlaMetrics) -> None:
    metrics.set_lag({("crm", 0): 5, ("crm", 1): 9})
    metrics.flush()
    metrics.set_lag({("crm", 1): 2, ("telephony", 3): 1})
    metrics.flush()
    assert sample(metrics, "slaflow_consumer_lag", topic="crm", partition="0") is None  # revoked: not reported
    assert sample(metrics, "slaflow_consumer_lag", topic="crm", partition="1") == 2
    assert sample(metrics, "slaflow_consumer_lag", topic="telephony", partition="3") == 1


def test_lateness_is_clamped_at_zero_and_bucketed(metrics: SlaMetrics) -> None:
    metrics.alert("WARNING", "vip", -3.0)
    metrics.alert("BREACH", "vip", 0.0)
    metrics.alert("BREACH", "std", 0.8)
    metrics.alert("ESCALATION", "std", 400.0)
    metrics.flush()
    assert sample(metrics, "slaflow_alert_lateness_seconds_count") == 4
    assert sample(metrics, "slaflow_alert_lateness_seconds_sum") == pytest.approx(400.8)
    assert sample(metrics, "slaflow_alert_lateness_seconds_bucket", le="0.01") == 2
    assert sample(metrics, "slaflow_alert_lateness_seconds_bucket", le="0.75") == 2
    assert sample(metrics, "slaflow_alert_lateness_seconds_bucket", le="1.0") == 3
    assert sample(metrics, "slaflow_alert_lateness_seconds_bucket", le="300.0") == 3
    assert sample(metrics, "slaflow_alert_lateness_seconds_bucket", le="+Inf") == 4


def test_exposition_parses(metrics: SlaMetrics) -> None:
    metrics.event("crm", "dead_lettered", "key_mismatch")
    metrics.alert("BREACH", "vip", 1.5)
    metrics.set_lag({("crm", 0): 3})
    metrics.flush()
    families = {family.name: family for family in text_string_to_metric_families(metrics.exposition().decode())}
    assert CONTENT_TYPE == metrics.CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert families["slaflow_events"].type == "counter"
    assert families["slaflow_alert_lateness_seconds"].type == "histogram"
    assert families["slaflow_consumer_lag"].type == "gauge"
    events = [s for s in families["slaflow_events"].samples if s.name == "slaflow_events_total"]
    assert [(s.labels, s.value) for s in events] == [
        ({"topic": "crm", "outcome": "dead_lettered", "reason": "key_mismatch"}, 1.0)
    ]


def test_registries_are_separate() -> None:
    first, second = SlaMetrics(), SlaMetrics(CollectorRegistry())
    first.event("crm", "processed")
    first.flush()
    assert (
        second.registry.get_sample_value("slaflow_events_total", {"topic": "crm", "outcome": "processed", "reason": ""})
        is None
    )


def test_the_shipped_rules_use_only_metrics_that_exist(metrics: SlaMetrics) -> None:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exposed = {
        family.name + suffix
        for exposition in (metrics.exposition(), SinkMetrics().exposition())
        for family in text_string_to_metric_families(exposition.decode())
        for suffix in suffixes[family.type]
    }
    groups = yaml.safe_load(RULES.read_text())["groups"]
    used = {name for group in groups for rule in group["rules"] for name in re.findall(r"\bslaflow_\w+", rule["expr"])}
    assert used and used <= exposed, used - exposed


def test_sink_metrics_are_visible_at_once() -> None:
    metrics = SinkMetrics(version="1.2.3")
    metrics.messages("alerts", "written", n=7)
    metrics.messages("case_events", "refused", "undecodable")
    metrics.messages("case_events", "skipped", n=0)
    metrics.rows({"sla_alerts": 7, "record_events": 3}, at_s=1_700_000_000.5)
    metrics.error("sla_alerts")
    metrics.set_backlog({"alerts": 12, "calls": 0})
    metrics.set_buffered(5)
    assert sample(metrics, "slaflow_sink_messages_total", topic="alerts", outcome="written", reason="") == 7
    assert (
        sample(metrics, "slaflow_sink_messages_total", topic="case_events", outcome="refused", reason="undecodable")
        == 1
    )
    assert sample(metrics, "slaflow_sink_messages_total", topic="case_events", outcome="skipped", reason="") is None
    assert sample(metrics, "slaflow_sink_rows_total", table="record_events") == 3
    assert sample(metrics, "slaflow_sink_errors_total", table="sla_alerts") == 1
    assert sample(metrics, "slaflow_sink_backlog_messages", topic="alerts") == 12
    assert sample(metrics, "slaflow_sink_buffered_rows") == 5
    assert sample(metrics, "slaflow_sink_last_write_timestamp_seconds") == 1_700_000_000.5
    assert sample(metrics, "slaflow_build_info", version="1.2.3") == 1
