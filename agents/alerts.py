"""``slaflow alerts``: read what slaflow emits, one line per message for people, or JSON for machines.

The output topics are Avro single-object encoded, which no console tool shows. This command follows the alerts
topic (and, by flag, the KPI transitions, the measured durations and the dead letters) as a ``read_committed``
reader with no consumer group (it commits nothing and disturbs no one), from now on or from the beginning, and
prints each message as one line: instants in the display time zone (``--tz``), durations in hours and minutes.
``--json`` prints each message as one JSON object instead, instants kept as UTC epoch milliseconds.

The line formats are shared with the demo (``slaflow run``): :class:`LinePrinter` turns messages into lines, and
folds an escalation that fires at the very instant of its breach (``after: 0s``) into the breach's line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import IO, Any, Final

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from agents.options import KAFKA, OUTPUT_TOPICS, add_settings, command, settings_from
from agents.settings import Settings
from agents.topics import TopicNames, require_topics, start_client, topic_partitions
from schemas.codec import DEAD_LETTER, KPI_DURATION, KPI_TRANSITION, SLA_ALERT, CodecError
from streams.display import format_relative, format_span, format_when
from streams.errors import ConfigError
from streams.outputs import ALERT_KINDS, OutputKind

EXIT_INTERRUPTED: Final = 130
EXIT_OUTPUT_CLOSED: Final = 1
PREVIEW_BYTES: Final = 48
"""Bytes of a dead letter's value shown in its line (all of them with --json)."""

ALERT: Final = "alert"
TRANSITION: Final = "transition"
DURATION: Final = "duration"
DEAD_LETTER_TYPE: Final = "dead_letter"
CODECS: Final = {ALERT: SLA_ALERT, TRANSITION: KPI_TRANSITION, DURATION: KPI_DURATION, DEAD_LETTER_TYPE: DEAD_LETTER}
KIND_TYPES: Final = {
    **{kind.value: ALERT if kind in ALERT_KINDS else TRANSITION for kind in OutputKind},
    "DURATION": DURATION,
    "DEAD_LETTER": DEAD_LETTER_TYPE,
}
"""Every kind ``--kind`` accepts, with the type of message (the topic) that carries it."""


@dataclass(frozen=True)
class Filters:
    """Which messages to show; ``None`` (or an empty set of kinds) shows all.

    ``kinds`` are alert kinds (``WARNING``, ``BREACH``, ``ESCALATION``), transition kinds (``KPI_STARTED``, ...),
    ``DURATION`` or ``DEAD_LETTER``; queue, owner and tier are the record's attributes (a dead letter has none,
    so those filters hide it); ``record`` is the record id (a dead letter's key).
    """

    kinds: frozenset[str] = frozenset()
    queue: str | None = None
    owner: str | None = None
    tier: str | None = None
    record: str | None = None

    def keep(self, kind: str, message: dict[str, Any]) -> bool:
        """Whether to show ``message`` of ``kind`` (see :func:`kind_of`)."""
        if self.kinds and kind not in self.kinds:
            return False
        if kind == "DEAD_LETTER":
            key = message.get("key")
            matches_record = self.record is None or (key is not None and key == self.record.encode())
            return matches_record and self.queue is None and self.owner is None and self.tier is None
        if self.record is not None and message["record_id"] != self.record:
            return False
        attributes = message.get("attributes", {})
        wanted = {"queue": self.queue, "owner": self.owner, "tier": self.tier}
        return all(value is None or attributes.get(name) == value for name, value in wanted.items())


def kind_of(message_type: str, message: dict[str, Any]) -> str:
    """The kind a filter and a line name: the alert's or transition's kind, ``DURATION`` or ``DEAD_LETTER``."""
    if message_type in (ALERT, TRANSITION):
        return str(message["kind"])
    return "DURATION" if message_type == DURATION else "DEAD_LETTER"


def _subject(m: dict[str, Any]) -> str:
    return f"{m['entity_type']} {m['record_id']} {m['kpi']} ({m['policy']})"


def _where(attributes: dict[str, str]) -> str:
    return " ".join(f"{name}={attributes.get(name, '-')}" for name in ("tier", "owner", "queue"))


def _actions(actions: list[dict[str, Any]]) -> str:
    """``notify owner (reminder), reassign supervisor_queue``: what the policy asks the CRM to do."""
    parts = []
    for action in actions:
        words = [action["type"].replace("_", " "), *action["targets"], *([action["value"]] if action["value"] else [])]
        what = " ".join(words)
        parts.append(f"{what} ({action['template']})" if action["template"] else what)
    return ", ".join(parts)


def alert_line(a: dict[str, Any], zone: tzinfo, escalations: Sequence[dict[str, Any]] = ()) -> str:
    """One alert as people read it; ``escalations`` are folded in (they fired at the breach's instant)."""
    kind = f"{a['kind']}#{a['level']}" if a["level"] else a["kind"]
    for escalation in escalations:
        kind += f"+ESCALATION#{escalation['level']}"
    if a["revoked"]:
        kind = f"REVOKED {kind}"
    elif a["revision"]:
        kind = f"{kind} (correction {a['revision']})"
    at = a["threshold_at_ms"]
    share = 100 * a["business_elapsed_ms"] / a["target_ms"] if a["target_ms"] else 0.0
    line = (
        f"{format_when(at, zone)}  {kind:<14} {_subject(a)}: {format_span(a['business_elapsed_ms'])} of "
        f"{format_span(a['target_ms'])} used ({share:.0f} %), deadline {format_relative(a['deadline_ms'], at, zone)}; "
        f"{_where(a['attributes'])}"
    )
    actions = [_actions(a["actions"])] + [
        f"escalation {e['level']}: {_actions(e['actions'])}" for e in escalations if e["actions"]
    ]
    shown = "; ".join(part for part in actions if part)
    return f"{line} -> {shown}" if shown else line


def transition_line(t: dict[str, Any], zone: tzinfo) -> str:
    """One KPI transition as people read it."""
    at, kind = t["at_ms"], t["kind"]
    deadline = "none while paused" if t["deadline_ms"] is None else format_relative(t["deadline_ms"], at, zone)
    used, target = format_span(t["business_elapsed_ms"]), format_span(t["target_ms"])
    detail = {
        "KPI_STARTED": f"target {target}, deadline {deadline}",
        "KPI_PAUSED": f"paused ({t['reason']}) after {used} of {target}",
        "KPI_RESUMED": f"resumed after {format_span(t['paused_ms'])} paused, deadline {deadline}",
        "KPI_SUCCEEDED": f"{'met late' if t['reason'] == 'met_late' else 'met'} after {used} of {target}",
        "KPI_CANCELLED": f"cancelled ({t['reason']}) after {used} of {target}",
        "KPI_RETARGETED": f"re-targeted ({t['reason']}): target {target}, deadline {deadline}",
        "KPI_REOPENED": f"reopened ({t['reason']}) with {used} of {target} used, deadline {deadline}",
    }.get(kind, kind)
    prefix = "REVOKED " if t["revoked"] else ""
    return f"{format_when(at, zone)}  {prefix}{kind:<14} {_subject(t)}: {detail}; {_where(t['attributes'])}"


def duration_line(d: dict[str, Any], zone: tzinfo) -> str:
    """One measured KPI instance as people read it."""
    overrun = ""
    if d["breached"] and d["deadline_ms"] is not None:
        overrun = f", {format_span(d['ended_at_ms'] - d['deadline_ms'])} past its deadline"
    return (
        f"{format_when(d['ended_at_ms'], zone)}  DURATION       {_subject(d)}: {d['outcome']}{overrun}; "
        f"{format_span(d['business_ms'])} business time of {format_span(d['target_ms'])}, "
        f"{format_span(d['wall_ms'])} wall, {format_span(d['paused_ms'])} paused"
    )


def preview(data: bytes | None, limit: int = PREVIEW_BYTES) -> str:
    """A safe look at bytes: printable ASCII as is, everything else (control characters too) as ``\\xNN``."""
    if data is None:
        return "(none)"
    shown = "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in data[:limit])
    return f"{len(data)} bytes: {shown}{'...' if len(data) > limit else ''}"


def dead_letter_line(d: dict[str, Any], zone: tzinfo) -> str:
    """One dead letter: why, where from, and a safe preview of the bytes."""
    key = preview(d["key"], 64).split(": ", 1)[-1] if d["key"] is not None else "(none)"
    return (
        f"{format_when(d['dead_lettered_at_ms'], zone)}  DEAD_LETTER    {d['reason']}: "
        f"{d['source_topic']}[{d['source_partition']}]@{d['source_offset']} key {key}: {d['detail']}; value "
        f"{preview(d['value'])}"
    )


def as_json(message_type: str, message: dict[str, Any]) -> str:
    """One message as a JSON line: its fields (times in UTC epoch ms) and ``type``; bytes as base64."""
    shown: dict[str, Any] = {"type": message_type}
    for name, value in message.items():
        if isinstance(value, bytes):
            shown[f"{name}_base64"] = base64.b64encode(value).decode()
        else:
            shown[name] = value
    return json.dumps(shown, ensure_ascii=False, separators=(",", ":"))


INSTANT_FIELDS: Final = {
    ALERT: "threshold_at_ms",
    TRANSITION: "at_ms",
    DURATION: "ended_at_ms",
    DEAD_LETTER_TYPE: "dead_lettered_at_ms",
}
"""The instant each type of message is shown at (and ordered by, within a fetched batch)."""


def in_time_order(batch: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The ``(type, message)`` pairs of one fetch in time order (partitions arrive interleaved); stable, so
    the messages of one instant keep their order (an escalation after its breach)."""
    return sorted(batch, key=lambda pair: pair[1][INSTANT_FIELDS[pair[0]]])


class LinePrinter:
    """Messages in, lines out. A BREACH is held until the next message (or :meth:`flush`) so that escalations
    firing at its very instant join its line instead of repeating it."""

    def __init__(self, zone: tzinfo, write: Callable[[str], None]) -> None:
        self.zone = zone
        self.write = write
        self._breach: dict[str, Any] | None = None
        self._escalations: list[dict[str, Any]] = []

    def message(self, message_type: str, message: dict[str, Any]) -> None:
        """Print ``message`` (or hold it, for a breach)."""
        if message_type == ALERT:
            held = self._breach
            if (
                held is not None
                and message["kind"] == "ESCALATION"
                and not message["revoked"]
                and _same_instant(held, message)
            ):
                self._escalations.append(message)
                return
            self.flush()
            if message["kind"] == "BREACH" and not message["revoked"]:
                self._breach = message
                return
            self.write(alert_line(message, self.zone))
            return
        self.flush()
        lines = {TRANSITION: transition_line, DURATION: duration_line, DEAD_LETTER_TYPE: dead_letter_line}
        self.write(lines[message_type](message, self.zone))

    def flush(self) -> None:
        """Print the held breach, with its escalations."""
        if self._breach is not None:
            self.write(alert_line(self._breach, self.zone, self._escalations))
            self._breach, self._escalations = None, []


def _same_instant(breach: dict[str, Any], escalation: dict[str, Any]) -> bool:
    fields = ("record_id", "kpi", "kpi_instance", "threshold_at_ms")
    return all(breach[name] == escalation[name] for name in fields)


def topics_to_read(names: TopicNames, types: set[str]) -> dict[str, str]:
    """``{topic: message type}`` of the message ``types`` to follow."""
    by_type = {
        ALERT: names.alerts,
        TRANSITION: names.transitions,
        DURATION: names.durations,
        DEAD_LETTER_TYPE: names.dead_letters,
    }
    return {topic: kind for kind, topic in by_type.items() if kind in types}


@dataclass
class Follow:
    """One run of ``slaflow alerts``: what to read, how to show it, where to write."""

    settings: Settings
    topics: dict[str, str]
    filters: Filters
    from_beginning: bool
    stop_at_end: bool
    json_lines: bool
    out: IO[str]
    shown: int = 0
    unreadable: int = 0

    async def run(self) -> None:
        """Read until interrupted or, with ``stop_at_end``, until the end the topics had when it started."""
        await require_topics(self.settings, list(self.topics), create=None)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        await start_client(admin, self.settings.kafka_bootstrap)
        try:
            partitions = await topic_partitions(admin, list(self.topics))
        finally:
            await admin.close()
        await start_client(consumer, self.settings.kafka_bootstrap)
        printer = LinePrinter(self.settings.display_zone, self._write)
        try:
            consumer.assign(partitions)
            ends = await consumer.end_offsets(partitions)
            starts = await consumer.beginning_offsets(partitions) if self.from_beginning else ends
            for tp in partitions:  # explicit offsets: seek_to_* races with the consumer's own first reset
                consumer.seek(tp, starts[tp])
            if not self.stop_at_end:
                where = "the beginning" if self.from_beginning else "now"
                print(f"slaflow alerts: following {', '.join(self.topics)} from {where} (Ctrl-C stops)",
                      file=sys.stderr, flush=True)  # fmt: skip
            while True:
                if self.stop_at_end and all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    break
                batch = await consumer.getmany(timeout_ms=200)
                if not batch:
                    printer.flush()
                shown = [
                    self._decoded(self.topics[tp.topic], r.value) for tp, records in batch.items() for r in records
                ]
                for message_type, message in in_time_order([pair for pair in shown if pair is not None]):
                    self.shown += 1
                    if self.json_lines:
                        self._write(as_json(message_type, message))
                    else:
                        printer.message(message_type, message)
        finally:
            printer.flush()
            await consumer.stop()

    def _decoded(self, message_type: str, value: bytes | None) -> tuple[str, dict[str, Any]] | None:
        """The message to show, or ``None`` (filtered out, or not slaflow's)."""
        try:
            message = CODECS[message_type].decode(value or b"")
        except CodecError:
            self.unreadable += 1  # not slaflow's: someone else wrote to the topic
            return None
        return (message_type, message) if self.filters.keep(kind_of(message_type, message), message) else None

    def _write(self, line: str) -> None:
        self.out.write(line + "\n")
        self.out.flush()


def add_command(commands: Any) -> None:
    """Add ``slaflow alerts`` to the CLI."""
    parser = command(
        commands,
        "alerts",
        "follow the alerts (and, by flag, transitions, durations, dead letters), one readable line each",
        "Print what the workers emit, as a read_committed reader with no consumer group: one line per alert "
        "(warning, breach, escalation, and corrections), with the record, the KPI, the business time used and "
        "the deadline in the display time zone. Follows new messages until Ctrl-C, or reads what is there and "
        "stops (--exit).",
    )
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest message, not at the end")
    parser.add_argument("--exit", action="store_true", help="stop at the end of the topics instead of following")
    parser.add_argument("--transitions", action="store_true", help="also KPI transitions (started, met, paused, ...)")
    parser.add_argument("--durations", action="store_true", help="also the measured duration of each ended KPI")
    parser.add_argument("--dead-letters", action="store_true", help="also dead letters: the reason, origin and bytes")
    parser.add_argument("--all", action="store_true", help="alerts, transitions, durations and dead letters")
    parser.add_argument("--json", action="store_true", help="one JSON object per message (UTC epoch ms, bytes base64)")
    parser.add_argument(
        "--kind",
        action="append",
        default=[],
        metavar="KIND",
        help="only this kind (repeatable): WARNING, BREACH, ESCALATION, KPI_STARTED, ..., DURATION, DEAD_LETTER",
    )
    parser.add_argument("--queue", default=None, metavar="QUEUE", help="only records in this queue")
    parser.add_argument("--owner", default=None, metavar="OWNER", help="only records with this owner")
    parser.add_argument("--tier", default=None, metavar="TIER", help="only records of this tier")
    parser.add_argument("--record", default=None, metavar="ID", help="only this record")
    add_settings(parser, (*KAFKA, *OUTPUT_TOPICS, "display_tz"))
    parser.set_defaults(func=cmd_alerts)


def cmd_alerts(args: argparse.Namespace) -> int:
    """Run ``slaflow alerts``; return the exit code."""
    settings = settings_from(args)
    if not settings.kafka_bootstrap:
        raise ConfigError("no Kafka broker: set KAFKA_BOOTSTRAP or pass --bootstrap HOST:PORT")
    kinds = set(_kinds(args.kind))
    unknown = sorted(kinds - KIND_TYPES.keys())
    if unknown:
        raise ConfigError(f"--kind {', '.join(unknown)}: unknown; expected one of {', '.join(KIND_TYPES)}")
    flagged = {
        TRANSITION: args.transitions,
        DURATION: args.durations,
        DEAD_LETTER_TYPE: args.dead_letters,
    }
    types = {KIND_TYPES[kind] for kind in kinds} or {ALERT}
    types |= {kind for kind, wanted in flagged.items() if wanted or args.all} | ({ALERT} if args.all else set())
    follow = Follow(
        settings,
        topics_to_read(TopicNames.of(settings), types),
        Filters(frozenset(kinds), args.queue, args.owner, args.tier, args.record),
        from_beginning=args.from_beginning,
        stop_at_end=args.exit,
        json_lines=args.json,
        out=sys.stdout,
    )
    try:
        asyncio.run(follow.run())
    except KeyboardInterrupt:
        print(f"slaflow alerts: stopped (Ctrl-C) after {_messages(follow.shown)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `slaflow alerts | head`: the reader has what it wanted
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return EXIT_OUTPUT_CLOSED
    if follow.unreadable:
        print(f"slaflow alerts: {_messages(follow.unreadable)} not slaflow's, skipped", file=sys.stderr)
    if not follow.shown:
        where = "since the beginning" if args.from_beginning else "new (--from-beginning shows what is there)"
        print(f"slaflow alerts: no message to show {where}", file=sys.stderr)
    return 0


def _messages(n: int) -> str:
    return f"{n:,} message{'' if n == 1 else 's'}"


def _kinds(given: list[str]) -> Iterator[str]:
    for text in given:
        yield from (part.strip().upper() for part in text.split(",") if part.strip())
