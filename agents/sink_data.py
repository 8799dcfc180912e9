"""The messages a sink reads, made without Kafka: a simulated contact centre and what the SLA core says of it.

The same per-message logic as the SLA agent (:func:`agents.sla.step` on one :class:`PartitionLogic`, clock
ticks every :data:`TICK_EVERY` events, a last tick two days after the last event so that every pending deadline
fires): the input messages and the outputs of an uninterrupted run, as the bytes they have on their topics.
``slaflow bench sink`` and the analytics tests load them into ClickHouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from agents.settings import DEFAULT_POLICIES
from agents.simulate import DEFAULT_START_MS, Simulation, SimulationConfig
from agents.sla import output_messages, step
from schemas.codec import encode_event, encode_tick
from sinks.rows import TOPIC_ATTRIBUTES
from streams.core import SlaCore
from streams.partition import PartitionLogic
from streams.policy import load_policies

TICK_EVERY: Final = 200
"""Events between two clock ticks (in simulated time)."""

_OUTPUT_TOPICS: Final = {attribute: topic for topic, attribute in TOPIC_ATTRIBUTES.items()}
"""Key in :data:`sinks.rows.TOPIC_ATTRIBUTES` of each output kind of :func:`agents.sla.output_messages`."""


@dataclass
class SinkInput:
    """Message values per topic the sink reads, by its key in :data:`sinks.rows.TOPIC_ATTRIBUTES`, in order."""

    topics: dict[str, list[bytes]] = field(
        default_factory=lambda: {name: [] for name in ("case_events", "alerts", "kpi_transitions", "kpi_durations")}
    )

    @property
    def messages(self) -> int:
        """Messages over every topic."""
        return sum(len(values) for values in self.topics.values())


def simulated(
    days: float = 1.0, cases_per_day: int = 2_000, seed: int = 1, policies: Path = DEFAULT_POLICIES
) -> SinkInput:
    """Input events (and ticks) of a simulated contact centre and the SLA outputs they cause."""
    logic = PartitionLogic(SlaCore(load_policies(policies)), lambda _record_id: None)
    config = SimulationConfig(seed=seed, start_ms=DEFAULT_START_MS, days=days, cases_per_day=cases_per_day)
    data = SinkInput()
    inputs = data.topics["case_events"]
    last = DEFAULT_START_MS

    def run(key: bytes | None, value: bytes) -> None:
        inputs.append(value)
        result = step(logic, key, value)
        for kind, _record_id, output in output_messages(result.outputs, logic.watermark_ms):
            data.topics[_OUTPUT_TOPICS[kind]].append(output)

    for n, event in enumerate(Simulation(config).events(), 1):
        run(event.record_id.encode(), encode_event(event))
        last = max(last, event.occurred_at_ms)
        if n % TICK_EVERY == 0:
            run(None, encode_tick(last, "sink-data"))
    run(None, encode_tick(last + 2 * 86_400_000, "sink-data"))
    return data
