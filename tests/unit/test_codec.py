"""The Avro codec of slaflow: single-object encoding, the input messages, and the output messages' mapping.

Byte-compatibility with the Apache implementation is in test_avro_reference.py, schema evolution in
test_schema_evolution.py.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.codec import (
    DEAD_LETTER,
    INPUT_MESSAGE,
    KPI_DURATION,
    KPI_TRANSITION,
    MAGIC,
    SLA_ALERT,
    CodecError,
    crc64_avro,
    decode_input,
    encode_event,
    encode_input,
    encode_tick,
)
from schemas.messages import alert_message, duration_message, transition_message
from streams.core import SlaCore
from streams.events import ActivityEvent, CallEvent, EventError, InputEvent, RecordEvent, Tick
from streams.outputs import ALERT_KINDS, Output, OutputKind
from streams.policy import Action, parse_policies
from streams.replay import Replayer

T = 1_772_442_900_000  # 2026-03-02T09:15:00Z, a Monday
H = 3_600_000

EVENT = {
    "body": (
        "slaflow.RecordEvent",
        {
            "event_id": "e1",
            "record_id": "C-1",
            "entity_type": "case",
            "kind": "created",
            "occurred_at_ms": 1_700_000_000_000,
            "attributes": {"tier": "VIP", "owner": "ana"},
        },
    )
}

MESSAGES: list[InputEvent | Tick] = [
    RecordEvent("e1", "case-42", "case", "created", T, {"tier": "VIP", "owner": "Zoë"}),
    ActivityEvent("e2", "mail-7", "email", "email_sent", "outbound", "case-42", "case", T, None, {"x": "1"}),
    ActivityEvent("e3", "log-1", "time_log", "time_logged", "", "contract-1", "contract", -1, 1_800_000),
    CallEvent("e4", "call-9", "answered", "outbound", "hotline", "ana", "case-42", T, {"wait_seconds": "12"}),
    CallEvent("e5", "call-9", "abandoned", "inbound", "", "", None, T),
    Tick(T),
]


def test_crc64_avro_matches_the_specification_test_vector() -> None:
    # The Avro specification's fingerprint of the schema "null" is 0x63dd24e7cc258f8a.
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A


def test_round_trip_and_header() -> None:
    data = INPUT_MESSAGE.encode(EVENT)
    assert data[:2] == MAGIC and struct.unpack_from("<Q", data, 2)[0] == INPUT_MESSAGE.fingerprint
    assert INPUT_MESSAGE.decode(data) == EVENT


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain text",
        MAGIC + b"\x00" * 8 + b"\x02",
        INPUT_MESSAGE.encode(EVENT)[:-4],
        INPUT_MESSAGE.encode(EVENT) + b"x",
        INPUT_MESSAGE.header + b"\x08",  # union branch 4 of 0..3
        SLA_ALERT.header,  # another schema's fingerprint
    ],
)
def test_bad_bytes_raise_one_error_type_with_reason_undecodable(data: bytes) -> None:
    with pytest.raises(CodecError) as caught:
        INPUT_MESSAGE.decode(data)
    assert caught.value.reason == "undecodable"
    with pytest.raises(CodecError) as caught:
        decode_input(data)
    assert caught.value.reason == "undecodable"
    assert str(caught.value) == caught.value.detail


def test_values_that_do_not_fit_the_schema_raise_codec_error() -> None:
    with pytest.raises(CodecError) as caught:
        SLA_ALERT.encode({"alert_id": 5})
    assert caught.value.reason == "unencodable"


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_decode_input_returns_each_body_type(message: InputEvent | Tick) -> None:
    assert decode_input(encode_input(message, "worker-1")) == message


def test_the_tick_carries_its_source_on_the_wire() -> None:
    assert INPUT_MESSAGE.decode(encode_input(Tick(T), "worker-1"))["body"] == (
        "slaflow.ClockTick",
        {"at_ms": T, "source": "worker-1"},
    )


def test_encode_event_and_encode_tick_are_encode_input() -> None:
    assert encode_event(MESSAGES[1]) == encode_input(MESSAGES[1])  # type: ignore[arg-type]
    assert encode_tick(T, "w") == encode_input(Tick(T), "w")


@pytest.mark.parametrize(
    ("branch", "body", "mentions"),
    [
        (
            "slaflow.ActivityEvent",
            {
                "event_id": "e2", "activity_id": "a", "activity_type": "fax", "kind": "k", "direction": "",
                "regarding_id": "c", "regarding_type": "case", "occurred_at_ms": T, "duration_ms": None,
                "attributes": {},
            },
            "activity_type",
        ),
        (
            "slaflow.CallEvent",
            {
                "event_id": "e3", "call_id": "c", "kind": "offered", "direction": "sideways", "queue": "", "agent": "",
                "case_id": None, "occurred_at_ms": T, "attributes": {},
            },
            "direction",
        ),
        (
            "slaflow.RecordEvent",
            {
                "event_id": "", "record_id": "c", "entity_type": "case", "kind": "k", "occurred_at_ms": T,
                "attributes": {},
            },
            "event_id",
        ),
        ("slaflow.ClockTick", {"at_ms": 2**62, "source": ""}, "at_ms"),
    ],
)  # fmt: skip
def test_a_decodable_message_that_breaks_validation_is_a_schema_violation(
    branch: str, body: dict[str, Any], mentions: str
) -> None:
    data = INPUT_MESSAGE.encode({"body": (branch, body)})
    with pytest.raises(CodecError) as caught:
        decode_input(data)
    assert caught.value.reason == "schema_violation"
    assert isinstance(caught.value.__cause__, EventError)
    assert mentions in str(caught.value)


def test_encode_input_refuses_what_every_reader_would_dead_letter() -> None:
    with pytest.raises(CodecError) as caught:
        encode_input(CallEvent("e", "c", "ringing", "inbound", "", "", None, T))
    assert caught.value.reason == "schema_violation"


def test_each_body_branch_has_the_fields_of_its_event_class_in_order() -> None:
    classes = {
        "slaflow.RecordEvent": RecordEvent,
        "slaflow.ActivityEvent": ActivityEvent,
        "slaflow.CallEvent": CallEvent,
    }
    branches = INPUT_MESSAGE.schema["fields"][0]["type"]
    assert [b["name"] for b in branches] == [*classes, "slaflow.ClockTick"]
    for branch in branches[:-1]:
        names = [f["name"] for f in branch["fields"]]
        assert names == [f.name for f in dataclasses.fields(classes[branch["name"]])]


@pytest.mark.parametrize("codec", [INPUT_MESSAGE, SLA_ALERT, KPI_TRANSITION, KPI_DURATION, DEAD_LETTER])
def test_every_field_says_what_it_means(codec: Any) -> None:
    def undocumented(schema: Any) -> list[str]:
        if isinstance(schema, list):
            return [name for branch in schema for name in undocumented(branch)]
        if not isinstance(schema, dict):
            return []
        if schema.get("type") == "record":
            missing = [f"{schema['name']}.{f['name']}" for f in schema["fields"] if not f.get("doc")]
            return missing + [name for f in schema["fields"] for name in undocumented(f["type"])]
        return undocumented(schema.get("items")) + undocumented(schema.get("values"))

    assert undocumented(codec.schema) == []


@pytest.mark.parametrize("codec", [INPUT_MESSAGE, SLA_ALERT, KPI_TRANSITION, KPI_DURATION, DEAD_LETTER])
def test_docs_events_md_has_a_row_for_every_field(codec: Any) -> None:
    reference = (Path(__file__).resolve().parents[2] / "docs" / "events.md").read_text(encoding="utf-8")

    def records(schema: Any) -> list[dict[str, Any]]:
        if isinstance(schema, list):
            return [r for branch in schema for r in records(branch)]
        if not isinstance(schema, dict):
            return []
        if schema.get("type") == "record":
            return [schema, *(r for f in schema["fields"] for r in records(f["type"]))]
        return records(schema.get("items")) + records(schema.get("values"))

    for record in records(codec.schema):
        if record["name"] in ("slaflow.InputMessage", "slaflow.Action"):
            continue  # described in prose
        table = reference.split(f"#### {record['name'].split('.')[-1]} (", 1)[1].split("\n\n", 2)[1]
        assert [row.split("`")[1] for row in table.splitlines()[2:]] == [f["name"] for f in record["fields"]]


# ---------------------------------------------------------------------------------------------------------------
# Output messages


def output(kind: OutputKind, **changes: Any) -> Output:
    base: dict[str, Any] = {
        "kind": kind,
        "record_id": "case-42",
        "entity_type": "case",
        "policy": "vip",
        "policy_version": "2026-11-22",
        "kpi": "resolution",
        "kpi_instance": 1,
        "at_ms": T + 10 * H,
        "started_at_ms": T,
        "deadline_ms": T + 8 * H,
        "target_ms": 8 * H,
        "business_elapsed_ms": 9 * H,
        "wall_elapsed_ms": 10 * H,
        "paused_ms": H,
        "sequence": 0,
        "actions": (Action("notify", ("owner", "supervisor"), "", "resolution_due"),),
        "attributes": {"tier": "VIP", "queue": "Zoë's"},
    }
    base.update(changes)
    return Output(**base)


@pytest.mark.parametrize("kind", sorted(ALERT_KINDS))
def test_alert_message_encodes_as_sla_alert(kind: OutputKind) -> None:
    alert = output(kind, level=2 if kind is OutputKind.ESCALATION else 0, sequence=2, revision=1, revoked=True)
    message = alert_message(alert, fired_at_ms=T + 11 * H)
    assert SLA_ALERT.decode(SLA_ALERT.encode(message)) == message
    assert message["alert_id"] == alert.output_id and message["kind"] == kind.value
    assert (message["threshold_at_ms"], message["fired_at_ms"], message["deadline_ms"]) == (
        T + 10 * H,
        T + 11 * H,
        T + 8 * H,
    )
    assert message["actions"] == [
        {"type": "notify", "targets": ["owner", "supervisor"], "value": "", "template": "resolution_due"}
    ]


def test_an_alert_never_fires_before_its_threshold_and_has_a_deadline_when_paused() -> None:
    message = alert_message(output(OutputKind.WARNING, deadline_ms=None), fired_at_ms=T)
    assert message["fired_at_ms"] == message["deadline_ms"] == T + 10 * H


@pytest.mark.parametrize("kind", sorted(set(OutputKind) - ALERT_KINDS))
def test_transition_message_encodes_every_other_output_as_kpi_transition(kind: OutputKind) -> None:
    transition = output(kind, sequence=3, reason="waiting_for_customer", revision=2)
    message = transition_message(transition, emitted_at_ms=T + 12 * H)
    assert KPI_TRANSITION.decode(KPI_TRANSITION.encode(message)) == message
    assert message["transition_id"] == transition.output_id == f"case-42/resolution/1/{kind.value}/3"
    assert (message["kind"], message["sequence"], message["emitted_at_ms"]) == (kind.value, 3, T + 12 * H)
    assert set(message) == {f["name"] for f in KPI_TRANSITION.schema["fields"]}


def test_a_transition_keeps_a_null_deadline_and_is_never_emitted_before_it_was_visible() -> None:
    started = output(OutputKind.KPI_STARTED, at_ms=T, deadline_ms=None, visible_at_ms=T + 2 * H)
    message = transition_message(started, emitted_at_ms=T + H)
    assert (message["deadline_ms"], message["emitted_at_ms"]) == (None, T + 2 * H)
    assert KPI_TRANSITION.decode(KPI_TRANSITION.encode(message))["deadline_ms"] is None


def test_an_alert_is_not_a_transition() -> None:
    with pytest.raises(ValueError, match="alert"):
        transition_message(output(OutputKind.BREACH), emitted_at_ms=T)


@pytest.mark.parametrize(
    ("changes", "outcome", "breached"),
    [
        ({"kind": OutputKind.KPI_SUCCEEDED, "reason": "met"}, "met", False),
        ({"kind": OutputKind.KPI_SUCCEEDED, "reason": "met_late"}, "breached", True),
        ({"kind": OutputKind.KPI_CANCELLED, "reason": "cancelled", "at_ms": T + 8 * H}, "cancelled", False),
        ({"kind": OutputKind.KPI_CANCELLED, "reason": "merged", "at_ms": T + 8 * H + 1}, "cancelled", True),
        ({"kind": OutputKind.KPI_CANCELLED, "deadline_ms": None, "business_elapsed_ms": 8 * H - 1}, "cancelled", False),
        ({"kind": OutputKind.KPI_CANCELLED, "deadline_ms": None, "business_elapsed_ms": 8 * H}, "cancelled", True),
    ],
)
def test_duration_message_of_an_output_that_ends_a_kpi(changes: dict[str, Any], outcome: str, breached: bool) -> None:
    ended = output(**changes, revision=1)
    message = duration_message(ended)
    assert message is not None
    assert KPI_DURATION.decode(KPI_DURATION.encode(message)) == message
    assert (message["outcome"], message["breached"]) == (outcome, breached)
    assert message["duration_id"] == "case-42/resolution/1"
    assert (message["ended_at_ms"], message["business_ms"], message["wall_ms"], message["paused_ms"]) == (
        ended.at_ms, ended.business_elapsed_ms, 10 * H, H,
    )  # fmt: skip
    assert (message["revision"], message["revoked"], message["attributes"]) == (
        1,
        False,
        {"tier": "VIP", "queue": "Zoë's"},
    )


@pytest.mark.parametrize("kind", sorted(set(OutputKind) - {OutputKind.KPI_SUCCEEDED, OutputKind.KPI_CANCELLED}))
def test_no_duration_for_outputs_that_do_not_end_a_kpi(kind: OutputKind) -> None:
    assert duration_message(output(kind)) is None


OFFICE = """
version: "v1"
lateness: {allowed: 0s, max: 2d}
unmatched: ignore
calendars:
  office: {preset: "8/5", timezone: Europe/Berlin}
policies:
  - name: standard
    applies_when: {entity_type: case}
    calendar: office
    kpis:
      - name: resolution
        target: 1bd
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: waiting}
        resume: {kind: status_changed, status: {not: waiting}}
"""
MONDAY_0600_BERLIN = 1_772_427_600_000  # 2026-03-02T05:00:00Z: the clock starts at 09:00, the deadline is 17:00


@pytest.mark.parametrize(
    ("events", "outcome", "breached"),
    [
        ([(9 * H, "resolved", {})], "met", False),
        ([(11 * H, "resolved", {})], "met", False),  # 17:00 Berlin: at the deadline is in time
        ([(11 * H + H // 2, "resolved", {})], "breached", True),  # 17:30: late, yet business time = target
        ([(11 * H + H // 2, "cancelled", {})], "cancelled", True),
        ([(11 * H + H // 2, "status_changed", {"status": "waiting"}), (28 * H, "cancelled", {})], "cancelled", True),
        ([(9 * H, "status_changed", {"status": "waiting"}), (28 * H, "cancelled", {})], "cancelled", False),
    ],
)
def test_the_outcome_of_real_core_outputs_including_a_kpi_met_late_after_closing_time(
    events: list[tuple[int, str, dict[str, str]]], outcome: str, breached: bool
) -> None:
    replayer = Replayer(SlaCore(parse_policies(yaml.safe_load(OFFICE), "test")))
    outputs = replayer.feed(RecordEvent("e0", "case-1", "case", "created", MONDAY_0600_BERLIN))
    for n, (offset, kind, attributes) in enumerate(events, 1):
        outputs += replayer.feed(RecordEvent(f"e{n}", "case-1", "case", kind, MONDAY_0600_BERLIN + offset, attributes))
    durations = [m for m in map(duration_message, outputs) if m is not None]
    assert [(m["outcome"], m["breached"]) for m in durations] == [(outcome, breached)]
    assert durations[0]["business_ms"] <= durations[0]["target_ms"] == 8 * H  # so business > target cannot tell
