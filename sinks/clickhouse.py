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

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import re
import shutil
import tempfile
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from sinks.rows import TABLE_COLUMNS, Framed, Framer, Outcomes, Target
from streams.errors import ConfigError, SlaflowError, Unavailable

log = logging.getLogger(__name__)

SCHEMA_TABLE: Final = "slaflow_schema"
"""The table, in the configured database, that records the migrations applied."""

DATABASE_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
"""What a database name may be (it goes into SQL unquoted)."""


class SinkError(SlaflowError):
    """ClickHouse did not take a batch (or cannot be reached). Retriable: the rows stay buffered; flush again."""

    retriable = True

    def __init__(self, message: str, table: str = "") -> None:
        super().__init__(message)
        self.table = table


class ClickHouseUnavailable(SinkError, Unavailable):
    """ClickHouse cannot be reached (or its data directory cannot be opened)."""


@dataclass(frozen=True)
class Migration:
    """One versioned DDL file of ``sinks/sql/migrations``."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of its statements (comments left out): a migration whose DDL changed after it was applied is
        reported; an edited comment is not."""
        return hashlib.sha256(";\n".join(statements(self.sql, "{db}")).encode()).hexdigest()


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


def recorded_migrations(client: Client, database: str) -> dict[int, str]:
    """``{version: checksum}`` of the migrations recorded in ``database`` (the record table is created when
    missing: nothing recorded for a database slaflow has not migrated)."""
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{SCHEMA_TABLE} "
        "(version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    rows = client.query(f"SELECT version, checksum FROM {database}.{SCHEMA_TABLE} FINAL").result_rows
    return {int(version): str(checksum) for version, checksum in rows}


def has_slaflow_schema(client: Client, database: str) -> bool:
    """Whether ``database`` holds slaflow tables: its migration record exists (changes nothing)."""
    return str(client.command(f"EXISTS TABLE {database}.{SCHEMA_TABLE}")) == "1"


def schema_version(client: Client, database: str) -> int:
    """The highest migration recorded in ``database`` (0 for a database slaflow has not migrated)."""
    return max(recorded_migrations(client, database), default=0)


def migrate(client: Client, database: str) -> MigrationReport:
    """Bring ``database`` to the latest schema: apply the missing migrations in order, then the views.

    Raises :class:`~streams.errors.ConfigError` when the database was written by a newer slaflow (a version
    this one does not know), and :class:`SinkError` when ClickHouse refuses a statement.
    """
    try:
        recorded = recorded_migrations(client, database)
        found = max(recorded, default=0)
        latest = MIGRATIONS[-1].version
        if found > latest:
            raise ConfigError(
                f"ClickHouse database {database!r} is at schema version {found}, newer than this slaflow's "
                f"{latest}: upgrade slaflow (or point it at another database)"
            )
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


def masked(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: what logs and error messages show."""
    password = urlparse(url).password
    return url.replace(f":{password}@", ":***@") if password else url


def connect(url: str, database: str) -> Client:
    """A clickhouse-connect client for ``url`` with ``database`` created; see the module doc for URLs.

    Errors name the URL with its password masked (:func:`masked`)."""
    if not DATABASE_NAME.match(database):
        raise ConfigError(f"ClickHouse database {database!r}: expected letters, digits and _, not a digit first")
    scheme = urlparse(url).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ConfigError(
            f"ClickHouse URL {masked(url)!r}: expected chdb:///path (embedded engine) or http(s)://host:port (a server)"
        )
    if scheme == "chdb":
        path = urlparse(url).path or urlparse(url).netloc
        if path and path not in ("memory", ":memory:"):
            Path(path).mkdir(parents=True, exist_ok=True)
            if _held_by_another_process(Path(path)):
                raise ClickHouseUnavailable(
                    f"the embedded ClickHouse in {path} is open in another process (a running sink, the demo or a "
                    "report: one process at a time). Stop it, or point --clickhouse-url at a ClickHouse server to "
                    "read while the sink writes"
                )
    try:
        client = clickhouse_connect.get_client(dsn=url)
        client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    except (ClickHouseError, OSError, RuntimeError) as exc:
        password = urlparse(url).password
        detail = str(exc).replace(password, "***") if password else str(exc)
        raise ClickHouseUnavailable(f"cannot reach ClickHouse at {masked(url)}: {detail}") from exc
    return client


def _held_by_another_process(directory: Path) -> bool:
    """Whether an embedded ClickHouse engine of another process has ``directory`` open: its ``status`` file is
    locked (``flock``) for as long as it runs. Asked before opening, so that the engine's own refusal (printed to
    stderr by the engine itself) never reaches the user."""
    status = directory.resolve() / "status"
    if _open_here(status):
        return False  # this process's own engine (chDB keeps one per process and reuses it)
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False  # no status file: no engine has the directory open
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _open_here(path: Path) -> bool:
    """Whether this process has ``path`` open (Linux: its descriptors in ``/proc/self/fd``)."""
    fds = Path("/proc/self/fd")
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            if os.readlink(fds / name) == str(path):
                return True
    return False


class ClickHouseSink:
    """Buffers rows per table and writes them with one insert per table (and message shape) per :meth:`flush`.

    Two ways in, the same rows (:mod:`sinks.rows`):

    - :meth:`add`: one row made in Python (by :data:`sinks.rows.ROWS_OF`), a sequence in the column order of
      :data:`sinks.rows.TABLE_COLUMNS`; times may be UTC epoch milliseconds (``int``) for ``DateTime64(3)``.
    - :meth:`add_messages`: the Kafka messages of one topic partition. With engine rows (chDB, whose engine runs
      in this process and reads the files it writes), they are framed, not decoded, into files of a private
      temporary directory, and ClickHouse decodes them and makes their rows in the inserts of :meth:`flush`:
      about 1 µs of Python a message instead of some 13 µs a row. The first insert of each message shape checks
      every message; one that fails the check (or that ClickHouse cannot read) goes through ``ROWS_OF``
      instead, so exactly the reference rows are written and exactly the reference refusals made. Without
      engine rows (a server), every message goes through ``ROWS_OF``. What became of the messages:
      :meth:`take_outcomes`.

    With engine rows, :meth:`flush` runs up to ``parallel_inserts`` inserts at once, each on a connection of its
    own to the engine (opened at the first such flush, closed by :meth:`close` or when the sink is garbage
    collected; until then they keep the engine open, and chDB opens no other data directory in this process).
    Not thread-safe: one owner calls add, add_messages, flush, take_outcomes and close (one at a time).
    """

    INSERT_SETTINGS: Final = {"optimize_on_insert": "0"}
    """Settings of every insert. Rows are kept as inserted (not collapsed within the insert first, which costs a
    fifth of the insert and depends on the order of the rows): ReplacingMergeTree collapses them when merging,
    and every ``FINAL`` query sees one row per identity either way."""
    FILE_SETTINGS: Final = (
        "SETTINGS optimize_on_insert = 0, schema_inference_use_cache_for_file = 0, max_threads = 1, "
        "max_insert_threads = 1"
    )
    """Settings of every query over the framed files: :attr:`INSERT_SETTINGS`; no schema cache entry per file; one
    thread per query, as a flush runs several queries at once (``parallel_inserts``), which is faster."""

    @dataclass(eq=False)
    class _Chunk:
        """The framed messages of one shape and part of one :meth:`add_messages` call, in one file."""

        topic: str
        partition: int
        framed: Framed
        path: Path
        checked: bool = False
        """The insert into the shape's first target, which checks every message, succeeded."""
        done: set[str] = field(default_factory=set)
        """Tables written."""

        @property
        def rows(self) -> dict[str, int]:
            """The rows each table gets of these messages."""
            n, shape, part = len(self.framed.offsets), self.framed.shape, self.framed.part
            return {target.table: n for target in shape.targets if target.takes(part)}

    def __init__(
        self, client: Client, database: str, *, engine_rows: bool | None = None, parallel_inserts: int = 2
    ) -> None:
        """``engine_rows``: whether ClickHouse makes the rows of :meth:`add_messages` (default: when the engine
        runs in this process: only it reads the files this process writes). ``parallel_inserts``: inserts run
        at once by a flush with engine rows (the machine's cores are the useful most)."""
        self.client = client
        self.database = database
        self._rows: dict[str, list[Sequence[Any]]] = {table: [] for table in TABLE_COLUMNS}
        self._chunks: list[ClickHouseSink._Chunk] = []
        self._outcomes = Outcomes()
        self._framer: Framer | None = None
        self._files = Path()
        self._files_made = 0
        self._parallel = max(1, parallel_inserts)
        self._helpers: list[Client] = []
        self._pools: list[ThreadPoolExecutor] = []
        files = None
        if self._in_process(client) if engine_rows is None else engine_rows:
            files = Path(tempfile.mkdtemp(prefix="slaflow-sink-"))
            if set(str(files)) & set("{}*?[]',\\"):  # cannot be a file() glob: Python rows
                files.rmdir()
                files = None
            else:
                self._framer, self._files = Framer(), files
        self._finalizer = weakref.finalize(self, self._release, files, self._helpers, self._pools)

    @staticmethod
    def _in_process(client: Client) -> bool:
        """Whether ``client`` is chDB's: the engine in this process, reading this process's files."""
        try:
            from clickhouse_connect.driver._chdbclient import ChdbClient  # noqa: PLC0415 - an optional backend
        except ImportError:
            return False
        return isinstance(client, ChdbClient)

    @staticmethod
    def _release(files: Path | None, helpers: list[Client], pools: list[ThreadPoolExecutor]) -> None:
        for pool in pools:
            pool.shutdown(wait=True)
        for helper in helpers:
            helper.close()
        helpers.clear()
        if files is not None:
            shutil.rmtree(files, ignore_errors=True)

    def close(self) -> None:
        """Close the sink's own connections to the engine, stop its threads and remove its files (``client`` is
        the caller's to close). Rows of :meth:`add_messages` not flushed are dropped; the sink goes on with
        Python rows only."""
        self._finalizer()
        self._framer = None
        self._chunks.clear()

    @property
    def engine_rows(self) -> bool:
        """Whether ClickHouse makes the rows of :meth:`add_messages` (else Python does)."""
        return self._framer is not None

    @property
    def pending(self) -> int:
        """Rows buffered and not yet written, over every table. A framed message counts the rows of its shape
        and part until :meth:`flush` finds it fails its check (then the rows Python makes of it, if any)."""
        framed = sum(n for chunk in self._chunks for table, n in chunk.rows.items() if table not in chunk.done)
        return sum(len(rows) for rows in self._rows.values()) + framed

    def add(self, table: str, row: Sequence[Any]) -> None:
        """Buffer one row of ``table``."""
        self._rows[table].append(row)

    def add_messages(self, topic: str, values: Sequence[bytes], partition: int, offsets: Sequence[int]) -> None:
        """Buffer the rows of the messages ``values`` of one partition of ``topic`` (a key of
        :data:`~sinks.rows.ROWS_OF`); ``offsets`` are their Kafka offsets, in the same order (not necessarily
        consecutive: a transactional topic's commit markers take offsets too).

        Makes exactly the rows :data:`~sinks.rows.ROWS_OF` makes, and refuses exactly the messages it refuses
        (those the SLA agent dead-letters). What became of each message is known once :meth:`flush` wrote its
        rows (at once for those Python handles): :meth:`take_outcomes`.
        """
        if len(values) != len(offsets):
            raise ValueError(f"{len(values)} messages but {len(offsets)} offsets")
        unframed: list[tuple[bytes, int]]
        if self._framer is None:
            unframed = list(zip(values, offsets, strict=True))
        else:
            groups, indices = self._framer.frame(topic, values, partition, offsets)
            unframed = [(values[i], offsets[i]) for i in indices]
            for framed in groups:
                self._files_made += 1
                path = self._files / f"{framed.shape.name}-{self._files_made}.avro"
                try:
                    self._write(path, framed)
                except OSError as exc:  # no room for the file: Python rows
                    log.warning("cannot write %s (%s): Python makes those rows", path, exc)
                    path.unlink(missing_ok=True)
                    unframed += zip(framed.values, framed.offsets, strict=True)
                    continue
                self._chunks.append(self._Chunk(topic, partition, framed, path))
        buffers, reference = self._rows, self._outcomes.reference
        for value, offset in unframed:
            for table, row in reference(topic, value, partition, offset):
                buffers[table].append(row)

    def take_outcomes(self) -> Outcomes:
        """What became of the messages given to :meth:`add_messages` since the last call: written (their rows
        are written), skipped (clock ticks) or refused (with the reason), per topic; and the refused ones."""
        outcomes, self._outcomes = self._outcomes, Outcomes()
        return outcomes

    def _write(self, path: Path, framed: Framed) -> None:
        assert self._framer is not None
        with open(path, "wb") as out:
            out.write(self._framer.file_header(framed.shape))
            out.writelines(framed.blocks)

    @staticmethod
    def _source(paths: list[Path]) -> str:
        """The ``file()`` table function over framed files (of one shape, in one directory)."""
        if len(paths) == 1:
            return f"file('{paths[0]}', 'Avro')"
        return f"file('{paths[0].parent}/{{{','.join(p.stem for p in paths)}}}.avro', 'Avro')"

    @dataclass(frozen=True)
    class _Job:
        """One insert of a flush: ``run`` does it on a client (any thread), ``done`` books it (the caller's)."""

        table: str
        rows: int
        run: Callable[[Client], None]
        done: Callable[[], None]

    def flush(self) -> dict[str, int]:
        """Write the buffered rows; return the rows written per table.

        On failure raise :class:`SinkError` naming a table that failed (the first in
        :data:`~sinks.rows.TABLE_COLUMNS` order): the rows written are done (never written again), the others
        stay buffered for the next flush.
        """
        written: Counter[str] = Counter()
        failed: dict[str, SinkError] = {}
        try:
            self._flush_checked(written, failed)
            jobs = [self._framed_job(t, chunks) for t, chunks in self._framed_groups(first=False).items()]
            at_once = bool(jobs)  # Python rows alone (add() only, or a server) go one table after the other
            jobs += [self._rows_job(table) for table, rows in self._rows.items() if rows]
            for job, error in zip(jobs, self._run(jobs, at_once=at_once), strict=True):
                if error is None:
                    job.done()
                    written[job.table] += job.rows
                else:
                    failed.setdefault(error.table, error)
        finally:
            for chunk in [c for c in self._chunks if not c.framed.offsets or c.done >= c.rows.keys()]:
                chunk.path.unlink(missing_ok=True)
                self._chunks.remove(chunk)
        for table in TABLE_COLUMNS:
            if table in failed:
                raise failed[table]
        return dict(written)

    def _flush_checked(self, written: Counter[str], failed: dict[str, SinkError]) -> None:
        """Insert every shape's first target, checking every message. Where an insert fails, the messages that
        fail the check (all of a file ClickHouse cannot read) go to Python rows, and the rest is inserted again."""
        groups = self._framed_groups(first=True)
        jobs = [self._framed_job(target, chunks) for target, chunks in groups.items()]
        for (target, chunks), job, error in zip(groups.items(), jobs, self._run(jobs, at_once=True), strict=True):
            finished: ClickHouseSink._Job | None = job
            if error is not None:
                self._settle(chunks)
                left = [chunk for chunk in chunks if chunk.framed.offsets]
                finished = self._framed_job(target, left) if left else None
                retried = self._run([finished]) if finished is not None else [None]  # one job: on the client
                if retried[0] is not None:
                    failed.setdefault(target.table, retried[0])
                    continue
            if finished is not None:
                finished.done()
                written[finished.table] += finished.rows

    def _framed_groups(self, *, first: bool) -> dict[Target, list[ClickHouseSink._Chunk]]:
        """The chunks to insert per target: every shape's first (unchecked chunks), or the others (checked)."""
        groups: dict[Target, list[ClickHouseSink._Chunk]] = {}
        for chunk in self._chunks:
            shape, part = chunk.framed.shape, chunk.framed.part
            if not chunk.framed.offsets or chunk.checked == first:
                continue
            for target in shape.targets[:1] if first else shape.targets[1:]:
                if target.table not in chunk.done and target.takes(part):
                    groups.setdefault(target, []).append(chunk)
        return groups

    def _framed_job(self, target: Target, chunks: list[ClickHouseSink._Chunk]) -> ClickHouseSink._Job:
        """The insert of ``target``'s rows of ``chunks`` (checking every message when it is the shape's first)."""
        assert self._framer is not None
        shape = chunks[0].framed.shape
        first = target is shape.targets[0]
        source = self._source([chunk.path for chunk in chunks])
        check = shape.check(self._framer.end) if first else ""
        sql = f"{target.insert_sql(f'{self.database}.{target.table}', source, check)} {self.FILE_SETTINGS}"
        n = sum(len(chunk.framed.offsets) for chunk in chunks)

        def run(client: Client) -> None:
            try:
                client.command(sql)
            except (ClickHouseError, OSError, RuntimeError) as exc:
                raise SinkError(f"insert of {n} rows into {target.table} failed: {exc}", target.table) from exc

        def done() -> None:
            for chunk in chunks:
                chunk.done.add(target.table)
                if first:
                    chunk.checked = True
                    self._outcomes.counts[chunk.topic, "written", ""] += len(chunk.framed.offsets)

        return self._Job(target.table, n, run, done)

    def _rows_job(self, table: str) -> ClickHouseSink._Job:
        """The insert of the rows buffered for ``table`` (made in Python)."""
        rows = self._rows[table]

        def run(client: Client) -> None:
            try:
                client.insert(
                    f"{self.database}.{table}", list(zip(*rows, strict=True)), column_names=TABLE_COLUMNS[table],
                    column_oriented=True, settings=self.INSERT_SETTINGS,
                )  # fmt: skip
            except (ClickHouseError, OSError, RuntimeError) as exc:
                raise SinkError(f"insert of {len(rows)} rows into {table} failed: {exc}", table) from exc

        def done() -> None:
            self._rows[table] = self._rows[table][len(rows) :]

        return self._Job(table, len(rows), run, done)

    def _run(self, jobs: list[ClickHouseSink._Job], *, at_once: bool = False) -> list[SinkError | None]:
        """Run the inserts (``at_once``: on the sink's connections to an in-process engine, largest first); the
        error of each, in the order of ``jobs``."""

        def attempt(job: ClickHouseSink._Job, client: Client) -> SinkError | None:
            try:
                job.run(client)
            except SinkError as exc:
                return exc
            return None

        clients = self._clients() if at_once and len(jobs) > 1 else [self.client]
        if len(clients) == 1:
            return [attempt(job, self.client) for job in jobs]
        free: queue.SimpleQueue[Client] = queue.SimpleQueue()
        for client in clients:
            free.put(client)

        def on_a_free_client(job: ClickHouseSink._Job) -> SinkError | None:
            client = free.get()
            try:
                return attempt(job, client)
            finally:
                free.put(client)

        if not self._pools:
            self._pools.append(ThreadPoolExecutor(len(clients), thread_name_prefix="slaflow-sink"))
        order = sorted(range(len(jobs)), key=lambda k: -jobs[k].rows)
        errors = dict(zip(order, self._pools[0].map(on_a_free_client, [jobs[k] for k in order]), strict=True))
        return [errors[k] for k in range(len(jobs))]

    def _clients(self) -> list[Client]:
        """The client and, with engine rows on chDB, ``parallel_inserts - 1`` more connections to its engine."""
        if self._framer is None or self._parallel == 1 or not self._in_process(self.client):
            return [self.client]
        while len(self._helpers) < self._parallel - 1:
            try:
                helper = clickhouse_connect.get_client(dsn=f"chdb://{getattr(self.client, 'path', '')}")
            except (ClickHouseError, OSError, RuntimeError) as exc:
                log.info("no second connection to the engine (%s): inserts one at a time", exc)
                self._parallel = 1
                return [self.client]
            self._helpers.append(helper)
        return [self.client, *self._helpers]

    def _settle(self, chunks: list[ClickHouseSink._Chunk]) -> None:
        """Move the messages that fail their shape's check to Python rows (all of a chunk ClickHouse cannot
        read, or whose offsets repeat), and rewrite the chunks without them."""
        assert self._framer is not None
        for chunk in chunks:
            framed = chunk.framed
            sql = framed.shape.refused_sql(self._source([chunk.path]), self._framer.end)
            try:
                (refused,) = self.client.query(f"{sql} {self.FILE_SETTINGS}").result_rows[0]
            except (ClickHouseError, OSError, RuntimeError) as exc:
                log.info("ClickHouse cannot read %s (%s): Python rows instead", chunk.path.name, exc)
                refused = framed.offsets
            if not refused:
                continue
            named = set(refused)
            if len(set(framed.offsets)) != len(framed.offsets):
                named = set(framed.offsets)  # which copy failed is unknown: Python decides them all
            kept = Framed(framed.shape, framed.part)
            for k, offset in enumerate(framed.offsets):
                if offset in named:
                    rows = self._outcomes.reference(chunk.topic, framed.values[k], chunk.partition, offset)
                    for table, row in rows:
                        self._rows[table].append(row)
                else:
                    kept.blocks.append(framed.blocks[k])
                    kept.offsets.append(offset)
                    kept.values.append(framed.values[k])
            chunk.framed = kept
            if kept.offsets:
                self._write(chunk.path, kept)


@contextmanager
def open_sink(url: str, database: str) -> Iterator[ClickHouseSink]:
    """A sink on ``url``/``database``, migrated to the latest schema, closed on exit."""
    client = connect(url, database)
    sink: ClickHouseSink | None = None
    try:
        migrate(client, database)
        sink = ClickHouseSink(client, database)
        yield sink
    finally:
        if sink is not None:
            sink.close()
        client.close()
