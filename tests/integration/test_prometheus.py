"""promtool passes the shipped rules and config; a real Prometheus scrapes SlaMetrics and evaluates the rules."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from sinks.metrics import CONTENT_TYPE, SlaMetrics
from tests.integration.conftest import StartPrometheus, free_port

pytestmark = pytest.mark.integration

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "rules.yml"


def serve(metrics: SlaMetrics) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """An HTTP server on 127.0.0.1 answering every GET with ``metrics.exposition()``, in a thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def metrics_target() -> Iterator[tuple[SlaMetrics, str]]:
    """A fresh SlaMetrics served over HTTP; yields it and its ``host:port``."""
    metrics = SlaMetrics(version="9.9.9-test")
    server, thread = serve(metrics)
    try:
        yield metrics, f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def value(result: list[dict[str, Any]]) -> float:
    """The single sample's value of an instant-query result."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_promtool_checks_and_tests_the_rules(promtool: str) -> None:
    for what, path in (("rules", RULES), ("config", RULES_DIR / "prometheus.yml")):
        check = subprocess.run([promtool, "check", what, str(path)], capture_output=True, text=True, check=False)
        assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        [promtool, "test", "rules", "rules_test.yml"], cwd=RULES_DIR, capture_output=True, text=True, check=False
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "SUCCESS" in tests.stdout


def test_prometheus_scrapes_what_was_flushed(
    prometheus: StartPrometheus, metrics_target: tuple[SlaMetrics, str]
) -> None:
    metrics, target = metrics_target
    for _ in range(100):
        metrics.event("crm", "processed")
    for _ in range(7):
        metrics.event("crm", "dead_lettered", "undecodable")
    metrics.event("telephony", "dead_lettered", "late", n=3)
    for _ in range(90):
        metrics.alert("BREACH", "vip", 0.03)
    for _ in range(10):
        metrics.alert("WARNING", "vip", 1.5)
    metrics.set_open_kpis({"running": 40, "breached": 2})
    metrics.set_lag({("crm", 0): 12, ("crm", 1): 0})
    metrics.flush()

    server = prometheus(targets=[target])
    server.wait_for('up{job="slaflow"}', lambda r: len(r) == 1 and r[0]["value"][1] == "1")
    assert value(server.query('slaflow_events_total{outcome="dead_lettered", reason="undecodable"}')) == 7
    assert value(server.query('sum(slaflow_events_total{outcome="processed"})')) == 100
    assert value(server.query('slaflow_events_total{topic="telephony", reason="late"}')) == 3
    assert value(server.query('slaflow_alerts_total{kind="BREACH", policy="vip"}')) == 90
    assert value(server.query('slaflow_open_kpis{state="paused"}')) == 0
    assert value(server.query('slaflow_consumer_lag{topic="crm", partition="0"}')) == 12
    assert value(server.query('slaflow_build_info{version="9.9.9-test"}')) == 1
    # 90 observations in (0.025, 0.05], 10 in (1, 2]: Prometheus interpolates linearly within a bucket.
    p50 = value(server.query("histogram_quantile(0.5, slaflow_alert_lateness_seconds_bucket)"))
    p99 = value(server.query("histogram_quantile(0.99, slaflow_alert_lateness_seconds_bucket)"))
    assert p50 == pytest.approx(0.025 + 0.025 * 50 / 90)
    assert p99 == pytest.approx(1.9)

    # Only a flush changes what the next scrape sees.
    metrics.event("crm", "dead_lettered", "undecodable", n=5)
    metrics.set_lag({("crm", 1): 4})
    metrics.flush()
    server.wait_for(
        'slaflow_events_total{reason="undecodable"}', lambda r: len(r) == 1 and float(r[0]["value"][1]) == 12
    )
    server.wait_for('slaflow_consumer_lag{partition="0"}', lambda r: r == [])
    assert value(server.query('slaflow_consumer_lag{topic="crm", partition="1"}')) == 4


def test_the_rules_load_and_evaluate_in_a_real_server(
    prometheus: StartPrometheus, metrics_target: tuple[SlaMetrics, str]
) -> None:
    metrics, target = metrics_target
    down = f"127.0.0.1:{free_port()}"  # nothing listens there: up == 0
    server = prometheus(targets=[target, down], rule_files=[RULES])

    shipped = {
        rule.get("alert") or rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    }

    def all_healthy(groups: list[dict[str, Any]]) -> bool:
        rules = [rule for group in groups for rule in group["rules"]]
        return {rule["name"] for rule in rules} == shipped and all(rule["health"] == "ok" for rule in rules)

    server.wait_for("vector(1)", lambda _: all_healthy(server.api("rules")["groups"]))

    # The metric names the rules use are the ones SlaMetrics exposes: a dead letter between two scrapes makes
    # SlaflowDeadLetters pending, and the unreachable target makes SlaflowWorkerDown pending (both wait in `for`).
    server.wait_for('up{job="slaflow"}', lambda r: len(r) == 2)
    metrics.event("crm", "dead_lettered", "schema_violation")
    metrics.flush()
    server.wait_for('slaflow_events_total{reason="schema_violation"}', lambda r: len(r) == 1)
    metrics.event("crm", "dead_lettered", "schema_violation", n=10)
    metrics.flush()

    def pending() -> set[tuple[str, str]]:
        alerts = server.api("alerts")["alerts"]
        return {(a["labels"]["alertname"], a["labels"].get("instance") or a["labels"].get("reason")) for a in alerts}

    server.wait_for(
        "vector(1)", lambda _: {("SlaflowWorkerDown", down), ("SlaflowDeadLetters", "schema_violation")} <= pending()
    )
    assert {alert for alert in pending() if alert[0] == "SlaflowWorkerDown"} == {("SlaflowWorkerDown", down)}
    states = {a["labels"]["alertname"]: a["state"] for a in server.api("alerts")["alerts"]}
    assert states["SlaflowWorkerDown"] == "pending"
