"""The JSON event format: parse_event accepts the documented shapes and names what is wrong with the others."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.errors import SlaflowError
from streams.events import EventError, RecordEvent, event_to_json, format_instant_ms, parse_event

T = 1_772_442_900_000  # 2026-03-02T09:15:00Z


def event(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1",
        "record_id": "case-42",
        "entity_type": "case",
        "kind": "created",
        "occurred_at": "2026-03-02T09:15:00Z",
        "attributes": {"tier": "VIP"},
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def test_a_complete_event() -> None:
    assert parse_event(event()) == RecordEvent("e1", "case-42", "case", "created", T, {"tier": "VIP"})


def test_a_json_line_as_read_from_a_file() -> None:
    line = '{"event_id":"e1","record_id":"c","entity_type":"case","kind":"created","occurred_at_ms":5}'
    assert parse_event(json.loads(line)) == RecordEvent("e1", "c", "case", "created", 5, {})


@pytest.mark.parametrize(
    ("changes", "expected_ms"),
    [
        ({"occurred_at": "2026-03-02T10:15:00+01:00"}, T),
        ({"occurred_at": "2026-03-02T09:15:00.250Z"}, T + 250),
        ({"occurred_at": "2026-03-02T09:15:00.2509Z"}, T + 250),
        ({"occurred_at": "2026-03-02T04:15:00-05:00"}, T),
        ({"occurred_at": T}, T),
        ({"occurred_at": ..., "occurred_at_ms": T + 1}, T + 1),
        ({"occurred_at": "1969-12-31T23:59:59.999Z"}, -1),
    ],
)
def test_timestamps(changes: dict[str, Any], expected_ms: int) -> None:
    assert parse_event(event(**changes)).occurred_at_ms == expected_ms


def test_attribute_values_become_strings_and_nulls_are_dropped() -> None:
    attributes = {"tier": "VIP", "vip": True, "closed": False, "amount": 5000, "billed": 5000.0, "owner": None, "x": ""}
    parsed = parse_event(event(attributes=attributes))
    assert parsed.attributes == {
        "tier": "VIP",
        "vip": "true",
        "closed": "false",
        "amount": "5000",
        "billed": "5000.0",
        "x": "",
    }


@pytest.mark.parametrize("attributes", [..., None, {}])
def test_attributes_are_optional(attributes: Any) -> None:
    assert parse_event(event(attributes=attributes)).attributes == {}


@pytest.mark.parametrize(
    ("obj", "reason", "mentions"),
    [
        ([1, 2], "not_an_object", "a list"),
        ("text", "not_an_object", "a string"),
        (None, "not_an_object", "null"),
        (event(extra=1, zeta=2), "unknown_field", "'extra', 'zeta'"),
        (event(record_id=...), "missing_field", "record_id"),
        (event(record_id=None), "missing_field", "record_id"),
        (event(kind=""), "missing_field", "kind"),
        (event(event_id=17), "bad_type", "event_id"),
        (event(entity_type=["case"]), "bad_type", "entity_type"),
        (event(occurred_at=...), "missing_field", "occurred_at"),
        (event(occurred_at="2026-03-02T09:15:00"), "bad_timestamp", "offset"),
        (event(occurred_at="yesterday"), "bad_timestamp", "'yesterday'"),
        (event(occurred_at=1.5e12), "bad_timestamp", "a number"),
        (event(occurred_at=True), "bad_timestamp", "a boolean"),
        (event(occurred_at_ms=T), "bad_timestamp", "not both"),
        (event(occurred_at=..., occurred_at_ms="1772442900000"), "bad_timestamp", "integer"),
        (event(occurred_at=..., occurred_at_ms=False), "bad_timestamp", "integer"),
        (event(occurred_at=10**20), "bad_timestamp", "out of range"),
        (event(attributes=["tier", "VIP"]), "bad_type", "attributes"),
        (event(attributes={"tier": "VIP", "owner": {"id": 7}}), "bad_type", "'owner'"),
        (event(attributes={"tags": ["a", "b"]}), "bad_type", "'tags'"),
        (event(attributes={"": "x"}), "bad_type", "attribute names"),
        (event(attributes={"amount": float("nan")}), "bad_type", "'amount'"),
    ],
)
def test_rejects_with_a_reason(obj: object, reason: str, mentions: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(obj)
    assert caught.value.reason == reason
    assert mentions in caught.value.detail
    assert str(caught.value).startswith(f"{reason}: ")


def test_event_error_is_a_permanent_slaflow_error() -> None:
    assert issubclass(EventError, SlaflowError)
    assert EventError.retriable is False


def test_event_to_json_is_the_inverse() -> None:
    original = RecordEvent("e1", "case-42", "case", "created", T + 123, {"tier": "VIP", "amount": "5000.0"})
    as_json = event_to_json(original)
    assert as_json == {
        "event_id": "e1",
        "record_id": "case-42",
        "entity_type": "case",
        "kind": "created",
        "occurred_at": "2026-03-02T09:15:00.123Z",
        "attributes": {"tier": "VIP", "amount": "5000.0"},
    }
    assert parse_event(json.loads(json.dumps(as_json))) == original


@pytest.mark.parametrize(
    ("ms", "text"),
    [(0, "1970-01-01T00:00:00.000Z"), (-1, "1969-12-31T23:59:59.999Z"), (T, "2026-03-02T09:15:00.000Z")],
)
def test_format_instant_ms(ms: int, text: str) -> None:
    assert format_instant_ms(ms) == text
    assert parse_event(event(occurred_at=text)).occurred_at_ms == ms
