"""The bottleneck report: where SLA breaches cluster, read from the ClickHouse tables and views.

:func:`build_report` runs a handful of queries against a clickhouse-connect client and returns a
:class:`Report`; :func:`render_text` prints it for a terminal, :func:`render_html` makes one self-contained
HTML file (inline CSS and SVG charts from :mod:`sinks.charts`; no script, no external resource).
:func:`write_report` builds the report and writes its HTML file, for ``slaflow report`` and the demo.

Every query reads the derived views (``kpi_instances``, ``status_segments``, ``telephony_calls``) or a table
``FINAL``, so a replayed topic never counts twice.

**Which KPIs count.** A KPI instance is *decided* once its outcome against the target is known: it was met,
or its deadline passed (breached), whether it then ended, was cancelled late, or is still open. Breach rates
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
of the instance ids' hashes). Limits, said plainly: dimensions still overlap (tier ``Premium`` and KPI
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
database (:attr:`Report.as_of`), so a report of last month's replay reads the same today as then. Durations
are hours (wall clock) unless named business hours; call times are seconds (answer) and minutes (handle).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path
from typing import Any, Final

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks import charts
from sinks.clickhouse import DATABASE_NAME, SinkError

SERVICE_LEVEL_THRESHOLD_S: Final = 20
"""A call counts toward the service level when answered within this many seconds of being offered."""
SERVICE_LEVEL_TARGET: Final = 0.8
"""The common 80/20 target, drawn on the service-level chart for reference (not a setting of any queue)."""
DIMENSIONS: Final = ("queue", "owner", "tier", "priority", "kpi", "category", "status", "reopened", "emails")
"""The dimensions whose values compete as bottlenecks (see the module docstring)."""

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
    top: int = 5

    @property
    def headline(self) -> str:
        """One line: KPIs ended and share met, open breaches, the worst bottleneck."""
        t = self.totals
        if not t.ended:
            running = t.open_breached + t.open_running
            if not running:
                return "No KPI has ended yet: the database holds no KPI."
            return f"No KPI has ended yet: {_n(running)} open, {_n(t.open_breached)} of them past their deadline."
        parts = [f"{_n(t.ended)} KPIs ended, {_pct(t.met_share)} met"]
        if t.open_breached:
            parts.append(f"{_n(t.open_breached)} open past their deadline")
        if self.bottlenecks:
            b = self.bottlenecks[0]
            parts.append(
                f"worst bottleneck: {b.full_label} ({_n(b.breaches)} breaches of {_n(b.kpis)} KPIs, "
                f"{_pct(b.breach_rate)} vs {_pct(b.overall_rate)} overall: {_excess(b.excess_breaches)} beyond the "
                "average)"
            )
        else:
            parts.append("no bottleneck: no group breaches more often than the average")
        return "; ".join(parts)


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
               sum(p.overdue_hours), groupBitXor(cityHash64(p.instance_id))
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
    "hour": ("toStartOfHour(started_at)", timedelta(hours=1)),
    "day": ("toStartOfDay(started_at)", timedelta(days=1)),
    "week": ("toDateTime(toMonday(started_at), 'UTC')", timedelta(weeks=1)),
}


def _trend(client: Client, db: str, as_of_ms: int, first_ms: int, last_ms: int) -> Trend:
    span = timedelta(milliseconds=last_ms - first_ms)
    bucket = "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=60) else "week"
    expression, step = _BUCKETS[bucket]
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
    starts = tuple(first + step * n for n in range(int((last - first) / step) + 1))
    index = {start: n for n, start in enumerate(starts)}
    counts: dict[str, list[list[int]]] = {}
    for start_s, tier, met, decided in rows:
        n = index[datetime.fromtimestamp(_int(start_s), UTC)]
        for name in ("all", str(tier) or "(none)"):
            series = counts.setdefault(name, [[0, 0] for _ in starts])
            series[n][0] += _int(met)
            series[n][1] += _int(decided)
    shares = {name: tuple(m / d if d else None for m, d in series) for name, series in counts.items()}
    return Trend(bucket, starts, shares)


def build_report(client: Client, database: str, top: int = 5) -> Report:
    """Run the report's queries on ``database`` (migrated by :func:`sinks.clickhouse.migrate`).

    ``top`` bottlenecks are ranked (see the module docstring); the status and agent sections show twice as
    many rows (at least 10). An empty database gives a report that says so. Raises :class:`SinkError` when a
    query fails (ClickHouse unreachable, or a database that was never migrated).
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
        trend=_trend(client, database, now_ms, first_ms, last_ms),
        top=top,
    )


def write_report(client: Client, database: str, html_path: Path | str, top: int = 5) -> Report:
    """Build the report of ``database`` and write its HTML to ``html_path`` (parent folders made); return it."""
    report = build_report(client, database, top)
    path = Path(html_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return report


# --- formatting ------------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f} %"


def _excess(value: float) -> str:
    return f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+.1f}"


def _h(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.1f}"


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` columns left-aligned (names), the others right-aligned (figures)."""
    widths = [max(len(h), *(len(r[n]) for r in rows)) if rows else len(h) for n, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                cell.ljust(w) if n < left else cell.rjust(w)
                for n, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return [line(headers), *(line(r) for r in rows)]


def _bottleneck_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["#", "where", "KPIs", "breaches", "rate", "expected", "excess", "mean h", "overdue h"]
    rows = [
        [
            str(n),
            b.full_label,
            _n(b.kpis),
            _n(b.breaches),
            _pct(b.breach_rate),
            _n(b.expected_breaches),
            _excess(b.excess_breaches),
            _h(b.mean_hours),
            _h(b.overdue_hours),
        ]
        for n, b in enumerate(report.bottlenecks, 1)
    ]
    return headers, rows


def _group_rows(groups: Sequence[GroupRate]) -> tuple[list[str], list[list[str]]]:
    headers = ["", "decided", "breaches", "breach rate", "ended", "met of ended", "open late", "mean business h"]
    rows = [
        [
            g.name,
            _n(g.decided),
            _n(g.breaches),
            _pct(g.breach_rate),
            _n(g.ended),
            _pct(g.met_share),
            _n(g.open_breached),
            _h(g.mean_business_hours),
        ]
        for g in groups
    ]
    return headers, rows


def _status_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["status", "record", "hours", "stays", "mean h", "in it now"]
    rows = [
        [s.status, s.entity_type, _h(s.hours), _n(s.stays), _h(s.mean_hours), _n(s.open_now)] for s in report.statuses
    ]
    return headers, rows


def _call_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["queue", "offered", "answered", f"in {SERVICE_LEVEL_THRESHOLD_S} s", "ASA s", "abandoned", "AHT min"]
    rows = [
        [
            q.queue,
            _n(q.offered),
            _n(q.answered),
            _pct(q.service_level),
            _f1(q.asa_s),
            _pct(q.abandon_rate),
            _f1(q.aht_min),
        ]
        for q in report.calls
    ]
    return headers, rows


def _agent_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    headers = ["agent", "KPIs", "met", "breaches", "breach rate", "calls", "talk h", "e-mails sent"]
    rows = [
        [
            a.agent,
            _n(a.kpis),
            _n(a.met),
            _n(a.breaches),
            _pct(a.breach_rate),
            _n(a.calls),
            _h(a.handle_hours),
            _n(a.emails_sent),
        ]
        for a in report.agents
    ]
    return headers, rows


def _meta(report: Report) -> str:
    if report.as_of is None:
        return f"ClickHouse database {report.database}: no data yet"
    return f"ClickHouse database {report.database}, as of {report.as_of:%Y-%m-%d %H:%M} UTC (the stream's time)"


def _counts(report: Report) -> str:
    t = report.totals
    if not t.ended + t.open_breached + t.open_running:
        return "KPIs: none yet."
    return (
        f"KPIs: {_n(t.ended)} ended ({_n(t.met)} met, {_n(t.breached_ended)} breached, {_n(t.cancelled)} cancelled), "
        f"{_n(t.open_breached + t.open_running)} open ({_n(t.open_breached)} past their deadline); "
        f"breach rate {_pct(t.breach_rate)} of {_n(t.decided)} decided KPIs."
    )


def _bottleneck_intro(report: Report) -> str:
    return (
        f"excess = breaches - decided KPIs x overall breach rate ({_pct(report.totals.breach_rate)}): the breaches "
        "a group has beyond the average. Hours are wall clock: mean from start to end (to now while open); "
        "overdue = past the deadline, summed over the breaches."
    )


def render_text(report: Report) -> str:
    """The report for a terminal: the headline first, then the bottlenecks, then one short section each."""
    lines = [report.headline, "", _meta(report), "", _counts(report)]
    t = report.totals
    lines += ["", f"The {report.top} worst bottlenecks (most breaches beyond the average)"]
    if report.bottlenecks:
        lines += _table(*_bottleneck_rows(report), left=2)
        lines.append(f"  {_bottleneck_intro(report)}")
    elif not t.decided:
        lines.append("  none yet: no KPI has been met or breached.")
    else:
        lines.append("  none: no group breaches more often than the average.")
    sections: list[tuple[str, tuple[list[str], list[list[str]]], int, str]] = [
        ("Breach rate per tier", _group_rows(report.tiers), 1, "no KPI yet."),
        ("Breach rate per queue", _group_rows(report.queues), 1, "no KPI yet."),
        ("Where records wait (finished stays per status)", _status_rows(report), 2, "no record event yet."),
        (
            f"Telephony service level per queue (answered within {SERVICE_LEVEL_THRESHOLD_S} s of offered calls)",
            _call_rows(report),
            1,
            "no inbound call yet.",
        ),
        ("Agent workload (decided KPIs owned, calls answered, e-mails sent)", _agent_rows(report), 1, "no agent yet."),
    ]
    for title, (headers, rows), left, empty in sections:
        lines += ["", title]
        lines += _table(headers, rows, left) if rows else [f"  {empty}"]
    return "\n".join(lines) + "\n"


_CSS: Final = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1b1b1b; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #666; margin: 0 0 12px; }
.headline { font-size: 18px; font-weight: 600; background: #f3f6fc; border-left: 4px solid #3366cc;
            padding: 10px 14px; }
.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #fafafa; }
td.name, th.name { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 20px 32px; }
svg.chart { max-width: 100%; height: auto; }
"""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    def cls(n: int) -> str:
        return ' class="name"' if n < left else ""

    head = "".join(f"<th{cls(n)}>{escape(h)}</th>" for n, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(n)}>{escape(cell)}</td>" for n, cell in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _charts(report: Report) -> list[str]:
    rate = report.totals.breach_rate
    queues = [(g.name, g.breach_rate) for g in report.queues]
    calls = [(q.queue, q.service_level) for q in report.calls if q.queue != "all"]
    tiers = [(g.name, [g.met, g.breached_ended, g.cancelled, g.open_breached, g.open_running]) for g in report.tiers]
    labels = [f"{s:%d %b %H:00}" if report.trend.bucket == "hour" else f"{s:%d %b %Y}" for s in report.trend.starts]
    # Records without a tier (calls, orders, ...) are in "all"; their own line is noise next to the tiers'.
    trend = {name: shares for name, shares in report.trend.shares.items() if name != "(none)"}

    return [
        charts.bar_chart(
            [(b.full_label, b.excess_breaches) for b in report.bottlenecks],
            title="Bottlenecks: breaches beyond the average",
            value_format=_excess,
            color=charts.PALETTE[1],
        ),
        charts.bar_chart(
            [(name, share) for name, share in queues if share is not None],
            title="Breach rate per queue (decided KPIs)",
            value_format=_pct,
            reference=rate,
            reference_label=f"overall {_pct(rate)}",
        ),
        charts.stacked_bar_chart(
            tiers,
            ["met", "breached", "cancelled", "open, past deadline", "open"],
            title="KPI outcomes per tier",
            value_format=_n,
            colors=("#2e9e48", "#d62728", "#9e9e9e", "#ff7f0e", "#8fb8e8"),
        ),
        charts.line_chart(
            labels,
            trend,
            title=f"Share of decided KPIs met, by {report.trend.bucket} of start",
            value_format=lambda v: f"{100 * v:.0f} %",
            y_max=1.0,
        ),
        charts.bar_chart(
            [(f"{s.status} ({s.entity_type})", s.hours) for s in report.statuses],
            title="Where records wait: hours per status (finished stays)",
            value_format=_h,
            color=charts.PALETTE[3],
        ),
        charts.bar_chart(
            [(name, share) for name, share in calls if share is not None],
            title=f"Calls answered within {SERVICE_LEVEL_THRESHOLD_S} s (service level) per queue",
            value_format=_pct,
            max_value=1.0,
            reference=SERVICE_LEVEL_TARGET,
            reference_label=f"{_pct(SERVICE_LEVEL_TARGET)} target",
            color=charts.PALETTE[5],
        ),
    ]


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""
    t = report.totals
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>slaflow report: {escape(report.database)}</title><style>{_CSS}</style></head><body>",
        "<h1>slaflow SLA report</h1>",
        f'<p class="meta">{escape(_meta(report))}</p>',
        f'<p class="headline">{escape(report.headline)}</p>',
        f"<p>{escape(_counts(report))}</p>",
        f"<h2>The {report.top} worst bottlenecks</h2>",
    ]
    if report.bottlenecks:
        parts += [
            _html_table(*_bottleneck_rows(report), left=2),
            f'<p class="note">{escape(_bottleneck_intro(report))}</p>',
        ]
    else:
        parts.append("<p>None: no KPI has been met or breached yet.</p>" if not t.decided else "<p>None.</p>")
    parts.append('<div class="charts">' + "".join(f"<div>{svg}</div>" for svg in _charts(report)) + "</div>")
    sections = [
        ("Breach rate per tier", _group_rows(report.tiers), 1),
        ("Breach rate per queue", _group_rows(report.queues), 1),
        ("Where records wait (finished stays per status)", _status_rows(report), 2),
        (f"Telephony service level per queue (answered within {SERVICE_LEVEL_THRESHOLD_S} s)", _call_rows(report), 1),
        ("Agent workload", _agent_rows(report), 1),
    ]
    for title, (headers, rows), left in sections:
        parts.append(f"<h2>{escape(title)}</h2>")
        parts.append(_html_table(headers, rows, left) if rows else "<p>No data yet.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
