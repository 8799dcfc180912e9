"""The SLA core on the product brief's examples, with exact instants and durations (fake clock: time is data)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import yaml

from schemas.messages import duration_message
from streams.core import EventRejected, RecordState, SlaCore, snapshot
from streams.events import RecordEvent
from streams.kpi import KpiState
from streams.outputs import Output, OutputKind
from streams.policy import PolicySet, parse_policies

S, M, H, D = 1000, 60_000, 3_600_000, 86_400_000
BERLIN = ZoneInfo("Europe/Berlin")

POLICIES = """
version: "v1"
lateness: {allowed: 0s, max: 2d}
unmatched: ignore
calendars:
  always: {preset: "24/7", timezone: Europe/Berlin}
  weekdays: {preset: "24/5", timezone: Europe/Berlin}
  office:
    preset: "8/5"
    timezone: Europe/Berlin
    holidays: [2026-12-24, 2026-12-25]
policies:
  - name: high_priority
    applies_when: {entity_type: case, priority: high}
    calendar: always
    kpis:
      - name: first_response
        target: 1h
        start: {kind: created}
        stop: {kind: first_response}
      - name: resolution
        target: 24h
        start: {kind: created}
        stop: {kind: resolved}
        pause: {kind: status_changed, status: waiting_for_customer}
        resume: {kind: status_changed, status: {not: waiting_for_customer}}
  - name: field_service
    applies_when: {entity_type: case, type: field_service}
    calendar: always
    kpis:
      - name: arrive_and_diagnose
        target: 4h
        warning: 75%
        start: {kind: created}
        stop: {kind: diagnosed}
        cancel: {kind: cancelled}
        on_warning: [{notify: owner}]
        on_breach: [{notify: [owner, supervisor]}]
      - name: repair
        target: 3d
        warning: 2d
        start: {kind: created}
        stop: {kind: [resolved, closed]}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: at_external_service}
        resume: {kind: status_changed, status: {not: at_external_service}}
        on_pause: [{notify: customer, template: at_manufacturer}]
        on_warning: [{notify: owner}]
        on_breach: [{notify: [owner, supervisor]}]
        on_success: [{notify: customer, template: repaired}]
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    calendar: always
    kpis:
      - name: first_response
        target: 1h
        warning: 30m
        start: {kind: created}
        stop: [{kind: email_sent, direction: outbound}, {kind: call_answered, direction: outbound}]
        on_start: [{notify: owner, template: case_created}]
        on_warning: [{notify: owner, template: reminder}]
        on_breach: [{notify: supervisor}]
        on_success: [{notify: owner, template: first_response_done}]
        escalations:
          - after: 0s
            actions: [{reassign: supervisor_queue}]
          - after: 2h
            actions: [{notify: [owner, supervisor], template: failure}, {notify: customer, template: apology},
                      {notify: director}]
      - name: resolution
        target: 1d
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        on_reopen: resume
  - name: premium
    applies_when: {entity_type: case, tier: Premium}
    calendar: weekdays
    kpis:
      - name: first_response
        target: 2h
        start: {kind: created}
        stop: {kind: first_response}
  - name: standard
    applies_when: {entity_type: case}
    calendar: office
    kpis:
      - name: first_response
        target: 1bd
        start: {kind: created}
        stop: {kind: first_response}
      - name: resolution
        target: 5bd
        start: {kind: created}
        stop: {kind: resolved}
        pause: {kind: status_changed, status: waiting_for_customer}
        resume: {kind: status_changed, status: {not: waiting_for_customer}}
        on_reopen: restart
  - name: big_customer_email
    applies_when: {entity_type: email, monthly_revenue: {gt: 5000}}
    calendar: always
    kpis:
      - {name: answer, target: 2h, start: {kind: received}, stop: {kind: answered}}
  - name: conversation
    applies_when: {entity_type: conversation}
    calendar: always
    kpis:
      - name: next_reply
        target: 4h
        recurring: true
        start: {kind: email_received}
        stop: {kind: email_sent}
  - name: lead
    applies_when: {entity_type: lead}
    calendar: always
    kpis:
      - {name: contact, target: 30m, start: {kind: created}, stop: {kind: contacted}, start_from: reported_at}
"""


def at(text: str, tz: ZoneInfo = BERLIN) -> int:
    """UTC epoch ms of a local wall-clock time 'YYYY-MM-DD HH:MM'."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=tz).timestamp() * 1000)


class Run:
    """One record driven through the core with an explicit watermark."""

    def __init__(self, policies: PolicySet | None = None, record: str = "C-1", entity: str = "case") -> None:
        self.core = SlaCore(policies or parse_policies(yaml.safe_load(POLICIES), "test"))
        self.record, self.entity = record, entity
        self.state: RecordState | None = None
        self.outputs: list[Output] = []
        self.n = 0

    def event(self, kind: str, when: int, now: int | None = None, **attributes: str) -> list[Output]:
        self.n += 1
        event = RecordEvent(f"e{self.n}", self.record, self.entity, kind, when, attributes)
        self.state, out = self.core.apply(self.state, event, when if now is None else now)
        self.outputs += out
        return out

    def advance(self, now: int) -> list[Output]:
        assert self.state is not None
        out = self.core.advance(self.state, now)
        self.outputs += out
        return out

    def kinds(self, kpi: str | None = None) -> list[tuple[str, str]]:
        return [(o.kpi, o.kind.value) for o in self.outputs if kpi is None or o.kpi == kpi]

    def one(self, kpi: str, kind: OutputKind, level: int = 0) -> Output:
        [found] = [o for o in self.outputs if o.kpi == kpi and o.kind is kind and o.level == level]
        return found

    def state_of(self, kpi: str, now: int) -> KpiState:
        assert self.state is not None
        clock = self.state.live.clock(kpi)
        assert clock is not None
        return clock.state_at(now)


def test_vip_first_response_reminder_escalation_chain_and_creation_notice() -> None:
    run = Run()
    t0 = at("2026-05-04 10:00")
    [started, _] = run.event("created", t0, tier="VIP", owner="ana", subject="grinder broken")
    assert started.kind is OutputKind.KPI_STARTED and started.deadline_ms == t0 + H
    assert [(a.type, a.targets, a.template) for a in started.actions] == [("notify", ("owner",), "case_created")]
    assert started.attributes["subject"] == "grinder broken"
    assert run.advance(t0 + 30 * M - 1) == []
    [warning] = run.advance(t0 + 30 * M)
    assert (warning.kind, warning.at_ms, warning.business_elapsed_ms, warning.deadline_ms) == (
        OutputKind.WARNING,
        t0 + 30 * M,
        30 * M,
        t0 + H,
    )
    assert warning.actions[0].template == "reminder"
    breach, escalation = run.advance(t0 + H)
    assert (breach.kind, breach.at_ms, breach.actions[0].targets) == (OutputKind.BREACH, t0 + H, ("supervisor",))
    assert (escalation.kind, escalation.level, escalation.actions[0].type) == (OutputKind.ESCALATION, 1, "reassign")
    [level2] = run.advance(t0 + 3 * H)
    assert (level2.level, level2.at_ms, [a.targets for a in level2.actions]) == (
        2,
        t0 + 3 * H,
        [("owner", "supervisor"), ("customer",), ("director",)],
    )
    assert level2.output_id == "C-1/first_response/0/ESCALATION/2"
    # Met late: the success actions still fire, once, and the KPI stays breached.
    [done] = run.event("email_sent", t0 + 4 * H, direction="outbound")
    assert (done.kind, done.reason, done.actions[0].template) == (
        OutputKind.KPI_SUCCEEDED,
        "met_late",
        "first_response_done",
    )
    assert run.state_of("first_response", t0 + 5 * H) is KpiState.BREACHED
    assert run.advance(t0 + 30 * D) == [run.one("resolution", OutputKind.BREACH)]


def test_an_answered_outbound_call_is_a_first_response_an_inbound_one_is_not() -> None:
    run = Run()
    t0 = at("2026-05-04 10:00")
    run.event("created", t0, tier="VIP")
    assert run.event("call_answered", t0 + 10 * M, direction="inbound") == []
    [done] = run.event("call_answered", t0 + 20 * M, direction="outbound")
    assert (done.kpi, done.kind, done.business_elapsed_ms, done.reason) == (
        "first_response",
        OutputKind.KPI_SUCCEEDED,
        20 * M,
        "met",
    )


def test_standard_one_business_day_over_a_weekend() -> None:
    run = Run()
    friday = at("2026-05-08 16:00")
    run.event("created", friday, tier="Standard")
    first = run.state and run.state.live.clock("first_response")
    assert first is not None and first.deadline_ms() == at("2026-05-11 16:00")
    resolution = run.state.live.clock("resolution") if run.state else None
    assert resolution is not None and resolution.deadline_ms() == at("2026-05-15 16:00")  # 5 x 8 h
    [breach] = run.advance(at("2026-05-11 16:00"))
    assert (breach.kpi, breach.business_elapsed_ms, breach.wall_elapsed_ms) == ("first_response", 8 * H, 72 * H)


def test_standard_one_business_day_over_christmas_holidays() -> None:
    run = Run()
    run.event("created", at("2026-12-23 16:00"), tier="Standard")
    assert run.state is not None
    clock = run.state.live.clock("first_response")
    assert clock is not None and clock.deadline_ms() == at("2026-12-28 16:00")


def test_dst_change_24_7_counts_wall_time_and_8_5_keeps_local_hours() -> None:
    vip = Run()
    vip.event("created", at("2026-03-28 12:00"), tier="VIP")  # Saturday; clocks go forward Sunday 02:00
    assert vip.state is not None
    resolution = vip.state.live.clock("resolution")
    assert resolution is not None and resolution.deadline_ms() == at("2026-03-29 13:00")  # 24 h of wall time
    assert resolution.deadline_ms() - at("2026-03-28 12:00") == D
    standard = Run()
    standard.event("created", at("2026-03-27 16:00"), tier="Standard")
    assert standard.state is not None
    first = standard.state.live.clock("first_response")
    assert first is not None and first.deadline_ms() == at("2026-03-30 16:00")
    assert first.deadline_ms() == int(datetime(2026, 3, 30, 14, 0, tzinfo=UTC).timestamp() * 1000)


def test_premium_two_hours_on_24_5_started_friday_night() -> None:
    run = Run()
    run.event("created", at("2026-05-08 23:30"), tier="Premium")
    assert run.state is not None
    clock = run.state.live.clock("first_response")
    assert clock is not None and clock.deadline_ms() == at("2026-05-11 01:30")


def test_high_priority_rule_wins_over_the_tier() -> None:
    run = Run()
    [_, started] = run.event("created", at("2026-05-04 10:00"), tier="Standard", priority="high")
    assert (started.policy, started.kpi, started.target_ms) == ("high_priority", "resolution", 24 * H)


def test_email_of_a_customer_billed_over_5000_a_month_gets_two_hours() -> None:
    big = Run(record="E-1", entity="email")
    [started] = big.event("received", at("2026-05-04 10:00"), monthly_revenue="5000.01")
    assert (started.policy, started.target_ms) == ("big_customer_email", 2 * H)
    small = Run(record="E-2", entity="email")
    assert small.event("received", at("2026-05-04 10:00"), monthly_revenue="4999") == []


class TestCoffeeMachine:
    """The field-service story of the product brief: 4 h to arrive and diagnose, 3 days to repair."""

    t0 = at("2026-05-04 09:00")

    def test_cancelled_after_15_minutes_is_cancelled_not_breached_and_nobody_is_notified(self) -> None:
        run = Run()
        run.event("created", self.t0, type="field_service")
        cancelled = run.event("cancelled", self.t0 + 15 * M)
        assert [(o.kpi, o.kind, o.reason) for o in cancelled] == [
            ("arrive_and_diagnose", OutputKind.KPI_CANCELLED, "cancelled"),
            ("repair", OutputKind.KPI_CANCELLED, "cancelled"),
        ]
        assert run.advance(self.t0 + 30 * D) == []
        assert not [o for o in run.outputs if o.actions]
        assert run.state_of("repair", self.t0 + 30 * D) is KpiState.CANCELLED

    def test_repaired_on_site_both_kpis_succeed_with_their_durations(self) -> None:
        run = Run()
        run.event("created", self.t0, type="field_service")
        [diagnosed] = run.event("diagnosed", self.t0 + 2 * H + 30 * M)
        [repaired] = run.event("resolved", self.t0 + 5 * H)
        assert (diagnosed.kind, diagnosed.business_elapsed_ms) == (OutputKind.KPI_SUCCEEDED, 2 * H + 30 * M)
        assert (repaired.kind, repaired.business_elapsed_ms, repaired.wall_elapsed_ms, repaired.paused_ms) == (
            OutputKind.KPI_SUCCEEDED,
            5 * H,
            5 * H,
            0,
        )
        assert repaired.actions[0].targets == ("customer",)
        assert run.advance(self.t0 + 30 * D) == []

    def test_external_repair_pauses_the_clock_and_net_time_is_measured(self) -> None:
        run = Run()
        run.event("created", self.t0, type="field_service")
        run.event("diagnosed", self.t0 + 3 * H)
        [paused] = run.event("status_changed", self.t0 + D, status="at_external_service")
        assert (paused.kind, paused.reason, paused.deadline_ms) == (
            OutputKind.KPI_PAUSED,
            "at_external_service",
            self.t0 + 3 * D,
        )
        assert paused.actions[0].targets == ("customer",)  # the customer is told
        assert run.advance(self.t0 + 3 * D) == []  # the deadline does not pass while paused
        [resumed] = run.event("status_changed", self.t0 + 3 * D, status="back_in_warehouse")
        assert (resumed.kind, resumed.deadline_ms, resumed.paused_ms, resumed.business_elapsed_ms) == (
            OutputKind.KPI_RESUMED,
            self.t0 + 5 * D,
            2 * D,
            D,
        )
        [warning] = run.advance(self.t0 + 4 * D)
        assert (warning.kind, warning.at_ms) == (OutputKind.WARNING, self.t0 + 4 * D)
        [repaired] = run.event("resolved", self.t0 + 4 * D + 12 * H)
        assert (
            repaired.kind,
            repaired.reason,
            repaired.business_elapsed_ms,
            repaired.wall_elapsed_ms,
            repaired.paused_ms,
        ) == (OutputKind.KPI_SUCCEEDED, "met", 2 * D + 12 * H, 4 * D + 12 * H, 2 * D)
        assert run.state is not None
        clock = run.state.live.clock("repair")
        assert clock is not None and clock.pauses == ((self.t0 + D, self.t0 + 3 * D, "at_external_service"),)

    def test_time_runs_out_failure_is_recorded_and_the_responsible_are_told(self) -> None:
        run = Run()
        run.event("created", self.t0, type="field_service")
        run.event("diagnosed", self.t0 + 3 * H)
        outputs = run.advance(self.t0 + 3 * D)
        assert [(o.kind, o.at_ms) for o in outputs] == [
            (OutputKind.WARNING, self.t0 + 2 * D),
            (OutputKind.BREACH, self.t0 + 3 * D),
        ]
        assert outputs[1].actions[0].targets == ("owner", "supervisor")
        assert run.state_of("repair", self.t0 + 3 * D) is KpiState.BREACHED


def test_priority_change_retargets_and_keeps_used_time_and_paused_credit() -> None:
    run = Run()
    t0 = at("2026-05-04 09:00")  # Monday
    run.event("created", t0, tier="Standard")
    run.event("status_changed", t0 + 2 * H, status="waiting_for_customer")
    run.event("status_changed", t0 + 4 * H, status="in_progress")
    [retargeted, *_] = [o for o in run.event("priority_changed", t0 + 5 * H, priority="high")
                        if o.kind is OutputKind.KPI_RETARGETED and o.kpi == "resolution"]  # fmt: skip
    # 3 business hours used (9-11 and 13-14), 2 h paused credit kept; the high-priority target is 24 h on 24/7.
    assert (retargeted.policy, retargeted.target_ms, retargeted.business_elapsed_ms, retargeted.paused_ms) == (
        "high_priority",
        24 * H,
        3 * H,
        2 * H,
    )
    assert retargeted.deadline_ms == t0 + 5 * H + 21 * H


def test_merge_cancels_the_absorbed_case_and_split_children_get_their_own_kpis() -> None:
    absorbed, surviving = Run(record="C-1"), Run(record="C-2")
    t0 = at("2026-05-04 10:00")
    absorbed.event("created", t0, tier="VIP")
    surviving.event("created", t0 + M, tier="VIP")
    merged = absorbed.event("merged", t0 + 5 * M, merged_into="C-2")
    assert {(o.kpi, o.kind, o.reason) for o in merged} == {
        ("first_response", OutputKind.KPI_CANCELLED, "merged"),
        ("resolution", OutputKind.KPI_CANCELLED, "merged"),
    }
    assert absorbed.advance(t0 + 10 * D) == []
    assert {o.kind for o in surviving.advance(t0 + 2 * H)} == {
        OutputKind.WARNING,
        OutputKind.BREACH,
        OutputKind.ESCALATION,
    }
    child = Run(record="C-1.1")
    [started, _] = child.event("created", t0 + H, tier="VIP", parent_id="C-1")
    assert started.attributes["parent_id"] == "C-1" and started.record_id == "C-1.1"


def test_reopen_resumes_or_restarts_as_the_policy_says() -> None:
    vip = Run()
    t0 = at("2026-05-04 10:00")
    vip.event("created", t0, tier="VIP")
    vip.event("resolved", t0 + 10 * H)
    [reopened] = vip.event("reopened", t0 + 20 * H)
    assert (reopened.kind, reopened.business_elapsed_ms, reopened.deadline_ms) == (
        OutputKind.KPI_REOPENED,
        10 * H,
        t0 + 34 * H,
    )
    standard = Run()
    monday = at("2026-05-04 09:00")
    standard.event("created", monday, tier="Standard")
    standard.event("resolved", monday + 2 * H)
    restarted = [o for o in standard.event("reopened", monday + 3 * H) if o.kpi == "resolution"]
    assert [(o.kind, o.kpi_instance, o.reason, o.business_elapsed_ms) for o in restarted] == [
        (OutputKind.KPI_STARTED, 1, "reopened", 0)
    ]


def test_recurring_kpi_restarts_each_time_the_customer_writes_again() -> None:
    run = Run(record="T-1", entity="conversation")
    t0 = at("2026-05-04 10:00")
    run.event("email_received", t0)
    run.event("email_sent", t0 + H)
    run.event("email_received", t0 + 2 * H)
    run.advance(t0 + 7 * H)
    assert [(o.kind.value, o.kpi_instance) for o in run.outputs] == [
        ("KPI_STARTED", 0),
        ("KPI_SUCCEEDED", 0),
        ("KPI_STARTED", 1),
        ("BREACH", 1),
    ]


def test_retroactive_start_from_a_timestamp_attribute() -> None:
    run = Run(record="L-1", entity="lead")
    t0 = at("2026-05-04 10:00")
    out = run.event("created", t0 + H, reported_at="2026-05-04T08:00:00Z")  # 10:00 Berlin = 08:00Z
    assert [(o.kind, o.at_ms, o.reason) for o in out] == [
        (OutputKind.KPI_STARTED, t0, "retroactive"),
        (OutputKind.BREACH, t0 + 30 * M, ""),
    ]


def test_duplicates_change_nothing() -> None:
    run = Run()
    t0 = at("2026-05-04 10:00")
    event = RecordEvent("same", "C-1", "case", "created", t0, {"tier": "VIP"})
    state, first = run.core.apply(None, event, t0)
    before = snapshot(state)
    state, again = run.core.apply(state, event, t0)
    assert first and again == [] and snapshot(state) == before


def test_a_late_pause_revokes_a_breach_explicitly() -> None:
    run = Run()
    t0 = at("2026-05-04 09:00")
    run.event("created", t0, type="field_service")
    run.event("diagnosed", t0 + H)
    fired = run.advance(t0 + 3 * D + H)
    assert [o.kind for o in fired] == [OutputKind.WARNING, OutputKind.BREACH]
    corrections = run.event("status_changed", t0 + 2 * D + 12 * H, now=t0 + 3 * D + H, status="at_external_service")
    assert [(o.kind, o.revision, o.revoked) for o in corrections] == [
        (OutputKind.KPI_PAUSED, 0, False),
        (OutputKind.BREACH, 1, True),
    ]
    assert corrections[1].output_id == fired[1].output_id
    assert run.state_of("repair", t0 + 10 * D) is KpiState.PAUSED


def test_events_later_than_max_lateness_are_rejected_with_a_reason() -> None:
    run = Run()
    t0 = at("2026-05-04 09:00")
    run.event("created", t0, tier="VIP")
    run.advance(t0 + 3 * D)
    with pytest.raises(EventRejected) as caught:
        run.event("email_sent", t0 + H, now=t0 + 3 * D, direction="outbound")
    assert caught.value.reason == "late" and "maximum lateness (2d)" in caught.value.detail


def test_allowed_lateness_holds_alerts_back_and_lets_stragglers_in() -> None:
    text = POLICIES.replace("lateness: {allowed: 0s, max: 2d}", "lateness: {allowed: 10m, max: 2d}")
    run = Run(parse_policies(yaml.safe_load(text), "test"))
    t0 = at("2026-05-04 10:00")
    run.event("created", t0, tier="VIP")
    assert [o.kind for o in run.advance(t0 + 35 * M)] == [OutputKind.KPI_STARTED] * 2
    # An answer at 10:29 arriving at 10:38 is within the allowed 10 minutes: no warning ever fires.
    assert run.event("email_sent", t0 + 29 * M, now=t0 + 38 * M, direction="outbound") == []
    [done] = run.advance(t0 + 39 * M)  # 10:29 + 10 min
    assert (done.kind, done.revision, done.at_ms) == (OutputKind.KPI_SUCCEEDED, 0, t0 + 29 * M)
    assert all(o.kind is not OutputKind.WARNING for o in run.advance(t0 + 2 * H))


def test_policy_version_is_pinned_until_an_explicit_recalculation() -> None:
    t0 = at("2026-05-04 10:00")
    old = parse_policies(yaml.safe_load(POLICIES), "v1")
    new = parse_policies(yaml.safe_load(POLICIES.replace('version: "v1"', 'version: "v2"').replace(
        "target: 1d\n", "target: 2d\n")), "v2")  # fmt: skip
    run = Run(old)
    run.event("created", t0, tier="VIP")
    assert run.state is not None
    data = snapshot(run.state)
    upgraded = SlaCore(new, previous=[old])
    state = upgraded.restore(data)
    clock = state.live.clock("resolution")
    assert clock is not None and (clock.version, clock.deadline_ms()) == ("v1", t0 + D)
    [retargeted] = [o for o in upgraded.recalculate(state, t0 + H) if o.kpi == "resolution"]
    assert (retargeted.policy_version, retargeted.deadline_ms) == ("v2", t0 + 2 * D)


def test_unmatched_records_are_rejected_when_the_policy_says_so() -> None:
    strict = parse_policies(yaml.safe_load(POLICIES.replace("unmatched: ignore", "unmatched: reject")), "strict")
    run = Run(strict, record="X-1", entity="invoice")
    with pytest.raises(EventRejected, match="no_policy"):
        run.event("created", at("2026-05-04 10:00"))
    assert Run(record="X-2", entity="invoice").event("created", at("2026-05-04 10:00")) == []


def test_snapshot_restores_an_identical_state() -> None:
    run = Run()
    t0 = at("2026-05-04 09:00")
    run.event("created", t0, type="field_service")
    run.event("status_changed", t0 + H, status="at_external_service")
    assert run.state is not None
    restored = run.core.restore(snapshot(run.state))
    assert restored == run.state and snapshot(restored) == snapshot(run.state)


BREACH_THEN_PAUSE = """
version: "v1"
lateness: {allowed: 0s, max: 2d}
calendars:
  always: {preset: "24/7", timezone: UTC}
policies:
  - name: repair
    applies_when: {entity_type: case}
    calendar: always
    kpis:
      - name: repair
        target: 4h
        start: {kind: created}
        stop: {kind: resolved}
        cancel: {kind: cancelled}
        pause: {kind: status_changed, status: at_external_service}
        resume: {kind: status_changed, status: {not: at_external_service}}
        escalations: [{after: 2h, actions: [{notify: director}]}]
"""


def test_a_pause_after_the_breach_does_not_move_the_deadline() -> None:
    """Regression: after breach, pause and resume, outputs reported the resume instant as the deadline."""
    run = Run(parse_policies(yaml.safe_load(BREACH_THEN_PAUSE), "test"))
    t0 = at("2026-05-04 08:00", UTC)
    run.event("created", t0)
    [breach] = run.advance(t0 + 4 * H)
    assert (breach.kind, breach.deadline_ms) == (OutputKind.BREACH, t0 + 4 * H)
    [paused] = run.event("status_changed", t0 + 5 * H, status="at_external_service")
    [resumed] = run.event("status_changed", t0 + 6 * H, status="repaired_by_manufacturer")
    assert run.state is not None
    assert run.core.restore(snapshot(run.state)) == run.state  # the deadline survives a restart
    [escalation] = run.advance(t0 + 7 * H)  # 4h + 2h of business time: 5h used by the pause, 1h after the resume
    [done] = run.event("resolved", t0 + 8 * H)
    for output in (paused, resumed, escalation, done):
        assert output.deadline_ms == t0 + 4 * H, output.kind
    assert (escalation.kind, escalation.at_ms, done.reason) == (OutputKind.ESCALATION, t0 + 7 * H, "met_late")
    row = duration_message(done)
    assert row is not None and (row["deadline_ms"], row["ended_at_ms"] - row["deadline_ms"]) == (t0 + 4 * H, 4 * H)
    assert (row["outcome"], row["business_ms"], row["paused_ms"]) == ("breached", 7 * H, H)


def test_a_kpi_cancelled_while_paused_after_its_breach_was_breached() -> None:
    run = Run(parse_policies(yaml.safe_load(BREACH_THEN_PAUSE), "test"))
    t0 = at("2026-05-04 08:00", UTC)
    run.event("created", t0)
    run.event("status_changed", t0 + 5 * H, status="at_external_service")
    [cancelled] = run.event("cancelled", t0 + 6 * H)
    row = duration_message(cancelled)
    assert row is not None and (row["deadline_ms"], row["outcome"], row["breached"]) == (
        t0 + 4 * H,
        "cancelled",
        True,
    )
