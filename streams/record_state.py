"""Per-record SLA state and the two step functions that move it: ``apply`` and ``advance``.

This is the seam between the pure core and its drivers (the Faust agent, the
replay CLI, the benchmarks). A driver keeps one :class:`RecordState` per
record id (in a Faust table, or a dict), calls :meth:`SlaCore.apply` for each
event of that record, :meth:`SlaCore.advance` when time has passed the
record's :meth:`RecordState.next_due_ms`, and stores :meth:`RecordState.snapshot`
(plain JSON-able data) between calls.

Clocks count wall time from the start event. Times are UTC epoch
milliseconds; durations milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.events import RecordEvent
from streams.outputs import Alert, AlertKind
from streams.policy import KpiSpec, PolicySet

RECENT_EVENT_IDS = 32
"""How many event ids a record remembers to recognise duplicates."""


class KpiState(StrEnum):
    """Where a KPI clock stands."""

    IN_PROGRESS = "in_progress"
    WARNING = "warning"
    BREACHED = "breached"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"


_OPEN = frozenset({KpiState.IN_PROGRESS, KpiState.WARNING, KpiState.BREACHED})


@dataclass(slots=True)
class KpiClock:
    """One running (or finished) KPI of a record, pinned to the policy version it started under."""

    name: str
    instance: int
    policy: str
    policy_version: str
    target_ms: int
    warning_ms: int | None
    started_at_ms: int
    state: KpiState = KpiState.IN_PROGRESS
    ended_at_ms: int | None = None

    @property
    def deadline_ms(self) -> int:
        """When the KPI fails if not met: UTC epoch milliseconds."""
        return self.started_at_ms + self.target_ms

    @property
    def warning_at_ms(self) -> int | None:
        """When the warning fires: UTC epoch milliseconds, or ``None`` if the KPI has none."""
        return None if self.warning_ms is None else self.started_at_ms + self.warning_ms

    @property
    def is_open(self) -> bool:
        """Still counting (even after a breach, until it is met or cancelled)."""
        return self.state in _OPEN

    def next_due_ms(self) -> int | None:
        """The next threshold this clock will cross, or ``None``."""
        if self.state is KpiState.IN_PROGRESS and self.warning_at_ms is not None:
            return self.warning_at_ms
        if self.state in (KpiState.IN_PROGRESS, KpiState.WARNING):
            return self.deadline_ms
        return None


@dataclass(slots=True)
class RecordState:
    """Everything the core remembers about one record."""

    record_id: str
    entity_type: str
    attributes: dict[str, str] = field(default_factory=dict)
    kpis: dict[str, KpiClock] = field(default_factory=dict)
    recent_event_ids: list[str] = field(default_factory=list)
    watermark_ms: int = 0

    def next_due_ms(self) -> int | None:
        """The earliest threshold any KPI of this record will cross, or ``None``."""
        dues = [due for kpi in self.kpis.values() if (due := kpi.next_due_ms()) is not None]
        return min(dues) if dues else None

    def snapshot(self) -> dict[str, Any]:
        """Plain data (JSON-able) to store in a table; :meth:`restore` reads it back."""
        return {
            "record_id": self.record_id,
            "entity_type": self.entity_type,
            "attributes": dict(self.attributes),
            "recent_event_ids": list(self.recent_event_ids),
            "watermark_ms": self.watermark_ms,
            "kpis": [
                [
                    k.name,
                    k.instance,
                    k.policy,
                    k.policy_version,
                    k.target_ms,
                    k.warning_ms,
                    k.started_at_ms,
                    k.state.value,
                    k.ended_at_ms,
                ]
                for k in self.kpis.values()
            ],
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> RecordState:
        """The state a :meth:`snapshot` was taken of."""
        kpis = {}
        for name, instance, policy, version, target, warning, started, state, ended in data["kpis"]:
            kpis[name] = KpiClock(name, instance, policy, version, target, warning, started, KpiState(state), ended)
        return cls(
            record_id=data["record_id"],
            entity_type=data["entity_type"],
            attributes=dict(data["attributes"]),
            kpis=kpis,
            recent_event_ids=list(data["recent_event_ids"]),
            watermark_ms=data["watermark_ms"],
        )


class SlaCore:
    """The SLA step functions for one policy set. Stateless itself: state lives in :class:`RecordState`."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies

    def apply(self, state: RecordState | None, event: RecordEvent) -> tuple[RecordState, list[Alert]]:
        """Apply one event to a record's state (``None`` for a record not seen before).

        Thresholds due at or before the event's instant fire first, so the
        outputs are those of time passing up to the event and then the event.
        A duplicate event id changes nothing.
        """
        if state is None:
            state = RecordState(event.record_id, event.entity_type)
        if event.event_id in state.recent_event_ids:
            return state, []
        state.recent_event_ids.append(event.event_id)
        del state.recent_event_ids[:-RECENT_EVENT_IDS]
        outputs = self.advance(state, event.occurred_at_ms)
        state.attributes.update(event.attributes)
        policy = self.policies.select(state.entity_type, state.attributes)
        specs: dict[str, KpiSpec] = {k.name: k for k in policy.kpis} if policy else {}
        for kpi in state.kpis.values():
            spec = specs.get(kpi.name)
            if not kpi.is_open or spec is None:
                continue
            if event.kind in spec.cancel_on:
                kpi.state, kpi.ended_at_ms = KpiState.CANCELLED, event.occurred_at_ms
            elif event.kind in spec.stop_on:
                met = event.occurred_at_ms <= kpi.deadline_ms
                kpi.state = KpiState.SUCCEEDED if met else KpiState.BREACHED
                kpi.ended_at_ms = event.occurred_at_ms
        if policy is not None:
            for spec in policy.kpis:
                current = state.kpis.get(spec.name)
                if event.kind in spec.start_on and (current is None or not current.is_open):
                    instance = 0 if current is None else current.instance + 1
                    state.kpis[spec.name] = KpiClock(
                        spec.name,
                        instance,
                        policy.name,
                        self.policies.version,
                        spec.target_ms,
                        spec.warning_ms,
                        event.occurred_at_ms,
                    )
        return state, outputs

    def advance(self, state: RecordState, now_ms: int) -> list[Alert]:
        """Time has reached ``now_ms``: fire every warning and breach due by then, in time order."""
        state.watermark_ms = max(state.watermark_ms, now_ms)
        outputs: list[Alert] = []
        while (due := state.next_due_ms()) is not None and due <= now_ms:
            for kpi in state.kpis.values():
                if kpi.next_due_ms() != due:
                    continue
                kind = (
                    AlertKind.WARNING
                    if kpi.state is KpiState.IN_PROGRESS and due != kpi.deadline_ms
                    else AlertKind.BREACH
                )
                kpi.state = KpiState.WARNING if kind is AlertKind.WARNING else KpiState.BREACHED
                outputs.append(self._alert(state, kpi, kind, due, now_ms))
        return outputs

    @staticmethod
    def _alert(state: RecordState, kpi: KpiClock, kind: AlertKind, threshold_ms: int, now_ms: int) -> Alert:
        elapsed = threshold_ms - kpi.started_at_ms
        return Alert(
            kind=kind,
            record_id=state.record_id,
            entity_type=state.entity_type,
            policy=kpi.policy,
            policy_version=kpi.policy_version,
            kpi=kpi.name,
            kpi_instance=kpi.instance,
            started_at_ms=kpi.started_at_ms,
            threshold_at_ms=threshold_ms,
            deadline_ms=kpi.deadline_ms,
            fired_at_ms=now_ms,
            target_ms=kpi.target_ms,
            business_elapsed_ms=elapsed,
            wall_elapsed_ms=elapsed,
            attributes=dict(state.attributes),
        )
