"""``slaflow simulate``: a deterministic contact centre, written as JSON-lines events, with its ground truth.

:class:`Simulation` generates the traffic of a contact centre's day(s) from a :class:`SimulationConfig` and a
seed: customers of the tiers VIP / Premium / Standard open cases by e-mail, phone and web, with a daily curve
(peaks late morning and early afternoon), lower weekends and occasional bursts; agents and supervisors of queues
work in shifts that follow the tier calendars of the policy file (an agent acts only in the working hours of the
case's calendar); cases go through realistic flows (assigned, in progress, waiting for the customer, e-mails back
and forth, outbound calls, resolved, closed; cancelled, merged, split into field-service child cases, reassigned,
priority raised, reopened); field-service cases follow the coffee-machine story (diagnosis, consent, hand-over to
the external service, which pauses the repair clock, return); inbound calls are offered, answered or abandoned
and called back; leads, orders, invoices and e-mail activities come at a configurable share.

**Ground truth.** For each KPI the shipped policies give a record, the simulator decides whether it is met or
breached (``breach_share``), computes the deadline with the KPI's own calendar (``calendar.add``), and places the
stopping event before it (at a random share of the target) or after it. It follows every clock through its
pauses, reopenings and re-targeting (a priority raised to ``high``) with the core's arithmetic, so it knows each
KPI instance's outcome once time reaches :attr:`Simulation.horizon_ms`: ``met``, ``breached``, ``cancelled`` or
``open`` (:attr:`Simulation.truth`). The event kinds and attributes are those the conditions of
``deploy/policies/default.yaml`` react to; the truth follows that file's semantics (a different policy file gives
the same traffic, but its truth is only as good as its similarity to the shipped one).

**Faults** (all off by default, so that the truth is exact): late, out-of-order deliveries (exponential lateness),
duplicates, malformed lines (JSON-lines output only) and clock skew per source. They draw from a random stream of
their own, so switching them on leaves the underlying traffic (and its truth) unchanged.

**Speed.** Lines are formatted with f-strings from per-record constant parts (every generated value is ASCII
letters, digits, ``-``, ``_``, ``.`` or ``:``, so nothing needs escaping), bucketed per hour of delivery, sorted
by integer keys and written in large chunks (the goal: 200,000 events per second on one core, measured by
``slaflow bench simulate``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

from agents.options import (
    KAFKA,
    add_settings,
    command,
    instant_arg,
    non_negative_number,
    positive_number,
    settings_from,
)
from agents.settings import DEFAULT_POLICIES
from streams.calendar import BusinessCalendar, preset
from streams.errors import ConfigError
from streams.events import EventError, RecordEvent, event_to_json, format_instant_ms, parse_event
from streams.policy import KpiSpec, Policy, PolicySet, load_policies, parse_duration_ms

SECOND: Final = 1000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

DEFAULT_START_MS: Final = 1_772_406_000_000
"""Monday 2026-03-02 00:00 Europe/Berlin (2026-03-01T23:00:00Z)."""

GOAL_EVENTS_PER_SECOND: Final = 200_000

OUTCOMES: Final = ("met", "breached", "cancelled", "open")

DAY_CURVE: Final = (
    0.08, 0.05, 0.04, 0.04, 0.05, 0.10, 0.25, 0.55, 0.85, 1.00, 1.10, 1.15,
    0.90, 1.05, 1.10, 1.00, 0.85, 0.65, 0.45, 0.35, 0.28, 0.22, 0.16, 0.11,
)  # fmt: skip
"""Relative arrival rate per local hour: peaks at 11:00 and 14:00, a lunch dip, quiet nights."""

WEEK_CURVE: Final = (1.1, 1.0, 1.0, 1.0, 0.9, 0.35, 0.25)
"""Relative arrival rate per local weekday, Monday first: weekends are quieter."""

SUPPORT_CATEGORIES: Final = ("billing", "technical", "account", "delivery")
OTHER_ENTITIES: Final = (("lead", 0.25), ("order", 0.25), ("invoice", 0.2), ("email", 0.3))
PRODUCTS: Final = ("coffee_machine", "grinder", "espresso_pro", "milk_frother")
LEAD_SOURCES: Final = ("web", "fair", "referral", "campaign")
SKEW_SOURCES: Final = ("crm", "email", "phone", "web")
_BUCKET: Final = HOUR
_SEQ: Final = [f"{n:02d}" for n in range(1000)]
_SS: Final = [f"{n:02d}." for n in range(60)]
_MMM: Final = [f"{n:03d}Z" for n in range(1000)]
_INDEX_BITS: Final = 24
_INDEX_MASK: Final = (1 << _INDEX_BITS) - 1


def _default_tier_mix() -> dict[str, float]:
    return {"VIP": 0.1, "Premium": 0.3, "Standard": 0.6}


def _default_channel_mix() -> dict[str, float]:
    return {"email": 0.4, "phone": 0.35, "web": 0.25}


@dataclass(frozen=True)
class SimulationConfig:
    """The knobs of a simulated contact centre. Times are UTC epoch ms, durations ms, shares in ``[0, 1)``."""

    seed: int = 1
    """Same seed, same configuration: byte-identical output."""
    start_ms: int = DEFAULT_START_MS
    """The first instant simulated (default: Monday 2026-03-02 00:00 Europe/Berlin)."""
    days: float = 1.0
    """Days during which customers arrive."""
    settle_days: float = 0.0
    """Days after the last arrival during which the open records go on (no new arrivals). The output and the
    truth stop at ``start + (days + settle_days) * 24 h`` (:attr:`Simulation.horizon_ms`)."""
    timezone: str = "Europe/Berlin"
    """The contact centre's local time, for the daily and weekly arrival curves."""
    cases_per_day: int = 10_000
    """Mean customer contacts that open a case (or an abandoned call) on a weekday (Tuesday to Thursday; Monday
    is 10 % busier, Friday 10 % quieter, Saturday 35 %, Sunday 25 %)."""
    tier_mix: Mapping[str, float] = field(default_factory=_default_tier_mix)
    """Share of cases per customer tier (normalised)."""
    channel_mix: Mapping[str, float] = field(default_factory=_default_channel_mix)
    """Share of cases per channel (normalised); phone only while the case's calendar is open (else e-mail/web)."""
    breach_share: float = 0.15
    """Share of KPIs the simulator makes miss their deadline (first response exactly; the others approximately,
    since a case whose earlier steps ran late can miss a deadline it was meant to meet)."""
    other_entities_share: float = 0.2
    """Share of all arrivals that are leads, orders, invoices and e-mail activities rather than cases."""
    field_service_share: float = 0.08
    """Share of cases that are field-service cases (``type: field_service``: the coffee-machine story)."""
    high_priority_share: float = 0.05
    """Share of cases opened with ``priority: high``."""
    new_purchase_share: float = 0.06
    """Share of cases about a new purchase (``category: new_purchase``)."""
    cancel_share: float = 0.04
    """Share of cases the customer cancels (the loose plug)."""
    merge_share: float = 0.03
    """Share of cases that duplicate an earlier open case of the same customer and are merged into it."""
    split_share: float = 0.03
    """Share of cases split into field-service child cases (``parent_id``) for several technicians."""
    reopen_share: float = 0.06
    """Share of resolved cases the customer reopens."""
    reassign_share: float = 0.12
    """Share of cases moved to another queue before the first response."""
    priority_change_share: float = 0.08
    """Share of cases whose priority changes before the first response (half of them raised to ``high``)."""
    abandon_share: float = 0.07
    """Share of phone contacts abandoned in the queue (then called back)."""
    burst_probability: float = 0.25
    """Chance per day of a burst (an outage: several times the usual arrivals for one to two hours)."""
    burst_factor: float = 3.0
    queues: tuple[str, ...] = SUPPORT_CATEGORIES
    """Support queues (one per case category; new purchases go to ``sales``, field service to ``field``)."""
    agents_per_team: int = 8
    """Agents per queue and shift team (one team per calendar: around the clock, weekdays, office, field)."""
    customers: int = 200_000
    late_share: float = 0.0
    """Share of events delivered late (after later events)."""
    late_mean_ms: int = 60_000
    """Mean lateness of a late event (exponential)."""
    duplicate_share: float = 0.0
    """Share of events delivered twice (the same ``event_id``, up to 5 s apart)."""
    malformed_share: float = 0.0
    """Share of lines replaced by a malformed one (broken JSON, a missing field or a bad timestamp)."""
    skew_ms: Mapping[str, int] = field(default_factory=dict)
    """Constant clock offset per source (``crm``, ``email``, ``phone``, ``web``) added to ``occurred_at``."""
    policies: str | Path = DEFAULT_POLICIES
    """The policy file whose calendars and targets place the events (the shipped ``default.yaml``)."""

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first knob out of range."""
        shares = (
            "breach_share", "other_entities_share", "field_service_share", "high_priority_share",
            "new_purchase_share", "cancel_share", "merge_share", "split_share", "reopen_share", "reassign_share",
            "priority_change_share", "abandon_share", "burst_probability", "late_share", "duplicate_share",
            "malformed_share",
        )  # fmt: skip
        for name in shares:
            value = getattr(self, name)
            if not 0 <= value < 1:
                raise ConfigError(f"simulate: {name} must be a share in [0, 1), got {value}")
        if self.days <= 0 or self.settle_days < 0:
            raise ConfigError(f"simulate: days must be > 0 and settle_days >= 0, got {self.days}, {self.settle_days}")
        if self.cases_per_day < 0 or self.agents_per_team < 1 or self.customers < 1:
            raise ConfigError("simulate: cases_per_day must be >= 0, agents_per_team and customers >= 1")
        if self.late_mean_ms < 0 or self.burst_factor < 1:
            raise ConfigError("simulate: late_mean_ms must be >= 0 and burst_factor >= 1")
        if self.cancel_share + self.merge_share >= 1:
            raise ConfigError("simulate: cancel_share + merge_share must be below 1")
        for name, mix in (("tier_mix", self.tier_mix), ("channel_mix", self.channel_mix)):
            if not mix or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
                raise ConfigError(f"simulate: {name} needs non-negative shares with a positive sum, got {dict(mix)}")
            for key in mix:
                _check_token(key, name)
        unknown = sorted(set(self.channel_mix) - {"email", "phone", "web"})
        if unknown:
            raise ConfigError(f"simulate: channel_mix knows email, phone and web, got {', '.join(unknown)}")
        unknown = sorted(set(self.skew_ms) - set(SKEW_SOURCES))
        if unknown:
            raise ConfigError(f"simulate: skew sources are {', '.join(SKEW_SOURCES)}, got {', '.join(unknown)}")
        if not self.queues:
            raise ConfigError("simulate: queues must not be empty")
        for queue in self.queues:
            _check_token(queue, "queues")
        try:
            ZoneInfo(self.timezone)
        except (ValueError, OSError, KeyError) as exc:  # ZoneInfoNotFoundError is a KeyError
            raise ConfigError(f"simulate: unknown time zone {self.timezone!r}") from exc


def _check_token(value: str, what: str) -> None:
    if not value or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in value):
        raise ConfigError(f"simulate: {what}: {value!r} must be ASCII letters, digits, '-', '_' or '.'")


@dataclass
class SimulationStats:
    """What one run produced (filled while it runs)."""

    lines: int = 0
    """Lines written (events, their duplicates, malformed lines)."""
    events: int = 0
    """Valid event lines (duplicates included)."""
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    records: Counter[str] = field(default_factory=Counter)
    """Records created, by entity type."""
    arrivals: int = 0
    """Customer contacts (cases, abandoned calls and other records arriving; not child cases)."""


class _Cut(Exception):
    """A record's next event falls after the horizon: its flow stops there."""


class _Clock:
    """One KPI instance, followed with the core's arithmetic (see ``streams/kpi.py``).

    ``key`` is ``(record_id, kpi, instance)``, or ``None`` for a KPI the policy file does not have (its events are
    still placed, on the clock's calendar, but it has no truth).
    """

    __slots__ = ("breached", "cal", "cancelled", "due", "end_at", "ended", "key", "run", "target", "used")

    def __init__(self, target: int, cal: _Spans, at: int, key: tuple[str, str, int] | None) -> None:
        self.cal = cal
        self.target = target
        self.key = key
        self.used = 0
        self.run: int | None = at
        self.ended = False
        self.end_at = 0
        self.breached = False
        self.cancelled = False
        self.due = cal.add(at, target)

    def _deadline(self, run: int) -> int:
        left = self.target - self.used
        return run if left <= 0 else self.cal.add(run, left)

    def stop(self, at: int) -> None:
        if self.ended:
            return
        if self.run is not None and self.due < at:
            self.breached = True
        self.ended = True
        self.end_at = at

    def cancel(self, at: int) -> None:
        if not self.ended:
            self.ended = self.cancelled = True
            self.end_at = at

    def pause(self, at: int) -> None:
        run = self.run
        if self.ended or run is None:
            return
        if self.due < at:
            self.breached = True
        self.used += self.cal.elapsed(run, at)
        self.run = None

    def resume(self, at: int) -> None:
        if not self.ended and self.run is None:
            self.run = at
            self.due = self._deadline(at)

    def reopen(self, at: int) -> None:
        if not self.ended or self.cancelled:
            return
        if self.run is not None:
            self.used += self.cal.elapsed(self.run, self.end_at)
        self.ended = False
        self.run = at
        self.due = self._deadline(at)

    def retarget(self, at: int, target: int, cal: _Spans) -> None:
        """The record now falls under another policy, whose KPI of the same name has ``target`` on ``cal``."""
        if self.ended or self.key is None:
            return
        run = self.run
        if run is not None:
            if self.due < at:
                self.breached = True
            self.used += self.cal.elapsed(run, at)
            self.run = at
        self.cal, self.target = cal, target
        if self.run is not None:
            self.due = self._deadline(at)

    def left(self, at: int) -> int:
        """Business ms left before the deadline at ``at`` (negative: past it)."""
        run = self.run
        if run is not None and at > run:
            return self.target - self.used - self.cal.elapsed(run, at)
        return self.target - self.used

    def outcome(self, horizon: int) -> str:
        if self.cancelled:
            return "cancelled"
        if self.ended:
            return "breached" if self.breached else "met"
        if self.run is None:
            return "open"  # the core reports a paused clock as paused, breached or not
        return "breached" if self.breached or self.due <= horizon else "open"


class _Spans:
    """A :class:`BusinessCalendar`'s open spans over the simulated period, for fast ``add`` and ``elapsed``.

    Same answers as the calendar (a test checks it); instants outside ``[lo, hi)`` ask the calendar itself.
    """

    __slots__ = ("always", "cal", "cum", "cum_end", "ends", "hi", "lo", "name", "starts")

    def __init__(self, cal: BusinessCalendar, lo: int, hi: int) -> None:
        self.cal, self.name, self.lo = cal, cal.name, lo
        starts: list[int] = []
        ends: list[int] = []
        a: int | None = lo if cal.is_open(lo) else cal.next_change(lo)
        while a is not None and a < hi:
            b = cal.next_change(a)
            if b is None:  # open for good from a
                b = hi = max(hi, a) + 400 * DAY
            starts.append(a)
            ends.append(b)
            a = cal.next_change(b) if b < hi else None
        self.hi = min(hi, ends[-1]) if ends else lo
        self.starts, self.ends = starts, ends
        cum, cum_end, total = [], [], 0
        for start, end in zip(starts, ends, strict=True):
            cum.append(total)
            total += end - start
            cum_end.append(total)
        self.cum, self.cum_end = cum, cum_end
        self.always = len(starts) == 1 and starts[0] <= lo and ends[0] >= self.hi  # open all along (24/7)

    def add(self, start: int, business: int) -> int:
        if business <= 0 or not self.lo <= start < self.hi:
            return self.cal.add(start, business) if business > 0 else start
        if self.always:
            return start + business if start + business < self.hi else self.cal.add(start, business)
        i = bisect_right(self.ends, start)  # the span holding start, or the next one (start < hi = ends[-1])
        first = self.starts[i]
        if first <= start and start + business <= self.ends[i]:  # within the open span: most agent steps
            return start + business
        cum = self.cum
        target = cum[i] + (start - first if start > first else 0) + business
        j = bisect_left(self.cum_end, target, i)
        if j == len(cum):
            return self.cal.add(start, business)
        return self.starts[j] + target - cum[j]

    def elapsed(self, start: int, end: int) -> int:
        if end <= start:
            return 0
        if start < self.lo or end >= self.hi:
            return self.cal.elapsed(start, end)
        if self.always:
            return end - start
        ends, starts, cum = self.ends, self.starts, self.cum
        i = bisect_right(ends, start)
        j = bisect_right(ends, end, i)
        a, b = starts[i], starts[j]
        return cum[j] + (end - b if end > b else 0) - cum[i] - (start - a if start > a else 0)

    def is_open(self, t: int) -> bool:
        if not self.lo <= t < self.hi:
            return self.cal.is_open(t)
        i = bisect_right(self.ends, t)
        return i < len(self.ends) and self.starts[i] <= t

    def open_at(self, t: int) -> int:
        """``t`` if the calendar is open then, else its next opening."""
        return self.add(t, 1) - 1


class _Record:
    """A record being generated: its id, constant line parts, attributes and the last event's instant."""

    __slots__ = ("attrs", "channel", "entity", "head", "last", "mid", "n", "rid", "state", "status")

    def __init__(self, rid: str, entity: str, attrs: dict[str, str], status: str, channel: str = "crm") -> None:
        self.rid = rid
        self.entity = entity
        self.head = f'{{"event_id":"{rid}-'
        self.mid = f'","record_id":"{rid}","entity_type":"{entity}","kind":"'
        self.attrs = attrs
        self.state = ",".join([f'"{k}":"{v}"' for k, v in attrs.items()])
        self.status = status
        self.channel = channel
        self.n = 0
        self.last = -(2**62)

    def set(self, **changes: str) -> None:
        self.attrs.update(changes)
        self.state = ",".join([f'"{k}":"{v}"' for k, v in self.attrs.items()])


@dataclass(frozen=True)
class _CasePolicy:
    """The KPIs of one case policy the simulator drives, with their shared calendar (the agents' shift team)."""

    policy: Policy
    cal: _Spans
    team: str
    fr: KpiSpec | None
    res: KpiSpec | None
    nr: KpiSpec | None
    waiting_pauses: tuple[bool, bool, bool]
    """Whether status waiting_for_customer pauses first_response, resolution, next_reply (not in default.yaml)."""
    any_waiting_pause: bool = False


class Simulation:
    """A simulated contact centre: iterate :meth:`lines` or :meth:`events`, or :meth:`write` them; then read
    :attr:`truth` and :attr:`stats` (each run starts afresh and gives the same output for the same config)."""

    def __init__(self, config: SimulationConfig | None = None, policies: PolicySet | None = None) -> None:
        self.config = config or SimulationConfig()
        self.config.validate()
        self.policies = policies if policies is not None else load_policies(self.config.policies)
        cfg = self.config
        self.arrivals_end_ms = cfg.start_ms + round(cfg.days * DAY)
        self.horizon_ms = self.arrivals_end_ms + round(cfg.settle_days * DAY)
        """The truth is each KPI's state once time reaches this instant; no event is generated after it."""
        self.truth_instances: dict[tuple[str, str, int], str] = {}
        """``(record_id, kpi, instance) -> expected`` for every KPI instance the records start."""
        self.stats = SimulationStats()
        self._spans: dict[int, tuple[BusinessCalendar, _Spans]] = {}
        self._office = self.spans(self._calendar("office", "8/5"))

    # -- public API ----------------------------------------------------------------------------------------

    @property
    def truth(self) -> dict[tuple[str, str], str]:
        """``(record_id, kpi) -> met | breached | cancelled | open`` of the latest instance of each KPI."""
        latest: dict[tuple[str, str], tuple[int, str]] = {}
        for (rid, kpi, instance), expected in self.truth_instances.items():
            known = latest.get((rid, kpi))
            if known is None or instance > known[0]:
                latest[(rid, kpi)] = (instance, expected)
        return {key: expected for key, (_, expected) in latest.items()}

    def chunks(self) -> Iterator[list[str]]:
        """Lists of lines (each ending with a newline) in delivery order: event-time order unless late."""
        gen = _Generator(self)
        yield from gen.run()

    def lines(self) -> Iterator[str]:
        """Every line in delivery order (malformed lines included when configured)."""
        for chunk in self.chunks():
            yield from chunk

    def events(self) -> Iterator[RecordEvent]:
        """The valid events in delivery order (malformed lines skipped): what a producer sends to Kafka."""
        loads = json.loads
        for chunk in self.chunks():
            for line in chunk:
                try:
                    event = parse_event(loads(line))
                except (ValueError, EventError):  # a malformed line, on purpose
                    continue
                if isinstance(event, RecordEvent):  # always: the simulator writes record events only
                    yield event

    def run(self) -> SimulationStats:
        """Generate everything without keeping it (for the truth and the statistics alone)."""
        for _ in self.chunks():
            pass
        return self.stats

    def write(self, out: IO[str]) -> int:
        """Write every line to ``out`` in large chunks; return the number of lines."""
        written = 0
        for chunk in self.chunks():
            out.write("".join(chunk))
            written += len(chunk)
        return written

    def write_truth(self, out: IO[str]) -> int:
        """Write the truth as JSON lines ``{"record_id", "kpi", "instance", "expected"}``; return how many."""
        for (rid, kpi, instance), expected in self.truth_instances.items():
            out.write(f'{{"record_id":"{rid}","kpi":"{kpi}","instance":{instance},"expected":"{expected}"}}\n')
        return len(self.truth_instances)

    def truth_counts(self) -> dict[str, Counter[str]]:
        """``kpi -> Counter(outcome)`` over every KPI instance."""
        counts: dict[str, Counter[str]] = {}
        for (_, kpi, _), expected in self.truth_instances.items():
            counts.setdefault(kpi, Counter())[expected] += 1
        return counts

    # -- policies ------------------------------------------------------------------------------------------

    def _calendar(self, name: str, fallback_preset: str) -> BusinessCalendar:
        cal = self.policies.calendars.get(name)
        if cal is not None:
            return cal
        return preset(fallback_preset, self.config.timezone)

    def spans(self, cal: BusinessCalendar) -> _Spans:
        """The fast view of ``cal`` over the simulated period (built once per calendar)."""
        found = self._spans.get(id(cal))
        if found is None:
            lo, hi = self.config.start_ms - 14 * DAY, self.horizon_ms + 120 * DAY
            found = self._spans[id(cal)] = (cal, _Spans(cal, lo, hi))
        return found[1]

    def case_policy(self, attributes: Mapping[str, str]) -> _CasePolicy:
        """The policy of a case with these attributes, and the KPIs the simulator drives."""
        policy = self.policies.select("case", attributes)
        if policy is None:
            raise ConfigError(f"simulate: no policy of {self.policies.source} covers a case with {dict(attributes)}")
        fr, res, nr = policy.kpi("first_response"), policy.kpi("resolution"), policy.kpi("next_reply")
        first = fr or res or policy.kpis[0]
        waiting = {"status": "waiting_for_customer"}
        pauses = tuple(
            spec is not None and spec.pause.holds("status_changed", "case", waiting) for spec in (fr, res, nr)
        )
        cal = self.spans(first.calendar)
        return _CasePolicy(policy, cal, cal.name, fr, res, nr, (pauses[0], pauses[1], pauses[2]), any(pauses))


class _Generator:
    """One run of a :class:`Simulation` (all mutable state of a run lives here)."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        cfg = self.cfg = sim.config
        self.rng = random.Random(cfg.seed)
        self.r = self.rng.random
        self.faults = random.Random(f"faults:{cfg.seed}")
        self.horizon = sim.horizon_ms
        self.truth = sim.truth_instances
        self.truth.clear()
        self.stats = sim.stats = SimulationStats()
        self.buckets: dict[int, tuple[list[int], list[str]]] = {}
        """Per hour of delivery: sort keys (offset in the hour << 24 | index) and the lines."""
        self.pending_chunks: list[list[str]] = []
        self.clocks: list[_Clock] = []
        self.sequence = 0
        self.minutes: dict[int, str] = {}
        self.faulty = bool(cfg.late_share or cfg.duplicate_share or cfg.malformed_share or cfg.skew_ms)
        self.skew = {source: int(cfg.skew_ms.get(source, 0)) for source in SKEW_SOURCES}
        self.tiers = _cumulative(cfg.tier_mix)
        self.channels = _cumulative(cfg.channel_mix)
        self.tier_letters = {tier: tier[:1].upper() for tier in cfg.tier_mix}
        self.customer_pool = {tier: max(1, round(cfg.customers * share)) for tier, share in self.tiers_shares()}
        self.recent: list[tuple[str, str, str, int]] = []  # (case id, tier, customer, created) for merges
        self.policy_cache: dict[tuple[str, str, str, str], _CasePolicy] = {}
        self.field = sim.case_policy({"type": "field_service", "tier": "Standard", "priority": "normal"})
        self.field_specs = {n: self.field.policy.kpi(n) for n in
                            ("arrive_and_diagnose", "repair", "customer_consent", "equipment_handover",
                             "equipment_return")}  # fmt: skip
        repair = self.field_specs["repair"]
        self.repair_pauses = repair is not None and repair.pause.holds(
            "status_changed", "case", {"status": "at_external_service"}
        )
        self.other_specs = self._other_specs()
        self.office = sim._office
        self.spec_spans: dict[int, _Spans] = {}
        self.around_the_clock = sim.spans(preset("24/7"))

    def tiers_shares(self) -> list[tuple[str, float]]:
        total = sum(self.cfg.tier_mix.values())
        return [(tier, share / total) for tier, share in self.cfg.tier_mix.items()]

    def _other_specs(self) -> dict[str, KpiSpec | None]:
        select = self.sim.policies.select
        specs: dict[str, KpiSpec | None] = {}
        for entity, attrs, names in (
            ("lead", {}, ("first_contact", "qualification")),
            ("order", {}, ("shipment",)),
            ("invoice", {}, ("dispatch", "dispute_resolution")),
            ("email", {"direction": "inbound", "monthly_revenue": "12000"}, ("answer",)),
            ("email", {"direction": "inbound", "monthly_revenue": "800"}, ("answer",)),
            ("phone_call", {"direction": "inbound"}, ("answer", "callback")),
        ):
            policy = select(entity, attrs)
            suffix = "/key" if attrs.get("monthly_revenue") == "12000" else ""
            for name in names:
                specs[f"{entity}/{name}{suffix}"] = policy.kpi(name) if policy is not None else None
        return specs

    # -- the run -------------------------------------------------------------------------------------------

    def run(self) -> Iterator[list[str]]:
        cfg = self.cfg
        zone = ZoneInfo(cfg.timezone)
        r, rng = self.r, self.rng
        curve_total = sum(DAY_CURVE)
        share = cfg.other_entities_share
        per_hour = cfg.cases_per_day / (1 - share) / curve_total
        bursts: dict[int, float] = {}
        start, end = cfg.start_ms, self.sim.arrivals_end_ms
        hour_start = start
        while hour_start < end:
            self.flush_before(hour_start // _BUCKET)
            yield from self.ready()
            local = datetime.fromtimestamp(hour_start / 1000, zone)
            day_key = local.toordinal()
            if day_key not in bursts:
                bursts.clear()
                bursts[day_key] = 0.0
                if r() < cfg.burst_probability:
                    bursts[day_key] = 8 + r() * 9  # the burst starts between 08:00 and 17:00 local
            burst_at = bursts[day_key]
            factor = cfg.burst_factor if burst_at and burst_at <= local.hour + 1 and local.hour < burst_at + 1.5 else 1
            mean = per_hour * DAY_CURVE[local.hour] * WEEK_CURVE[local.weekday()] * factor
            span = min(HOUR, end - hour_start)
            count = _poisson(rng, mean * span / HOUR)
            for at in sorted(hour_start + int(r() * span) for _ in range(count)):
                self.stats.arrivals += 1
                if r() < share:
                    self.other(at)
                else:
                    self.contact(at)
            hour_start += HOUR
        self.flush_before(2**62)
        self.stats.events = self.stats.lines - self.stats.malformed
        yield from self.ready()

    # -- output --------------------------------------------------------------------------------------------

    def ready(self) -> Iterator[list[str]]:
        while self.pending_chunks:
            yield self.pending_chunks.pop(0)

    def flush_before(self, bucket: int) -> None:
        """Sort and queue every bucket before ``bucket`` (no later arrival can add to them)."""
        buckets = self.buckets
        due = sorted(b for b in buckets if b < bucket)
        for b in due:
            keys, lines = buckets.pop(b)
            keys.sort()
            chunk = list(map(lines.__getitem__, map(_INDEX_MASK.__and__, keys)))
            self.pending_chunks.append(chunk)
            self.stats.lines += len(chunk)

    def put(self, delivery: int, line: str) -> None:
        b = delivery // _BUCKET
        bucket = self.buckets.get(b)
        if bucket is None:
            bucket = self.buckets[b] = ([], [])
        keys, lines = bucket
        keys.append(((delivery - b * _BUCKET) << _INDEX_BITS) | len(lines))
        lines.append(line)

    def timestamp(self, t: int) -> str:
        minute = t // MINUTE
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = self.minute_prefix(minute)
        return f"{prefix}{_SS[(t // 1000) % 60]}{_MMM[t % 1000]}"

    def minute_prefix(self, minute: int) -> str:
        """``"2026-03-02T09:15:"`` of a UTC minute (cached)."""
        if len(self.minutes) > 200_000:
            self.minutes.clear()
        prefix = self.minutes[minute] = format_instant_ms(minute * MINUTE)[:17]
        return prefix

    def emit(self, rec: _Record, t: int, kind: str, status: str | None = None, extra: str = "") -> int:
        """Write one event of ``rec`` at ``t`` (moved 1 ms past the record's previous event if needed)."""
        last = rec.last
        if t <= last:
            t = last + 1
        if t > self.horizon:
            raise _Cut
        rec.last = t
        n = rec.n + 1
        rec.n = n
        if status is None:
            status = rec.status
        else:
            rec.status = status
        if self.faulty:
            self.emit_faulty(rec, t, kind, extra)
            return t
        minute = t // MINUTE
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = self.minute_prefix(minute)
        line = (
            f'{rec.head}{_SEQ[n] if n < 1000 else n}{rec.mid}{kind}","occurred_at":"{prefix}'
            f'{_SS[(t // 1000) % 60]}{_MMM[t % 1000]}","attributes":{{{rec.state},"status":"{status}"{extra}}}}}\n'
        )
        b = t // _BUCKET
        bucket = self.buckets.get(b)
        if bucket is None:
            bucket = self.buckets[b] = ([], [])
        lines = bucket[1]
        bucket[0].append(((t - b * _BUCKET) << _INDEX_BITS) | len(lines))
        lines.append(line)
        return t

    def emit_faulty(self, rec: _Record, t: int, kind: str, extra: str) -> None:
        cfg, f = self.cfg, self.faults.random
        if kind.startswith(("call_", "callback")):
            source = "phone"
        elif kind.startswith("email_") or rec.entity == "email":
            source = "email"
        elif kind == "created" and rec.entity == "case":
            source = rec.channel
        else:
            source = "crm"
        stamp = t + self.skew[source]
        timestamp = self.timestamp(stamp)
        line = (
            f'{rec.head}{rec.n:02d}{rec.mid}{kind}","occurred_at":"{timestamp}",'
            f'"attributes":{{{rec.state},"status":"{rec.status}"{extra}}}}}\n'
        )
        delivery = t
        stats = self.stats
        if cfg.late_share and f() < cfg.late_share:
            delivery += 1 + int(self.faults.expovariate(1 / cfg.late_mean_ms)) if cfg.late_mean_ms else 1
            stats.late += 1
        if cfg.malformed_share and f() < cfg.malformed_share:
            stats.malformed += 1
            how = f()
            if how < 1 / 3:
                line = line[: len(line) // 2] + "\n"  # broken JSON: cut short
            elif how < 2 / 3:
                line = line.replace(f'"kind":"{kind}",', "", 1)  # a required field missing
            else:
                line = line.replace(timestamp, timestamp[:19], 1)  # a timestamp without offset
            self.put(delivery, line)
            return
        self.put(delivery, line)
        if cfg.duplicate_share and f() < cfg.duplicate_share:
            self.put(delivery + int(f() * 5 * SECOND), line)
            stats.duplicates += 1

    def clock(self, spec: KpiSpec | None, at: int, rid: str, instance: int = 0) -> _Clock:
        if spec is None:  # not in this policy file: place the events as if it were one hour on 24/7
            return _Clock(HOUR, self.around_the_clock, at, None)
        cal = self.spec_spans.get(id(spec))
        if cal is None:
            cal = self.spec_spans[id(spec)] = self.sim.spans(spec.calendar)
        clock = _Clock(spec.target_ms, cal, at, (rid, spec.name, instance))
        self.clocks.append(clock)
        return clock

    def new_record(self, prefix: str, entity: str, attrs: dict[str, str], status: str, channel: str = "crm") -> _Record:
        self.sequence += 1
        self.stats.records[entity] += 1
        return _Record(f"{prefix}-{self.sequence:07d}", entity, attrs, status, channel)

    def generate(self, flow: Callable[..., None], *args: Any) -> None:
        """Run one record's ``flow(*args)`` up to the horizon, then record the truth of its clocks."""
        saved = self.clocks
        clocks: list[_Clock] = []
        self.clocks = clocks
        try:  # noqa: SIM105 - contextlib.suppress costs more, once per record
            flow(*args)
        except _Cut:
            pass
        horizon, truth = self.horizon, self.truth
        for clock in clocks:
            truth[clock.key] = clock.outcome(horizon)  # type: ignore[index] # only clocks with a key are listed
        self.clocks = saved

    # -- helpers -------------------------------------------------------------------------------------------

    def uniform(self, low: float, high: float) -> int:
        return int(low + self.r() * (high - low))

    def pick(self, table: tuple[list[str], list[float]]) -> str:
        names, bounds = table
        return names[bisect_right(bounds, self.r())]

    def agent(self, queue: str, team: str) -> str:
        return f"ag-{queue}-{team}-{int(self.r() * self.cfg.agents_per_team) + 1:02d}"

    def customer(self, tier: str) -> str:
        return f"CU-{self.tier_letters[tier]}{int(self.r() * self.customer_pool[tier]):06d}"

    def policy_for(self, tier: str, priority: str, category: str) -> _CasePolicy:
        key = (tier, priority, category, "")
        found = self.policy_cache.get(key)
        if found is None:
            found = self.policy_cache[key] = self.sim.case_policy(
                {"tier": tier, "priority": priority, "category": category}
            )
        return found

    def met_at(self, clock: _Clock, at: int, low: float = 0.1, high: float = 0.9) -> int:
        """An instant after ``at`` by which ``clock`` has used a random share (``low`` to ``high``) of its budget
        (meets the target); a few business minutes after ``at`` if the earlier steps left nothing."""
        share = low + self.r() * (high - low)
        run = clock.run
        if run is not None and clock.target > clock.used:  # the share of the budget left when the clock ran again
            instant = clock.cal.add(run, int((clock.target - clock.used) * share) or 1)
            if instant > at:
                return instant
        left = clock.left(at)  # the share of what is left at ``at``
        if left <= 0:
            return clock.cal.add(at, MINUTE + int(share * 29 * MINUTE))
        return clock.cal.add(at, int(left * share) or 1)

    def late_at(self, clock: _Clock, at: int) -> int:
        """An instant after both ``at`` and the clock's deadline (misses the target)."""
        base = clock.due if clock.run is not None and clock.due > at else at
        return clock.cal.add(base, max(MINUTE, int(clock.target * (0.05 + self.r() * 0.6))))

    def outcome_at(self, clock: _Clock, at: int, breach: bool, low: float = 0.1, high: float = 0.9) -> int:
        """``late_at`` if ``breach``, else ``met_at``."""
        return self.late_at(clock, at) if breach else self.met_at(clock, at, low, high)

    # -- arrivals ------------------------------------------------------------------------------------------

    def contact(self, at: int) -> None:
        """A customer contact: a case (e-mail, web, or an answered call), or an abandoned call."""
        cfg, r = self.cfg, self.r
        tier = self.pick(self.tiers)
        customer = self.customer(tier)
        merge_into = None
        if self.recent and r() < cfg.merge_share:
            case_id, tier, customer, _ = self.recent[int(r() * len(self.recent))]
            merge_into = case_id
        channel = self.pick(self.channels)
        if r() < cfg.field_service_share:
            self.generate(self.field_case, at, tier, customer, channel)
            return
        priority = "high" if r() < cfg.high_priority_share else "low" if r() < 0.2 else "normal"
        category = "new_purchase" if r() < cfg.new_purchase_share else cfg.queues[int(r() * len(cfg.queues))]
        if channel == "phone" and not self.policy_for(tier, "normal", "billing").cal.is_open(at):
            channel = "email" if r() < 0.6 else "web"  # the phone lines of this tier are closed
        if channel == "phone":
            queue = "sales" if category == "new_purchase" else category
            answered_at: list[int] = []
            self.generate(self.inbound_call, at, tier, customer, queue, answered_at)
            if not answered_at:
                return
            at = answered_at[0] + self.uniform(SECOND, 20 * SECOND)
        self.generate(self.case, at, tier, customer, channel, priority, category, merge_into)

    def other(self, at: int) -> None:
        kind = self.pick(_OTHER_TABLE)
        flow = {"lead": self.lead, "order": self.order, "invoice": self.invoice, "email": self.email_activity}[kind]
        self.generate(flow, at)

    # -- cases ---------------------------------------------------------------------------------------------

    def case(self, t0: int, tier: str, customer: str, channel: str, priority: str, category: str,
             merge_into: str | None = None, parent_id: str | None = None) -> None:  # fmt: skip
        cfg, r = self.cfg, self.r
        pol = self.policy_for(tier, priority, category)
        queue = "sales" if category == "new_purchase" else category
        team = pol.team
        attrs = {"tier": tier, "priority": priority, "channel": channel, "category": category, "customer": customer,
                 "queue": queue, "owner": "unassigned", "supervisor": f"sv-{queue}-{team}"}  # fmt: skip
        if parent_id is not None:
            attrs["parent_id"] = parent_id
        rec = self.new_record("C", "case", attrs, "new", channel)
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        fr = self.clock(pol.fr, t, rid)
        res = self.clock(pol.res, t, rid)
        cal = pol.cal
        if merge_into is None and parent_id is None:
            self.recent.append((rid, tier, customer, t))
            if len(self.recent) > 64:
                del self.recent[:32]
        roll = r()
        # The customer cancels (wall time: any hour), possibly before anybody picked the case up.
        if merge_into is None and roll < cfg.cancel_share:
            cancel_at = t + self.uniform(5 * MINUTE, 6 * HOUR)
            assign_at = cal.add(t, self.uniform(30 * SECOND, 3 * MINUTE))
            if assign_at < cancel_at:
                rec.set(owner=self.agent(queue, team))
                self.emit(rec, assign_at, "assigned", "assigned")
            t = self.emit(rec, cancel_at, "cancelled", "cancelled")
            fr.cancel(t)
            res.cancel(t)
            return
        rec.set(owner=self.agent(queue, team))
        t = self.emit(rec, cal.add(t, self.uniform(30 * SECOND, 3 * MINUTE)), "assigned", "assigned")
        if merge_into is not None:  # the same request came twice: merged into the earlier case
            t = self.emit(rec, cal.add(t, self.uniform(2 * MINUTE, 30 * MINUTE)), "merged", "merged",
                          f',"merged_into":"{merge_into}"')  # fmt: skip
            fr.cancel(t)
            res.cancel(t)
            return
        fr_breach = r() < cfg.breach_share
        res_breach = r() < cfg.breach_share
        # Priority changes before the first response; raised to high, the KPIs follow the high_priority policy.
        if r() < cfg.priority_change_share and priority != "high":
            to_high = r() < 0.5
            new_priority = "high" if to_high else "normal" if priority == "low" else "low"
            new_pol = self.policy_for(tier, new_priority, category) if to_high else pol
            budget = min(fr.target, new_pol.fr.target_ms if new_pol.fr is not None else fr.target)
            p = cal.add(t, max(MINUTE, int(budget * (0.05 + r() * 0.35))))
            rec.set(priority=new_priority)
            p = self.emit(rec, p, "priority_changed")
            if new_pol is not pol:
                for clock, spec in ((fr, new_pol.fr), (res, new_pol.res)):
                    if spec is not None:
                        clock.retarget(p, spec.target_ms, self.sim.spans(spec.calendar))
                pol, cal, team = new_pol, new_pol.cal, new_pol.team
            t = p
        respond_at = self.outcome_at(fr, t, fr_breach)
        if r() < cfg.reassign_share:  # moved to another queue before anybody answered
            span = fr.cal.elapsed(t, respond_at)
            if span > 2 * MINUTE:
                moved = fr.cal.add(t, int(span * (0.2 + r() * 0.4)))
                queue = cfg.queues[int(r() * len(cfg.queues))]
                rec.set(queue=queue, owner=self.agent(queue, team), supervisor=f"sv-{queue}-{team}")
                t = self.emit(rec, moved, "assigned", "assigned")
        if fr_breach:
            # At the deadline the supervisor takes the case over (the VIP escalation: reassign to the supervisor).
            escalated = fr.cal.add(fr.due, self.uniform(MINUTE, 15 * MINUTE)) if fr.due > t else t + MINUTE
            if escalated < respond_at:
                rec.set(owner=rec.attrs["supervisor"])
                t = self.emit(rec, escalated, "assigned", "assigned")
            if r() < 0.08:  # nobody ever answers: first response and resolution breach
                return
        t = self.respond(rec, respond_at, fr, channel)
        t = self.emit(rec, cal.add(t, self.uniform(10 * SECOND, 5 * MINUTE)), "status_changed", "in_progress")
        if r() < cfg.split_share:  # several technicians: one field-service child case each
            for _ in range(2 + int(r() * 2)):
                child_at = cal.add(t, self.uniform(5 * MINUTE, 60 * MINUTE))
                self.generate(self.field_case, child_at, tier, customer, channel, rid)
        nr: _Clock | None = None
        nr_instance = -1
        rounds = _rounds(r())
        left = max(res.left(t), HOUR)  # the customer's replies take a share of what is left for the resolution
        for _ in range(rounds):
            t = self.emit(rec, cal.add(t, self.uniform(MINUTE, 20 * MINUTE)), "status_changed",
                          "waiting_for_customer")  # fmt: skip
            if pol.any_waiting_pause:
                self.pause_for_waiting(pol, t, fr, res, nr)
            t = self.emit(rec, cal.add(t, int(left * (0.02 + r() * 0.1))), "email_received", None,
                          ',"direction":"inbound"')  # fmt: skip
            if pol.nr is not None and (nr is None or nr.ended):
                nr_instance += 1
                nr = self.clock(pol.nr, t, rid, nr_instance)
            t = self.emit(rec, t + self.uniform(SECOND, MINUTE), "status_changed", "in_progress")
            if pol.any_waiting_pause:
                self.resume_after_waiting(pol, t, fr, res, nr)
            if nr is not None and not nr.ended:
                reply = self.outcome_at(nr, t, r() < cfg.breach_share)
            else:
                reply = cal.add(t, self.uniform(5 * MINUTE, 2 * HOUR))
            t = self.emit(rec, reply, "email_sent", None, ',"direction":"outbound"')
            fr.stop(t)
            if nr is not None:
                nr.stop(t)
        t = self.resolve(rec, self.outcome_at(res, t, res_breach, 0.1, 0.8), fr, res, nr)
        if r() < cfg.reopen_share:  # the customer says it is not fixed (any hour)
            t = self.emit(rec, t + self.uniform(HOUR, 72 * HOUR), "reopened", "reopened")
            for reopened in (fr, res, nr):
                if reopened is not None:
                    reopened.reopen(t)
            answer = (
                self.met_at(fr, t, 0.1, 0.8) if not fr.breached else cal.add(t, self.uniform(10 * MINUTE, 4 * HOUR))
            )
            t = self.emit(rec, answer, "email_sent", None, ',"direction":"outbound"')
            fr.stop(t)
            if nr is not None:
                nr.stop(t)
            t = self.emit(rec, cal.add(t, self.uniform(10 * SECOND, 5 * MINUTE)), "status_changed", "in_progress")
            t = self.resolve(rec, self.outcome_at(res, t, res_breach or res.breached, 0.1, 0.8), fr, res, nr)
        self.emit(rec, t + self.uniform(2 * HOUR, 72 * HOUR), "closed", "closed")

    def respond(self, rec: _Record, at: int, fr: _Clock, channel: str) -> int:
        """The first response: an answered outbound call, an outbound e-mail, or a ``first_response``."""
        roll = self.r()
        if roll < 0.08:
            t = self.emit(rec, at, "first_response")
        elif channel == "phone":
            t = self.emit(rec, at, "call_answered", None,
                          f',"direction":"outbound","handle_seconds":"{self.uniform(60, 900)}"')  # fmt: skip
        else:
            t = self.emit(rec, at, "email_sent", None, ',"direction":"outbound"')
        fr.stop(t)
        return t

    def resolve(self, rec: _Record, at: int, fr: _Clock, res: _Clock, nr: _Clock | None) -> int:
        t = self.emit(rec, at, "resolved", "resolved")
        fr.stop(t)
        res.stop(t)
        if nr is not None:
            nr.cancel(t)
        return t

    @staticmethod
    def pause_for_waiting(pol: _CasePolicy, t: int, fr: _Clock, res: _Clock, nr: _Clock | None) -> None:
        for clock, pauses in zip((fr, res, nr), pol.waiting_pauses, strict=True):
            if pauses and clock is not None:
                clock.pause(t)

    @staticmethod
    def resume_after_waiting(pol: _CasePolicy, t: int, fr: _Clock, res: _Clock, nr: _Clock | None) -> None:
        for clock, pauses in zip((fr, res, nr), pol.waiting_pauses, strict=True):
            if pauses and clock is not None:
                clock.resume(t)

    def field_case(self, t0: int, tier: str, customer: str, channel: str, parent_id: str | None = None) -> None:
        """The coffee-machine story: cancelled, repaired on site, or repaired at the manufacturer."""
        cfg, r = self.cfg, self.r
        specs, pol = self.field_specs, self.field
        cal, team = pol.cal, pol.team
        attrs = {"tier": tier, "priority": "normal", "type": "field_service", "channel": channel,
                 "category": "repair", "product": PRODUCTS[int(r() * len(PRODUCTS))], "customer": customer,
                 "queue": "field", "owner": "unassigned", "supervisor": f"sv-field-{team}"}  # fmt: skip
        if parent_id is not None:
            attrs["parent_id"] = parent_id
        rec = self.new_record("C", "case", attrs, "new", channel)
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        diagnose = self.clock(specs["arrive_and_diagnose"], t, rid)
        repair = self.clock(specs["repair"], t, rid)
        assign_at = cal.add(t, self.uniform(2 * MINUTE, 20 * MINUTE))
        if parent_id is None and r() < 0.12:  # the plug was loose: the customer calls back, the case is cancelled
            cancel_at = t + self.uniform(10 * MINUTE, 30 * MINUTE)
            if assign_at < cancel_at:
                rec.set(owner=self.agent("field", team))
                self.emit(rec, assign_at, "assigned", "assigned")
            t = self.emit(rec, cancel_at, "cancelled", "cancelled")
            diagnose.cancel(t)
            repair.cancel(t)
            return
        rec.set(owner=self.agent("field", team))
        t = self.emit(rec, assign_at, "assigned", "assigned")
        breach = cfg.breach_share
        t = self.emit(rec, self.outcome_at(diagnose, t, r() < breach), "status_changed", "diagnosed")
        diagnose.stop(t)
        repair_breach = r() < breach
        if r() < 0.65:  # repaired on site
            t = self.emit(rec, cal.add(t, self.uniform(5 * MINUTE, 45 * MINUTE)), "status_changed",
                          "repair_in_progress")  # fmt: skip
        else:  # the machine goes to the manufacturer: consent, hand-over (the repair clock pauses), return
            t = self.emit(rec, cal.add(t, self.uniform(10 * MINUTE, HOUR)), "status_changed", "awaiting_consent")
            consent = self.clock(specs["customer_consent"], t, rid)
            refused = r() < 0.1
            t = self.emit(rec, self.outcome_at(consent, t, r() < breach, 0.05, 0.5),
                          "consent_refused" if refused else "consent_given",
                          "consent_refused" if refused else "consent_given")  # fmt: skip
            consent.stop(t)
            if not refused:
                t = self.emit(rec, cal.add(t, self.uniform(30 * MINUTE, 4 * HOUR)), "status_changed",
                              "equipment_collected")  # fmt: skip
                handover = self.clock(specs["equipment_handover"], t, rid)
                t = self.emit(rec, self.outcome_at(handover, t, r() < breach, 0.05, 0.6), "status_changed",
                              "at_external_service")  # fmt: skip
                handover.stop(t)
                if self.repair_pauses:
                    repair.pause(t)
                back = t + self.uniform(DAY, 8 * DAY)
                t = self.emit(rec, cal.open_at(back), "status_changed", "back_in_warehouse")
                repair.resume(t)
                giving_back = self.clock(specs["equipment_return"], t, rid)
                t = self.emit(rec, self.outcome_at(giving_back, t, r() < breach, 0.05, 0.6), "status_changed",
                              "returned_to_customer")  # fmt: skip
                giving_back.stop(t)
        t = self.emit(rec, self.outcome_at(repair, t, repair_breach, 0.1, 0.8), "resolved", "resolved")
        repair.stop(t)
        self.emit(rec, t + self.uniform(HOUR, 48 * HOUR), "closed", "closed")

    # -- telephony -----------------------------------------------------------------------------------------

    def inbound_call(self, t0: int, tier: str, customer: str, queue: str, answered_at: list[int]) -> None:
        """An inbound call record: offered, then answered (``answered_at`` gets the instant) or abandoned."""
        cfg, r = self.cfg, self.r
        attrs = {"direction": "inbound", "tier": tier, "customer": customer, "queue": queue}
        rec = self.new_record("PC", "phone_call", attrs, "ringing", "phone")
        rid = rec.rid
        t = self.emit(rec, t0, "call_offered", "queued")
        answer = self.clock(self.other_specs["phone_call/answer"], t, rid)
        limit_s = max(1, answer.target // SECOND)
        if r() < cfg.abandon_share:
            wait_s = self.uniform(2, 90)
            t = self.emit(rec, t0 + wait_s * SECOND + self.uniform(0, 999), "call_abandoned", "abandoned",
                          f',"wait_seconds":"{wait_s}"')  # fmt: skip
            spec = self.other_specs["phone_call/answer"]
            if spec is not None and spec.cancel.holds(
                "call_abandoned", "phone_call", {**attrs, "wait_seconds": str(wait_s)}
            ):
                answer.cancel(t)  # short abandons do not count against the queue
            callback = self.clock(self.other_specs["phone_call/callback"], t, rid)
            back = self.outcome_at(callback, t, r() < cfg.breach_share)
            extra = f',"handle_seconds":"{self.uniform(60, 600)}"'
            callback.stop(self.emit(rec, back, "callback_completed", "called_back", extra))
            return
        wait_s = self.uniform(limit_s + 1, 6 * limit_s) if r() < cfg.breach_share else self.uniform(1, limit_s)
        owner = self.agent(queue, self.policy_for(tier, "normal", "billing").team)
        extra = f',"owner":"{owner}","wait_seconds":"{wait_s}","handle_seconds":"{self.uniform(60, 900)}"'
        t = self.emit(rec, t0 + wait_s * SECOND + self.uniform(0, 999), "call_answered", "answered", extra)
        answer.stop(t)
        answered_at.append(t)

    # -- other records -------------------------------------------------------------------------------------

    def lead(self, t0: int) -> None:
        cfg, r = self.cfg, self.r
        attrs = {"source": LEAD_SOURCES[int(r() * len(LEAD_SOURCES))], "queue": "inside_sales",
                 "owner": self.agent("inside_sales", "office")}  # fmt: skip
        rec = self.new_record("L", "lead", attrs, "new")
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        contact = self.clock(self.other_specs["lead/first_contact"], t, rid)
        qualify = self.clock(self.other_specs["lead/qualification"], t, rid)
        if r() < 0.08:  # a duplicate of a known lead
            t = self.emit(rec, self.office.add(t, self.uniform(5 * MINUTE, HOUR)), "status_changed", "duplicate")
            contact.cancel(t)
            qualify.cancel(t)
            return
        reached = self.outcome_at(contact, t, r() < cfg.breach_share)
        if r() < 0.5:
            t = self.emit(rec, reached, "call_answered", "contacted",
                          f',"direction":"outbound","handle_seconds":"{self.uniform(60, 900)}"')  # fmt: skip
        else:
            t = self.emit(rec, reached, "email_sent", "contacted", ',"direction":"outbound"')
        contact.stop(t)
        verdict = "qualified" if r() < 0.7 else "disqualified"
        t = self.emit(rec, self.outcome_at(qualify, t, r() < cfg.breach_share), "status_changed", verdict)
        qualify.stop(t)

    def order(self, t0: int) -> None:
        cfg, r, office = self.cfg, self.r, self.office
        attrs = {"channel": "web" if r() < 0.7 else "phone", "customer": self.customer(self.pick(self.tiers)),
                 "queue": "orders", "owner": self.agent("orders", "office")}  # fmt: skip
        rec = self.new_record("O", "order", attrs, "new")
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        t = self.emit(rec, office.add(t, self.uniform(10 * MINUTE, 4 * HOUR)), "status_changed", "confirmed")
        ship = self.clock(self.other_specs["order/shipment"], t, rid)
        if r() < 0.05:
            t = self.emit(rec, office.add(t, self.uniform(10 * MINUTE, 8 * HOUR)), "cancelled", "cancelled")
            ship.cancel(t)
            return
        breach = r() < cfg.breach_share
        if r() < 0.2:  # on hold, waiting for payment or stock: the shipment clock pauses
            t = self.emit(rec, ship.cal.add(t, self.uniform(10 * MINUTE, 4 * HOUR)), "status_changed", "on_hold")
            ship.pause(t)
            t = self.emit(rec, office.open_at(t + self.uniform(2 * HOUR, 72 * HOUR)), "status_changed", "picking")
            ship.resume(t)
        t = self.emit(rec, self.outcome_at(ship, t, breach), "shipped", "shipped")
        ship.stop(t)

    def invoice(self, t0: int) -> None:
        cfg, r = self.cfg, self.r
        attrs = {"customer": self.customer(self.pick(self.tiers)), "amount": f"{self.uniform(50, 20_000)}.00",
                 "queue": "billing", "owner": self.agent("billing", "office")}  # fmt: skip
        rec = self.new_record("I", "invoice", attrs, "draft")
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        dispatch = self.clock(self.other_specs["invoice/dispatch"], t, rid)
        if r() < 0.04:
            t = self.emit(rec, t + self.uniform(5 * MINUTE, 2 * HOUR), "cancelled", "cancelled")
            dispatch.cancel(t)
            return
        t = self.emit(rec, self.outcome_at(dispatch, t, r() < cfg.breach_share), "sent", "sent")
        dispatch.stop(t)
        if r() < 0.1:  # the customer disputes it
            t = self.emit(rec, t + self.uniform(HOUR, 10 * DAY), "disputed", "disputed")
            dispute = self.clock(self.other_specs["invoice/dispute_resolution"], t, rid)
            done = "credit_note_issued" if r() < 0.3 else "dispute_resolved"
            t = self.emit(rec, self.outcome_at(dispute, t, r() < cfg.breach_share), done, "settled")
            dispute.stop(t)

    def email_activity(self, t0: int) -> None:
        cfg, r = self.cfg, self.r
        key_account = r() < 0.25
        revenue = str(self.uniform(5_001, 50_000)) if key_account else str(self.uniform(50, 5_000))
        tier = self.pick(self.tiers)
        owner = self.agent("mailbox", "weekdays" if key_account else "office")
        attrs = {"direction": "inbound", "monthly_revenue": revenue, "customer": self.customer(tier), "tier": tier,
                 "queue": "mailbox", "owner": owner}  # fmt: skip
        rec = self.new_record("E", "email", attrs, "unread", "email")
        rid = rec.rid
        t = self.emit(rec, t0, "created")
        answer = self.clock(self.other_specs["email/answer/key" if key_account else "email/answer"], t, rid)
        if r() < 0.05:
            t = self.emit(rec, t + self.uniform(MINUTE, HOUR), "marked_as_spam", "spam")
            answer.cancel(t)
            return
        kind = "forwarded_to_case" if r() < 0.2 else "replied"
        t = self.emit(rec, self.outcome_at(answer, t, r() < cfg.breach_share), kind, kind)
        answer.stop(t)


def _rounds(x: float) -> int:
    """E-mail rounds with the customer while the case is worked on: 0 (40 %), 1 (35 %), 2 (15 %), 3 (10 %)."""
    return 0 if x < 0.4 else 1 if x < 0.75 else 2 if x < 0.9 else 3


def _cumulative(mix: Mapping[str, float]) -> tuple[list[str], list[float]]:
    """Names and the upper bounds of their shares in ``[0, 1)``, for :meth:`_Generator.pick`."""
    total = sum(mix.values())
    names: list[str] = []
    bounds: list[float] = []
    running = 0.0
    for name, share in mix.items():
        running += share / total
        names.append(name)
        bounds.append(running)
    bounds[-1] = 2.0  # whatever rounding did, the last name takes the rest
    return names, bounds


_OTHER_TABLE: Final = _cumulative(dict(OTHER_ENTITIES))


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean < 30:
        limit, k, p = math.exp(-mean), 0, rng.random()
        while p > limit:
            k += 1
            p *= rng.random()
        return k
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


# ---------------------------------------------------------------------------------------------------------------
# Pacing


def paced(
    events: Iterable[RecordEvent],
    speed: float,
    start_wall: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    origin_ms: int | None = None,
) -> Iterator[RecordEvent]:
    """Yield ``events`` no earlier than their simulated time: ``speed`` simulated seconds per wall second.

    The event at simulated instant *t* is due at ``start_wall + (t - origin_ms) / 1000 / speed`` on ``clock``
    (seconds; ``origin_ms`` defaults to the first event's instant). The simulated time is the latest
    ``occurred_at`` seen so far, so a late (out-of-order) event goes out at once, right after the event it
    followed in the feed. ``speed`` <= 0 or infinite: no pacing (as fast as possible).
    """
    if speed <= 0 or math.isinf(speed):
        yield from events
        return
    latest: int | None = None
    for event in events:
        at = event.occurred_at_ms
        if origin_ms is None:
            origin_ms = at
        latest = at if latest is None or at > latest else latest
        due = start_wall + (latest - origin_ms) / 1000 / speed
        wait = due - clock()
        if wait > 0:
            sleep(wait)
        yield event


# ---------------------------------------------------------------------------------------------------------------
# Command line


def _mix(text: str) -> dict[str, float]:
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = math.nan
        if not sep or not name.strip() or not share >= 0:
            raise argparse.ArgumentTypeError(f"expected NAME=SHARE,... such as VIP=0.1,Premium=0.3, got {text!r}")
        mix[name.strip()] = share
    return mix


def _skew(text: str) -> dict[str, int]:
    skew: dict[str, int] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        value = value.strip()
        ms = _duration_ms(value.lstrip("+-")) if sep else None
        if ms is None or name.strip() not in SKEW_SOURCES:
            raise argparse.ArgumentTypeError(
                f"expected SOURCE=MS,... with sources {', '.join(SKEW_SOURCES)} (phone=-2000,email=1500), got {text!r}"
            )
        skew[name.strip()] = -ms if value.startswith("-") else ms
    return skew


def _duration_ms(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return parse_duration_ms(text)


def _duration(text: str) -> int:
    ms = _duration_ms(text)
    if ms is None:
        raise argparse.ArgumentTypeError(f"expected milliseconds or a duration such as 30s, got {text!r}")
    return ms


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a share in [0, 1), got {text!r}")
    return value


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``slaflow simulate`` to the ``slaflow`` parser; its ``func`` returns the exit code."""
    defaults = SimulationConfig()
    parser = command(
        subparsers,
        "simulate",
        "generate a simulated contact centre's events (JSON lines, or to Kafka) and their ground truth",
        "Generate a deterministic contact centre (cases of every tier, calls, e-mails, field service, leads, "
        "orders, invoices) as JSON-lines events in event-time order, a share of whose KPIs miss their deadline, "
        "with optional feed faults. --truth writes the expected outcome of every KPI instance at the end of the "
        "simulated period (replay with --until at that instant to compare).\n\n"
        "To feed a worker that runs on the wall clock: --start now --speed 1 writes each event when its time "
        "comes, e.g. `slaflow simulate --start now --speed 1 | slaflow produce --events -`.",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, metavar="N", help="random seed")
    parser.add_argument("--days", type=positive_number, default=defaults.days, metavar="DAYS", help="days of arrivals")
    parser.add_argument(
        "--settle-days",
        type=non_negative_number,
        default=defaults.settle_days,
        metavar="DAYS",
        help="days after the last arrival during which open records go on",
    )
    parser.add_argument(
        "--start",
        type=instant_arg,
        default=defaults.start_ms,
        metavar="INSTANT",
        help="first simulated instant: now, ISO 8601 with an offset, or UTC epoch ms (default: Monday 2026-03-02 "
        "00:00 Europe/Berlin)",
    )
    parser.add_argument(
        "--tier-mix", type=_mix, default=None, metavar="VIP=0.1,Premium=0.3,...", help="share of cases per tier"
    )
    parser.add_argument(
        "--cases-per-day", type=int, default=defaults.cases_per_day, metavar="N", help="mean cases on a weekday"
    )
    parser.add_argument(
        "--breach-share", type=_share, default=defaults.breach_share, metavar="SHARE", help="share of KPIs breached"
    )
    parser.add_argument(
        "--other-entities-share",
        type=_share,
        default=defaults.other_entities_share,
        metavar="SHARE",
        help="share of arrivals that are leads, orders, invoices, e-mails",
    )
    parser.add_argument(
        "--late-share", type=_share, default=defaults.late_share, metavar="SHARE", help="share of events delivered late"
    )
    parser.add_argument(
        "--late-mean",
        type=_duration,
        default=defaults.late_mean_ms,
        metavar="DURATION",
        help="mean lateness: milliseconds or a duration such as 30s",
    )
    parser.add_argument(
        "--duplicate-share",
        type=_share,
        default=defaults.duplicate_share,
        metavar="SHARE",
        help="share of events sent twice",
    )
    parser.add_argument(
        "--malformed-share",
        type=_share,
        default=defaults.malformed_share,
        metavar="SHARE",
        help="share of malformed lines",
    )
    parser.add_argument(
        "--skew", type=_skew, default=None, metavar="phone=-2000,email=1500", help="clock offset per source, in ms"
    )
    parser.add_argument("--out", default=None, metavar="FILE", help="events file (default: standard output)")
    parser.add_argument("--truth", default=None, metavar="FILE", help="write the ground truth here")
    parser.add_argument("--quiet", action="store_true", help="no summary on stderr")
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        metavar="FACTOR",
        help="write each event when its simulated time comes, FACTOR simulated seconds per wall second (1: real "
        "time, 60: an hour a minute; with --kafka the simulated time also goes out as clock ticks, for a worker "
        "with SLAFLOW_TICK_INTERVAL=0); 0: as fast as possible",
    )
    parser.add_argument(
        "--kafka", action="store_true", help="send the events to the input topic as Avro instead of writing lines"
    )
    parser.add_argument(
        "--create-topics", action="store_true", help="with --kafka: create slaflow's topics if they are missing"
    )
    add_settings(parser, ("policies", *KAFKA, "topic_case_events", "partitions", "replication_factor"))
    parser.set_defaults(func=cmd_simulate)


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The :class:`SimulationConfig` of parsed ``slaflow simulate`` arguments."""
    defaults = SimulationConfig()
    return SimulationConfig(
        seed=args.seed,
        start_ms=args.start,
        days=args.days,
        settle_days=args.settle_days,
        cases_per_day=args.cases_per_day,
        tier_mix=args.tier_mix if args.tier_mix is not None else defaults.tier_mix,
        breach_share=args.breach_share,
        other_entities_share=args.other_entities_share,
        late_share=args.late_share,
        late_mean_ms=args.late_mean,
        duplicate_share=args.duplicate_share,
        malformed_share=args.malformed_share,
        skew_ms=args.skew or {},
        policies=settings_from(args).policies,
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run ``slaflow simulate``; return the exit code (2: bad configuration or file, 1: output closed)."""
    config = config_from_args(args)
    sim = Simulation(config)  # ConfigError / PolicyError: the CLI reports them (exit 2)
    if args.kafka:
        return _to_kafka(args, sim)
    started = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            out = sys.stdout if args.out in (None, "-") else stack.enter_context(open(args.out, "w", encoding="utf-8"))
            if args.speed > 0:
                for event in paced(sim.events(), args.speed, time.monotonic(), origin_ms=config.start_ms):
                    out.write(json.dumps(event_to_json(event), separators=(",", ":")) + "\n")
                    out.flush()
            else:
                sim.write(out)
            out.flush()
    except BrokenPipeError:
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as exc:
        raise ConfigError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    elapsed = time.perf_counter() - started
    if args.truth is not None:
        _write_truth(sim, args.truth)
    if not args.quiet:
        print(summary(sim, elapsed), file=sys.stderr)
    return 0


def _write_truth(sim: Simulation, path: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as truth:
            sim.write_truth(truth)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _to_kafka(args: argparse.Namespace, sim: Simulation) -> int:
    """``--kafka``: produce the events (paced with clock ticks when ``--speed`` is given); the truth as usual."""
    from agents.feed import DemoFeed, run_feed  # noqa: PLC0415 - the feed imports this module
    from agents.produce import produce  # noqa: PLC0415
    from agents.topics import TopicNames, require_topics  # noqa: PLC0415

    settings = settings_from(args)
    if not settings.kafka_bootstrap:
        raise ConfigError("--kafka needs a broker: set KAFKA_BOOTSTRAP or pass --bootstrap HOST:PORT")
    started = time.perf_counter()
    topic = TopicNames.of(settings).case_events

    async def feed_paced() -> int:
        await require_topics(settings, [topic], create=args.create_topics)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        fed = await run_feed(settings.kafka_bootstrap, topic, settings.partitions, stop,
                             DemoFeed(speed=args.speed, config=sim.config))  # fmt: skip
        return fed.sent

    if args.speed > 0:
        sent = asyncio.run(feed_paced())
    else:
        sent = asyncio.run(produce(settings, sim.events(), create_topics=args.create_topics))
    if args.truth is not None:
        if args.speed > 0:  # the paced feed ran its own copy of the simulation: run this one for the truth
            sim.run()
        _write_truth(sim, args.truth)
    if not args.quiet:
        print(f"slaflow simulate: sent {sent:,} events to {topic} in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)  # fmt: skip
    return 0


def summary(sim: Simulation, elapsed_s: float) -> str:
    """A few lines for people: what was generated, how fast, and the truth per KPI."""
    stats = sim.stats
    records = ", ".join(f"{n:,} {entity}" for entity, n in stats.records.most_common())
    lines = [
        f"slaflow simulate: {stats.events:,} events ({stats.lines:,} lines) from "
        f"{format_instant_ms(sim.config.start_ms)} to {format_instant_ms(sim.horizon_ms)} in {elapsed_s:.2f} s "
        f"({stats.lines / max(elapsed_s, 1e-9):,.0f} lines/s)",
        f"  records: {records}",
        f"  the truth holds at {format_instant_ms(sim.horizon_ms)}: replay with --until {sim.horizon_ms} to compare",
    ]
    if stats.late or stats.duplicates or stats.malformed:
        lines.append(f"  faults: {stats.late:,} late, {stats.duplicates:,} duplicates, {stats.malformed:,} malformed")
    for kpi, counts in sorted(sim.truth_counts().items()):
        total = sum(counts.values())
        shown = ", ".join(f"{counts[o]:,} {o}" for o in OUTCOMES if counts[o])
        lines.append(f"  truth {kpi}: {total:,} ({shown})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Benchmark


def bench_simulate(
    days: float = 7.0, cases_per_day: int = SimulationConfig.cases_per_day, seed: int = 1
) -> dict[str, Any]:
    """Generate ``days`` of the default contact centre into a temporary file; events per second on one core."""
    config = SimulationConfig(seed=seed, days=days, cases_per_day=cases_per_day)
    sim = Simulation(config)
    with tempfile.TemporaryDirectory(prefix="slaflow-bench-") as tmp:
        path = Path(tmp) / "events.jsonl"
        cpu = time.process_time()
        wall = time.perf_counter()
        with path.open("w", encoding="utf-8") as out:
            lines = sim.write(out)
        wall_s = time.perf_counter() - wall
        cpu_s = time.process_time() - cpu
        size = path.stat().st_size
    rate = lines / max(cpu_s, 1e-9)
    return {
        "benchmark": "simulate",
        "events": lines,
        "seconds": round(cpu_s, 3),
        "wall_seconds": round(wall_s, 3),
        "events_per_second": round(rate),
        "wall_events_per_second": round(lines / max(wall_s, 1e-9)),
        "goal": GOAL_EVENTS_PER_SECOND,
        "goal_met": rate >= GOAL_EVENTS_PER_SECOND,
        "bytes": size,
        "days": days,
        "cases_per_day": cases_per_day,
        "kpi_instances": len(sim.truth_instances),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def add_bench_command(bench_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` under ``slaflow bench`` (``bench_subparsers``: the ``which`` of ``agents/bench.py``)."""
    parser = command(
        bench_subparsers,
        "simulate",
        "the simulator: events generated per second to a file",
        "Generate simulated days into a temporary file and measure the events per second on one core.",
    )
    parser.add_argument("--days", type=float, default=7.0, metavar="DAYS", help="simulated days")
    parser.add_argument(
        "--cases-per-day", type=int, default=SimulationConfig.cases_per_day, metavar="N", help="cases per day"
    )
    parser.add_argument("--seed", type=int, default=1, metavar="N", help="random seed")
    parser.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    print(json.dumps(bench_simulate(args.days, args.cases_per_day, args.seed)))
    return 0
