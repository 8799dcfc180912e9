"""What the SLA core emits.

Every output is a plain immutable value; the Faust agents turn them into Avro
messages, the replay CLI into JSON lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class AlertKind(StrEnum):
    """Which threshold of a KPI was crossed."""

    WARNING = "WARNING"
    """The warning point passed: the deadline is near."""
    BREACH = "BREACH"
    """The deadline passed: the KPI failed."""


@dataclass(frozen=True, slots=True)
class Alert:
    """A KPI of a record crossed its warning point or its deadline.

    All instants are UTC epoch milliseconds, all durations milliseconds.
    ``alert_id`` is derived from record, KPI, instance and threshold, so that
    the same alert always carries the same id, however often it is computed.
    """

    kind: AlertKind
    record_id: str
    entity_type: str
    policy: str
    policy_version: str
    kpi: str
    kpi_instance: int
    started_at_ms: int
    threshold_at_ms: int
    deadline_ms: int
    fired_at_ms: int
    target_ms: int
    business_elapsed_ms: int
    wall_elapsed_ms: int
    paused_ms: int = 0
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def alert_id(self) -> str:
        """Stable id: ``record_id/kpi/instance/kind``."""
        return f"{self.record_id}/{self.kpi}/{self.kpi_instance}/{self.kind.value}"
