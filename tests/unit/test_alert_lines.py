"""What `slaflow alerts` (and the demo) print: one readable line per message, filters, folding, JSON."""

from __future__ import annotations

import base64
import json
from typing import Any
from zoneinfo import ZoneInfo

from agents.alerts import (
    ALERT,
    DEAD_LETTER_TYPE,
    DURATION,
    TRANSITION,
    Filters,
    LinePrinter,
    alert_line,
    as_json,
    dead_letter_line,
    duration_line,
    in_time_order,
    kind_of,
    preview,
    transition_line,
)

BERLIN = ZoneInfo("Europe/Berlin")
T = 1_777_885_200_000  # 2026-05-04T09:00:00Z, 11:00 in Berlin
H = 3_600_000


def alert(kind: str = "BREACH", level: int = 0, at: int = T, **extra: Any) -> dict[str, Any]:
    return {
        "alert_id": f"C-1/first_response/0/{kind}{level or ''}", "kind": kind, "record_id": "C-1",
        "entity_type": "case", "policy": "vip", "policy_version": "v1", "kpi": "first_response", "kpi_instance": 0,
        "started_at_ms": at - H, "threshold_at_ms": at, "deadline_ms": T, "fired_at_ms": at, "target_ms": H,
        "business_elapsed_ms": at - (T - H), "wall_elapsed_ms": H, "paused_ms": 0,
        "attributes": {"tier": "VIP", "owner": "ana", "queue": "billing"}, "level": level,
        "actions": [{"type": "notify", "targets": ["supervisor"], "value": "", "template": ""}],
        "revision": 0, "revoked": False, **extra,
    }  # fmt: skip


def transition(kind: str, **extra: Any) -> dict[str, Any]:
    return {
        "transition_id": f"C-1/first_response/0/{kind}", "kind": kind, "record_id": "C-1", "entity_type": "case",
        "policy": "vip", "policy_version": "v1", "kpi": "first_response", "kpi_instance": 0, "sequence": 0,
        "at_ms": T - H, "started_at_ms": T - H, "deadline_ms": T, "target_ms": H, "business_elapsed_ms": 0,
        "wall_elapsed_ms": 0, "paused_ms": 0, "reason": "", "actions": [], "attributes": {"queue": "billing"},
        "revision": 0, "revoked": False, "emitted_at_ms": T - H, **extra,
    }  # fmt: skip


def test_an_alert_line_names_the_record_the_kpi_the_time_used_and_the_deadline_in_the_zone() -> None:
    line = alert_line(alert(), BERLIN)
    assert line == (
        "Mon 2026-05-04 11:00 CEST  BREACH         case C-1 first_response (vip): 1 h of 1 h used (100 %), deadline "
        "11:00 CEST; tier=VIP owner=ana queue=billing -> notify supervisor"
    )
    assert alert_line(alert(revoked=True), BERLIN).split("  ")[1].startswith("REVOKED BREACH")
    assert "(correction 2)" in alert_line(alert(revision=2), BERLIN)


def test_an_escalation_at_its_breach_instant_joins_the_breach_line() -> None:
    lines: list[str] = []
    printer = LinePrinter(BERLIN, lines.append)
    printer.message(ALERT, alert())
    escalation = alert("ESCALATION", 1, actions=[{"type": "reassign", "targets": [], "value": "sv", "template": ""}])
    printer.message(ALERT, escalation)
    printer.message(ALERT, alert("ESCALATION", 2, at=T + 2 * H))  # later: a line of its own
    printer.flush()
    assert len(lines) == 2
    assert "BREACH+ESCALATION#1 case C-1" in lines[0] and lines[0].endswith("escalation 1: reassign sv")
    assert "  ESCALATION#2   " in lines[1] and "3 h of 1 h used" in lines[1]


def test_transition_and_duration_lines_say_what_happened_in_words() -> None:
    assert "KPI_STARTED    case C-1 first_response (vip): target 1 h, deadline 11:00 CEST" in transition_line(
        transition("KPI_STARTED"), BERLIN
    )
    paused = transition("KPI_PAUSED", reason="waiting_for_customer", deadline_ms=None, business_elapsed_ms=1_200_000)
    assert "paused (waiting_for_customer) after 20 min of 1 h" in transition_line(paused, BERLIN)
    late = transition("KPI_SUCCEEDED", reason="met_late", business_elapsed_ms=H + 60_000)
    assert "met late after 1 h 1 min of 1 h" in transition_line(late, BERLIN)
    duration = {
        "duration_id": "C-1/first_response/0", "record_id": "C-1", "entity_type": "case", "policy": "vip",
        "policy_version": "v1", "kpi": "first_response", "kpi_instance": 0, "sequence": 0, "outcome": "breached",
        "started_at_ms": T - H, "ended_at_ms": T + 5 * 60_000, "deadline_ms": T, "target_ms": H,
        "business_ms": H + 300_000, "wall_ms": H + 300_000, "paused_ms": 0, "breached": True, "attributes": {},
        "revision": 0, "revoked": False,
    }  # fmt: skip
    assert "breached, 5 min past its deadline; 1 h 5 min business time of 1 h" in duration_line(duration, BERLIN)


def test_a_dead_letter_shows_why_where_and_safe_bytes() -> None:
    letter = {
        "reason": "undecodable", "detail": "not an InputMessage", "source_topic": "p.case-events",
        "source_partition": 1, "source_offset": 604, "key": b"C-1", "value": b"\x00\x1b[31mred\x07\\" + b"x" * 60,
        "dead_lettered_at_ms": T,
    }  # fmt: skip
    line = dead_letter_line(letter, BERLIN)
    assert "DEAD_LETTER    undecodable: p.case-events[1]@604 key C-1: not an InputMessage" in line
    assert "\x1b" not in line and "\x07" not in line and "\\x1b[31mred\\x07\\x5c" in line  # no terminal control
    assert "71 bytes" in line and line.endswith("...")
    assert preview(None) == "(none)"


def test_filters_by_kind_attributes_and_record() -> None:
    keep = Filters(kinds=frozenset({"BREACH"}), queue="billing")
    assert keep.keep("BREACH", alert()) and not keep.keep("WARNING", alert("WARNING"))
    assert not Filters(queue="sales").keep("BREACH", alert())
    assert Filters(record="C-1").keep("KPI_STARTED", transition("KPI_STARTED"))
    letter = {"key": b"C-1"}
    assert Filters(record="C-1").keep("DEAD_LETTER", letter) and not Filters(queue="billing").keep(
        "DEAD_LETTER", letter
    )
    assert kind_of(DURATION, {}) == "DURATION" and kind_of(DEAD_LETTER_TYPE, {}) == "DEAD_LETTER"


def test_json_keeps_epoch_milliseconds_and_bytes_as_base64() -> None:
    shown = json.loads(as_json(DEAD_LETTER_TYPE, {"reason": "late", "key": b"C-1", "dead_lettered_at_ms": T}))
    assert shown == {"type": "dead_letter", "reason": "late", "key_base64": base64.b64encode(b"C-1").decode(),
                     "dead_lettered_at_ms": T}  # fmt: skip


def test_a_fetched_batch_is_shown_in_time_order() -> None:
    batch = [(ALERT, alert(at=T + H)), (TRANSITION, transition("KPI_STARTED")), (ALERT, alert(at=T))]
    assert [m.get("threshold_at_ms", m.get("at_ms")) for _, m in in_time_order(batch)] == [T - H, T, T + H]
