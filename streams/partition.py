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
beside the core's snapshot, the record's next due instant, its urgency
entries and the number of its paused KPIs, so that both indexes and the counts
of open KPIs by state (:meth:`PartitionLogic.open_kpis`) are rebuilt after a
restart or a rebalance without restoring every record.

Reading a record (:meth:`PartitionLogic.peek`) never changes the partition:
a view of a record loads it without caching it.

**Records that cannot be restored.** A stored record pinned to a policy
version the core does not have (:class:`~streams.core.SnapshotError`) is set
aside, never a crash: its events are rejected with reason
``unknown_policy_version`` (the driver dead-letters them), its deadlines do not
fire, its stored state is kept as it is, and it is reported once
(:meth:`PartitionLogic.take_set_aside`).

Pure: no Kafka, no clock, no I/O. The Faust agent runs it per partition, and
the tests run it over the same messages to know which alerts must come out.
Times are UTC epoch milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from streams.core import EventRejected, RecordState, SlaCore, SnapshotError, snapshot
from streams.deadlines import DeadlineIndex
from streams.errors import DeadLetterReason
from streams.events import RecordEvent
from streams.outputs import Output
from streams.urgency import UrgencyIndex, UrgentKpi, urgent_entries

PAUSED: Final = "paused"
"""The state of a paused KPI in :meth:`PartitionLogic.open_kpis` (the others are the urgency entries' states)."""

WATERMARK_KEY_PREFIX: Final = "\x00watermark/"
"""Table keys of this form hold a partition's watermark, not a record (no record id starts with NUL)."""


def watermark_key(partition: int) -> str:
    """The table key under which ``partition``'s watermark is stored."""
    return f"{WATERMARK_KEY_PREFIX}{partition}"


@dataclass(frozen=True, slots=True)
class Stored:
    """A record as a table holds it: its partition, next due instant, urgency entries, paused KPIs and snapshot."""

    partition: int
    due_ms: int | None
    urgent: tuple[UrgentKpi, ...]
    snapshot: dict[str, Any] | None
    """``None`` when only the header was read (:func:`read_stored` with ``header_only``)."""
    paused: int = 0
    """Open KPIs of the record that are paused (they have no urgency entry: no deadline while paused)."""


_URGENT_FIELDS: Final = ("kpi", "kpi_instance", "deadline_ms", "owner", "queue", "tier", "entity_type", "policy",
                         "state")  # fmt: skip


def paused_kpis(state: RecordState) -> int:
    """How many open KPIs of ``state`` are paused."""
    return sum(1 for clock in state.live.clocks if clock.is_paused)


def stored_bytes(partition: int, state: RecordState, due_ms: int | None, urgent: Iterable[UrgentKpi]) -> bytes:
    """The table value of a record: one JSON document, the header first."""
    entries = [[getattr(entry, name) for name in _URGENT_FIELDS] for entry in urgent]
    header = json.dumps([partition, due_ms, entries, paused_kpis(state)], separators=(",", ":"))
    body = json.dumps(snapshot(state), separators=(",", ":"))
    return f"{header}\n{body}".encode()


def read_stored(record_id: str, value: bytes, *, header_only: bool = False) -> Stored:
    """Parse :func:`stored_bytes`; with ``header_only`` the snapshot is not decoded (index rebuilds).

    A header of three fields (written before the paused count was stored) reads as no paused KPI; the record's
    next change stores the count.
    """
    newline = value.index(b"\n")
    partition, due_ms, entries, *rest = json.loads(value[:newline])
    urgent = tuple(UrgentKpi(record_id, *entry) for entry in entries)
    snapshot_data = None if header_only else json.loads(value[newline + 1 :])
    return Stored(partition, due_ms, urgent, snapshot_data, rest[0] if rest else 0)


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
        self._paused: dict[str, int] = {}
        """Paused KPIs per record that has any (open KPIs by state: :meth:`open_kpis`)."""
        self.set_aside: dict[str, str] = {}
        """Records whose stored state cannot be restored, with why (see the module doc)."""
        self._newly_set_aside: list[tuple[str, str]] = []
        for record_id, stored in known:
            self.deadlines.update(record_id, stored.due_ms)
            if stored.urgent:
                self.urgency.update(record_id, stored.urgent)
            if stored.paused:
                self._paused[record_id] = stored.paused

    def __len__(self) -> int:
        """Records with a pending deadline."""
        return len(self.deadlines)

    def on_event(self, event: RecordEvent) -> list[Output]:
        """Apply ``event`` at the watermark (or at its own time before the first tick); return the outputs.

        Raises :class:`~streams.core.EventRejected` (late, no policy, unknown policy version) and changes nothing
        then.
        """
        now_ms = event.occurred_at_ms if self.watermark_ms is None else self.watermark_ms
        record_id = event.record_id
        if record_id not in self.set_aside:
            try:
                current = self._state(record_id)
            except SnapshotError as exc:
                self._set_aside(record_id, str(exc))
        if record_id in self.set_aside:
            raise EventRejected(DeadLetterReason.UNKNOWN_POLICY_VERSION, self.set_aside[record_id])
        state, outputs = self.core.apply(current, event, now_ms)
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
            try:
                state = self._state(record_id)
            except SnapshotError as exc:
                self._set_aside(record_id, str(exc))  # popped, not indexed again: its deadlines wait with it
                continue
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

    def take_set_aside(self) -> list[tuple[str, str]]:
        """``(record_id, why)`` of the records set aside since the last call: each is reported once."""
        found = self._newly_set_aside
        self._newly_set_aside = []
        return found

    def peek(self, record_id: str) -> RecordState | None:
        """The current state of one record of this partition, or ``None``; loading it caches nothing, so a read
        never changes what the partition holds. Raises :class:`~streams.core.SnapshotError` for a record that
        cannot be restored."""
        state = self._states.get(record_id)
        return self._load(record_id) if state is None else state

    def open_kpis(self) -> dict[str, int]:
        """Open KPIs of this partition by state (``running``, ``warned``, ``breached``, ``paused``), as of each
        record's last change: a threshold counts once its output is released. Kept as records change, never
        counted by walking the records."""
        counts = {state: n for state, n in self.urgency.states.items() if n}
        paused = sum(self._paused.values())
        if paused:
            counts[PAUSED] = paused
        return counts

    def _state(self, record_id: str) -> RecordState | None:
        state = self._states.get(record_id)
        if state is None:
            state = self._load(record_id)
            if state is not None:
                self._states[record_id] = state
        return state

    def _set_aside(self, record_id: str, why: str) -> None:
        if record_id not in self.set_aside:
            why = f"{why}; its events are dead-lettered until a worker that has that version runs"
            self.set_aside[record_id] = why
            self._newly_set_aside.append((record_id, why))

    def _touched(self, state: RecordState) -> None:
        record_id = state.record_id
        self._states[record_id] = state
        self._dirty[record_id] = state
        self.deadlines.update(record_id, self.core.next_due_ms(state))
        self.urgency.update(record_id, urgent_entries(state))
        paused = paused_kpis(state)
        if paused:
            self._paused[record_id] = paused
        else:
            self._paused.pop(record_id, None)
