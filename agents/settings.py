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
    partitions: int = _env("SLAFLOW_PARTITIONS", "Partitions of the topics slaflow creates when missing.", 4)
    replication_factor: int = _env(
        "SLAFLOW_REPLICATION_FACTOR", "Replication factor of the topics slaflow creates when missing.", 1
    )
    app_id: str = _env(
        "SLAFLOW_APP_ID", "Faust application id: the consumer group and changelog topic prefix.", "slaflow"
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
    web_port: int = _env("SLAFLOW_WEB_PORT", "Port of the worker's web server on 127.0.0.1 (0: no web server).", 6066)
    tick_interval_s: float = _env(
        "SLAFLOW_TICK_INTERVAL",
        "Seconds between wall-clock ticks written into every input partition; 0: no ticker (the source writes "
        "ClockTicks itself, e.g. a replay through Kafka in simulated time).",
        0.5,
    )
    sink_batch_rows: int = _env("SLAFLOW_SINK_BATCH_ROWS", "ClickHouse sink: rows per insert at most.", 10_000)
    sink_flush_s: float = _env("SLAFLOW_SINK_FLUSH_INTERVAL", "ClickHouse sink: seconds between inserts at most.", 1.0)
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
        if self.log_level not in ("debug", "info", "warn", "error"):
            raise ConfigError(
                f"log_level ({env['log_level']}) must be debug, info, warn or error, got {self.log_level!r}"
            )

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
