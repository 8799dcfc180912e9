"""The minimal SLA step functions: wall-clock KPIs started, stopped, cancelled and fired by time."""

import json

from streams.events import RecordEvent
from streams.outputs import AlertKind
from streams.policy import parse_policies
from streams.record_state import KpiState, RecordState, SlaCore

T0 = 1_700_000_000_000
S, M = 1000, 60_000

POLICIES = parse_policies(
    {
        "version": "v1",
        "policies": [
            {
                "name": "vip",
                "applies_when": {"entity_type": "case", "tier": "VIP"},
                "kpis": [
                    {
                        "name": "first_response",
                        "target": "1h",
                        "warning": "30m",
                        "start_on": ["created"],
                        "stop_on": ["first_response"],
                        "cancel_on": ["cancelled"],
                    },
                ],
            }
        ],
    }
)


def created(at: int = T0, record: str = "C-1") -> RecordEvent:
    return RecordEvent(f"{record}-c", record, "case", "created", at, {"tier": "VIP", "owner": "ana"})


def test_warning_then_breach_fire_at_their_instants() -> None:
    core = SlaCore(POLICIES)
    state, out = core.apply(None, created())
    assert out == []
    assert state.next_due_ms() == T0 + 30 * M
    assert core.advance(state, T0 + 30 * M - 1) == []
    [warning] = core.advance(state, T0 + 30 * M)
    assert (warning.kind, warning.threshold_at_ms, warning.business_elapsed_ms) == (
        AlertKind.WARNING,
        T0 + 30 * M,
        30 * M,
    )
    assert warning.alert_id == "C-1/first_response/0/WARNING"
    assert warning.attributes["owner"] == "ana"
    [breach] = core.advance(state, T0 + 90 * M)
    assert (breach.kind, breach.deadline_ms, breach.fired_at_ms, breach.wall_elapsed_ms) == (
        AlertKind.BREACH,
        T0 + 60 * M,
        T0 + 90 * M,
        60 * M,
    )
    assert state.kpis["first_response"].state is KpiState.BREACHED
    assert state.next_due_ms() is None


def test_one_late_tick_fires_warning_and_breach_in_order() -> None:
    core = SlaCore(POLICIES)
    state, _ = core.apply(None, created())
    assert [a.kind for a in core.advance(state, T0 + 2 * 60 * M)] == [AlertKind.WARNING, AlertKind.BREACH]


def test_response_in_time_succeeds_and_nothing_fires() -> None:
    core = SlaCore(POLICIES)
    state, _ = core.apply(None, created())
    state, out = core.apply(state, RecordEvent("r", "C-1", "case", "first_response", T0 + 10 * M))
    assert out == [] and state.kpis["first_response"].state is KpiState.SUCCEEDED
    assert core.advance(state, T0 + 10 * 60 * M) == []


def test_event_after_the_deadline_first_fires_what_was_due() -> None:
    core = SlaCore(POLICIES)
    state, _ = core.apply(None, created())
    state, out = core.apply(state, RecordEvent("r", "C-1", "case", "first_response", T0 + 61 * M))
    assert [a.kind for a in out] == [AlertKind.WARNING, AlertKind.BREACH]
    assert state.kpis["first_response"].state is KpiState.BREACHED


def test_cancel_stops_the_clock_and_duplicates_change_nothing() -> None:
    core = SlaCore(POLICIES)
    state, _ = core.apply(None, created())
    state, _ = core.apply(state, created())  # duplicate id
    assert state.kpis["first_response"].started_at_ms == T0
    state, _ = core.apply(state, RecordEvent("x", "C-1", "case", "cancelled", T0 + 15 * M))
    assert state.kpis["first_response"].state is KpiState.CANCELLED
    assert core.advance(state, T0 + 100 * M) == []


def test_records_no_policy_covers_carry_no_kpi() -> None:
    core = SlaCore(POLICIES)
    state, out = core.apply(None, RecordEvent("l", "L-1", "lead", "created", T0, {"tier": "VIP"}))
    assert out == [] and state.kpis == {} and state.next_due_ms() is None


def test_snapshot_round_trips_through_json() -> None:
    core = SlaCore(POLICIES)
    state, _ = core.apply(None, created())
    core.advance(state, T0 + 30 * M)
    restored = RecordState.restore(json.loads(json.dumps(state.snapshot())))
    assert restored == state
    assert [a.kind for a in core.advance(restored, T0 + 60 * M)] == [AlertKind.BREACH]
