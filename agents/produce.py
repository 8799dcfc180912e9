"""``slaflow produce``: JSON-lines events into the input topic as Avro, keyed by their routing key.

Lines are parsed with :func:`streams.events.parse_event` (the format of
``slaflow replay``: record, activity and call events), and each message is
keyed by :func:`streams.events.routing_key` (the record whose state it
changes). A line that is not a valid event is reported on stderr with its line
number and reason and skipped, and the run goes on. Sends are
batched by the producer (``linger_ms``) and awaited together, never one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from aiokafka import AIOKafkaProducer

from agents.replay import MAX_PRINTED_REJECTS
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics
from schemas.codec import encode_input
from streams.events import CallEvent, EventError, InputEvent, parse_event_line, routing_key


def read_events(lines: Iterable[bytes], source: str, errors: TextIO) -> Iterator[InputEvent]:
    """The valid events of JSON ``lines``; each invalid one is reported on ``errors`` with its line number."""
    rejected = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield parse_event_line(line)
        except EventError as exc:
            rejected += 1
            if rejected <= MAX_PRINTED_REJECTS:
                print(f"{source}:{number}: {exc}", file=errors)
    if rejected > MAX_PRINTED_REJECTS:
        print(f"{source}: {rejected - MAX_PRINTED_REJECTS} more rejected lines", file=errors)


async def produce(settings: Settings, events: Iterable[InputEvent], batch: int = 10_000) -> int:
    """Send ``events`` to the input topics (created if missing): call events to the calls topic, the others to
    the case-events topic, each keyed by the record it concerns; return how many were sent."""
    await ensure_topics(settings)
    names = TopicNames.of(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await producer.start()
    sent = 0
    try:
        pending: list[Any] = []
        for event in events:
            topic = names.calls if isinstance(event, CallEvent) else names.case_events
            pending.append(await producer.send(topic, encode_input(event), key=routing_key(event).encode()))
            if len(pending) >= batch:
                await asyncio.gather(*pending)
                sent += len(pending)
                pending = []
        await asyncio.gather(*pending)
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


def add_command(commands: Any) -> None:
    """Add ``slaflow produce`` to the CLI."""
    parser = commands.add_parser("produce", help="send JSON-lines events to the input topic as Avro")
    parser.add_argument("--events", required=True, help="JSON-lines event file, or - for stdin")
    parser.add_argument("--bootstrap", dest="kafka_bootstrap", help="Kafka bootstrap servers [KAFKA_BOOTSTRAP]")
    parser.add_argument("--topic-prefix", help="prefix of the topic names [SLAFLOW_TOPIC_PREFIX]")
    parser.set_defaults(func=_cmd_produce)


def _cmd_produce(args: argparse.Namespace) -> int:
    settings = Settings.from_env().replace(kafka_bootstrap=args.kafka_bootstrap, topic_prefix=args.topic_prefix)
    if not settings.kafka_bootstrap:
        print("slaflow produce: error: no Kafka broker: set KAFKA_BOOTSTRAP or --bootstrap", file=sys.stderr)
        return 2
    try:
        handle: BinaryIO = sys.stdin.buffer if args.events == "-" else Path(args.events).open("rb")  # noqa: SIM115
    except OSError as exc:
        print(f"slaflow produce: error: cannot read {args.events}: {exc.strerror}", file=sys.stderr)
        return 2
    started = time.monotonic()
    with handle:
        sent = asyncio.run(produce(settings, read_events(handle, args.events, sys.stderr)))
    elapsed = time.monotonic() - started
    names = TopicNames.of(settings)
    print(f"sent {sent} events to {names.case_events} and {names.calls} in {elapsed:.1f} s", file=sys.stderr)
    return 0
