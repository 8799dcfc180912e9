"""The SLA core: per-record state and the two step functions, ``apply`` (an event) and ``advance`` (time).

The same code runs in the Faust agent, the replay CLI and the benchmarks. A
driver keeps one :class:`RecordState` per record id, calls :meth:`SlaCore.apply`
for each event of the record with the current watermark, and
:meth:`SlaCore.advance` when the watermark passes :meth:`SlaCore.next_due_ms`.

**Truth.** A record's outputs are a function of the set of its events: they
are folded in canonical order (``occurred_at_ms``, then ``event_id``), each
event first crossing every threshold due strictly before its instant (a KPI
met exactly at its deadline is met). Thresholds crossed by time alone stay
*virtual* (computed, not stored) until an event or the watermark passes them.

**Emission.** An output whose instant is ``at_ms`` is emitted once the
watermark reaches ``at_ms + allowed_lateness``; ``emitted_until_ms`` remembers
how far a record has emitted. So if every event arrives before the watermark
passes ``occurred_at + allowed_lateness``, the outputs are exactly the truth,
however the events are batched and wherever the ticks fall.

**Late events.** An event older than ``watermark - max_lateness`` is rejected
(:class:`EventRejected`, reason ``late``). A later-than-allowed event within
``max_lateness`` is still applied: the record is re-folded from its checkpoint
(the state before its oldest event that could still change), and the outputs
already emitted are compared with the new truth: each one that changed is
emitted again with ``revision`` + 1 (``revoked`` if it no longer happens), and
each newly true one is emitted. Final outcomes therefore do not depend on the
order of arrival within ``max_lateness``. Events older than
``watermark - max_lateness`` can no longer arrive, so they are forgotten
(compaction), and only records with recent events carry a history.

**Duplicates** (same ``event_id``) change nothing.

Times are UTC epoch milliseconds, durations milliseconds.
"""

from __future__ import annotations

import bisect
import heapq
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from streams.errors import DeadLetterReason, SlaflowError
from streams.events import RecordEvent, format_instant_ms, parse_instant_ms
from streams.kpi import KpiClock, Threshold
from streams.outputs import Output, OutputKind, output_from_json
from streams.policy import Action, KpiSpec, Policy, PolicySet, format_duration_ms

NEVER_MS: Final = -(2**62)
"""Before any instant: the emission mark of a record that has emitted nothing."""

_THRESHOLD_KIND: Final = {
    Threshold.WARNING: OutputKind.WARNING,
    Threshold.BREACH: OutputKind.BREACH,
    Threshold.ESCALATION: OutputKind.ESCALATION,
}


class EventRejected(SlaflowError):
    """An event the core will not apply: ``reason`` late, no_policy or unknown_policy_version (of
    :class:`~streams.errors.DeadLetterReason`). Not retriable: dead-letter it."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _intern(attributes: Mapping[str, str]) -> dict[str, str]:
    """Share the strings of attribute names and short values (tiers, queues, owners) across records."""
    intern = sys.intern
    return {intern(k): intern(v) if len(v) <= 32 else v for k, v in attributes.items()}


@dataclass(slots=True)
class Folded:
    """A record as of the events folded into it: attributes, KPI clocks, and outputs not yet final."""

    entity_type: str
    attributes: dict[str, str]
    clocks: tuple[KpiClock, ...] = ()
    last_at: int | None = None
    """Instant of the last event folded (UTC epoch ms). An event at that same instant takes the slow path
    (re-fold from the checkpoint, whose pending events give the order by id), so the id is not kept."""
    timeline: tuple[Output, ...] = ()
    merged: bool = False
    policy: Policy | None = field(default=None, compare=False)
    """The policy the current attributes select (a cache; ``selected`` says whether it is computed)."""
    selected: bool = field(default=False, compare=False)

    def copy(self) -> Folded:
        """An independent copy (clocks are mutable; attribute dicts and outputs are never mutated)."""
        clocks = tuple(c.clone() for c in self.clocks)
        return Folded(self.entity_type, self.attributes, clocks, self.last_at, self.timeline, self.merged,
                      self.policy, self.selected)  # fmt: skip

    def clock(self, name: str) -> KpiClock | None:
        """The current instance of the KPI called ``name``."""
        for clock in self.clocks:
            if clock.spec.name == name:
                return clock
        return None


@dataclass(slots=True)
class RecordState:
    """Everything the core keeps about one record.

    ``live`` is the truth as of every event applied; ``checkpoint`` the state
    before the oldest event in ``pending`` (events that a late arrival could
    still reorder), both ``None``/empty once every event is older than
    ``watermark - max_lateness``.
    """

    record_id: str
    live: Folded
    watermark_ms: int = NEVER_MS
    emitted_until_ms: int = NEVER_MS
    checkpoint: Folded | None = None
    pending: list[RecordEvent] | None = None
    revisions: dict[str, int] | None = None

    def clocks(self) -> tuple[KpiClock, ...]:
        """The current KPI clocks of the record."""
        return self.live.clocks


class SlaCore:
    """The SLA step functions for a policy set (and the earlier versions its running KPIs were pinned to)."""

    def __init__(self, policies: PolicySet, *, previous: Iterable[PolicySet] = ()) -> None:
        self.policies = policies
        self.versions: dict[str, PolicySet] = {p.version: p for p in previous}
        self.versions[policies.version] = policies
        self.allowed_ms = policies.allowed_lateness_ms
        self.max_ms = max(policies.max_lateness_ms, policies.allowed_lateness_ms)
        self._selector_fields = frozenset(
            name for version in self.versions.values() for p in version.policies for name in p.applies_when.fields()
        )

    # -- public step functions ------------------------------------------------------------------

    def restore(self, data: dict[str, Any]) -> RecordState:
        """The state that :func:`snapshot` stored. KPIs find their spec in the version they were pinned to."""
        record_id = data["r"]
        pending = data["p"]
        return RecordState(
            record_id=record_id,
            live=self._folded(data["l"]),
            watermark_ms=data["w"],
            emitted_until_ms=data["e"],
            checkpoint=None if data["c"] is None else self._folded(data["c"]),
            pending=None if pending is None else [
                RecordEvent(event_id, record_id, entity, kind, at, attributes)
                for event_id, entity, kind, at, attributes in pending
            ],
            revisions=data["v"],
        )  # fmt: skip

    def _folded(self, data: dict[str, Any]) -> Folded:
        clocks = []
        for row in data["k"]:
            version, policy, name, instance, started, run_start, used, crossed, pauses, ended, cancelled, fired, \
                reopens, retargets = row[:14]  # fmt: skip
            spec = self._spec(version, policy, name)
            clocks.append(KpiClock(spec, policy, version, instance, started, run_start, used, crossed,
                                   tuple((p[0], p[1], p[2]) for p in pauses), ended, cancelled, fired, reopens,
                                   retargets, row[14] if len(row) > 14 else None))  # fmt: skip
        return Folded(data["t"], _intern(data["a"]), tuple(clocks), data["lk"],
                      tuple(output_from_json(o) for o in data["tl"]), data["m"])  # fmt: skip

    def _spec(self, version: str, policy_name: str, kpi_name: str) -> KpiSpec:
        for policies in (self.versions.get(version), self.policies):
            policy = policies.policy(policy_name) if policies else None
            spec = policy.kpi(kpi_name) if policy else None
            if spec is not None:
                return spec
        raise SnapshotError(
            f"stored KPI {policy_name}/{kpi_name} (policy version {version}) is in neither that version nor the "
            f"current policy file {self.policies.source} (version {self.policies.version})"
        )

    def apply(self, state: RecordState | None, event: RecordEvent, now_ms: int) -> tuple[RecordState, list[Output]]:
        """Apply ``event`` with the watermark at ``now_ms``; return the state and the outputs now due.

        Raises :class:`EventRejected` for an event older than ``now - max_lateness``, or, when the policy
        file says ``unmatched: reject``, for a record that no policy covers.
        """
        if state is None:
            state = RecordState(event.record_id, Folded(sys.intern(event.entity_type), {}))
        state.watermark_ms = max(state.watermark_ms, now_ms)
        if event.occurred_at_ms < state.watermark_ms - self.max_ms:
            raise EventRejected(
                DeadLetterReason.LATE,
                f"event {event.event_id} of {event.record_id} happened at {format_instant_ms(event.occurred_at_ms)}, "
                f"more than the maximum lateness ({format_duration_ms(self.max_ms)}) before the watermark "
                f"{format_instant_ms(state.watermark_ms)}",
            )
        if state.pending is not None and any(e.event_id == event.event_id for e in state.pending):
            return state, []  # a repeat; repeats of compacted events are older than max_lateness: rejected above
        if self.policies.unmatched == "reject" and not state.live.clocks:
            merged = {**state.live.attributes, **event.attributes}
            if self.policies.select(state.live.entity_type, merged) is None:
                raise EventRejected(
                    DeadLetterReason.NO_POLICY, f"no policy of {self.policies.source} covers {event.record_id}"
                )
        if state.pending is None:
            state.checkpoint = state.live.copy()
            state.pending = []
        bisect.insort(state.pending, event, key=lambda e: (e.occurred_at_ms, e.event_id))
        live = state.live
        if (
            live.last_at is None or event.occurred_at_ms > live.last_at
        ) and event.occurred_at_ms > state.emitted_until_ms:
            self._fold(state.record_id, live, event)
            outputs = self._emit(state, now_ms)
        else:
            outputs = self._refold(state, event, now_ms)
        self._compact(state)
        return state, outputs

    def advance(self, state: RecordState, now_ms: int) -> list[Output]:
        """The watermark reached ``now_ms``: return the outputs that became due, in order."""
        state.watermark_ms = max(state.watermark_ms, now_ms)
        outputs = self._emit(state, now_ms)
        self._compact(state)
        return outputs

    def next_due_ms(self, state: RecordState) -> int | None:
        """The watermark at which :meth:`advance` has something to do for this record, or ``None``."""
        dues = [o.visible_ms for o in state.live.timeline if o.visible_ms > state.emitted_until_ms]
        for clock in state.live.clocks:
            instant = clock.first_after(state.emitted_until_ms)
            if instant is not None:
                dues.append(instant)
        due = min(dues) + self.allowed_ms if dues else None
        if state.pending:
            compact_at = state.pending[-1].occurred_at_ms + self.max_ms + 1
            due = compact_at if due is None else min(due, compact_at)
        return due

    def recalculate(self, state: RecordState, at_ms: int) -> list[Output]:
        """Re-pin every open KPI to the current policy version from ``at_ms`` on (an explicit recalculation)."""
        live = state.live
        outputs: list[Output] = []
        policy = self.policies.select(live.entity_type, live.attributes)
        for clock in live.clocks:
            spec = policy.kpi(clock.spec.name) if policy else None
            if clock.is_open and spec is not None and policy is not None:
                clock.version = self.policies.version
                clock.policy = policy.name
                if clock.retarget(at_ms, spec):
                    outputs.append(self._output(OutputKind.KPI_RETARGETED, state.record_id, live, clock, at_ms,
                                                sequence=clock.retargets))  # fmt: skip
        return outputs

    # -- folding --------------------------------------------------------------------------------

    def _fold(self, record_id: str, live: Folded, event: RecordEvent) -> None:
        """Apply one event in canonical order; append its outputs (and the thresholds it crosses) to the timeline."""
        at = event.occurred_at_ms
        out: list[Output] = []
        crossed = []
        for clock in live.clocks:
            for instant, threshold, level in clock.cross_until(at):
                crossed.append((instant, self._threshold_output(record_id, live, clock, instant, threshold, level)))
        crossed.sort(key=lambda pair: pair[0])
        out.extend(output for _, output in crossed)
        reselect = not live.selected
        if event.attributes:
            live.attributes = {**live.attributes, **_intern(event.attributes)}
            reselect = reselect or not self._selector_fields.isdisjoint(event.attributes)
        live.last_at = at
        kind, entity, attributes = event.kind, live.entity_type, live.attributes
        if kind == "merged":
            for clock in live.clocks:
                if clock.is_open:
                    out.append(self._output(OutputKind.KPI_CANCELLED, record_id, live, clock, at, reason="merged"))
                    clock.end(at, cancelled=True)
            live.merged = True
        if live.merged:
            live.timeline += tuple(out)
            return
        if reselect:
            live.policy, live.selected = self.policies.select(entity, attributes), True
        selected: dict[str, Policy | None] = {self.policies.version: live.policy}
        for clock in live.clocks:
            if reselect:
                out.extend(self._retarget(record_id, live, clock, at, selected))
            spec = clock.spec
            if clock.is_open:
                # Transitions that end or suspend the clock report the deadline in force just before them.
                if spec.cancel.holds(kind, entity, attributes):
                    out.append(self._output(OutputKind.KPI_CANCELLED, record_id, live, clock, at, reason=kind,
                                            actions=spec.on_cancel))  # fmt: skip
                    clock.end(at, cancelled=True)
                elif spec.stop.holds(kind, entity, attributes):
                    reason = "met_late" if clock.breached else "met"
                    out.append(self._output(OutputKind.KPI_SUCCEEDED, record_id, live, clock, at, reason=reason,
                                            sequence=clock.reopens,
                                            actions=spec.on_success))  # fmt: skip
                    clock.end(at, cancelled=False)
                elif clock.is_paused and spec.resume.holds(kind, entity, attributes):
                    clock.resume(at)
                    out.append(self._output(OutputKind.KPI_RESUMED, record_id, live, clock, at,
                                            sequence=len(clock.pauses), reason=clock.pauses[-1][2],
                                            actions=spec.on_resume))  # fmt: skip
                elif not clock.is_paused and spec.pause.holds(kind, entity, attributes):
                    reason = attributes.get(spec.pause_reason, kind)
                    out.append(self._output(OutputKind.KPI_PAUSED, record_id, live, clock, at,
                                            sequence=len(clock.pauses) + 1, reason=reason,
                                            actions=spec.on_pause))  # fmt: skip
                    clock.pause(at, reason)
            elif not clock.cancelled and spec.reopen.holds(kind, entity, attributes):
                if spec.on_reopen == "resume" and clock.reopen(at):
                    out.append(self._output(OutputKind.KPI_REOPENED, record_id, live, clock, at, reason=kind,
                                            sequence=clock.reopens))  # fmt: skip
                elif spec.on_reopen == "restart":
                    out.extend(self._start(record_id, live, spec, clock.policy, clock.version, clock.instance + 1, at,
                                           reason="reopened"))  # fmt: skip
        if live.policy is not None:
            out.extend(self._start_matching(record_id, live, live.policy, kind, at))
        if out:
            live.timeline += tuple(out)

    def _start_matching(self, record_id: str, live: Folded, policy: Policy, kind: str, at: int) -> list[Output]:
        out: list[Output] = []
        for spec in policy.kpis:
            if not spec.start.holds(kind, live.entity_type, live.attributes):
                continue
            current = live.clock(spec.name)
            if current is None:
                out.extend(self._start(record_id, live, spec, policy.name, self.policies.version, 0, at))
            elif not current.is_open and spec.recurring:
                out.extend(self._start(record_id, live, spec, policy.name, self.policies.version,
                                       current.instance + 1, at))  # fmt: skip
        return out

    def _start(self, record_id: str, live: Folded, spec: KpiSpec, policy: str, version: str, instance: int, at: int,
               reason: str = "") -> list[Output]:  # fmt: skip
        start = at
        if spec.start_from:
            given = parse_instant_ms(live.attributes.get(spec.start_from, ""))
            if given is not None and given < at:
                start, reason = given, reason or "retroactive"
        clock = KpiClock(spec, policy, version, instance, start, start)
        live.clocks = (*(c for c in live.clocks if c.spec.name != spec.name), clock)
        out = [self._output(OutputKind.KPI_STARTED, record_id, live, clock, start, reason=reason,
                            actions=spec.on_start)]  # fmt: skip
        for instant, kind, level in clock.cross_until(at):
            out.append(self._threshold_output(record_id, live, clock, instant, kind, level))
        # A retroactive start reveals outputs in the past: they are released, and ordered, at the event's instant.
        return [o if o.at_ms >= at else replace(o, visible_at_ms=at) for o in out]

    def _retarget(self, record_id: str, live: Folded, clock: KpiClock, at: int,
                  selected: dict[str, Policy | None]) -> list[Output]:  # fmt: skip
        """Follow a change of the record (tier, priority, ...) within the policy version the KPI is pinned to."""
        if not clock.is_open:
            return []
        if clock.version not in selected:
            pinned = self.versions.get(clock.version, self.policies)
            selected[clock.version] = pinned.select(live.entity_type, live.attributes)
        policy = selected[clock.version]
        spec = policy.kpi(clock.spec.name) if policy else None
        if policy is None or spec is None or spec == clock.spec:
            return []
        clock.policy = policy.name
        clock.retarget(at, spec)
        return [self._output(OutputKind.KPI_RETARGETED, record_id, live, clock, at, reason=policy.name,
                             sequence=clock.retargets)]  # fmt: skip

    # -- emission, corrections, compaction ---------------------------------------------------------

    def _truth(self, state: RecordState, live: Folded, start_ms: int, until_ms: int) -> list[Output]:
        """Every output of ``live`` released between ``start_ms`` and ``until_ms`` (``visible_ms``), in order."""
        outputs = [o for o in live.timeline if start_ms <= o.visible_ms <= until_ms]
        virtual = []
        for clock in live.clocks:
            for instant, kind, level in clock.upcoming(until_ms):
                if instant >= start_ms:
                    virtual.append(self._threshold_output(state.record_id, live, clock, instant, kind, level))
        outputs.sort(key=lambda o: o.visible_ms)  # stable: the timeline's order within one instant
        virtual.sort(key=lambda o: o.at_ms)
        # At one instant the event's outputs come before the thresholds time alone crossed (merge keeps order).
        return list(heapq.merge(outputs, virtual, key=lambda o: o.visible_ms))

    def _emit(self, state: RecordState, now_ms: int) -> list[Output]:
        until = now_ms - self.allowed_ms if self.allowed_ms else now_ms  # shares the tick's int object
        if until <= state.emitted_until_ms:
            return []
        live = state.live
        if not live.timeline:
            for clock in live.clocks:
                upcoming = clock.next_threshold()
                if upcoming is not None and upcoming[0] <= until:
                    break
            else:  # nothing due: the common case, answered without building anything
                state.emitted_until_ms = until
                return []
        outputs = self._truth(state, state.live, state.emitted_until_ms + 1, until)
        state.emitted_until_ms = until
        if state.live.timeline:  # drop what is emitted: a re-fold regenerates it if it needs it
            state.live.timeline = tuple(o for o in state.live.timeline if o.visible_ms > until)
        return [self._revised(state, o) for o in outputs]

    def _refolded(self, state: RecordState, events: list[RecordEvent]) -> Folded:
        assert state.checkpoint is not None
        folded = state.checkpoint.copy()
        for event in events:
            self._fold(state.record_id, folded, event)
        return folded

    def _refold(self, state: RecordState, latest: RecordEvent, now_ms: int) -> list[Output]:
        """Re-fold the record from its checkpoint after ``latest`` arrived out of order; emit the differences.

        What was emitted is the truth without ``latest`` (re-folded too, since emitted outputs are not kept).
        """
        assert state.checkpoint is not None and state.pending is not None
        new = self._refolded(state, state.pending)
        old = self._refolded(state, [e for e in state.pending if e is not latest])
        state.live = new
        # Outputs before the checkpoint's last event, or older than watermark - max_lateness, cannot change.
        checkpoint_at = NEVER_MS if state.checkpoint.last_at is None else state.checkpoint.last_at
        start = max(checkpoint_at, state.watermark_ms - self.max_ms)
        emitted = state.emitted_until_ms
        before = {o.output_id: o for o in self._truth(state, old, start, emitted)} if emitted >= start else {}
        after = self._truth(state, new, start, emitted) if emitted >= start else []
        corrections: list[Output] = []
        for output in after:
            previous = before.pop(output.output_id, None)
            if previous is None:  # newly true: a first emission, unless an earlier correction revoked it
                corrections.append(self._revised(state, output))
            elif previous.signature() != output.signature():
                corrections.append(self._bump(state, output))
        for gone in before.values():
            corrections.append(self._bump(state, replace(gone, revoked=True)))
        corrections.sort(key=lambda o: o.visible_ms)
        return corrections + self._emit(state, now_ms)

    def _bump(self, state: RecordState, output: Output) -> Output:
        if state.revisions is None:
            state.revisions = {}
        revision = state.revisions.get(output.output_id, 0) + 1
        state.revisions[output.output_id] = revision
        return replace(output, revision=revision)

    def _revised(self, state: RecordState, output: Output) -> Output:
        """``output`` above the revision an earlier correction gave its id, if any."""
        if not state.revisions:
            return output
        revision = state.revisions.get(output.output_id)
        if revision is None:
            return output
        revision += 1
        state.revisions[output.output_id] = revision
        return replace(output, revision=revision)

    def _compact(self, state: RecordState) -> None:
        """Forget the history once every pending event is older than ``watermark - max_lateness``."""
        horizon = state.watermark_ms - self.max_ms
        if state.pending and state.pending[-1].occurred_at_ms < horizon:
            state.pending = None
            state.checkpoint = None
        # ``revisions`` is kept for good: a revoked output can happen for real later (a reopen), and must then
        # come out above its revocation. Only records that were ever corrected carry it.

    # -- outputs -----------------------------------------------------------------------------------

    def _threshold_output(self, record_id: str, live: Folded, clock: KpiClock, instant: int, kind: Threshold,
                          level: int) -> Output:  # fmt: skip
        spec = clock.spec
        if kind is Threshold.WARNING:
            actions = spec.on_warning
        elif kind is Threshold.BREACH:
            actions = spec.on_breach
        else:
            actions = next((e.actions for e in spec.escalations if e.level == level), ())
        return self._output(_THRESHOLD_KIND[kind], record_id, live, clock, instant, level=level, actions=actions,
                            sequence=level)  # fmt: skip

    @staticmethod
    def _output(kind: OutputKind, record_id: str, live: Folded, clock: KpiClock, at: int, *, level: int = 0,
                reason: str = "", actions: tuple[Action, ...] = (), sequence: int = 0) -> Output:  # fmt: skip
        return Output(
            kind=kind,
            record_id=record_id,
            entity_type=live.entity_type,
            policy=clock.policy,
            policy_version=clock.version,
            kpi=clock.spec.name,
            kpi_instance=clock.instance,
            at_ms=at,
            started_at_ms=clock.started_at_ms,
            deadline_ms=clock.deadline_ms(),
            target_ms=clock.spec.target_ms,
            business_elapsed_ms=clock.business_elapsed(at),
            wall_elapsed_ms=at - clock.started_at_ms,
            paused_ms=clock.paused_elapsed(at),
            sequence=sequence,
            level=level,
            reason=reason,
            actions=actions,
            attributes=live.attributes,
        )


class SnapshotError(SlaflowError):
    """A stored record state that this core cannot restore (its policy or KPI no longer exists)."""


def snapshot(state: RecordState) -> dict[str, Any]:
    """The record state as plain JSON-able data (for a Faust table); :meth:`SlaCore.restore` reads it back."""
    return {
        "r": state.record_id,
        "w": state.watermark_ms,
        "e": state.emitted_until_ms,
        "l": _folded_data(state.live),
        "c": None if state.checkpoint is None else _folded_data(state.checkpoint),
        "p": None if state.pending is None else [
            [e.event_id, e.entity_type, e.kind, e.occurred_at_ms, dict(e.attributes)] for e in state.pending
        ],
        "v": state.revisions,
    }  # fmt: skip


def _folded_data(folded: Folded) -> dict[str, Any]:
    return {
        "t": folded.entity_type,
        "a": folded.attributes,
        "k": [
            [c.version, c.policy, c.spec.name, c.instance, c.started_at_ms, c.run_start_ms, c.used_ms, c.crossed,
             [list(p) for p in c.pauses], c.ended_at_ms, c.cancelled, c.fired, c.reopens, c.retargets,
             c.deadline_at_ms]
            for c in folded.clocks
        ],
        "lk": folded.last_at,
        "tl": [o.to_json() for o in folded.timeline],
        "m": folded.merged,
    }  # fmt: skip
