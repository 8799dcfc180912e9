"""``slaflow report``: the bottleneck report of the ClickHouse database, in the terminal and as an HTML file.

Prints :func:`sinks.report.render_text` (headline, the worst bottlenecks, short sections), writes the
self-contained HTML report (default ``DATA_DIR/report.html``) and prints its absolute path. The database is
migrated first (:func:`sinks.clickhouse.migrate`), so a new or empty database gives a report that says
"no KPI has ended yet" rather than an error about missing tables.

Settings come from the environment and these flags (the same names as the other commands' flags): only the
ClickHouse URL and database and the data directory matter here, so the Kafka and topic flags of ``worker``
and ``run`` are not offered.

Exit codes: 0 when the report was written, 1 when ClickHouse cannot be reached or a query fails (one line on
stderr, a password in the URL masked) or stdout was closed early, 2 for unusable settings or an HTML file that
cannot be written.
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

from agents.settings import Settings
from sinks.clickhouse import SinkError, connect, migrate
from sinks.report import Report, render_text, write_report

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
HTML_NAME: Final = "report.html"
"""File name of the HTML report in the data directory when ``--html`` is not given."""


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``report`` subcommand to the ``slaflow`` parser; its ``func`` returns the exit code."""
    parser = subparsers.add_parser(
        "report",
        help="print the SLA bottleneck report from ClickHouse and write it as an HTML file",
        description=(
            "Read the KPIs, status times and calls in ClickHouse and report where breaches cluster: a headline, "
            "the worst bottlenecks (queues, agents, tiers, KPIs, categories, statuses with the most breaches "
            "beyond the average), breach rates per tier and queue, hours per status, telephony service level "
            "and agent workload. The same report is written as one self-contained HTML file with charts."
        ),
    )
    parser.add_argument(
        "--html", default=None, metavar="PATH", help=f"HTML report to write (default: DATA_DIR/{HTML_NAME})"
    )
    parser.add_argument("--top", type=_positive, default=5, metavar="N", help="bottlenecks to rank (default: 5)")
    parser.add_argument("--clickhouse-url", help="chdb:///path or http(s)://host:8123 [SLAFLOW_CLICKHOUSE_URL]")
    parser.add_argument("--clickhouse-database", help="ClickHouse database [SLAFLOW_CLICKHOUSE_DATABASE]")
    parser.add_argument("--data-dir", help="local state directory [SLAFLOW_DATA_DIR]")
    parser.set_defaults(func=cmd_report)


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def report_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, overridden by the ``report`` flags that were given."""
    return Settings.from_env().replace(
        clickhouse_url=getattr(args, "clickhouse_url", None),
        clickhouse_database=getattr(args, "clickhouse_database", None),
        data_dir=getattr(args, "data_dir", None),
    )


def run_report(settings: Settings, html_path: Path, top: int = 5) -> Report:
    """Connect to the settings' ClickHouse, migrate the database, build the report and write its HTML.

    Raises :class:`SinkError` when ClickHouse cannot be reached or a query fails, :class:`OSError` when the
    HTML file cannot be written.
    """
    with _driver_quiet():
        client = connect(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        migrate(client, settings.clickhouse_database)
        return write_report(client, settings.clickhouse_database, html_path, top)
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
    settings = report_settings(args)
    html_path = Path(args.html) if args.html else settings.data_dir / HTML_NAME
    try:
        report = run_report(settings, html_path, args.top)
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
