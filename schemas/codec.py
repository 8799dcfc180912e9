"""Avro encoding of every slaflow message, from the ``.avsc`` files beside this module.

The ``.avsc`` files are the source of truth; they are read and parsed once, at
import. Messages use Avro's *single-object encoding* (Avro specification,
"Single object encoding"): the two marker bytes ``C3 01``, the 8-byte
little-endian CRC-64-AVRO fingerprint of the writer's schema (its parsing
canonical form), then the Avro binary body. A reader therefore always knows
which schema wrote a message, without a schema registry, and can resolve it
against its own (newer or older) schema.

fastavro does the work in the hot path. Any failure to encode or decode raises
:class:`CodecError`, never a fastavro or ``struct`` exception.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import parse_schema, to_parsing_canonical_form

from streams.errors import SlaflowError
from streams.events import RecordEvent

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


class CodecError(SlaflowError):
    """Bytes that are not a message of the expected schema, or a value that does not fit it.

    Not retriable: the same bytes will fail the same way; dead-letter them.
    """


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
            raise CodecError(f"cannot encode as {self.name}: {exc}") from exc
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


def _load(*names: str) -> dict[str, Codec]:
    """Parse the named ``.avsc`` files in order (later ones may refer to earlier ones)."""
    named: dict[str, Any] = {}
    codecs = {}
    for name in names:
        with open(SCHEMA_DIR / f"{name}.avsc", encoding="utf-8") as handle:
            raw = json.load(handle)
        parse_schema(raw, named_schemas=named)
        expanded = cast("dict[str, Any]", parse_schema(raw, named_schemas=dict(named), expand=True))
        codecs[name] = Codec(name, expanded)
    return codecs


_CODECS: Final = _load("record_event", "clock_tick", "input_message", "sla_alert", "dead_letter")

INPUT_MESSAGE: Final = _CODECS["input_message"]
"""Values of the input topic: ``{"body": RecordEvent | ClockTick}``."""
SLA_ALERT: Final = _CODECS["sla_alert"]
"""Values of the alerts topic."""
DEAD_LETTER: Final = _CODECS["dead_letter"]
"""Values of the dead-letter topic."""


def encode_event(event: RecordEvent) -> bytes:
    """The input-topic message of a record event."""
    body = {
        "event_id": event.event_id,
        "record_id": event.record_id,
        "entity_type": event.entity_type,
        "kind": event.kind,
        "occurred_at_ms": event.occurred_at_ms,
        "attributes": dict(event.attributes),
    }
    return INPUT_MESSAGE.encode({"body": ("slaflow.RecordEvent", body)})


def encode_tick(at_ms: int, source: str) -> bytes:
    """The input-topic message of a clock tick at ``at_ms`` (UTC epoch ms), written by ``source``."""
    return INPUT_MESSAGE.encode({"body": ("slaflow.ClockTick", {"at_ms": at_ms, "source": source})})
