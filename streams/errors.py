"""The one root exception of slaflow.

Every error slaflow raises on purpose derives from :class:`SlaflowError`. The
class-level ``retriable`` flag tells a caller what to do with the input that
caused it: retry later (the world may change: a broker coming up, a ClickHouse
server back online) or give up on that input for good (dead-letter it, or stop
with a clear message, as the CLI does for bad configuration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class SlaflowError(Exception):
    """Root of every slaflow error.

    ``retriable`` is ``False`` unless a subclass says otherwise: an error is
    permanent until proven transient, so that bad input is dead-lettered rather
    than retried forever.
    """

    retriable: ClassVar[bool] = False


class ConfigError(SlaflowError):
    """Settings, flags or files that cannot be used as given. Not retriable."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a configuration file.

    ``path`` locates it inside the file, dotted with list indexes in brackets
    (``policies[2].kpis[0].target``); ``message`` says what was expected and
    what was found.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PolicyError(ConfigError):
    """A policy (or calendar) file that cannot be used: every problem found in it, at once."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {source}: {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")
