"""What flows into the SLA core: record events and the passage of time.

Times are UTC epoch milliseconds (``int``). The core never reads a clock: an
event says when it happened, and :class:`Tick` says how far time has advanced
(the watermark), so a replay of last month runs exactly like a live stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """Something that happened to a CRM record (a case, a lead, an e-mail activity, ...).

    ``attributes`` is the record's state as of the event (tier, priority,
    owner, queue, status, channel, custom fields): policies choose targets
    from it and alerts carry it.
    """

    event_id: str
    record_id: str
    entity_type: str
    kind: str
    occurred_at_ms: int
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has reached ``at_ms`` (UTC epoch milliseconds): fire every threshold due by then."""

    at_ms: int
