"""The ``slaflow`` command line.

Every subcommand reads :class:`agents.settings.Settings` from the environment
and lets flags override it. Errors in settings or files end the command with
a one-paragraph message and exit code 2; nothing prints a traceback at a user
for a mistake of theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agents import bench, produce, replay, report, simulate
from agents.runtime import tune_gc
from agents.settings import Settings
from deploy.kafka.broker import BrokerError
from deploy.kafka.broker import main as broker_main
from streams.errors import ConfigError, SlaflowError

EXIT_CONFIG = 2
TOPIC_FLAGS = ("case_events", "calls", "alerts", "transitions", "durations", "dead_letters")


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", dest="kafka_bootstrap", help="Kafka bootstrap servers [KAFKA_BOOTSTRAP]")
    parser.add_argument("--topic-prefix", help="prefix of the topic names [SLAFLOW_TOPIC_PREFIX]")
    parser.add_argument("--partitions", help="partitions of created topics [SLAFLOW_PARTITIONS]")
    parser.add_argument("--policies", help="SLA policy file, YAML [SLAFLOW_POLICIES]")
    parser.add_argument("--clickhouse-url", help="chdb:///path or http(s)://host:8123 [SLAFLOW_CLICKHOUSE_URL]")
    parser.add_argument("--clickhouse-database", help="database of the slaflow tables [SLAFLOW_CLICKHOUSE_DATABASE]")
    parser.add_argument("--data-dir", help="local state directory [SLAFLOW_DATA_DIR]")
    parser.add_argument("--web-port", help="worker web port, 0 for none [SLAFLOW_WEB_PORT]")
    parser.add_argument("--web-bind", help="address the web server listens on [SLAFLOW_WEB_BIND]")
    parser.add_argument("--log-level", help="debug, info, warn, error [SLAFLOW_LOG_LEVEL]")
    parser.add_argument("--store", help="SLA table store: memory or rocksdb [SLAFLOW_STORE]")
    parser.add_argument("--processing-guarantee", help="exactly_once or at_least_once [SLAFLOW_PROCESSING_GUARANTEE]")
    for topic in TOPIC_FLAGS:
        parser.add_argument(
            f"--topic-{topic.replace('_', '-')}", help=f"name of the {topic} topic [SLAFLOW_TOPIC_{topic.upper()}]"
        )


def _settings(args: argparse.Namespace) -> Settings:
    flags = {
        name: getattr(args, name, None)
        for name in (
            "kafka_bootstrap",
            "topic_prefix",
            "partitions",
            "policies",
            "clickhouse_url",
            "clickhouse_database",
            "data_dir",
            "web_port",
            "web_bind",
            "log_level",
            "store",
            "processing_guarantee",
            "sink_metrics_port",
            *(f"topic_{topic}" for topic in TOPIC_FLAGS),
        )
    }
    return Settings.from_env().replace(**flags)


def cmd_worker(args: argparse.Namespace) -> int:
    """Run one SLA worker until SIGINT/SIGTERM."""
    import faust  # noqa: PLC0415 - heavy import, only this command needs it
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    from agents.app import create_app  # noqa: PLC0415
    from agents.topics import ensure_topics  # noqa: PLC0415

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise ConfigError(
            "no Kafka broker: set KAFKA_BOOTSTRAP or --bootstrap (or use `slaflow run`, which starts one)"
        )
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(ensure_topics(settings))
    except (KafkaError, OSError, TimeoutError) as exc:
        raise BrokerError(
            f"cannot reach Kafka at {settings.kafka_bootstrap} ({type(exc).__name__}: {exc}). Is the broker running "
            "and KAFKA_BOOTSTRAP (or --bootstrap) right? `slaflow kafka` starts a local one."
        ) from exc
    app = create_app(settings)
    tune_gc()
    worker = faust.Worker(app, loglevel=settings.log_level, loop=loop)
    worker.execute_from_commandline()
    return 0  # pragma: no cover - execute_from_commandline exits


def cmd_sink(args: argparse.Namespace) -> int:
    """Run the ClickHouse sink until SIGINT/SIGTERM."""
    from agents.sink import serve  # noqa: PLC0415

    settings = _settings(args)
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka broker: set KAFKA_BOOTSTRAP or --bootstrap")
    logging.getLogger().setLevel({"warn": "WARNING"}.get(settings.log_level, settings.log_level.upper()))
    return serve(settings)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Bring the ClickHouse database to the latest schema and say what was done."""
    from sinks.clickhouse import connect, migrate  # noqa: PLC0415

    settings = _settings(args)
    url, database = settings.effective_clickhouse_url, settings.clickhouse_database
    client = connect(url, database)
    try:
        report = migrate(client, database)
    finally:
        client.close()
    applied = ", ".join(report.applied) if report.applied else "nothing to apply"
    print(f"ClickHouse {url} database {database}: schema version {report.found} -> {report.version} ({applied})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The demo: local broker, worker, simulated contact centre, alerts printed."""
    from agents.demo import run_demo  # noqa: PLC0415

    settings = _settings(args).replace(tick_interval_s=0)  # the simulated feed is the clock
    if args.data_dir is None and "SLAFLOW_DATA_DIR" not in os.environ:
        settings = settings.replace(data_dir=Path(".data") / "run")
    return run_demo(settings, duration_s=args.duration)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="slaflow", description="SLA timers for contact centres, on Kafka.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="run an SLA worker (Faust) against a Kafka cluster")
    _settings_flags(worker)
    worker.set_defaults(func=cmd_worker)

    run = commands.add_parser("run", help="demo: local Kafka + worker + simulated contact centre, alerts printed")
    _settings_flags(run)
    run.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    run.set_defaults(func=cmd_run)

    sink = commands.add_parser("sink", help="write the topics into ClickHouse (a consumer group of its own)")
    _settings_flags(sink)
    sink.add_argument(
        "--metrics-port", dest="sink_metrics_port", help="port of /metrics, 0 for none [SLAFLOW_SINK_METRICS_PORT]"
    )
    sink.set_defaults(func=cmd_sink)

    clickhouse = commands.add_parser("clickhouse", help="ClickHouse schema: slaflow clickhouse migrate")
    clickhouse_commands = clickhouse.add_subparsers(dest="clickhouse_command", required=True, metavar="ACTION")
    migrate = clickhouse_commands.add_parser("migrate", help="create or upgrade the slaflow tables and views")
    _settings_flags(migrate)
    migrate.set_defaults(func=cmd_migrate)

    report.add_command(commands)
    replay.add_command(commands)
    produce.add_command(commands)
    simulate.add_command(commands)
    bench.add_command(commands)

    kafka = commands.add_parser("kafka", help="start a local Kafka broker on 127.0.0.1 and wait (Ctrl-C stops it)")
    kafka.add_argument("--data-dir", default=None, help="broker data directory (default: temporary)")
    kafka.add_argument("--port", default="0", help="broker port (default: a free one)")
    kafka.set_defaults(
        func=lambda a: broker_main([*(["--data-dir", a.data_dir] if a.data_dir else []), "--port", a.port])
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``slaflow`` console script."""
    args = build_parser().parse_args(argv)
    # The worker logs through Faust; the other commands print for people and log only trouble.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.func(args)
    except (ConfigError, BrokerError) as exc:
        print(f"slaflow {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ConfigError) else 1
    except SlaflowError as exc:
        print(f"slaflow {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
