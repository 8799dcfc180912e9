"""Property tests of the SLA core: the truth of a record does not depend on how its events reach the core.

Random event streams for a few case records are applied to :class:`SlaCore` with an explicit watermark schedule
(a list of events and :class:`Tick` s in arrival order): an event is applied with the latest tick so far as the
watermark (an event never moves it), every record is advanced at each tick (or only the due ones), and a final
tick far in the future flushes everything. The policy set below uses 24/7, 24/5 and 8/5 calendars in
Europe/Berlin with pauses, cancels, stops, warnings, escalations, a recurring KPI and a retroactive start.

The reference run is the *canonical* one: every event in canonical order (``occurred_at_ms``, ``event_id``), then
the final tick alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, given, settings
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


CORES = {0: make_core("0s", "30d"), 10 * M: make_core("10m", "30d")}
"""By allowed lateness; max_lateness 30 d: no event of a few days is ever rejected."""

SETTINGS = settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

Step = RecordEvent | Tick
Mode = Literal["all", "due"]


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
    if draw(st.booleans()):  # a retroactive start, up to 3 h before the event
        reported = at_ms - draw(st.one_of(st.integers(0, 3 * H), st.integers(0, 12).map(lambda n: n * GRID)))
        if draw(st.booleans()):
            attributes["reported_at"] = str(reported)
        else:
            reported -= reported % S  # whole seconds: ISO 8601 has no float rounding to worry about
            attributes["reported_at"] = datetime.fromtimestamp(reported / 1000, UTC).isoformat()
    return attributes


OTHER_EVENTS = st.one_of(
    st.tuples(st.just("status_changed"), st.sampled_from(["waiting", "at_external_service", "in_progress"])).map(
        lambda kv: (kv[0], {"status": kv[1]})
    ),
    st.just(("first_response", {})),
    st.sampled_from([("email_sent", {"direction": "outbound"}), ("email_sent", {"direction": "inbound"})]),
    st.just(("resolved", {})),
    st.just(("cancelled", {})),
    st.just(("reopened", {})),
    st.sampled_from(["high", "normal"]).map(lambda p: ("priority_changed", {"priority": p})),
    st.just(("merged", {"merged_into": "C-0"})),
)


@st.composite
def streams_of_events(draw: st.DrawFn) -> list[RecordEvent]:
    """Events of 1-3 case records, each with one ``created`` (usually its first event) and up to 7 others."""
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
def ticks(draw: st.DrawFn, events: Sequence[RecordEvent]) -> list[int]:
    """0-10 tick instants (sorted): anywhere, on the grid, or exactly at (or next to) an event's instant."""
    near_events = st.sampled_from([e.occurred_at_ms for e in events]).flatmap(
        lambda t: st.sampled_from([t - 1, t, t + 1, t + 10 * M - 1, t + 10 * M, t + 10 * M + 1])
    )
    anywhere = instants(T0 - H, T0 + SPAN + D)
    return sorted(draw(st.lists(st.one_of(anywhere, near_events), max_size=10)))


@st.composite
def schedules(
    draw: st.DrawFn, events: Sequence[RecordEvent], lateness_ms: int, *, in_order: bool
) -> list[Step]:
    """Events and ticks in arrival order, every event arriving while the watermark < occurred_at + lateness_ms.

    ``in_order``: events arrive in canonical order; otherwise in any order that keeps each one in time. The final
    tick (``FINAL``) comes last.
    """
    instants_ = draw(ticks(events))
    slots: list[list[RecordEvent]] = [[] for _ in range(len(instants_) + 1)]
    previous = 0
    for event in canonical(events):
        # slot k: after the first k ticks, so the watermark is instants_[k - 1]
        last = sum(1 for t in instants_ if t < event.occurred_at_ms + lateness_ms)
        slot = draw(st.integers(previous if in_order else 0, last))
        if in_order:
            previous = slot
        slots[slot].append(event)
    steps: list[Step] = []
    for k, slot_events in enumerate(slots):
        steps += slot_events if in_order else draw(st.permutations(slot_events))
        if k < len(instants_):
            steps.append(Tick(instants_[k]))
    steps.append(Tick(FINAL))
    return steps


# --- the driver --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What a run emitted, per record and in emission order (with the watermark of each emission), and its states."""

    outputs: dict[str, list[Output]] = field(default_factory=lambda: defaultdict(list))
    emissions: list[tuple[Output, int]] = field(default_factory=list)
    states: dict[str, RecordState] = field(default_factory=dict)

    def json(self) -> dict[str, list[dict[str, Any]]]:
        return {record: [o.to_json() for o in outputs] for record, outputs in self.outputs.items() if outputs}

    def emit(self, outputs: list[Output], watermark: int) -> None:
        for output in outputs:
            self.outputs[output.record_id].append(output)
            self.emissions.append((output, watermark))


def round_trip(core: SlaCore, state: RecordState) -> RecordState:
    data = json.loads(json.dumps(snapshot(state)))
    restored = core.restore(data)
    assert snapshot(restored) == data
    return restored


def drive(core: SlaCore, steps: Sequence[Step], mode: Mode = "all", restore_after: Iterable[int] = ()) -> Result:
    """Apply ``steps`` in order; ``restore_after``: step indexes after which every state goes through a snapshot."""
    result = Result()
    states = result.states
    restore = set(restore_after)
    watermark = NEVER_MS
    for n, step in enumerate(steps):
        if isinstance(step, Tick):
            assert step.at_ms >= watermark, "ticks are monotonic"
            watermark = step.at_ms
            for record_id, state in sorted(states.items()):
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
    return drive(core, [*canonical(events), Tick(FINAL)])


def net(result: Result, *, alerts_only: bool = True) -> dict[str, tuple[Any, ...]]:
    """What a consumer ends up with: per output id the highest revision, revoked ones dropped."""
    latest: dict[str, Output] = {}
    for output, _ in result.emissions:
        if output.output_id not in latest or output.revision >= latest[output.output_id].revision:
            latest[output.output_id] = output
    return {
        output_id: output.signature()
        for output_id, output in latest.items()
        if not output.revoked and (output.is_alert or not alerts_only)
    }


def outcomes(result: Result) -> dict[str, list[tuple[Any, ...]]]:
    """Per record, the final state of every KPI clock."""
    return {
        record_id: [
            (c.name, c.instance, c.policy, c.state_at(FINAL).value, c.used_ms, c.pauses, c.started_at_ms,
             c.ended_at_ms, c.cancelled)
            for c in state.clocks()
        ]
        for record_id, state in sorted(result.states.items())
    }  # fmt: skip


cores = st.sampled_from(sorted(CORES)).map(lambda allowed: (allowed, CORES[allowed]))
modes: st.SearchStrategy[Mode] = st.sampled_from(["all", "due"])


# --- 1, 2, 3: events that arrive in time give exactly the truth ---------------------------------------------------


@SETTINGS
@given(st.data(), cores, streams_of_events(), modes)
def test_ticks_anywhere_give_the_canonical_outputs(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent], mode: Mode
) -> None:
    allowed, core = core_
    steps = data.draw(schedules(events, allowed, in_order=True))
    assert drive(core, steps, mode).json() == canonical_run(core, events).json()


@SETTINGS
@given(st.data(), cores, streams_of_events(), modes)
def test_reordering_within_allowed_lateness_gives_the_canonical_outputs(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent], mode: Mode
) -> None:
    allowed, core = core_
    steps = data.draw(schedules(events, allowed, in_order=False))
    assert drive(core, steps, mode).json() == canonical_run(core, events).json()


@st.composite
def with_duplicates(draw: st.DrawFn, steps: list[Step], lateness_ms: int) -> list[Step]:
    """``steps`` with copies of some events inserted after the original, while watermark < occurred + lateness."""
    steps = list(steps)
    for _ in range(draw(st.integers(1, 6))):
        positions = [n for n, s in enumerate(steps) if isinstance(s, RecordEvent)]
        original = draw(st.sampled_from(positions))
        event = steps[original]
        assert isinstance(event, RecordEvent)
        watermark = max([NEVER_MS, *(s.at_ms for s in steps[: original + 1] if isinstance(s, Tick))])
        last = original + 1
        while last < len(steps):
            step = steps[last]
            if isinstance(step, Tick):
                if step.at_ms >= event.occurred_at_ms + lateness_ms:
                    break
                watermark = step.at_ms
            last += 1
        copy = RecordEvent(
            event.event_id, event.record_id, event.entity_type, event.kind, event.occurred_at_ms,
            dict(event.attributes),
        )  # fmt: skip
        steps.insert(draw(st.integers(original + 1, last)), copy)
    return steps


@SETTINGS
@given(st.data(), cores, streams_of_events())
def test_duplicates_change_no_output(data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent]) -> None:
    allowed, core = core_
    in_time = data.draw(schedules(events, allowed, in_order=data.draw(st.booleans())))
    assert drive(core, data.draw(with_duplicates(in_time, allowed))).json() == canonical_run(core, events).json()
    # Copies that arrive late (but within max_lateness) change nothing either, whatever the order of arrival.
    anyhow = data.draw(schedules(events, 30 * D, in_order=False))
    assert drive(core, data.draw(with_duplicates(anyhow, 30 * D))).json() == drive(core, anyhow).json()


# --- 4: final outcomes do not depend on the order of arrival within max_lateness -----------------------------------


@SETTINGS
@given(st.data(), cores, streams_of_events(), modes)
def test_final_outcomes_do_not_depend_on_the_order_of_arrival(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent], mode: Mode
) -> None:
    _, core = core_
    steps = data.draw(schedules(events, 30 * D, in_order=False))  # max_lateness: nothing is rejected
    run, reference = drive(core, steps, mode), canonical_run(core, events)
    assert outcomes(run) == outcomes(reference)
    assert net(run) == net(reference)


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

    def calendar_pieces(self, start: int, end: int) -> list[tuple[int, int, BusinessCalendar]]:
        pieces = []
        for n, (since, calendar) in enumerate(self.calendars):
            until = self.calendars[n + 1][0] if n + 1 < len(self.calendars) else end
            lo, hi = max(start, since), min(end, until)
            if hi > lo:
                pieces.append((lo, hi, calendar))
        return pieces

    def business(self, at_ms: int) -> int:
        total = 0
        for start, end in self.runs:
            stop = at_ms if end is None else min(end, at_ms)
            total += sum(calendar.elapsed(lo, hi) for lo, hi, calendar in self.calendar_pieces(start, stop))
        return total

    def paused(self, started_ms: int, at_ms: int) -> int:
        return sum(
            max(0, (at_ms if end is None else min(end, at_ms)) - max(start, started_ms)) for start, end in self.pauses
        )

    def always_open_until(self, at_ms: int) -> bool:
        """Counted on 24/7 all along and never reopened (the time between an end and a reopen is not a pause)."""
        return all(c.name == "always" for t, c in self.calendars if t <= at_ms) and not any(
            t <= at_ms for t in self.reopened
        )


def spec_of(core: SlaCore, output: Output) -> KpiSpec:
    policy = core.policies.policy(output.policy)
    spec = policy.kpi(output.kpi) if policy else None
    assert spec is not None
    return spec


def check_durations(core: SlaCore, result: Result) -> None:
    by_instance: dict[tuple[str, str, int], list[Output]] = defaultdict(list)
    for output, _ in result.emissions:
        by_instance[output.record_id, output.kpi, output.kpi_instance].append(output)
    for (record_id, kpi, instance), outputs in by_instance.items():
        history = History.of(core, outputs)
        for o in outputs:
            what = f"{o.output_id} at {o.at_ms}"
            assert o.wall_elapsed_ms == o.at_ms - o.started_at_ms, what
            assert o.paused_ms == history.paused(o.started_at_ms, o.at_ms), what
            assert o.business_elapsed_ms <= o.wall_elapsed_ms, what
            assert o.business_elapsed_ms <= o.wall_elapsed_ms - o.paused_ms, what
            if history.always_open_until(o.at_ms):
                assert o.business_elapsed_ms == o.wall_elapsed_ms - o.paused_ms, what
            assert o.business_elapsed_ms == history.business(o.at_ms), what
        clock = result.states[record_id].live.clock(kpi)
        if clock is not None and clock.instance == instance:
            assert [(start, end) for start, end, _ in clock.pauses] == history.pauses


@SETTINGS
@given(st.data(), cores, streams_of_events())
def test_paused_time_is_never_counted(data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent]) -> None:
    allowed, core = core_
    check_durations(core, canonical_run(core, events))
    check_durations(core, drive(core, data.draw(schedules(events, allowed, in_order=False))))


# --- 6: snapshots ------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.data(), cores, streams_of_events(), modes)
def test_snapshot_and_restore_between_steps_change_no_output(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent], mode: Mode
) -> None:
    _, core = core_
    steps = data.draw(schedules(events, 30 * D, in_order=False))  # late events too: checkpoints and revisions
    restore_after = data.draw(st.sets(st.integers(0, len(steps) - 1)))
    plain, restored = drive(core, steps, mode), drive(core, steps, mode, restore_after)
    assert restored.json() == plain.json()
    assert {r: snapshot(s) for r, s in restored.states.items()} == {r: snapshot(s) for r, s in plain.states.items()}


# --- 7: emission -------------------------------------------------------------------------------------------------


@SETTINGS
@given(st.data(), cores, streams_of_events(), modes)
def test_outputs_are_emitted_once_and_never_early(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent], mode: Mode
) -> None:
    allowed, core = core_
    steps = data.draw(schedules(events, 30 * D, in_order=False))
    seen: set[tuple[str, int]] = set()
    for output, watermark in drive(core, steps, mode).emissions:
        assert output.at_ms + allowed <= watermark, output.output_id
        assert (output.output_id, output.revision) not in seen, (output.output_id, output.revision)
        seen.add((output.output_id, output.revision))


# --- the driver's two ways of advancing agree ----------------------------------------------------------------------


@SETTINGS
@given(st.data(), cores, streams_of_events())
def test_advancing_only_due_records_is_advancing_all(
    data: st.DataObject, core_: tuple[int, SlaCore], events: list[RecordEvent]
) -> None:
    _, core = core_
    steps = data.draw(schedules(events, 30 * D, in_order=False))
    every, due = drive(core, steps, "all"), drive(core, steps, "due")
    assert due.json() == every.json()
    assert [w for _, w in due.emissions] == [w for _, w in every.emissions]
    assert outcomes(due) == outcomes(every)
