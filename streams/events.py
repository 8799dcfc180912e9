"""What flows into the SLA core: record events and the passage of time.

Times are UTC epoch milliseconds (``int``). The core never reads a clock: an
event says when it happened, and :class:`Tick` says how far time has advanced
(the watermark), so a replay of last month runs exactly like a live stream.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from streams.errors import SlaflowError


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
class Tick:
    """Time has reached ``at_ms`` (UTC epoch milliseconds): fire every threshold due by then."""

    at_ms: int


# ---------------------------------------------------------------------------------------------------------------
# The JSON event format (the replay CLI's input; one object per line)

_EVENT_FIELDS: Final = ("event_id", "record_id", "entity_type", "kind")
_KNOWN_FIELDS: Final = frozenset({*_EVENT_FIELDS, "occurred_at", "occurred_at_ms", "attributes"})
_ORDER: Final = (*_EVENT_FIELDS, "occurred_at (or occurred_at_ms)", "attributes")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_MAX_MS: Final = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


class EventError(SlaflowError):
    """A JSON event that is not a valid :class:`RecordEvent`. Not retriable: dead-letter it.

    ``reason`` is short and machine-readable: ``not_an_object``, ``unknown_field``, ``missing_field``,
    ``bad_type``, ``bad_timestamp``; ``detail`` says which field and what was found.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def parse_event(obj: object) -> RecordEvent:
    """The :class:`RecordEvent` of one decoded JSON event; raises :class:`EventError` saying what is wrong.

    The format::

        {"event_id": "e1", "record_id": "case-42", "entity_type": "case", "kind": "created",
         "occurred_at": "2026-03-02T09:15:00Z", "attributes": {"tier": "VIP", "amount": 5000}}

    ``event_id``, ``record_id``, ``entity_type`` and ``kind`` are required non-empty strings.
    ``occurred_at`` is ISO 8601 with an offset (or ``Z``), or an integer of UTC epoch milliseconds;
    ``occurred_at_ms`` (an integer) may be given instead. ``attributes`` (optional) maps names to strings,
    numbers or booleans: numbers become ``str(number)`` (``5000``, ``5000.0``), booleans ``true``/``false``,
    ``null`` values are dropped; nested objects and lists are refused. Any other key is refused.
    """
    if not isinstance(obj, Mapping):
        raise EventError("not_an_object", f"expected a JSON object, got {_json_type(obj)}")
    if not _KNOWN_FIELDS.issuperset(obj):
        unknown = sorted(str(key) for key in obj if key not in _KNOWN_FIELDS)
        raise EventError(
            "unknown_field", f"unknown field(s) {', '.join(map(repr, unknown))}; expected: {', '.join(_ORDER)}"
        )
    fields = [_required_string(obj, name) for name in _EVENT_FIELDS]
    event_id, record_id, entity_type, kind = fields
    return RecordEvent(
        event_id=event_id,
        record_id=record_id,
        entity_type=entity_type,
        kind=kind,
        occurred_at_ms=_occurred_at_ms(obj),
        attributes=_attributes(obj.get("attributes")),
    )


def parse_event_line(raw: bytes) -> RecordEvent:
    """One line of a JSON-lines event file as a :class:`RecordEvent`.

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


def event_to_json(event: RecordEvent) -> dict[str, Any]:
    """The JSON object of ``event`` (the inverse of :func:`parse_event`); ``occurred_at`` in UTC with ms and ``Z``."""
    return {
        "event_id": event.event_id,
        "record_id": event.record_id,
        "entity_type": event.entity_type,
        "kind": event.kind,
        "occurred_at": format_instant_ms(event.occurred_at_ms),
        "attributes": dict(event.attributes),
    }


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
    if not _MIN_MS <= ms <= _MAX_MS:
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
