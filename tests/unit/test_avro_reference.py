"""Byte-compatibility with the Apache reference implementation of Avro (avro-python3).

Apache parses the ``.avsc`` files itself; for every schema and representative values (every union branch, nulls
and non-nulls, maps, arrays, enums, bytes, unicode, negative and large longs), the body fastavro writes through our
codec is byte-for-byte the body Apache writes, each decodes the other's bytes to the same value, and Apache's
parsing canonical form and CRC-64-AVRO fingerprint are the ones in our single-object header.
"""

from __future__ import annotations

import io
import json
from typing import Any

import avro.io
import avro.schema
import pytest
from avro.schemanormalization import Fingerprint, ToParsingCanonicalForm

from schemas.codec import (
    DEAD_LETTER,
    HEADER_LEN,
    INPUT_MESSAGE,
    KPI_DURATION,
    KPI_TRANSITION,
    SCHEMA_DIR,
    SCHEMA_FILES,
    SLA_ALERT,
    Codec,
)

UNICODE = "Zoë → 東京 🚀"
MIN_LONG, MAX_LONG = -(2**63), 2**63 - 1


def apache_schemas() -> dict[str, Any]:
    """Every ``.avsc`` file parsed by Apache avro, in order, sharing named types as our loader does."""
    names = avro.schema.Names()
    parsed = {}
    for name in SCHEMA_FILES:
        with open(SCHEMA_DIR / f"{name}.avsc", encoding="utf-8") as handle:
            parsed[name] = avro.schema.SchemaFromJSONData(json.load(handle), names)
    return parsed


APACHE = apache_schemas()
CODECS = {
    "input_message": INPUT_MESSAGE,
    "sla_alert": SLA_ALERT,
    "kpi_transition": KPI_TRANSITION,
    "kpi_duration": KPI_DURATION,
    "dead_letter": DEAD_LETTER,
}

ACTION = {"type": "notify", "targets": ["owner", UNICODE], "value": "", "template": "résumé"}
ALERT = {
    "alert_id": "case-42/first_response/0/ESCALATION/2",
    "kind": "ESCALATION",
    "record_id": "case-42",
    "entity_type": "case",
    "policy": "vip",
    "policy_version": "2026-11-22",
    "kpi": "first_response",
    "kpi_instance": 0,
    "started_at_ms": -62_135_596_800_000,
    "threshold_at_ms": MAX_LONG,
    "deadline_ms": MIN_LONG,
    "fired_at_ms": 0,
    "target_ms": 3_600_000,
    "business_elapsed_ms": -1,
    "wall_elapsed_ms": 64,
    "paused_ms": -64,
    "attributes": {"tier": "VIP", UNICODE: UNICODE, "": ""},
    "level": 2,
    "actions": [ACTION, {"type": "raise_priority", "targets": [], "value": "high", "template": ""}],
    "revision": 2_147_483_647,
    "revoked": True,
}
TRANSITION = {
    "transition_id": "case-42/resolution/1/KPI_PAUSED/3",
    "kind": "KPI_PAUSED",
    "record_id": "case-42",
    "entity_type": "case",
    "policy": "vip",
    "policy_version": "v1",
    "kpi": "resolution",
    "kpi_instance": 1,
    "sequence": 3,
    "at_ms": 1_772_442_900_000,
    "started_at_ms": 1_772_400_000_000,
    "deadline_ms": 1_772_500_000_000,
    "target_ms": 86_400_000,
    "business_elapsed_ms": 42_900_000,
    "wall_elapsed_ms": 42_900_000,
    "paused_ms": 0,
    "reason": UNICODE,
    "actions": [ACTION],
    "attributes": {},
    "revision": 0,
    "revoked": False,
    "emitted_at_ms": 1_772_442_900_001,
}
DURATION = {
    "duration_id": "case-42/resolution/1",
    "record_id": "case-42",
    "entity_type": "case",
    "policy": "vip",
    "policy_version": "v1",
    "kpi": "resolution",
    "kpi_instance": 1,
    "sequence": 0,
    "outcome": "breached",
    "started_at_ms": 1_772_400_000_000,
    "ended_at_ms": 1_772_500_000_001,
    "deadline_ms": 1_772_500_000_000,
    "target_ms": 86_400_000,
    "business_ms": 86_400_001,
    "wall_ms": 100_000_001,
    "paused_ms": 12,
    "breached": True,
    "attributes": {"tier": "VIP", "queue": UNICODE},
    "revision": 1,
    "revoked": False,
}
DEAD = {
    "reason": "schema_violation",
    "detail": UNICODE,
    "source_topic": "slaflow.case-events",
    "source_partition": 7,
    "source_offset": 2**40,
    "key": b"case-42",
    "value": bytes(range(256)),
    "dead_lettered_at_ms": 1_772_442_900_000,
}


def body(name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"body": (f"slaflow.{name}", value)}


CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "record event",
        "input_message",
        body(
            "RecordEvent",
            {
                "event_id": "e1",
                "record_id": UNICODE,
                "entity_type": "case",
                "kind": "created",
                "occurred_at_ms": -1,
                "attributes": {"tier": "VIP", "owner": UNICODE},
            },
        ),
    ),
    (
        "record event, no attributes",
        "input_message",
        body(
            "RecordEvent",
            {"event_id": "e", "record_id": "r", "entity_type": "", "kind": "", "occurred_at_ms": 0, "attributes": {}},
        ),
    ),
    (
        "activity, duration null",
        "input_message",
        body(
            "ActivityEvent",
            {
                "event_id": "e2",
                "activity_id": "mail-7",
                "activity_type": "email",
                "kind": "email_sent",
                "direction": "outbound",
                "regarding_id": "case-42",
                "regarding_type": "case",
                "occurred_at_ms": 1_772_442_900_000,
                "duration_ms": None,
                "attributes": {"subject": UNICODE},
            },
        ),
    ),
    (
        "activity, duration set",
        "input_message",
        body(
            "ActivityEvent",
            {
                "event_id": "e3",
                "activity_id": "log-1",
                "activity_type": "time_log",
                "kind": "time_logged",
                "direction": "",
                "regarding_id": "contract-1",
                "regarding_type": "contract",
                "occurred_at_ms": MIN_LONG,
                "duration_ms": MAX_LONG,
                "attributes": {},
            },
        ),
    ),
    (
        "call, case set",
        "input_message",
        body(
            "CallEvent",
            {
                "event_id": "e4",
                "call_id": "call-9",
                "kind": "answered",
                "direction": "outbound",
                "queue": "hotline",
                "agent": UNICODE,
                "case_id": "case-42",
                "occurred_at_ms": 1_772_442_900_000,
                "attributes": {"wait_seconds": "12"},
            },
        ),
    ),
    (
        "call, case null",
        "input_message",
        body(
            "CallEvent",
            {
                "event_id": "e5",
                "call_id": "call-9",
                "kind": "abandoned",
                "direction": "inbound",
                "queue": "",
                "agent": "",
                "case_id": None,
                "occurred_at_ms": -62_135_596_800_000,
                "attributes": {},
            },
        ),
    ),
    ("tick", "input_message", body("ClockTick", {"at_ms": 1_772_442_900_000, "source": UNICODE})),
    ("alert, escalation", "sla_alert", ALERT),
    ("alert, warning", "sla_alert", {**ALERT, "kind": "WARNING", "level": 0, "actions": [], "attributes": {}}),
    ("alert, breach", "sla_alert", {**ALERT, "kind": "BREACH", "level": 0}),
    ("transition, deadline set", "kpi_transition", TRANSITION),
    ("transition, deadline null", "kpi_transition", {**TRANSITION, "deadline_ms": None, "actions": []}),
    ("duration, deadline set", "kpi_duration", DURATION),
    ("duration, deadline null", "kpi_duration", {**DURATION, "deadline_ms": None, "outcome": "cancelled"}),
    ("dead letter, bytes", "dead_letter", DEAD),
    ("dead letter, nulls", "dead_letter", {**DEAD, "key": None, "value": None}),
    ("dead letter, empty bytes", "dead_letter", {**DEAD, "key": b"", "value": b""}),
]


def plain(value: dict[str, Any]) -> dict[str, Any]:
    """The value as Apache avro writes and reads it: a union of records is the bare record, not (name, record)."""
    return {k: v[1] if isinstance(v, tuple) else v for k, v in value.items()}


def apache_write(schema: Any, value: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write(value, avro.io.BinaryEncoder(buffer))
    return buffer.getvalue()


def apache_read(schema: Any, data: bytes) -> Any:
    return avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data)))


@pytest.mark.parametrize(("label", "schema", "value"), CASES, ids=[case[0] for case in CASES])
def test_fastavro_and_apache_write_the_same_bytes_and_read_each_other(
    label: str, schema: str, value: dict[str, Any]
) -> None:
    codec, apache = CODECS[schema], APACHE[schema]
    ours = codec.encode(value)
    theirs = apache_write(apache, plain(value))
    assert ours[HEADER_LEN:] == theirs, label
    assert apache_read(apache, ours[HEADER_LEN:]) == plain(value)
    assert codec.decode(codec.header + theirs) == value


def test_the_cases_cover_every_union_branch_of_the_input_message() -> None:
    branches = {case[2]["body"][0] for case in CASES if case[1] == "input_message"}
    assert branches == {branch["name"] for branch in INPUT_MESSAGE.schema["fields"][0]["type"]}
    assert {case[1] for case in CASES} == set(CODECS)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_canonical_form_and_fingerprint_are_apaches(name: str) -> None:
    codec: Codec = CODECS[name]
    canonical = ToParsingCanonicalForm(APACHE[name])
    assert canonical == codec.canonical
    assert Fingerprint(canonical, "CRC-64-AVRO") == codec.header[2:]  # Apache gives it little-endian, as the header


def test_apache_fingerprint_matches_the_specification_test_vector() -> None:
    # The Avro specification's CRC-64-AVRO fingerprint of the schema "null" is 0x63dd24e7cc258f8a.
    assert Fingerprint('"null"', "CRC-64-AVRO") == (0x63DD24E7CC258F8A).to_bytes(8, "little")
