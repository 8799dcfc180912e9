"""Command-line options shared by the ``slaflow`` commands: one flag per setting, one way to read them back.

Every setting's flag, metavariable and choices are declared once, on the setting
(:class:`agents.settings.Settings`); a command lists the settings it uses
(:func:`add_settings`), so it shows exactly those flags, under the same name
in every command, with the environment variable and the default in ``--help``.
:func:`settings_from` reads the environment, then the flags given, and reports
an unusable value under the name the user typed (``--partitions`` or
``SLAFLOW_PARTITIONS``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import Any, Final

from agents.settings import Settings
from streams.events import parse_instant_ms

KAFKA: Final = ("kafka_bootstrap", "topic_prefix")
"""The settings of every command that talks to Kafka."""
INPUT_TOPICS: Final = ("topic_case_events", "topic_calls")
OUTPUT_TOPICS: Final = ("topic_alerts", "topic_transitions", "topic_durations", "topic_dead_letters")
CLICKHOUSE: Final = ("clickhouse_url", "clickhouse_database", "data_dir")
"""The settings of every command that reads or writes ClickHouse (``data_dir`` holds the embedded engine)."""


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` with each option's default (when it has one worth showing), and descriptions wrapped paragraph
    by paragraph (a blank line in a description starts a new one)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n\n".join(fill(paragraph, width, indent) for paragraph in text.split("\n\n") if paragraph.strip())

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        nothing = default is None or default is False or default in ([], "", argparse.SUPPRESS)
        if "(default" in text or nothing or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def command(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand of ``commands`` with its one-line ``summary`` (in ``slaflow --help``) and ``description``
    (in its own ``--help``), showing defaults."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=description, formatter_class=HelpFormatter
    )
    return parser


def add_settings(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add the flags of the settings ``names`` to ``parser``, in the order given.

    The flags default to ``None`` (not given); ``--help`` shows the environment variable and the default that
    applies now (the variable's value if it is set).
    """
    by_name = {f.name: f for f in fields(Settings)}
    current = os.environ
    for name in names:
        f = by_name[name]
        meta = f.metadata
        env = meta["env"]
        default = current.get(env, str(f.default))
        shown = f"{env}; default: {default}" if default else env
        kind = type(f.default)
        parser.add_argument(
            meta["flag"],
            dest=name,
            metavar=meta["metavar"] or None,
            choices=meta["choices"] or None,
            type=_argument_type(kind),
            default=None,
            help=f"{meta['doc']} [{shown}]",
        )


def settings_from(args: argparse.Namespace, **fixed: Any) -> Settings:
    """The settings of a parsed command line: the environment, then the setting flags that were given, then
    ``fixed`` (what the command itself decides). An unusable value is reported under the flag's name if it came
    from a flag, else under its environment variable."""
    flags = {f.metadata["flag"]: f.name for f in fields(Settings) if f.metadata["flag"]}
    given = {name: getattr(args, name) for name in flags.values() if getattr(args, name, None) is not None}
    named = {name: flag for flag, name in flags.items() if name in given}
    return Settings.from_env().replace(named, **given).replace(**fixed)


def _argument_type(kind: type) -> Any:
    """The argparse ``type`` of a setting of type ``kind``: argparse then names the flag in its error."""
    if kind is int:
        return int
    if kind is float:
        return float
    if kind is Path:
        return Path
    return str


def _bounded(kind: type[int] | type[float], low: float, *, inclusive: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: a ``kind`` of at least ``low`` (``inclusive``) or above it, named ``what`` in errors."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value < low or (value == low and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


positive_int: Final = _bounded(int, 1, inclusive=True, what="a whole number of at least 1")
positive_number: Final = _bounded(float, 0, inclusive=False, what="a number above 0")
non_negative_number: Final = _bounded(float, 0, inclusive=True, what="a number of at least 0")


def instant_arg(text: str) -> int:
    """An argparse type: an instant as UTC epoch ms, from ``now``, ISO 8601 with an offset, or epoch ms."""
    if text.strip().lower() == "now":
        return int(time.time() * 1000)
    ms = parse_instant_ms(text)
    if ms is None:
        raise argparse.ArgumentTypeError(
            f"expected now, ISO 8601 with an offset (2026-03-02T10:00:00Z) or UTC epoch milliseconds, got {text!r}"
        )
    return ms
