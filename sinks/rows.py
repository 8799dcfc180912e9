"""From Kafka messages to ClickHouse rows: the columns of every table and the mapping of every message.

Pure: bytes in, ``(table, row)`` out. Rows are lists in :data:`TABLE_COLUMNS` order; instants are UTC epoch
milliseconds (``int``), which clickhouse-connect writes as they are into ``DateTime64(3, 'UTC')`` columns, so
no ``datetime`` is built per row. Every row ends with the Kafka partition and offset it came from.

What becomes what (the DDL in ``sinks/sql/migrations`` says what each column means):

- an alert -> ``sla_alerts``; a KPI transition -> ``kpi_transitions``; a KPI duration -> ``kpi_durations``;
- a record event -> ``record_events``; also ``activities`` when it is an e-mail of a record in the CRM's own
  words (kind ``email_received``: inbound, ``email_sent``: outbound), and ``call_events`` when the record is
  a ``phone_call`` and the kind starts with ``call_`` or ``callback_`` (the kind without ``call_``; the
  attributes ``wait_seconds`` and ``handle_seconds`` give the wait and handle times);
- an activity event -> ``activities``; a call event -> ``call_events``; a clock tick -> nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from schemas.codec import KPI_DURATION, KPI_TRANSITION, SLA_ALERT, decode_input
from streams.events import ActivityEvent, CallEvent, RecordEvent, Tick

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
    """An attribute in (possibly fractional) seconds as milliseconds; None when absent or not a number."""
    text = attributes.get(name)
    if not text:
        return None
    try:
        return round(float(text) * 1000)
    except ValueError:
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
    elif e.entity_type == "phone_call" and e.kind.startswith(("call_", "callback_")):
        call = CallEvent(
            e.event_id, e.record_id, e.kind.removeprefix("call_"), get("direction", ""), get("queue", ""),
            get("owner", ""), get("case_id"), e.occurred_at_ms, attributes,
        )  # fmt: skip
        rows.append(("call_events", _call_row(call, partition, offset)))
    return rows


ROWS_OF: Final[dict[str, Callable[[bytes, int, int], Rows]]] = {
    "alerts": alert_rows,
    "kpi_transitions": transition_rows,
    "kpi_durations": duration_rows,
    "case_events": input_rows,
    "calls": input_rows,
}
"""The row maker of each topic the sink reads, by its :class:`agents.topics.TopicNames` attribute."""
