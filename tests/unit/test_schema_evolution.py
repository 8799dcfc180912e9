"""Schema evolution through the codec: writers of older and newer versions of every schema are read by this one.

An OLDER writer lacks a field this version added with a default: the reader fills in the default. A NEWER writer
has a field this version does not know (added with a default, as the rules of docs/events.md require): the reader
drops it. Both go through :class:`schemas.codec.Codec` (``add_writer`` and the fingerprint in the single-object
header), and, for the input topic, through :func:`schemas.codec.decode_input` to the event classes.
"""

from __future__ import annotations

import copy
import io
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer

import schemas.codec
from schemas.codec import (
    DEAD_LETTER,
    INPUT_MESSAGE,
    KPI_DURATION,
    KPI_TRANSITION,
    MAGIC,
    SLA_ALERT,
    Codec,
    CodecError,
    decode_input,
)
from streams.events import ActivityEvent, CallEvent, RecordEvent, Tick

T = 1_772_442_900_000
ACTION = {"type": "notify", "targets": ["owner"], "value": "", "template": "due"}
SAMPLES: dict[str, dict[str, Any]] = {
    "slaflow.RecordEvent": {
        "event_id": "e1", "record_id": "case-42", "entity_type": "case", "kind": "created", "occurred_at_ms": T,
        "attributes": {"tier": "VIP"},
    },
    "slaflow.ActivityEvent": {
        "event_id": "e2", "activity_id": "mail-7", "activity_type": "email", "kind": "email_sent",
        "direction": "outbound", "regarding_id": "case-42", "regarding_type": "case", "occurred_at_ms": T,
        "duration_ms": 90_000, "attributes": {"x": "y"},
    },
    "slaflow.CallEvent": {
        "event_id": "e3", "call_id": "call-9", "kind": "answered", "direction": "outbound", "queue": "hotline",
        "agent": "ana", "case_id": "case-42", "occurred_at_ms": T, "attributes": {"wait_seconds": "12"},
    },
    "slaflow.ClockTick": {"at_ms": T, "source": "worker-1"},
    "sla_alert": {
        "alert_id": "case-42/first_response/0/BREACH", "kind": "BREACH", "record_id": "case-42", "entity_type": "case",
        "policy": "vip", "policy_version": "v1", "kpi": "first_response", "kpi_instance": 3, "started_at_ms": T,
        "threshold_at_ms": T + 1, "deadline_ms": T + 1, "fired_at_ms": T + 2, "target_ms": 1, "business_elapsed_ms": 1,
        "wall_elapsed_ms": 1, "paused_ms": 5, "attributes": {"tier": "VIP"}, "level": 1, "actions": [ACTION],
        "revision": 2, "revoked": True,
    },
    "kpi_transition": {
        "transition_id": "case-42/resolution/0/KPI_PAUSED/1", "kind": "KPI_PAUSED", "record_id": "case-42",
        "entity_type": "case", "policy": "vip", "policy_version": "v1", "kpi": "resolution", "kpi_instance": 2,
        "sequence": 1, "at_ms": T, "started_at_ms": T - 5, "deadline_ms": T + 9, "target_ms": 14,
        "business_elapsed_ms": 5, "wall_elapsed_ms": 5, "paused_ms": 3, "reason": "waiting", "actions": [ACTION],
        "attributes": {"tier": "VIP"}, "revision": 1, "revoked": True, "emitted_at_ms": T,
    },
    "kpi_duration": {
        "duration_id": "case-42/resolution/0", "record_id": "case-42", "entity_type": "case", "policy": "vip",
        "policy_version": "v1", "kpi": "resolution", "kpi_instance": 2, "sequence": 1, "outcome": "breached",
        "started_at_ms": T - 20, "ended_at_ms": T, "deadline_ms": T - 1, "target_ms": 19, "business_ms": 20,
        "wall_ms": 20, "paused_ms": 4, "breached": True, "attributes": {"queue": "q"}, "revision": 1, "revoked": True,
    },
    "dead_letter": {
        "reason": "undecodable", "detail": "d", "source_topic": "t", "source_partition": 1, "source_offset": 2,
        "key": b"k", "value": b"v", "dead_lettered_at_ms": T,
    },
}  # fmt: skip
OUTPUTS = {
    "sla_alert": SLA_ALERT,
    "kpi_transition": KPI_TRANSITION,
    "kpi_duration": KPI_DURATION,
    "dead_letter": DEAD_LETTER,
}
BRANCHES = ("slaflow.RecordEvent", "slaflow.ActivityEvent", "slaflow.CallEvent", "slaflow.ClockTick")
EVENT_CLASSES = {
    "slaflow.RecordEvent": RecordEvent,
    "slaflow.ActivityEvent": ActivityEvent,
    "slaflow.CallEvent": CallEvent,
}
ADDED_LATER = {"name": "added_later", "type": ["null", "string"], "default": None, "doc": "A field of a newer version."}


def record_of(schema: dict[str, Any], branch: str | None) -> dict[str, Any]:
    """The record to change: the schema itself, or the named branch of the input message's body."""
    if branch is None:
        return schema
    return next(b for b in schema["fields"][0]["type"] if b["name"] == branch)


def fields_with_defaults() -> Iterator[tuple[str, str | None, str]]:
    for branch in BRANCHES:
        for field in record_of(INPUT_MESSAGE.schema, branch)["fields"]:
            if "default" in field:
                yield "input_message", branch, field["name"]
    for name, codec in OUTPUTS.items():
        for field in codec.schema["fields"]:
            if "default" in field:
                yield name, None, field["name"]


EVOLVED = list(fields_with_defaults())


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> dict[str, Codec]:
    """Copies of the codecs that know only their own writer (decode_input uses the copy of INPUT_MESSAGE)."""
    codecs = {
        name: Codec(codec.name, codec.schema) for name, codec in {**OUTPUTS, "input_message": INPUT_MESSAGE}.items()
    }
    monkeypatch.setattr(schemas.codec, "INPUT_MESSAGE", codecs["input_message"])
    return codecs


def write(schema: dict[str, Any], fingerprint: int, value: dict[str, Any]) -> bytes:
    """A single-object message as a writer with ``schema`` (registered under ``fingerprint``) writes it."""
    buffer = io.BytesIO()
    buffer.write(MAGIC + struct.pack("<Q", fingerprint))
    schemaless_writer(buffer, parse_schema(schema), value)
    return buffer.getvalue()


def sample(schema: str, branch: str | None) -> dict[str, Any]:
    return {"body": (branch, copy.deepcopy(SAMPLES[branch]))} if branch else copy.deepcopy(SAMPLES[schema])


def decoded(codecs: dict[str, Codec], schema: str, data: bytes) -> Any:
    """Through decode_input for the input topic (to the event classes), through the codec otherwise."""
    return decode_input(data) if schema == "input_message" else codecs[schema].decode(data)


def expected(schema: str, value: dict[str, Any]) -> Any:
    if schema != "input_message":
        return value
    branch, body = value["body"]
    return Tick(body["at_ms"]) if branch == "slaflow.ClockTick" else EVENT_CLASSES[branch](**body)


@pytest.mark.parametrize(("schema", "branch", "field"), EVOLVED, ids=[f"{s}-{b or ''}-{f}" for s, b, f in EVOLVED])
def test_an_older_writer_without_a_field_is_read_with_its_default(
    fresh: dict[str, Codec], schema: str, branch: str | None, field: str
) -> None:
    codec = fresh[schema]
    older = copy.deepcopy(codec.schema)
    removed = next(f for f in record_of(older, branch)["fields"] if f["name"] == field)
    record_of(older, branch)["fields"].remove(removed)
    value = sample(schema, branch)
    without = copy.deepcopy(value)
    del (without["body"][1] if branch else without)[field]
    data = write(older, codec.add_writer(older), without)
    (value["body"][1] if branch else value)[field] = removed["default"]
    assert decoded(fresh, schema, data) == expected(schema, value)


@pytest.mark.parametrize(
    ("schema", "branch"), [("input_message", b) for b in BRANCHES] + [(name, None) for name in OUTPUTS]
)
def test_a_newer_writer_with_an_added_field_is_read_without_it(
    fresh: dict[str, Codec], schema: str, branch: str | None
) -> None:
    codec = fresh[schema]
    newer = copy.deepcopy(codec.schema)
    record_of(newer, branch)["fields"].append(ADDED_LATER)
    value = sample(schema, branch)
    with_field = copy.deepcopy(value)
    (with_field["body"][1] if branch else with_field)["added_later"] = "from the future"
    data = write(newer, codec.add_writer(newer), with_field)
    assert decoded(fresh, schema, data) == expected(schema, value)


def test_a_newer_writer_with_an_added_body_type_is_read_for_the_types_this_version_knows(
    fresh: dict[str, Codec],
) -> None:
    newer = copy.deepcopy(INPUT_MESSAGE.schema)
    future = {
        "type": "record",
        "name": "slaflow.FutureEvent",
        "fields": [{"name": "x", "type": "long"}],
    }
    newer["fields"][0]["type"].insert(0, future)
    fingerprint = fresh["input_message"].add_writer(newer)
    known = sample("input_message", "slaflow.CallEvent")
    assert decode_input(write(newer, fingerprint, known)) == expected("input_message", known)
    with pytest.raises(CodecError) as caught:
        decode_input(write(newer, fingerprint, {"body": ("slaflow.FutureEvent", {"x": 1})}))
    assert caught.value.reason == "undecodable"


@pytest.mark.parametrize("codec", [INPUT_MESSAGE, *OUTPUTS.values()], ids=lambda c: c.name)
def test_an_unknown_fingerprint_is_a_codec_error(codec: Codec) -> None:
    data = codec.encode(sample(codec.name, "slaflow.ClockTick" if codec is INPUT_MESSAGE else None))
    unknown = data[:2] + struct.pack("<Q", codec.fingerprint ^ 1) + data[10:]
    with pytest.raises(CodecError, match="unknown writer schema fingerprint") as caught:
        codec.decode(unknown)
    assert caught.value.reason == "undecodable"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            "c30112c65382d67ecfcb000465310e636173652d343208636173650e63726561746564c0d8a2dd95670208746965720656495000",
            RecordEvent("e1", "case-42", "case", "created", T, {"tier": "VIP"}),
        ),
        ("c30112c65382d67ecfcb02c0d8a2dd9567107469636b65722d31", Tick(T)),
    ],
)
def test_messages_written_by_slaflow_0_1_still_decode(data: str, message: RecordEvent | Tick) -> None:
    # Bytes as slaflow 0.1 wrote them (InputMessage with body [RecordEvent, ClockTick], fingerprint
    # 0xcbcf7ed68253c612): a tick is branch 1 there, branch 3 now; resolution goes by name.
    assert decode_input(bytes.fromhex(data)) == message
