"""``slaflow produce``: JSON-lines events into the input topics as Avro, keyed by their routing key.

Lines are parsed with :func:`streams.events.parse_event` (the format of
``slaflow replay``: record, activity and call events), and each message is
keyed by :func:`streams.events.routing_key` (the record whose state it
changes). A line that is not a valid event is reported on stderr with its line
number and reason and skipped, and the run goes on. Sends are
batched by the producer (``linger_ms``) and awaited together, never one by one.

It writes only to topics that exist (a typo in the prefix must not create a
new set of topics) unless ``--create-topics`` says so, and it says where its
events went: per topic, how many. Interrupted (Ctrl-C), it says how many were
sent (acknowledged by the broker) and exits with 130.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final, TextIO

from aiokafka import AIOKafkaProducer

from agents.options import INPUT_TOPICS, KAFKA, add_settings, command, settings_from
from agents.settings import Settings
from agents.topics import TopicNames, require_topics, start_client
from schemas.codec import encode_input
from streams.errors import ConfigError
from streams.events import CallEvent, EventError, InputEvent, parse_event_line, routing_key

MAX_PRINTED_REJECTS: Final = 20
"""Rejected lines reported on stderr; the rest are only counted."""
EXIT_INTERRUPTED: Final = 130


class LineReader:
    """Parses JSON lines into events, reporting each invalid one on ``errors`` with its line number (the first
    :data:`MAX_PRINTED_REJECTS`; the others are counted at the end); ``rejected`` counts them."""

    def __init__(self, source: str, errors: TextIO) -> None:
        self.source = source
        self.errors = errors
        self.number = 0
        self.rejected = 0

    def parse(self, line: bytes) -> InputEvent | None:
        self.number += 1
        if not line.strip():
            return None
        try:
            return parse_event_line(line)
        except EventError as exc:
            self.rejected += 1
            if self.rejected <= MAX_PRINTED_REJECTS:
                print(f"{self.source}:{self.number}: {exc}", file=self.errors)
            return None

    def finish(self) -> None:
        if self.rejected > MAX_PRINTED_REJECTS:
            print(f"{self.source}: {self.rejected - MAX_PRINTED_REJECTS} more rejected lines", file=self.errors)


def read_events(lines: Iterable[bytes], parser: LineReader) -> Iterator[InputEvent]:
    """The valid events of JSON ``lines``; each invalid one is reported by ``parser``."""
    for line in lines:
        event = parser.parse(line)
        if event is not None:
            yield event
    parser.finish()


async def read_events_async(lines: AsyncIterator[bytes], parser: LineReader) -> AsyncIterator[InputEvent]:
    """:func:`read_events` of lines that arrive over time (a pipe): the event loop keeps sending meanwhile."""
    async for line in lines:
        event = parser.parse(line)
        if event is not None:
            yield event
    parser.finish()


async def pipe_lines(pipe: BinaryIO) -> AsyncIterator[bytes]:
    """The lines of a pipe or terminal as they arrive, without blocking the event loop (a process writing one
    event a second, such as ``slaflow simulate --speed 1``, has each sent at once, not when the next comes)."""
    reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    while line := await reader.readline():
        yield line


async def _each(events: Iterable[InputEvent] | AsyncIterator[InputEvent]) -> AsyncIterator[InputEvent]:
    if isinstance(events, AsyncIterator):
        async for event in events:
            yield event
    else:
        for event in events:
            yield event


async def produce(
    settings: Settings,
    events: Iterable[InputEvent] | AsyncIterator[InputEvent],
    batch: int = 10_000,
    *,
    create_topics: bool = True,
    sent: Counter[str] | None = None,
) -> int:
    """Send ``events`` to the input topics: call events to the calls topic, the others to the case-events topic,
    each keyed by the record it concerns; return how many were sent.

    ``sent`` counts, per topic, the events the broker acknowledged (kept up to date, so that an interrupted run
    can say how far it got). Missing topics are created only with ``create_topics``
    (:func:`agents.topics.require_topics`).
    """
    names = TopicNames.of(settings)
    await require_topics(settings, names.inputs, create=create_topics)
    counted: Counter[str] = Counter() if sent is None else sent
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
        max_batch_size=256 * 1024,
    )  # fmt: skip
    await start_client(producer, settings.kafka_bootstrap)
    try:
        pending: list[asyncio.Future[Any]] = []
        async for event in _each(events):
            topic = names.calls if isinstance(event, CallEvent) else names.case_events
            future = await producer.send(topic, encode_input(event), key=routing_key(event).encode())
            future.add_done_callback(lambda done, topic=topic: _count(done, topic, counted))
            pending.append(future)
            if len(pending) >= batch:
                await asyncio.gather(*pending)  # a failed send raises here
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sum(counted.values())


def _count(done: asyncio.Future[Any], topic: str, sent: Counter[str]) -> None:
    """Count an acknowledged send as it is acknowledged (a Ctrl-C then reports exactly what went out)."""
    if not done.cancelled() and done.exception() is None:
        sent[topic] += 1


def add_command(commands: Any) -> None:
    """Add ``slaflow produce`` to the CLI."""
    parser = command(
        commands,
        "produce",
        "send JSON-lines events to the input topics as Avro",
        "Read events (one JSON object per line, the format of `slaflow replay`), encode them as Avro and send "
        "them to the input topics, each keyed by the record it concerns: call events to PREFIX.calls, the others "
        "to PREFIX.case-events. Lines that are not valid events are reported and skipped. Writes only to topics "
        "that exist, unless --create-topics.",
    )
    parser.add_argument("--events", required=True, metavar="FILE", help="JSON-lines event file, or - for stdin")
    parser.add_argument(
        "--create-topics", action="store_true", help="create slaflow's topics if they are missing (default: refuse)"
    )
    add_settings(parser, (*KAFKA, *INPUT_TOPICS, "partitions", "replication_factor"))
    parser.set_defaults(func=_cmd_produce)


def _cmd_produce(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka broker: set KAFKA_BOOTSTRAP or pass --bootstrap HOST:PORT")
    try:
        handle: BinaryIO = sys.stdin.buffer if args.events == "-" else Path(args.events).open("rb")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {args.events}: {exc.strerror or exc}") from exc
    started = time.monotonic()
    sent: Counter[str] = Counter()
    reader = LineReader(args.events, sys.stderr)
    streamed = handle is sys.stdin.buffer and not stat.S_ISREG(os.fstat(handle.fileno()).st_mode)
    try:
        with handle:
            events = read_events_async(pipe_lines(handle), reader) if streamed else read_events(handle, reader)
            asyncio.run(produce(settings, events, create_topics=args.create_topics, sent=sent))
    except KeyboardInterrupt:
        print(f"slaflow produce: interrupted: {_where(sent, reader)} before the interruption", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"slaflow produce: {_where(sent, reader)} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0


def _where(sent: Counter[str], reader: LineReader) -> str:
    """``sent 1,812 events (1,700 to P.case-events, 112 to P.calls), 2 lines rejected``."""
    total = sum(sent.values())
    parts = ", ".join(f"{n:,} to {topic}" for topic, n in sorted(sent.items(), key=lambda item: (-item[1], item[0])))
    rejected = reader.rejected
    return (
        f"sent {total:,} event{'s' if total != 1 else ''}"
        + (f" ({parts})" if parts else "")
        + (f", {rejected:,} line{'s' if rejected != 1 else ''} rejected (reported above)" if rejected else "")
    )
