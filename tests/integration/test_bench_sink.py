"""``slaflow bench sink`` and the path it measures, on the embedded engine.

The sink's fast path (:meth:`ClickHouseSink.add_messages` with engine rows: ClickHouse decodes framed messages)
must write exactly the rows, and refuse exactly the messages, of the reference path (:data:`sinks.rows.ROWS_OF`
in Python): on a simulated stream, and on every odd message we could think of. And ``bench sink`` prints its
figures as one JSON object.
"""

from __future__ import annotations

import io
import json
import struct
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client
from fastavro import schemaless_writer

from agents.bench import BENCHMARKS, GOALS, report
from agents.cli import build_parser
from agents.sink_data import simulated
from schemas.codec import (
    INPUT_MESSAGE,
    KPI_TRANSITION,
    MAGIC,
    SLA_ALERT,
    encode_tick,
)
from sinks.clickhouse import ClickHouseSink, SinkError, migrate
from sinks.rows import ROWS_OF, TABLE_COLUMNS, Outcomes

pytestmark = pytest.mark.integration

T = 1_772_445_600_000  # Monday 2026-03-02 10:00 UTC
Batch = list[tuple[str, int, list[bytes], list[int]]]
"""``(topic, partition, values, offsets)`` per add_messages call."""


def record(event_id: str, kind: str, attributes: dict[str, str] | None = None, **changes: Any) -> bytes:
    fields: dict[str, Any] = {"event_id": event_id, "record_id": "C-1", "entity_type": "case", "kind": kind,
                              "occurred_at_ms": T, "attributes": attributes or {}}  # fmt: skip
    fields.update(changes)
    return INPUT_MESSAGE.encode({"body": ("slaflow.RecordEvent", fields)})  # types checked, not validate()'s rules


def activity(event_id: str, **changes: Any) -> bytes:
    fields: dict[str, Any] = {"event_id": event_id, "activity_id": "M-1", "activity_type": "email",
                              "kind": "email_received", "direction": "inbound", "regarding_id": "C-1",
                              "regarding_type": "case", "occurred_at_ms": T, "duration_ms": None,
                              "attributes": {"owner": "ana"}}  # fmt: skip
    fields.update(changes)
    return INPUT_MESSAGE.encode({"body": ("slaflow.ActivityEvent", fields)})


def call(event_id: str, **changes: Any) -> bytes:
    attributes = {"wait_seconds": "15", "handle_seconds": "300.5", "tier": "VIP"}
    fields: dict[str, Any] = {"event_id": event_id, "call_id": "CALL-1", "kind": "answered", "direction": "inbound",
                              "queue": "hotline", "agent": "ag-1", "case_id": "C-1", "occurred_at_ms": T,
                              "attributes": attributes}  # fmt: skip
    fields.update(changes)
    return INPUT_MESSAGE.encode({"body": ("slaflow.CallEvent", fields)})


def replaced(value: bytes, old: bytes, new: bytes) -> bytes:
    """``value`` with the one occurrence of ``old`` replaced by as many bytes."""
    assert value.count(old) == 1 and len(old) == len(new)
    return value.replace(old, new)


def version_1(event: dict[str, Any]) -> bytes:
    """A record event as slaflow 0.1 wrote it (an older writer schema: the reference path reads it)."""
    ((fingerprint, schema),) = [
        (f, s) for f, s in INPUT_MESSAGE.known_writers.items() if f != INPUT_MESSAGE.fingerprint
    ]
    out = io.BytesIO(MAGIC + struct.pack("<Q", fingerprint))
    out.seek(0, io.SEEK_END)
    schemaless_writer(out, schema, {"body": ("slaflow.RecordEvent", event)})
    return out.getvalue()


def sized_block(value: bytes) -> bytes:
    """``value`` (ending with the attributes {"a": "b"}) with them as a block of count -1 and a size in bytes, as
    Avro allows and fastavro's writer never writes."""
    assert value.endswith(b"\x02\x02a\x02b\x00")
    return value[:-6] + b"\x01\x08\x02a\x02b\x00"


def odd_inputs() -> list[bytes]:
    """Input messages of every kind, good and bad: what either path must treat alike."""
    calls = {"direction": "inbound", "queue": "hotline", "owner": "ag-7", "case_id": "C-1", "tier": "VIP"}
    phone = {"entity_type": "phone_call", "record_id": "PC-1"}
    lead = {"entity_type": "lead", "record_id": "L-1"}
    agent = {"owner": "ag-1"}
    return [
        record("r1", "created", {"tier": "VIP", "queue": "billing", "owner": "ana", "status": "new"}),
        record("r2", "email_received", {"owner": "ana", "queue": "billing"}),
        record("r3", "email_sent", {"owner": "ana"}),
        record("r4", "call_answered", {**calls, "wait_seconds": "12", "handle_seconds": "345.5"}, **phone),
        record("r5", "callback_completed", {"handle_seconds": "-0.5"}, **phone),
        record("r6", "call_abandoned", {"wait_seconds": "1e3"}, **phone),  # not exact in SQL: Python decides
        record("r7", "call_answered", {"wait_seconds": "12.3456", "handle_seconds": " 7"}, **phone),
        record("r8", "call_answered", {"wait_seconds": "abc", "handle_seconds": "nan"}, **phone),
        record("r9", "call_answered", {"wait_seconds": "inf", "handle_seconds": ""}, **phone),
        record("r10", "call_answered", {"wait_seconds": "12.", "handle_seconds": "0.001"}, **phone),
        record("r11", "call_offered", {"wait_seconds": "\u0661\u0662"}, **phone),  # Arabic-Indic digits: 12 s
        record("r12", "created", **phone),
        record("r13", "call_answered", {"handle_seconds": "5"}),  # a case's call: a call of its own, an activity
        record("r13a", "call_answered", {**calls, "handle_seconds": "517"}),  # case_id "C-1" too: the record's
        record("r13b", "call_ended", {"direction": "outbound", "queue": "technical", "handle_seconds": "6"}),  # owner?
        record("r13c", "call_answered", {**agent, "wait_seconds": "abc", "handle_seconds": "n/a"}),  # not numbers
        record("r13d", "call_answered", {**agent, "handle_seconds": "five"}),
        record("r13e", "call_answered", {**agent, "handle_seconds": "about 5"}),  # a digit: Python decides
        record("r13f", "call_answered", {"handle_seconds": "1e3"}),  # not exact in SQL: Python decides
        record("r13g", "call_offered", {**agent, "call_id": "CALL-7", "wait_seconds": "12.5"}),  # a call of its id
        record("r13h", "call_ended", {"call_id": "CALL-7", "handle_seconds": "300"}),  # the same call, ended
        record("r13i", "call_answered", {**agent, "call_id": ""}),  # an empty call id: the event's
        record("r13j", "call_answered", {**agent, "handle_seconds": "326"}, **lead),  # a lead's call: no case
        record("r13k", "callback_completed", {**agent, "handle_seconds": "60"}),  # not call_: a record event only
        record("r13l", "call_", agent),  # a call of no kind
        record("r13m", "call_answered", {"owner": "\u00e9lise", "queue": "caf\u00e9"}),
        sized_block(record("r13n", "call_answered", {"a": "b"})),
        record("r13o", "call_answered", {**agent, "": "x"}),  # schema violation: empty attribute name
        replaced(record("r13p", "call_answered", {"owner": "QQ"}), b"QQ", b"\xc3("),  # not UTF-8: undecodable
        replaced(record("r13q", "call_answered", {"aa": "1", "bb": "2"}), b"\x04bb", b"\x04aa"),  # a repeated name
        sized_block(record("r14", "created", {"a": "b"})),
        record("caf\u00e9-\U0001f600", "status_changed", {"status": "r\u00e9solu", "owner": "\u00e9lise"}),
        record("", "created"),  # schema violation: empty id
        record("r15", "created", {"": "x"}),  # schema violation: empty attribute name
        record("r16", "created", occurred_at_ms=2**62),  # schema violation: out of years 1 to 9999
        replaced(record("r17", "created", {"owner": "QQQ"}), b"QQQ", b"\xff\xfe\xfd"),  # not UTF-8: undecodable
        replaced(record("r18QQ", "created"), b"r18QQ", b"r18\xc3("),  # not UTF-8 in an id
        replaced(record("r19", "created", {"aa": "1", "bb": "2"}), b"\x04bb", b"\x04aa"),  # a repeated name
        record("r20", "created") + b"\x00",  # trailing bytes: undecodable
        record("r21", "created", {"owner": "ana"})[:-3],  # truncated: undecodable
        INPUT_MESSAGE.header + b"\x00",  # a header and a branch, no event
        INPUT_MESSAGE.header + b"\x08",  # no such branch
        b"",
        b"not avro at all",
        version_1(
            {
                "event_id": "v1",
                "record_id": "C-9",
                "entity_type": "case",
                "kind": "created",
                "occurred_at_ms": T,
                "attributes": {"tier": "Standard"},
            }
        ),
        encode_tick(T, "worker-1"),
        INPUT_MESSAGE.encode({"body": ("slaflow.ClockTick", {"at_ms": 2**62, "source": "x"})}),  # violation
        activity("a1"),
        activity(
            "a2",
            activity_type="phone_call",
            kind="phone_call_completed",
            duration_ms=90_000,
            attributes={"agent": "ag-2", "queue": "hotline", "wait_seconds": "7.25"},
        ),
        activity("a3", activity_type="note", kind="note_added", direction="", duration_ms=0, attributes={}),
        activity("a4", duration_ms=-1),  # schema violation
        activity("a5", activity_type="fax"),  # schema violation
        activity("a6", attributes={"wait_seconds": "1_000"}),  # float() reads it; SQL does not: Python decides
        call("k1"),
        call("k2", case_id=None, agent="", attributes={}),
        call("k3", kind="ringing"),  # schema violation
        call("k4", attributes={"wait_seconds": "2.5e1"}),
    ]


def odd_outputs() -> list[tuple[str, bytes]]:
    """Output-topic messages, good and bad."""
    alert = {
        "alert_id": "C-1/resolution/0/BREACH", "kind": "BREACH", "record_id": "C-1", "entity_type": "case",
        "policy": "vip", "policy_version": "v1", "kpi": "resolution", "kpi_instance": 0, "started_at_ms": T,
        "threshold_at_ms": T + 60_000, "deadline_ms": T + 60_000, "fired_at_ms": T + 61_000, "target_ms": 60_000,
        "business_elapsed_ms": 60_000, "wall_elapsed_ms": 60_000, "paused_ms": 0,
        "attributes": {"tier": "VIP", "owner": "\u00e9lise"}, "level": 0,
        "actions": [{"type": "notify", "targets": ["owner"], "value": "", "template": "QQ"}], "revision": 0,
        "revoked": False,
    }  # fmt: skip
    paused = {
        "transition_id": "C-1/resolution/0/KPI_PAUSED/1", "kind": "KPI_PAUSED", "record_id": "C-1",
        "entity_type": "case", "policy": "vip", "policy_version": "v1", "kpi": "resolution", "kpi_instance": 0,
        "sequence": 1, "at_ms": T + 1_000, "started_at_ms": T, "deadline_ms": None, "target_ms": 60_000,
        "business_elapsed_ms": 1_000, "wall_elapsed_ms": 1_000, "paused_ms": 0, "reason": "waiting", "actions": [],
        "attributes": {}, "revision": 0, "revoked": False, "emitted_at_ms": T + 1_000,
    }  # fmt: skip
    good = SLA_ALERT.encode(alert)
    return [
        ("alerts", good),
        ("alerts", replaced(good, b"\x04QQ", b"\x04\xc3\x28")),  # not UTF-8 in an action: undecodable
        ("alerts", good + b"\x00\x00"),
        ("alerts", good[:-5]),
        ("alerts", MAGIC + struct.pack("<Q", 1) + good[10:]),  # an unknown writer
        ("kpi_transitions", KPI_TRANSITION.encode(paused)),
    ]


def run(sink: ClickHouseSink, batches: list[Batch]) -> tuple[dict[str, int], Outcomes]:
    written: dict[str, int] = {}
    outcomes = Outcomes()
    for batch in batches:
        for topic, partition, values, offsets in batch:
            sink.add_messages(topic, values, partition, offsets)
        for table, n in sink.flush().items():
            written[table] = written.get(table, 0) + n
        taken = sink.take_outcomes()
        outcomes.counts.update(taken.counts)
        outcomes.refused += taken.refused
    assert sink.pending == 0
    return written, outcomes


def table_rows(client: Client, database: str) -> dict[str, list[str]]:
    """Every row of every table (without inserted_at), as sorted text."""
    rows = {}
    for table, columns in TABLE_COLUMNS.items():
        result = client.query(f"SELECT {', '.join(columns)} FROM {database}.{table}").result_rows
        rows[table] = sorted(repr(row) for row in result)
    return rows


@pytest.fixture
def databases(clickhouse: tuple[Client, str]) -> Iterator[tuple[Client, str, str]]:
    """The engine's client, and two fresh migrated databases: one for each path."""
    client, name = clickhouse
    for database in (f"{name}_fast", f"{name}_ref"):
        client.command(f"CREATE DATABASE {database}")
        migrate(client, database)
        for table in TABLE_COLUMNS:  # a merge collapses rows of one key, when it likes: compare them all
            client.command(f"SYSTEM STOP MERGES {database}.{table}")
    yield client, f"{name}_fast", f"{name}_ref"


@pytest.mark.parametrize("together", [True, False], ids=["odd-together", "odd-alone"])
def test_engine_rows_are_the_reference_rows(databases: tuple[Client, str, str], together: bool) -> None:
    """With the odd messages in one add_messages call, one that ClickHouse cannot read sends all to Python;
    alone, each is judged by itself."""
    client, fast_db, ref_db = databases
    stream = simulated(days=0.5, cases_per_day=300, seed=3).topics
    odd = odd_inputs()
    outputs = odd_outputs()
    odd_calls: Batch = (
        [("case_events", 5, odd, list(range(100, 100 + len(odd)))), ("calls", 0, odd[-4:], [7, 8, 9, 10])]
        if together
        else [("case_events", 6, [value], [n]) for n, value in enumerate(odd)]
    )
    batches: list[Batch] = [
        [(topic, p, values[p::2], list(range(p, len(values), 2))) for topic, values in stream.items() for p in (0, 1)],
        [*odd_calls, *((topic, 2, [value], [n]) for n, (topic, value) in enumerate(outputs))],
    ]  # fmt: skip
    fast = ClickHouseSink(client, fast_db)
    reference = ClickHouseSink(client, ref_db, engine_rows=False)
    try:
        assert fast.engine_rows and not reference.engine_rows
        fast_written, fast_outcomes = run(fast, batches)
        ref_written, ref_outcomes = run(reference, batches)
    finally:
        fast.close()
    assert fast_written == ref_written and fast_written["call_events"] > 0 and fast_written["activities"] > 0
    assert table_rows(client, fast_db) == table_rows(client, ref_db)
    [(simulated_calls, same_ids)] = client.query(  # calls of cases and leads the simulator wrote (partitions 0, 1)
        f"SELECT count(), countIf(a.activity_id = c.call_id) FROM {fast_db}.activities AS a "
        f"JOIN {fast_db}.call_events AS c USING (event_id) "
        "WHERE a.activity_type = 'phone_call' AND a.regarding_type != 'phone_call' AND a.source_partition < 2"
    ).result_rows
    assert simulated_calls > 0 and same_ids == simulated_calls
    assert fast_outcomes.counts == ref_outcomes.counts
    refused = {(r.topic, r.partition, r.offset, r.error.reason) for r in ref_outcomes.refused}
    assert {(r.topic, r.partition, r.offset, r.error.reason) for r in fast_outcomes.refused} == refused
    assert {reason for *_, reason in refused} == {"undecodable", "schema_violation"}
    assert len(refused) == (22 if together else 21)


def test_the_engine_makes_the_rows_and_python_only_the_odd_ones(databases: tuple[Client, str, str]) -> None:
    client, fast_db, _ = databases
    stream = simulated(days=0.3, cases_per_day=300, seed=4).topics
    expected: Counter[str] = Counter(
        table for topic, values in stream.items() for n, value in enumerate(values)
        for table, _ in ROWS_OF[topic](value, 0, n)
    )  # fmt: skip
    fast = ClickHouseSink(client, fast_db)
    try:
        for topic, values in stream.items():
            fast.add_messages(topic, values, 0, list(range(len(values))))
        fast.add_messages("case_events", [record("x1", "created") + b"\x00"], 1, [0])
        python_rows = sum(len(rows) for rows in fast._rows.values())  # what Python made: none
        assert python_rows == 0
        assert fast.pending == expected.total() + 1  # until the flush finds the last one undecodable
        assert fast.flush() == expected
        outcomes = fast.take_outcomes()
        assert [(r.partition, r.offset, r.error.reason) for r in outcomes.refused] == [(1, 0, "undecodable")]
    finally:
        fast.close()


def test_a_message_that_fails_its_check_goes_to_python_alone(
    databases: tuple[Client, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, fast_db, ref_db = databases
    decoded: list[int] = []
    rows_of = ROWS_OF["case_events"]

    def counted(value: bytes, partition: int, offset: int) -> list[tuple[str, list[Any]]]:
        decoded.append(offset)
        return rows_of(value, partition, offset)

    monkeypatch.setitem(ROWS_OF, "case_events", counted)
    phone = {"entity_type": "phone_call", "record_id": "PC-1"}
    values = [
        record("g1", "email_sent", {"owner": "ana"}),
        replaced(record("b1", "created", {"owner": "QQ"}), b"QQ", b"\xc3("),  # not UTF-8
        record("g2", "call_answered", {"wait_seconds": "3", "handle_seconds": "4.5"}, **phone),
        replaced(record("b2", "created", {"aa": "1", "bb": "2"}), b"\x04bb", b"\x04aa"),  # a repeated name
        record("b3", "created") + b"\x01",  # trailing bytes
        record("b4", "created", {"": "x"}),  # schema violation
        sized_block(record("g3", "created", {"a": "b"})),
        record("g4", "call_answered", {"owner": "ag-1", "handle_seconds": "9"}),  # a case's call
    ]
    offsets = list(range(10, 10 + len(values)))
    fast = ClickHouseSink(client, fast_db)
    reference = ClickHouseSink(client, ref_db, engine_rows=False)
    try:
        fast.add_messages("case_events", values, 0, offsets)
        assert decoded == []  # every one framed
        written = fast.flush()
        assert sorted(decoded) == [11, 13, 14, 15]  # the check named these: Python decides them
        reference.add_messages("case_events", values, 0, offsets)
        assert reference.flush() == written == {"record_events": 5, "activities": 2, "call_events": 2}
        outcomes = fast.take_outcomes()
        assert outcomes.counts == reference.take_outcomes().counts
        assert {(r.offset, r.error.reason) for r in outcomes.refused} == {
            (11, "undecodable"), (14, "undecodable"), (15, "schema_violation")
        }  # fmt: skip
    finally:
        fast.close()
    assert table_rows(client, fast_db) == table_rows(client, ref_db)


def test_a_failed_insert_keeps_its_rows_for_the_next_flush(databases: tuple[Client, str, str]) -> None:
    client, fast_db, ref_db = databases
    stream = simulated(days=0.3, cases_per_day=300, seed=5).topics
    fast = ClickHouseSink(client, fast_db)
    reference = ClickHouseSink(client, ref_db, engine_rows=False)
    try:
        for sink in (fast, reference):
            for topic, values in stream.items():
                sink.add_messages(topic, values, 0, list(range(len(values))))
        reference.flush()
        durations = len(stream["kpi_durations"])
        client.command(f"RENAME TABLE {fast_db}.kpi_durations TO {fast_db}.kpi_durations_away")
        with pytest.raises(SinkError) as failed:
            fast.flush()
        assert failed.value.table == "kpi_durations" and fast.pending == durations
        assert fast.take_outcomes().counts[("kpi_durations", "written", "")] == 0
        client.command(f"RENAME TABLE {fast_db}.kpi_durations_away TO {fast_db}.kpi_durations")
        assert fast.flush() == {"kpi_durations": durations} and fast.pending == 0
        assert fast.take_outcomes().counts == {("kpi_durations", "written", ""): durations}
    finally:
        fast.close()
    assert table_rows(client, fast_db) == table_rows(client, ref_db)


def test_bench_sink_prints_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "sink", "--days", "0.1", "--cases-per-day", "500"])
    assert args.func(args) == 0
    figures = json.loads(capsys.readouterr().out)
    assert {"rows_per_second", "python_us_per_row", "engine_us_per_row", "messages", "rows", "rows_per_table",
            "goal_rows_per_second", "goal_met", "baseline_rows_per_second", "ratio"} <= set(figures)  # fmt: skip
    assert figures["benchmark"] == "sink" and figures["goal_rows_per_second"] == 100_000
    assert figures["rows_identical"] is True and figures["rows"] == sum(figures["rows_per_table"].values()) > 0
    assert figures["messages"] == sum(figures["messages_per_topic"].values())
    assert figures["goal_met"] == (figures["rows_per_second"] >= 100_000)
    assert "sink" in BENCHMARKS
    (goal,) = report({"sink": figures})["goals"]
    assert (goal["figure"], goal["goal"], goal["met"]) == ("rows_per_second", 100_000, figures["goal_met"])
    assert any(benchmark == "sink" for benchmark, *_ in GOALS)
