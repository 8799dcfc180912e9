"""The one settings object of slaflow: environment variables, overridden by CLI flags.

Each setting is declared once, here: its environment variable, its command-line flag and the flag's
metavariable, its choices, its type (the default's), its default and what it means. The CLI builds every
command's flags from this (:mod:`agents.options`), and ``docs/configuration.md`` is generated from it
(``python -m agents.settings`` prints that table; a test keeps the file in step).

A bad value is reported under the name the user gave it: the flag (``--partitions``) when it came from the
command line, the environment variable (``SLAFLOW_PARTITIONS``) otherwise.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POLICIES = PROJECT_ROOT / "deploy" / "policies" / "default.yaml"
CLICKHOUSE_SCHEMES = ("chdb://", "http://", "https://")


def _env(name: str, doc: str, default: Any, flag: str = "", metavar: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A setting: environment variable ``name``, flag ``flag`` (none: environment only), ``metavar`` naming the
    value in ``--help``, and ``choices`` when only those values are allowed."""
    return field(
        default=default, metadata={"env": name, "doc": doc, "flag": flag, "metavar": metavar, "choices": choices}
    )


@dataclass(frozen=True)
class Settings:
    """Everything a slaflow process needs to know. Build with :meth:`from_env`, then :meth:`replace`."""

    kafka_bootstrap: str = _env(
        "KAFKA_BOOTSTRAP",
        "Kafka bootstrap servers, host:port[,host:port] (`slaflow run` starts a local broker when none is set).",
        "",
        "--bootstrap",
        "HOST:PORT",
    )
    topic_prefix: str = _env(
        "SLAFLOW_TOPIC_PREFIX", "Prefix of every topic name: PREFIX.case-events, ...", "slaflow", "--topic-prefix",
        "PREFIX",
    )  # fmt: skip
    topic_case_events: str = _env(
        "SLAFLOW_TOPIC_CASE_EVENTS", "Input topic of record and activity events (default PREFIX.case-events).", "",
        "--topic-case-events", "TOPIC",
    )  # fmt: skip
    topic_calls: str = _env(
        "SLAFLOW_TOPIC_CALLS", "Input topic of telephony call events (default PREFIX.calls).", "", "--topic-calls",
        "TOPIC",
    )  # fmt: skip
    topic_alerts: str = _env(
        "SLAFLOW_TOPIC_ALERTS", "Output topic of alerts (default PREFIX.alerts).", "", "--topic-alerts", "TOPIC"
    )
    topic_transitions: str = _env(
        "SLAFLOW_TOPIC_TRANSITIONS", "Output topic of KPI transitions (default PREFIX.kpi-transitions).", "",
        "--topic-transitions", "TOPIC",
    )  # fmt: skip
    topic_durations: str = _env(
        "SLAFLOW_TOPIC_DURATIONS", "Output topic of measured KPI durations (default PREFIX.kpi-durations).", "",
        "--topic-durations", "TOPIC",
    )  # fmt: skip
    topic_dead_letters: str = _env(
        "SLAFLOW_TOPIC_DEAD_LETTERS", "Output topic of dead letters (default PREFIX.dead-letters).", "",
        "--topic-dead-letters", "TOPIC",
    )  # fmt: skip
    partitions: int = _env(
        "SLAFLOW_PARTITIONS", "Partitions of the topics slaflow creates when missing.", 4, "--partitions", "N"
    )
    replication_factor: int = _env(
        "SLAFLOW_REPLICATION_FACTOR", "Replication factor of the topics slaflow creates when missing.", 1,
        "--replication-factor", "N",
    )  # fmt: skip
    app_id: str = _env(
        "SLAFLOW_APP_ID", "Application id: the workers' consumer group and table names (the sink's group is "
        "APP_ID-clickhouse).", "slaflow",
        "--app-id", "ID",
    )  # fmt: skip
    processing_guarantee: str = _env(
        "SLAFLOW_PROCESSING_GUARANTEE",
        "exactly_once (outputs, table and offsets of a batch commit in one Kafka transaction; readers of the "
        "outputs use read_committed) or at_least_once (outputs may repeat after a crash; deduplicate by id).",
        "exactly_once",
        "--processing-guarantee",
        choices=("exactly_once", "at_least_once"),
    )
    store: str = _env(
        "SLAFLOW_STORE",
        "Where the worker keeps the SLA table between restarts: memory (rebuilt from the changelog topic at "
        "start) or rocksdb (on disk under DATA_DIR, for state larger than memory).",
        "memory",
        "--store",
        choices=("memory", "rocksdb"),
    )
    batch_size: int = _env(
        "SLAFLOW_BATCH_SIZE", "Input messages per batch of the SLA agent, at most.", 5000, "--batch-size", "N"
    )
    batch_window_s: float = _env(
        "SLAFLOW_BATCH_WINDOW", "Seconds the SLA agent waits to fill a batch before processing what it has.", 0.05,
        "--batch-window", "SECONDS",
    )  # fmt: skip
    commit_interval_s: float = _env(
        "SLAFLOW_COMMIT_INTERVAL",
        "Seconds between commits of the SLA agent (a commit ends the Kafka transaction: outputs become visible "
        "to read_committed readers then).",
        0.2,
        "--commit-interval",
        "SECONDS",
    )
    max_cached_records: int = _env(
        "SLAFLOW_MAX_CACHED_RECORDS",
        "Live record states kept in memory per partition beyond a batch (the table holds them all).",
        1_000_000,
        "--max-cached-records",
        "N",
    )
    policies: Path = _env("SLAFLOW_POLICIES", "SLA policy file (YAML).", DEFAULT_POLICIES, "--policies", "FILE")
    clickhouse_url: str = _env(
        "SLAFLOW_CLICKHOUSE_URL",
        "chdb:///path for the embedded engine (default: DATA_DIR/clickhouse), or http(s)://host:8123 for a server.",
        "",
        "--clickhouse-url",
        "URL",
    )
    clickhouse_database: str = _env(
        "SLAFLOW_CLICKHOUSE_DATABASE", "ClickHouse database of the slaflow tables.", "slaflow",
        "--clickhouse-database", "NAME",
    )  # fmt: skip
    data_dir: Path = _env(
        "SLAFLOW_DATA_DIR", "Local state: worker tables, embedded ClickHouse, local broker.", Path(".data"),
        "--data-dir", "DIR",
    )  # fmt: skip
    web_port: int = _env(
        "SLAFLOW_WEB_PORT", "Port of the worker's web server (0: no web server); the address is SLAFLOW_WEB_BIND.",
        6066, "--web-port", "PORT",
    )  # fmt: skip
    web_bind: str = _env(
        "SLAFLOW_WEB_BIND",
        "Address the web servers (worker views, sink metrics) listen on (0.0.0.0: every interface, for a remote "
        "scraper).",
        "127.0.0.1",
        "--web-bind",
        "ADDRESS",
    )
    web_host: str = _env(
        "SLAFLOW_WEB_HOST",
        "Host name other workers use to reach this one's web server (record views and /sla/urgent are routed "
        "between workers).",
        "127.0.0.1",
        "--web-host",
        "HOST",
    )
    tick_interval_s: float = _env(
        "SLAFLOW_TICK_INTERVAL",
        "Seconds between wall-clock ticks written into every input partition; 0: no ticker (the source writes "
        "ClockTicks itself, e.g. a replay through Kafka in simulated time).",
        0.25,
        "--tick-interval",
        "SECONDS",
    )
    sink_batch_rows: int = _env(
        "SLAFLOW_SINK_BATCH_ROWS", "ClickHouse sink: rows per insert at most.", 10_000, "--batch-rows", "N"
    )
    sink_flush_s: float = _env(
        "SLAFLOW_SINK_FLUSH_INTERVAL", "ClickHouse sink: seconds between inserts at most.", 1.0, "--flush-interval",
        "SECONDS",
    )  # fmt: skip
    sink_metrics_port: int = _env(
        "SLAFLOW_SINK_METRICS_PORT",
        "Port of the sink's /metrics (0: none); the address is SLAFLOW_WEB_BIND.",
        6067,
        "--metrics-port",
        "PORT",
    )
    display_tz: str = _env(
        "SLAFLOW_DISPLAY_TZ",
        "IANA time zone in which instants are shown to people (alert lines, the report, messages); empty: this "
        "machine's. JSON outputs keep UTC epoch milliseconds.",
        "",
        "--tz",
        "ZONE",
    )
    log_level: str = _env(
        "SLAFLOW_LOG_LEVEL", "Log level of the worker and the sink.", "info", "--log-level",
        choices=("debug", "info", "warn", "error"),
    )  # fmt: skip

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from environment variables (``os.environ`` by default); unset ones keep their defaults.

        An unusable value raises :class:`ConfigError` naming the variable.
        """
        environ = os.environ if environ is None else environ
        values = {f.name: environ[f.metadata["env"]] for f in fields(cls) if f.metadata["env"] in environ}
        return cls().replace(**values)

    def replace(self, named: Mapping[str, str] | None = None, /, **changes: Any) -> Settings:
        """A copy with ``changes`` (strings are converted to each field's type; ``None`` leaves a field as is).

        ``named`` says under which name the user gave a changed setting (``{"partitions": "--partitions"}``), so
        that an unusable value is reported as they typed it; the others are named by their environment variable.
        """
        names = {**self.variables(), **(named or {})}
        converted: dict[str, Any] = {}
        types = {f.name: type(f.default) for f in fields(self)}
        for name, value in changes.items():
            if value is None:
                continue
            if name not in types:
                raise ConfigError(f"unknown setting {name!r}")
            converted[name] = _convert(names[name], value, types[name])
        result = dataclasses.replace(self, **converted)
        result.validate(names)
        return result

    @classmethod
    def variables(cls) -> dict[str, str]:
        """The environment variable of each setting."""
        return {f.name: f.metadata["env"] for f in fields(cls)}

    def validate(self, names: Mapping[str, str] | None = None) -> None:
        """Raise :class:`ConfigError` if a value is unusable, naming the setting as ``names`` says (by default its
        environment variable)."""
        names = {**self.variables(), **(names or {})}

        def fail(name: str, problem: str) -> None:
            raise ConfigError(f"{names[name]} {problem}")

        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["choices"] and value not in f.metadata["choices"]:
                fail(f.name, f"must be one of {', '.join(f.metadata['choices'])}; got {value!r}")
        for name in ("partitions", "replication_factor", "batch_size", "max_cached_records", "sink_batch_rows"):
            if getattr(self, name) < 1:
                fail(name, f"must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.tick_interval_s <= 60:
            fail("tick_interval_s", f"must be between 0 and 60 seconds, got {self.tick_interval_s}")
        for name in ("web_port", "sink_metrics_port"):
            if not 0 <= getattr(self, name) < 65536:
                fail(name, f"must be a TCP port (0 to 65535), got {getattr(self, name)}")
        for name in ("batch_window_s", "commit_interval_s", "sink_flush_s"):
            if not 0 < getattr(self, name) <= 60:
                fail(name, f"must be more than 0 and at most 60 seconds, got {getattr(self, name)}")
        for server in filter(None, (part.strip() for part in self.kafka_bootstrap.split(","))):
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                fail(
                    "kafka_bootstrap", f"must be host:port[,host:port] with a port number, got {self.kafka_bootstrap!r}"
                )
        if self.clickhouse_url and not self.clickhouse_url.startswith(CLICKHOUSE_SCHEMES):
            fail(
                "clickhouse_url",
                f"must start with chdb:// (embedded engine) or http(s):// (a server), got {self.clickhouse_url!r}",
            )
        if self.display_tz:
            try:
                ZoneInfo(self.display_tz)
            except (ZoneInfoNotFoundError, ValueError):
                fail("display_tz", f"must be an IANA time zone such as Europe/Berlin or UTC, got {self.display_tz!r}")

    def to_env(self) -> dict[str, str]:
        """Every setting as its environment variable (what :meth:`from_env` reads back), for child processes."""
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in fields(self)}

    @property
    def effective_clickhouse_url(self) -> str:
        """The ClickHouse URL, defaulting to the embedded engine under ``data_dir``."""
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def display_zone(self) -> tzinfo:
        """The time zone instants are shown in: ``display_tz``, else this machine's (see :func:`machine_zone`)."""
        return ZoneInfo(self.display_tz) if self.display_tz else machine_zone()

    @classmethod
    def documentation(cls) -> list[tuple[str, str, str, str]]:
        """(field, environment variable, default, description) for every setting, for --help and the docs."""
        return [(f.name, f.metadata["env"], str(f.default), f.metadata["doc"]) for f in fields(cls)]

    @classmethod
    def markdown(cls) -> str:
        """The table of every setting for ``docs/configuration.md``: variable, flag, default, meaning."""
        lines = ["| variable | flag | default | what it sets |", "|---|---|---|---|"]
        for f in fields(cls):
            default = f.default
            if isinstance(default, Path) and default.is_absolute():
                default = default.relative_to(PROJECT_ROOT)  # the shipped file, as a path in the repository
            flag = f"`{f.metadata['flag']}`" if f.metadata["flag"] else ""
            shown = f"`{default}`" if str(default) else "(empty)"
            doc = f.metadata["doc"].replace("|", "\\|")
            lines.append(f"| `{f.metadata['env']}` | {flag} | {shown} | {doc} |")
        return "\n".join(lines) + "\n"


def ensure_free_port(settings: Settings, name: str) -> None:
    """Raise :class:`ConfigError` if the port of setting ``name`` (``web_port``, ``sink_metrics_port``) cannot be
    listened on at ``web_bind`` (another process has it): one paragraph at start, not a traceback from the web
    server later. Port 0 (no server) is always fine."""
    port = getattr(settings, name)
    if not port:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.web_bind, port))
        except OSError as exc:
            meta = next(f.metadata for f in fields(Settings) if f.name == name)
            raise ConfigError(
                f"cannot listen on {settings.web_bind}:{port} ({exc.strerror or exc}): another process has it (a "
                f"worker or sink still running?). Stop it, or choose another port with {meta['flag']} (or "
                f"{meta['env']}; 0 for none)"
            ) from exc


def machine_zone() -> tzinfo:
    """This machine's time zone: ``TZ``, else the zone ``/etc/localtime`` links to, else the current UTC offset."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with contextlib.suppress(OSError):
        candidates.append(os.readlink("/etc/localtime").partition("zoneinfo/")[2])
    for name in candidates:
        if name:
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                return ZoneInfo(name)
    return datetime.now().astimezone().tzinfo or UTC


_TYPE_WORDS = {int: "a whole number", float: "a number", Path: "a path", str: "text"}


def _convert(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, kind):
        return value
    try:
        if kind is Path:
            return Path(value)
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected {_TYPE_WORDS.get(kind, kind.__name__)}, got {value!r}") from exc


if __name__ == "__main__":
    sys.stdout.write(Settings.markdown())
