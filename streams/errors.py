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
from enum import StrEnum
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


class Unavailable(SlaflowError):
    """A service slaflow needs (Kafka, ClickHouse) cannot be reached. Retriable: it may come back; a long-running
    process waits for it, and a command that meets it at its start says so and stops as for a configuration
    mistake (the address, or the service, is for the user to fix)."""

    retriable = True


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
        count = len(self.problems)
        super().__init__(f"{source}: {count} problem{'' if count == 1 else 's'}:\n{lines}")


class DeadLetterReason(StrEnum):
    """Why a worker set an input message aside: the ``reason`` of every dead letter, in one place.

    Each value is documented for users (what it means, what to do) in ``docs/events.md``.
    """

    UNDECODABLE = "undecodable"
    """Not a message of a known InputMessage schema: bad bytes, an unknown writer fingerprint, a tombstone."""
    SCHEMA_VIOLATION = "schema_violation"
    """Decodable, but the content breaks a rule the schema cannot express (an empty id, an unknown kind, ...)."""
    KEY_MISMATCH = "key_mismatch"
    """The Kafka key is not the event's routing key (the record whose state it changes)."""
    LATE = "late"
    """Older than the partition's watermark minus the policy file's maximum lateness."""
    NO_POLICY = "no_policy"
    """No policy covers the record, and the policy file says ``unmatched: reject``."""
    UNKNOWN_POLICY_VERSION = "unknown_policy_version"
    """The record's stored state is pinned to a policy version this worker does not have (an edited policy file,
    or a fresh data directory without the archived versions); its events wait here until one that has it runs."""
