"""SLA policies: which promises apply to which records, and how their clocks behave.

This module holds the policy *model* (immutable dataclasses that the SLA core
reads) and the loader of policy files (YAML), which validates a file and
reports every problem at once with the file, the path inside it and what was
expected (:class:`streams.errors.PolicyError`). The file format is documented
in ``docs/policies.md``; ``deploy/policies/default.yaml`` is a complete example.

Units: every duration is milliseconds (``*_ms``); targets, warning points and
escalation offsets are *business* milliseconds on the KPI's calendar.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal

import yaml

from streams.calendar import PRESET_NAMES, BusinessCalendar, parse_calendar, preset
from streams.conditions import NEVER, AnyOf, Condition, Test, always, parse_condition
from streams.errors import PolicyError, Problem

ActionType = Literal["notify", "raise_priority", "reassign", "set"]
ReopenMode = Literal["resume", "restart", "ignore"]
Unmatched = Literal["ignore", "reject"]


DEFAULT_MAX_LATENESS_MS: Final = 3_600_000
"""``lateness.max`` when the file does not set it: one hour."""


@dataclass(frozen=True, slots=True)
class Action:
    """Something the CRM should do when a KPI crosses a threshold; slaflow emits it, the CRM performs it.

    - ``notify``: tell ``targets`` (roles: ``owner``, ``supervisor``, ``director``,
      ``customer``, ``team``; or people: ``user:<id>``), with an optional message
      ``template`` (``case_created``, ``apology``, ...).
    - ``raise_priority``: set the record's priority to ``value`` (``high``), or
      raise it one step with ``+1``.
    - ``reassign``: move the record to the queue (or ``user:<id>``) ``value``.
    - ``set``: set attribute ``targets[0]`` to ``value``.

    slaflow does not change the record itself: the CRM applies the action and
    its next event (``priority_changed``, ``assigned``) tells slaflow, which
    then re-targets the KPIs. That keeps the CRM the one system of record.
    """

    type: ActionType
    targets: tuple[str, ...] = ()
    value: str = ""
    template: str = ""

    def to_json(self) -> dict[str, Any]:
        """The action as outputs carry it (JSON lines and the Avro ``Action`` record alike)."""
        return {"type": self.type, "targets": list(self.targets), "value": self.value, "template": self.template}


@dataclass(frozen=True, slots=True)
class Escalation:
    """Escalation level ``level`` (1, 2, ...): fires ``after_ms`` business ms after the deadline passed."""

    level: int
    after_ms: int
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True, slots=True)
class KpiSpec:
    """One promise: a clock started, paused, resumed, stopped and cancelled by events.

    Conditions are tested against each event (its kind) and the record's
    attributes *after* the event. ``stop`` means the KPI is met (success, or
    late success after a breach). A ``cancel`` ends it with no verdict.
    ``start_from`` names an attribute holding the instant the clock really
    started (UTC epoch ms, or ISO 8601), for a KPI attached after the fact
    (a retroactive start). ``recurring`` KPIs start a new instance at every
    start event after the previous one ended (next reply each time the
    customer writes again). ``on_reopen`` says what a ``reopened`` event does to
    a KPI that ended: ``resume`` continues its clock from the business time it
    had used, ``restart`` starts a new instance, ``ignore`` leaves it ended.
    ``pause_reason`` names the attribute whose value is recorded as the reason
    of each pause (default ``status``; the event kind if the attribute is absent).
    """

    name: str
    target_ms: int
    calendar: BusinessCalendar
    start: AnyOf
    stop: AnyOf
    warning_ms: int | None = None
    pause: AnyOf = NEVER
    resume: AnyOf = NEVER
    cancel: AnyOf = NEVER
    reopen: AnyOf = NEVER
    on_reopen: ReopenMode = "resume"
    recurring: bool = False
    start_from: str | None = None
    pause_reason: str = "status"
    on_start: tuple[Action, ...] = ()
    on_warning: tuple[Action, ...] = ()
    on_breach: tuple[Action, ...] = ()
    on_success: tuple[Action, ...] = ()
    on_cancel: tuple[Action, ...] = ()
    on_pause: tuple[Action, ...] = ()
    on_resume: tuple[Action, ...] = ()
    escalations: tuple[Escalation, ...] = ()


@dataclass(frozen=True, slots=True)
class Policy:
    """The KPIs of the records whose attributes satisfy ``applies_when``."""

    name: str
    applies_when: AnyOf
    kpis: tuple[KpiSpec, ...]

    def kpi(self, name: str) -> KpiSpec | None:
        """The KPI called ``name``, or ``None``."""
        for spec in self.kpis:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True, slots=True)
class PolicySet:
    """One policy file: its version, calendars and policies in order (the first that applies wins).

    ``allowed_lateness_ms``: how long past a threshold the core waits for
    stragglers before firing it (0: fire as soon as the watermark passes).
    ``max_lateness_ms``: an event older than the watermark minus this is
    rejected (reason ``late``). ``unmatched``: what to do with a record that no
    policy covers: ``ignore`` it (no KPI), or ``reject`` its events (dead letters).
    """

    version: str
    policies: tuple[Policy, ...]
    calendars: Mapping[str, BusinessCalendar] = field(default_factory=dict)
    allowed_lateness_ms: int = 0
    max_lateness_ms: int = DEFAULT_MAX_LATENESS_MS
    unmatched: Unmatched = "ignore"
    source: str = "<memory>"

    def select(self, entity_type: str, attributes: Mapping[str, str]) -> Policy | None:
        """The first policy whose ``applies_when`` holds for the record, or ``None``."""
        for policy in self.policies:
            if policy.applies_when.holds("", entity_type, attributes):
                return policy
        return None

    def policy(self, name: str) -> Policy | None:
        """The policy called ``name``, or ``None``."""
        for policy in self.policies:
            if policy.name == name:
                return policy
        return None


# ---------------------------------------------------------------------------------------------------------------
# Durations

_DURATION_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(bd|ms|d|h|m|s)")
_BUSINESS_DAY_WORDS: Final = re.compile(r"business\s*days?")
_UNIT_MS: Final = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True, slots=True)
class _Duration:
    """A duration as written: plain milliseconds plus business days (resolved on a calendar)."""

    ms: int
    business_days: float = 0.0

    @property
    def is_zero(self) -> bool:
        return self.ms == 0 and self.business_days == 0

    def resolve(self, calendar: BusinessCalendar) -> int:
        """Business milliseconds on ``calendar``."""
        if not self.business_days:
            return self.ms
        return self.ms + round(self.business_days * business_day_ms(calendar))

    def resolve_on(self, calendar: BusinessCalendar | None) -> int | None:
        """Business milliseconds on ``calendar``; ``None`` if it takes business days and there is no calendar."""
        if calendar is None:
            return None if self.business_days else self.ms
        return self.resolve(calendar)


def _parse_duration(text: object) -> _Duration | None:
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        if not math.isfinite(text) or text < 0:
            return None
        return _Duration(round(text * 1000))
    if not isinstance(text, str):
        return None
    compact = "".join(_BUSINESS_DAY_WORDS.sub("bd", text.lower()).split())
    if not compact:
        return None
    ms, business_days, position = 0.0, 0.0, 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            return None
        amount, unit = float(match.group(1)), match.group(2)
        if unit == "bd":
            business_days += amount
        else:
            ms += amount * _UNIT_MS[unit]
        position = match.end()
    if position != len(compact):
        return None
    return _Duration(round(ms), business_days)


def parse_duration_ms(text: object) -> int | None:
    """``"250ms"``, ``"45s"``, ``"30m"``, ``"1h30m"``, ``"2d"`` or a number of seconds, as milliseconds.

    ``None`` if ``text`` is not such a duration (negative numbers, unknown units, ``True``). Business days
    (``"1bd"``, ``"5 business days"``) also give ``None`` here: their length depends on a calendar, so only
    the policy loader resolves them (see :func:`business_day_ms`).
    """
    duration = _parse_duration(text)
    if duration is None or duration.business_days:
        return None
    return duration.ms


def business_day_ms(calendar: BusinessCalendar) -> int:
    """The length of one business day on ``calendar``: its weekly business time over its working weekdays.

    8/5 gives 8 h, 24/5 and 24/7 give 24 h; a calendar open 09:00-17:00 Monday to Friday and 09:00-13:00 on
    Saturday gives (40 h + 4 h) / 6.
    """
    working_days = sum(1 for day in calendar.hours if day)
    return calendar.week_ms // max(working_days, 1)


def format_duration_ms(ms: int) -> str:
    """``5_400_000`` as ``"1h30m"``: a duration as the policy files write it (for messages and displays)."""
    if ms == 0:
        return "0s"
    parts = []
    for unit, size in sorted(_UNIT_MS.items(), key=lambda item: -item[1]):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# ---------------------------------------------------------------------------------------------------------------
# Loading policy files

NOTIFY_ROLES: Final = ("owner", "supervisor", "director", "customer", "team")
"""The roles a ``notify`` action can name (besides people: ``user:<id>``)."""

DEFAULT_CALENDAR: Final = "24/7"
"""The preset (in UTC) of a KPI for which neither the KPI nor its policy names a calendar."""

_TOP_KEYS: Final = ("version", "lateness", "unmatched", "calendars", "policies")
_LATENESS_KEYS: Final = ("allowed", "max")
_POLICY_KEYS: Final = ("name", "applies_when", "calendar", "kpis")
_ACTION_LISTS: Final = ("on_start", "on_warning", "on_breach", "on_success", "on_cancel", "on_pause", "on_resume")
_KPI_KEYS: Final = (
    "name",
    "target",
    "warning",
    "calendar",
    "start",
    "stop",
    "pause",
    "resume",
    "cancel",
    "reopen",
    "on_reopen",
    "recurring",
    "start_from",
    "pause_reason",
    *_ACTION_LISTS,
    "escalations",
)
_ESCALATION_KEYS: Final = ("after", "actions")
_ACTION_TYPES: Final = ("notify", "raise_priority", "reassign", "set")
_ACTION_KEYS: Final = (*_ACTION_TYPES, "template")
_REOPEN_MODES: Final = ("resume", "restart", "ignore")
_UNMATCHED: Final = ("ignore", "reject")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]+")
_USER_RE: Final = re.compile(r"user:\S+")
_REOPENED: Final = AnyOf((Condition((Test("kind", "eq", frozenset({"reopened"})),)),))
_DURATION_EXAMPLES: Final = "such as 45s, 30m, 1h30m, 2d or 1bd"
_MERGE_TAG: Final = "tag:yaml.org,2002:merge"


class _TextDatesLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that dates and times stay text: PyYAML turns an impossible date
    (``2026-13-01``, ``2026-02-30``) into a traceback of its own, and the reader checks dates itself, naming the
    file, the path and what was expected."""


_TextDatesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_policies(path: str | Path) -> PolicySet:
    """Read and validate the policy file at ``path``.

    Raises :class:`PolicyError` listing every problem found: an unreadable file or invalid YAML on path
    ``(file)``, everything else on its dotted path inside the file (``policies[2].kpis[0].target``).
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [Problem("(file)", f"cannot be read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise PolicyError(source, [Problem("(file)", f"is not UTF-8 text: {exc}")]) from exc
    try:
        data = yaml.load(text, Loader=_TextDatesLoader)
        duplicates: list[Problem] = []
        _find_duplicate_keys(yaml.compose(text, Loader=_TextDatesLoader), "", duplicates, set())
    except yaml.YAMLError as exc:
        raise PolicyError(source, [Problem("(file)", f"is not valid YAML: {_yaml_error(exc)}")]) from exc
    return _parse(data, source, duplicates)


def parse_policies(data: object, source: str = "<memory>") -> PolicySet:
    """Validate YAML-shaped ``data`` (as :func:`yaml.safe_load` returns it) into a :class:`PolicySet`.

    ``source`` names the data in errors. Raises :class:`PolicyError` listing every problem found.
    """
    return _parse(data, source, [])


def _parse(data: object, source: str, problems: list[Problem]) -> PolicySet:
    reader = _Reader(problems)
    policy_set = reader.policy_set(data, source)
    if problems or policy_set is None:
        raise PolicyError(source, problems)
    return policy_set


def _yaml_error(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = f" ({exc.context})" if exc.context else ""
        return f"{exc.problem}{context} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _find_duplicate_keys(node: yaml.Node | None, path: str, problems: list[Problem], seen: set[int]) -> None:
    """YAML silently keeps the last of two equal keys; report the second one instead."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            where = _join(path, key_node.value)
            line = key_node.start_mark.line + 1
            identity = (key_node.tag, key_node.value)
            if identity in first:
                problems.append(
                    Problem(where, f"duplicate key on line {line} (first on line {first[identity]}); give it once")
                )
            else:
                first[identity] = line
            _find_duplicate_keys(value_node, where, problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _find_duplicate_keys(item, f"{path}[{index}]", problems, seen)


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _shown(value: object) -> str:
    """How a found value is shown in a message: its repr when short, else its type."""
    if value is None:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def _scalar_text(value: object) -> str | None:
    """A YAML scalar as text (``True`` as ``true``, a date as ``2026-12-25``); ``None`` for anything else."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return None


class _Reader:
    """Reads one policy file, collecting every problem instead of stopping at the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.calendars: dict[str, BusinessCalendar] = {}
        self.broken_calendars: set[str] = set()
        self.presets: dict[str, BusinessCalendar] = {}

    def add(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    def unknown_keys(self, raw: Mapping[object, object], allowed: Sequence[str], path: str) -> None:
        for key in raw:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.add(_join(path, key), f"unknown key {key!r}{hint}; expected one of: {', '.join(allowed)}")

    def mapping(self, raw: object, path: str, expected: str) -> Mapping[object, object] | None:
        if isinstance(raw, Mapping):
            return raw
        self.add(path, f"expected {expected}, got {_shown(raw)}")
        return None

    # -- top level ------------------------------------------------------------------------------------------------

    def policy_set(self, data: object, source: str) -> PolicySet | None:
        if data is None:
            self.add("(top)", "expected a mapping with version and policies, got nothing (an empty document)")
            return None
        top = self.mapping(data, "(top)", "a mapping with version and policies")
        if top is None:
            return None
        self.unknown_keys(top, _TOP_KEYS, "")
        version = self.version(top.get("version"))
        allowed_ms, max_ms = self.lateness(top.get("lateness"))
        unmatched = self.choice(top.get("unmatched"), _UNMATCHED, "unmatched", "ignore")
        self.read_calendars(top.get("calendars"))
        policies = self.policies(top.get("policies"))
        if self.problems or version is None or policies is None:
            return None
        return PolicySet(
            version=version,
            policies=policies,
            calendars=dict(self.calendars),
            allowed_lateness_ms=allowed_ms,
            max_lateness_ms=max_ms,
            unmatched="reject" if unmatched == "reject" else "ignore",
            source=source,
        )

    def version(self, raw: object) -> str | None:
        if isinstance(raw, str) and raw.strip():
            return raw.strip()
        if isinstance(raw, int | float | date) and not isinstance(raw, bool | datetime):
            return _scalar_text(raw)
        self.add("version", f'required: a version string such as "2026-11-22", got {_shown(raw)}')
        return None

    def lateness(self, raw: object) -> tuple[int, int]:
        allowed_ms, max_ms = 0, DEFAULT_MAX_LATENESS_MS
        if raw is None:
            return allowed_ms, max_ms
        lateness = self.mapping(raw, "lateness", "a mapping with allowed and max (durations)")
        if lateness is None:
            return allowed_ms, max_ms
        self.unknown_keys(lateness, _LATENESS_KEYS, "lateness")
        allowed = self.plain_duration(lateness.get("allowed"), "lateness.allowed")
        maximum = self.plain_duration(lateness.get("max"), "lateness.max")
        allowed_ms = allowed if allowed is not None else 0
        max_ms = maximum if maximum is not None else DEFAULT_MAX_LATENESS_MS
        if allowed is not None and (maximum is not None or lateness.get("max") is None) and max_ms < allowed_ms:
            default = "" if maximum is not None else " (the default)"
            self.add(
                "lateness.max",
                f"expected at least lateness.allowed ({format_duration_ms(allowed_ms)}): an event is only rejected "
                f"as late once the allowed lateness has passed; got {format_duration_ms(max_ms)}{default}",
            )
        return allowed_ms, max_ms

    def plain_duration(self, raw: object, path: str) -> int | None:
        """An optional wall-clock duration (no business days: there is no calendar here)."""
        if raw is None:
            return None
        duration = _parse_duration(raw)
        if duration is None or duration.business_days:
            self.add(path, f"expected a duration such as 0s, 30s, 5m or 1h (not business days), got {_shown(raw)}")
            return None
        return duration.ms

    def choice(self, raw: object, choices: Sequence[str], path: str, default: str) -> str:
        if raw is None:
            return default
        if raw in choices:
            return str(raw)
        self.add(path, f"expected one of {', '.join(choices)}, got {_shown(raw)}")
        return default

    def read_calendars(self, raw: object) -> None:
        if raw is None:
            return
        calendars = self.mapping(raw, "calendars", "a mapping of calendar name to calendar")
        if calendars is None:
            return
        for name, definition in calendars.items():
            path = _join("calendars", name)
            if not isinstance(name, str) or not name.strip():
                self.add(path, f"expected a calendar name (a string), got {_shown(name)}")
                continue
            calendar = parse_calendar(name, definition, path, self.problems)
            if calendar is None:
                self.broken_calendars.add(name)
            else:
                self.calendars[name] = calendar

    def calendar_ref(self, raw: object, path: str) -> BusinessCalendar | None:
        """The calendar a ``calendar:`` key names; ``None`` if it names none (a problem) or a broken one."""
        if isinstance(raw, str) and raw in self.calendars:
            return self.calendars[raw]
        if isinstance(raw, str) and raw in self.broken_calendars:
            return None  # its own problems are already reported
        if isinstance(raw, str) and raw in PRESET_NAMES:
            return self.preset(raw)
        names = [*self.calendars, *sorted(self.broken_calendars)]
        defined = ", ".join(map(repr, names)) or "none defined"
        presets = ", ".join(map(repr, PRESET_NAMES))
        close = difflib.get_close_matches(str(raw), [*names, *PRESET_NAMES], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        self.add(
            path,
            f"expected the name of a calendar under calendars ({defined}) or a preset ({presets}), got "
            f"{_shown(raw)}{hint}",
        )
        return None

    def preset(self, name: str) -> BusinessCalendar:
        """One shared instance per preset (in UTC), so that its caches are shared by the KPIs that use it."""
        if name not in self.presets:
            self.presets[name] = preset(name, "UTC")
        return self.presets[name]

    # -- policies -------------------------------------------------------------------------------------------------

    def policies(self, raw: object) -> tuple[Policy, ...] | None:
        if not isinstance(raw, list) or not raw:
            self.add("policies", f"required: a non-empty list of policies, got {_shown(raw)}")
            return None
        policies: list[Policy] = []
        names: dict[str, int] = {}
        catch_all: tuple[int, str] | None = None
        for index, item in enumerate(raw):
            path = f"policies[{index}]"
            if catch_all is not None:
                where, who = catch_all
                self.add(
                    path,
                    f"never selected: policies[{where}] ({who}) applies to every record and comes first "
                    "(the first policy that applies wins); move the catch-all policy to the end",
                )
            applies_when, policy = self.policy(item, path)
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and name:
                if name in names:
                    self.add(f"{path}.name", f"duplicate policy name {name!r} (first at policies[{names[name]}])")
                else:
                    names[name] = index
            if catch_all is None and applies_when is not None and any(not c.tests for c in applies_when.conditions):
                catch_all = (index, repr(name) if isinstance(name, str) else "unnamed")
            if policy is not None:
                policies.append(policy)
        return tuple(policies)

    def policy(self, raw: object, path: str) -> tuple[AnyOf | None, Policy | None]:
        policy = self.mapping(raw, path, "a mapping with name, applies_when, calendar and kpis")
        if policy is None:
            return None, None
        before = len(self.problems)
        self.unknown_keys(policy, _POLICY_KEYS, path)
        name = self.name(policy.get("name"), f"{path}.name")
        applies_when = self.applies_when(policy.get("applies_when"), f"{path}.applies_when")
        default_calendar: BusinessCalendar | None = self.preset(DEFAULT_CALENDAR)
        policy_calendar_given = policy.get("calendar") is not None
        if policy_calendar_given:
            default_calendar = self.calendar_ref(policy.get("calendar"), f"{path}.calendar")
        kpis = self.kpis(policy.get("kpis"), f"{path}.kpis", default_calendar, policy_calendar_given)
        if len(self.problems) > before or name is None or applies_when is None or kpis is None:
            return applies_when, None
        return applies_when, Policy(name=name, applies_when=applies_when, kpis=kpis)

    def name(self, raw: object, path: str) -> str | None:
        if isinstance(raw, str) and _NAME_RE.fullmatch(raw):
            return raw
        self.add(
            path,
            "required: a name of letters, digits, '_', '-' or '.' (it appears in alert ids and metrics), "
            f"got {_shown(raw)}",
        )
        return None

    def applies_when(self, raw: object, path: str) -> AnyOf | None:
        if raw is None:
            return always()
        before = len(self.problems)
        condition = parse_condition(raw, path, self.problems)
        items = raw if isinstance(raw, list) else [raw]
        for index, item in enumerate(items):
            if isinstance(item, Mapping) and "kind" in item:
                where = f"{path}[{index}]" if isinstance(raw, list) else path
                self.add(
                    f"{where}.kind",
                    "kind is not allowed in applies_when: a policy is chosen from the record (entity_type and "
                    "attributes), not from one event; test event kinds in a KPI's start, stop, pause, ...",
                )
        return condition if len(self.problems) == before else None

    # -- KPIs -----------------------------------------------------------------------------------------------------

    def kpis(
        self, raw: object, path: str, default_calendar: BusinessCalendar | None, default_given: bool
    ) -> tuple[KpiSpec, ...] | None:
        if not isinstance(raw, list) or not raw:
            self.add(path, f"required: a non-empty list of KPIs, got {_shown(raw)}")
            return None
        kpis: list[KpiSpec] = []
        names: dict[str, int] = {}
        for index, item in enumerate(raw):
            where = f"{path}[{index}]"
            name = item.get("name") if isinstance(item, Mapping) else None
            if isinstance(name, str) and name:
                if name in names:
                    self.add(
                        f"{where}.name", f"duplicate KPI name {name!r} in this policy (first at kpis[{names[name]}])"
                    )
                else:
                    names[name] = index
            kpi = self.kpi(item, where, default_calendar, default_given)
            if kpi is not None:
                kpis.append(kpi)
        return tuple(kpis)

    def kpi(
        self, raw: object, path: str, default_calendar: BusinessCalendar | None, default_given: bool
    ) -> KpiSpec | None:
        kpi = self.mapping(raw, path, "a mapping with name, target, start and stop")
        if kpi is None:
            return None
        before = len(self.problems)
        self.unknown_keys(kpi, _KPI_KEYS, path)
        name = self.name(kpi.get("name"), f"{path}.name")

        calendar = default_calendar  # None: unusable, already reported
        if kpi.get("calendar") is not None:
            calendar = self.calendar_ref(kpi.get("calendar"), f"{path}.calendar")
        elif not default_given:
            calendar = self.preset(DEFAULT_CALENDAR)

        target_ms = self.target(kpi.get("target"), f"{path}.target", calendar)
        warning_ms = self.warning(kpi.get("warning"), f"{path}.warning", calendar, target_ms)

        start = self.condition(kpi, "start", path, required=True)
        stop = self.condition(kpi, "stop", path, required=True)
        pause = self.condition(kpi, "pause", path)
        resume = self.condition(kpi, "resume", path)
        if kpi.get("pause") is not None and kpi.get("resume") is None:
            self.add(
                f"{path}.resume",
                "required when pause is given: the condition that restarts the clock, such as "
                "{kind: status_changed, status: {not: [waiting_for_customer]}}; got nothing",
            )
        if kpi.get("resume") is not None and kpi.get("pause") is None:
            self.add(f"{path}.resume", "given without pause: the clock never pauses, so it would never resume")
        cancel = self.condition(kpi, "cancel", path)
        reopen = self.condition(kpi, "reopen", path, default=_REOPENED)
        on_reopen = self.choice(kpi.get("on_reopen"), _REOPEN_MODES, f"{path}.on_reopen", "resume")
        recurring = self.flag(kpi.get("recurring"), f"{path}.recurring")
        start_from = self.attribute(kpi.get("start_from"), f"{path}.start_from")
        pause_reason = self.attribute(kpi.get("pause_reason"), f"{path}.pause_reason") or "status"
        actions = {key: self.actions(kpi.get(key), f"{path}.{key}") for key in _ACTION_LISTS}
        escalations = self.escalations(kpi.get("escalations"), f"{path}.escalations", calendar)

        if (
            len(self.problems) > before
            or name is None
            or calendar is None
            or target_ms is None
            or start is None
            or stop is None
            or pause is None
            or resume is None
            or cancel is None
            or reopen is None
            or escalations is None
        ):
            return None
        return KpiSpec(
            name=name,
            target_ms=target_ms,
            calendar=calendar,
            start=start,
            stop=stop,
            warning_ms=warning_ms,
            pause=pause,
            resume=resume,
            cancel=cancel,
            reopen=reopen,
            on_reopen="restart" if on_reopen == "restart" else "ignore" if on_reopen == "ignore" else "resume",
            recurring=recurring,
            start_from=start_from,
            pause_reason=pause_reason,
            on_start=actions["on_start"],
            on_warning=actions["on_warning"],
            on_breach=actions["on_breach"],
            on_success=actions["on_success"],
            on_cancel=actions["on_cancel"],
            on_pause=actions["on_pause"],
            on_resume=actions["on_resume"],
            escalations=escalations,
        )

    def duration(self, raw: object, path: str, what: str) -> _Duration | None:
        duration = _parse_duration(raw)
        if duration is None:
            self.add(path, f"expected {what} {_DURATION_EXAMPLES}, got {_shown(raw)}")
        return duration

    def target(self, raw: object, path: str, calendar: BusinessCalendar | None) -> int | None:
        if raw is None:
            self.add(path, f"required: a positive duration {_DURATION_EXAMPLES}, got nothing")
            return None
        duration = self.duration(raw, path, "a positive duration")
        if duration is None:
            return None
        if duration.is_zero:
            self.add(path, f"expected a positive duration {_DURATION_EXAMPLES}, got {_shown(raw)}")
            return None
        return duration.resolve_on(calendar)

    def warning(self, raw: object, path: str, calendar: BusinessCalendar | None, target_ms: int | None) -> int | None:
        if raw is None:
            return None
        if isinstance(raw, str) and raw.strip().endswith("%"):
            try:
                share = float(raw.strip()[:-1])
            except ValueError:
                share = math.nan
            if not 0 < share < 100:
                self.add(path, f"expected a share of the target between 0% and 100% (exclusive), got {raw!r}")
                return None
            return None if target_ms is None else max(1, round(target_ms * share / 100))
        duration = _parse_duration(raw)
        if duration is None or duration.is_zero:
            self.add(path, f"expected a share of the target (50%) or a positive duration (30m, 1bd), got {_shown(raw)}")
            return None
        warning_ms = duration.resolve_on(calendar)
        if warning_ms is None:
            return None
        if target_ms is not None and warning_ms >= target_ms:
            self.add(
                path,
                f"expected a warning point before the target ({format_duration_ms(target_ms)}), "
                f"got {_shown(raw)} ({format_duration_ms(warning_ms)})",
            )
            return None
        return warning_ms

    def condition(
        self, kpi: Mapping[object, object], key: str, path: str, *, required: bool = False, default: AnyOf = NEVER
    ) -> AnyOf | None:
        raw = kpi.get(key)
        if raw is None:
            if required:
                self.add(f"{path}.{key}", "required: a condition such as {kind: created}; got nothing")
                return None
            return default
        return parse_condition(raw, f"{path}.{key}", self.problems)

    def flag(self, raw: object, path: str) -> bool:
        if raw is None:
            return False
        if isinstance(raw, bool):
            return raw
        self.add(path, f"expected true or false, got {_shown(raw)}")
        return False

    def attribute(self, raw: object, path: str) -> str | None:
        if raw is None:
            return None
        if isinstance(raw, str) and raw.strip():
            return raw.strip()
        self.add(path, f"expected an attribute name, got {_shown(raw)}")
        return None

    # -- escalations and actions ----------------------------------------------------------------------------------

    def escalations(self, raw: object, path: str, calendar: BusinessCalendar | None) -> tuple[Escalation, ...] | None:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.add(path, f"expected a list of escalation levels ({{after, actions}}), got {_shown(raw)}")
            return None
        before = len(self.problems)
        levels: list[Escalation] = []
        previous: tuple[int, int] | None = None  # (index, after_ms) of the last level with a known offset
        for index, item in enumerate(raw):
            where = f"{path}[{index}]"
            escalation = self.mapping(item, where, "a mapping with after and actions")
            if escalation is None:
                continue
            self.unknown_keys(escalation, _ESCALATION_KEYS, where)
            after_raw = escalation.get("after")
            after_ms: int | None = None
            if after_raw is None:
                self.add(f"{where}.after", f"required: business time after the deadline, {_DURATION_EXAMPLES}")
            else:
                duration = self.duration(after_raw, f"{where}.after", "a duration (0s: at the deadline)")
                if duration is not None:
                    after_ms = duration.resolve_on(calendar)
            if after_ms is not None:
                if previous is not None and after_ms < previous[1]:
                    self.add(
                        f"{where}.after",
                        f"expected at least {format_duration_ms(previous[1])} (escalations[{previous[0]}].after): "
                        f"levels fire in file order, so their offsets must not decrease; got {_shown(after_raw)}",
                    )
                previous = (index, after_ms)
            actions_raw = escalation.get("actions")
            if not isinstance(actions_raw, list) or not actions_raw:
                self.add(f"{where}.actions", f"required: a non-empty list of actions, got {_shown(actions_raw)}")
                actions: tuple[Action, ...] = ()
            else:
                actions = self.actions(actions_raw, f"{where}.actions")
            if after_ms is not None:
                levels.append(Escalation(level=index + 1, after_ms=after_ms, actions=actions))
        return tuple(levels) if len(self.problems) == before else None

    def actions(self, raw: object, path: str) -> tuple[Action, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.add(path, f"expected a list of actions such as [{{notify: owner}}], got {_shown(raw)}")
            return ()
        actions = [self.action(item, f"{path}[{index}]") for index, item in enumerate(raw)]
        return tuple(action for action in actions if action is not None)

    def action(self, raw: object, path: str) -> Action | None:
        action = self.mapping(raw, path, f"an action: a mapping with one of {', '.join(_ACTION_TYPES)}")
        if action is None:
            return None
        before = len(self.problems)
        self.unknown_keys(action, _ACTION_KEYS, path)
        template = ""
        if "template" in action:
            found = action["template"]
            if isinstance(found, str) and found.strip():
                template = found.strip()
            else:
                self.add(f"{path}.template", f"expected a template name, got {_shown(found)}")
        types = [key for key in _ACTION_TYPES if key in action]
        if len(types) != 1:
            found_types = " and ".join(types) if types else "none"
            self.add(
                path,
                f"expected exactly one of {', '.join(_ACTION_TYPES)} (write one action per list item), "
                f"got {found_types}",
            )
            return None
        kind = types[0]
        value = action[kind]
        where = f"{path}.{kind}"
        result: Action | None = None
        if kind == "notify":
            targets = self.notify_targets(value, where)
            if targets is not None:
                result = Action("notify", targets=targets, template=template)
        elif kind == "raise_priority":
            if isinstance(value, str) and value.strip():
                result = Action("raise_priority", value=value.strip(), template=template)
            else:
                self.add(
                    where,
                    'expected a quoted priority: "+1" raises it one step, "high" sets it (YAML reads an unquoted '
                    f"+1 as the number 1), got {_shown(value)}",
                )
        elif kind == "reassign":
            text = _scalar_text(value) if not isinstance(value, bool) else None
            if text is None or not text.strip() or (text.startswith("user:") and not _USER_RE.fullmatch(text)):
                self.add(where, f"expected a queue name or user:<id>, got {_shown(value)}")
            else:
                result = Action("reassign", value=text.strip(), template=template)
        else:
            result = self.set_action(value, where, template)
        return result if len(self.problems) == before else None

    def notify_targets(self, raw: object, path: str) -> tuple[str, ...] | None:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            self.add(path, f"expected a target or a non-empty list of targets, got {_shown(raw)}")
            return None
        targets: list[str] = []
        for index, item in enumerate(items):
            where = f"{path}[{index}]" if isinstance(raw, list) else path
            if isinstance(item, str) and (item in NOTIFY_ROLES or _USER_RE.fullmatch(item)):
                targets.append(item)
            else:
                self.add(where, f"expected one of {', '.join(NOTIFY_ROLES)} or user:<id>, got {_shown(item)}")
        return tuple(targets) if len(targets) == len(items) else None

    def set_action(self, raw: object, path: str, template: str) -> Action | None:
        if not isinstance(raw, Mapping) or len(raw) != 1:
            self.add(path, f"expected one attribute: value (one set action per attribute), got {_shown(raw)}")
            return None
        ((attribute, value),) = raw.items()
        text = _scalar_text(value)
        if not isinstance(attribute, str) or not attribute.strip():
            self.add(path, f"expected an attribute name, got {_shown(attribute)}")
            return None
        if text is None:
            self.add(_join(path, attribute), f"expected a value (a string or number), got {_shown(value)}")
            return None
        return Action("set", targets=(attribute.strip(),), value=text, template=template)
