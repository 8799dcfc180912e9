"""``slaflow bench sink``: Kafka message values into the embedded ClickHouse engine, rows per second.

The messages are those of a simulated contact centre and of the SLA core's outputs
(:func:`agents.sink_data.simulated`; making them is not timed), spread over :data:`PARTITIONS` partitions per
topic. They are cut into batches of ``Settings().sink_batch_rows`` messages drawn from every topic in
proportion, as one fetch of the sink's consumer would be, and each batch goes through the sink's own path into
a fresh ``chdb://`` directory: :meth:`ClickHouseSink.add_messages` for each topic partition, then
:meth:`ClickHouseSink.flush` (its default of two inserts at once). Measured in one run, so that the ratio holds
on a noisy machine:

1. **Sink.** ``rows_per_second``: rows written / wall seconds of add_messages and flush over every batch;
   ``cpu_us_per_row``: CPU seconds of the whole process meanwhile (Python and the engine's threads, the
   engine's background merges included) per row. ``python_us_per_row``: the Python share of that path per
   row, timed apart (CPU seconds) by running its Python steps over the same batches without the engine:
   header checks, sorting by message shape, framing each message (bytes untouched) as an Avro block, and
   :data:`sinks.rows.ROWS_OF` for the few messages the engine does not take (clock ticks). Nothing is decoded
   in Python there: ClickHouse decodes. ``engine_us_per_row``: the rest of the wall time per row: writing the
   framed files, and ClickHouse reading, checking and decoding them, making the rows and inserting them
   (clickhouse-connect only sends the SQL).
2. **Baseline.** After each batch, the same rows, made beforehand, inserted column-oriented with
   clickhouse-connect's ``Client.insert``, one insert per table, into a second database of the same engine
   (batch by batch, so that both see the same machine and the same background merges):
   ``baseline_rows_per_second``, and ``ratio`` = sink rows per second / baseline rows per second: above 1, the
   sink, decoding included, is faster than inserting rows that are already made.
3. **Reference.** ``reference_python_us_per_row``: :data:`sinks.rows.ROWS_OF` (fastavro decoding and row
   building) per row, CPU seconds: what the sink costs in Python where the engine cannot read its files (a
   ClickHouse server), before clickhouse-connect serialises the rows.

``rows_identical``: the first batch, written first (untimed: it also warms the engine up) by both paths into two
databases whose merges are stopped, leaves the same rows (count and a hash of every column, per table). Prints
one JSON object.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Final

from agents.bench import GOAL_SINK_ROWS_PER_SECOND
from agents.settings import Settings
from agents.sink_data import simulated
from sinks.clickhouse import ClickHouseSink, connect, migrate
from sinks.rows import ROWS_OF, TABLE_COLUMNS, Framer

PARTITIONS: Final = 4
"""Partitions per topic: a batch holds messages of each, as a fetch would."""
INSERT_SETTINGS: Final = ClickHouseSink.INSERT_SETTINGS
"""The baseline inserts as the sink does: every row kept, ReplacingMergeTree collapsing them when merging."""
PARALLEL_INSERTS: Final = 2
"""The sink's inserts at once (its default): the machine's two cores."""


@dataclass(frozen=True)
class Part:
    """The messages of one topic partition in one batch."""

    topic: str
    partition: int
    values: list[bytes]
    offsets: list[int]


def batches(topics: dict[str, list[bytes]], batch_messages: int) -> list[list[Part]]:
    """Every topic's messages cut into batches of about ``batch_messages`` messages, each topic in proportion;
    message ``n`` of a topic is in partition ``n % PARTITIONS`` at offset ``n // PARTITIONS``."""
    total = sum(len(values) for values in topics.values())
    count = max(1, -(-total // batch_messages))
    out: list[list[Part]] = []
    for k in range(count):
        batch = []
        for topic, values in topics.items():
            first, end = len(values) * k // count, len(values) * (k + 1) // count
            for partition in range(PARTITIONS):
                ns = [n for n in range(first, end) if n % PARTITIONS == partition]
                if ns:
                    batch.append(Part(topic, partition, [values[n] for n in ns], [n // PARTITIONS for n in ns]))
        out.append(batch)
    return out


def _reference_columns(parts: list[list[Part]]) -> tuple[list[dict[str, list[tuple[Any, ...]]]], float]:
    """Per batch, the columns of each table made by :data:`ROWS_OF`; and the CPU seconds that took."""
    started = time.process_time()
    rows_per_batch = []
    for batch in parts:
        rows: dict[str, list[list[Any]]] = {table: [] for table in TABLE_COLUMNS}
        for part in batch:
            rows_of = ROWS_OF[part.topic]
            for value, offset in zip(part.values, part.offsets, strict=True):
                for table, row in rows_of(value, part.partition, offset):
                    rows[table].append(row)
        rows_per_batch.append(rows)
    cpu_s = time.process_time() - started
    return [{t: list(zip(*r, strict=True)) for t, r in rows.items() if r} for rows in rows_per_batch], cpu_s


def _python_share(parts: list[list[Part]]) -> float:
    """CPU seconds of the sink path's Python steps alone (module doc, figure ``python_us_per_row``)."""
    framer = Framer()
    started = time.process_time()
    for batch in parts:
        for part in batch:
            _, reference = framer.frame(part.topic, part.values, part.partition, part.offsets)
            rows_of = ROWS_OF[part.topic]
            for i in reference:
                rows_of(part.values[i], part.partition, part.offsets[i])
    return time.process_time() - started


def _table_digest(client: Any, database: str) -> dict[str, tuple[int, int]]:
    """Per table: its rows, and the sum of a hash of each row's every column."""
    digest = {}
    for table, columns in TABLE_COLUMNS.items():
        row = f"toString(tuple({', '.join(columns)}))"
        count, total = client.query(f"SELECT count(), sum(cityHash64({row})) FROM {database}.{table}").result_rows[0]
        digest[table] = (int(count), int(total or 0))
    return digest


def bench_sink(days: float = 5.0, cases_per_day: int = 2_000, seed: int = 1) -> dict[str, Any]:
    """The ``bench sink`` figures (see the module doc); about 220,000 messages by default."""
    data = simulated(days=days, cases_per_day=cases_per_day, seed=seed)
    batch_messages = Settings().sink_batch_rows
    parts = batches(data.topics, batch_messages)
    columns, reference_cpu_s = _reference_columns(parts)
    python_cpu_s = _python_share(parts)
    with tempfile.TemporaryDirectory(prefix="slaflow-bench-sink-") as tmp:
        client = connect(f"chdb://{tmp}/clickhouse", "sink")
        try:
            for database in ("sink", "baseline", "check_sink", "check_baseline"):
                client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
                migrate(client, database)
            for table in TABLE_COLUMNS:  # merges would collapse duplicate keys, at times of their own
                for database in ("check_sink", "check_baseline"):
                    client.command(f"SYSTEM STOP MERGES {database}.{table}")
            _runs(client, ("check_sink", "check_baseline"), parts[:1], columns[:1])  # also the engine's warm-up
            identical = _table_digest(client, "check_sink") == _table_digest(client, "check_baseline")
            run = _runs(client, ("sink", "baseline"), parts, columns)
        finally:
            client.close()
    rows = sum(run.written.values())
    rate = rows / run.sink_s
    baseline_rate = rows / run.baseline_s
    python_us = python_cpu_s / rows * 1e6
    return {
        "benchmark": "sink",
        "rows_per_second": round(rate),
        "python_us_per_row": round(python_us, 2),
        "engine_us_per_row": round(max(run.sink_s / rows * 1e6 - python_us, 0.0), 2),
        "cpu_us_per_row": round(run.sink_cpu_s / rows * 1e6, 2),
        "goal_rows_per_second": GOAL_SINK_ROWS_PER_SECOND,
        "goal_met": rate >= GOAL_SINK_ROWS_PER_SECOND,
        "baseline_rows_per_second": round(baseline_rate),
        "ratio": round(rate / baseline_rate, 3),
        "reference_python_us_per_row": round(reference_cpu_s / rows * 1e6, 2),
        "rows_identical": identical,
        "messages": data.messages,
        "messages_per_topic": {topic: len(values) for topic, values in data.topics.items()},
        "outcomes": dict(sorted(run.outcomes.items())),
        "rows": rows,
        "rows_per_table": dict(sorted(run.written.items())),
        "seconds": round(run.sink_s, 3),
        "baseline_seconds": round(run.baseline_s, 3),
        "batches": len(parts),
        "batch_messages": batch_messages,
        "partitions": PARTITIONS,
        "parallel_inserts": PARALLEL_INSERTS,
        "days": days,
        "cases_per_day": cases_per_day,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "chdb": metadata.version("chdb"),
        "clickhouse_connect": metadata.version("clickhouse-connect"),
    }


@dataclass
class Run:
    """The timed part of a run: seconds of the sink path (wall, and CPU of the whole process) and of the
    baseline, rows written per table and messages per outcome (``refused/<reason>``) by the sink."""

    sink_s: float = 0.0
    sink_cpu_s: float = 0.0
    baseline_s: float = 0.0
    written: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


def _runs(
    client: Any, databases: tuple[str, str], parts: list[list[Part]], columns: list[dict[str, list[tuple[Any, ...]]]]
) -> Run:
    """Each batch through the sink path into ``databases[0]``, then its pre-built columns into ``databases[1]``
    with one ``Client.insert`` per table: batch by batch, so that both see the same machine (and the same
    merges of earlier parts in the background)."""
    sink = ClickHouseSink(client, databases[0], parallel_inserts=PARALLEL_INSERTS)
    assert sink.engine_rows, "the embedded engine reads the sink's framed files"
    run = Run()
    try:
        for batch, batch_columns in zip(parts, columns, strict=True):
            started, cpu = time.perf_counter(), time.process_time()
            for part in batch:
                sink.add_messages(part.topic, part.values, part.partition, part.offsets)
            run.written.update(sink.flush())
            run.sink_s += time.perf_counter() - started
            run.sink_cpu_s += time.process_time() - cpu
            for (_, outcome, reason), n in sink.take_outcomes().counts.items():
                run.outcomes[f"{outcome}/{reason}" if reason else outcome] += n
            started = time.perf_counter()
            for table, data in batch_columns.items():
                client.insert(f"{databases[1]}.{table}", data, column_names=TABLE_COLUMNS[table],
                              column_oriented=True, settings=INSERT_SETTINGS)  # fmt: skip
            run.baseline_s += time.perf_counter() - started
    finally:
        sink.close()
    return run
