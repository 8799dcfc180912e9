"""The deadline index: which record is due next, in O(log n) per update.

A binary heap of ``(due_ms, record_id)`` with lazy deletion: updating a
record pushes a new entry and remembers the current due time in a dict;
entries that no longer match are skipped when they reach the top. The heap is
compacted when stale entries outnumber live ones, so memory stays O(live).
"""

from __future__ import annotations

import heapq


class DeadlineIndex:
    """Next due instant (UTC epoch milliseconds) per record id."""

    __slots__ = ("_due", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._due: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._due

    def due_of(self, record_id: str) -> int | None:
        """The indexed due instant of ``record_id``, or ``None``."""
        return self._due.get(record_id)

    def update(self, record_id: str, due_ms: int | None) -> None:
        """Set (or, with ``None``, remove) the due instant of ``record_id``."""
        if due_ms is None:
            self._due.pop(record_id, None)
        elif self._due.get(record_id) != due_ms:
            self._due[record_id] = due_ms
            heapq.heappush(self._heap, (due_ms, record_id))
        if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
            self._heap = [(due, rid) for rid, due in self._due.items()]
            heapq.heapify(self._heap)

    def peek(self) -> int | None:
        """The earliest due instant, or ``None`` when nothing is indexed."""
        heap = self._heap
        while heap and self._due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now_ms: int) -> list[str]:
        """Remove and return the records due at or before ``now_ms``, earliest first."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= now_ms:
            at, record_id = heapq.heappop(heap)
            if self._due.get(record_id) == at:
                del self._due[record_id]
                due.append(record_id)
        return due
