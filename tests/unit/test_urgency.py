"""The urgency index: open KPIs by deadline, filtered by owner/queue/tier, against a brute-force sort."""

from __future__ import annotations

import random

import pytest
import yaml

from streams.core import RecordState, SlaCore
from streams.events import RecordEvent
from streams.policy import parse_policies
from streams.urgency import UrgencyIndex, UrgentKpi, urgent_entries

M, H, D = 60_000, 3_600_000, 86_400_000
T0 = 1_777_888_800_000  # 2026-05-04 10:00 UTC (the calendar is 24/7)

POLICIES = """
version: "v1"
lateness: {allowed: 0s, max: 2d}
unmatched: ignore
calendars:
  always: {preset: "24/7", timezone: Europe/Berlin}
policies:
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    calendar: always
    kpis:
      - {name: first_response, target: 1h, start: {kind: created}, stop: {kind: first_response}}
      - name: resolution
        target: 1d
        start: {kind: created}
        stop: {kind: resolved}
        pause: {kind: status_changed, status: waiting_for_customer}
        resume: {kind: status_changed, status: {not: waiting_for_customer}}
  - name: standard
    applies_when: {entity_type: case}
    calendar: always
    kpis:
      - {name: first_response, target: 4h, start: {kind: created}, stop: {kind: first_response}}
"""


class Record:
    """One record driven through the core with an explicit watermark."""

    core = SlaCore(parse_policies(yaml.safe_load(POLICIES), "test"))

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id
        self.state: RecordState | None = None
        self.n = 0

    def event(self, kind: str, when: int, **attributes: str) -> RecordState:
        self.n += 1
        event = RecordEvent(f"{self.record_id}-e{self.n}", self.record_id, "case", kind, when, attributes)
        self.state, _ = self.core.apply(self.state, event, when)
        return self.state

    def advance(self, now: int) -> RecordState:
        assert self.state is not None
        self.core.advance(self.state, now)
        return self.state


def kpi(record: str, deadline: int, name: str = "k", owner: str = "", queue: str = "", tier: str = "") -> UrgentKpi:
    return UrgentKpi(record, name, 1, deadline, owner=owner, queue=queue, tier=tier)


def keys(entries: list[UrgentKpi]) -> list[tuple[str, str, int]]:
    return [(e.record_id, e.kpi, e.deadline_ms) for e in entries]


def query(index: UrgencyIndex, limit: int, filters: dict[str, str]) -> list[UrgentKpi]:
    return index.most_urgent(limit, owner=filters.get("owner"), queue=filters.get("queue"), tier=filters.get("tier"))


def test_orders_by_deadline_then_record_then_kpi() -> None:
    index = UrgencyIndex()
    index.update("b", [kpi("b", 30, "z"), kpi("b", 10, "y")])
    index.update("a", [kpi("a", 30, "x")])
    index.update("c", [kpi("c", 30, "a"), kpi("c", 20)])
    assert keys(index.most_urgent(10)) == [("b", "y", 10), ("c", "k", 20), ("a", "x", 30), ("b", "z", 30),
                                           ("c", "a", 30)]  # fmt: skip
    assert keys(index.most_urgent(2)) == [("b", "y", 10), ("c", "k", 20)]
    assert index.most_urgent(0) == [] and len(index) == 5 and index.next_deadline_ms() == 10
    # now_ms changes nothing: the order by deadline is the order by time remaining at any instant.
    assert index.most_urgent(10, now_ms=25) == index.most_urgent(10)
    assert [e.remaining_ms(25) for e in index.most_urgent(2)] == [-15, -5]


def test_filters_single_and_combined() -> None:
    index = UrgencyIndex()
    index.update("1", [kpi("1", 10, owner="ana", queue="q1", tier="VIP")])
    index.update("2", [kpi("2", 20, owner="ana", queue="q2", tier="VIP")])
    index.update("3", [kpi("3", 30, owner="bo", queue="q1", tier="VIP")])
    index.update("4", [kpi("4", 40, owner="ana", queue="q1")])
    index.update("5", [kpi("5", 50)])

    def ids(**filters: str) -> list[str]:
        return [e.record_id for e in query(index, 10, filters)]

    assert ids(owner="ana") == ["1", "2", "4"]
    assert ids(queue="q1") == ["1", "3", "4"]
    assert ids(tier="VIP") == ["1", "2", "3"]
    assert ids(tier="") == ["4", "5"] and ids(owner="") == ["5"]  # "" selects entries without the attribute
    assert ids(owner="ana", queue="q1") == ["1", "4"]
    assert ids(owner="ana", tier="VIP") == ["1", "2"]
    assert ids(owner="ana", queue="q1", tier="VIP") == ["1"]
    assert ids(owner="bo", queue="q2") == [] and ids(owner="nobody") == [] and ids(owner="ana", queue="zz") == []
    assert [e.record_id for e in index.most_urgent(1, owner="ana", queue="q1")] == ["1"]


def test_updates_move_deadlines_and_remove_records() -> None:
    index = UrgencyIndex()
    index.update("a", [kpi("a", 100, owner="ana")])
    index.update("b", [kpi("b", 200, owner="ana")])
    index.update("b", [kpi("b", 50, owner="ana")])  # earlier
    assert keys(index.most_urgent(5, owner="ana")) == [("b", "k", 50), ("a", "k", 100)]
    assert index.next_deadline_ms() == 50
    index.update("b", [kpi("b", 300, owner="bo")])  # later, and reassigned
    assert keys(index.most_urgent(5)) == [("a", "k", 100), ("b", "k", 300)]
    assert keys(index.most_urgent(5, owner="ana")) == [("a", "k", 100)]
    assert keys(index.most_urgent(5, owner="bo")) == [("b", "k", 300)]
    assert index.next_deadline_ms() == 100 and len(index) == 2 and "b" in index
    index.update("b", [kpi("b", 300, owner="bo")])  # unchanged: nothing pushed
    assert len(index._all.items) <= 4
    index.remove("a")
    assert index.next_deadline_ms() == 300 and index.most_urgent(5, owner="ana") == [] and "a" not in index
    index.remove("b")
    index.remove("never-seen")
    assert index.next_deadline_ms() is None and index.most_urgent(5) == [] and len(index) == 0
    assert index._by_owner == {} and index._by_queue == {} and index._by_tier == {}


def test_rejects_an_entry_of_another_record() -> None:
    with pytest.raises(ValueError, match="entry of 'b'"):
        UrgencyIndex().update("a", [kpi("b", 1)])


def test_entries_of_a_record_come_from_its_running_clocks() -> None:
    case = Record("C-1")
    state = case.event("created", T0, tier="VIP", owner="ana", queue="support")
    [first, resolution] = sorted(urgent_entries(state), key=lambda e: e.deadline_ms)
    assert (first.kpi, first.deadline_ms, first.owner, first.queue, first.tier, first.state) == (
        "first_response", T0 + H, "ana", "support", "VIP", "running",
    )  # fmt: skip
    assert (resolution.kpi, resolution.deadline_ms, resolution.policy, resolution.entity_type) == (
        "resolution", T0 + D, "vip", "case",
    )  # fmt: skip

    index = UrgencyIndex()
    index.update("C-1", urgent_entries(state))
    other = Record("C-2")
    index.update("C-2", urgent_entries(other.event("created", T0 + 10 * M)))  # standard: 4h, no owner
    assert [(e.record_id, e.kpi) for e in index.most_urgent(10)] == [
        ("C-1", "first_response"), ("C-2", "first_response"), ("C-1", "resolution"),
    ]  # fmt: skip
    assert [e.record_id for e in index.most_urgent(10, owner="")] == ["C-2"]

    # Breached as of the last tick; still indexed (overdue: negative time remaining).
    index.update("C-1", urgent_entries(case.advance(T0 + 2 * H)))
    [overdue] = index.most_urgent(1)
    assert (overdue.kpi, overdue.state, overdue.remaining_ms(T0 + 2 * H)) == ("first_response", "breached", -H)

    # Paused KPIs have no deadline: absent while paused, back with the deadline moved by the pause.
    case.event("first_response", T0 + 2 * H)
    index.update("C-1", urgent_entries(case.event("status_changed", T0 + 3 * H, status="waiting_for_customer")))
    assert "C-1" not in index and [e.record_id for e in index.most_urgent(10)] == ["C-2"]
    index.update("C-1", urgent_entries(case.event("status_changed", T0 + 5 * H, status="open")))
    assert [(e.kpi, e.deadline_ms) for e in index.entries_of("C-1")] == [("resolution", T0 + D + 2 * H)]

    index.update("C-1", urgent_entries(case.event("resolved", T0 + 6 * H)))
    assert "C-1" not in index and len(index) == 1


def test_matches_a_brute_force_sort_under_random_operations() -> None:
    rng = random.Random(7)
    index = UrgencyIndex()
    model: dict[str, list[UrgentKpi]] = {}
    owners, queues, tiers = ["", "ana", "bo", "cy"], ["", "q1", "q2"], ["", "VIP", "Premium"]
    for step in range(20_000):
        record = f"r{rng.randrange(200)}"
        roll = rng.random()
        if roll < 0.15:
            index.remove(record)
            model.pop(record, None)
        elif roll < 0.75:
            owner, queue, tier = rng.choice(owners), rng.choice(queues), rng.choice(tiers)
            entries = [
                UrgentKpi(record, name, rng.randrange(1, 3), rng.randrange(1000), owner, queue, tier)
                for name in rng.sample(["a", "b", "c"], rng.randrange(4))
            ]
            index.update(record, entries)
            latest = {(e.kpi, e.kpi_instance): e for e in entries}
            if latest:
                model[record] = list(latest.values())
            else:
                model.pop(record, None)
        else:
            filters = {
                name: rng.choice(values)
                for name, values in (("owner", owners), ("queue", queues), ("tier", tiers))
                if rng.random() < 0.4
            }
            limit = rng.randrange(1, 15)
            expected = sorted(
                (e for es in model.values() for e in es if all(getattr(e, f) == v for f, v in filters.items())),
                key=lambda e: (e.deadline_ms, e.record_id, e.kpi, e.kpi_instance),
            )[:limit]
            assert query(index, limit, filters) == expected, step
        everything = [e for es in model.values() for e in es]
        assert len(index) == len(everything)
        assert index.next_deadline_ms() == min((e.deadline_ms for e in everything), default=None)
        for heap in (index._all, *index._by_owner.values(), *index._by_queue.values(), *index._by_tier.values()):
            assert len(heap.items) <= max(64, 2 * heap.live)  # stale items are compacted away


def test_most_urgent_reads_only_a_few_nodes_of_a_large_index() -> None:
    rng = random.Random(11)
    index = UrgencyIndex()
    n = 100_000
    for i in range(n):
        record = f"r{i}"
        index.update(record, [kpi(record, rng.randrange(10**9), owner=f"o{i % 50}", queue=f"q{i % 7}",
                                  tier=("VIP", "Premium", "")[i % 3])])  # fmt: skip
    for i in range(0, n, 3):  # churn: a third of the records move, leaving stale items behind
        record = f"r{i}"
        index.update(record, [kpi(record, rng.randrange(10**9), owner=f"o{i % 50}", queue=f"q{(i // 3) % 7}",
                                  tier="VIP")])  # fmt: skip
    assert len(index) == n

    def brute(**filters: str) -> list[UrgentKpi]:
        entries = [e for r in (f"r{i}" for i in range(n)) for e in index.entries_of(r)]
        matching = [e for e in entries if all(getattr(e, f) == v for f, v in filters.items())]
        return sorted(matching, key=lambda e: (e.deadline_ms, e.record_id))[:10]

    for filters in ({}, {"owner": "o3"}, {"queue": "q2", "tier": "VIP"}, {"owner": "o3", "queue": "q3"}):
        top = query(index, 10, filters)
        assert top == brute(**filters), filters
        assert len(top) == 10 and index.visited < 2000, (filters, index.visited)
