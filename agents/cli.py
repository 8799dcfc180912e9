"""The ``slaflow`` command line.

Every subcommand reads :class:`agents.settings.Settings` from the environment and lets its flags override it;
each shows only the flags it uses (:mod:`agents.options`). A user's mistake never ends in a traceback: it ends
with one paragraph (what is wrong, what to do) and the same exit code in every command:

====  ===========================================================================================
0     done
1     the command ran and failed (a query failed, the output was closed early, a broker crashed)
2     configuration: a bad flag, variable or file, Kafka or ClickHouse that cannot be reached
130   interrupted (Ctrl-C)
====  ===========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Final

from agents import alerts, bench, produce, replay, report, simulate
from agents.options import CLICKHOUSE, INPUT_TOPICS, KAFKA, OUTPUT_TOPICS, HelpFormatter, add_settings, command
from agents.options import settings_from as _settings
from agents.runtime import tune_gc
from agents.settings import ensure_free_port
from deploy.kafka.broker import BrokerError
from deploy.kafka.broker import serve as serve_broker
from streams.errors import ConfigError, SlaflowError, Unavailable

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_INTERRUPTED: Final = 130

WORKER_SETTINGS: Final = (
    *KAFKA, *INPUT_TOPICS, *OUTPUT_TOPICS, "partitions", "replication_factor", "app_id", "policies", "data_dir",
    "store", "processing_guarantee", "tick_interval_s", "batch_size", "batch_window_s", "commit_interval_s",
    "max_cached_records", "web_port", "web_bind", "web_host", "log_level",
)  # fmt: skip
SINK_SETTINGS: Final = (
    *KAFKA, *INPUT_TOPICS, "topic_alerts", "topic_transitions", "topic_durations", "app_id", *CLICKHOUSE,
    "sink_batch_rows", "sink_flush_s", "sink_metrics_port", "web_bind", "log_level",
)  # fmt: skip
RUN_SETTINGS: Final = (*KAFKA, "partitions", "policies", "data_dir", "web_port", "sink_metrics_port", "display_tz")


def slaflow_version() -> str:
    """The installed slaflow's version."""
    try:
        return version("slaflow")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one SLA worker until SIGINT/SIGTERM."""
    from agents.app import InterruptibleWorker, create_app  # noqa: PLC0415
    from agents.topics import ensure_topics  # noqa: PLC0415

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise ConfigError(
            "no Kafka broker: set KAFKA_BOOTSTRAP or pass --bootstrap HOST:PORT (or use `slaflow run`, which starts "
            "one)"
        )
    ensure_free_port(settings, "web_port")
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    app = create_app(settings)  # reads the policy file first: a mistake in it is reported before Kafka is asked
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings))
    tune_gc()
    worker = InterruptibleWorker(app, loglevel=settings.log_level, loop=loop)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if worker.interrupted:
            return EXIT_INTERRUPTED
        raise
    return EXIT_OK  # pragma: no cover - execute_from_commandline exits


def cmd_sink(args: argparse.Namespace) -> int:
    """Run the ClickHouse sink until SIGINT/SIGTERM."""
    from agents.sink import serve  # noqa: PLC0415

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka broker: set KAFKA_BOOTSTRAP or pass --bootstrap HOST:PORT")
    level = logging.getLevelName({"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper()))
    logging.getLogger().setLevel(level)
    logging.getLogger("aiokafka").setLevel(max(level, logging.WARNING))  # its INFO lines are about its own internals
    return serve(settings, catch_up=args.catch_up)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the ClickHouse database to the latest schema and say what was done."""
    from sinks.clickhouse import connect, masked, migrate  # noqa: PLC0415

    settings = _settings(args)
    url, database = settings.effective_clickhouse_url, settings.clickhouse_database
    client = connect(url, database)
    try:
        done = migrate(client, database)
    finally:
        client.close()
    applied = ", ".join(done.applied) if done.applied else "nothing to apply"
    print(f"ClickHouse {masked(url)} database {database}: schema version {done.found} -> {done.version} ({applied})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """The demo: local broker, worker, simulated contact centre, alerts printed."""
    from agents.demo import run_demo  # noqa: PLC0415

    settings = _settings(args, tick_interval_s=0)  # the simulated feed is the clock
    if args.data_dir is None and "SLAFLOW_DATA_DIR" not in os.environ:
        settings = settings.replace(data_dir=Path(".data") / "run")
    return run_demo(settings, duration_s=args.duration)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="slaflow",
        description="SLA timers for contact centres, as a Kafka stream: every command below has its own --help.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"slaflow {slaflow_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = command(
        commands,
        "run",
        "the demo: a local Kafka, a worker, a sink and a simulated contact centre; alerts printed as they fire",
        "Start a local Apache Kafka broker (unless --bootstrap names one), a worker, a ClickHouse sink and a "
        "simulated contact centre running 120 times faster than real time; print every alert as it fires; at the "
        "end (Ctrl-C or --duration) print what happened per queue and write the HTML report.",
    )
    run.add_argument("--duration", type=float, default=None, metavar="SECONDS", help="stop after this many seconds")
    add_settings(run, RUN_SETTINGS)
    run.set_defaults(func=cmd_run)

    worker = command(
        commands,
        "worker",
        "run an SLA worker (Faust) against a Kafka cluster",
        "Consume the input topics, keep every record's SLA state, fire warnings, breaches and escalations on time "
        "and publish them with every KPI transition and duration, exactly once. Serves the record views, "
        "/sla/urgent, /health, /ready and /metrics. Runs until SIGTERM or Ctrl-C.",
    )
    add_settings(worker, WORKER_SETTINGS)
    worker.set_defaults(func=cmd_worker)

    alerts.add_command(commands)
    produce.add_command(commands)
    simulate.add_command(commands)
    replay.add_command(commands)

    sink = command(
        commands,
        "sink",
        "write the topics into ClickHouse (a consumer group of its own)",
        "Read the alerts, KPI transitions, KPI durations, case events and calls (read_committed) and write them "
        "into ClickHouse tables for analysts, committing only what ClickHouse acknowledged. Runs until SIGTERM "
        "or Ctrl-C.",
    )
    sink.add_argument(
        "--catch-up",
        action="store_true",
        help="write everything up to the current end of the topics, then stop (instead of running until stopped)",
    )
    add_settings(sink, SINK_SETTINGS)
    sink.set_defaults(func=cmd_sink)

    report.add_command(commands)

    clickhouse = command(
        commands, "clickhouse", "the ClickHouse schema: slaflow clickhouse migrate", "Manage the ClickHouse schema."
    )
    actions = clickhouse.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = command(
        actions,
        "migrate",
        "create or upgrade the slaflow tables and views",
        "Apply the schema migrations the database lacks and create the views (the sink does this at start too).",
    )
    add_settings(migrate, CLICKHOUSE)
    migrate.set_defaults(func=cmd_migrate)

    bench.add_command(commands)

    kafka = command(
        commands,
        "kafka",
        "start a local Kafka broker on 127.0.0.1 and wait (Ctrl-C stops it)",
        "Start a single-node Apache Kafka broker (KRaft) on 127.0.0.1, print its address, and run until Ctrl-C.",
    )
    kafka.add_argument("--data-dir", default=None, metavar="DIR", help="broker data directory (default: temporary)")
    kafka.add_argument("--port", type=int, default=0, metavar="PORT", help="broker port (0: a free one)")
    kafka.set_defaults(func=lambda a: serve_broker(Path(a.data_dir) if a.data_dir else None, int(a.port)))
    return parser


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` were parsed for: ``slaflow clickhouse migrate``'s, say."""
    for dest in ("command", "action", "benchmark"):
        chosen = getattr(args, dest, None)
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if chosen is None or subparsers is None or chosen not in subparsers.choices:
            break
        parser = subparsers.choices[chosen]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slaflow`` console script: run the command, map its failure to an exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # name them in the usage of the command they were given to, not slaflow's
        command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    # The worker logs through Faust; the other commands print for people and log only trouble.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    words = ["slaflow", args.command, *(getattr(args, sub, None) for sub in ("action", "benchmark"))]
    name = " ".join(word for word in words if word)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ConfigError, Unavailable) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (BrokerError, SlaflowError) as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
