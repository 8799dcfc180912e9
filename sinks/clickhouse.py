"""ClickHouse: the connection, the versioned schema, and the batching sink (add()/flush()).

One code path for both deployments, through clickhouse-connect:

- ``chdb:///path/to/dir`` (the default): the real ClickHouse engine embedded
  in this process (chDB), its data in that directory. chDB allows one open
  data directory per process, and one process per directory.
- ``http(s)://user:password@host:8123/`` : a ClickHouse server or cluster.

**Schema.** The DDL lives in ``sinks/sql/``: ``migrations/NNNN_name.sql`` are
applied once each, in order, and recorded in ``DATABASE.slaflow_schema``
(version, name, checksum), so that a database written by an older slaflow is
upgraded with ``ALTER`` instead of failing on ``CREATE``; ``views/*.sql``
are ``CREATE OR REPLACE VIEW`` statements applied after the migrations every
time. Every statement is idempotent (``IF NOT EXISTS``, ``OR REPLACE``), so
two processes migrating the same database at once do no harm.

**Idempotence.** Every table is a ReplacingMergeTree whose sorting key is the
identity of what a row describes (an alert, a KPI instance, an event), so a
replayed topic or a retried insert leaves one row per identity once merged,
and exactly one in every ``FINAL`` query: the views read ``FINAL``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.rows import TABLE_COLUMNS
from streams.errors import ConfigError, SlaflowError

log = logging.getLogger(__name__)

SCHEMA_TABLE: Final = "slaflow_schema"
"""The table, in the configured database, that records the migrations applied."""

_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SinkError(SlaflowError):
    """ClickHouse did not take a batch (or cannot be reached). Retriable: the rows stay buffered; flush again."""

    retriable = True

    def __init__(self, message: str, table: str = "") -> None:
        super().__init__(message)
        self.table = table


@dataclass(frozen=True)
class Migration:
    """One versioned DDL file of ``sinks/sql/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file: a migration changed after it was applied is reported."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def _sql_files(folder: str) -> list[tuple[str, str]]:
    root = resources.files("sinks").joinpath("sql", folder)
    files = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in root.iterdir())
    return [(name, text) for name, text in files if name.endswith(".sql")]


def _migrations() -> tuple[Migration, ...]:
    migrations = []
    for file_name, text in _sql_files("migrations"):
        number, _, name = file_name.removesuffix(".sql").partition("_")
        migrations.append(Migration(int(number), name, text))
    versions = [m.version for m in migrations]
    assert versions == list(range(1, len(versions) + 1)), f"migrations must be numbered 1, 2, ...: {versions}"
    return tuple(migrations)


MIGRATIONS: Final = _migrations()
"""Every schema migration, oldest first; the schema version is the last one's number."""

VIEWS: Final = tuple(_sql_files("views"))
"""``(file name, SQL)`` of the view files, applied in name order after the migrations."""


def statements(sql: str, database: str) -> list[str]:
    """The statements of a DDL file: ``--`` comment lines dropped, split at ``;`` ending a line, ``{db}`` set."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    parts = re.split(r";\s*$", "\n".join(lines), flags=re.MULTILINE)
    return [part.strip().replace("{db}", database) for part in parts if part.strip()]


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate` did: the version found, the migrations applied, the version now."""

    found: int
    applied: tuple[str, ...]
    version: int


def schema_version(client: Client, database: str) -> int:
    """The highest migration recorded in ``database`` (0 for a database slaflow has not migrated)."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{SCHEMA_TABLE} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    version = client.command(f"SELECT max(version) FROM {database}.{SCHEMA_TABLE}")
    return int(str(version or 0))


def migrate(client: Client, database: str) -> MigrationReport:
    """Bring ``database`` to the latest schema: apply the missing migrations in order, then the views.

    Raises :class:`~streams.errors.ConfigError` when the database was written by a newer slaflow (a version
    this one does not know), and :class:`SinkError` when ClickHouse refuses a statement.
    """
    try:
        found = schema_version(client, database)
        latest = MIGRATIONS[-1].version
        if found > latest:
            raise ConfigError(
                f"ClickHouse database {database!r} is at schema version {found}, newer than this slaflow's "
                f"{latest}: upgrade slaflow (or point it at another database)"
            )
        rows = client.query(f"SELECT version, checksum FROM {database}.{SCHEMA_TABLE} FINAL").result_rows
        recorded = {int(version): str(checksum) for version, checksum in rows}
        for migration in MIGRATIONS[:found]:
            if recorded.get(migration.version, migration.checksum) != migration.checksum:
                log.warning("migration %04d_%s changed after it was applied", migration.version, migration.name)
        applied = []
        for migration in MIGRATIONS[found:]:
            for statement in statements(migration.sql, database):
                client.command(statement)
            client.insert(
                f"{database}.{SCHEMA_TABLE}",
                [[migration.version, migration.name, migration.checksum]],
                column_names=("version", "name", "checksum"),
            )
            applied.append(f"{migration.version:04d}_{migration.name}")
            log.info("ClickHouse database %s: applied migration %s", database, applied[-1])
        for _name, sql in VIEWS:
            for statement in statements(sql, database):
                client.command(statement)
    except ClickHouseError as exc:
        raise SinkError(f"migrating ClickHouse database {database!r} failed: {exc}") from exc
    return MigrationReport(found, tuple(applied), latest)


def connect(url: str, database: str) -> Client:
    """A clickhouse-connect client for ``url`` with ``database`` created; see the module doc for URLs."""
    if not _DATABASE_NAME.match(database):
        raise ConfigError(f"ClickHouse database {database!r}: expected letters, digits and _, not a digit first")
    scheme = urlparse(url).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ConfigError(
            f"ClickHouse URL {url!r}: expected chdb:///path (embedded engine) or http(s)://host:port (a server)"
        )
    if scheme == "chdb":
        path = urlparse(url).path or urlparse(url).netloc
        if path and path not in ("memory", ":memory:"):
            Path(path).mkdir(parents=True, exist_ok=True)
    try:
        client = clickhouse_connect.get_client(dsn=url)
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    except (ClickHouseError, OSError, RuntimeError) as exc:
        raise SinkError(f"cannot reach ClickHouse at {url}: {exc}") from exc
    return client


class ClickHouseSink:
    """Buffers rows per table with :meth:`add` and writes each table's rows in one insert per :meth:`flush`.

    Rows are sequences in the column order of :data:`sinks.rows.TABLE_COLUMNS`; times may be UTC epoch
    milliseconds (``int``) for ``DateTime64(3)`` columns. Not thread-safe: one owner calls add and flush.
    """

    def __init__(self, client: Client, database: str) -> None:
        self.client = client
        self.database = database
        self._rows: dict[str, list[Sequence[Any]]] = {table: [] for table in TABLE_COLUMNS}

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written, over every table."""
        return sum(len(rows) for rows in self._rows.values())

    def add(self, table: str, row: Sequence[Any]) -> None:
        """Buffer one row of ``table``."""
        self._rows[table].append(row)

    def flush(self) -> dict[str, int]:
        """Write the buffered rows, table by table; return the rows written per table.

        On failure raise :class:`SinkError` naming the table: the tables written before it are done (their
        rows are not written again), that table's rows and the later ones stay buffered for the next flush.
        """
        written: dict[str, int] = {}
        for table, rows in self._rows.items():
            if not rows:
                continue
            try:
                self.client.insert(
                    f"{self.database}.{table}", list(zip(*rows, strict=True)), column_names=TABLE_COLUMNS[table],
                    column_oriented=True,
                )  # fmt: skip
            except (ClickHouseError, OSError, RuntimeError) as exc:
                raise SinkError(f"insert of {len(rows)} rows into {table} failed: {exc}", table) from exc
            written[table] = len(rows)
            self._rows[table] = []
        return written


@contextmanager
def open_sink(url: str, database: str) -> Iterator[ClickHouseSink]:
    """A sink on ``url``/``database``, migrated to the latest schema, closed on exit."""
    client = connect(url, database)
    try:
        migrate(client, database)
        yield ClickHouseSink(client, database)
    finally:
        client.close()
