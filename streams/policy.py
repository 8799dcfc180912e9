"""SLA policies: which targets apply to which records, read from a YAML file.

A policy file names a version (pinned onto every KPI when it starts) and an
ordered list of policies; the first policy whose ``applies_when`` matches a
record's attributes wins. Each policy lists its KPIs: the event kinds that
start, stop (success) and cancel the clock, the target and the warning point.

Example (``deploy/policies/default.yaml`` is a complete one)::

    version: "2026-11-01"
    policies:
      - name: vip
        applies_when: {entity_type: case, tier: VIP}
        kpis:
          - name: first_response
            target: 1h
            warning: 50%          # a share of the target, or a duration (30m)
            start_on: [created]
            stop_on: [first_response, resolved]
            cancel_on: [cancelled]

``warning`` is either a share of the target (``50%``: warn when half the target
has elapsed) or a duration (``30m``: warn when 30 minutes have elapsed).

Validation reports every problem at once, each with the file, the path inside
it and what was expected (:class:`streams.errors.PolicyError`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streams.errors import PolicyError, Problem

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def parse_duration_ms(text: object) -> int | None:
    """``"1h30m"``, ``"45s"``, ``"2d"``, ``"250ms"`` or a number of seconds, as milliseconds; ``None`` if not one."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return int(text * 1000) if text >= 0 else None
    if not isinstance(text, str):
        return None
    compact = text.replace(" ", "").lower()
    if not compact:
        return None
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_MS[match.group(2)]
        position = match.end()
    return int(total) if position == len(compact) else None


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """One promise of a policy: a clock started, stopped and cancelled by event kinds.

    ``target_ms`` is the time allowed, ``warning_ms`` the elapsed time at
    which to warn (``None``: no warning); both milliseconds.
    """

    name: str
    target_ms: int
    warning_ms: int | None
    start_on: frozenset[str]
    stop_on: frozenset[str]
    cancel_on: frozenset[str]


@dataclass(frozen=True, slots=True)
class Policy:
    """Targets for the records whose attributes match ``applies_when`` (all keys equal)."""

    name: str
    applies_when: Mapping[str, str]
    kpis: tuple[KpiSpec, ...]

    def applies_to(self, entity_type: str, attributes: Mapping[str, str]) -> bool:
        """Whether every condition holds (``entity_type`` is matched like an attribute)."""
        for key, wanted in self.applies_when.items():
            actual = entity_type if key == "entity_type" else attributes.get(key)
            if actual != wanted:
                return False
        return True


@dataclass(frozen=True, slots=True)
class PolicySet:
    """The policies of one file, in order, with the file's version."""

    version: str
    policies: tuple[Policy, ...]
    source: str = "<memory>"

    def select(self, entity_type: str, attributes: Mapping[str, str]) -> Policy | None:
        """The first policy that applies, or ``None``."""
        for policy in self.policies:
            if policy.applies_to(entity_type, attributes):
                return policy
        return None


def load_policies(path: str | Path) -> PolicySet:
    """Read and validate a policy file; raise :class:`PolicyError` listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [Problem("(file)", f"cannot be read: {exc.strerror or exc}")]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(source, [Problem("(file)", f"is not valid YAML: {exc}")]) from exc
    return parse_policies(data, source)


def parse_policies(data: object, source: str = "<memory>") -> PolicySet:
    """Validate YAML-shaped ``data`` into a :class:`PolicySet`; ``source`` names it in errors."""
    problems: list[Problem] = []
    if not isinstance(data, Mapping):
        raise PolicyError(
            source, [Problem("(top)", f"expected a mapping with 'version' and 'policies', got {_kind(data)}")]
        )
    _unknown_keys(data, {"version", "policies"}, "", problems)
    version = data.get("version")
    if not isinstance(version, str | int) or isinstance(version, bool) or str(version) == "":
        problems.append(Problem("version", f'expected a version string, e.g. "2026-11-01", got {_kind(version)}'))
    raw_policies = data.get("policies")
    policies: list[Policy] = []
    if not isinstance(raw_policies, list) or not raw_policies:
        problems.append(Problem("policies", f"expected a non-empty list of policies, got {_kind(raw_policies)}"))
    else:
        names: set[str] = set()
        for index, raw in enumerate(raw_policies):
            policy = _parse_policy(raw, f"policies[{index}]", problems)
            if policy is None:
                continue
            if policy.name in names:
                problems.append(Problem(f"policies[{index}].name", f"duplicate policy name {policy.name!r}"))
            names.add(policy.name)
            policies.append(policy)
    if problems:
        raise PolicyError(source, problems)
    return PolicySet(version=str(version), policies=tuple(policies), source=source)


def _parse_policy(raw: object, path: str, problems: list[Problem]) -> Policy | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, f"expected a mapping with name, applies_when and kpis, got {_kind(raw)}"))
        return None
    before = len(problems)
    _unknown_keys(raw, {"name", "applies_when", "kpis"}, path, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{path}.name", f"expected a non-empty string, got {_kind(name)}"))
    applies_when = raw.get("applies_when", {})
    conditions: dict[str, str] = {}
    if not isinstance(applies_when, Mapping):
        problems.append(
            Problem(f"{path}.applies_when", f"expected a mapping of attribute: value, got {_kind(applies_when)}")
        )
    else:
        for key, value in applies_when.items():
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                problems.append(
                    Problem(f"{path}.applies_when.{key}", f"expected a string or number, got {_kind(value)}")
                )
            else:
                conditions[str(key)] = str(value)
    raw_kpis = raw.get("kpis")
    kpis: list[KpiSpec] = []
    if not isinstance(raw_kpis, list) or not raw_kpis:
        problems.append(Problem(f"{path}.kpis", f"expected a non-empty list of KPIs, got {_kind(raw_kpis)}"))
    else:
        for index, raw_kpi in enumerate(raw_kpis):
            kpi = _parse_kpi(raw_kpi, f"{path}.kpis[{index}]", problems)
            if kpi is not None:
                kpis.append(kpi)
    if len(problems) > before:
        return None
    assert isinstance(name, str)
    return Policy(name=name, applies_when=conditions, kpis=tuple(kpis))


def _parse_kpi(raw: object, path: str, problems: list[Problem]) -> KpiSpec | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, f"expected a mapping with name, target, start_on and stop_on, got {_kind(raw)}"))
        return None
    before = len(problems)
    _unknown_keys(raw, {"name", "target", "warning", "start_on", "stop_on", "cancel_on"}, path, problems)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{path}.name", f"expected a non-empty string, got {_kind(name)}"))
    target_ms = parse_duration_ms(raw.get("target"))
    if not target_ms:
        problems.append(
            Problem(
                f"{path}.target", f"expected a positive duration such as 1h, 30m, 2d, got {_kind(raw.get('target'))}"
            )
        )
    warning_ms = _parse_warning(raw.get("warning"), target_ms, f"{path}.warning", problems)
    start_on = _kinds(raw.get("start_on"), f"{path}.start_on", problems, required=True)
    stop_on = _kinds(raw.get("stop_on"), f"{path}.stop_on", problems, required=True)
    cancel_on = _kinds(raw.get("cancel_on", []), f"{path}.cancel_on", problems, required=False)
    if len(problems) > before:
        return None
    assert isinstance(name, str) and target_ms
    return KpiSpec(name, target_ms, warning_ms, start_on, stop_on, cancel_on)


def _parse_warning(raw: object, target_ms: int | None, path: str, problems: list[Problem]) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            share = float(raw.strip()[:-1])
        except ValueError:
            share = -1.0
        if not 0 < share < 100:
            problems.append(Problem(path, f"expected a share of the target between 0% and 100%, got {raw!r}"))
            return None
        return int(target_ms * share / 100) if target_ms else None
    warning_ms = parse_duration_ms(raw)
    if not warning_ms:
        problems.append(Problem(path, f"expected a share of the target (50%) or a duration (30m), got {_kind(raw)}"))
        return None
    if target_ms and warning_ms >= target_ms:
        problems.append(Problem(path, f"expected a warning point before the target, got {raw!r}"))
        return None
    return warning_ms


def _kinds(raw: object, path: str, problems: list[Problem], *, required: bool) -> frozenset[str]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or (required and not raw) or not all(isinstance(k, str) and k for k in raw):
        problems.append(Problem(path, f"expected a list of event kinds such as [created], got {_kind(raw)}"))
        return frozenset()
    return frozenset(raw)


def _unknown_keys(raw: Mapping[Any, Any], allowed: set[str], path: str, problems: list[Problem]) -> None:
    for key in raw:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.append(Problem(where, f"unknown key; expected one of {', '.join(sorted(allowed))}"))


def _kind(value: object) -> str:
    """How a value is shown in an error: its repr when short, else its type."""
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


__all__: Sequence[str] = ("KpiSpec", "Policy", "PolicySet", "load_policies", "parse_duration_ms", "parse_policies")
