"""From Kafka messages to ClickHouse rows: the columns of every table and the mapping of every message.

Pure: bytes in, rows (or SQL and bytes for ClickHouse) out; no I/O. Rows are lists in :data:`TABLE_COLUMNS` order;
instants are UTC epoch milliseconds (``int``), which clickhouse-connect writes as they are into
``DateTime64(3, 'UTC')`` columns, so no ``datetime`` is built per row. Every row ends with the Kafka partition and
offset it came from.

What becomes what (the DDL in ``sinks/sql/migrations`` says what each column means):

- an alert -> ``sla_alerts``; a KPI transition -> ``kpi_transitions``; a KPI duration -> ``kpi_durations``;
- a record event -> ``record_events``; also, when it is an activity or a call in the CRM's own words:

  - an e-mail of the record (kind ``email_received``: inbound, ``email_sent``: outbound) -> ``activities``;
  - an event of a ``phone_call`` record whose kind starts with ``call_`` or ``callback_`` -> ``call_events``: the
    record is the call (call_id), the kind is the kind without ``call_``, the attributes ``direction``,
    ``queue``, ``owner`` (the agent) and ``case_id`` say the rest;
  - an event of any other record (a case, a lead) whose kind starts with ``call_`` (``call_answered``: an
    agent's call about the record) -> ``call_events`` and a ``phone_call`` row of ``activities``. The call's
    id is the attribute ``call_id``, else the event's id (each such event is a call of its own); the
    ``call_events`` kind is the kind without ``call_``, its case is the record when it is a case (else
    empty), its agent the attribute ``owner``; the activity (same id, the event's kind) regards the record,
    and its duration is the call's handle time;

  in every call, the attributes ``wait_seconds`` and ``handle_seconds`` give the wait and handle times (none
  when absent or not a number: :func:`_seconds_ms`);
- an activity event -> ``activities``; a call event -> ``call_events``; a clock tick -> nothing.

Two implementations of that mapping, which agree row for row (tests/integration/test_bench_sink.py):

- :data:`ROWS_OF` (the reference): fastavro decodes each message in Python, a function per topic builds its
  rows. Decoding alone costs about 10 µs a message: a sink can hardly pass 50,000 rows a second this way.
- :class:`Shape` (the engine path, for an engine that reads the files this process writes: chDB). Messages are
  not decoded in Python: :meth:`Framer.frame` checks each one's header (magic and writer fingerprint), reads a
  record event's type and kind to know its rows, and frames it, bytes untouched, as one block of an Avro
  object container file whose schema is the writer's record between the Kafka partition and offset and an end
  marker. ClickHouse reads those files with its own Avro reader and makes the rows with the SQL of
  :attr:`Shape.targets` (``INSERT ... SELECT ... FROM file(...)``). The first insert of each shape checks every
  message (:meth:`Shape.check`: the rules of :func:`streams.events.validate`, strings that are UTF-8 as
  fastavro requires, no repeated attribute name, an intact frame), and fails as a whole if one does not pass;
  the sink then asks which (:meth:`Shape.refused_sql`) and hands those to :data:`ROWS_OF`, which makes their
  rows or raises the :class:`~schemas.codec.CodecError` the SLA agent dead-letters them with. So do messages
  of an older writer, clock ticks, calls whose seconds the SQL could not convert exactly as :func:`_seconds_ms`
  does, and anything the framer does not recognise. Where the engine path is unsure, the reference decides.
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from schemas.codec import (
    HEADER_LEN,
    INPUT_MESSAGE,
    KPI_DURATION,
    KPI_TRANSITION,
    SLA_ALERT,
    Codec,
    CodecError,
    decode_input,
)
from streams.events import (
    ACTIVITY_DIRECTIONS,
    ACTIVITY_TYPES,
    CALL_DIRECTIONS,
    CALL_ENTITY_TYPE,
    CALL_KINDS,
    MAX_MS,
    MIN_MS,
    ActivityEvent,
    CallEvent,
    RecordEvent,
    Tick,
)

SOURCE: Final = ("source_partition", "source_offset")

TABLE_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "sla_alerts": (
        "alert_id", "instance_id", "kind", "record_id", "entity_type", "policy", "policy_version", "kpi",
        "kpi_instance", "started_at", "threshold_at", "deadline", "fired_at", "target_ms", "business_elapsed_ms",
        "wall_elapsed_ms", "paused_ms", "tier", "priority", "queue", "owner", "attributes", "level", "revision",
        "revoked", *SOURCE,
    ),
    "kpi_transitions": (
        "transition_id", "instance_id", "kind", "record_id", "entity_type", "policy", "policy_version", "kpi",
        "kpi_instance", "sequence", "at", "started_at", "deadline", "target_ms", "business_elapsed_ms",
        "wall_elapsed_ms", "paused_ms", "reason", "tier", "priority", "queue", "owner", "attributes", "revision",
        "revoked", "emitted_at", *SOURCE,
    ),
    "kpi_durations": (
        "instance_id", "record_id", "entity_type", "policy", "policy_version", "kpi", "kpi_instance", "outcome",
        "breached", "started_at", "ended_at", "deadline", "target_ms", "business_ms", "wall_ms", "paused_ms",
        "tier", "priority", "queue", "owner", "category", "attributes", "sequence", "revision", "revoked",
        *SOURCE,
    ),
    "record_events": (
        "event_id", "record_id", "entity_type", "kind", "occurred_at", "status", "queue", "owner", "tier",
        "priority", "category", "attributes", *SOURCE,
    ),
    "activities": (
        "event_id", "activity_id", "activity_type", "kind", "direction", "regarding_id", "regarding_type",
        "occurred_at", "duration_ms", "wait_ms", "owner", "queue", "attributes", *SOURCE,
    ),
    "call_events": (
        "event_id", "call_id", "kind", "direction", "queue", "agent", "case_id", "occurred_at", "wait_ms",
        "handle_ms", "tier", "attributes", *SOURCE,
    ),
}  # fmt: skip
"""Column names of every table the sink writes, in row order."""

Rows = list[tuple[str, list[Any]]]
"""``(table, row)`` pairs made of one message."""

EMAIL_KINDS: Final = {"email_received": "inbound", "email_sent": "outbound"}
"""Record-event kinds that are e-mails of the record, with their direction."""


def _seconds_ms(attributes: Mapping[str, str], name: str) -> int | None:
    """An attribute in (possibly fractional) seconds as milliseconds; None when absent or not a finite number."""
    text = attributes.get(name)
    if not text:
        return None
    try:
        return round(float(text) * 1000)
    except (ValueError, OverflowError):  # not a number, NaN, or an infinity
        return None


def alert_rows(value: bytes, partition: int, offset: int) -> Rows:
    """The ``sla_alerts`` row of an alerts-topic message."""
    a = SLA_ALERT.decode(value)
    attributes = a["attributes"]
    get = attributes.get
    instance = f"{a['record_id']}/{a['kpi']}/{a['kpi_instance']}"
    row = [
        a["alert_id"], instance, a["kind"], a["record_id"], a["entity_type"], a["policy"], a["policy_version"],
        a["kpi"], a["kpi_instance"], a["started_at_ms"], a["threshold_at_ms"], a["deadline_ms"], a["fired_at_ms"],
        a["target_ms"], a["business_elapsed_ms"], a["wall_elapsed_ms"], a["paused_ms"], get("tier", ""),
        get("priority", ""), get("queue", ""), get("owner", ""), attributes, a["level"], a["revision"],
        a["revoked"], partition, offset,
    ]  # fmt: skip
    return [("sla_alerts", row)]


def transition_rows(value: bytes, partition: int, offset: int) -> Rows:
    """The ``kpi_transitions`` row of a kpi-transitions message."""
    t = KPI_TRANSITION.decode(value)
    attributes = t["attributes"]
    get = attributes.get
    row = [
        t["transition_id"], f"{t['record_id']}/{t['kpi']}/{t['kpi_instance']}", t["kind"], t["record_id"],
        t["entity_type"], t["policy"], t["policy_version"], t["kpi"], t["kpi_instance"], t["sequence"],
        t["at_ms"], t["started_at_ms"], t["deadline_ms"], t["target_ms"], t["business_elapsed_ms"],
        t["wall_elapsed_ms"], t["paused_ms"], t["reason"], get("tier", ""), get("priority", ""),
        get("queue", ""), get("owner", ""), attributes, t["revision"], t["revoked"], t["emitted_at_ms"],
        partition, offset,
    ]  # fmt: skip
    return [("kpi_transitions", row)]


def duration_rows(value: bytes, partition: int, offset: int) -> Rows:
    """The ``kpi_durations`` row of a kpi-durations message."""
    d = KPI_DURATION.decode(value)
    attributes = d["attributes"]
    get = attributes.get
    row = [
        d["duration_id"], d["record_id"], d["entity_type"], d["policy"], d["policy_version"], d["kpi"],
        d["kpi_instance"], d["outcome"], d["breached"], d["started_at_ms"], d["ended_at_ms"], d["deadline_ms"],
        d["target_ms"], d["business_ms"], d["wall_ms"], d["paused_ms"], get("tier", ""), get("priority", ""),
        get("queue", ""), get("owner", ""), get("category", ""), attributes, d["sequence"], d["revision"],
        d["revoked"], partition, offset,
    ]  # fmt: skip
    return [("kpi_durations", row)]


def input_rows(value: bytes, partition: int, offset: int) -> Rows:
    """The rows of an input-topic message (case-events or calls); none for a clock tick.

    Raises :class:`~schemas.codec.CodecError` for a message the SLA agent dead-letters as undecodable or as
    a schema violation: the sink does not record what the SLA state never saw.
    """
    message = decode_input(value)
    if isinstance(message, Tick):
        return []
    if isinstance(message, RecordEvent):
        return _record_rows(message, partition, offset)
    if isinstance(message, ActivityEvent):
        a = message
        get = a.attributes.get
        return [
            ("activities", [
                a.event_id, a.activity_id, a.activity_type, a.kind, a.direction, a.regarding_id, a.regarding_type,
                a.occurred_at_ms, a.duration_ms, _seconds_ms(a.attributes, "wait_seconds"),
                get("owner") or get("agent", ""), get("queue", ""), a.attributes, partition, offset,
            ])
        ]  # fmt: skip
    return [("call_events", _call_row(message, partition, offset))]


def _call_row(c: CallEvent, partition: int, offset: int) -> list[Any]:
    return [
        c.event_id, c.call_id, c.kind, c.direction, c.queue, c.agent, c.case_id or "", c.occurred_at_ms,
        _seconds_ms(c.attributes, "wait_seconds"), _seconds_ms(c.attributes, "handle_seconds"),
        c.attributes.get("tier", ""), c.attributes, partition, offset,
    ]  # fmt: skip


def _record_rows(e: RecordEvent, partition: int, offset: int) -> Rows:
    attributes = e.attributes
    get = attributes.get
    rows: Rows = [
        ("record_events", [
            e.event_id, e.record_id, e.entity_type, e.kind, e.occurred_at_ms, get("status", ""), get("queue", ""),
            get("owner", ""), get("tier", ""), get("priority", ""), get("category", ""), attributes, partition,
            offset,
        ])
    ]  # fmt: skip
    direction = EMAIL_KINDS.get(e.kind)
    if direction is not None:
        rows.append(
            ("activities", [
                e.event_id, e.event_id, "email", e.kind, direction, e.record_id, e.entity_type, e.occurred_at_ms,
                None, None, get("owner", ""), get("queue", ""), attributes, partition, offset,
            ])
        )  # fmt: skip
    elif e.entity_type == "phone_call":
        if e.kind.startswith(("call_", "callback_")):
            call = CallEvent(
                e.event_id, e.record_id, e.kind.removeprefix("call_"), get("direction", ""), get("queue", ""),
                get("owner", ""), get("case_id"), e.occurred_at_ms, attributes,
            )  # fmt: skip
            rows.append(("call_events", _call_row(call, partition, offset)))
    elif e.kind.startswith("call_"):  # a call about the record (a case's, a lead's), recorded as its event
        call_id = get("call_id") or e.event_id
        call = CallEvent(
            e.event_id, call_id, e.kind.removeprefix("call_"), get("direction", ""), get("queue", ""),
            get("owner", ""), e.record_id if e.entity_type == CALL_ENTITY_TYPE else None, e.occurred_at_ms, attributes,
        )  # fmt: skip
        rows.append(("call_events", _call_row(call, partition, offset)))
        rows.append(
            ("activities", [
                e.event_id, call_id, "phone_call", e.kind, call.direction, e.record_id, e.entity_type,
                e.occurred_at_ms, _seconds_ms(attributes, "handle_seconds"), _seconds_ms(attributes, "wait_seconds"),
                call.agent, call.queue, attributes, partition, offset,
            ])
        )  # fmt: skip
    return rows


ROWS_OF: Final[dict[str, Callable[[bytes, int, int], Rows]]] = {
    "alerts": alert_rows,
    "kpi_transitions": transition_rows,
    "kpi_durations": duration_rows,
    "case_events": input_rows,
    "calls": input_rows,
}
"""The row maker of each topic the sink reads, by the topic's key in :data:`TOPIC_ATTRIBUTES`."""

TOPIC_ATTRIBUTES: Final = {
    "alerts": "alerts",
    "kpi_transitions": "transitions",
    "kpi_durations": "durations",
    "case_events": "case_events",
    "calls": "calls",
}
"""The topics the sink reads: their key here (in :data:`ROWS_OF` and the sink's metrics) and the attribute of
``agents.topics.TopicNames`` that names them."""


# ---------------------------------------------------------------------------------------------------------------
# What became of the messages


@dataclass(frozen=True)
class Refused:
    """A message the sink does not write, because the SLA agent dead-letters it: ``error.reason`` says why."""

    topic: str
    partition: int
    offset: int
    error: CodecError


@dataclass
class Outcomes:
    """What became of messages: how many per ``(topic, outcome, reason)``, and every refused message. The
    outcome is ``written`` (it made rows), ``skipped`` (it makes none: a clock tick) or ``refused`` (the SLA agent
    dead-letters it); the reason is the refused ones' :attr:`~schemas.codec.CodecError.reason`, else empty."""

    counts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    refused: list[Refused] = field(default_factory=list)

    def reference(self, topic: str, value: bytes, partition: int, offset: int) -> Rows:
        """The rows :data:`ROWS_OF` makes of one message (none when it refuses it), counted."""
        try:
            rows = ROWS_OF[topic](value, partition, offset)
        except CodecError as exc:
            self.refused.append(Refused(topic, partition, offset, exc))
            self.counts[topic, "refused", exc.reason] += 1
            return []
        self.counts[topic, "written" if rows else "skipped", ""] += 1
        return rows


# ---------------------------------------------------------------------------------------------------------------
# The fast path: ClickHouse reads the Avro bytes and makes the rows (module doc)

FRAME_FIELDS: Final = ("source_partition", "source_offset", "message_header", "frame_end")
"""The fields a framed message has besides its own: partition (Avro int), offset (8 bytes, little-endian), the
message's header (magic, fingerprint and, for the input topic, the union branch), and an end marker."""

END_SIZE: Final = 8
SYNC_SIZE: Final = 16
_OFFSET: Final = struct.Struct("<q")
_NULL_MS: Final = "CAST(NULL AS Nullable(Int64))"


def _zigzag(n: int) -> bytes:
    """Avro's variable-length zig-zag encoding of a long."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _avro_bytes(data: bytes) -> bytes:
    return _zigzag(len(data)) + data


def _quoted(text: str) -> str:
    """A SQL string literal of a plain name (letters, digits, ``_``, ``-``, ``.``)."""
    assert all(ch.isalnum() or ch in "_-." for ch in text), f"not a plain name: {text!r}"
    return f"'{text}'"


def _in(values: Iterable[str]) -> str:
    return "(" + ", ".join(_quoted(v) for v in sorted(values)) + ")"


def _attr(name: str) -> str:
    return f"attributes[{_quoted(name)}]"


def _ms(column: str) -> str:
    """A ``DateTime64(3)`` of UTC epoch milliseconds: the same number clickhouse-connect writes for an ``int``."""
    return f"fromUnixTimestamp64Milli({column})"


_INSTANCE: Final = "concat(record_id, '/', kpi, '/', toString(kpi_instance))"
_SOURCE_SQL: Final = ("source_partition", "reinterpretAsInt64(source_offset)")

_SECONDS_PATTERN: Final = "-?[0-9]{1,9}([.][0-9]{0,3})?"
"""Texts whose milliseconds SQL computes exactly as :func:`_seconds_ms`: up to 9 digits and 3 decimals. For them
``round(float(text) * 1000)`` is the exact decimal value times 1000 (the relative error of two roundings of a
double is far below 0.5 ms at that size)."""
_EXACT_SECONDS: Final = f"'^{_SECONDS_PATTERN}$'"
""":data:`_SECONDS_PATTERN` as a whole-text SQL regular expression."""
_SURE_SECONDS: Final = re.compile(_SECONDS_PATTERN.encode())
""":data:`_SECONDS_PATTERN` for Python (``fullmatch``), on the attribute's bytes."""
_DIGIT: Final = re.compile(rb"[0-9]")


def _seconds_sure(text: str) -> str:
    """SQL: ``text`` (an attribute) is one whose :func:`_seconds_ms` SQL knows: empty, an exact number, or ASCII
    without a digit (``float()`` fails, or gives NaN or an infinity: None)."""
    no_digit = f"NOT match({text}, '[0-9]') AND length({text}) = lengthUTF8({text})"
    return f"({text} = '' OR match({text}, {_EXACT_SECONDS}) OR ({no_digit}))"


def _seconds_bytes_sure(text: bytes) -> bool:
    """:func:`_seconds_sure` of an attribute's bytes."""
    return not text or _SURE_SECONDS.fullmatch(text) is not None or (text.isascii() and not _DIGIT.search(text))


def _seconds_sql(text: str) -> str:
    """SQL: :func:`_seconds_ms` of ``text``, for a text :func:`_seconds_sure` accepts: the exact decimal (None
    when there is no digit to read)."""
    return f"toInt64(toDecimal64OrNull({text}, 3) * 1000)"


def _strings(expr: str, avro_type: Any, depth: int = 0) -> list[str]:
    """SQL expressions of every string ``expr`` of ``avro_type`` holds (maps and arrays joined with newlines)."""
    if avro_type == "string":
        return [expr]
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        assert len(branches) == 1, f"only [null, T] unions are framed: {avro_type}"
        return [f"if(isNull({expr}), '', {e})" for e in _strings(f"assumeNotNull({expr})", branches[0], depth)]
    if not isinstance(avro_type, dict):
        return []
    kind = avro_type["type"]
    if kind == "record":
        return [s for f in avro_type["fields"] for s in _strings(f"tupleElement({expr}, '{f['name']}')", f["type"])]
    if kind == "map":
        assert avro_type["values"] == "string", f"only maps of strings are framed: {avro_type}"
        return [f"arrayStringConcat(mapKeys({expr}), '\\n')", f"arrayStringConcat(mapValues({expr}), '\\n')"]
    if kind == "array":
        item = f"x{depth}"
        inner = _strings(item, avro_type["items"], depth + 1)
        if not inner:
            return []
        joined = inner[0] if len(inner) == 1 else f"arrayStringConcat([{', '.join(inner)}], '\\n')"
        return [f"arrayStringConcat(arrayMap({item} -> {joined}, {expr}), '\\n')"]
    return []  # enum, fixed: ClickHouse's reader checks them


def _decodable(fields: Sequence[dict[str, Any]]) -> str:
    """SQL: what fastavro decodes to the same values. Every string is UTF-8 (fastavro refuses the message
    otherwise; the strings are joined with a newline, across which no invalid sequence can become valid) and no
    map repeats a key (fastavro keeps the last value, ClickHouse every entry)."""
    strings = [s for f in fields for s in _strings(f["name"], f["type"])]
    checks = [f"isValidUTF8(arrayStringConcat([{', '.join(strings)}], '\\n'))"]
    checks += [
        f"arrayUniq(mapKeys({f['name']})) = length({f['name']})"
        for f in fields
        if isinstance(f["type"], dict) and f["type"]["type"] == "map"
    ]
    return " AND ".join(checks)


def _non_empty(*columns: str) -> str:
    return " AND ".join(f"{c} != ''" for c in columns)


_EVENT_RULES: Final = f"occurred_at_ms BETWEEN {MIN_MS} AND {MAX_MS} AND NOT has(mapKeys(attributes), '')"
"""SQL of :func:`streams.events.validate`'s rules common to every event: the instant's range, no empty name."""


@dataclass(frozen=True, eq=False)
class Target:
    """One table a :class:`Shape` writes: the SQL of each column (in :data:`TABLE_COLUMNS` order), and which parts
    of the shape's messages make a row there (all when ``parts`` is empty)."""

    table: str
    columns: tuple[str, ...]
    parts: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        assert len(self.columns) == len(TABLE_COLUMNS[self.table]), f"{self.table}: one SQL expression per column"

    def takes(self, part: str) -> bool:
        """Whether a message of ``part`` makes a row of this table."""
        return not self.parts or part in self.parts

    def insert_sql(self, table: str, source: str, check: str = "") -> str:
        """``INSERT INTO table`` the rows of every message of ``source`` (a table function); with ``check``, SQL
        that is true for every message, or the insert fails and writes nothing."""
        where = f" WHERE throwIf(NOT ({check}), 'slaflow: a framed message fails its check') = 0" if check else ""
        columns = ", ".join(TABLE_COLUMNS[self.table])
        return f"INSERT INTO {table} ({columns}) SELECT {', '.join(self.columns)} FROM {source}{where}"


@dataclass(frozen=True, eq=False)
class Shape:
    """Messages of one writer schema (and, on the input topic, one union branch) that ClickHouse makes rows of.

    ``header`` is what every such message starts with (magic, writer fingerprint, branch byte); ``fields`` are
    the Avro fields of the message record after it (parsing canonical form); ``ok`` is SQL over those fields:
    true when the reference path would make exactly the rows of ``targets`` (else the message goes through
    :data:`ROWS_OF`). ``targets[0]`` takes every message: its insert checks ``ok``, and the others follow it.
    ``part`` sorts a message into a part (None: the reference path decides), when the targets differ by part.
    """

    name: str
    header: bytes
    fields: tuple[dict[str, Any], ...]
    ok: str
    targets: tuple[Target, ...]
    part: Callable[[bytes], str | None] | None = None

    def __post_init__(self) -> None:
        assert not self.targets[0].parts, "the first target takes every message"

    @property
    def schema_json(self) -> str:
        """The Avro schema of a framed message: the frame fields around the message record's own."""
        fixed = [("source_offset", "Offset", 8), ("message_header", "Header", len(self.header))]
        return json.dumps({
            "type": "record", "name": f"slaflow.sink.{self.name}",
            "fields": [
                {"name": "source_partition", "type": "int"},
                *({"name": name, "type": {"type": "fixed", "name": f"slaflow.sink.{kind}", "size": size}}
                  for name, kind, size in fixed),
                *self.fields,
                {"name": "frame_end", "type": {"type": "fixed", "name": "slaflow.sink.End", "size": END_SIZE}},
            ],
        }, separators=(",", ":"))  # fmt: skip

    def check(self, end: bytes) -> str:
        """SQL: the message is :attr:`ok` and its frame ends with ``end`` (it was read exactly as framed)."""
        return f"hex(frame_end) = '{end.hex().upper()}' AND {self.ok}"

    def refused_sql(self, source: str, end: bytes) -> str:
        """SQL: the offsets of the messages of ``source`` that fail :meth:`check`."""
        return f"SELECT groupArrayIf({_SOURCE_SQL[1]}, NOT ({self.check(end)})) FROM {source}"


def _fields(codec: Codec, branch: str | None = None) -> tuple[dict[str, Any], ...]:
    schema = json.loads(codec.canonical)
    if branch is not None:
        (body,) = schema["fields"]
        schema = next(t for t in body["type"] if t["name"] == branch)
    fields = tuple(schema["fields"])
    assert not {f["name"] for f in fields} & set(FRAME_FIELDS), f"{schema['name']} has a frame field's name"
    return fields


def _read_long(value: bytes, at: int) -> tuple[int, int]:
    """The Avro long (zig-zag varint) at ``at`` and the index after it; IndexError past the end."""
    byte = value[at]
    n, shift = byte & 0x7F, 7
    while byte & 0x80:
        at += 1
        byte = value[at]
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), at + 1


def _read_string(value: bytes, at: int) -> tuple[bytes, int]:
    """The bytes of the Avro string at ``at`` and the index after it; IndexError or ValueError if it is none."""
    byte = value[at]
    if byte < 0x80:  # the usual length, below 64: one byte
        length, at = byte >> 1 if not byte & 1 else -1, at + 1
    else:
        length, at = _read_long(value, at)
    if length < 0:
        raise ValueError("negative string length")
    end = at + length
    if end > len(value):
        raise IndexError("string beyond the message")
    return value[at:end], end


_EMAIL_BYTES: Final = frozenset(kind.encode() for kind in EMAIL_KINDS)
_CALL_SECONDS: Final = (b"wait_seconds", b"handle_seconds")


def _record_part(value: bytes) -> str | None:
    """The part of a framed record event, as :func:`_record_rows` decides which rows it makes: ``email``,
    ``call`` (an event of a ``phone_call`` record that is a call's), ``record_call`` (a call about another
    record) or ``plain``. None (the reference path decides) when its fields do not read as Avro, or when it is
    a call whose wait or handle seconds SQL would not compute exactly as :func:`_seconds_ms`.

    The hot path of the framer: strings of up to 63 bytes (a one-byte length) are read inline, anything else by
    :func:`_record_part_slowly`.
    """
    try:
        at = HEADER_LEN + 1
        n = value[at]  # event_id, skipped
        if n & 0x81:  # a length of more than one byte, or a negative one
            return _record_part_slowly(value)
        at += 1 + (n >> 1)
        n = value[at]  # record_id, skipped
        if n & 0x81:
            return _record_part_slowly(value)
        at += 1 + (n >> 1)
        n = value[at]  # entity_type
        if n & 0x81:
            return _record_part_slowly(value)
        entity_type = at + 1
        at = entity_type + (n >> 1)
        k = value[at]  # kind
        if k & 0x81:
            return _record_part_slowly(value)
    except IndexError:
        return None
    if value.startswith(b"email_", at + 1) and value[at + 1 : at + 1 + (k >> 1)] in _EMAIL_BYTES:
        return "email"
    if value.startswith(b"call", at + 1):
        return _record_part_slowly(value)  # perhaps a call or a callback: its record's type and seconds decide
    return "plain"


def _record_part_slowly(value: bytes) -> str | None:
    """:func:`_record_part`, every length read in full, and the attributes of a call read."""
    try:
        _, at = _read_string(value, HEADER_LEN + 1)  # event_id
        _, at = _read_string(value, at)  # record_id
        entity_type, at = _read_string(value, at)
        kind, at = _read_string(value, at)
        if kind in _EMAIL_BYTES:
            return "email"
        if entity_type == b"phone_call":
            if not kind.startswith((b"call_", b"callback_")):
                return "plain"
            part = "call"
        elif kind.startswith(b"call_"):
            part = "record_call"
        else:
            return "plain"
        _, at = _read_long(value, at)  # occurred_at_ms
        while True:  # the attributes: blocks of entries, then a zero count
            count, at = _read_long(value, at)
            if count == 0:
                return part
            if count < 0:
                count = -count
                _, at = _read_long(value, at)  # the block's size in bytes
            for _ in range(count):
                name, at = _read_string(value, at)
                text, at = _read_string(value, at)
                if name in _CALL_SECONDS and not _seconds_bytes_sure(text):
                    return None
    except (IndexError, ValueError):
        return None


_KPI_ATTRIBUTES: Final = tuple(_attr(a) for a in ("tier", "priority", "queue", "owner"))

_ALERT: Final = Target("sla_alerts", (
    "alert_id", _INSTANCE, "toString(kind)", "record_id", "entity_type", "policy", "policy_version", "kpi",
    "kpi_instance", _ms("started_at_ms"), _ms("threshold_at_ms"), _ms("deadline_ms"), _ms("fired_at_ms"),
    "target_ms", "business_elapsed_ms", "wall_elapsed_ms", "paused_ms", *_KPI_ATTRIBUTES, "attributes", "level",
    "revision", "revoked", *_SOURCE_SQL,
))  # fmt: skip
_TRANSITION: Final = Target("kpi_transitions", (
    "transition_id", _INSTANCE, "kind", "record_id", "entity_type", "policy", "policy_version", "kpi",
    "kpi_instance", "sequence", _ms("at_ms"), _ms("started_at_ms"), _ms("deadline_ms"), "target_ms",
    "business_elapsed_ms", "wall_elapsed_ms", "paused_ms", "reason", *_KPI_ATTRIBUTES, "attributes", "revision",
    "revoked", _ms("emitted_at_ms"), *_SOURCE_SQL,
))  # fmt: skip
_DURATION: Final = Target("kpi_durations", (
    "duration_id", "record_id", "entity_type", "policy", "policy_version", "kpi", "kpi_instance", "outcome",
    "breached", _ms("started_at_ms"), _ms("ended_at_ms"), _ms("deadline_ms"), "target_ms", "business_ms",
    "wall_ms", "paused_ms", *_KPI_ATTRIBUTES, _attr("category"), "attributes", "sequence", "revision", "revoked",
    *_SOURCE_SQL,
))  # fmt: skip
_EMAIL: Final = f"kind IN {_in(EMAIL_KINDS)}"
"""SQL, of a record event of the part ``email`` or ``record_call``: it is an e-mail."""
_PHONE_CALL: Final = "entity_type = 'phone_call'"
"""SQL, of a record event of the part ``call`` or ``record_call``: it is an event of a phone_call record."""
_CASE: Final = f"entity_type = {_quoted(CALL_ENTITY_TYPE)}"
"""SQL: a record event of a case (a call of it belongs to that case)."""
_RECORD_CALL_ID: Final = f"if({_attr('call_id')} != '', {_attr('call_id')}, event_id)"
"""SQL: the id of the call a record event of the part ``record_call`` is (:func:`_record_rows`)."""
_WAIT_MS: Final = _seconds_sql(_attr("wait_seconds"))
_HANDLE_MS: Final = _seconds_sql(_attr("handle_seconds"))

# One target per table, each taking every part that makes a row there (what differs by part is in its SQL):
# one insert per table and flush, however many parts.
_RECORD: Final = (
    Target("record_events", (
        "event_id", "record_id", "entity_type", "kind", _ms("occurred_at_ms"),
        *(_attr(a) for a in ("status", "queue", "owner", "tier", "priority", "category")), "attributes",
        *_SOURCE_SQL,
    )),
    Target("activities", (
        "event_id", f"if({_EMAIL}, event_id, {_RECORD_CALL_ID})", f"if({_EMAIL}, 'email', 'phone_call')", "kind",
        "multiIf(" + ", ".join(f"kind = {_quoted(k)}, {_quoted(d)}" for k, d in EMAIL_KINDS.items())
        + f", {_attr('direction')})",
        "record_id", "entity_type", _ms("occurred_at_ms"), f"if({_EMAIL}, {_NULL_MS}, {_HANDLE_MS})",
        f"if({_EMAIL}, {_NULL_MS}, {_WAIT_MS})", _attr("owner"), _attr("queue"), "attributes", *_SOURCE_SQL,
    ), frozenset({"email", "record_call"})),
    Target("call_events", (
        "event_id", f"if({_PHONE_CALL}, record_id, {_RECORD_CALL_ID})",
        "if(startsWith(kind, 'call_'), substring(kind, 6), kind)", _attr("direction"), _attr("queue"),
        _attr("owner"), f"multiIf({_PHONE_CALL}, {_attr('case_id')}, {_CASE}, record_id, '')",
        _ms("occurred_at_ms"), _WAIT_MS, _HANDLE_MS, _attr("tier"), "attributes", *_SOURCE_SQL,
    ), frozenset({"call", "record_call"})),
)  # fmt: skip
_ACTIVITY: Final = Target("activities", (
    "event_id", "activity_id", "activity_type", "kind", "direction", "regarding_id", "regarding_type",
    _ms("occurred_at_ms"), "duration_ms", _WAIT_MS,
    f"if({_attr('owner')} != '', {_attr('owner')}, {_attr('agent')})", _attr("queue"), "attributes", *_SOURCE_SQL,
))  # fmt: skip
_CALL: Final = Target("call_events", (
    "event_id", "call_id", "kind", "direction", "queue", "agent", "ifNull(case_id, '')", _ms("occurred_at_ms"),
    _WAIT_MS, _HANDLE_MS, _attr("tier"), "attributes", *_SOURCE_SQL,
))  # fmt: skip


def _shape(
    name: str, codec: Codec, targets: tuple[Target, ...], rules: str = "", branch: str = "",
    part: Callable[[bytes], str | None] | None = None,
) -> Shape:  # fmt: skip
    """A shape of ``codec``'s messages (of the union ``branch`` of the input message, at its index)."""
    fields = _fields(codec, branch or None)
    header = codec.header
    if branch:
        (body,) = json.loads(codec.canonical)["fields"]
        header += _zigzag([t["name"] for t in body["type"]].index(branch))
    ok = " AND ".join(p for p in (_decodable(fields), rules) if p)
    return Shape(name, header, fields, ok, targets, part)


SHAPES: Final = (
    _shape("alerts", SLA_ALERT, (_ALERT,)),
    _shape("kpi_transitions", KPI_TRANSITION, (_TRANSITION,)),
    _shape("kpi_durations", KPI_DURATION, (_DURATION,)),
    _shape("record_events", INPUT_MESSAGE, _RECORD, branch="slaflow.RecordEvent", part=_record_part, rules=(
        f"{_non_empty('event_id', 'record_id', 'entity_type', 'kind')} AND {_EVENT_RULES}"
    )),
    _shape("activity_events", INPUT_MESSAGE, (_ACTIVITY,), branch="slaflow.ActivityEvent", rules=(
        f"{_non_empty('event_id', 'activity_id', 'kind', 'regarding_id', 'regarding_type')} AND "
        f"activity_type IN {_in(ACTIVITY_TYPES)} AND direction IN {_in(ACTIVITY_DIRECTIONS)} AND "
        f"(isNull(duration_ms) OR duration_ms >= 0) AND {_EVENT_RULES} AND {_seconds_sure(_attr('wait_seconds'))}"
    )),
    _shape("call_events", INPUT_MESSAGE, (_CALL,), branch="slaflow.CallEvent", rules=(
        f"{_non_empty('event_id', 'call_id')} AND kind IN {_in(CALL_KINDS)} AND direction IN {_in(CALL_DIRECTIONS)}"
        f" AND {_EVENT_RULES} AND {_seconds_sure(_attr('wait_seconds'))} AND "
        f"{_seconds_sure(_attr('handle_seconds'))}"
    )),
)  # fmt: skip
"""Every shape ClickHouse makes rows of. Clock ticks are not one: they make no row, and the reference path checks
the few there are."""

_BY_NAME: Final = {shape.name: shape for shape in SHAPES}
_INPUT_SHAPES: Final = (_BY_NAME["record_events"], _BY_NAME["activity_events"], _BY_NAME["call_events"])
TOPIC_SHAPES: Final[dict[str, tuple[Shape, ...]]] = {
    "alerts": (_BY_NAME["alerts"],),
    "kpi_transitions": (_BY_NAME["kpi_transitions"],),
    "kpi_durations": (_BY_NAME["kpi_durations"],),
    "case_events": _INPUT_SHAPES,
    "calls": _INPUT_SHAPES,
}
"""The shapes of each topic's messages (the keys of :data:`ROWS_OF`)."""


@dataclass
class Framed:
    """Messages of one shape and part of one topic partition, framed: one Avro container block each."""

    shape: Shape
    part: str
    blocks: list[bytes] = field(default_factory=list)
    """Per message: block count (1), size, the framed message, sync marker."""
    offsets: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)
    """The messages themselves, for the reference path should ClickHouse not take one."""


class Framer:
    """Frames messages as blocks of Avro object container files, with random end and sync markers of its own.

    The markers make every message's frame checkable: a message with trailing bytes, or one ClickHouse's reader
    would take as shorter or longer than it is, does not end with this framer's end marker (or breaks the
    container), so ClickHouse's reader drops nothing silently.
    """

    def __init__(self) -> None:
        self.end = os.urandom(END_SIZE)
        self.sync = os.urandom(SYNC_SIZE)
        self._headers: dict[Shape, bytes] = {}

    def file_header(self, shape: Shape) -> bytes:
        """The header of a container file of ``shape``'s framed messages: magic, schema, codec null, sync marker."""
        header = self._headers.get(shape)
        if header is None:
            meta = ((b"avro.schema", shape.schema_json.encode()), (b"avro.codec", b"null"))
            entries = b"".join(_avro_bytes(key) + _avro_bytes(value) for key, value in meta)
            header = self._headers[shape] = b"Obj\x01" + _zigzag(len(meta)) + entries + b"\x00" + self.sync
        return header

    def frame(
        self, topic: str, values: Sequence[bytes], partition: int, offsets: Sequence[int]
    ) -> tuple[list[Framed], list[int]]:
        """Sort the messages of one topic partition: framed per shape and part, or left to the reference path
        (their indices, the second result).

        A message is framed when it starts with a shape's header (the current writer schema; for the input
        topic, a record, activity or call event) and its shape sorts it into a part; every other one (an older
        writer, a clock tick, anything that is not a message of that topic) is left to :data:`ROWS_OF`. About
        1 µs a message: the Python share of the fast path.
        """
        shapes = TOPIC_SHAPES[topic]
        common = shapes[0].header[:HEADER_LEN]
        by_branch = {shape.header[HEADER_LEN:]: shape for shape in shapes}
        assert all(shape.header.startswith(common) for shape in shapes)
        groups: dict[tuple[Shape, str], Framed] = {}
        reference: list[int] = []
        partition_bytes = _zigzag(partition)
        item_extra = len(partition_bytes) + _OFFSET.size + END_SIZE
        prefixes: dict[int, bytes] = {}
        pack, tail, join = _OFFSET.pack, self.end + self.sync, b"".join
        after = HEADER_LEN + 1
        for i, value in enumerate(values):
            shape = by_branch.get(value[HEADER_LEN:after] if len(shapes) > 1 else b"")
            if shape is None or not value.startswith(common):
                reference.append(i)
                continue
            part = "" if shape.part is None else shape.part(value)
            if part is None:
                reference.append(i)
                continue
            group = groups.get((shape, part))
            if group is None:
                group = groups[shape, part] = Framed(shape, part)
            size = len(value)
            prefix = prefixes.get(size)
            if prefix is None:
                prefix = prefixes[size] = b"\x02" + _zigzag(size + item_extra) + partition_bytes
            offset = offsets[i]
            group.blocks.append(join((prefix, pack(offset), value, tail)))
            group.offsets.append(offset)
            group.values.append(value)
        return list(groups.values()), reference
