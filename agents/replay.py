"""``slaflow replay``: run a policy file over a file of past events, offline, and write what it would have emitted.

The events file holds one JSON event per line (see :func:`streams.events.parse_event`); the outputs are JSON
lines (:meth:`streams.outputs.Output.to_json`). Lines that cannot be used (invalid JSON, an invalid event, an
event the core rejects) are reported on stderr with their line number, written to the rejects file, and
skipped: the replay goes on. Time is the events' own (:class:`streams.replay.Replayer`), so a month of events
replays in seconds and gives the outputs the live pipeline would have given.

Exit codes: 0 when the replay ran (even with rejected lines), 2 for an unusable policy file or an events,
output or rejects file that cannot be opened, 1 when writing the outputs failed (a closed pipe), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Final

from agents.alerts import ALERT, TRANSITION, LinePrinter, in_time_order
from agents.options import add_settings, command, instant_arg, settings_from
from agents.runtime import tune_gc
from schemas.messages import alert_message, transition_message
from streams.core import EventRejected, SlaCore
from streams.errors import PolicyError
from streams.events import EventError, core_event, format_instant_ms, parse_event_line
from streams.outputs import Output, OutputKind
from streams.policy import load_policies
from streams.replay import Replayer

EXIT_OK: Final = 0
EXIT_WRITE: Final = 1
EXIT_CONFIG: Final = 2
EXIT_INTERRUPTED: Final = 130
MAX_PRINTED_REJECTS: Final = 20
"""Rejected lines reported on stderr; the rest are only counted (all of them are in the rejects file)."""
REDRAW_S: Final = 0.2
"""The progress bar is redrawn at most this often."""
STDIN_REJECTS: Final = "replay.rejects.jsonl"


def add_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` subcommand to the ``slaflow`` parser; its ``func`` returns the exit code."""
    parser = command(
        subparsers,
        "replay",
        "run a policy file over a file of past events (JSON lines) and write the outputs",
        "Replay past events through the SLA core with the events' own time and write every output (KPI "
        "transitions, warnings, breaches, escalations) as JSON lines. Unusable lines are reported, written to "
        "the rejects file and skipped.",
    )
    add_settings(parser, ("policies",))
    parser.add_argument("--events", required=True, metavar="FILE", help="events, one JSON object per line ('-': stdin)")
    parser.add_argument(
        "--until",
        type=instant_arg,
        default=None,
        metavar="INSTANT",
        help="after the last event, let time run to INSTANT (now, ISO 8601 with an offset, or UTC epoch ms) and "
        "fire every deadline due by then",
    )
    parser.add_argument("--out", default=None, metavar="FILE", help="outputs, one JSON per line (default: stdout)")
    parser.add_argument(
        "--rejects",
        default=None,
        metavar="FILE",
        help=f"rejected lines (default: <events file>.rejects.jsonl; {STDIN_REJECTS} for stdin)",
    )
    parser.add_argument(
        "--format",
        choices=("json", "text"),
        default="json",
        help="json: one JSON object per output; text: one line per output for people, as `slaflow alerts` shows "
        "them (instants in --tz)",
    )
    add_settings(parser, ("display_tz",))
    parser.add_argument("--quiet", action="store_true", help="no progress bar and no summary (errors still shown)")
    parser.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    """Run ``slaflow replay`` with parsed ``args``; return the exit code."""
    settings = settings_from(args)
    try:
        policies = load_policies(settings.policies)
    except PolicyError as exc:
        _error(str(exc))
        return EXIT_CONFIG
    stdin = args.events == "-"
    source = "<stdin>" if stdin else str(args.events)
    rejects_path = Path(args.rejects or (STDIN_REJECTS if stdin else f"{args.events}.rejects.jsonl"))
    for flag, target in (("--out", args.out), ("--rejects", rejects_path)):
        if target is not None and not stdin and _same_file(target, args.events):
            _error(f"{flag} {target} is the events file {source}: it would be overwritten")
            return EXIT_CONFIG
    with ExitStack() as stack:
        try:
            events = sys.stdin.buffer if stdin else stack.enter_context(open(args.events, "rb"))
        except OSError as exc:
            _error(f"cannot read the events file {source}: {exc.strerror or exc}")
            return EXIT_CONFIG
        try:
            out = sys.stdout if args.out is None else stack.enter_context(open(args.out, "w", encoding="utf-8"))
        except OSError as exc:
            _error(f"cannot write the output file {args.out}: {exc.strerror or exc}")
            return EXIT_CONFIG
        try:
            rejects = stack.enter_context(rejects_path.open("w", encoding="utf-8"))
        except OSError as exc:
            _error(f"cannot write the rejects file {rejects_path}: {exc.strerror or exc}")
            return EXIT_CONFIG
        tune_gc()

        def write_line(line: str) -> None:
            out.write(line + "\n")

        lines = LinePrinter(settings.display_zone, write_line) if args.format == "text" else None
        run = _Run(Replayer(SlaCore(policies)), source, out, rejects, rejects_path, quiet=args.quiet, lines=lines)
        return run.execute(events, _file_size(events), args.until)
    return EXIT_OK  # pragma: no cover - unreachable (mypy cannot see that ExitStack does not swallow)


def _same_file(first: str | Path, second: str | Path) -> bool:
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False


class _Run:
    """One replay: reads lines, feeds the replayer, writes outputs and rejects, reports on stderr."""

    def __init__(
        self,
        replayer: Replayer,
        source: str,
        out: IO[str],
        rejects: IO[str],
        rejects_path: Path,
        *,
        quiet: bool,
        lines: LinePrinter | None = None,
    ) -> None:
        self.lines = lines
        """Text output for people (``--format text``); JSON lines when ``None``."""
        self.replayer = replayer
        self.source = source
        self.out = out
        self.rejects = rejects
        self.rejects_path = rejects_path
        self.quiet = quiet
        self.read = 0
        self.no_case = 0  # calls that belong to no case: valid, but nothing for the SLA state
        self.rejected: Counter[str] = Counter()
        self.progress = Progress(sys.stderr) if not quiet and sys.stderr.isatty() else None

    def execute(self, events: IO[bytes], size: int | None, until_ms: int | None) -> int:
        started = time.monotonic()
        code = EXIT_OK
        try:
            for number, raw, position in _lines(events):
                self.line(number, raw)
                if self.progress is not None:
                    self.progress.update(self.read, position, size)
            if until_ms is not None and until_ms < self.replayer.watermark_ms and not self.quiet:
                last = format_instant_ms(self.replayer.watermark_ms)
                until = format_instant_ms(until_ms)
                print(
                    f"slaflow replay: note: --until {until} is before the latest event ({last}); ignored",
                    file=sys.stderr,
                )
            self.write(self.replayer.finish(until_ms))
            if self.lines is not None:
                self.lines.flush()
            self.out.flush()
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except BrokenPipeError:
            # The reader of our output went away (`| head`): stop; point stdout at /dev/null so that the flush at
            # exit does not fail again (as the Python documentation of SIGPIPE recommends).
            if self.out is sys.stdout:
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = EXIT_WRITE
        except _ReadError as exc:
            self._clear()
            _error(f"cannot read the events file {self.source}: {exc}")
            return EXIT_CONFIG
        except OSError as exc:
            self._clear()
            _error(f"cannot write the outputs or rejects: {exc}")
            return EXIT_WRITE
        self._clear()
        if not self.quiet:
            stopped = {EXIT_INTERRUPTED: "interrupted", EXIT_WRITE: "stopped (output closed)"}.get(code, "")
            print(self.summary(time.monotonic() - started, stopped=stopped), file=sys.stderr)
        return code

    def _clear(self) -> None:
        if self.progress is not None:
            self.progress.clear()

    def line(self, number: int, raw: bytes) -> None:
        if not raw.strip():
            return
        self.read += 1
        try:
            event = core_event(parse_event_line(raw))
            if event is None:
                self.no_case += 1
                return
            outputs = self.replayer.feed(event)
        except (EventError, EventRejected) as exc:
            self.reject(number, raw.decode("utf-8", "replace"), exc.reason, exc.detail)
            return
        self.write(outputs)

    def write(self, outputs: list[Output]) -> None:
        if self.lines is not None:
            shown = [
                (ALERT, alert_message(o, o.at_ms)) if o.is_alert else (TRANSITION, transition_message(o, o.visible_ms))
                for o in outputs
            ]
            for message_type, message in in_time_order(shown):
                self.lines.message(message_type, message)
            return
        write = self.out.write
        for output in outputs:
            write(json.dumps(output.to_json(), ensure_ascii=False, separators=(",", ":")))
            write("\n")

    def reject(self, number: int, text: str, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        total = sum(self.rejected.values())
        record = {"line": number, "reason": reason, "detail": detail, "text": text.rstrip("\r\n")}
        self.rejects.write(json.dumps(record, ensure_ascii=False) + "\n")
        if total <= MAX_PRINTED_REJECTS:
            message = f"{self.source}:{number}: {reason}: {detail}"
        elif total == MAX_PRINTED_REJECTS + 1:
            message = f"{self.source}: more rejected lines are not shown here; all are in {self.rejects_path}"
        else:
            return
        self._clear()
        print(message, file=sys.stderr)

    def summary(self, elapsed_s: float, *, stopped: str = "") -> str:
        replayer = self.replayer
        rejected = sum(self.rejected.values())
        lines = [
            f"slaflow replay: {stopped + ' after ' if stopped else ''}{self.read:,} events read from "
            f"{self.source}, {replayer.applied:,} applied, {rejected:,} rejected"
            + (f" ({_by_count(self.rejected)})" if rejected else "")
            + (f", {self.no_case:,} skipped (no_case: calls without a case)" if self.no_case else ""),
        ]
        if rejected > MAX_PRINTED_REJECTS:
            lines.append(f"  {rejected - MAX_PRINTED_REJECTS:,} more rejected lines than shown above")
        if rejected:
            lines.append(f"  rejected lines written to {self.rejects_path}")
        kinds = [(kind.value, replayer.outputs[kind.value]) for kind in OutputKind if replayer.outputs[kind.value]]
        outputs = sum(replayer.outputs.values())
        lines.append(f"  {outputs:,} outputs" + (f": {', '.join(f'{k} {n:,}' for k, n in kinds)}" if kinds else ""))
        if replayer.applied and not replayer.outputs[OutputKind.KPI_STARTED.value]:
            lines.append(
                "  no KPI started: no policy's applies_when and start condition held for these events (check the "
                "events' entity_type, attributes and kind against the policy file)"
            )
        rate = self.read / elapsed_s if elapsed_s > 0 else 0.0
        lines.append(f"  took {elapsed_s:.2f} s, {rate:,.0f} events/s")
        return "\n".join(lines)


def _by_count(counter: Counter[str]) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in counter.most_common())


def _error(message: str) -> None:
    print(f"slaflow replay: error: {message}", file=sys.stderr)


class _ReadError(Exception):
    """Reading the events file failed midway (an I/O error, not a bad line)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or str(cause))


def _lines(events: IO[bytes]) -> Iterator[tuple[int, bytes, int]]:
    """``(line number from 1, raw line, bytes read so far)``; an I/O error becomes :class:`_ReadError`."""
    position = 0
    number = 0
    lines = iter(events)
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except OSError as exc:
            raise _ReadError(exc) from exc
        number += 1
        position += len(raw)
        yield number, raw, position


def _file_size(stream: IO[bytes]) -> int | None:
    """The size of a regular file (for the percentage and time left), else ``None``."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


# ---------------------------------------------------------------------------------------------------------------
# Progress bar (stderr, only on a terminal)


def format_progress(events: int, elapsed_s: float, done_bytes: int, total_bytes: int | None, width: int = 24) -> str:
    """One line of progress: events done, events/s and, when the size is known, a bar, percentage and time left.

    Pure, for tests: ``format_progress(50_000, 2.0, 500, 1000)`` ->
    ``"[############------------]  50.0%  50,000 events  25,000 events/s  0:02 left"``.
    """
    rate = events / elapsed_s if elapsed_s > 0 else 0.0
    counts = f"{events:,} events  {rate:,.0f} events/s"
    if not total_bytes:
        return counts
    share = min(max(done_bytes / total_bytes, 0.0), 1.0)
    filled = round(share * width)
    bar = "[" + "#" * filled + "-" * (width - filled) + "]"
    if done_bytes > 0 and elapsed_s > 0:
        left = _format_seconds(elapsed_s * (total_bytes - done_bytes) / done_bytes)
    else:
        left = "?"
    return f"{bar} {share * 100:5.1f}%  {counts}  {left} left"


def _format_seconds(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Redraws :func:`format_progress` in place with ``\\r``, at most every :data:`REDRAW_S` seconds."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.last_draw = 0.0
        self.shown = 0

    def update(self, events: int, done_bytes: int, total_bytes: int | None) -> None:
        now = time.monotonic()
        if now - self.last_draw < REDRAW_S:
            return
        self.last_draw = now
        text = format_progress(events, now - self.started, done_bytes, total_bytes)
        self.stream.write("\r" + text + " " * max(0, self.shown - len(text)))
        self.stream.flush()
        self.shown = len(text)

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0
            self.last_draw = 0.0
