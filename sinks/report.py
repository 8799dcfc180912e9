"""The bottleneck report: where SLA breaches cluster, read from the ClickHouse tables and views.

:func:`build_report` runs a handful of queries against a clickhouse-connect client and returns a
:class:`Report`; :mod:`sinks.report_pages` prints it for a terminal and makes one self-contained HTML file
(inline CSS and SVG charts from :mod:`sinks.charts`; no script, no external resource).

Every query reads the derived views (``kpi_instances``, ``status_segments``, ``telephony_calls``) or a table
``FINAL``, so a replayed topic never counts twice.

**Which KPIs count.** A KPI instance is *decided* (the pages say: its outcome is known) once its outcome
against the target is known: it was met, or its deadline passed (breached), whether it then ended, was
cancelled late, or is still open. Breach rates
are ``breaches / decided KPIs``. KPIs still running before their deadline (nothing known yet) and KPIs
cancelled before their deadline (the promise was withdrawn, as in the coffee-machine story) are left out.
Open breached KPIs are kept on purpose: leaving them out would reward the queues that leave failed cases
open. The headline also gives the share met of the KPIs that *ended* (met, breached or cancelled).

**Bottleneck.** A candidate is a ``(dimension, value)`` pair: a ``queue``; an ``owner`` (the agent, or
``unassigned``); a ``tier``; a ``priority``; a ``kpi`` (``policy/kpi``); a ``category`` (new-product
questions, ...); the ``status`` the record was in when the KPI was decided (at its deadline for a breach,
just before the event that met it otherwise: the stage where the clock ran out); ``reopened`` (a first
resolution that did not work); ``emails`` (cases by number of e-mails exchanged: back and forth). Its score
is its **excess breaches**::

    excess = breaches - decided KPIs * overall breach rate

the breaches the group has beyond what the overall rate predicts for its number of KPIs: the breaches that
would not have happened had it performed at the average. It weighs rate and volume together (a queue with
twice the average rate but 10 KPIs scores below a big queue somewhat above the average, because fixing the
big one saves more breaches), has a unit people understand (breaches), and compares across dimensions. The
worst ``top`` candidates with a positive score are the bottlenecks, each with its KPIs, breaches, breach rate
against the overall one, mean hours from start to decision (wall clock; up to the report's time for open
KPIs) and hours overdue (wall time past the deadline summed over its breaches, up to the end or to now).

Candidates made of exactly the same KPIs (``owner 'unassigned'`` and ``status 'new' (case)`` when nobody
picks new cases up) are one bottleneck with both names (:attr:`Bottleneck.same_as`; same count and same XOR
of the instance ids' hashes). A ``status`` whose KPIs are all instances of one KPI is no candidate: it only
names the stage that KPI's clock runs in by definition (a call's answer KPI is decided while the call is
``queued``), a tautology, not a finding. Limits, said plainly: dimensions still overlap (tier ``Premium`` and KPI
``premium/first_response`` may both rank for many of the same breaches); e-mails are counted over the case's
whole life, so "0-1 e-mails" also means "nobody wrote back"; and the baseline is the overall rate, not one
adjusted for each group's mix of KPIs: a queue that only takes hard KPIs ranks high (the per-tier and
per-queue sections show the mix).

**Attribution.** A KPI belongs to the queue, owner, tier, priority and category it had when it was decided.
For a KPI that ended, that is what the SLA core recorded at its end (``kpi_instances``; the agent who met
it gets the credit). For a KPI still open, ``kpi_instances`` only knows its last transition, usually its
start, before anyone was assigned; so an open KPI takes the record's state from ``status_segments`` at its
deadline when it breached, and now when it is still running (the view's columns when the record has no
event). The ``status`` of every KPI is the record's status strictly before that instant; its policy is the
view's (the latest, for a KPI retargeted to another policy by a priority change).

**Time.** "Now" is the stream's time, not the wall clock: the latest event, transition, alert or end in the
database (:attr:`Report.as_of`), so a report of last month's replay reads the same today as then. Instants
are shown in the report's time zone (:attr:`Report.zone`; the trend's hours and days are that zone's too).
Durations are hours (wall clock) unless named business hours; call times are seconds (answer) and minutes
(handle).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.clickhouse import DATABASE_NAME, SinkError
from streams.display import format_count as _n
from streams.display import format_share as _pct

SERVICE_LEVEL_THRESHOLD_S: Final = 20
"""A call counts toward the service level when answered within this many seconds of being offered."""
SERVICE_LEVEL_TARGET: Final = 0.8
"""The common 80/20 target, drawn on the service-level chart for reference (not a setting of any queue)."""
DIMENSIONS: Final = ("queue", "owner", "tier", "priority", "kpi", "category", "status", "reopened", "emails")
"""The dimensions whose values compete as bottlenecks (see the module docstring)."""

OPEN_LATE_SHOWN: Final = 20
"""Records open past their deadline listed by name (the longest overdue first); the others are counted."""

_MS_PER_HOUR: Final = 3_600_000


@dataclass(frozen=True)
class Totals:
    """KPI instances of the whole database by outcome; ``decided`` = met + breached (see module doc)."""

    ended: int = 0
    met: int = 0
    breached_ended: int = 0
    cancelled: int = 0
    open_breached: int = 0
    open_running: int = 0
    decided: int = 0
    breaches: int = 0

    @property
    def met_share(self) -> float | None:
        """Share of the ended KPIs (met, breached or cancelled) that were met; None before any ended."""
        return self.met / self.ended if self.ended else None

    @property
    def breach_rate(self) -> float | None:
        """Breaches per decided KPI; None before any KPI is decided."""
        return self.breaches / self.decided if self.decided else None


@dataclass(frozen=True)
class Bottleneck:
    """One ``(dimension, value)`` group and its figures; ranked by :attr:`excess_breaches`."""

    dimension: str
    value: str
    kpis: int
    """Decided KPIs of the group."""
    breaches: int
    overall_rate: float
    """The whole database's breach rate, the baseline."""
    mean_hours: float
    """Mean wall hours from a KPI's start to its end (to the report's time while open)."""
    overdue_hours: float
    """Wall hours past the deadline, summed over the group's breaches."""
    same_as: tuple[str, ...] = ()
    """Labels of other candidates made of exactly the same KPIs (merged into this one)."""

    @property
    def breach_rate(self) -> float:
        """Breaches per decided KPI of the group."""
        return self.breaches / self.kpis if self.kpis else 0.0

    @property
    def expected_breaches(self) -> float:
        """Breaches the overall rate predicts for this many KPIs."""
        return self.kpis * self.overall_rate

    @property
    def excess_breaches(self) -> float:
        """The score: breaches beyond the expected ones."""
        return self.breaches - self.expected_breaches

    @property
    def label(self) -> str:
        """How people name the group: ``queue 'delivery'``, ``status 'new' (case)``, ``reopened KPIs``."""
        return describe(self.dimension, self.value)

    @property
    def full_label(self) -> str:
        """:attr:`label` and the other names of the same KPIs: ``owner 'unassigned' = status 'new' (case)``."""
        return " = ".join((self.label, *self.same_as))


@dataclass(frozen=True)
class GroupRate(Totals):
    """KPI outcomes of one tier or queue: its :class:`Totals`, its name and its mean business hours."""

    name: str = ""
    mean_business_hours: float | None = None
    """Mean business hours used by the group's met and breached ended KPIs (what targets are measured in)."""


@dataclass(frozen=True)
class StatusTime:
    """Time records spent in one status: finished stays, and how many records are in it now."""

    entity_type: str
    status: str
    hours: float
    """Wall hours summed over the finished stays."""
    stays: int
    open_now: int

    @property
    def mean_hours(self) -> float | None:
        """Mean wall hours of a finished stay; None without any."""
        return self.hours / self.stays if self.stays else None


@dataclass(frozen=True)
class QueueCalls:
    """Telephony service of one queue (inbound calls); ``queue`` is ``all`` for the total row."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    answered_in_threshold: int
    wait_ms_answered: int
    """Wait summed over the answered calls, ms (for the average speed of answer)."""
    handled: int
    """Answered calls whose handle time is known."""
    handle_ms: int

    @property
    def service_level(self) -> float | None:
        """Share of offered calls answered within :data:`SERVICE_LEVEL_THRESHOLD_S`; None without calls."""
        return self.answered_in_threshold / self.offered if self.offered else None

    @property
    def asa_s(self) -> float | None:
        """Average speed of answer, seconds; None without answered calls."""
        return self.wait_ms_answered / self.answered / 1000 if self.answered else None

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned per offered call; None without calls."""
        return self.abandoned / self.offered if self.offered else None

    @property
    def aht_min(self) -> float | None:
        """Average handle time (talk and wrap-up), minutes; None when no handle time is known."""
        return self.handle_ms / self.handled / 60_000 if self.handled else None


@dataclass(frozen=True)
class AgentLoad:
    """What one agent did: decided KPIs owned (met, breached), calls answered, e-mails sent."""

    agent: str
    kpis: int
    met: int
    breaches: int
    calls: int
    handle_hours: float
    emails_sent: int

    @property
    def breach_rate(self) -> float | None:
        """Breaches per decided KPI owned; None without any."""
        return self.breaches / self.kpis if self.kpis else None


@dataclass(frozen=True)
class Trend:
    """Share of decided KPIs met, per time bucket of their start, overall and per tier."""

    bucket: str
    """``hour``, ``day`` or ``week``: chosen from the span of the data."""
    starts: tuple[datetime, ...] = ()
    shares: dict[str, tuple[float | None, ...]] = field(default_factory=dict)
    """Series name (``all`` or a tier) -> met share per bucket, None for a bucket without decided KPIs."""


@dataclass(frozen=True)
class OpenLate:
    """One KPI still open past its deadline: who waits, where, since when."""

    record_id: str
    entity_type: str
    kpi: str
    """``policy/kpi``."""
    queue: str
    owner: str
    tier: str
    deadline: datetime
    overdue_hours: float
    """Wall hours from the deadline to the report's time."""


@dataclass(frozen=True)
class Report:
    """Everything the text and HTML reports show; built by :func:`build_report`."""

    database: str
    as_of: datetime | None
    """The stream's time (see module doc); None for a database without any data."""
    totals: Totals
    bottlenecks: tuple[Bottleneck, ...]
    tiers: tuple[GroupRate, ...]
    queues: tuple[GroupRate, ...]
    statuses: tuple[StatusTime, ...]
    calls: tuple[QueueCalls, ...]
    """One row per queue, then the ``all`` row (absent without calls)."""
    agents: tuple[AgentLoad, ...]
    trend: Trend
    open_late: tuple[OpenLate, ...] = ()
    """The KPIs open past their deadline, the longest overdue first, at most :data:`OPEN_LATE_SHOWN`
    (``totals.open_breached`` counts them all)."""
    top: int = 5
    zone: tzinfo = UTC
    """The time zone instants are shown in."""

    @property
    def headline(self) -> str:
        """One line: KPIs ended and share met, open breaches, the worst bottleneck."""
        t = self.totals
        if not t.ended:
            running = t.open_breached + t.open_running
            if not running:
                return "No KPI has ended yet: the database holds no KPI."
            return f"No KPI has ended yet: {_n(running)} open, {_n(t.open_breached)} of them past their deadline."
        parts = [
            f"{_n(t.ended)} KPIs ended ({_n(t.met)} met, {_n(t.breached_ended)} breached, {_n(t.cancelled)} cancelled)"
        ]
        if t.open_breached:
            parts.append(f"{_n(t.open_breached)} open past their deadline")
        if self.bottlenecks:
            b = self.bottlenecks[0]
            parts.append(
                f"worst bottleneck: {b.full_label} ({_n(b.breaches)} of its {_n(b.kpis)} KPIs breached, "
                f"{_pct(b.breach_rate)} against {_pct(b.overall_rate)} overall: {_more(b.excess_breaches)} than the "
                "overall rate gives)"
            )
        else:
            parts.append("no bottleneck: no group breaches more often than the average")
        return "; ".join(parts)


def _more(breaches: float) -> str:
    """``7 breaches more`` (to the nearest one; ``0.8 breaches more`` below ten)."""
    figure = f"{breaches:,.0f}" if abs(breaches) >= 10 else f"{breaches:.1f}".rstrip("0").rstrip(".")
    return f"{figure} breach{'' if figure == '1' else 'es'} more"


def describe(dimension: str, value: str) -> str:
    """A candidate as people name it (see :data:`DIMENSIONS`)."""
    if dimension == "status":
        entity, _, status = value.partition("/")
        return f"status '{status}' ({entity})"
    if dimension == "reopened":
        return "reopened KPIs" if value == "reopened" else "KPIs never reopened"
    if dimension == "emails":
        return f"cases with {value} e-mails"
    if dimension == "kpi":
        return f"KPI '{value}'"
    return f"{dimension} '{value}'"


# --- queries ---------------------------------------------------------------------------------------------------

_DECIDED: Final = "(breached OR outcome = 'met')"


def _rows(client: Client, sql: str) -> list[Sequence[Any]]:
    try:
        return list(client.query(sql).result_rows)
    except (ClickHouseError, OSError, RuntimeError) as exc:
        raise SinkError(f"report query failed: {exc}") from exc


def _int(value: Any) -> int:
    return int(value or 0)


def _float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _as_of_ms(client: Client, db: str) -> int | None:
    sql = f"""
        SELECT greatest(
            (SELECT toUnixTimestamp64Milli(max(occurred_at)) FROM {db}.record_events),
            (SELECT toUnixTimestamp64Milli(max(occurred_at)) FROM {db}.call_events),
            (SELECT toUnixTimestamp64Milli(max(fired_at)) FROM {db}.sla_alerts),
            (SELECT toUnixTimestamp64Milli(max(at)) FROM {db}.kpi_transitions),
            (SELECT toUnixTimestamp64Milli(max(ended_at)) FROM {db}.kpi_durations))
    """
    ms = _int(_rows(client, sql)[0][0])
    return ms if ms > 0 else None


def _attributed(db: str, as_of_ms: int) -> str:
    """A ``WITH`` list: ``as_of`` and ``attributed``, every KPI instance of ``kpi_instances`` with its
    decision instant ``at`` (deadline of a breach, end, or now) and its dimensions at that instant (see the
    module docstring), plus ``hours`` (start to end, or to now) and ``overdue_hours`` (past the deadline)."""
    state = ("queue", "owner", "tier", "priority", "category")
    columns = ", ".join(f"toString(if(k.outcome = 'open' AND s.{c} != '', s.{c}, k.{c})) AS {c}" for c in state)
    last_state = ", ".join(f"argMax({c}, ifNull(duration_ms, 9223372036854775807)) AS {c}" for c in ("status", *state))
    return f"""
        fromUnixTimestamp64Milli(toInt64({int(as_of_ms)}), 'UTC') AS as_of,
        attributed AS
        (
            SELECT
                k.instance_id AS instance_id, k.entity_type AS entity_type, k.record_id AS record_id,
                toString(k.policy) AS policy, k.kpi AS kpi, k.outcome AS outcome, k.breached AS breached,
                k.started_at AS started_at, k.business_ms AS business_ms, k.reopened AS reopened,
                {columns},
                if(s.status = '', '', concat(toString(s.entity_type), '/', toString(s.status))) AS status,
                coalesce(k.wall_ms, dateDiff('millisecond', k.started_at, as_of)) / {_MS_PER_HOUR} AS hours,
                if(k.breached, greatest(ifNull(dateDiff('millisecond', k.deadline, coalesce(k.ended_at, as_of)), 0), 0),
                   0) / {_MS_PER_HOUR} AS overdue_hours
            FROM
            (
                SELECT *, assumeNotNull(multiIf(breached AND deadline IS NOT NULL, deadline,
                                                ended_at IS NOT NULL, ended_at, as_of)) AS at
                FROM {db}.kpi_instances
            ) AS k
            ASOF LEFT JOIN
            (
                -- One state per instant: of segments starting at the same instant (events of the same
                -- millisecond) the last one, the only one that does not end where it starts.
                SELECT entity_type, record_id, started_at, {last_state}
                FROM {db}.status_segments
                GROUP BY entity_type, record_id, started_at
            ) AS s
            ON k.entity_type = s.entity_type AND k.record_id = s.record_id AND k.at > s.started_at
        )
    """


_OUTCOMES: Final = f"""
    countIf(outcome != 'open'), countIf(outcome = 'met'), countIf(outcome = 'breached'),
    countIf(outcome = 'cancelled'), countIf(outcome = 'open' AND breached), countIf(outcome = 'open' AND NOT breached),
    countIf({_DECIDED}), countIf(breached)
"""


def _totals(client: Client, db: str) -> tuple[Totals, int, int]:
    """The totals, and the first and last KPI start (epoch ms; 0 without KPIs)."""
    row = _rows(
        client,
        f"SELECT {_OUTCOMES}, toUnixTimestamp64Milli(min(started_at)), toUnixTimestamp64Milli(max(started_at)) "
        f"FROM {db}.kpi_instances",
    )[0]
    return Totals(*(_int(v) for v in row[:8])), _int(row[8]), _int(row[9])


def _groups(client: Client, db: str, as_of_ms: int, column: str) -> tuple[GroupRate, ...]:
    sql = f"""
        WITH {_attributed(db, as_of_ms)}
        SELECT {column}, {_OUTCOMES},
               avgIf(business_ms, outcome IN ('met', 'breached')) / {_MS_PER_HOUR}
        FROM attributed
        GROUP BY {column}
        ORDER BY countIf({_DECIDED}) DESC, {column}
    """
    return tuple(
        GroupRate(
            **vars(Totals(*(_int(v) for v in row[1:9]))),
            name=str(row[0]) or "(none)",
            mean_business_hours=_float(row[9]),
        )
        for row in _rows(client, sql)
    )


def _bottlenecks(client: Client, db: str, as_of_ms: int, totals: Totals, top: int) -> tuple[Bottleneck, ...]:
    if totals.breach_rate is None:
        return ()
    sql = f"""
        WITH
            {_attributed(db, as_of_ms)},
            emails AS
            (
                SELECT regarding_id, count() AS n
                FROM {db}.activities FINAL
                WHERE activity_type = 'email' AND regarding_type = 'case'
                GROUP BY regarding_id
            )
        SELECT pair.1 AS dimension, pair.2 AS value, count(), countIf(p.breached), avg(p.hours),
               sum(p.overdue_hours), groupBitXor(cityHash64(p.instance_id)),
               uniqExact(concat(toString(p.policy), '/', toString(p.kpi)))
        FROM attributed AS p
        LEFT JOIN emails AS e ON e.regarding_id = p.record_id
        ARRAY JOIN
        [
            ('queue', p.queue), ('owner', p.owner), ('tier', p.tier), ('priority', p.priority),
            ('kpi', concat(toString(p.policy), '/', toString(p.kpi))), ('category', p.category),
            ('status', p.status), ('reopened', if(p.reopened > 0, 'reopened', 'never')),
            ('emails', if(p.entity_type = 'case', multiIf(e.n <= 1, '0-1', e.n <= 3, '2-3', '4+'), ''))
        ] AS pair
        WHERE {_DECIDED} AND value != ''
        GROUP BY dimension, value
    """
    rate = totals.breach_rate
    order = {dimension: n for n, dimension in enumerate(DIMENSIONS)}
    groups: dict[tuple[int, int], list[Bottleneck]] = {}
    for row in _rows(client, sql):
        candidate = Bottleneck(
            str(row[0]), str(row[1]), _int(row[2]), _int(row[3]), rate, _float(row[4]) or 0.0, _float(row[5]) or 0.0
        )
        if candidate.dimension == "status" and _int(row[7]) == 1:
            continue  # the stage one KPI's clock runs in by definition: a tautology (see the module doc)
        if candidate.excess_breaches > 1e-9:
            # The same KPIs under two names (owner 'unassigned' and status 'new') are one bottleneck.
            groups.setdefault((candidate.kpis, _int(row[6])), []).append(candidate)
    merged = []
    for same in groups.values():
        same.sort(key=lambda c: (order.get(c.dimension, len(order)), c.value))
        merged.append(replace(same[0], same_as=tuple(c.label for c in same[1:])))
    merged.sort(key=lambda c: (-c.excess_breaches, -c.breaches, order.get(c.dimension, len(order)), c.value))
    return tuple(merged[:top])


def _statuses(client: Client, db: str, limit: int) -> tuple[StatusTime, ...]:
    sql = f"""
        SELECT entity_type, status, sumIf(duration_ms, ended_at IS NOT NULL) / {_MS_PER_HOUR},
               countIf(ended_at IS NOT NULL), countIf(ended_at IS NULL)
        FROM {db}.status_segments
        WHERE status != ''
        GROUP BY entity_type, status
        ORDER BY 3 DESC, 5 DESC, entity_type, status
        LIMIT {int(limit)}
    """
    return tuple(
        StatusTime(str(r[0]), str(r[1]), _float(r[2]) or 0.0, _int(r[3]), _int(r[4])) for r in _rows(client, sql)
    )


def _calls(client: Client, db: str) -> tuple[QueueCalls, ...]:
    sql = f"""
        SELECT queue, count(), countIf(answered), countIf(abandoned),
               countIf(answered AND wait_ms <= {SERVICE_LEVEL_THRESHOLD_S * 1000}),
               sumIf(ifNull(wait_ms, 0), answered), countIf(answered AND handle_ms IS NOT NULL),
               sumIf(ifNull(handle_ms, 0), answered AND handle_ms IS NOT NULL)
        FROM {db}.telephony_calls
        WHERE direction != 'outbound'
        GROUP BY queue
        ORDER BY count() DESC, queue
    """
    rows = [QueueCalls(str(r[0]) or "(none)", *(_int(v) for v in r[1:])) for r in _rows(client, sql)]
    if not rows:
        return ()
    fields_ = ("offered", "answered", "abandoned", "answered_in_threshold", "wait_ms_answered", "handled", "handle_ms")
    total = QueueCalls("all", *(sum(getattr(r, f) for r in rows) for f in fields_))
    return (*rows, total)


def _agents(client: Client, db: str, as_of_ms: int, limit: int) -> tuple[AgentLoad, ...]:
    sql = f"""
        WITH
            {_attributed(db, as_of_ms)},
            k AS
            (
                SELECT owner AS agent, countIf({_DECIDED}) AS kpis, countIf(outcome = 'met') AS met,
                       countIf(breached) AS breaches
                FROM attributed GROUP BY agent
            ),
            c AS
            (
                SELECT toString(agent) AS agent, countIf(answered) AS calls,
                       sumIf(ifNull(handle_ms, 0), answered) AS handle_ms
                FROM {db}.telephony_calls GROUP BY agent
            ),
            e AS
            (
                SELECT toString(owner) AS agent, countIf(direction = 'outbound') AS sent
                FROM {db}.activities FINAL WHERE activity_type = 'email' GROUP BY agent
            )
        SELECT agent, k.kpis, k.met, k.breaches, c.calls, c.handle_ms / {_MS_PER_HOUR}, e.sent
        FROM k FULL OUTER JOIN c USING (agent) FULL OUTER JOIN e USING (agent)
        WHERE agent NOT IN ('', 'unassigned')
        ORDER BY k.kpis + c.calls + e.sent DESC, agent
        LIMIT {int(limit)}
    """
    return tuple(
        AgentLoad(str(r[0]), _int(r[1]), _int(r[2]), _int(r[3]), _int(r[4]), _float(r[5]) or 0.0, _int(r[6]))
        for r in _rows(client, sql)
    )


_BUCKETS: Final = {
    "hour": ("toStartOfHour(started_at, '{zone}')", timedelta(hours=1)),
    "day": ("toStartOfDay(started_at, '{zone}')", timedelta(days=1)),
    "week": ("toDateTime(toMonday(started_at, '{zone}'), '{zone}')", timedelta(weeks=1)),
}
_ZONE_NAME: Final = re.compile(r"[A-Za-z0-9_+\-/]+")


def _zone_name(zone: tzinfo) -> str:
    """The IANA name of ``zone`` for ClickHouse's date functions (``UTC`` for a zone without one)."""
    name = str(getattr(zone, "key", "UTC"))
    return name if _ZONE_NAME.fullmatch(name) else "UTC"


def _trend(client: Client, db: str, as_of_ms: int, first_ms: int, last_ms: int, zone: tzinfo) -> Trend:
    span = timedelta(milliseconds=last_ms - first_ms)
    bucket = "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=60) else "week"
    expression, step = _BUCKETS[bucket]
    expression = expression.replace("{zone}", _zone_name(zone))
    sql = f"""
        WITH {_attributed(db, as_of_ms)}
        SELECT toUnixTimestamp({expression}) AS start, tier, countIf(outcome = 'met'), count()
        FROM attributed
        WHERE {_DECIDED}
        GROUP BY start, tier
        ORDER BY start
    """
    rows = _rows(client, sql)
    if not rows:
        return Trend(bucket)
    first = datetime.fromtimestamp(min(_int(r[0]) for r in rows), UTC)
    last = datetime.fromtimestamp(max(_int(r[0]) for r in rows), UTC)
    starts = tuple((first + step * n).astimezone(zone) for n in range(int((last - first) / step) + 1))
    index = {int(start.timestamp()): n for n, start in enumerate(starts)}
    counts: dict[str, list[list[int]]] = {}
    for start_s, tier, met, decided in rows:
        n = index[_int(start_s)]
        for name in ("all", str(tier) or "(none)"):
            series = counts.setdefault(name, [[0, 0] for _ in starts])
            series[n][0] += _int(met)
            series[n][1] += _int(decided)
    shares = {name: tuple(m / d if d else None for m, d in series) for name, series in counts.items()}
    return Trend(bucket, starts, shares)


def _open_late(client: Client, db: str, as_of_ms: int, limit: int) -> tuple[OpenLate, ...]:
    sql = f"""
        WITH {_attributed(db, as_of_ms)}
        SELECT a.record_id, a.entity_type, concat(a.policy, '/', a.kpi), a.queue, a.owner, a.tier,
               toUnixTimestamp64Milli(k.deadline), a.overdue_hours
        FROM attributed AS a
        INNER JOIN {db}.kpi_instances AS k ON k.instance_id = a.instance_id
        WHERE a.outcome = 'open' AND a.breached
        ORDER BY k.deadline, a.record_id, a.kpi
        LIMIT {int(limit)}
    """
    return tuple(
        OpenLate(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            str(r[5]),
            datetime.fromtimestamp(_int(r[6]) / 1000, UTC),
            _float(r[7]) or 0.0,
        )
        for r in _rows(client, sql)
    )


def build_report(client: Client, database: str, top: int = 5, *, zone: tzinfo = UTC) -> Report:
    """Run the report's queries on ``database`` (migrated by :func:`sinks.clickhouse.migrate`).

    ``top`` bottlenecks are ranked (see the module docstring); the status and agent sections show twice as
    many rows (at least 10); instants are in ``zone``. An empty database gives a report that says so. Raises
    :class:`SinkError` when a query fails (ClickHouse unreachable, or a database that was never migrated).
    """
    if not DATABASE_NAME.match(database):
        raise ValueError(f"ClickHouse database {database!r}: expected letters, digits and _, not a digit first")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    rows = max(2 * top, 10)
    as_of_ms = _as_of_ms(client, database)
    now_ms = as_of_ms or 0
    totals, first_ms, last_ms = _totals(client, database)
    return Report(
        database=database,
        as_of=datetime.fromtimestamp(as_of_ms / 1000, UTC) if as_of_ms else None,
        totals=totals,
        bottlenecks=_bottlenecks(client, database, now_ms, totals, top),
        tiers=_groups(client, database, now_ms, "tier"),
        queues=_groups(client, database, now_ms, "queue"),
        statuses=_statuses(client, database, rows),
        calls=_calls(client, database),
        agents=_agents(client, database, now_ms, rows),
        trend=_trend(client, database, now_ms, first_ms, last_ms, zone),
        open_late=_open_late(client, database, now_ms, OPEN_LATE_SHOWN) if totals.open_breached else (),
        top=top,
        zone=zone,
    )
