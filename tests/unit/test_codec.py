"""The Avro codec: single-object encoding, fastavro in the hot path, Apache avro-python3 as the reference."""

import io
import json
import struct

import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_writer

from schemas.codec import DEAD_LETTER, INPUT_MESSAGE, MAGIC, SLA_ALERT, CodecError, crc64_avro

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


def reference_schema(codec: object) -> avro.schema.Schema:
    return avro.schema.parse(codec.canonical)  # type: ignore[attr-defined]


def test_crc64_avro_matches_the_specification_test_vector() -> None:
    # The Avro specification's fingerprint of the schema "null" is 0x63dd24e7cc258f8a.
    assert crc64_avro(b'"null"') == 0x63DD24E7CC258F8A


def test_round_trip_and_header() -> None:
    data = INPUT_MESSAGE.encode(EVENT)
    assert data[:2] == MAGIC and struct.unpack_from("<Q", data, 2)[0] == INPUT_MESSAGE.fingerprint
    assert INPUT_MESSAGE.decode(data) == EVENT


def test_body_is_byte_identical_to_the_apache_implementation_both_ways() -> None:
    schema = reference_schema(INPUT_MESSAGE)
    ours = INPUT_MESSAGE.encode(EVENT)
    buffer = io.BytesIO()
    avro.io.DatumWriter(schema).write({"body": EVENT["body"][1]}, avro.io.BinaryEncoder(buffer))
    assert ours[10:] == buffer.getvalue()
    decoded = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(ours[10:])))
    assert decoded == {"body": EVENT["body"][1]}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain text",
        MAGIC + b"\x00" * 8 + b"\x02",
        INPUT_MESSAGE.encode(EVENT)[:-4],
        INPUT_MESSAGE.encode(EVENT) + b"x",
    ],
)
def test_bad_bytes_raise_one_error_type(data: bytes) -> None:
    with pytest.raises(CodecError):
        INPUT_MESSAGE.decode(data)


def test_values_that_do_not_fit_the_schema_raise_codec_error() -> None:
    with pytest.raises(CodecError):
        SLA_ALERT.encode({"alert_id": 5})


def test_an_older_writer_is_read_with_defaults_for_added_fields() -> None:
    older = json.loads(json.dumps(DEAD_LETTER.schema))
    older["fields"] = [f for f in older["fields"] if f["name"] not in ("key", "value")]
    parsed = parse_schema(older)
    fingerprint = DEAD_LETTER.add_writer(older)
    buffer = io.BytesIO()
    buffer.write(MAGIC + struct.pack("<Q", fingerprint))
    record = {
        "reason": "late",
        "detail": "d",
        "source_topic": "t",
        "source_partition": 1,
        "source_offset": 2,
        "dead_lettered_at_ms": 3,
    }
    schemaless_writer(buffer, parsed, record)
    assert DEAD_LETTER.decode(buffer.getvalue()) == {**record, "key": None, "value": None}
