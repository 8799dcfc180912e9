"""PartitionLogic: the per-partition state the worker keeps, and its stored form."""

from __future__ import annotations

import pytest
import yaml

from streams.core import EventRejected, RecordState, SlaCore, SnapshotError
from streams.errors import DeadLetterReason
from streams.events import RecordEvent
from streams.outputs import OutputKind
from streams.partition import PartitionLogic, Stored, read_stored
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


PAUSING = VIP_FIRST_RESPONSE.replace(
    "        cancel: {kind: cancelled}\n",
    "        cancel: {kind: cancelled}\n        pause: {kind: waiting}\n        resume: {kind: working}\n",
)


def event(record_id: str, kind: str, at: int) -> RecordEvent:
    return RecordEvent(f"{record_id}-{kind}-{at}", record_id, "case", kind, at, {})


class Table:
    """A partition's stored records, as the worker's table holds them, and the loads made from it."""

    def __init__(self, core: SlaCore) -> None:
        self.core = core
        self.values: dict[str, bytes] = {}
        self.loads: list[str] = []

    def save(self, logic: PartitionLogic) -> None:
        for state in logic.take_dirty():
            self.values[state.record_id] = logic.stored(0, state)

    def load(self, record_id: str) -> RecordState | None:
        self.loads.append(record_id)
        if record_id not in self.values:
            return None
        stored = read_stored(record_id, self.values[record_id])
        assert stored.snapshot is not None
        return self.core.restore(stored.snapshot)

    def known(self) -> list[tuple[str, Stored]]:
        return [(r, read_stored(r, v, header_only=True)) for r, v in self.values.items()]


def test_peek_reads_a_record_without_keeping_it() -> None:
    """Regression: a record view loaded the record into the partition it asked, where that copy went stale."""
    core = SlaCore(parse_policies(yaml.safe_load(VIP_FIRST_RESPONSE), "test.yaml"))
    table = Table(core)
    writer = PartitionLogic(core, table.load)
    writer.on_event(created("C-1", T))
    table.save(writer)
    reader = PartitionLogic(core, table.load, known=table.known())
    state = reader.peek("C-1")
    assert state is not None and [c.name for c in state.clocks()] == ["first_response"]
    assert reader.peek("C-9") is None
    assert list(reader.cached()) == [] and reader.take_dirty() == []
    writer.on_event(event("C-1", "first_response", T + MIN))  # the owner changes it; a later read sees that
    table.save(writer)
    again = reader.peek("C-1")
    assert again is not None and not again.clocks()[0].is_open


def test_open_kpis_by_state_are_kept_as_records_change_and_rebuilt_from_headers() -> None:
    """Regression: the gauge counted the records in memory only (0 after a restart, twice after a view)."""
    core = SlaCore(parse_policies(yaml.safe_load(PAUSING), "test.yaml"))
    table = Table(core)
    logic = PartitionLogic(core, table.load)
    for n in range(4):
        logic.on_event(created(f"C-{n}", T + n * 20 * MIN))
    assert logic.open_kpis() == {"running": 4}
    logic.on_tick(T + 40 * MIN)  # C-0 past its warning at 30 min, C-1 at 20 of its 30 min
    logic.on_event(event("C-2", "waiting", T + 45 * MIN))
    logic.on_event(event("C-3", "first_response", T + 65 * MIN))
    logic.on_tick(T + 70 * MIN)  # C-0 breached at 60 min, C-1 warned at 50 min
    assert logic.open_kpis() == {"breached": 1, "warned": 1, "paused": 1}
    table.save(logic)
    table.loads.clear()
    rebuilt = PartitionLogic(core, table.load, logic.watermark_ms, table.known())
    assert rebuilt.open_kpis() == logic.open_kpis() and table.loads == []  # no record decoded
    rebuilt.on_event(event("C-2", "working", T + 75 * MIN))
    assert rebuilt.open_kpis() == {"breached": 1, "warned": 1, "running": 1}


def test_a_record_pinned_to_an_unknown_policy_version_is_set_aside_not_a_crash() -> None:
    """Regression: a worker started with another policy file crash-looped on SnapshotError."""
    old = SlaCore(parse_policies(yaml.safe_load(VIP_FIRST_RESPONSE), "old.yaml"))
    table = Table(old)
    logic = PartitionLogic(old, table.load)
    logic.on_event(created("C-1", T))
    logic.on_event(created("C-2", T))
    table.save(logic)
    renamed = VIP_FIRST_RESPONSE.replace('version: "t1"', 'version: "t2"').replace("name: vip", "name: gold")
    new = SlaCore(parse_policies(yaml.safe_load(renamed), "new.yaml"))
    table.core = new
    restarted = PartitionLogic(new, table.load, T, table.known())
    assert restarted.on_tick(T + 2 * HOUR) == []  # their deadlines do not fire, nothing crashes
    with pytest.raises(EventRejected) as caught:
        restarted.on_event(event("C-1", "first_response", T + 2 * HOUR))
    assert caught.value.reason is DeadLetterReason.UNKNOWN_POLICY_VERSION and "t1" in caught.value.detail
    assert sorted(r for r, _ in restarted.take_set_aside()) == ["C-1", "C-2"]
    with pytest.raises(EventRejected):
        restarted.on_event(event("C-1", "resolved", T + 3 * HOUR))
    assert restarted.take_set_aside() == []  # each record is reported once
    assert sorted(restarted.set_aside) == ["C-1", "C-2"] and restarted.take_dirty() == []
    with pytest.raises(SnapshotError):
        restarted.peek("C-2")
    [started] = restarted.on_event(created("C-3", T + 2 * HOUR))  # other records go on
    assert started.kind is OutputKind.KPI_STARTED
