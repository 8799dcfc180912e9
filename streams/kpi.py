"""One KPI clock: business time counted on a calendar, paused and resumed with a ledger, thresholds crossed.

A clock counts *business* milliseconds on its KPI's calendar while it runs.
Its history is a sequence of run segments; ``used_ms`` holds the business time
of the closed segments and ``run_start_ms`` the start of the open one (``None``
while paused or ended). Every pause is kept in the ledger with its reason, so
that the paused credit survives a re-target (a tier or priority change): the
new target applies to the business time already used, never to wall time.

Thresholds are marks on the business-time axis: the warning point, the target
(the deadline), then ``target + after`` for each escalation level. The instant
of a mark is ``calendar.add(run_start_ms, mark - used_ms)`` while running, and
undefined while paused (a paused clock crosses nothing).

**The deadline** of an instance is the instant its target is reached: while
it runs, the instant the target mark will be reached; once the target mark is
crossed, the instant it was crossed (``deadline_at_ms``), for good: a pause
and resume after a breach, or the end of the KPI, cannot move it.

Times are UTC epoch milliseconds; durations milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from enum import StrEnum

from streams.policy import KpiSpec


class KpiState(StrEnum):
    """Where a KPI stands."""

    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    WARNING = "warning"
    BREACHED = "breached"
    SUCCEEDED = "succeeded"
    CANCELLED = "cancelled"


class Threshold(StrEnum):
    """A mark on a clock's business-time axis."""

    WARNING = "WARNING"
    BREACH = "BREACH"
    ESCALATION = "ESCALATION"


@dataclass(slots=True)
class KpiClock:
    """One instance of one KPI on one record, pinned to the policy version it started under.

    ``target_ms``, ``warning_ms`` and the escalation offsets come from ``spec``
    (re-targeting swaps the spec and keeps ``used_ms`` and the ledger).
    ``crossed`` counts the thresholds already crossed, in mark order.
    ``pauses`` is the ledger: ``(start_ms, end_ms or None while open, reason)``.
    """

    spec: KpiSpec
    policy: str
    version: str
    instance: int
    started_at_ms: int
    run_start_ms: int | None
    used_ms: int = 0
    crossed: int = 0
    pauses: tuple[tuple[int, int | None, str], ...] = ()
    ended_at_ms: int | None = None
    cancelled: bool = False
    fired: int = 0
    """Every threshold this instance has crossed under any spec, as bits (see ``_bit``): a re-target back and
    forth never fires the same threshold twice."""
    reopens: int = 0
    """How many times the KPI was reopened: numbers its KPI_REOPENED and later KPI_SUCCEEDED outputs."""
    retargets: int = 0
    """How many times the KPI was re-targeted: numbers its KPI_RETARGETED outputs."""
    deadline_at_ms: int | None = None
    """The instant the target mark was crossed (the breach), once it was: the instance's deadline from then on."""
    _next_index: int = dataclass_field(default=-1, compare=False, repr=False)
    """Cache of next_threshold(): the mark index it was computed for (-1: none), and its instant."""
    _next_at: int | None = dataclass_field(default=None, compare=False, repr=False)

    def clone(self) -> KpiClock:
        """An independent copy (faster than ``dataclasses.replace``; the fields are immutable values)."""
        return KpiClock(
            self.spec, self.policy, self.version, self.instance, self.started_at_ms, self.run_start_ms, self.used_ms,
            self.crossed, self.pauses, self.ended_at_ms, self.cancelled, self.fired, self.reopens, self.retargets,
            self.deadline_at_ms, self._next_index, self._next_at,
        )  # fmt: skip

    # -- derived --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The KPI's name."""
        return self.spec.name

    @property
    def is_open(self) -> bool:
        """Not yet met or cancelled (a breached KPI stays open until it is met or cancelled)."""
        return self.ended_at_ms is None

    @property
    def is_paused(self) -> bool:
        """Open and not counting."""
        return self.ended_at_ms is None and self.run_start_ms is None

    @property
    def _breach_index(self) -> int:
        warning = self.spec.warning_ms
        return 1 if warning is not None and warning < self.spec.target_ms else 0

    @property
    def breached(self) -> bool:
        """Whether the deadline was crossed (as of the last event applied)."""
        return self.crossed > self._breach_index

    def crossed_at(self, now_ms: int) -> int:
        """How many thresholds are crossed once time reaches ``now_ms`` (with no further event)."""
        return self.crossed + len(self.upcoming(now_ms))

    def state_at(self, now_ms: int) -> KpiState:
        """The state once time reaches ``now_ms``, as the product brief names them."""
        crossed = self.crossed_at(now_ms)
        if self.ended_at_ms is not None:
            if self.cancelled:
                return KpiState.CANCELLED
            return KpiState.BREACHED if crossed > self._breach_index else KpiState.SUCCEEDED
        if self.run_start_ms is None:
            return KpiState.PAUSED
        if crossed > self._breach_index:
            return KpiState.BREACHED
        return KpiState.WARNING if crossed else KpiState.IN_PROGRESS

    def business_elapsed(self, at_ms: int) -> int:
        """Business ms counted from the start until ``at_ms`` (pauses excluded)."""
        if self.run_start_ms is None or at_ms <= self.run_start_ms:
            return self.used_ms
        return self.used_ms + self.spec.calendar.elapsed(self.run_start_ms, at_ms)

    def paused_elapsed(self, at_ms: int) -> int:
        """Wall ms spent paused from the start until ``at_ms``."""
        total = 0
        for start, end, _ in self.pauses:
            stop = at_ms if end is None else min(end, at_ms)
            if stop > start:
                total += stop - start
        return total

    def instant_of(self, mark_ms: int) -> int | None:
        """When the clock reaches ``mark_ms`` business ms (``None`` while paused or ended)."""
        if self.run_start_ms is None or self.ended_at_ms is not None:
            return None
        if mark_ms <= self.used_ms:
            return self.run_start_ms
        return self.spec.calendar.add(self.run_start_ms, mark_ms - self.used_ms)

    def deadline_ms(self) -> int | None:
        """The instance's deadline: the instant its target was reached once it was (see the module doc), else the
        instant it is reached if the clock keeps running (``None`` while paused or ended before it)."""
        if self.deadline_at_ms is not None:
            return self.deadline_at_ms
        if self.run_start_ms is None or self.ended_at_ms is not None:
            return None
        index = self._next_index
        if index >= 0 and self._next_at is not None and marks_of(self.spec)[index][1] is Threshold.BREACH:
            return self._next_at
        return self.instant_of(self.spec.target_ms)

    def next_threshold(self) -> tuple[int, Threshold, int] | None:
        """``(instant, kind, level)`` of the next threshold to cross, or ``None``."""
        crossed = self.crossed
        marks = marks_of(self.spec)
        if crossed >= len(marks):
            return None
        mark, kind, level = marks[crossed]
        if self._next_index == crossed:
            instant = self._next_at
        else:
            instant = self.instant_of(mark)
            self._next_index, self._next_at = crossed, instant
        return None if instant is None else (instant, kind, level)

    def upcoming(self, until_ms: int) -> list[tuple[int, Threshold, int]]:
        """The thresholds not yet crossed whose instant is at or before ``until_ms``, in order (nothing changes)."""
        first = self.next_threshold()
        if first is None or first[0] > until_ms:
            return []
        found = [first]
        marks = marks_of(self.spec)
        for mark, kind, level in marks[self.crossed + 1 :]:
            instant = self.instant_of(mark)
            if instant is None or instant > until_ms:
                break
            found.append((instant, kind, level))
        return found

    def first_after(self, after_ms: int) -> int | None:
        """The instant of the first threshold not yet crossed that comes after ``after_ms`` (nothing changes)."""
        first = self.next_threshold()
        if first is None or first[0] > after_ms:
            return None if first is None else first[0]
        for mark, _, _ in marks_of(self.spec)[self.crossed + 1 :]:
            instant = self.instant_of(mark)
            if instant is None:
                return None
            if instant > after_ms:
                return instant
        return None

    def cross_until(self, before_ms: int) -> Iterator[tuple[int, Threshold, int]]:
        """Cross every threshold whose instant is before ``before_ms``; yield each ``(instant, kind, level)``."""
        while (due := self.next_threshold()) is not None and due[0] < before_ms:
            self.crossed += 1
            self.fired |= _bit(due[1], due[2])
            if due[1] is Threshold.BREACH:
                self.deadline_at_ms = due[0]
            yield due

    # -- transitions (at an event's instant, after cross_until(at_ms)) -------------------------

    def pause(self, at_ms: int, reason: str) -> bool:
        """Stop counting at ``at_ms``; record the pause with its reason. False if not running."""
        if self.run_start_ms is None or self.ended_at_ms is not None:
            return False
        self.used_ms = self.business_elapsed(at_ms)
        self.run_start_ms = None
        self.pauses = (*self.pauses, (at_ms, None, reason))
        self._next_index = -1
        return True

    def resume(self, at_ms: int) -> bool:
        """Count again from ``at_ms``; close the open pause. False if not paused."""
        if not self.is_paused:
            return False
        start, _, reason = self.pauses[-1]
        self.pauses = (*self.pauses[:-1], (start, at_ms, reason))
        self.run_start_ms = at_ms
        self._next_index = -1
        return True

    def end(self, at_ms: int, *, cancelled: bool) -> bool:
        """Meet (``cancelled=False``) or cancel the KPI at ``at_ms``. False if already ended."""
        if self.ended_at_ms is not None:
            return False
        if self.run_start_ms is None and self.pauses and self.pauses[-1][1] is None:
            start, _, pause_reason = self.pauses[-1]
            self.pauses = (*self.pauses[:-1], (start, at_ms, pause_reason))
        self.used_ms = self.business_elapsed(at_ms)
        self.run_start_ms = None
        self.ended_at_ms = at_ms
        self.cancelled = cancelled
        self._next_index = -1
        return True

    def reopen(self, at_ms: int) -> bool:
        """Continue an ended (met) KPI from the business time it had used. False if open or cancelled."""
        if self.ended_at_ms is None or self.cancelled:
            return False
        self.ended_at_ms = None
        self.reopens += 1
        self.run_start_ms = at_ms
        self._next_index = -1
        return True

    def retarget(self, at_ms: int, spec: KpiSpec) -> bool:
        """Apply another spec from ``at_ms`` on, keeping the business time used and the pause ledger.

        A threshold of the new spec counts as crossed if the same threshold (kind
        and level) was crossed under the old one, and so does every threshold
        before it (a warning added to a KPI already breached never fires); the
        others come due when the new spec says, at once if the used time is past
        them. False if nothing changes.
        """
        if spec == self.spec:
            return False
        if self.run_start_ms is not None:
            self.used_ms = self.business_elapsed(at_ms)
            self.run_start_ms = at_ms
        for _, kind, level in marks_of(self.spec)[: self.crossed]:
            self.fired |= _bit(kind, level)
        self.spec = spec
        crossed = 0
        for index, (_, kind, level) in enumerate(marks_of(self.spec)):
            if self.fired & _bit(kind, level):
                crossed = index + 1
        self.crossed = crossed
        self.retargets += 1
        self._next_index = -1
        return True


def _bit(kind: Threshold, level: int) -> int:
    """The bit of a threshold in ``KpiClock.fired``: warning 1, breach 2, escalation level L ``1 << (L + 1)``."""
    if kind is Threshold.WARNING:
        return 1
    if kind is Threshold.BREACH:
        return 2
    return 1 << (level + 1)


_MARKS: dict[int, tuple[KpiSpec, tuple[tuple[int, Threshold, int], ...]]] = {}


def marks_of(spec: KpiSpec) -> tuple[tuple[int, Threshold, int], ...]:
    """The thresholds of ``spec`` as ``(business ms, kind, escalation level)``, in order (computed once per spec)."""
    cached = _MARKS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    marks: list[tuple[int, Threshold, int]] = []
    if spec.warning_ms is not None and spec.warning_ms < spec.target_ms:
        marks.append((spec.warning_ms, Threshold.WARNING, 0))
    marks.append((spec.target_ms, Threshold.BREACH, 0))
    marks.extend((spec.target_ms + e.after_ms, Threshold.ESCALATION, e.level) for e in spec.escalations)
    result = tuple(marks)
    _MARKS[id(spec)] = (spec, result)
    return result
