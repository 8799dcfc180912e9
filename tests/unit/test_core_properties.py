"""Property tests of the SLA core: the truth of a record does not depend on how its events reach the core.

Random event streams for a few case records are applied to :class:`SlaCore` with an explicit watermark schedule
(a list of events and :class:`Tick` s in arrival order): an event is applied with the latest tick so far as the
watermark (an event never moves it), every record is advanced at each tick (or only the due ones), and a final
tick far in the future flushes everything. The policy set below uses 24/7, 24/5 and 8/5 calendars in
Europe/Berlin with pauses, cancels, stops, warnings, escalations, a recurring KPI and a retroactive start.

The reference run is the *canonical* one: every event in canonical order (``occurred_at_ms``, ``event_id``), then
the final tick alone. Properties:

1. ticks anywhere, events in canonical order and in time (watermark < occurred_at + allowed_lateness): per record,
   the outputs (``Output.to_json()``) are those of the canonical run;
2. the same with events reordered, each still in time;
3. copies of events (same id, same content) change no output;
4. any order within max_lateness: the same final KPI clocks, and the same net alerts (per output id the highest
   revision, revoked ones dropped);
5. business time never counts paused time (an oracle rebuilds each KPI instance's history from its outputs);
6. a snapshot (through JSON) and a restore between any two steps change nothing;
7. no output before ``at_ms + allowed_lateness`` is reached, no (output id, revision) twice;

and advancing only the records that ``next_due_ms`` says are due is advancing all of them.

Core bugs these tests found are pinned as scenarios (below the driver) and run as explicit examples (regressions).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streams.calendar import BusinessCalendar
from streams.core import NEVER_MS, RecordState, SlaCore, snapshot
from streams.events import RecordEvent, Tick
from streams.outputs import Output, OutputKind
from streams.policy import KpiSpec, parse_policies

S, M, H, D = 1000, 60_000, 3_600_000, 86_400_000
T0 = int(datetime(2026, 5, 7, 4, 0, tzinfo=UTC).timestamp() * 1000)  # Thursday 06:00 in Berlin
SPAN = 5 * D  # events until Tuesday (a weekend and a holiday on the way)
FINAL = T0 + SPAN + 40 * D  # after every threshold and after max_lateness: everything is emitted and compacted
GRID = 15 * M  # deadlines of the policies below fall on this grid when the events do

POLICIES = """
version: "props"
lateness: {allowed: ALLOWED, max: MAX}
unmatched: ignore
calendars:
  always: {preset: "24/7", timezone: Europe/Berlin}
  weekdays: {preset: "24/5", timezone: Europe/Berlin}
  office: {preset: "8/5", timezone: Europe/Berlin, holidays: [2026-05-11]}
policies:
  - name: high_priority
    applies_when: {entity_type: case, priority: high}
    calendar: always
    kpis:
      - name: first_response
        target: 1h
        warning: 30m
        start: {kind: created}
        stop: [{kind: first_response}, {kind: email_sent, direction: outbound}]
        cancel: {kind: cancelled}
        on_warning: [{notify: owner}]
        on_breach: [{notify: supervisor}]
        escalations:
          - {after: 0s, actions: [{reassign: supervisor_queue}]}
          - {after: 2h, actions: [{notify: director}]}
      - name: resolution
        target: 8h
        warning: 75%
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: [waiting, at_external_service]}
        resume: {kind: status_changed, status: in_progress}
        start_from: reported_at
        on_reopen: resume
      - name: next_reply
        target: 2h
        recurring: true
        start: [{kind: created}, {kind: status_changed, status: in_progress}]
        stop: {kind: email_sent, direction: outbound}
        cancel: {kind: cancelled}
  - name: field_service
    applies_when: {entity_type: case, type: field_service}
    calendar: weekdays
    kpis:
      - name: first_response
        target: 4h
        warning: 75%
        start: {kind: created}
        stop: {kind: first_response}
        cancel: {kind: cancelled}
      - name: repair
        target: 1d
        warning: 12h
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: at_external_service}
        resume: {kind: status_changed, status: {not: at_external_service}}
        on_pause: [{notify: customer, template: at_manufacturer}]
        escalations: [{after: 4h, actions: [{notify: director}]}]
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    calendar: always
    kpis:
      - name: first_response
        target: 1h
        warning: 30m
        start: {kind: created}
        stop: [{kind: first_response}, {kind: email_sent, direction: outbound}]
        cancel: {kind: cancelled}
        escalations: [{after: 0s, actions: [{reassign: supervisor_queue}]}]
      - name: resolution
        target: 1d
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: waiting}
        resume: {kind: status_changed, status: {not: waiting}}
        start_from: reported_at
        on_reopen: resume
      - name: next_reply
        target: 4h
        warning: 3h
        recurring: true
        start: [{kind: created}, {kind: status_changed, status: in_progress}]
        stop: {kind: email_sent, direction: outbound}
  - name: premium
    applies_when: {entity_type: case, tier: Premium}
    calendar: weekdays
    kpis:
      - name: first_response
        target: 2h
        start: {kind: created}
        stop: [{kind: first_response}, {kind: email_sent, direction: outbound}]
      - name: resolution
        target: 1bd
        warning: 50%
        start: {kind: created}
        stop: {kind: resolved}
        pause: {kind: status_changed, status: [waiting, at_external_service]}
        resume: {kind: status_changed, status: in_progress}
        on_reopen: ignore
  - name: standard
    applies_when: {entity_type: case}
    calendar: office
    kpis:
      - name: first_response
        target: 1bd
        warning: 4h
        start: {kind: created}
        stop: [{kind: first_response}, {kind: email_sent, direction: outbound}]
        escalations: [{after: 1h, actions: [{notify: supervisor}]}]
      - name: resolution
        target: 2bd
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: waiting}
        resume: {kind: status_changed, status: {not: waiting}}
        on_reopen: restart
      - name: next_reply
        target: 4h
        recurring: true
        start: [{kind: created}, {kind: status_changed, status: in_progress}]
        stop: {kind: email_sent, direction: outbound}
"""


def make_core(allowed: str, maximum: str) -> SlaCore:
    text = POLICIES.replace("ALLOWED", allowed).replace("MAX", maximum)
    return SlaCore(parse_policies(yaml.safe_load(text), f"props-{allowed}-{maximum}"))


CORES = {(0, 30 * D): make_core("0s", "30d"), (10 * M, 30 * D): make_core("10m", "30d"), (0, D): make_core("0s", "1d")}
"""By (allowed lateness, max lateness). With 30 d no event of these few days is late enough to be rejected nor
forgotten before the final tick; with 1 d, records are compacted (checkpoints, pending events and revisions
dropped) while their later events still arrive."""

SETTINGS = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

Step = RecordEvent | Tick
Mode = Literal["all", "due"]
Arrival = Literal["in_order", "in_time", "anyhow"]
"""``in_order``: canonical order, every event in time (watermark < occurred_at + allowed_lateness) wherever the
ticks fall; ``in_time``: any order that keeps every event in time; ``anyhow``: any order (within max_lateness)."""


@dataclass(frozen=True)
class Case:
    """A scenario: the steps in arrival order, how ticks advance the records, and the lateness (which core)."""

    allowed_ms: int
    steps: tuple[Step, ...]
    mode: Mode = "all"
    max_ms: int = 30 * D

    @property
    def core(self) -> SlaCore:
        return CORES[self.allowed_ms, self.max_ms]

    @property
    def events(self) -> list[RecordEvent]:
        """Every event once."""
        unique: dict[str, RecordEvent] = {}
        for step in self.steps:
            if isinstance(step, RecordEvent):
                unique.setdefault(step.event_id, step)
        return list(unique.values())


# --- generated streams -------------------------------------------------------------------------------------------


@st.composite
def instants(draw: st.DrawFn, low: int = T0, high: int = T0 + SPAN) -> int:
    """An instant in [low, high]: any millisecond, or on the 15-minute grid (deadlines), or 1 ms off it."""
    how = draw(st.integers(0, 2))
    if how == 0:
        return draw(st.integers(low, high))
    instant = low + draw(st.integers(0, (high - low) // GRID)) * GRID
    return instant + (draw(st.sampled_from([-1, 1])) if how == 2 else 0)


@st.composite
def created_attributes(draw: st.DrawFn, at_ms: int) -> dict[str, str]:
    attributes = {
        "tier": draw(st.sampled_from(["VIP", "Premium", "Standard"])),
        "priority": draw(st.sampled_from(["normal", "high"])),
        "type": draw(st.sampled_from(["support", "field_service"])),
    }
    if draw(st.booleans()):  # a retroactive start: reported up to 3 h before the event
        reported = at_ms - draw(st.one_of(st.integers(0, 3 * H), st.integers(0, 12).map(lambda n: n * GRID)))
        if draw(st.booleans()):
            attributes["reported_at"] = str(reported)
        else:
            reported -= reported % S  # whole seconds: no float rounding in the ISO 8601 round trip
            attributes["reported_at"] = datetime.fromtimestamp(reported / 1000, UTC).isoformat()
    return attributes


OTHER_EVENTS = st.sampled_from(
    [
        ("status_changed", {"status": "waiting"}),
        ("status_changed", {"status": "in_progress"}),
        ("status_changed", {"status": "at_external_service"}),
        ("status_changed", {"status": "waiting"}),
        ("status_changed", {"status": "in_progress"}),
        ("email_sent", {"direction": "outbound"}),
        ("email_sent", {"direction": "inbound"}),
        ("first_response", {}),
        ("priority_changed", {"priority": "high"}),
        ("priority_changed", {"priority": "normal"}),
        ("resolved", {}),
        ("reopened", {}),
        ("cancelled", {}),
        ("merged", {"merged_into": "C-0"}),
    ]
).map(lambda kind_attributes: (kind_attributes[0], dict(kind_attributes[1])))
"""The other events of a record (pauses and resumes weigh more; a merge ends everything, so it weighs less)."""


@st.composite
def streams_of_events(draw: st.DrawFn) -> list[RecordEvent]:
    """Events of 1-3 case records: one ``created`` each (usually the first) and up to 7 others; unique ids."""
    events: list[RecordEvent] = []
    for r in range(1, draw(st.integers(1, 3)) + 1):
        record = f"C-{r}"
        times = sorted(draw(st.lists(instants(), min_size=1, max_size=8)))
        created = 0 if draw(st.integers(0, 3)) else draw(st.integers(0, len(times) - 1))
        for n, at_ms in enumerate(times):
            if n == created:
                kind, attributes = "created", draw(created_attributes(at_ms))
            else:
                kind, attributes = draw(OTHER_EVENTS)
            events.append(RecordEvent(f"{record}.e{n}", record, "case", kind, at_ms, attributes))
    return events


def canonical(events: Iterable[RecordEvent]) -> list[RecordEvent]:
    return sorted(events, key=lambda e: (e.occurred_at_ms, e.event_id))


@st.composite
def tick_instants(draw: st.DrawFn, events: Sequence[RecordEvent]) -> list[int]:
    """0-10 tick instants, sorted: anywhere, on the grid, or at (or next to) an event's instant (+ 10 min)."""
    near_events = st.sampled_from([e.occurred_at_ms for e in events]).flatmap(
        lambda t: st.sampled_from([t - 1, t, t + 1, t + 10 * M - 1, t + 10 * M, t + 10 * M + 1])
    )
    anywhere = instants(T0 - H, T0 + SPAN + D)
    return sorted(draw(st.lists(st.one_of(anywhere, near_events), max_size=10)))


@st.composite
def schedules(draw: st.DrawFn, events: Sequence[RecordEvent], lateness_ms: int, *, in_order: bool) -> list[Step]:
    """Events and ticks in arrival order, every event arriving while the watermark < occurred_at + lateness_ms.

    ``in_order``: the events arrive in canonical order. The final tick (``FINAL``) comes last.
    """
    ticks = draw(tick_instants(events))
    slots: list[list[RecordEvent]] = [[] for _ in range(len(ticks) + 1)]
    previous = 0
    for event in canonical(events):
        # slot k: after the first k ticks, when the watermark is ticks[k - 1]
        last = sum(1 for t in ticks if t < event.occurred_at_ms + lateness_ms)
        slot = last - draw(st.integers(0, last - (previous if in_order else 0)))  # simplest: as late as allowed
        previous = slot if in_order else 0
        slots[slot].append(event)
    steps: list[Step] = []
    for k, slot_events in enumerate(slots):
        steps += slot_events if in_order else draw(st.permutations(slot_events))
        if k < len(ticks):
            steps.append(Tick(ticks[k]))
    steps.append(Tick(FINAL))
    return steps


@st.composite
def cases(draw: st.DrawFn, arrival: Arrival) -> Case:
    """A random scenario on one of ``CORES``; some records start their clocks in the past (retroactively)."""
    allowed, maximum = draw(st.sampled_from(sorted(CORES)))
    events = draw(streams_of_events())
    steps = draw(schedules(events, maximum if arrival == "anyhow" else allowed, in_order=arrival == "in_order"))
    return Case(allowed, tuple(steps), draw(st.sampled_from(["all", "due"])), maximum)


# --- the driver --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What a run emitted, per record and in emission order (with the watermark of each emission), and its states."""

    outputs: dict[str, list[Output]] = field(default_factory=lambda: defaultdict(list))
    emissions: list[tuple[Output, int]] = field(default_factory=list)
    states: dict[str, RecordState] = field(default_factory=dict)

    def json(self) -> dict[str, list[dict[str, Any]]]:
        """Per record, the outputs as the replay CLI writes them."""
        return {record: [o.to_json() for o in outputs] for record, outputs in self.outputs.items() if outputs}

    def emit(self, outputs: list[Output], watermark: int) -> None:
        for output in outputs:
            self.outputs[output.record_id].append(output)
            self.emissions.append((output, watermark))


def round_trip(core: SlaCore, state: RecordState) -> RecordState:
    """The state through a snapshot, ``json.dumps`` and ``json.loads``, and a restore."""
    data = json.loads(json.dumps(snapshot(state)))
    restored = core.restore(data)
    assert snapshot(restored) == data
    return restored


def drive(core: SlaCore, steps: Sequence[Step], mode: Mode = "all", restore_after: Iterable[int] = ()) -> Result:
    """Apply ``steps`` in order.

    An event is applied with the latest tick so far as the watermark. At a tick, every record is advanced
    (``all``) or only those whose ``next_due_ms`` has come (``due``). After the steps whose indexes are in
    ``restore_after``, every state goes through a snapshot.
    """
    result = Result()
    states = result.states
    restore = set(restore_after)
    watermark = NEVER_MS
    for n, step in enumerate(steps):
        if isinstance(step, Tick):
            assert step.at_ms >= watermark, "ticks are monotonic"
            watermark = step.at_ms
            for state in [states[record_id] for record_id in sorted(states)]:
                if mode == "due":
                    due = core.next_due_ms(state)
                    if due is None or due > watermark:
                        continue
                result.emit(core.advance(state, watermark), watermark)
        else:
            states[step.record_id], outputs = core.apply(states.get(step.record_id), step, watermark)
            result.emit(outputs, watermark)
        if n in restore:
            for record_id, state in states.items():
                states[record_id] = round_trip(core, state)
    return result


def canonical_run(core: SlaCore, events: Sequence[RecordEvent]) -> Result:
    """Every event in canonical order, then the final tick alone: the truth."""
    return drive(core, [*canonical(events), Tick(FINAL)])


def run(case: Case, steps: Sequence[Step] | None = None, **kwargs: Any) -> Result:
    return drive(case.core, case.steps if steps is None else steps, case.mode, **kwargs)


def net_alerts(result: Result) -> dict[str, tuple[Any, ...]]:
    """What a consumer ends up with: per output id the highest revision, revoked ones dropped; alerts only."""
    latest: dict[str, Output] = {}
    for output, _ in result.emissions:
        if output.output_id not in latest or output.revision >= latest[output.output_id].revision:
            latest[output.output_id] = output
    return {i: o.signature() for i, o in latest.items() if o.is_alert and not o.revoked}


def outcomes(result: Result) -> dict[str, list[tuple[Any, ...]]]:
    """Per record, the final state of every KPI clock."""
    return {
        record_id: [
            (c.name, c.instance, c.policy, c.state_at(FINAL), c.used_ms, c.pauses, c.started_at_ms, c.ended_at_ms,
             c.cancelled)
            for c in state.clocks()
        ]
        for record_id, state in sorted(result.states.items())
    }  # fmt: skip


# --- pinned scenarios: core bugs these tests found, fixed, kept as regressions -----------------------------------

T = T0  # Thursday 2026-05-07 06:00 Berlin


def _event(event_id: str, kind: str, at_ms: int, **attributes: str) -> RecordEvent:
    return RecordEvent(event_id, event_id.partition(".")[0], "case", kind, at_ms, attributes)


# Fixed in 525cb15. Two priority changes retargeted each KPI twice: two KPI_RETARGETED outputs with one output id,
# so the refold after the in-time straggler C-1.e3 (which compares outputs by id) re-emitted both (revisions 1, 2).
RETARGETED_TWICE = Case(0, (
    _event("C-1.e0", "created", T, tier="VIP", priority="normal"),
    _event("C-1.e1", "priority_changed", T + 10 * M, priority="high"),
    _event("C-1.e2", "priority_changed", T + 20 * M, priority="normal"),
    _event("C-1.e4", "email_sent", T + 50 * M, direction="inbound"),
    Tick(T + 30 * M),
    _event("C-1.e3", "email_sent", T + 40 * M, direction="inbound"),
    Tick(FINAL),
))  # fmt: skip

# Fixed in 525cb15. A retroactive start (reported 1 h before) whose ``created`` arrives in time but after a
# later-keyed event: the refold emitted the KPI_STARTED of 05:00 with revision 1, never having emitted revision 0.
RETROACTIVE_REFOLDED = Case(0, (
    _event("C-1.e1", "first_response", T),
    Tick(T - 30 * M),
    _event("C-1.e0", "created", T, tier="VIP", priority="normal", reported_at=str(T - H)),
    Tick(FINAL),
))  # fmt: skip

# Fixed in 525cb15. Premium first_response (2 h on 24/5) breaches at 08:00; priority high 1 ms later retargets it
# to high_priority (1 h, warning 30 m), whose first mark (the warning) the old spec did not have: `crossed` was
# reset and the BREACH fired again, same output id, revision 0.
BREACH_TWICE = Case(0, (
    _event("C-1.e0", "created", T, tier="Premium", priority="normal", type="support"),
    _event("C-1.e1", "priority_changed", T + 2 * H + 1, priority="high"),
    Tick(FINAL),
))  # fmt: skip

# Fixed in 525cb15. A late ``created`` (the watermark already at its instant): driven with ``all``, the record had
# been advanced at the tick (nothing to emit), so the refold emitted its new outputs as corrections, revision 1;
# driven with ``due`` it had not, and they came out with revision 0.
LATE_AFTER_IDLE_ADVANCE = Case(0, (
    _event("C-1.e1", "first_response", T),
    Tick(T),
    _event("C-1.e0", "created", T, tier="VIP", priority="normal"),
    Tick(FINAL),
))  # fmt: skip

# Fixed in 3b110a2. high_priority first_response warns at 06:30; priority normal at 06:30:00.001 retargets it to
# premium (no warning: the crossed WARNING was forgotten), priority high 1 ms later back to high_priority: the
# WARNING fired again at 06:30:00.002, same output id, revision 0.
WARNING_REFIRED = Case(0, (
    _event("C-1.e0", "created", T, tier="Premium", priority="high"),
    _event("C-1.e1", "priority_changed", T + 30 * M + 1, priority="normal"),
    _event("C-1.e2", "priority_changed", T + 30 * M + 2, priority="high"),
    Tick(FINAL),
))  # fmt: skip

# Fixed in 3b110a2. The same, plus an in-time straggler (C-1.e3): the refold compares outputs by id, and the two
# WARNINGs were re-emitted as corrections (revisions 1 and 2), which the canonical run never emits.
WARNING_REFIRED_REFOLDED = Case(0, (
    *WARNING_REFIRED.steps[:3],
    _event("C-1.e4", "email_sent", T + 50 * M, direction="inbound"),
    Tick(T + 40 * M),
    _event("C-1.e3", "email_sent", T + 45 * M, direction="inbound"),
    Tick(FINAL),
))  # fmt: skip

# Fixed in f56ebd3 (revisions kept while a clock is open). Max lateness 1 d. field_service repair (1 d on 24/5,
# warning at 12 h) started Thursday 06:00; the tick of Friday 06:00 emits its WARNING and BREACH. The pause of
# Thursday 06:15 arrives late and revokes both (revision 1). The tick of Friday 06:30 compacts the record (its
# events are over a day old), which forgot the revisions. The resume of Thursday 06:30:00.001 then arrives, still
# within max lateness: the WARNING and BREACH that now happen were emitted with revision 0, below the revocations
# a consumer keeps, so both alerts were lost.
REVISIONS_COMPACTED = Case(0, (
    _event("C-1.e0", "created", T, tier="VIP", priority="normal", type="field_service"),
    Tick(T + D),
    _event("C-1.e1", "status_changed", T + 15 * M, status="at_external_service"),
    Tick(T + D + 30 * M),
    _event("C-1.e2", "status_changed", T + 30 * M + 1, status="waiting"),
    Tick(FINAL),
), "all", D)  # fmt: skip

# Open. Max lateness 1 d. VIP resolution (1 d on 24/7) breaches Friday 06:00 (emitted by that tick); the pause of
# Thursday 07:00 arrives late and revokes the BREACH (revision 1); the case is resolved Friday 07:00, so no clock
# of the record is open any more. The tick of Saturday 08:00 compacts the record and forgets the revisions. The
# case is reopened Saturday 09:00 (an event in time): the resolution resumes and breaches for real on Sunday 08:00,
# emitted with revision 0, below the revocation a consumer keeps: the breach is lost.
REVISIONS_COMPACTED_REOPENED = Case(0, (
    _event("C-1.e0", "created", T, tier="VIP", priority="normal"),
    _event("C-1.e1", "email_sent", T + 10 * M, direction="outbound"),
    Tick(T + D),
    _event("C-1.e2", "status_changed", T + H, status="waiting"),
    _event("C-1.e3", "resolved", T + D + H),
    Tick(T + 2 * D + 2 * H),
    _event("C-1.e4", "reopened", T + 2 * D + 3 * H),
    Tick(FINAL),
), "all", D)  # fmt: skip

# Fixed: the outputs a retroactive start reveals are released at its event's instant (``visible_at_ms``). The
# created event of 06:00 (reported 05:00: a retroactive start) arrives first, in time; the core used to emit the
# resolution KPI_STARTED of 05:00 at once (vip: 1 d). The priority change of 06:00, which sorts before it (same
# instant, smaller id), arrives next, in time too: the refold corrected the start to high_priority (8 h), revision 1,
# where the canonical run emits only the high_priority start, revision 0.
RETROACTIVE_BEFORE_STRAGGLER = Case(0, (
    Tick(T - 1),
    _event("C-1.e1", "created", T, tier="VIP", reported_at=str(T - H)),
    _event("C-1.e0", "priority_changed", T, priority="high"),
    Tick(FINAL),
))  # fmt: skip


# --- 1, 2, 3: events that arrive in time give exactly the truth ---------------------------------------------------


@SETTINGS
@given(cases("in_order"))
def test_ticks_anywhere_give_the_canonical_outputs(case: Case) -> None:
    assert run(case).json() == canonical_run(case.core, case.events).json()


@SETTINGS
@given(cases("in_time"))
@example(RETROACTIVE_BEFORE_STRAGGLER)
@example(RETARGETED_TWICE)
@example(RETROACTIVE_REFOLDED)
@example(WARNING_REFIRED_REFOLDED)
def test_reordering_within_allowed_lateness_gives_the_canonical_outputs(case: Case) -> None:
    assert run(case).json() == canonical_run(case.core, case.events).json()


@st.composite
def with_duplicates(draw: st.DrawFn, steps: Sequence[Step], lateness_ms: int) -> list[Step]:
    """``steps`` with copies of some events inserted after the original while watermark < occurred + lateness."""
    steps = list(steps)
    for _ in range(draw(st.integers(1, 6))):
        original = draw(st.sampled_from([n for n, s in enumerate(steps) if isinstance(s, RecordEvent)]))
        event = steps[original]
        assert isinstance(event, RecordEvent)
        last = original + 1
        while last < len(steps):
            step = steps[last]
            if isinstance(step, Tick) and step.at_ms >= event.occurred_at_ms + lateness_ms:
                break
            last += 1
        copy = RecordEvent(
            event.event_id, event.record_id, event.entity_type, event.kind, event.occurred_at_ms,
            dict(event.attributes),
        )  # fmt: skip
        steps.insert(draw(st.integers(original + 1, last)), copy)
    return steps


@SETTINGS
@given(st.data(), st.sampled_from(["in_order", "in_time", "anyhow"]))
def test_duplicates_change_no_output(data: st.DataObject, arrival: Arrival) -> None:
    case = data.draw(cases(arrival))
    lateness = case.max_ms if arrival == "anyhow" else case.allowed_ms
    duplicated = data.draw(with_duplicates(case.steps, lateness))
    assert len(duplicated) > len(case.steps)
    assert run(case, duplicated).json() == run(case).json()


# --- 4: final outcomes do not depend on the order of arrival within max_lateness -----------------------------------


@SETTINGS
@given(cases("anyhow"))
@example(REVISIONS_COMPACTED_REOPENED)
def test_final_outcomes_do_not_depend_on_the_order_of_arrival(case: Case) -> None:
    result, truth = run(case), canonical_run(case.core, case.events)
    assert outcomes(result) == outcomes(truth)
    assert net_alerts(result) == net_alerts(truth)


def test_a_revoked_alert_that_happens_after_compaction_is_emitted_above_its_revocation() -> None:
    case = REVISIONS_COMPACTED
    assert net_alerts(run(case)) == net_alerts(canonical_run(case.core, case.events))
    check_emissions(case)


# --- 5: business time, wall time and paused time ---------------------------------------------------------------


@dataclass
class History:
    """One KPI instance rebuilt from its outputs: running segments, the pause ledger, calendars in force."""

    runs: list[tuple[int, int | None]] = field(default_factory=list)
    pauses: list[tuple[int, int | None]] = field(default_factory=list)
    calendars: list[tuple[int, BusinessCalendar]] = field(default_factory=list)
    reopened: list[int] = field(default_factory=list)

    @classmethod
    def of(cls, core: SlaCore, outputs: Sequence[Output]) -> History:
        history = cls()
        running: int | None = None
        paused: int | None = None
        for o in outputs:
            kind, at = o.kind, o.at_ms
            if kind in (OutputKind.KPI_STARTED, OutputKind.KPI_RETARGETED):
                history.calendars.append((at, spec_of(core, o).calendar))
            if kind in (OutputKind.KPI_STARTED, OutputKind.KPI_RESUMED, OutputKind.KPI_REOPENED):
                if paused is not None:
                    history.pauses.append((paused, at))
                    paused = None
                running = at
                if kind is OutputKind.KPI_REOPENED:
                    history.reopened.append(at)
            elif kind in (OutputKind.KPI_PAUSED, OutputKind.KPI_SUCCEEDED, OutputKind.KPI_CANCELLED):
                if running is not None:
                    history.runs.append((running, at))
                    running = None
                if paused is not None:
                    history.pauses.append((paused, at))
                    paused = None
                if kind is OutputKind.KPI_PAUSED:
                    paused = at
        if running is not None:
            history.runs.append((running, None))
        if paused is not None:
            history.pauses.append((paused, None))
        return history

    def business(self, at_ms: int) -> int:
        """Business ms counted until ``at_ms``: the running segments, each piece on the calendar then in force."""
        total = 0
        for start, end in self.runs:
            stop = at_ms if end is None else min(end, at_ms)
            for n, (since, calendar) in enumerate(self.calendars):
                until = self.calendars[n + 1][0] if n + 1 < len(self.calendars) else stop
                total += calendar.elapsed(max(start, since), min(stop, until))
        return total

    def paused(self, started_ms: int, at_ms: int) -> int:
        """The overlap of the pause ledger with [started_ms, at_ms]."""
        return sum(
            max(0, (at_ms if end is None else min(end, at_ms)) - max(start, started_ms)) for start, end in self.pauses
        )

    def always_open_until(self, at_ms: int) -> bool:
        """Counted on 24/7 all along and never reopened (the time between an end and a reopen is not a pause)."""
        calendars = [calendar for since, calendar in self.calendars if since <= at_ms]
        return all(c.name == "always" for c in calendars) and not any(t <= at_ms for t in self.reopened)


def spec_of(core: SlaCore, output: Output) -> KpiSpec:
    policy = core.policies.policy(output.policy)
    spec = policy.kpi(output.kpi) if policy else None
    assert spec is not None
    return spec


def check_figures(output: Output) -> None:
    """What holds for any output, on any calendar: business time never exceeds the wall time not paused."""
    assert output.wall_elapsed_ms == output.at_ms - output.started_at_ms, output
    assert 0 <= output.paused_ms <= output.wall_elapsed_ms, output
    assert 0 <= output.business_elapsed_ms <= output.wall_elapsed_ms - output.paused_ms, output


def check_durations(core: SlaCore, truth: Result) -> None:
    """Every output of a canonical run against its KPI instance's history (rebuilt from the outputs)."""
    by_instance: dict[tuple[str, str, int], list[Output]] = defaultdict(list)
    for output, _ in truth.emissions:
        by_instance[output.record_id, output.kpi, output.kpi_instance].append(output)
    for (record_id, kpi, instance), outputs in by_instance.items():
        history = History.of(core, outputs)
        for o in outputs:
            check_figures(o)
            assert o.paused_ms == history.paused(o.started_at_ms, o.at_ms), o
            if history.always_open_until(o.at_ms):
                assert o.business_elapsed_ms == o.wall_elapsed_ms - o.paused_ms, o
            assert o.business_elapsed_ms == history.business(o.at_ms), o
        clock = truth.states[record_id].live.clock(kpi)
        if clock is not None and clock.instance == instance:
            assert [(start, end) for start, end, _ in clock.pauses] == history.pauses


@SETTINGS
@given(cases("anyhow"))
def test_paused_time_is_never_counted(case: Case) -> None:
    check_durations(case.core, canonical_run(case.core, case.events))
    for output, _ in run(case).emissions:  # corrections and revocations too
        check_figures(output)


# --- 6: snapshots ------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.data(), cases("anyhow"))  # late events too: checkpoints, pending events and revisions are stored
def test_snapshot_and_restore_between_steps_change_no_output(data: st.DataObject, case: Case) -> None:
    restore_after = data.draw(st.sets(st.integers(0, len(case.steps) - 1)))
    plain, restored = run(case), run(case, restore_after=restore_after)
    assert restored.json() == plain.json()
    assert {r: snapshot(s) for r, s in restored.states.items()} == {r: snapshot(s) for r, s in plain.states.items()}


def test_a_record_id_with_a_slash_survives_a_snapshot() -> None:
    """Fixed in 525cb15: the sequence was read back from the last '/'-part of the output id."""
    core = CORES[0, 30 * D]
    state, _ = core.apply(None, RecordEvent("e0", "case/42", "case", "created", T, {"tier": "VIP"}), NEVER_MS)
    round_trip(core, state)


# --- 7: emission -------------------------------------------------------------------------------------------------


def check_emissions(case: Case) -> None:
    """No output before its time; no (output id, revision) twice."""
    seen: set[tuple[str, int]] = set()
    for output, watermark in run(case).emissions:
        assert output.at_ms + case.allowed_ms <= watermark, output
        assert (output.output_id, output.revision) not in seen, output
        seen.add((output.output_id, output.revision))


@SETTINGS
@given(cases("anyhow"))
@example(REVISIONS_COMPACTED_REOPENED)
@example(BREACH_TWICE)
@example(WARNING_REFIRED)
def test_outputs_are_emitted_once_and_never_early(case: Case) -> None:
    check_emissions(case)


# --- the driver's two ways of advancing agree ----------------------------------------------------------------------


@SETTINGS
@given(cases("anyhow"))
def test_advancing_only_due_records_is_advancing_all(case: Case) -> None:
    """A record that is not due has nothing to emit, and both drivers reach the same outcomes.

    (With events in time both give the canonical outputs: tests 1 and 2 draw the mode. With late events the
    sequences of corrections may differ, both valid: advancing an idle record moves its emission mark, so an
    output that a late event moves is corrected in place (revision + 1) in one, revoked and emitted again at its
    new instant in the other.)
    """
    core, watermark = case.core, NEVER_MS
    states: dict[str, RecordState] = {}
    for step in case.steps:
        if isinstance(step, RecordEvent):
            states[step.record_id], _ = core.apply(states.get(step.record_id), step, watermark)
            continue
        watermark = step.at_ms
        for state in states.values():
            due = core.next_due_ms(state)
            if due is None or due > watermark:
                assert core.advance(round_trip(core, state), watermark) == [], (state.record_id, due, watermark)
            core.advance(state, watermark)
    every, due_only = drive(core, case.steps, "all"), drive(core, case.steps, "due")
    assert outcomes(due_only) == outcomes(every)
    assert net_alerts(due_only) == net_alerts(every)


def test_a_late_event_gets_the_same_revisions_whether_idle_records_were_advanced_or_not() -> None:
    case = LATE_AFTER_IDLE_ADVANCE
    every, due_only = drive(case.core, case.steps, "all"), drive(case.core, case.steps, "due")
    assert due_only.json() == every.json()
