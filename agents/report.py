"""``slaflow report``: the bottleneck report of the ClickHouse database, in the terminal and as an HTML file.

Prints :func:`sinks.report.render_text` (headline, the worst bottlenecks, short sections), writes the
self-contained HTML report (default ``DATA_DIR/report.html``) and prints its absolute path. The database is
migrated first (:func:`sinks.clickhouse.migrate`), so a new or empty database gives a report that says
"no KPI has ended yet" rather than an error about missing tables.

Settings come from the environment and these flags (the same names as the other commands' flags): only the
ClickHouse URL and database and the data directory matter here, so the Kafka and topic flags of ``worker``
and ``run`` are not offered.

Exit codes: 0 when the report was written, 1 when a query fails (one line on stderr, a password in the URL
masked) or stdout was closed early, 2 for unusable settings, a ClickHouse that cannot be reached, a data
directory or database that holds no slaflow database, or an HTML file that cannot be written.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from agents.options import CLICKHOUSE, add_settings, command, positive_int, settings_from
from agents.settings import Settings
from sinks.clickhouse import ClickHouseUnavailable, SinkError, connect, has_slaflow_schema, masked, migrate
from sinks.report import Report
from sinks.report_pages import render_text, write_report
from streams.errors import ConfigError

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
HTML_NAME: Final = "report.html"
"""File name of the HTML report in the data directory when ``--html`` is not given."""


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand to the ``slaflow`` parser; its ``func`` returns the exit code."""
    parser = command(
        subparsers,
        "report",
        "print the SLA bottleneck report from ClickHouse and write it as an HTML file",
        "Read the KPIs, status times and calls the sink wrote into ClickHouse and report where breaches cluster: "
        "a headline, the worst bottlenecks (queues, agents, tiers, KPIs, categories, statuses with the most "
        "breaches beyond the average), breach rates per tier and queue, hours per status, telephony service level "
        "and agent workload. The same report is written as one self-contained HTML file with charts.",
    )
    parser.add_argument("--html", default=None, metavar="FILE", help=f"HTML report to write (default: DIR/{HTML_NAME})")
    parser.add_argument("--top", type=positive_int, default=5, metavar="N", help="bottlenecks to rank")
    add_settings(parser, (*CLICKHOUSE, "display_tz"))
    parser.set_defaults(func=cmd_report)


def run_report(settings: Settings, html_path: Path, top: int = 5) -> Report:
    """Connect to the settings' ClickHouse, migrate the database, build the report and write its HTML.

    Raises :class:`SinkError` when ClickHouse cannot be reached or a query fails, :class:`OSError` when the
    HTML file cannot be written.
    """
    url, database = settings.effective_clickhouse_url, settings.clickhouse_database
    hint = "the sink writes it (`slaflow sink`, or `make run`); check --data-dir or --clickhouse-url"
    if url.startswith("chdb://") and not Path(url.removeprefix("chdb://")).is_dir():
        raise ConfigError(f"no slaflow database in {url.removeprefix('chdb://')}: the directory does not exist; {hint}")
    with _driver_quiet():
        client = connect(url, database)
    try:
        if not has_slaflow_schema(client, database):
            raise ConfigError(f"ClickHouse {masked(url)} holds no slaflow database {database!r}; {hint}")
        migrate(client, database)
        return write_report(client, settings.clickhouse_database, html_path, top, zone=settings.display_zone)
    finally:
        client.close()


@contextlib.contextmanager
def _driver_quiet() -> Iterator[None]:
    """Hush clickhouse-connect's own log line for a failed connection: the SinkError we raise says it once."""
    driver = logging.getLogger("clickhouse_connect")
    level = driver.level
    driver.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        driver.setLevel(level)


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``slaflow report`` with parsed ``args``; return the exit code. A ConfigError (bad settings, a bad URL or
    database name, a database of a newer slaflow) reaches ``agents.cli.main``, which says so and exits with 2."""
    settings = settings_from(args)
    html_path = Path(args.html) if args.html else settings.data_dir / HTML_NAME
    try:
        report = run_report(settings, html_path, args.top)
    except ClickHouseUnavailable:
        raise  # agents.cli.main: exit 2, as every command does for a service it cannot reach
    except SinkError as exc:
        _error((str(exc).splitlines() or ["ClickHouse failed"])[0])  # connect() masks the password
        return EXIT_FAILED
    except OSError as exc:
        _error(f"cannot write the HTML report {html_path}: {exc.strerror or exc}")
        return EXIT_CONFIG
    try:
        sys.stdout.write(render_text(report))
        print(f"\nHTML report: {html_path.resolve()}", flush=True)
    except BrokenPipeError:  # `slaflow report | head`: the reader left; the HTML file is written all the same
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return EXIT_OK


def _error(message: str) -> None:
    print(f"slaflow report: error: {message}", file=sys.stderr)
