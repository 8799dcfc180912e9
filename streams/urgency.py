"""The urgency index: which case first. Open, running KPIs ordered by deadline, filterable by owner, queue and tier.

Time remaining is ``deadline_ms - now_ms`` (negative once overdue), so for any
``now`` the order by time remaining is the order by deadline: the index stores
deadlines and never needs the clock. Ties are broken by record id, KPI name,
then KPI instance.

**Paused KPIs are not indexed.** A paused clock has no deadline (its time
remaining is frozen until it resumes), so :func:`urgent_entries` leaves it out;
the record's next :meth:`UrgencyIndex.update` after the resume puts it back.
Ended KPIs (met or cancelled) are not indexed either.

**Structure.** Every entry sits in up to four binary heaps: the global one and
one per owner, per queue and per tier value (the same tuple object, so the
cost is four references). Heaps use lazy deletion as :mod:`streams.deadlines`
does: replacing or removing an entry only drops it from the live dict; stale
heap items are skipped when read, popped when they reach a top, and a heap is
compacted when it holds more than twice its live entries (a keyed heap with no
live entry is dropped). An update is O(log n) per changed entry; unchanged
entries are kept as they are.

**Reads.** :meth:`UrgencyIndex.most_urgent` reads the ``limit`` smallest of
one heap without modifying it: a best-first walk of the heap's implicit tree
(children of node ``i`` are ``2i + 1`` and ``2i + 2``) with a small frontier
heap, O(v log v) for v nodes visited. v is ``limit`` plus the stale and, with
several filters, non-matching items met on the way; with several filters the
walk runs over the smallest of the filtered heaps and checks the others.

Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from streams.core import RecordState

COMPACT_MIN: Final = 64
"""Heaps smaller than this are never compacted (the rebuild would cost more than the stale items)."""
RUNNING: Final = "running"
WARNED: Final = "warned"
BREACHED: Final = "breached"


@dataclass(frozen=True, slots=True)
class UrgentKpi:
    """One open, running KPI of one record, with the attributes to filter on.

    ``state`` is ``"breached"`` if the core has crossed the deadline (by an
    event, or by a tick: its breach output was emitted), ``"warned"`` if it
    has crossed the warning point the same way, else ``"running"``; a view
    derives the current picture from ``now`` with :meth:`remaining_ms`.
    """

    record_id: str
    kpi: str
    kpi_instance: int
    deadline_ms: int
    owner: str = ""
    queue: str = ""
    tier: str = ""
    entity_type: str = ""
    policy: str = ""
    state: str = RUNNING

    def remaining_ms(self, now_ms: int) -> int:
        """Time remaining at ``now_ms``: negative once the deadline has passed."""
        return self.deadline_ms - now_ms


def urgent_entries(state: RecordState) -> list[UrgentKpi]:
    """The index entries of one record: its open, running (not paused) KPI clocks, in clock order."""
    live = state.live
    attributes = live.attributes
    owner, queue, tier = attributes.get("owner", ""), attributes.get("queue", ""), attributes.get("tier", "")
    entries = []
    for clock in live.clocks:
        if not clock.is_open or clock.is_paused:
            continue
        deadline = clock.deadline_ms()
        if deadline is None:
            continue
        emitted = state.emitted_until_ms
        if clock.breached or deadline <= emitted:
            kpi_state = BREACHED
        elif clock.crossed or ((upcoming := clock.next_threshold()) is not None and upcoming[0] <= emitted):
            kpi_state = WARNED  # the first threshold is the warning when the deadline is not crossed yet
        else:
            kpi_state = RUNNING
        entries.append(
            UrgentKpi(
                record_id=state.record_id,
                kpi=clock.name,
                kpi_instance=clock.instance,
                deadline_ms=deadline,
                owner=owner,
                queue=queue,
                tier=tier,
                entity_type=live.entity_type,
                policy=clock.policy,
                state=kpi_state,
            )
        )
    return entries


# (deadline_ms, record_id, kpi, kpi_instance, seq, entry): seq is unique, so entries are never compared.
_Item = tuple[int, str, str, int, int, UrgentKpi]


class _Heap:
    """A binary heap of items plus the number of its items that are live."""

    __slots__ = ("items", "live")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.live = 0


class UrgencyIndex:
    """Open, running KPIs by deadline: the global order and one order per owner, queue and tier.

    ``visited`` is the number of heap nodes the last :meth:`most_urgent` call
    read (for tests and benchmarks). ``states`` counts the indexed entries by
    ``state``, kept as entries come and go, so that a gauge of open KPIs by
    state never walks the index.
    """

    __slots__ = ("_all", "_by_owner", "_by_queue", "_by_tier", "_live", "_records", "_seq", "states", "visited")

    def __init__(self) -> None:
        self._all = _Heap()
        self._by_owner: dict[str, _Heap] = {}
        self._by_queue: dict[str, _Heap] = {}
        self._by_tier: dict[str, _Heap] = {}
        self._live: dict[int, UrgentKpi] = {}
        self._records: dict[str, dict[tuple[str, int], int]] = {}
        self._seq = 0
        self.states: dict[str, int] = {}
        self.visited = 0

    def __len__(self) -> int:
        return len(self._live)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._records

    def entries_of(self, record_id: str) -> list[UrgentKpi]:
        """The indexed entries of ``record_id``, by deadline."""
        seqs = self._records.get(record_id, {})
        return sorted((self._live[s] for s in seqs.values()), key=_order)

    # -- updates --------------------------------------------------------------------------------

    def update(self, record_id: str, entries: Iterable[UrgentKpi]) -> None:
        """Replace every entry of ``record_id`` with ``entries`` (none: remove the record).

        Entries are identified by ``(kpi, kpi_instance)``; a repeated one keeps the last.
        Raises :class:`ValueError` for an entry of another record.
        """
        wanted: dict[tuple[str, int], UrgentKpi] = {}
        for entry in entries:
            if entry.record_id != record_id:
                raise ValueError(f"entry of {entry.record_id!r} given for record {record_id!r}")
            wanted[(entry.kpi, entry.kpi_instance)] = entry
        old = self._records.pop(record_id, None)
        kept: dict[tuple[str, int], int] = {}
        if old:
            for key, seq in old.items():
                if wanted.get(key) == self._live[seq]:
                    kept[key] = seq
                else:
                    self._kill(seq)
        for key, entry in wanted.items():
            if key not in kept:
                kept[key] = self._push(entry)
        if kept:
            self._records[record_id] = kept

    def remove(self, record_id: str) -> None:
        """Drop every entry of ``record_id`` (nothing if it has none)."""
        self.update(record_id, ())

    def _push(self, entry: UrgentKpi) -> int:
        self._seq += 1
        seq = self._seq
        self._live[seq] = entry
        self.states[entry.state] = self.states.get(entry.state, 0) + 1
        item: _Item = (entry.deadline_ms, entry.record_id, entry.kpi, entry.kpi_instance, seq, entry)
        for heap in (
            self._all,
            self._keyed(self._by_owner, entry.owner),
            self._keyed(self._by_queue, entry.queue),
            self._keyed(self._by_tier, entry.tier),
        ):
            heapq.heappush(heap.items, item)
            heap.live += 1
            self._compact(heap)
        return seq

    @staticmethod
    def _keyed(heaps: dict[str, _Heap], key: str) -> _Heap:
        heap = heaps.get(key)
        if heap is None:
            heap = heaps[key] = _Heap()
        return heap

    def _kill(self, seq: int) -> None:
        entry = self._live.pop(seq)
        self.states[entry.state] -= 1
        self._release(self._all)
        for heaps, key in ((self._by_owner, entry.owner), (self._by_queue, entry.queue), (self._by_tier, entry.tier)):
            heap = heaps[key]
            if heap.live == 1:
                del heaps[key]
            else:
                self._release(heap)

    def _release(self, heap: _Heap) -> None:
        """One live item of ``heap`` became stale."""
        heap.live -= 1
        self._compact(heap)

    def _compact(self, heap: _Heap) -> None:
        """Drop the stale items of ``heap`` once they outnumber the live ones (O(1) amortised per kill)."""
        if len(heap.items) > COMPACT_MIN and len(heap.items) > 2 * heap.live:
            live = self._live
            heap.items = [item for item in heap.items if item[4] in live]
            heapq.heapify(heap.items)

    def _clean_top(self, heap: _Heap) -> None:
        items, live = heap.items, self._live
        while items and items[0][4] not in live:
            heapq.heappop(items)

    # -- reads ----------------------------------------------------------------------------------

    def next_deadline_ms(self) -> int | None:
        """The earliest deadline of any indexed KPI, or ``None`` (O(1) amortised)."""
        self._clean_top(self._all)
        items = self._all.items
        return items[0][0] if items else None

    def most_urgent(
        self,
        limit: int,
        *,
        owner: str | None = None,
        queue: str | None = None,
        tier: str | None = None,
        now_ms: int | None = None,
    ) -> list[UrgentKpi]:
        """The (at most) ``limit`` entries with the earliest deadlines, matching every filter given.

        Ordered by deadline, then record id, KPI name and instance. ``now_ms``
        changes nothing: the order by deadline is the order by time remaining
        at any instant (use :meth:`UrgentKpi.remaining_ms` to show it). A
        filter value ``""`` selects the entries without that attribute.
        """
        del now_ms  # accepted for callers that pass their clock; the order does not depend on it
        self.visited = 0
        if limit <= 0:
            return []
        candidates = [self._all]
        if owner is not None or queue is not None or tier is not None:
            candidates = []
            for heaps, value in ((self._by_owner, owner), (self._by_queue, queue), (self._by_tier, tier)):
                if value is not None:
                    found = heaps.get(value)
                    if found is None:
                        return []
                    candidates.append(found)
        heap = min(candidates, key=lambda h: h.live)
        check = len(candidates) > 1
        self._clean_top(heap)
        items, live = heap.items, self._live
        size = len(items)
        out: list[UrgentKpi] = []
        frontier: list[tuple[_Item, int]] = [(items[0], 0)] if items else []
        visited = 0
        while frontier and len(out) < limit:
            item, i = heapq.heappop(frontier)
            visited += 1
            entry = item[5]
            if item[4] in live and not (
                check
                and (
                    (owner is not None and entry.owner != owner)
                    or (queue is not None and entry.queue != queue)
                    or (tier is not None and entry.tier != tier)
                )
            ):
                out.append(entry)
            child = 2 * i + 1
            if child < size:
                heapq.heappush(frontier, (items[child], child))
                if child + 1 < size:
                    heapq.heappush(frontier, (items[child + 1], child + 1))
        self.visited = visited
        return out


def _order(entry: UrgentKpi) -> tuple[int, str, str, int]:
    return entry.deadline_ms, entry.record_id, entry.kpi, entry.kpi_instance
