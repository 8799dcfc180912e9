"""Avro encoding of every slaflow message, from the ``.avsc`` files beside this module.

The ``.avsc`` files are the source of truth; they are read and parsed once, at
import. Messages use Avro's *single-object encoding* (Avro specification,
"Single object encoding"): the two marker bytes ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer's schema (its parsing
canonical form), then the Avro binary body. A reader therefore always knows
which schema wrote a message, without a schema registry, and can resolve it
against its own (newer or older) schema.

fastavro does the work in the hot path. Any failure to encode or decode raises
:class:`CodecError`, never a fastavro or ``struct`` exception; its ``reason``
says what the agent dead-letters the message as.

The input topic carries :class:`streams.events.RecordEvent`,
:class:`~streams.events.ActivityEvent`, :class:`~streams.events.CallEvent` and
:class:`~streams.events.Tick`: :func:`encode_input` and :func:`decode_input`
convert between them and bytes. The output topics' values are built by
:mod:`schemas.messages`. docs/events.md is the reference of every message.
"""

from __future__ import annotations

import dataclasses
import io
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema, to_parsing_canonical_form

from streams.errors import DeadLetterReason, SlaflowError
from streams.events import (
    SCHEMA_VIOLATION,
    ActivityEvent,
    CallEvent,
    EventError,
    InputEvent,
    RecordEvent,
    Tick,
    validate,
)

SCHEMA_DIR: Final = Path(__file__).resolve().parent
MAGIC: Final = b"\xc3\x01"
HEADER_LEN: Final = len(MAGIC) + 8

_CRC64_EMPTY: Final = 0xC15D213AA4D7A795


def _crc64_table() -> list[int]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_CRC64_EMPTY & -(fp & 1))
        table.append(fp)
    return table


_CRC64_TABLE: Final = _crc64_table()


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO fingerprint of ``data`` (Avro specification, "Schema Fingerprints")."""
    fp = _CRC64_EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _CRC64_TABLE[(fp ^ byte) & 0xFF]
    return fp


UNDECODABLE: Final = DeadLetterReason.UNDECODABLE
"""The reason of bytes that are not a message of a known version of the expected schema."""
UNENCODABLE: Final = "unencodable"
"""The reason of a value that does not fit the schema it is encoded with."""


class CodecError(SlaflowError):
    """Bytes that are not a message of the expected schema, or a value that does not fit it.

    Not retriable: the same bytes will fail the same way; dead-letter them. ``reason`` is the dead-letter
    reason: ``undecodable``, ``schema_violation`` (decodable, but the content breaks
    :func:`streams.events.validate`) or, when encoding, ``unencodable``; ``str()`` is the detail.
    """

    def __init__(self, detail: str, reason: str = UNDECODABLE) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class Codec:
    """Encoder and decoder for one named schema.

    ``known_writers`` maps fingerprints of other (older or newer) versions of
    this schema to their parsed form, so that their messages can be read and
    resolved to this schema.
    """

    def __init__(self, name: str, schema: dict[str, Any]) -> None:
        self.name = name
        self.schema = schema
        self.canonical = to_parsing_canonical_form(schema)
        self.fingerprint = crc64_avro(self.canonical.encode("utf-8"))
        self.header = MAGIC + struct.pack("<Q", self.fingerprint)
        self.known_writers: dict[int, dict[str, Any]] = {self.fingerprint: schema}

    def __repr__(self) -> str:
        return f"Codec({self.name!r}, fingerprint={self.fingerprint:#018x})"

    def add_writer(self, schema: dict[str, Any]) -> int:
        """Accept messages written with another version of this schema; return its fingerprint."""
        parsed = cast("dict[str, Any]", parse_schema(schema, expand=True))
        fingerprint = crc64_avro(to_parsing_canonical_form(parsed).encode("utf-8"))
        self.known_writers[fingerprint] = parsed
        return fingerprint

    def encode(self, value: Mapping[str, Any]) -> bytes:
        """Single-object-encode ``value`` (a dict shaped as the schema)."""
        buffer = io.BytesIO()
        buffer.write(self.header)
        try:
            schemaless_writer(buffer, self.schema, value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise CodecError(f"cannot encode as {self.name}: {exc}", UNENCODABLE) from exc
        return buffer.getvalue()

    def decode(self, data: bytes) -> dict[str, Any]:
        """Decode single-object-encoded bytes into a dict shaped as this schema."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise CodecError(
                f"not an Avro single-object message ({len(data)} bytes, starting {data[:4]!r}); expected {self.name}"
            )
        (fingerprint,) = struct.unpack_from("<Q", data, 2)
        writer = self.known_writers.get(fingerprint)
        if writer is None:
            raise CodecError(
                f"unknown writer schema fingerprint {fingerprint:#018x}; expected a version of {self.name}"
            )
        buffer = io.BytesIO(data)
        buffer.seek(HEADER_LEN)
        try:
            if writer is self.schema:
                result = schemaless_reader(buffer, writer, None, return_record_name=True)
            else:
                result = schemaless_reader(buffer, writer, self.schema, return_record_name=True)
        except Exception as exc:  # fastavro raises many types on corrupt input
            raise CodecError(f"corrupt {self.name} message: {type(exc).__name__}: {exc}") from exc
        if buffer.tell() != len(data):
            raise CodecError(f"{len(data) - buffer.tell()} trailing bytes after a {self.name} message")
        if not isinstance(result, dict):
            raise CodecError(f"{self.name} decoded to {type(result).__name__}, expected a record")
        return result


def _codec(name: str, named: dict[str, Any]) -> Codec:
    """The codec of ``<name>.avsc``, which may refer to the types in ``named``; its own named types are added."""
    with open(SCHEMA_DIR / f"{name}.avsc", encoding="utf-8") as handle:
        raw = json.load(handle)
    parse_schema(raw, named_schemas=named)
    expanded = cast("dict[str, Any]", parse_schema(raw, named_schemas=dict(named), expand=True))
    return Codec(name, expanded)


SCHEMA_FILES: Final = (
    "record_event",
    "activity_event",
    "call_event",
    "clock_tick",
    "input_message",
    "sla_alert",
    "kpi_transition",
    "kpi_duration",
    "dead_letter",
)
"""The ``.avsc`` files (without the suffix), in order: later files refer to named types of earlier ones."""
_NAMED: Final[dict[str, Any]] = {}
_CODECS: Final = {name: _codec(name, _NAMED) for name in SCHEMA_FILES}

INPUT_MESSAGE: Final = _CODECS["input_message"]
"""Values of the input topic: ``{"body": RecordEvent | ActivityEvent | CallEvent | ClockTick}``."""
SLA_ALERT: Final = _CODECS["sla_alert"]
"""Values of the alerts topic (:func:`schemas.messages.alert_message`)."""
KPI_TRANSITION: Final = _CODECS["kpi_transition"]
"""Values of the KPI transitions topic (:func:`schemas.messages.transition_message`)."""
KPI_DURATION: Final = _CODECS["kpi_duration"]
"""Values of the KPI durations topic (:func:`schemas.messages.duration_message`)."""
DEAD_LETTER: Final = _CODECS["dead_letter"]
"""Values of the dead-letter topic."""

# Messages of slaflow 0.1 (before activities and calls) still decode, resolved to the current schema.
INPUT_MESSAGE.add_writer(_codec("input_message_v1", dict(_NAMED)).schema)

_TICK: Final = "slaflow.ClockTick"
_EVENT_TYPES: Final[dict[str, type[InputEvent]]] = {
    "slaflow.RecordEvent": RecordEvent,
    "slaflow.ActivityEvent": ActivityEvent,
    "slaflow.CallEvent": CallEvent,
}
"""The event class of each branch of ``InputMessage.body``; its fields are the branch's fields, by name."""
_BRANCHES: Final = {
    event_type: (name, tuple(f.name for f in dataclasses.fields(event_type)))
    for name, event_type in _EVENT_TYPES.items()
}


def encode_input(message: InputEvent | Tick, source: str = "") -> bytes:
    """The input-topic message of an event or a tick; ``source`` names a tick's writer (the ticker's worker id).

    Raises :class:`CodecError` with reason ``schema_violation`` for a message :func:`streams.events.validate`
    refuses (every reader would dead-letter it), ``unencodable`` for one that does not fit the schema.
    """
    _validate(message, type(message).__name__)
    if isinstance(message, Tick):
        body: tuple[str, dict[str, Any]] = (_TICK, {"at_ms": message.at_ms, "source": source})
    else:
        name, fields = _BRANCHES[type(message)]
        body = (name, {field: getattr(message, field) for field in fields})
    return INPUT_MESSAGE.encode({"body": body})


def decode_input(data: bytes) -> InputEvent | Tick:
    """The event or tick of an input-topic message (of the current or an older known writer schema).

    Raises :class:`CodecError` with reason ``undecodable`` for bytes that are not such a message, and
    ``schema_violation`` for a message whose content :func:`streams.events.validate` refuses: the agent
    dead-letters both with that reason.
    """
    name, body = INPUT_MESSAGE.decode(data)["body"]
    message = Tick(body["at_ms"]) if name == _TICK else _EVENT_TYPES[name](**body)
    _validate(message, name)
    return message


def _validate(message: InputEvent | Tick, name: str) -> None:
    try:
        validate(message)
    except EventError as exc:
        raise CodecError(f"{name}: {exc.detail}", SCHEMA_VIOLATION) from exc


def encode_event(event: InputEvent) -> bytes:
    """The input-topic message of an event (:func:`encode_input`, for the producers that write only events)."""
    return encode_input(event)


def encode_tick(at_ms: int, source: str) -> bytes:
    """The input-topic message of a clock tick at ``at_ms`` (UTC epoch ms), written by ``source``."""
    return encode_input(Tick(at_ms), source)
