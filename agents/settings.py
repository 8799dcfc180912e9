"""The one settings object of slaflow: environment variables, overridden by CLI flags.

Each setting is documented once, here, with its environment variable, type
and default; the README's configuration table is the same list.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from streams.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICIES = PROJECT_ROOT / "deploy" / "policies" / "default.yaml"


def _env(name: str, doc: str, default: Any) -> Any:
    return field(default=default, metadata={"env": name, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Everything a slaflow process needs to know. Build with :meth:`from_env`, then :meth:`replace`."""

    kafka_bootstrap: str = _env(
        "KAFKA_BOOTSTRAP",
        "Kafka bootstrap servers (host:port[,host:port]). Empty: `slaflow run` and the tests start a local broker.",
        "",
    )
    topic_prefix: str = _env("SLAFLOW_TOPIC_PREFIX", "Prefix of every topic name: PREFIX.case-events, ...", "slaflow")
    topic_case_events: str = _env(
        "SLAFLOW_TOPIC_CASE_EVENTS", "Input topic of record and activity events (default PREFIX.case-events).", ""
    )
    topic_calls: str = _env("SLAFLOW_TOPIC_CALLS", "Input topic of telephony call events (default PREFIX.calls).", "")
    topic_alerts: str = _env("SLAFLOW_TOPIC_ALERTS", "Output topic of alerts (default PREFIX.alerts).", "")
    topic_transitions: str = _env(
        "SLAFLOW_TOPIC_TRANSITIONS", "Output topic of KPI transitions (default PREFIX.kpi-transitions).", ""
    )
    topic_durations: str = _env(
        "SLAFLOW_TOPIC_DURATIONS", "Output topic of measured KPI durations (default PREFIX.kpi-durations).", ""
    )
    topic_dead_letters: str = _env(
        "SLAFLOW_TOPIC_DEAD_LETTERS", "Output topic of dead letters (default PREFIX.dead-letters).", ""
    )
    partitions: int = _env("SLAFLOW_PARTITIONS", "Partitions of the topics slaflow creates when missing.", 4)
    replication_factor: int = _env(
        "SLAFLOW_REPLICATION_FACTOR", "Replication factor of the topics slaflow creates when missing.", 1
    )
    app_id: str = _env(
        "SLAFLOW_APP_ID", "Faust application id: the consumer group and changelog topic prefix.", "slaflow"
    )
    processing_guarantee: str = _env(
        "SLAFLOW_PROCESSING_GUARANTEE",
        "exactly_once (outputs, table and offsets of a batch commit in one Kafka transaction; readers of the "
        "outputs use read_committed) or at_least_once (outputs may repeat after a crash; deduplicate by id).",
        "exactly_once",
    )
    store: str = _env(
        "SLAFLOW_STORE",
        "Where the worker keeps the SLA table between restarts: memory (rebuilt from the changelog topic at "
        "start) or rocksdb (on disk under DATA_DIR, for state larger than memory).",
        "memory",
    )
    batch_size: int = _env("SLAFLOW_BATCH_SIZE", "Input messages per batch of the SLA agent, at most.", 5000)
    batch_window_s: float = _env(
        "SLAFLOW_BATCH_WINDOW", "Seconds the SLA agent waits to fill a batch before processing what it has.", 0.05
    )
    commit_interval_s: float = _env(
        "SLAFLOW_COMMIT_INTERVAL",
        "Seconds between commits of the SLA agent (a commit ends the Kafka transaction: outputs become visible "
        "to read_committed readers then).",
        0.2,
    )
    max_cached_records: int = _env(
        "SLAFLOW_MAX_CACHED_RECORDS",
        "Live record states kept in memory per partition beyond a batch (the table holds them all).",
        1_000_000,
    )
    policies: Path = _env("SLAFLOW_POLICIES", "SLA policy file (YAML).", DEFAULT_POLICIES)
    clickhouse_url: str = _env(
        "SLAFLOW_CLICKHOUSE_URL",
        "chdb:///path for the embedded engine (default: DATA_DIR/clickhouse), or http(s)://host:8123 for a server.",
        "",
    )
    clickhouse_database: str = _env(
        "SLAFLOW_CLICKHOUSE_DATABASE", "ClickHouse database of the slaflow tables.", "slaflow"
    )
    data_dir: Path = _env(
        "SLAFLOW_DATA_DIR", "Local state: worker tables, embedded ClickHouse, local broker.", Path(".data")
    )
    web_port: int = _env(
        "SLAFLOW_WEB_PORT", "Port of the worker's web server (0: no web server); the address is SLAFLOW_WEB_BIND.", 6066
    )
    web_bind: str = _env(
        "SLAFLOW_WEB_BIND",
        "Address the web server listens on (0.0.0.0: every interface, for a remote scraper).",
        "127.0.0.1",
    )
    web_host: str = _env(
        "SLAFLOW_WEB_HOST",
        "Host name other workers use to reach this one's web server (record views and /sla/urgent are routed "
        "between workers).",
        "127.0.0.1",
    )
    tick_interval_s: float = _env(
        "SLAFLOW_TICK_INTERVAL",
        "Seconds between wall-clock ticks written into every input partition; 0: no ticker (the source writes "
        "ClockTicks itself, e.g. a replay through Kafka in simulated time).",
        0.25,
    )
    sink_batch_rows: int = _env("SLAFLOW_SINK_BATCH_ROWS", "ClickHouse sink: rows per insert at most.", 10_000)
    sink_flush_s: float = _env("SLAFLOW_SINK_FLUSH_INTERVAL", "ClickHouse sink: seconds between inserts at most.", 1.0)
    sink_metrics_port: int = _env(
        "SLAFLOW_SINK_METRICS_PORT",
        "Port of the sink's /metrics (0: none); the address is SLAFLOW_WEB_BIND.",
        6067,
    )
    log_level: str = _env("SLAFLOW_LOG_LEVEL", "Log level of the worker: debug, info, warn, error.", "info")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (``os.environ`` by default); unset ones keep their defaults."""
        environ = os.environ if environ is None else environ
        values = {f.name: environ[f.metadata["env"]] for f in fields(cls) if f.metadata["env"] in environ}
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (strings are converted to each field's type; ``None`` leaves a field as is)."""
        converted: dict[str, Any] = {}
        types = {f.name: type(f.default) for f in fields(self)}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in types:
                raise ConfigError(f"unknown setting {name!r}")
            converted[name] = _convert(name, value, types[name])
        result = dataclasses.replace(self, **converted)
        result.validate()
        return result

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the setting and its environment variable if a value is unusable."""
        env = {f.name: f.metadata["env"] for f in fields(self)}
        if self.partitions < 1:
            raise ConfigError(f"partitions ({env['partitions']}) must be at least 1, got {self.partitions}")
        if self.replication_factor < 1:
            raise ConfigError(
                f"replication_factor ({env['replication_factor']}) must be at least 1, got {self.replication_factor}"
            )
        if not 0 <= self.tick_interval_s <= 60:
            raise ConfigError(
                f"tick_interval_s ({env['tick_interval_s']}) must be in [0, 60], got {self.tick_interval_s}"
            )
        if not 0 <= self.web_port < 65536:
            raise ConfigError(f"web_port ({env['web_port']}) must be a TCP port, got {self.web_port}")
        if self.processing_guarantee not in ("exactly_once", "at_least_once"):
            raise ConfigError(
                f"processing_guarantee ({env['processing_guarantee']}) must be exactly_once or at_least_once, "
                f"got {self.processing_guarantee!r}"
            )
        if self.store not in ("memory", "rocksdb"):
            raise ConfigError(f"store ({env['store']}) must be memory or rocksdb, got {self.store!r}")
        for name in ("batch_size", "max_cached_records"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} ({env[name]}) must be at least 1, got {getattr(self, name)}")
        for name in ("batch_window_s", "commit_interval_s"):
            if not 0 < getattr(self, name) <= 60:
                raise ConfigError(f"{name} ({env[name]}) must be in (0, 60] seconds, got {getattr(self, name)}")
        if self.log_level not in ("debug", "info", "warn", "error"):
            raise ConfigError(
                f"log_level ({env['log_level']}) must be debug, info, warn or error, got {self.log_level!r}"
            )

    def to_env(self) -> dict[str, str]:
        """Every setting as its environment variable (what :meth:`from_env` reads back), for child processes."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in fields(self)}

    @property
    def effective_clickhouse_url(self) -> str:
        """The ClickHouse URL, defaulting to the embedded engine under ``data_dir``."""
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str, str]]:
        """(field, environment variable, default, description) for every setting, for --help and the README."""
        return [(f.name, f.metadata["env"], str(f.default), f.metadata["doc"]) for f in fields(cls)]


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, kind):
        return value
    try:
        if kind is Path:
            return Path(value)
        if kind is bool:
            return str(value).lower() in ("1", "true", "yes", "on")
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting {name}: expected {kind.__name__}, got {value!r}") from exc
