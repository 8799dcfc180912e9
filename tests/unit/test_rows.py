"""sinks/rows.py without ClickHouse: each topic's message gives exactly its rows (or none, or a CodecError with
the agent's dead-letter reason), every row fits its table, and the framer sorts messages for the engine path."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from schemas.codec import (
    INPUT_MESSAGE,
    KPI_DURATION,
    KPI_TRANSITION,
    MAGIC,
    SLA_ALERT,
    UNDECODABLE,
    CodecError,
    encode_event,
    encode_tick,
)
from schemas.messages import alert_message, duration_message, transition_message
from sinks.rows import (
    ROWS_OF,
    SHAPES,
    TABLE_COLUMNS,
    TOPIC_SHAPES,
    Framer,
    Outcomes,
    _seconds_bytes_sure,
    _seconds_ms,
)
from streams.events import SCHEMA_VIOLATION, ActivityEvent, CallEvent, RecordEvent
from streams.outputs import Output, OutputKind
from streams.policy import Action

T = 1_772_445_600_000  # Monday 2026-03-02 10:00 UTC
ATTRS = {"tier": "VIP", "priority": "high", "queue": "billing", "owner": "ana", "category": "refund",
         "status": "open"}  # fmt: skip


def output(kind: OutputKind, **changes: Any) -> Output:
    fields: dict[str, Any] = {
        "kind": kind, "record_id": "C-1", "entity_type": "case", "policy": "vip", "policy_version": "2026-03",
        "kpi": "resolution", "kpi_instance": 2, "at_ms": T + 3_600_000, "started_at_ms": T,
        "deadline_ms": T + 7_200_000, "target_ms": 7_200_000, "business_elapsed_ms": 3_000_000,
        "wall_elapsed_ms": 3_600_000, "paused_ms": 600_000, "attributes": ATTRS,
    }  # fmt: skip
    fields.update(changes)
    return Output(**fields)


def only(rows: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    (row,) = rows
    return row


def test_an_alert_is_one_sla_alerts_row() -> None:
    alert = output(OutputKind.BREACH, level=0, actions=(Action("notify", ("owner",), "", "due"),), revision=1)
    value = SLA_ALERT.encode(alert_message(alert, fired_at_ms=T + 3_700_000))
    assert only(ROWS_OF["alerts"](value, 3, 41)) == ("sla_alerts", [
        "C-1/resolution/2/BREACH", "C-1/resolution/2", "BREACH", "C-1", "case", "vip", "2026-03", "resolution", 2,
        T, T + 3_600_000, T + 7_200_000, T + 3_700_000, 7_200_000, 3_000_000, 3_600_000, 600_000, "VIP", "high",
        "billing", "ana", ATTRS, 0, 1, False, 3, 41,
    ])  # fmt: skip


def test_a_transition_is_one_kpi_transitions_row() -> None:
    paused = output(OutputKind.KPI_PAUSED, deadline_ms=None, sequence=1, reason="waiting_for_customer")
    value = KPI_TRANSITION.encode(transition_message(paused, emitted_at_ms=T + 3_600_500))
    assert only(ROWS_OF["kpi_transitions"](value, 0, 7)) == ("kpi_transitions", [
        "C-1/resolution/2/KPI_PAUSED/1", "C-1/resolution/2", "KPI_PAUSED", "C-1", "case", "vip", "2026-03",
        "resolution", 2, 1, T + 3_600_000, T, None, 7_200_000, 3_000_000, 3_600_000, 600_000,
        "waiting_for_customer", "VIP", "high", "billing", "ana", ATTRS, 0, False, T + 3_600_500, 0, 7,
    ])  # fmt: skip


def test_a_duration_is_one_kpi_durations_row() -> None:
    met = duration_message(output(OutputKind.KPI_SUCCEEDED, reason="met"))
    assert met is not None
    assert only(ROWS_OF["kpi_durations"](KPI_DURATION.encode(met), 1, 9)) == ("kpi_durations", [
        "C-1/resolution/2", "C-1", "case", "vip", "2026-03", "resolution", 2, "met", False, T, T + 3_600_000,
        T + 7_200_000, 7_200_000, 3_000_000, 3_600_000, 600_000, "VIP", "high", "billing", "ana", "refund", ATTRS,
        0, 0, False, 1, 9,
    ])  # fmt: skip


def test_a_record_event_is_one_record_events_row() -> None:
    event = RecordEvent("e1", "C-1", "case", "status_changed", T, ATTRS)
    assert ROWS_OF["case_events"](encode_event(event), 2, 5) == [("record_events", [
        "e1", "C-1", "case", "status_changed", T, "open", "billing", "ana", "VIP", "high", "refund", ATTRS, 2, 5,
    ])]  # fmt: skip


def test_an_event_without_those_attributes_has_empty_columns() -> None:
    rows = ROWS_OF["case_events"](encode_event(RecordEvent("e1", "L-1", "lead", "created", T)), 0, 0)
    assert rows == [("record_events", ["e1", "L-1", "lead", "created", T, "", "", "", "", "", "", {}, 0, 0])]


@pytest.mark.parametrize(("kind", "direction"), [("email_received", "inbound"), ("email_sent", "outbound")])
def test_an_email_record_event_is_also_an_activity_with_its_direction(kind: str, direction: str) -> None:
    event = RecordEvent("e7", "C-1", "case", kind, T, ATTRS)
    rows = ROWS_OF["case_events"](encode_event(event), 1, 12)
    assert [table for table, _ in rows] == ["record_events", "activities"]
    assert rows[1][1] == [
        "e7", "e7", "email", kind, direction, "C-1", "case", T, None, None, "ana", "billing", ATTRS, 1, 12,
    ]  # fmt: skip


def test_a_phone_call_record_event_is_also_a_call_event_in_milliseconds() -> None:
    attributes = {"direction": "inbound", "queue": "hotline", "owner": "ag-7", "case_id": "C-1", "tier": "VIP",
                  "wait_seconds": "12", "handle_seconds": "345.5"}  # fmt: skip
    event = RecordEvent("p1", "PC-1", "phone_call", "call_answered", T, attributes)
    rows = ROWS_OF["case_events"](encode_event(event), 0, 3)
    assert [table for table, _ in rows] == ["record_events", "call_events"]
    assert rows[1][1] == [
        "p1", "PC-1", "answered", "inbound", "hotline", "ag-7", "C-1", T, 12_000, 345_500, "VIP", attributes, 0, 3,
    ]  # fmt: skip


def test_a_callback_keeps_its_kind_and_a_call_of_no_case_has_an_empty_case() -> None:
    event = RecordEvent("p2", "PC-2", "phone_call", "callback_completed", T, {"handle_seconds": "60"})
    (_, row) = ROWS_OF["case_events"](encode_event(event), 0, 4)[1]
    assert row[2] == "callback_completed" and row[6] == "" and (row[8], row[9]) == (None, 60_000)


def test_other_kinds_of_a_phone_call_or_callback_kinds_of_a_case_are_only_record_events() -> None:
    for event in (
        RecordEvent("p3", "PC-3", "phone_call", "created", T),
        RecordEvent("c3", "C-3", "case", "callback_requested", T, {"handle_seconds": "5"}),
        RecordEvent("c4", "C-3", "case", "called_back", T, {"owner": "ag-1"}),
    ):
        assert [table for table, _ in ROWS_OF["case_events"](encode_event(event), 0, 0)] == ["record_events"]


def test_a_call_kind_of_a_case_is_also_a_call_of_its_own_and_a_phone_call_activity_of_the_case() -> None:
    attributes = {"tier": "Premium", "queue": "technical", "owner": "ag-technical-weekdays-02", "status": "assigned",
                  "direction": "outbound", "handle_seconds": "517"}  # fmt: skip
    event = RecordEvent("C-0000004-04", "C-0000004", "case", "call_answered", T, attributes)
    rows = ROWS_OF["case_events"](encode_event(event), 1, 6)
    assert [table for table, _ in rows] == ["record_events", "call_events", "activities"]
    assert rows[1][1] == [
        "C-0000004-04", "C-0000004-04", "answered", "outbound", "technical", "ag-technical-weekdays-02", "C-0000004",
        T, None, 517_000, "Premium", attributes, 1, 6,
    ]  # fmt: skip
    assert rows[2][1] == [
        "C-0000004-04", "C-0000004-04", "phone_call", "call_answered", "outbound", "C-0000004", "case", T, 517_000,
        None, "ag-technical-weekdays-02", "technical", attributes, 1, 6,
    ]  # fmt: skip


def test_a_call_of_another_record_belongs_to_no_case_and_an_explicit_call_id_names_the_call() -> None:
    attributes = {"call_id": "CALL-9", "direction": "inbound", "queue": "inside_sales", "owner": "ag-3",
                  "wait_seconds": "4.5", "handle_seconds": "60"}  # fmt: skip
    event = RecordEvent("L-1-02", "L-1", "lead", "call_ended", T, attributes)
    (_, call), (_, activity) = ROWS_OF["case_events"](encode_event(event), 0, 2)[1:]
    assert call == ["L-1-02", "CALL-9", "ended", "inbound", "inside_sales", "ag-3", "", T, 4_500, 60_000, "",
                    attributes, 0, 2]  # fmt: skip
    assert activity == ["L-1-02", "CALL-9", "phone_call", "call_ended", "inbound", "L-1", "lead", T, 60_000, 4_500,
                        "ag-3", "inside_sales", attributes, 0, 2]  # fmt: skip


@pytest.mark.parametrize("call_id", [None, ""])
def test_a_call_of_a_case_without_owner_or_numeric_seconds_has_empty_columns(call_id: str | None) -> None:
    attributes = {"handle_seconds": "about 5 min", "wait_seconds": ""}
    if call_id is not None:
        attributes["call_id"] = call_id  # empty: no call id, the event's is the call's
    event = RecordEvent("c5", "C-5", "case", "call_offered", T, attributes)
    (_, call), (_, activity) = ROWS_OF["case_events"](encode_event(event), 0, 0)[1:]
    assert call[:12] == ["c5", "c5", "offered", "", "", "", "C-5", T, None, None, "", attributes]
    assert activity[:13] == ["c5", "c5", "phone_call", "call_offered", "", "C-5", "case", T, None, None, "", "",
                             attributes]  # fmt: skip


def test_an_activity_event_is_an_activities_row() -> None:
    activity = ActivityEvent("a1", "M-1", "phone_call", "phone_call_completed", "inbound", "C-1", "case", T, 90_000,
                             {"agent": "ag-2", "queue": "hotline", "wait_seconds": "7.25"})  # fmt: skip
    assert ROWS_OF["case_events"](encode_event(activity), 1, 2) == [("activities", [
        "a1", "M-1", "phone_call", "phone_call_completed", "inbound", "C-1", "case", T, 90_000, 7_250, "ag-2",
        "hotline", {"agent": "ag-2", "queue": "hotline", "wait_seconds": "7.25"}, 1, 2,
    ])]  # fmt: skip


def test_a_call_event_is_a_call_events_row() -> None:
    call = CallEvent("k1", "CALL-1", "answered", "inbound", "hotline", "ag-1", None, T,
                     {"wait_seconds": "15", "tier": "VIP"})  # fmt: skip
    assert ROWS_OF["calls"](encode_event(call), 0, 8) == [("call_events", [
        "k1", "CALL-1", "answered", "inbound", "hotline", "ag-1", "", T, 15_000, None, "VIP",
        {"wait_seconds": "15", "tier": "VIP"}, 0, 8,
    ])]  # fmt: skip


def test_a_tick_gives_no_row() -> None:
    assert ROWS_OF["case_events"](encode_tick(T, "worker-1"), 0, 0) == []
    assert ROWS_OF["calls"](encode_tick(T, "worker-1"), 0, 0) == []


@pytest.mark.parametrize("topic", sorted(ROWS_OF))
@pytest.mark.parametrize("value", [b"", b"not avro at all", MAGIC + b"\x00" * 8 + b"\x02"], ids=["empty", "text", "fp"])
def test_undecodable_bytes_raise_codec_error(topic: str, value: bytes) -> None:
    with pytest.raises(CodecError) as raised:
        ROWS_OF[topic](value, 0, 0)
    assert raised.value.reason == UNDECODABLE


def test_trailing_bytes_are_undecodable() -> None:
    value = encode_event(RecordEvent("e1", "C-1", "case", "created", T)) + b"\x00"
    with pytest.raises(CodecError) as raised:
        ROWS_OF["case_events"](value, 0, 0)
    assert raised.value.reason == UNDECODABLE


@pytest.mark.parametrize(
    "body",
    [
        ("slaflow.RecordEvent", {"event_id": "", "record_id": "C-1", "entity_type": "case", "kind": "created",
                                 "occurred_at_ms": T, "attributes": {}}),
        ("slaflow.RecordEvent", {"event_id": "e1", "record_id": "C-1", "entity_type": "case", "kind": "created",
                                 "occurred_at_ms": T, "attributes": {"": "x"}}),
        ("slaflow.ActivityEvent", {"event_id": "a1", "activity_id": "M-1", "activity_type": "fax", "kind": "sent",
                                   "direction": "", "regarding_id": "C-1", "regarding_type": "case",
                                   "occurred_at_ms": T, "duration_ms": None, "attributes": {}}),
        ("slaflow.CallEvent", {"event_id": "k1", "call_id": "CALL-1", "kind": "answered", "direction": "sideways",
                               "queue": "", "agent": "", "case_id": None, "occurred_at_ms": T, "attributes": {}}),
        ("slaflow.ClockTick", {"at_ms": 2**62, "source": "x"}),
    ],
    ids=["empty-event-id", "empty-attribute-name", "activity-type", "call-direction", "tick-out-of-range"],
)  # fmt: skip
def test_a_schema_violating_input_raises_codec_error(body: tuple[str, dict[str, Any]]) -> None:
    value = INPUT_MESSAGE.encode({"body": body})  # the encoder checks types only, not validate()'s rules
    for topic in ("case_events", "calls"):
        with pytest.raises(CodecError) as raised:
            ROWS_OF[topic](value, 0, 0)
        assert raised.value.reason == SCHEMA_VIOLATION


def test_every_row_has_its_table_s_columns() -> None:
    calls = {"wait_seconds": "1", "handle_seconds": "2"}
    messages = [
        ("alerts", SLA_ALERT.encode(alert_message(output(OutputKind.WARNING), T))),
        ("kpi_transitions", KPI_TRANSITION.encode(transition_message(output(OutputKind.KPI_STARTED), T))),
        ("kpi_durations", KPI_DURATION.encode(duration_message(output(OutputKind.KPI_CANCELLED)) or {})),
        ("case_events", encode_event(RecordEvent("e1", "C-1", "case", "email_sent", T))),
        ("case_events", encode_event(RecordEvent("p1", "PC-1", "phone_call", "call_answered", T, calls))),
        ("case_events", encode_event(RecordEvent("c1", "C-1", "case", "call_answered", T, calls))),
        ("case_events", encode_event(ActivityEvent("a1", "M-1", "note", "note_added", "", "C-1", "case", T))),
        ("calls", encode_event(CallEvent("k1", "CALL-1", "offered", "inbound", "", "", "C-1", T))),
    ]
    seen = set()
    for topic, value in messages:
        for table, row in ROWS_OF[topic](value, 0, 0):
            assert len(row) == len(TABLE_COLUMNS[table]), table
            seen.add(table)
    assert seen == set(TABLE_COLUMNS)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("12", 12_000), ("12.5", 12_500), ("0.001", 1), ("-0.5", -500), ("12.", 12_000), (" 7 ", 7_000),
     ("1e3", 1_000_000), ("", None), ("abc", None), ("nan", None), ("inf", None), ("-Infinity", None)],
)  # fmt: skip
def test_seconds_become_milliseconds(text: str, ms: int | None) -> None:
    assert _seconds_ms({"wait_seconds": text}, "wait_seconds") == ms


@pytest.mark.parametrize(
    ("text", "sure"),
    [(b"", True), (b"12", True), (b"-0.5", True), (b"12.", True), (b"999999999.999", True), (b"abc", True),
     (b"nan", True), (b"12.3456", False), (b"1e3", False), (b" 7", False), (b"1234567890", False),
     ("\u0661".encode(), False)],
)  # fmt: skip
def test_the_engine_path_computes_only_seconds_it_computes_exactly(text: bytes, sure: bool) -> None:
    """The texts the SQL takes: empty, up to 9 digits and 3 decimals, or ASCII without a digit (and not an
    Arabic-Indic digit, which float() reads)."""
    assert _seconds_bytes_sure(text) is sure


# ---------------------------------------------------------------------------------------------------------------
# The framer: which messages go to ClickHouse, in which shape and part


def test_the_framer_sorts_messages_by_shape_and_part_and_leaves_the_rest_to_python() -> None:
    calls = {"wait_seconds": "12", "handle_seconds": "3.5"}
    values = [
        encode_event(RecordEvent("e1", "C-1", "case", "created", T)),
        encode_event(RecordEvent("e2", "C-1", "case", "email_received", T)),
        encode_event(RecordEvent("p1", "PC-1", "phone_call", "call_answered", T, calls)),
        encode_event(RecordEvent("p2", "PC-2", "phone_call", "call_answered", T, {"wait_seconds": "1e3"})),
        encode_event(ActivityEvent("a1", "M-1", "note", "note_added", "", "C-1", "case", T)),
        encode_event(CallEvent("k1", "CALL-1", "offered", "inbound", "", "", None, T)),
        encode_tick(T, "worker-1"),
        b"not avro at all",
        encode_event(RecordEvent("c1", "C-1", "case", "call_answered", T, calls)),
        encode_event(RecordEvent("c2", "C-1", "case", "call_answered", T, {"handle_seconds": "1e3"})),
        encode_event(RecordEvent("c3", "C-1", "case", "callback_requested", T, calls)),
        encode_event(RecordEvent("c4", "L-1", "lead", "call_ended", T)),
    ]
    offsets = list(range(10, 10 + len(values)))
    groups, reference = Framer().frame("case_events", values, 3, offsets)
    sorted_ = {(g.shape.name, g.part): g.offsets for g in groups}
    assert sorted_ == {
        ("record_events", "plain"): [10, 20], ("record_events", "email"): [11], ("record_events", "call"): [12],
        ("record_events", "record_call"): [18, 21], ("activity_events", ""): [14], ("call_events", ""): [15],
    }  # fmt: skip
    assert reference == [3, 6, 7, 9]  # calls whose seconds SQL cannot compute exactly, a tick, garbage
    for group in groups:
        assert group.values == [values[o - 10] for o in group.offsets]
        for block, offset in zip(group.blocks, group.offsets, strict=True):
            assert block.startswith(b"\x02") and values[offset - 10] in block


def test_an_output_topic_frames_its_current_writer_only() -> None:
    alert = SLA_ALERT.encode(alert_message(output(OutputKind.WARNING), T))
    other = MAGIC + struct.pack("<Q", 12345) + alert[10:]
    groups, reference = Framer().frame("alerts", [alert, other, alert[:-1] + b""], 0, [0, 1, 2])
    assert [(g.shape.name, g.offsets) for g in groups] == [("alerts", [0, 2])]  # a truncated one: ClickHouse says
    assert reference == [1]


def test_every_shape_writes_every_column_of_its_tables() -> None:
    for shape in SHAPES:
        assert not shape.targets[0].parts
        for target in shape.targets:
            assert len(target.columns) == len(TABLE_COLUMNS[target.table])
    assert set(TOPIC_SHAPES) == set(ROWS_OF)


def test_outcomes_count_what_the_reference_path_did() -> None:
    outcomes = Outcomes()
    assert outcomes.reference("case_events", encode_tick(T, "w"), 0, 1) == []
    assert outcomes.reference("case_events", b"junk", 0, 2) == []
    assert len(outcomes.reference("calls", encode_event(CallEvent("k", "C", "ended", "inbound", "", "", None, T)),
                                  1, 3)) == 1  # fmt: skip
    assert outcomes.counts == {("case_events", "skipped", ""): 1, ("case_events", "refused", UNDECODABLE): 1,
                               ("calls", "written", ""): 1}  # fmt: skip
    (refused,) = outcomes.refused
    assert (refused.topic, refused.partition, refused.offset, refused.error.reason) == ("case_events", 0, 2,
                                                                                        UNDECODABLE)  # fmt: skip
