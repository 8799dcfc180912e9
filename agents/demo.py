"""``slaflow run``: the whole pipeline on this machine, with a simulated contact centre.

Starts (unless ``KAFKA_BOOTSTRAP`` names a broker) a local Kafka broker,
creates the topics, starts a worker process and a ClickHouse sink process,
feeds simulated cases, and prints every alert as it arrives, one line each.
Alert lines carry the stream's (simulated) time, in the display time zone.
On Ctrl-C or after ``duration_s`` it stops the feed, the worker and the sink,
writes what the sink had not written yet, prints per queue what a service
manager asks first (KPIs met and breached, those still open past their
deadline, the longest wait past a deadline) and the bottleneck report's
headline, writes the HTML report (``DATA_DIR/report.html``), and stops the
broker. Children are started in
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
from pathlib import Path
from typing import Final, TextIO

from aiokafka import AIOKafkaConsumer
from clickhouse_connect.driver.client import Client

from agents.alerts import ALERT, LinePrinter, in_time_order
from agents.feed import DemoFeed, run_feed
from agents.settings import Settings, ensure_free_port
from agents.sink import catch_up
from agents.topics import TopicNames, ensure_topics
from deploy.kafka.broker import LocalKafka, die_with_parent
from schemas.codec import SLA_ALERT
from sinks.clickhouse import connect
from sinks.report_pages import write_report
from streams.display import format_clock, format_span, format_when


async def print_alerts(settings: Settings, stop: asyncio.Event, out: TextIO) -> int:
    """Print alerts from the alerts topic until ``stop`` is set, as ``slaflow alerts`` prints them (stamped with
    the stream's simulated time, an escalation at its breach's instant folded into the breach's line); return
    how many alerts were read."""
    consumer = AIOKafkaConsumer(
        TopicNames.of(settings).alerts,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    printer = LinePrinter(settings.display_zone, lambda line: print(line, file=out, flush=True))
    count = 0
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                printer.flush()
            alerts = [(ALERT, SLA_ALERT.decode(record.value)) for records in batch.values() for record in records]
            for message_type, message in in_time_order(alerts):
                printer.message(message_type, message)
            count += len(alerts)
    finally:
        printer.flush()
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


QUEUE_SUMMARY: Final = """
WITH
    toDateTime64({until_ms:Int64} / 1000, 3, 'UTC') AS stream_now,
    dateDiff('millisecond', deadline, coalesce(ended_at, stream_now)) AS past_deadline_ms
SELECT
    if(queue = '', '(none)', queue) AS queue,
    countIf(outcome = 'met') AS met_kpis,
    countIf(breached) AS breached_kpis,
    countIf(outcome = 'open' AND deadline < stream_now) AS open_late,
    argMaxIf(concat(record_id, ' ', kpi), past_deadline_ms, breached AND deadline IS NOT NULL) AS worst,
    maxIf(past_deadline_ms, breached AND deadline IS NOT NULL) AS worst_ms
FROM {db}.kpi_instances
GROUP BY queue
ORDER BY breached_kpis DESC, queue
"""
"""Per queue, for a service manager: KPIs met, breached, still open past their deadline at the end of the run,
and the one that waited longest past its deadline (ended or, if open, until the stream's last instant)."""


def queue_summary(client: Client, database: str, until_ms: int) -> list[str]:
    """The closing table of the demo: one line per queue (see :data:`QUEUE_SUMMARY`)."""
    rows = client.query(QUEUE_SUMMARY.replace("{db}", database), parameters={"until_ms": until_ms}).result_rows
    if not rows:
        return ["  (no KPI has started yet)"]
    lines = [f"  {'queue':<12} {'met':>5} {'breached':>9} {'of them open':>13}  longest wait past a deadline"]
    for queue, met, breached, open_late, worst, worst_ms in rows:
        longest = f"{worst}: {format_span(worst_ms)}" if breached else "-"
        lines.append(f"  {queue:<12} {met:>5} {breached:>9} {open_late:>13}  {longest}")
    return lines


async def _run(settings: Settings, duration_s: float | None, out: TextIO) -> int:
    run_dir = Path(settings.data_dir)
    names = TopicNames.of(settings)
    await ensure_topics(settings)
    worker = start_worker(settings, run_dir / "worker.log")
    sink = start_sink(settings, run_dir / "sink.log")
    plan = DemoFeed()
    zone = settings.display_zone
    print(
        f"worker started (pid {worker.pid}, log {run_dir / 'worker.log'}), ClickHouse sink started (pid {sink.pid}, "
        f"log {run_dir / 'sink.log'}); a simulated contact centre from {format_when(plan.config.start_ms, zone)}, "
        f"{plan.speed:.0f} times faster than real time (times below are the simulated ones) ...",
        file=out,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        received.append(signum)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    started = time.time()
    printer = asyncio.create_task(print_alerts(settings, stop, out))
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
        fed = await feed
        alerts = await printer
    finally:
        stop.set()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await asyncio.to_thread(stop_process, worker)
        await asyncio.to_thread(stop_process, sink)
    print(
        f"stopped after {time.time() - started:.0f} s: {fed.sent} events fed, simulated "
        f"{format_when(plan.config.start_ms, zone)} to {format_clock(fed.until_ms, zone)}; {alerts} alerts.",
        file=out,
    )
    await catch_up(settings)  # what the sink had not written when it stopped (it migrated too)
    client = connect(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        print(
            "Per queue: KPIs met, KPIs breached (ended late, or still open past their deadline: 'of them open'), and "
            "the longest wait past a deadline:",
            file=out,
        )
        for line in queue_summary(client, settings.clickhouse_database, fed.until_ms):
            print(line, file=out)
        html = run_dir / "report.html"
        analysis = write_report(client, settings.clickhouse_database, html, zone=zone)
    finally:
        client.close()
    print(f"report: {analysis.headline}", file=out)
    print(f"HTML report: {html.resolve()} (slaflow report --data-dir {run_dir} prints the whole report)", file=out)
    codes = (worker.returncode, sink.returncode)
    if not all(code in (0, -signal.SIGTERM) for code in codes):
        return 1
    return 130 if signal.SIGINT in received else 0  # Ctrl-C is an interrupt, as in every command


def run_demo(settings: Settings, duration_s: float | None = None, out: TextIO = sys.stdout) -> int:
    """Run the demo; return the process exit code. Ports that another process holds are refused before anything
    starts (and before the last run's data directory is cleared)."""
    for port in ("web_port", "sink_metrics_port"):
        ensure_free_port(settings, port)
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
