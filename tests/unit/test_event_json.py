"""The JSON event format, validation, and what activities and calls mean to the SLA core.

parse_event accepts the documented shapes and names what is wrong with the others; core_event and routing_key say
where each input event goes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streams.core import SlaCore
from streams.errors import SlaflowError
from streams.events import (
    ActivityEvent,
    CallEvent,
    EventError,
    InputEvent,
    RecordEvent,
    Tick,
    core_event,
    event_to_json,
    format_instant_ms,
    parse_event,
    parse_event_line,
    routing_key,
    validate,
)
from streams.outputs import OutputKind
from streams.policy import load_policies
from streams.replay import Replayer

T = 1_772_442_900_000  # 2026-03-02T09:15:00Z


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "record_id": "case-42",
        "entity_type": "case",
        "kind": "created",
        "occurred_at": "2026-03-02T09:15:00Z",
        "attributes": {"tier": "VIP"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_complete_event() -> None:
    assert parse_event(event()) == RecordEvent("e1", "case-42", "case", "created", T, {"tier": "VIP"})


def test_a_json_line_as_read_from_a_file() -> None:
    line = '{"event_id":"e1","record_id":"c","entity_type":"case","kind":"created","occurred_at_ms":5}'
    assert parse_event(json.loads(line)) == RecordEvent("e1", "c", "case", "created", 5, {})


@pytest.mark.parametrize(
    ("changes", "expected_ms"),
    [
        ({"occurred_at": "2026-03-02T10:15:00+01:00"}, T),
        ({"occurred_at": "2026-03-02T09:15:00.250Z"}, T + 250),
        ({"occurred_at": "2026-03-02T09:15:00.2509Z"}, T + 250),
        ({"occurred_at": "2026-03-02T04:15:00-05:00"}, T),
        ({"occurred_at": T}, T),
        ({"occurred_at": ..., "occurred_at_ms": T + 1}, T + 1),
        ({"occurred_at": "1969-12-31T23:59:59.999Z"}, -1),
    ],
)
def test_timestamps(changes: dict[str, Any], expected_ms: int) -> None:
    assert parse_event(event(**changes)).occurred_at_ms == expected_ms


def test_attribute_values_become_strings_and_nulls_are_dropped() -> None:
    attributes = {"tier": "VIP", "vip": True, "closed": False, "amount": 5000, "billed": 5000.0, "owner": None, "x": ""}
    parsed = parse_event(event(attributes=attributes))
    assert parsed.attributes == {
        "tier": "VIP",
        "vip": "true",
        "closed": "false",
        "amount": "5000",
        "billed": "5000.0",
        "x": "",
    }


@pytest.mark.parametrize("attributes", [..., None, {}])
def test_attributes_are_optional(attributes: Any) -> None:
    assert parse_event(event(attributes=attributes)).attributes == {}


@pytest.mark.parametrize(
    ("obj", "reason", "mentions"),
    [
        ([1, 2], "not_an_object", "a list"),
        ("text", "not_an_object", "a string"),
        (None, "not_an_object", "null"),
        (event(extra=1, zeta=2), "unknown_field", "'extra', 'zeta'"),
        (event(record_id=...), "missing_field", "record_id"),
        (event(record_id=None), "missing_field", "record_id"),
        (event(kind=""), "missing_field", "kind"),
        (event(event_id=17), "bad_type", "event_id"),
        (event(entity_type=["case"]), "bad_type", "entity_type"),
        (event(occurred_at=...), "missing_field", "occurred_at"),
        (event(occurred_at="2026-03-02T09:15:00"), "bad_timestamp", "offset"),
        (event(occurred_at="yesterday"), "bad_timestamp", "'yesterday'"),
        (event(occurred_at=1.5e12), "bad_timestamp", "a number"),
        (event(occurred_at=True), "bad_timestamp", "a boolean"),
        (event(occurred_at_ms=T), "bad_timestamp", "not both"),
        (event(occurred_at=..., occurred_at_ms="1772442900000"), "bad_timestamp", "integer"),
        (event(occurred_at=..., occurred_at_ms=False), "bad_timestamp", "integer"),
        (event(occurred_at=10**20), "bad_timestamp", "out of range"),
        (event(attributes=["tier", "VIP"]), "bad_type", "attributes"),
        (event(attributes={"tier": "VIP", "owner": {"id": 7}}), "bad_type", "'owner'"),
        (event(attributes={"tags": ["a", "b"]}), "bad_type", "'tags'"),
        (event(attributes={"": "x"}), "bad_type", "attribute names"),
        (event(attributes={"amount": float("nan")}), "bad_type", "'amount'"),
    ],
)
def test_rejects_with_a_reason(obj: object, reason: str, mentions: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(obj)
    assert caught.value.reason == reason
    assert mentions in caught.value.detail
    assert str(caught.value).startswith(f"{reason}: ")


def test_event_error_is_a_permanent_slaflow_error() -> None:
    assert issubclass(EventError, SlaflowError)
    assert EventError.retriable is False


def test_event_to_json_is_the_inverse() -> None:
    original = RecordEvent("e1", "case-42", "case", "created", T + 123, {"tier": "VIP", "amount": "5000.0"})
    as_json = event_to_json(original)
    assert as_json == {
        "event_id": "e1",
        "record_id": "case-42",
        "entity_type": "case",
        "kind": "created",
        "occurred_at": "2026-03-02T09:15:00.123Z",
        "attributes": {"tier": "VIP", "amount": "5000.0"},
    }
    assert parse_event(json.loads(json.dumps(as_json))) == original


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "1970-01-01T00:00:00.000Z"), (-1, "1969-12-31T23:59:59.999Z"), (T, "2026-03-02T09:15:00.000Z")],
)
def test_format_instant_ms(ms: int, text: str) -> None:
    assert format_instant_ms(ms) == text
    assert parse_event(event(occurred_at=text)).occurred_at_ms == ms


# ---------------------------------------------------------------------------------------------------------------
# Activities and calls

SHIPPED_POLICIES = Path(__file__).resolve().parents[2] / "deploy" / "policies" / "default.yaml"
MIN = 60_000


def activity(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "activity",
        "event_id": "e2",
        "activity_id": "mail-7",
        "activity_type": "email",
        "kind": "email_sent",
        "direction": "outbound",
        "regarding_id": "case-42",
        "regarding_type": "case",
        "occurred_at": "2026-03-02T09:15:00Z",
        "duration_ms": 90_000,
        "attributes": {"subject_category": "billing"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def call(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "call",
        "event_id": "e3",
        "call_id": "call-9",
        "kind": "answered",
        "direction": "outbound",
        "queue": "hotline",
        "agent": "ana",
        "case_id": "case-42",
        "occurred_at_ms": T,
        "attributes": {"wait_seconds": 12},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


ACTIVITY = ActivityEvent(
    "e2", "mail-7", "email", "email_sent", "outbound", "case-42", "case", T, 90_000, {"subject_category": "billing"}
)
CALL = CallEvent("e3", "call-9", "answered", "outbound", "hotline", "ana", "case-42", T, {"wait_seconds": "12"})


def test_an_activity_and_a_call() -> None:
    assert parse_event(activity()) == ACTIVITY
    assert parse_event(call()) == CALL


def test_optional_fields_of_activities_and_calls_take_their_defaults() -> None:
    minimal = activity(direction=..., duration_ms=..., attributes=..., activity_type="note", kind="note_added")
    assert parse_event(minimal) == ActivityEvent("e2", "mail-7", "note", "note_added", "", "case-42", "case", T)
    assert parse_event(activity(direction=None, duration_ms=None)).direction == ""
    assert parse_event(call(queue=..., agent=..., case_id=..., attributes=...)) == CallEvent(
        "e3", "call-9", "answered", "outbound", "", "", None, T
    )


def test_type_record_is_the_default_and_may_be_given() -> None:
    assert parse_event(event(type="record")) == parse_event(event())


def test_a_json_line_of_each_type() -> None:
    line = json.dumps(call(case_id=None)).encode()
    assert parse_event_line(line) == CallEvent(
        "e3", "call-9", "answered", "outbound", "hotline", "ana", None, T, {"wait_seconds": "12"}
    )


@pytest.mark.parametrize(
    ("obj", "reason", "mentions"),
    [
        (event(type="activities"), "bad_type", "'activities'"),
        (event(type=None), "bad_type", "None"),
        (event(type=1), "bad_type", "1"),
        (activity(record_id="case-42"), "unknown_field", "'record_id'"),
        (call(regarding_id="case-42"), "unknown_field", "'regarding_id'"),
        (event(case_id="case-42"), "unknown_field", "'case_id'"),
        (activity(regarding_id=...), "missing_field", "regarding_id"),
        (activity(activity_type=""), "missing_field", "activity_type"),
        (call(direction=...), "missing_field", "direction"),
        (activity(duration_ms="90000"), "bad_type", "duration_ms"),
        (activity(duration_ms=True), "bad_type", "duration_ms"),
        (activity(duration_ms=1.5), "bad_type", "duration_ms"),
        (activity(direction=1), "bad_type", "direction"),
        (call(case_id=42), "bad_type", "case_id"),
        (call(queue=["a"]), "bad_type", "queue"),
        (activity(activity_type="fax"), "schema_violation", "activity_type"),
        (activity(direction="sideways"), "schema_violation", "'sideways'"),
        (activity(duration_ms=-1), "schema_violation", "duration_ms"),
        (call(kind="ringing"), "schema_violation", "'ringing'"),
        (call(direction=""), "missing_field", "direction"),
        (call(occurred_at_ms=10**20), "bad_timestamp", "out of range"),
    ],
)
def test_activity_and_call_rejects_with_a_reason(obj: object, reason: str, mentions: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(obj)
    assert caught.value.reason == reason
    assert mentions in caught.value.detail


@pytest.mark.parametrize(
    "message",
    [
        ACTIVITY,
        ActivityEvent("e2", "t-1", "time_log", "time_logged", "", "contract-1", "contract", -5, None, {}),
        CALL,
        CallEvent("e3", "call-9", "abandoned", "inbound", "", "", None, T + 7, {}),
    ],
)
def test_event_to_json_round_trips_activities_and_calls(message: InputEvent) -> None:
    as_json = event_to_json(message)
    assert as_json["type"] == ("activity" if isinstance(message, ActivityEvent) else "call")
    assert parse_event(json.loads(json.dumps(as_json))) == message


@pytest.mark.parametrize(
    ("message", "mentions"),
    [
        (RecordEvent("", "c", "case", "created", T), "event_id"),
        (RecordEvent("e", "", "case", "created", T), "record_id"),
        (RecordEvent("e", "c", "", "", T), "entity_type, kind"),
        (RecordEvent("e", "c", "case", "created", T, {"": "x"}), "attribute names"),
        (RecordEvent("e", "c", "case", "created", -62_135_596_800_001), "occurred_at_ms out of range"),
        (RecordEvent("e", "c", "case", "created", 253_402_300_800_000), "occurred_at_ms out of range"),
        (ActivityEvent("e", "", "email", "k", "", "c", "case", T), "activity_id"),
        (ActivityEvent("e", "a", "email", "k", "", "c", "", T), "regarding_type"),
        (ActivityEvent("e", "a", "Email", "k", "", "c", "case", T), "activity_type"),
        (ActivityEvent("e", "a", "email", "k", "in", "c", "case", T), "direction"),
        (ActivityEvent("e", "a", "email", "k", "", "c", "case", T, -1), "duration_ms"),
        (CallEvent("e", "", "offered", "inbound", "", "", None, T), "call_id"),
        (CallEvent("e", "c", "call_offered", "inbound", "", "", None, T), "kind"),
        (CallEvent("e", "c", "offered", "", "", "", None, T), "direction"),
        (Tick(253_402_300_800_000), "at_ms out of range"),
    ],
)
def test_validate_refuses_what_the_schema_cannot_express(message: InputEvent | Tick, mentions: str) -> None:
    with pytest.raises(EventError) as caught:
        validate(message)
    assert caught.value.reason == "schema_violation"
    assert mentions in caught.value.detail


@pytest.mark.parametrize(
    "message",
    [
        RecordEvent("e", "c", "case", "created", -62_135_596_800_000),  # 0001-01-01T00:00:00Z
        RecordEvent("e", "c", "case", "created", 253_402_300_799_999),  # 9999-12-31T23:59:59.999Z
        ActivityEvent("e", "a", "appointment", "appointment_scheduled", "", "c", "case", T, 0),
        CallEvent("e", "c", "ended", "inbound", "", "", "", T),
        Tick(0),
    ],
)
def test_validate_accepts_the_edges(message: InputEvent | Tick) -> None:
    validate(message)


def test_core_event_of_a_record_event_is_itself() -> None:
    record = RecordEvent("e1", "case-42", "case", "created", T, {"tier": "VIP"})
    assert core_event(record) is record


def test_an_activity_reaches_the_record_it_regards() -> None:
    assert core_event(ACTIVITY) == RecordEvent(
        "e2",
        "case-42",
        "case",
        "email_sent",
        T,
        {
            "subject_category": "billing",
            "activity_id": "mail-7",
            "activity_type": "email",
            "direction": "outbound",
            "duration_ms": "90000",
        },
    )


def test_an_activity_without_direction_clears_an_earlier_one() -> None:
    note = ActivityEvent("e4", "n-1", "note", "note_added", "", "case-42", "case", T, None, {"direction": "x"})
    assert core_event(note) == RecordEvent(
        "e4", "case-42", "case", "note_added", T, {"activity_id": "n-1", "activity_type": "note", "direction": ""}
    )


def test_a_call_reaches_its_case_as_call_kind_without_touching_the_case_queue() -> None:
    assert core_event(CALL) == RecordEvent(
        "e3",
        "case-42",
        "case",
        "call_answered",
        T,
        {
            "wait_seconds": "12",
            "call_id": "call-9",
            "direction": "outbound",
            "call_queue": "hotline",
            "call_agent": "ana",
        },
    )
    bare = CallEvent("e5", "call-9", "offered", "inbound", "", "", "case-42", T)
    assert core_event(bare) == RecordEvent(
        "e5", "case-42", "case", "call_offered", T, {"call_id": "call-9", "direction": "inbound"}
    )


@pytest.mark.parametrize("case_id", [None, ""])
def test_a_call_without_a_case_is_nothing_for_the_core(case_id: str | None) -> None:
    assert core_event(CallEvent("e3", "call-9", "answered", "inbound", "", "", case_id, T)) is None


@pytest.mark.parametrize(
    ("message", "key"),
    [
        (RecordEvent("e1", "case-42", "case", "created", T), "case-42"),
        (ACTIVITY, "case-42"),
        (CALL, "case-42"),
        (CallEvent("e3", "call-9", "offered", "inbound", "", "", None, T), "call-9"),
        (CallEvent("e3", "call-9", "offered", "inbound", "", "", "", T), "call-9"),
    ],
)
def test_routing_key_is_the_record_whose_state_changes(message: InputEvent, key: str) -> None:
    assert routing_key(message) == key
    reached = core_event(message)
    assert reached is None or reached.record_id == key


@pytest.mark.parametrize(
    "response",
    [
        CallEvent("e2", "call-1", "answered", "outbound", "hotline", "ana", "case-42", T + 10 * MIN),
        ActivityEvent("e2", "mail-1", "email", "email_sent", "outbound", "case-42", "case", T + 10 * MIN),
    ],
)
def test_the_shipped_policy_counts_an_answered_outbound_call_or_an_outbound_email_as_first_response(
    response: InputEvent,
) -> None:
    replayer = Replayer(SlaCore(load_policies(SHIPPED_POLICIES)))
    replayer.feed(RecordEvent("e1", "case-42", "case", "created", T, {"priority": "high", "tier": "VIP"}))
    reached = core_event(response)
    assert reached is not None
    succeeded = [o for o in replayer.feed(reached) if o.kind is OutputKind.KPI_SUCCEEDED]
    assert [(o.kpi, o.reason, o.business_elapsed_ms) for o in succeeded] == [("first_response", "met", 10 * MIN)]


def test_an_inbound_call_is_not_a_first_response() -> None:
    replayer = Replayer(SlaCore(load_policies(SHIPPED_POLICIES)))
    replayer.feed(RecordEvent("e1", "case-42", "case", "created", T, {"priority": "high"}))
    reached = core_event(CallEvent("e2", "call-1", "answered", "inbound", "", "", "case-42", T + MIN))
    assert reached is not None
    assert [o for o in replayer.feed(reached) if o.kind is OutputKind.KPI_SUCCEEDED] == []
