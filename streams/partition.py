"""One input partition's SLA work: what a worker keeps between the messages of a Kafka partition.

A partition of the input topics carries record events and clock ticks, in
order. :class:`PartitionLogic` holds what that partition needs between
messages: its watermark (moved by clock ticks only, so a source with a fast
clock cannot fire deadlines early), the live state of the records it has
touched (loaded on first use through a ``load`` callback, so state can live in
a table or a file), the deadline index (which record is due next) and the
urgency index (which open KPI has the least time left).

``on_event`` and ``on_tick`` return the outputs in order; ``take_dirty`` hands
back the records changed since its last call, for the caller to persist once
per batch (a record touched by a hundred events of a batch is written once).

The stored form of a record (:func:`stored_bytes`, :class:`Stored`) carries,
beside the core's snapshot, the record's next due instant and its urgency
entries, so that both indexes of a partition are rebuilt after a restart or a
rebalance without restoring every record.

Pure: no Kafka, no clock, no I/O. The Faust agent runs it per partition, and
the tests run it over the same messages to know which alerts must come out.
Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from streams.core import RecordState, SlaCore, snapshot
from streams.deadlines import DeadlineIndex
from streams.events import RecordEvent
from streams.outputs import Output
from streams.urgency import UrgencyIndex, UrgentKpi, urgent_entries

WATERMARK_KEY_PREFIX: Final = "\x00watermark/"
"""Table keys of this form hold a partition's watermark, not a record (no record id starts with NUL)."""


def watermark_key(partition: int) -> str:
    """The table key under which ``partition``'s watermark is stored."""
    return f"{WATERMARK_KEY_PREFIX}{partition}"


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as a table holds it: its partition, next due instant, urgency entries and snapshot."""

    partition: int
    due_ms: int | None
    urgent: tuple[UrgentKpi, ...]
    snapshot: dict[str, Any] | None
    """``None`` when only the header was read (:func:`read_stored` with ``header_only``)."""


_URGENT_FIELDS: Final = ("kpi", "kpi_instance", "deadline_ms", "owner", "queue", "tier", "entity_type", "policy",
                         "state")  # fmt: skip


def stored_bytes(partition: int, state: RecordState, due_ms: int | None, urgent: Iterable[UrgentKpi]) -> bytes:
    """The table value of a record: one JSON document, the header first."""
    entries = [[getattr(entry, name) for name in _URGENT_FIELDS] for entry in urgent]
    header = json.dumps([partition, due_ms, entries], separators=(",", ":"))
    body = json.dumps(snapshot(state), separators=(",", ":"))
    return f"{header}\n{body}".encode()


def read_stored(record_id: str, value: bytes, *, header_only: bool = False) -> Stored:
    """Parse :func:`stored_bytes`; with ``header_only`` the snapshot is not decoded (index rebuilds)."""
    newline = value.index(b"\n")
    partition, due_ms, entries = json.loads(value[:newline])
    urgent = tuple(UrgentKpi(record_id, *entry) for entry in entries)
    return Stored(partition, due_ms, urgent, None if header_only else json.loads(value[newline + 1 :]))


class PartitionLogic:
    """The SLA state machine of one input partition (see the module doc).

    ``load(record_id)`` returns the stored state of a record this partition has not touched since it was
    created (``None`` for a new record). ``watermark_ms`` is the stored watermark (``None``: no tick yet; an
    event is then applied at its own time). ``known`` are the stored records' ``(record_id, Stored header)``,
    from which the deadline and urgency indexes are rebuilt.
    """

    def __init__(
        self,
        core: SlaCore,
        load: Callable[[str], RecordState | None],
        watermark_ms: int | None = None,
        known: Iterable[tuple[str, Stored]] = (),
    ) -> None:
        self.core = core
        self.watermark_ms = watermark_ms
        self.watermark_moved = False
        self.deadlines = DeadlineIndex()
        self.urgency = UrgencyIndex()
        self._load = load
        self._states: dict[str, RecordState] = {}
        self._dirty: dict[str, RecordState] = {}
        for record_id, stored in known:
            self.deadlines.update(record_id, stored.due_ms)
            if stored.urgent:
                self.urgency.update(record_id, stored.urgent)

    def __len__(self) -> int:
        """Records with a pending deadline."""
        return len(self.deadlines)

    def on_event(self, event: RecordEvent) -> list[Output]:
        """Apply ``event`` at the watermark (or at its own time before the first tick); return the outputs.

        Raises :class:`~streams.core.EventRejected` (late, no policy) and changes nothing then.
        """
        now_ms = event.occurred_at_ms if self.watermark_ms is None else self.watermark_ms
        state, outputs = self.core.apply(self._state(event.record_id), event, now_ms)
        self._touched(state)
        return outputs

    def on_tick(self, at_ms: int) -> list[Output]:
        """Time has reached ``at_ms``: advance every record due by then, earliest first. Ticks never go back."""
        if self.watermark_ms is not None and at_ms <= self.watermark_ms:
            return []
        self.watermark_ms = at_ms
        self.watermark_moved = True
        outputs: list[Output] = []
        for record_id in self.deadlines.pop_due(at_ms):
            state = self._state(record_id)
            if state is None:
                continue
            outputs += self.core.advance(state, at_ms)
            self._touched(state)
        return outputs

    def take_dirty(self) -> list[RecordState]:
        """The records changed since the last call (each once), and forget that they changed."""
        dirty = list(self._dirty.values())
        self._dirty.clear()
        return dirty

    def stored(self, partition: int, state: RecordState) -> bytes:
        """The table value of ``state`` (:func:`stored_bytes`) with its indexed due instant and urgency entries."""
        record_id = state.record_id
        return stored_bytes(partition, state, self.deadlines.due_of(record_id), self.urgency.entries_of(record_id))

    def evict(self, keep_at_most: int) -> None:
        """Drop cached live states beyond ``keep_at_most`` (oldest loaded first); unsaved ones are kept."""
        excess = len(self._states) - keep_at_most
        if excess <= 0:
            return
        for record_id in [r for r in self._states if r not in self._dirty][:excess]:
            del self._states[record_id]

    def cached(self) -> Iterator[RecordState]:
        """The live states held in memory (all records touched since start, unless evicted)."""
        return iter(self._states.values())

    def record(self, record_id: str) -> RecordState | None:
        """The current state of one record of this partition, or ``None``."""
        return self._state(record_id)

    def _state(self, record_id: str) -> RecordState | None:
        state = self._states.get(record_id)
        if state is None:
            state = self._load(record_id)
            if state is not None:
                self._states[record_id] = state
        return state

    def _touched(self, state: RecordState) -> None:
        record_id = state.record_id
        self._states[record_id] = state
        self._dirty[record_id] = state
        self.deadlines.update(record_id, self.core.next_due_ms(state))
        self.urgency.update(record_id, urgent_entries(state))
