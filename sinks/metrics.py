"""Prometheus metrics of a worker (:class:`SlaMetrics`) and of the ClickHouse sink (:class:`SinkMetrics`).

The worker's are batched like a sink: cheap calls per event, one ``flush()`` per batch.

Calling prometheus_client once per event costs a lock and a label lookup each
time; a worker that handles thousands of events per batch instead bumps plain
dict counters (:meth:`SlaMetrics.event`, :meth:`~SlaMetrics.alert`, ...) and
calls :meth:`SlaMetrics.flush` once per batch, which applies them to the
metrics. Nothing recorded is visible in :meth:`SlaMetrics.exposition` before
that flush, gauges included.

Each :class:`SlaMetrics` owns its own ``CollectorRegistry`` (not the global
one), so several apps or tests in one process never collide. The recording
methods are for one thread (the worker's event loop); ``flush()`` and
``exposition()`` may race with a scraping thread, which prometheus_client's own
locks make safe. Metric names, labels and the shipped alert rules are in
``docs/metrics.md`` and ``deploy/prometheus/rules.yml``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import ClassVar, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""The ``Content-Type`` to serve :meth:`SlaMetrics.exposition` with: text format 0.0.4, which every Prometheus reads
(our names need none of format 1.0.0's UTF-8 escaping, so its output is the same)."""

PROCESSED: Final = "processed"
DEAD_LETTERED: Final = "dead_lettered"
OUTCOMES: Final = frozenset({PROCESSED, DEAD_LETTERED})

KPI_STATES: Final = ("running", "paused", "warned", "breached")
"""The states ``slaflow_open_kpis`` always reports (0 when absent from :meth:`SlaMetrics.set_open_kpis`)."""
_STATE_LABELS: Final = {"in_progress": "running", "warning": "warned"}
"""``streams.kpi.KpiState`` values whose label differs (the others, ``paused`` and ``breached``, are the same)."""

LATENESS_BUCKETS_S: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS: Final = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000)


def _build_info(registry: CollectorRegistry, version: str | None) -> None:
    """``slaflow_build_info{version}`` = 1 in ``registry``: which slaflow a scraped process runs."""
    if version is None:
        try:
            version = package_version("slaflow")
        except PackageNotFoundError:
            version = "unknown"
    info = Gauge("slaflow_build_info", "Always 1; the version label is slaflow's.", ("version",), registry=registry)
    info.labels(version).set(1)


class SlaMetrics:
    """The worker's Prometheus metrics, in a registry of their own.

    Record with :meth:`event`, :meth:`tick`, :meth:`alert`, :meth:`transition`,
    :meth:`batch` and the ``set_*`` methods; publish with :meth:`flush`; serve :meth:`exposition` as
    :data:`CONTENT_TYPE`.
    """

    CONTENT_TYPE: ClassVar[str] = CONTENT_TYPE
    """The ``Content-Type`` of :meth:`exposition` (the module's :data:`CONTENT_TYPE`)."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str | None = None) -> None:
        """Register every metric in ``registry`` (a fresh one when None); ``version`` labels ``slaflow_build_info``."""
        self.registry: Final = CollectorRegistry() if registry is None else registry
        r = self.registry
        self._events_total = Counter(
            "slaflow_events",
            "Input events handled, by outcome; reason is the dead-letter reason (empty when processed).",
            ("topic", "outcome", "reason"),
            registry=r,
        )
        self._ticks_total = Counter("slaflow_ticks", "Clock ticks processed (not events).", ("topic",), registry=r)
        self._alerts_total = Counter("slaflow_alerts", "SLA alerts emitted.", ("kind", "policy"), registry=r)
        self._transitions_total = Counter(
            "slaflow_kpi_transitions", "KPI clock transitions applied.", ("kind", "policy"), registry=r
        )
        self._open_kpis = Gauge(
            "slaflow_open_kpis", "Open KPI clocks held by this worker, by state.", ("state",), registry=r
        )
        self._consumer_lag = Gauge(
            "slaflow_consumer_lag",
            "Messages behind the end offset, per assigned partition.",
            ("topic", "partition"),
            registry=r,
        )
        self._lateness = Histogram(
            "slaflow_alert_lateness_seconds",
            "Alert emission wall time minus its threshold instant, in seconds.",
            buckets=LATENESS_BUCKETS_S,
            registry=r,
        )
        self._batch_seconds = Histogram(
            "slaflow_batch_seconds",
            "Wall time to process one batch, in seconds.",
            buckets=BATCH_SECONDS_BUCKETS,
            registry=r,
        )
        self._batch_size = Histogram(
            "slaflow_batch_size", "Messages in one batch.", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self._set_aside = Gauge(
            "slaflow_records_set_aside",
            "Records this worker holds but cannot restore: their state is pinned to a policy version the worker "
            "does not have; their events are dead-lettered as unknown_policy_version.",
            registry=r,
        )
        _build_info(r, version)
        for state in KPI_STATES:
            self._open_kpis.labels(state).set(0)

        # Pending until flush(): plain containers, one dict operation per call on the hot path.
        self._events: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._ticks: defaultdict[str, int] = defaultdict(int)
        self._alerts: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._transitions: defaultdict[tuple[str, str], int] = defaultdict(int)
        self._lateness_s: list[float] = []
        self._batches: list[tuple[int, float]] = []
        self._pending_open_kpis: dict[str, int] | None = None
        self._pending_set_aside: int | None = None
        self._pending_lag: dict[tuple[str, int], int] | None = None
        self._open_states: set[str] = set(KPI_STATES)
        self._lag_labels: set[tuple[str, str]] = set()

    # -- hot path: no prometheus_client call below until flush() --------------------------------------------

    def event(self, topic: str, outcome: str, reason: str = "", n: int = 1) -> None:
        """Count ``n`` input events of ``topic``: ``processed`` (reason "") or ``dead_lettered`` (its reason)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOMES)}, not {outcome!r}")
        self._events[topic, outcome, reason] += n

    def tick(self, topic: str, n: int = 1) -> None:
        """Count ``n`` clock ticks read from ``topic``."""
        self._ticks[topic] += n

    def alert(self, kind: str, policy: str, lateness_s: float) -> None:
        """Count one alert (WARNING, BREACH, ESCALATION) of ``policy``, emitted ``lateness_s`` seconds after its
        threshold instant (negative values count as 0)."""
        self._alerts[kind, policy] += 1
        self._lateness_s.append(lateness_s if lateness_s > 0.0 else 0.0)

    def transition(self, kind: str, policy: str, n: int = 1) -> None:
        """Count ``n`` KPI clock transitions of ``kind`` under ``policy``."""
        self._transitions[kind, policy] += n

    def batch(self, size: int, seconds: float) -> None:
        """Record one processed batch: ``size`` messages in ``seconds`` of wall time."""
        self._batches.append((size, seconds))

    def set_open_kpis(self, by_state: Mapping[str, int]) -> None:
        """Open KPI clocks by state, now; replaces the previous values (a state absent here becomes 0). States are
        ``running``, ``paused``, ``warned``, ``breached``; ``KpiState`` values are accepted too (``in_progress`` counts
        as ``running``, ``warning`` as ``warned``)."""
        self._pending_open_kpis = dict(by_state)

    def set_records_set_aside(self, n: int) -> None:
        """Records held but not restorable (pinned to an unknown policy version), now."""
        self._pending_set_aside = n

    def set_lag(self, by_partition: Mapping[tuple[str, int], int]) -> None:
        """Messages behind the end offset per ``(topic, partition)``, now; replaces the previous values (a partition
        absent here, e.g. revoked, is no longer reported)."""
        self._pending_lag = dict(by_partition)

    # -- once per batch ---------------------------------------------------------------------------------------

    def flush(self) -> None:
        """Apply everything recorded since the last flush to the Prometheus metrics (once per batch)."""
        if self._events:
            for (topic, outcome, reason), n in self._events.items():
                self._events_total.labels(topic, outcome, reason).inc(n)
            self._events.clear()
        if self._ticks:
            for topic, n in self._ticks.items():
                self._ticks_total.labels(topic).inc(n)
            self._ticks.clear()
        if self._alerts:
            for (kind, policy), n in self._alerts.items():
                self._alerts_total.labels(kind, policy).inc(n)
            self._alerts.clear()
        if self._transitions:
            for (kind, policy), n in self._transitions.items():
                self._transitions_total.labels(kind, policy).inc(n)
            self._transitions.clear()
        if self._lateness_s:
            observe = self._lateness.observe
            for seconds in self._lateness_s:
                observe(seconds)
            self._lateness_s.clear()
        if self._batches:
            for size, seconds in self._batches:
                self._batch_size.observe(size)
                self._batch_seconds.observe(seconds)
            self._batches.clear()
        if self._pending_open_kpis is not None:
            by_state: dict[str, int] = {}
            for state, n in self._pending_open_kpis.items():
                label = _STATE_LABELS.get(state, state)
                by_state[label] = by_state.get(label, 0) + n
            self._pending_open_kpis = None
            self._open_states |= by_state.keys()
            for state in self._open_states:
                self._open_kpis.labels(state).set(by_state.get(state, 0))
        if self._pending_set_aside is not None:
            self._set_aside.set(self._pending_set_aside)
            self._pending_set_aside = None
        if self._pending_lag is not None:
            lag = {(topic, str(partition)): n for (topic, partition), n in self._pending_lag.items()}
            self._pending_lag = None
            for labels in self._lag_labels - lag.keys():
                self._consumer_lag.remove(*labels)
            for (topic, partition), n in lag.items():
                self._consumer_lag.labels(topic, partition).set(n)
            self._lag_labels = set(lag)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, to serve at ``/metrics`` as :data:`CONTENT_TYPE`."""
        return generate_latest(self.registry)


class SinkMetrics:
    """The ClickHouse sink's Prometheus metrics, in a registry of their own.

    The sink records once per batch (not per message), so the calls go to prometheus_client directly: what
    is recorded is visible in :meth:`exposition` at once. Names and labels are in ``docs/metrics.md``.
    """

    def __init__(self, registry: CollectorRegistry | None = None, version: str | None = None) -> None:
        """Register every metric in ``registry`` (a fresh one when None); ``version`` labels ``slaflow_build_info``."""
        self.registry: Final = CollectorRegistry() if registry is None else registry
        r = self.registry
        self._messages = Counter(
            "slaflow_sink_messages",
            "Messages read by the sink: written (rows made), skipped (clock ticks) or refused (undecodable or "
            "schema_violation; the SLA agent dead-letters them).",
            ("topic", "outcome", "reason"),
            registry=r,
        )
        self._rows = Counter("slaflow_sink_rows", "Rows ClickHouse acknowledged, by table.", ("table",), registry=r)
        self._errors = Counter(
            "slaflow_sink_errors",
            "Failed ClickHouse operations, by table (connect: reaching ClickHouse or migrating); the rows stay "
            "buffered and are written again.",
            ("table",),
            registry=r,
        )
        self._backlog = Gauge(
            "slaflow_sink_backlog_messages",
            "Messages on a topic not yet in ClickHouse: end offsets minus the sink group's committed offsets.",
            ("topic",),
            registry=r,
        )
        self._buffered = Gauge("slaflow_sink_buffered_rows", "Rows read and not yet written.", registry=r)
        self._last_write = Gauge(
            "slaflow_sink_last_write_timestamp_seconds", "When ClickHouse last acknowledged an insert (Unix time).",
            registry=r,
        )  # fmt: skip
        _build_info(r, version)

    def messages(self, topic: str, outcome: str, reason: str = "", n: int = 1) -> None:
        """Count ``n`` messages of ``topic``: ``written``, ``skipped`` or ``refused`` (with its reason)."""
        if n:
            self._messages.labels(topic, outcome, reason).inc(n)

    def rows(self, written: Mapping[str, int], at_s: float) -> None:
        """Count rows ClickHouse acknowledged per table, at Unix time ``at_s``."""
        for table, n in written.items():
            self._rows.labels(table).inc(n)
        if written:
            self._last_write.set(at_s)

    def error(self, table: str) -> None:
        """Count one failed operation on ``table`` (``connect`` for reaching ClickHouse)."""
        self._errors.labels(table).inc()

    def set_backlog(self, by_topic: Mapping[str, int]) -> None:
        """Messages behind per topic, now."""
        for topic, n in by_topic.items():
            self._backlog.labels(topic).set(n)

    def set_buffered(self, rows: int) -> None:
        """Rows buffered and not yet written, now."""
        self._buffered.set(rows)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format, to serve at ``/metrics`` as :data:`CONTENT_TYPE`."""
        return generate_latest(self.registry)
