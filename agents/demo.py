"""``slaflow run``: the whole pipeline on this machine, with a simulated contact centre.

Starts (unless ``KAFKA_BOOTSTRAP`` names a broker) a local Kafka broker,
creates the topics, starts a worker process and a ClickHouse sink process,
feeds simulated cases, and prints every alert as it arrives, one line each.
On Ctrl-C or after ``duration_s`` it stops the feed, the worker and the sink,
writes what the sink had not written yet, prints what the embedded ClickHouse
recorded and the bottleneck report's headline, writes the HTML report
(``DATA_DIR/report.html``), and stops the broker. Children are started in
their own process groups and die with this process (``PR_SET_PDEATHSIG``),
so nothing is left behind however the run ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer
from clickhouse_connect.driver.client import Client

from agents.feed import DemoFeed, run_feed
from agents.settings import Settings
from agents.sink import catch_up
from agents.topics import TopicNames, ensure_topics
from deploy.kafka.broker import LocalKafka, die_with_parent
from schemas.codec import SLA_ALERT
from sinks.clickhouse import connect
from sinks.report import write_report
from streams.policy import format_duration_ms


def _duration(ms: float) -> str:
    """``1h30m``, ``45m``, ``20s``: business time as people read it, to the second."""
    return format_duration_ms(round(ms / 1000) * 1000)


def _instant(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%a %Y-%m-%d %H:%M UTC")


def format_alert(alert: dict[str, Any], started: float) -> str:
    """One human-readable line for an alert."""
    attrs = alert["attributes"]
    deadline = datetime.fromtimestamp(alert["deadline_ms"] / 1000, tz=UTC).strftime("%H:%M:%S")
    share = 100 * alert["business_elapsed_ms"] / alert["target_ms"]
    kind = f"{alert['kind']}#{alert['level']}" if alert["level"] else alert["kind"]
    if alert["revoked"]:
        kind = f"REVOKED {kind}"
    return (
        f"[+{time.time() - started:5.1f}s] {kind:<7} {alert['entity_type']} {alert['record_id']} "
        f"{alert['kpi']} ({alert['policy']}): {_duration(alert['business_elapsed_ms'])} of "
        f"{_duration(alert['target_ms'])} used ({share:.0f}%), deadline {deadline} UTC; "
        f"tier={attrs.get('tier', '-')} owner={attrs.get('owner', '-')} queue={attrs.get('queue', '-')}"
    )


async def print_alerts(settings: Settings, stop: asyncio.Event, started: float, out: TextIO) -> int:
    """Print alerts from the alerts topic until ``stop`` is set; return how many."""
    consumer = AIOKafkaConsumer(
        TopicNames.of(settings).alerts,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    count = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for messages in batch.values():
                for message in messages:
                    print(format_alert(SLA_ALERT.decode(message.value), started), file=out, flush=True)
                    count += 1
    finally:
        await consumer.stop()
    return count


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``slaflow worker`` for ``settings`` as a child process logging to ``log_path``."""
    return start_child("worker", settings, log_path)


def start_sink(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``slaflow sink`` (the ClickHouse sink) for ``settings`` as a child process logging to ``log_path``."""
    return start_child("sink", settings, log_path)


def start_child(command: str, settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``slaflow COMMAND`` with ``settings`` (as environment variables), logging to ``log_path``."""
    env = {**os.environ, **settings.replace(clickhouse_url=settings.effective_clickhouse_url).to_env()}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "agents.cli", command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 30.0) -> int:
    """SIGTERM, wait up to ``timeout_s``, then SIGKILL; return the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def clickhouse_summary(client: Client, database: str) -> list[str]:
    """Lines describing the alerts ClickHouse holds, per kind and KPI."""
    rows = client.query(
        f"SELECT kind, kpi, count() AS alerts, avg(business_elapsed_ms) / 1000 AS avg_s "
        f"FROM {database}.sla_alerts FINAL WHERE NOT revoked GROUP BY kind, kpi ORDER BY kind, kpi"
    ).result_rows
    lines = [
        f"  {kind:<10} {kpi:<20} {n:>4} alerts, mean business time used {_duration(avg * 1000)}"
        for kind, kpi, n, avg in rows
    ]
    return lines or ["  (no alert rows)"]


async def _run(settings: Settings, duration_s: float | None, out: TextIO) -> int:
    run_dir = Path(settings.data_dir)
    names = TopicNames.of(settings)
    await ensure_topics(settings)
    worker = start_worker(settings, run_dir / "worker.log")
    sink = start_sink(settings, run_dir / "sink.log")
    plan = DemoFeed()
    print(
        f"worker started (pid {worker.pid}, log {run_dir / 'worker.log'}), ClickHouse sink started (pid {sink.pid}, "
        f"log {run_dir / 'sink.log'}); simulated contact centre from {_instant(plan.config.start_ms)}, "
        f"{plan.speed:.0f}x faster than real time ...",
        file=out,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    started = time.time()
    printer = asyncio.create_task(print_alerts(settings, stop, started, out))
    feed = asyncio.create_task(run_feed(settings.kafka_bootstrap, names.case_events, settings.partitions, stop, plan))
    try:
        deadline = None if duration_s is None else started + duration_s
        while not stop.is_set():
            for name, child in (("worker", worker), ("sink", sink)):
                if child.poll() is not None:
                    print(f"error: the {name} exited with code {child.returncode}; see {run_dir / name}.log", file=out)
                    stop.set()
            if deadline is not None and time.time() >= deadline:
                stop.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        sent = await feed
        alerts = await printer
    finally:
        stop.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(stop_process, worker)
        await asyncio.to_thread(stop_process, sink)
    print(f"stopped after {time.time() - started:.0f} s: {sent} events fed, {alerts} alerts printed.", file=out)
    caught_up = await catch_up(settings)  # what the sink had not written when it stopped (it migrated too)
    url, database = settings.effective_clickhouse_url, settings.clickhouse_database
    client = connect(url, database)
    try:
        total = client.command(f"SELECT count() FROM {database}.sla_alerts FINAL")
        print(
            f"ClickHouse ({url}) table {database}.sla_alerts holds {total} alerts ({caught_up} rows written after "
            "the sink stopped):",
            file=out,
        )
        for line in clickhouse_summary(client, database):
            print(line, file=out)
        html = run_dir / "report.html"
        analysis = write_report(client, database, html)
    finally:
        client.close()
    print(f"report: {analysis.headline}", file=out)
    print(f"HTML report: {html.resolve()} (slaflow report --data-dir {run_dir} prints the whole report)", file=out)
    codes = (worker.returncode, sink.returncode)
    return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1


def run_demo(settings: Settings, duration_s: float | None = None, out: TextIO = sys.stdout) -> int:
    """Run the demo; return the process exit code."""
    run_dir = Path(settings.data_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    kafka: LocalKafka | None = None
    try:
        if not settings.kafka_bootstrap:
            kafka = LocalKafka(data_dir=run_dir / "kafka")
            print("starting a local Apache Kafka broker ...", file=out, flush=True)
            settings = settings.replace(kafka_bootstrap=kafka.start())
            print(
                f"Apache Kafka {kafka.version} on {settings.kafka_bootstrap} (pid {kafka.pid}, log {kafka.log_path})",
                file=out,
                flush=True,
            )
        code = asyncio.run(_run(settings, duration_s, out))
    finally:
        if kafka is not None:
            kafka.stop()
    return code
