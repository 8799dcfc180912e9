"""Replay: drive the SLA core over a sequence of events, as the worker would, with the events' own time.

:class:`Replayer` keeps one :class:`~streams.core.RecordState` per record and a
:class:`~streams.deadlines.DeadlineIndex` of when each record has something to
do. The watermark is the latest ``occurred_at_ms`` among the events applied so
far: each event is applied with it, then every record due by it is advanced.
So a file of last month's events yields the outputs the live pipeline would
have emitted, in the order it would have emitted them, in seconds.

An event the core rejects (:class:`~streams.core.EventRejected`) is counted and
re-raised, and does not move the watermark (a stray event dated next year must
not fire every deadline, nor make every following event late).

Pure: no I/O, no clock. The ``slaflow replay`` command (``agents/replay.py``)
reads the files and writes the outputs.
"""

from __future__ import annotations

from collections import Counter

from streams.core import NEVER_MS, EventRejected, RecordState, SlaCore
from streams.deadlines import DeadlineIndex
from streams.events import RecordEvent
from streams.kpi import KpiState
from streams.outputs import Output


class Replayer:
    """Feeds events to a :class:`SlaCore` in the given order; the watermark follows the events' time.

    Counters: ``events_fed``, ``applied``, ``rejected`` (by reason: ``late``, ``no_policy``) and
    ``outputs`` (by output kind).
    """

    def __init__(self, core: SlaCore) -> None:
        self.core = core
        self.states: dict[str, RecordState] = {}
        self.index = DeadlineIndex()
        self.watermark_ms: int = NEVER_MS
        self.events_fed = 0
        self.applied = 0
        self.rejected: Counter[str] = Counter()
        self.outputs: Counter[str] = Counter()

    def feed(self, event: RecordEvent) -> list[Output]:
        """Apply ``event``, then advance every record due by the new watermark; return the outputs in order.

        Raises :class:`EventRejected` (after counting it) for an event the core will not apply.
        """
        self.events_fed += 1
        watermark = max(self.watermark_ms, event.occurred_at_ms)
        record_id = event.record_id
        try:
            state, outputs = self.core.apply(self.states.get(record_id), event, watermark)
        except EventRejected as exc:
            self.rejected[exc.reason] += 1
            raise
        self.applied += 1
        self.watermark_ms = watermark
        self.states[record_id] = state
        self.index.update(record_id, self.core.next_due_ms(state))
        outputs = [*outputs, *self._fire()]
        self._count(outputs)
        return outputs

    def finish(self, until_ms: int | None = None) -> list[Output]:
        """End of input: move the watermark to ``until_ms`` if later, and return everything then due."""
        if until_ms is not None and until_ms > self.watermark_ms:
            self.watermark_ms = until_ms
        outputs = self._fire()
        self._count(outputs)
        return outputs

    def outcomes(self, now_ms: int | None = None) -> dict[tuple[str, str, int], KpiState]:
        """``(record_id, kpi, instance) -> state`` of every record's current KPI instances at ``now_ms``.

        ``now_ms`` defaults to the watermark. Only the current instance of each KPI is kept by the core.
        """
        now = self.watermark_ms if now_ms is None else now_ms
        return {
            (record_id, clock.name, clock.instance): clock.state_at(now)
            for record_id, state in self.states.items()
            for clock in state.clocks()
        }

    def _fire(self) -> list[Output]:
        """Advance every record whose due instant is at or before the watermark, earliest first."""
        outputs: list[Output] = []
        now = self.watermark_ms
        for record_id in self.index.pop_due(now):
            state = self.states[record_id]
            outputs += self.core.advance(state, now)
            self.index.update(record_id, self.core.next_due_ms(state))
        return outputs

    def _count(self, outputs: list[Output]) -> None:
        for output in outputs:
            self.outputs[output.kind.value] += 1
