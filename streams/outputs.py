"""What the SLA core emits: KPI transitions, alerts and corrections, as one immutable record type.

Every output names the record, the KPI instance and the policy version it was
pinned to, the instant it refers to (``at_ms``: the event's instant for a
transition, the threshold's for an alert), the deadline in force, and the
measured durations at that instant: business time used, wall time since the
start, wall time paused. Times are UTC epoch milliseconds, durations
milliseconds.

``output_id`` is stable: computing the same truth twice yields the same ids.
When an event that arrives late (after ``allowed_lateness``) changes what
should have been emitted, the core re-emits the affected outputs with
``revision`` + 1: with new figures, or with ``revoked`` set when the output
should not have happened at all (for example a breach revoked because a pause
had in fact started before the deadline). A consumer keeps, per
``output_id``, the highest revision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streams.policy import Action


class OutputKind(StrEnum):
    """What happened."""

    KPI_STARTED = "KPI_STARTED"
    KPI_PAUSED = "KPI_PAUSED"
    KPI_RESUMED = "KPI_RESUMED"
    KPI_RETARGETED = "KPI_RETARGETED"
    KPI_REOPENED = "KPI_REOPENED"
    KPI_SUCCEEDED = "KPI_SUCCEEDED"
    KPI_CANCELLED = "KPI_CANCELLED"
    WARNING = "WARNING"
    BREACH = "BREACH"
    ESCALATION = "ESCALATION"


ALERT_KINDS = frozenset({OutputKind.WARNING, OutputKind.BREACH, OutputKind.ESCALATION})
"""The outputs that are alerts (the others are KPI transitions)."""


@dataclass(frozen=True, slots=True)
class Output:
    """One KPI transition or alert of one record (see the module doc for the fields' meaning)."""

    kind: OutputKind
    record_id: str
    entity_type: str
    policy: str
    policy_version: str
    kpi: str
    kpi_instance: int
    at_ms: int
    started_at_ms: int
    deadline_ms: int | None
    target_ms: int
    business_elapsed_ms: int
    wall_elapsed_ms: int
    paused_ms: int
    sequence: int = 0
    level: int = 0
    reason: str = ""
    actions: tuple[Action, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    revision: int = 0
    revoked: bool = False
    visible_at_ms: int | None = None
    """For an output in the past of the event that revealed it (a retroactive start): that event's instant, at
    which the output is emitted and ordered; ``None`` otherwise (``at_ms``)."""

    @property
    def visible_ms(self) -> int:
        """The instant that orders and releases this output: ``visible_at_ms``, else ``at_ms``."""
        return self.at_ms if self.visible_at_ms is None else self.visible_at_ms

    @property
    def output_id(self) -> str:
        """``record/kpi/instance/kind[/n]``: ``n`` is the sequence (escalation level; n-th pause, re-target, reopen)."""
        base = f"{self.record_id}/{self.kpi}/{self.kpi_instance}/{self.kind.value}"
        return f"{base}/{self.sequence}" if self.sequence else base

    @property
    def is_alert(self) -> bool:
        """A warning, breach or escalation."""
        return self.kind in ALERT_KINDS

    def signature(self) -> tuple[Any, ...]:
        """The facts a correction compares (not the revision)."""
        return (
            self.kind, self.at_ms, self.started_at_ms, self.deadline_ms, self.target_ms, self.business_elapsed_ms,
            self.wall_elapsed_ms, self.paused_ms, self.level, self.reason, self.policy, self.policy_version,
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The output as the replay CLI writes it (one JSON object per line; see README, 'Output format')."""
        return {
            "output_id": self.output_id,
            "kind": self.kind.value,
            "record_id": self.record_id,
            "entity_type": self.entity_type,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "kpi": self.kpi,
            "kpi_instance": self.kpi_instance,
            "sequence": self.sequence,
            "at_ms": self.at_ms,
            "started_at_ms": self.started_at_ms,
            "deadline_ms": self.deadline_ms,
            "target_ms": self.target_ms,
            "business_elapsed_ms": self.business_elapsed_ms,
            "wall_elapsed_ms": self.wall_elapsed_ms,
            "paused_ms": self.paused_ms,
            "level": self.level,
            "reason": self.reason,
            "actions": [action.to_json() for action in self.actions],
            "attributes": dict(self.attributes),
            "revision": self.revision,
            "revoked": self.revoked,
            "visible_at_ms": self.visible_at_ms,
        }


def output_from_json(data: dict[str, Any]) -> Output:
    """The :class:`Output` that :meth:`Output.to_json` wrote (used to restore stored state)."""
    return Output(
        kind=OutputKind(data["kind"]),
        record_id=data["record_id"],
        entity_type=data["entity_type"],
        policy=data["policy"],
        policy_version=data["policy_version"],
        kpi=data["kpi"],
        kpi_instance=data["kpi_instance"],
        at_ms=data["at_ms"],
        started_at_ms=data["started_at_ms"],
        deadline_ms=data["deadline_ms"],
        target_ms=data["target_ms"],
        business_elapsed_ms=data["business_elapsed_ms"],
        wall_elapsed_ms=data["wall_elapsed_ms"],
        paused_ms=data["paused_ms"],
        sequence=data["sequence"],
        level=data["level"],
        reason=data["reason"],
        actions=tuple(Action(a["type"], tuple(a["targets"]), a["value"], a["template"]) for a in data["actions"]),
        attributes=data["attributes"],
        revision=data["revision"],
        revoked=data["revoked"],
        visible_at_ms=data["visible_at_ms"],
    )
