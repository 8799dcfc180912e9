"""Conditions on records and events, as written in policy files.

A condition is a mapping of *field* to *test*; every test must hold (AND). A
list of conditions holds when any of them does (OR). Fields are ``kind`` (the
event kind), ``entity_type``, or the name of an attribute of the record as of
the event (``tier``, ``status``, ``monthly_revenue``, custom fields).

Tests::

    tier: VIP                        # equal (numbers compare as numbers: 5000 == "5000.0")
    status: [new, assigned]          # one of
    status: {not: [closed, cancelled]}   # none of (a missing attribute is none of them)
    monthly_revenue: {gt: 5000}      # also gte, lt, lte; a missing or non-numeric value fails
    channel: {exists: true}          # present (false: absent)
    priority: {in: [high, urgent]}   # the same as a list

Examples: ``{entity_type: case, tier: VIP}``; ``[{kind: email_sent,
direction: outbound}, {kind: call_answered, direction: outbound}]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Literal

from streams.errors import Problem

Op = Literal["eq", "not", "gt", "gte", "lt", "lte", "exists"]
_COMPARISONS = ("gt", "gte", "lt", "lte")


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Test:
    """One test on one field: ``op`` with its operands (strings; numbers are compared as numbers)."""

    field: str
    op: Op
    values: frozenset[str] = frozenset()
    number: float = 0.0
    present: bool = True
    numbers: frozenset[float] = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        numbers = {n for n in (_number(v) for v in self.values) if n is not None}
        object.__setattr__(self, "numbers", frozenset(numbers))

    def holds(self, value: str | None) -> bool:
        """Whether the field's ``value`` (``None``: absent) passes."""
        if self.op == "exists":
            return (value is not None) is self.present
        if self.op in _COMPARISONS:
            number = _number(value)
            if number is None:
                return False
            if self.op == "gt":
                return number > self.number
            if self.op == "gte":
                return number >= self.number
            if self.op == "lt":
                return number < self.number
            return number <= self.number
        found = value is not None and (value in self.values or self._numerically_in(value))
        return found if self.op == "eq" else not found

    def _numerically_in(self, value: str) -> bool:
        if not self.numbers:
            return False
        number = _number(value)
        return number is not None and number in self.numbers


@dataclass(frozen=True, slots=True)
class Condition:
    """Every test holds (AND)."""

    tests: tuple[Test, ...]

    def holds(self, kind: str, entity_type: str, attributes: Mapping[str, str]) -> bool:
        """Whether an event of ``kind`` on a record (``entity_type``, ``attributes``) satisfies every test."""
        for test in self.tests:
            if test.field == "kind":
                value: str | None = kind
            elif test.field == "entity_type":
                value = entity_type
            else:
                value = attributes.get(test.field)
            if not test.holds(value):
                return False
        return True


@dataclass(frozen=True, slots=True)
class AnyOf:
    """Any of the conditions holds (OR). An empty ``AnyOf`` never holds.

    ``kinds`` (computed once) is the set of event kinds that can satisfy it when every condition names its
    kinds, so that the hot path rejects most events with one set lookup.
    """

    conditions: tuple[Condition, ...]
    kinds: frozenset[str] | None = dataclass_field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        kinds: set[str] | None = set()
        for condition in self.conditions:
            named = [t for t in condition.tests if t.field == "kind" and t.op == "eq"]
            if not named or kinds is None:
                kinds = None
                break
            kinds |= named[0].values
        object.__setattr__(self, "kinds", None if kinds is None else frozenset(kinds))

    def holds(self, kind: str, entity_type: str, attributes: Mapping[str, str]) -> bool:
        """Whether any condition holds for the event."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        for condition in self.conditions:  # noqa: SIM110 - a plain loop: this is the hot path, any() is slower
            if condition.holds(kind, entity_type, attributes):
                return True
        return False

    def fields(self) -> frozenset[str]:
        """Every field (attribute name, ``kind``, ``entity_type``) a test reads."""
        return frozenset(t.field for c in self.conditions for t in c.tests)


NEVER = AnyOf(())
"""The condition that never holds (an optional condition left out)."""


def always() -> AnyOf:
    """The condition that always holds (an empty mapping)."""
    return AnyOf((Condition(()),))


def _scalar(value: object) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _test(field: str, raw: object, path: str, problems: list[Problem]) -> Test | None:
    scalar = _scalar(raw)
    if scalar is not None:
        return Test(field, "eq", frozenset({scalar}))
    if isinstance(raw, list):
        values = [_scalar(v) for v in raw]
        if not raw or any(v is None for v in values):
            problems.append(Problem(path, f"expected a non-empty list of strings or numbers, got {raw!r}"))
            return None
        return Test(field, "eq", frozenset(v for v in values if v is not None))
    if isinstance(raw, Mapping) and len(raw) == 1:
        ((op, operand),) = raw.items()
        if op in ("in", "not"):
            inner = _test(field, operand if isinstance(operand, list) else [operand], f"{path}.{op}", problems)
            if inner is None:
                return None
            return Test(field, "eq" if op == "in" else "not", inner.values)
        if op in _COMPARISONS:
            number = _number(_scalar(operand))
            if number is None:
                problems.append(Problem(f"{path}.{op}", f"expected a number, got {operand!r}"))
                return None
            return Test(field, op, number=number)
        if op == "exists":
            if not isinstance(operand, bool):
                problems.append(Problem(f"{path}.exists", f"expected true or false, got {operand!r}"))
                return None
            return Test(field, "exists", present=operand)
    problems.append(
        Problem(
            path,
            "expected a value, a list of values, or one of {not: ...}, {in: [...]}, {gt|gte|lt|lte: number}, "
            f"{{exists: true|false}}; got {raw!r}",
        )
    )
    return None


def parse_condition(raw: object, path: str, problems: list[Problem]) -> AnyOf | None:
    """A condition (mapping) or a list of them (any), as :class:`AnyOf`; problems are appended, ``None`` if any."""
    before = len(problems)
    items = raw if isinstance(raw, list) else [raw]
    conditions = []
    for index, item in enumerate(items):
        where = f"{path}[{index}]" if isinstance(raw, list) else path
        if not isinstance(item, Mapping):
            problems.append(Problem(where, f"expected a mapping of field: test, got {item!r}"))
            continue
        tests = []
        for field, test_raw in item.items():
            test = _test(str(field), test_raw, f"{where}.{field}", problems)
            if test is not None:
                tests.append(test)
        conditions.append(Condition(tuple(tests)))
    if isinstance(raw, list) and not raw:
        problems.append(Problem(path, "expected at least one condition"))
    return None if len(problems) > before else AnyOf(tuple(conditions))
