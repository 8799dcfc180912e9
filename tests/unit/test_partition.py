"""PartitionLogic: the per-partition state the worker keeps, and its stored form."""

from __future__ import annotations

import pytest
import yaml

from streams.core import EventRejected, RecordState, SlaCore
from streams.events import RecordEvent
from streams.outputs import OutputKind
from streams.partition import PartitionLogic, read_stored
from streams.policy import parse_policies
from tests.policies import VIP_FIRST_RESPONSE

T = 1_772_442_900_000  # 2026-03-02T09:15:00Z
MIN = 60_000
HOUR = 60 * MIN


@pytest.fixture
def core() -> SlaCore:
    return SlaCore(parse_policies(yaml.safe_load(VIP_FIRST_RESPONSE), "test.yaml"))


def created(record_id: str, at: int, owner: str = "ana") -> RecordEvent:
    return RecordEvent(f"{record_id}-c", record_id, "case", "created", at, {"tier": "VIP", "owner": owner})


def test_only_ticks_move_the_watermark_and_fire_thresholds(core: SlaCore) -> None:
    logic = PartitionLogic(core, lambda _: None)
    logic.on_event(created("C-1", T))
    assert logic.watermark_ms is None
    logic.on_event(created("C-2", T + 2 * HOUR))  # a later event does not fire C-1's thresholds
    assert [o.kind for o in logic.on_tick(T + HOUR)] == [OutputKind.WARNING, OutputKind.BREACH]
    assert logic.on_tick(T + HOUR) == [] and logic.on_tick(T) == []  # ticks never go back
    assert logic.watermark_ms == T + HOUR


def test_take_dirty_hands_each_changed_record_once(core: SlaCore) -> None:
    logic = PartitionLogic(core, lambda _: None)
    logic.on_event(created("C-1", T))
    logic.on_event(RecordEvent("e2", "C-1", "case", "updated", T + MIN, {"owner": "bo"}))
    logic.on_event(created("C-2", T))
    assert sorted(s.record_id for s in logic.take_dirty()) == ["C-1", "C-2"]
    assert logic.take_dirty() == []


def test_rejected_event_changes_nothing(core: SlaCore) -> None:
    logic = PartitionLogic(core, lambda _: None)
    logic.on_event(created("C-1", T))
    logic.take_dirty()
    logic.on_tick(T + 3 * HOUR)
    with pytest.raises(EventRejected):
        logic.on_event(RecordEvent("late", "C-1", "case", "first_response", T, {}))
    assert [s.record_id for s in logic.take_dirty()] == ["C-1"]  # the tick's breach, not the late event


def test_a_rebuilt_partition_continues_exactly_like_the_original(core: SlaCore) -> None:
    table: dict[str, bytes] = {}
    original = PartitionLogic(core, lambda _: None)
    for n in range(5):
        original.on_event(created(f"C-{n}", T + n * 10 * MIN, owner=f"o{n % 2}"))
    original.on_tick(T + 20 * MIN)
    for state in original.take_dirty():
        table[state.record_id] = original.stored(3, state)

    def load(record_id: str) -> RecordState | None:
        stored = read_stored(record_id, table[record_id]) if record_id in table else None
        return None if stored is None or stored.snapshot is None else core.restore(stored.snapshot)

    known = [(r, read_stored(r, v, header_only=True)) for r, v in table.items()]
    assert {s.partition for _, s in known} == {3}
    rebuilt = PartitionLogic(core, load, original.watermark_ms, known)
    assert rebuilt.urgency.most_urgent(10, owner="o1") == original.urgency.most_urgent(10, owner="o1")
    later = T + 2 * HOUR
    assert [o.output_id for o in rebuilt.on_tick(later)] == [o.output_id for o in original.on_tick(later)]


def test_evict_keeps_unsaved_states(core: SlaCore) -> None:
    loads: list[str] = []

    def load(record_id: str) -> RecordState | None:
        loads.append(record_id)
        return None

    logic = PartitionLogic(core, load)
    for n in range(4):
        logic.on_event(created(f"C-{n}", T))
    logic.evict(1)
    assert len(list(logic.cached())) == 4  # all four unsaved
    logic.take_dirty()
    logic.evict(1)
    assert [s.record_id for s in logic.cached()] == ["C-3"]
