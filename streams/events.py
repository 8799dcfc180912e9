"""What flows into the SLA core: record, activity and call events, and the passage of time.

Times are UTC epoch milliseconds (``int``), durations milliseconds. The core never reads a clock: an event says
when it happened, and :class:`Tick` says how far time has advanced (the watermark), so a replay of last month
runs exactly like a live stream.

Three kinds of input event arrive (docs/events.md is their reference): :class:`RecordEvent` (something happened
to a CRM record), :class:`ActivityEvent` (an e-mail, call, appointment, note or time log regarding a record) and
:class:`CallEvent` (telephony). The core sees only record events: :func:`core_event` says what each one means to
the record it concerns, and :func:`routing_key` which Kafka key keeps everything about that record on one
partition. :func:`validate` holds the rules a schema cannot express, for the JSON and the Avro decoders alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

from streams.errors import DeadLetterReason, SlaflowError


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """Something that happened to a CRM record (a case, a lead, an e-mail activity, ...).

    ``attributes`` is the record's state as of the event (tier, priority,
    owner, queue, status, channel, custom fields): policies choose targets
    from it and alerts carry it.
    """

    event_id: str
    record_id: str
    entity_type: str
    kind: str
    occurred_at_ms: int
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ActivityEvent:
    """An activity (e-mail, phone call, appointment, note, time log) regarding a record, usually a case.

    It reaches the SLA core as an event of the record it regards (:func:`core_event`): an outbound e-mail sent
    about a case is the case's first response. ``duration_ms`` is the time worked (time log) or the length of
    the call, in milliseconds, or ``None`` when the activity has none.
    """

    event_id: str
    activity_id: str
    activity_type: str
    kind: str
    direction: str
    regarding_id: str
    regarding_type: str
    occurred_at_ms: int
    duration_ms: int | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A telephony event of one call: offered, queued, answered, abandoned, transferred or ended.

    ``case_id`` is the case the call belongs to, ``None`` (or empty) when it belongs to none: such a call is
    nothing for the SLA state. ``queue`` and ``agent`` are the telephony queue and agent, empty when unknown.
    """

    event_id: str
    call_id: str
    kind: str
    direction: str
    queue: str
    agent: str
    case_id: str | None
    occurred_at_ms: int
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has reached ``at_ms`` (UTC epoch milliseconds): fire every threshold due by then."""

    at_ms: int


InputEvent: TypeAlias = RecordEvent | ActivityEvent | CallEvent
"""An event a producer writes to the input topic (the ticker writes the :class:`Tick`)."""

ACTIVITY_TYPES: Final = frozenset({"email", "phone_call", "appointment", "note", "time_log"})
ACTIVITY_DIRECTIONS: Final = frozenset({"inbound", "outbound", ""})
"""An activity's direction; empty when it has none (a note, a time log)."""
CALL_KINDS: Final = frozenset({"offered", "queued", "answered", "abandoned", "transferred", "ended"})
CALL_DIRECTIONS: Final = frozenset({"inbound", "outbound"})
CALL_ENTITY_TYPE: Final = "case"
"""The entity type of the record a call with a ``case_id`` reaches."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MIN_MS: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
"""The earliest instant an event may carry (year 1), UTC epoch milliseconds; :data:`MAX_MS` the latest (year 9999)."""
MAX_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


class EventError(SlaflowError):
    """An event that cannot be used. Not retriable: dead-letter it.

    ``reason`` is short and machine-readable: ``not_an_object``, ``unknown_field``, ``missing_field``,
    ``bad_type``, ``bad_timestamp`` (the JSON format), ``schema_violation`` (a rule of :func:`validate`);
    ``detail`` says which field and what was found.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


SCHEMA_VIOLATION: Final = DeadLetterReason.SCHEMA_VIOLATION
"""The reason of an event that fits its schema's types but breaks a rule of :func:`validate`."""


def validate(message: InputEvent | Tick) -> None:
    """Check what the Avro schemas cannot express; raise :class:`EventError` (``schema_violation``) if broken.

    The rules: ids (``event_id``, ``record_id``, ``activity_id``, ``regarding_id``, ``call_id``), the
    ``entity_type``, ``regarding_type`` and ``kind`` are non-empty; ``activity_type``, a call's ``kind`` and
    ``direction`` are one of the documented values; ``duration_ms`` is not negative; instants are in years 1 to
    9999; attribute names are non-empty. Called on every decoded message (the hot path), so the common case is
    a few comparisons; the search for what exactly is wrong runs only when something is.
    """
    if isinstance(message, RecordEvent):
        if not (message.event_id and message.record_id and message.entity_type and message.kind):
            _empty(message, ("event_id", "record_id", "entity_type", "kind"))
    elif isinstance(message, ActivityEvent):
        if not (
            message.event_id
            and message.activity_id
            and message.kind
            and message.regarding_id
            and message.regarding_type
        ):
            _empty(message, ("event_id", "activity_id", "kind", "regarding_id", "regarding_type"))
        if message.activity_type not in ACTIVITY_TYPES:
            _not_one_of("activity_type", message.activity_type, ACTIVITY_TYPES)
        if message.direction not in ACTIVITY_DIRECTIONS:
            _not_one_of("direction", message.direction, ACTIVITY_DIRECTIONS)
        if message.duration_ms is not None and message.duration_ms < 0:
            raise EventError(SCHEMA_VIOLATION, f"duration_ms must not be negative, got {message.duration_ms}")
    elif isinstance(message, CallEvent):
        if not (message.event_id and message.call_id):
            _empty(message, ("event_id", "call_id"))
        if message.kind not in CALL_KINDS:
            _not_one_of("kind", message.kind, CALL_KINDS)
        if message.direction not in CALL_DIRECTIONS:
            _not_one_of("direction", message.direction, CALL_DIRECTIONS)
    else:
        if not MIN_MS <= message.at_ms <= MAX_MS:
            _out_of_range("at_ms", message.at_ms)
        return
    if not MIN_MS <= message.occurred_at_ms <= MAX_MS:
        _out_of_range("occurred_at_ms", message.occurred_at_ms)
    if "" in message.attributes:
        raise EventError(SCHEMA_VIOLATION, "attribute names must be non-empty, got ''")


def _empty(event: object, names: tuple[str, ...]) -> None:
    empty = [name for name in names if not getattr(event, name)]
    raise EventError(SCHEMA_VIOLATION, f"{', '.join(empty)} must be non-empty")


def _out_of_range(name: str, ms: int) -> None:
    raise EventError(SCHEMA_VIOLATION, f"{name} out of range (years 1 to 9999 in UTC epoch ms), got {ms}")


def _not_one_of(name: str, value: str, allowed: frozenset[str]) -> None:
    expected = ", ".join(repr(v) for v in sorted(allowed))
    raise EventError(SCHEMA_VIOLATION, f"{name} must be one of {expected}; got {value!r}")


def core_event(message: InputEvent) -> RecordEvent | None:
    """What the SLA core sees of ``message``: an event of the record it concerns, or ``None`` (nothing).

    - A :class:`RecordEvent` as it is.
    - An :class:`ActivityEvent` becomes an event of the record it regards (``regarding_id``, ``regarding_type``)
      with the activity's ``kind``; its attributes gain ``activity_id``, ``activity_type``, ``direction`` and,
      when known, ``duration_ms`` (as text), so that policies can test them (``{kind: email_sent, direction:
      outbound}``).
    - A :class:`CallEvent` with a case becomes an event of that case with kind ``call_<kind>``
      (``call_answered``); its attributes gain ``call_id``, ``direction`` and, when known, ``call_queue`` and
      ``call_agent``. A call with no case is ``None``.

    ``direction`` is always set, even empty: the core merges event attributes into the record's, and a
    direction left over from an earlier activity must not make this one look outbound. The call's queue and
    agent are ``call_queue``/``call_agent``, not ``queue``/``owner``: they must not overwrite the case's own
    queue, which alerts report and policies may select on.
    """
    if isinstance(message, RecordEvent):
        return message
    if isinstance(message, ActivityEvent):
        attributes = {
            **message.attributes,
            "activity_id": message.activity_id,
            "activity_type": message.activity_type,
            "direction": message.direction,
        }
        if message.duration_ms is not None:
            attributes["duration_ms"] = str(message.duration_ms)
        return RecordEvent(
            message.event_id,
            message.regarding_id,
            message.regarding_type,
            message.kind,
            message.occurred_at_ms,
            attributes,
        )
    if not message.case_id:
        return None
    attributes = {**message.attributes, "call_id": message.call_id, "direction": message.direction}
    if message.queue:
        attributes["call_queue"] = message.queue
    if message.agent:
        attributes["call_agent"] = message.agent
    return RecordEvent(
        message.event_id, message.case_id, CALL_ENTITY_TYPE, f"call_{message.kind}", message.occurred_at_ms, attributes
    )


def routing_key(message: InputEvent) -> str:
    """The Kafka key a producer must give ``message``: the id of the record whose state it changes.

    ``record_id``; an activity's ``regarding_id``; a call's ``case_id``, or its ``call_id`` when it has no case
    (so that every event of that call still lands on one partition, in order).
    """
    if isinstance(message, RecordEvent):
        return message.record_id
    if isinstance(message, ActivityEvent):
        return message.regarding_id
    return message.case_id or message.call_id


# ---------------------------------------------------------------------------------------------------------------
# The JSON event format (the replay CLI's and `slaflow produce`'s input; one object per line; docs/events.md)


@dataclass(frozen=True, slots=True)
class _JsonFormat:
    """The JSON shape of one event type: its ``type`` value (``name``), its fields in order, and how to build it."""

    name: str
    event: type[RecordEvent] | type[ActivityEvent] | type[CallEvent]
    required: tuple[str, ...]
    """Non-empty strings, always given."""
    optional: tuple[str, ...]
    """Fields with a default (``null`` or absent gives it): strings, except ``duration_ms`` and ``case_id``."""

    @property
    def known(self) -> frozenset[str]:
        return frozenset({"type", *self.required, *self.optional, "occurred_at", "occurred_at_ms", "attributes"})

    @property
    def order(self) -> str:
        """The fields as an error message lists them."""
        return ", ".join((*self.required, "occurred_at (or occurred_at_ms)", *self.optional, "attributes", "type"))


_FORMATS: Final = {
    f.name: f
    for f in (
        _JsonFormat("record", RecordEvent, ("event_id", "record_id", "entity_type", "kind"), ()),
        _JsonFormat(
            "activity",
            ActivityEvent,
            ("event_id", "activity_id", "activity_type", "kind", "regarding_id", "regarding_type"),
            ("direction", "duration_ms"),
        ),
        _JsonFormat("call", CallEvent, ("event_id", "call_id", "kind", "direction"), ("queue", "agent", "case_id")),
    )
}
_FORMAT_OF: Final = {f.event: f for f in _FORMATS.values()}
_KNOWN: Final = {f.name: f.known for f in _FORMATS.values()}


def parse_event(obj: object) -> InputEvent:
    """The event of one decoded JSON object; raises :class:`EventError` saying what is wrong.

    A record event (``"type": "record"`` may be given; it is the default)::

        {"event_id": "e1", "record_id": "case-42", "entity_type": "case", "kind": "created",
         "occurred_at": "2026-03-02T09:15:00Z", "attributes": {"tier": "VIP", "amount": 5000}}

    An activity (``"type": "activity"``) has ``event_id``, ``activity_id``, ``activity_type``, ``kind``,
    ``regarding_id``, ``regarding_type`` and optionally ``direction`` (default empty) and ``duration_ms`` (an
    integer of milliseconds, or ``null``); a call (``"type": "call"``) has ``event_id``, ``call_id``, ``kind``,
    ``direction`` and optionally ``queue``, ``agent`` (default empty) and ``case_id`` (default ``null``).

    The named fields are required non-empty strings, the optional ones strings. ``occurred_at`` is ISO 8601 with
    an offset (or ``Z``), or an integer of UTC epoch milliseconds; ``occurred_at_ms`` (an integer) may be given
    instead. ``attributes`` (optional) maps names to strings, numbers or booleans: numbers become
    ``str(number)`` (``5000``, ``5000.0``), booleans ``true``/``false``, ``null`` values are dropped; nested
    objects and lists are refused. Any other key is refused. Last, :func:`validate`'s rules apply (reason
    ``schema_violation``), as to an Avro message.
    """
    if not isinstance(obj, Mapping):
        raise EventError("not_an_object", f"expected a JSON object, got {_json_type(obj)}")
    type_name = obj.get("type", "record")
    form = _FORMATS.get(type_name) if isinstance(type_name, str) else None
    if form is None:
        raise EventError("bad_type", f"type must be one of 'record', 'activity', 'call'; got {type_name!r}")
    known = _KNOWN[form.name]
    if not known.issuperset(obj):
        unknown = sorted(str(key) for key in obj if key not in known)
        raise EventError("unknown_field", f"unknown field(s) {', '.join(map(repr, unknown))}; expected: {form.order}")
    values: dict[str, Any] = {name: _required_string(obj, name) for name in form.required}
    values.update((name, _optional(obj, name)) for name in form.optional)
    message = form.event(**values, occurred_at_ms=_occurred_at_ms(obj), attributes=_attributes(obj.get("attributes")))
    validate(message)
    return message


def parse_event_line(raw: bytes) -> InputEvent:
    """One line of a JSON-lines event file as an event.

    Raises :class:`EventError` with reason ``bad_encoding`` (not UTF-8), ``bad_json`` (not JSON, or NaN and
    Infinity, which JSON does not have), or one of :func:`parse_event`'s.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventError("bad_encoding", f"not UTF-8: {exc.reason}") from None
    try:
        obj = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        detail = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise EventError("bad_json", detail) from None
    return parse_event(obj)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_instant_ms(text: str) -> int | None:
    """UTC epoch milliseconds, exact, from digits (milliseconds) or ISO 8601 with an offset; ``None`` if neither."""
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


def event_to_json(event: InputEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (the inverse of :func:`parse_event`); ``occurred_at`` in UTC with ms and ``Z``.

    A record event has no ``type`` (the format as it was before activities and calls); the others do.
    """
    form = _FORMAT_OF[type(event)]
    obj: dict[str, Any] = {} if form.name == "record" else {"type": form.name}
    for name in (*form.required, *form.optional):
        obj[name] = getattr(event, name)
    obj["occurred_at"] = format_instant_ms(event.occurred_at_ms)
    obj["attributes"] = dict(event.attributes)
    return obj


def format_instant_ms(ms: int) -> str:
    """UTC epoch milliseconds as ISO 8601 with milliseconds and ``Z``: ``2026-03-02T09:15:00.000Z``."""
    instant = _EPOCH.replace(tzinfo=None) + timedelta(milliseconds=ms)
    return instant.isoformat(timespec="milliseconds") + "Z"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _required_string(obj: Mapping[Any, Any], name: str) -> str:
    value = obj.get(name)
    if value is None:
        raise EventError("missing_field", f"{name} is required (a non-empty string)")
    if not isinstance(value, str):
        raise EventError("bad_type", f"{name} must be a non-empty string, got {_json_type(value)}")
    if not value:
        raise EventError("missing_field", f"{name} is required (a non-empty string), got an empty string")
    return value


def _optional(obj: Mapping[Any, Any], name: str) -> str | int | None:
    """An optional field: ``duration_ms`` an integer or ``None``, ``case_id`` a string or ``None``, others a string
    (``""`` when absent or ``null``)."""
    value = obj.get(name)
    if name == "duration_ms":
        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise EventError("bad_type", f"duration_ms must be an integer of milliseconds or null, got {_json_type(value)}")
    if value is None:
        return None if name == "case_id" else ""
    if not isinstance(value, str):
        raise EventError("bad_type", f"{name} must be a string, got {_json_type(value)}")
    return value


def _occurred_at_ms(obj: Mapping[Any, Any]) -> int:
    text, ms = obj.get("occurred_at"), obj.get("occurred_at_ms")
    if text is not None and ms is not None:
        raise EventError("bad_timestamp", "give occurred_at or occurred_at_ms, not both")
    if text is None and ms is None:
        raise EventError("missing_field", "occurred_at (ISO 8601 with an offset) or occurred_at_ms is required")
    if ms is not None:
        if not isinstance(ms, int) or isinstance(ms, bool):
            raise EventError("bad_timestamp", f"occurred_at_ms must be an integer (UTC epoch ms), got {_json_type(ms)}")
        return _in_range(ms, "occurred_at_ms")
    if isinstance(text, int) and not isinstance(text, bool):
        return _in_range(text, "occurred_at")
    if not isinstance(text, str):
        raise EventError(
            "bad_timestamp",
            f"occurred_at must be ISO 8601 with an offset or an integer of UTC epoch ms, got {_json_type(text)}",
        )
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise EventError(
            "bad_timestamp", f"occurred_at must be ISO 8601 with an offset, such as 2026-03-02T09:15:00Z; got {text!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise EventError(
            "bad_timestamp", f"occurred_at needs an offset or Z (2026-03-02T09:15:00Z), got {text!r} (local time)"
        )
    try:
        return (parsed - _EPOCH) // timedelta(milliseconds=1)
    except OverflowError:
        raise EventError("bad_timestamp", f"occurred_at out of range: {text!r}") from None


def _in_range(ms: int, name: str) -> int:
    if not MIN_MS <= ms <= MAX_MS:
        raise EventError("bad_timestamp", f"{name} out of range (years 1 to 9999 in UTC epoch ms), got {ms}")
    return ms


def _attributes(raw: object) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise EventError("bad_type", f"attributes must be an object of names to values, got {_json_type(raw)}")
    attributes: dict[str, str] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name:
            raise EventError("bad_type", f"attribute names must be non-empty strings, got {name!r}")
        if value is None:
            continue
        if isinstance(value, str):
            attributes[name] = value
        elif isinstance(value, bool):
            attributes[name] = "true" if value else "false"
        elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            attributes[name] = str(value)
        else:
            raise EventError(
                "bad_type",
                f"attribute {name!r} must be a string, number, boolean or null, got {_json_type(value)}",
            )
    return attributes
