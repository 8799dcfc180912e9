"""ClickHouse sink: SLA alerts with their measured durations, batched with add()/flush().

One code path for both deployments, through clickhouse-connect:

- ``chdb:///path/to/dir`` (the default): the real ClickHouse engine embedded
  in this process (chDB), its data in that directory. chDB allows one open
  data directory per process, and one process per directory.
- ``http(s)://user:password@host:8123/`` : a ClickHouse server or cluster.

Tables are created at start-up (``CREATE ... IF NOT EXISTS``) in the
configured database. ``sla_alerts`` is a ReplacingMergeTree keyed by the
alert's identity with the revision as version, so that an alert written twice
(a replay, a retry after a crash) is one row once merged and in every
``FINAL`` query, and a correction replaces what it corrects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from streams.errors import ConfigError, SlaflowError

log = logging.getLogger(__name__)


class SinkError(SlaflowError):
    """ClickHouse did not take a batch. Retriable: the batch stays buffered; flush again later."""

    retriable = True


ALERT_COLUMNS: Final = (
    "alert_id",
    "kind",
    "record_id",
    "entity_type",
    "policy",
    "policy_version",
    "kpi",
    "kpi_instance",
    "started_at",
    "threshold_at",
    "deadline",
    "fired_at",
    "target_ms",
    "business_elapsed_ms",
    "wall_elapsed_ms",
    "paused_ms",
    "tier",
    "priority",
    "queue",
    "owner",
    "attributes",
    "level",
    "revision",
    "revoked",
)

_DDL: Final = """
CREATE TABLE IF NOT EXISTS {db}.sla_alerts
(
    alert_id            String COMMENT 'record_id/kpi/instance/kind: stable across replays',
    kind                LowCardinality(String) COMMENT 'WARNING or BREACH',
    record_id           String,
    entity_type         LowCardinality(String),
    policy              LowCardinality(String),
    policy_version      LowCardinality(String),
    kpi                 LowCardinality(String),
    kpi_instance        UInt32,
    started_at          DateTime64(3, 'UTC') COMMENT 'KPI clock start',
    threshold_at        DateTime64(3, 'UTC') COMMENT 'warning point or deadline this alert refers to',
    deadline            DateTime64(3, 'UTC'),
    fired_at            DateTime64(3, 'UTC') COMMENT 'event time (watermark) when the core fired it',
    target_ms           Int64 COMMENT 'target, business milliseconds',
    business_elapsed_ms Int64 COMMENT 'business time from start to threshold, ms',
    wall_elapsed_ms     Int64 COMMENT 'wall time from start to threshold, ms',
    paused_ms           Int64 COMMENT 'paused wall time between start and threshold, ms',
    tier                LowCardinality(String),
    priority            LowCardinality(String),
    queue               LowCardinality(String),
    owner               String,
    attributes          Map(String, String),
    level               UInt16 COMMENT 'escalation level; 0 for warnings and breaches',
    revision            UInt32 COMMENT '0, then +1 for each correction; the highest revision is the truth',
    revoked             Bool COMMENT 'a correction withdrew this alert',
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(revision)
PARTITION BY toYYYYMM(threshold_at)
ORDER BY (kpi, kind, record_id, kpi_instance, level)
"""


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def alert_row(alert: Mapping[str, Any]) -> list[Any]:
    """One ``sla_alerts`` row, in :data:`ALERT_COLUMNS` order, from a decoded SlaAlert message."""
    attributes = alert["attributes"]
    return [
        alert["alert_id"],
        alert["kind"],
        alert["record_id"],
        alert["entity_type"],
        alert["policy"],
        alert["policy_version"],
        alert["kpi"],
        alert["kpi_instance"],
        _ms(alert["started_at_ms"]),
        _ms(alert["threshold_at_ms"]),
        _ms(alert["deadline_ms"]),
        _ms(alert["fired_at_ms"]),
        alert["target_ms"],
        alert["business_elapsed_ms"],
        alert["wall_elapsed_ms"],
        alert["paused_ms"],
        attributes.get("tier", ""),
        attributes.get("priority", ""),
        attributes.get("queue", ""),
        attributes.get("owner", ""),
        dict(attributes),
        alert["level"],
        alert["revision"],
        alert["revoked"],
    ]


def connect(url: str, database: str) -> Client:
    """A clickhouse-connect client for ``url`` with ``database`` created; see the module doc for URLs."""
    scheme = urlparse(url).scheme
    if scheme == "chdb":
        path = urlparse(url).path or urlparse(url).netloc
        if path and path not in ("memory", ":memory:"):
            Path(path).mkdir(parents=True, exist_ok=True)
    elif scheme not in ("http", "https"):
        raise ConfigError(
            f"ClickHouse URL {url!r}: expected chdb:///path (embedded engine) or http(s)://host:port (a server)"
        )
    try:
        client = clickhouse_connect.get_client(dsn=url)
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    except (ClickHouseError, OSError, RuntimeError) as exc:
        raise SinkError(f"cannot reach ClickHouse at {url}: {exc}") from exc
    return client


class ClickHouseSink:
    """Buffers alert rows with :meth:`add` and writes them in one insert per :meth:`flush`.

    Not thread-safe: one owner calls add/flush (the sink task of the worker).
    """

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._rows: list[list[Any]] = []
        self.migrate()

    def migrate(self) -> None:
        """Create the tables if they are missing."""
        self.client.command(_DDL.format(db=self.database))

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written."""
        return len(self._rows)

    def add(self, alert: Mapping[str, Any]) -> None:
        """Buffer one decoded SlaAlert message."""
        self._rows.append(alert_row(alert))

    def flush(self) -> int:
        """Write the buffered rows; return how many. On failure raise :class:`SinkError` and keep them."""
        if not self._rows:
            return 0
        rows = self._rows
        try:
            self.client.insert(f"{self.database}.sla_alerts", rows, column_names=ALERT_COLUMNS)
        except (ClickHouseError, OSError, RuntimeError) as exc:
            raise SinkError(f"insert of {len(rows)} alert rows failed: {exc}") from exc
        self._rows = []
        return len(rows)


@contextmanager
def open_sink(url: str, database: str) -> Iterator[ClickHouseSink]:
    """A sink on ``url``/``database`` that is closed on exit."""
    client = connect(url, database)
    try:
        yield ClickHouseSink(client, database)
    finally:
        client.close()
