"""The contact-centre simulator: deterministic, statistically what was asked, valid events, faults on request."""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from datetime import datetime, time
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from agents.settings import DEFAULT_POLICIES
from agents.simulate import (
    DAY,
    DEFAULT_START_MS,
    HOUR,
    SKEW_SOURCES,
    Simulation,
    SimulationConfig,
    _Spans,
    add_bench_command,
    add_command,
    bench_simulate,
    config_from_args,
    paced,
)
from streams.errors import ConfigError
from streams.events import EventError, RecordEvent, event_to_json, parse_event
from streams.policy import PolicySet, load_policies

BERLIN = ZoneInfo("Europe/Berlin")


@cache
def policies() -> PolicySet:
    return load_policies(DEFAULT_POLICIES)


def simulate(**knobs: object) -> Simulation:
    return Simulation(SimulationConfig(**knobs), policies())  # type: ignore[arg-type]


def text_of(sim: Simulation) -> str:
    return "".join(sim.lines())


def local(event: RecordEvent) -> datetime:
    return datetime.fromtimestamp(event.occurred_at_ms / 1000, BERLIN)


@pytest.fixture(scope="module")
def week() -> tuple[Simulation, list[str], list[RecordEvent]]:
    """A week of the default contact centre (no faults), its lines and their events."""
    sim = simulate(seed=5, days=7, cases_per_day=1500)
    lines = list(sim.lines())
    return sim, lines, [parse_event(json.loads(line)) for line in lines]


def arrivals(events: list[RecordEvent]) -> list[RecordEvent]:
    """The ``created`` events of cases opened by customers (not the child cases of splits)."""
    return [e for e in events if e.kind == "created" and e.entity_type == "case" and "parent_id" not in e.attributes]


# -- determinism ------------------------------------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_output_and_truth() -> None:
    first, second = simulate(seed=11, cases_per_day=800), simulate(seed=11, cases_per_day=800)
    text = text_of(first)
    assert text == text_of(second)
    assert first.truth_instances == second.truth_instances
    assert text == text_of(first)  # a second run of the same simulation starts afresh
    assert len(text.splitlines()) > 3000


def test_the_same_seed_with_faults_is_identical_too() -> None:
    knobs = {"seed": 4, "cases_per_day": 500, "late_share": 0.1, "duplicate_share": 0.05, "malformed_share": 0.02,
             "skew_ms": {"phone": -1500}}  # fmt: skip
    assert text_of(simulate(**knobs)) == text_of(simulate(**knobs))


def test_a_different_seed_gives_different_output() -> None:
    assert text_of(simulate(seed=1, cases_per_day=500)) != text_of(simulate(seed=2, cases_per_day=500))


# -- the events are valid and in order ----------------------------------------------------------------------------


def test_every_line_is_a_valid_event_in_the_event_to_json_format_in_time_order(
    week: tuple[Simulation, list[str], list[RecordEvent]],
) -> None:
    sim, lines, events = week
    assert len(lines) == sim.stats.lines == sim.stats.events > 50_000
    for line, event in zip(lines, events, strict=True):
        assert line == json.dumps(event_to_json(event), separators=(",", ":")) + "\n"
    instants = [e.occurred_at_ms for e in events]
    assert instants == sorted(instants)
    assert instants[0] >= DEFAULT_START_MS and instants[-1] <= sim.horizon_ms
    assert len({e.event_id for e in events}) == len(events)
    per_record: dict[str, int] = {}
    for event in events:  # each record's events are strictly increasing in time
        assert per_record.get(event.record_id, -1) < event.occurred_at_ms
        per_record[event.record_id] = event.occurred_at_ms
    assert list(sim.events()) == events


def test_the_flows_use_the_kinds_and_attributes_the_shipped_policies_react_to(
    week: tuple[Simulation, list[str], list[RecordEvent]],
) -> None:
    _, _, events = week
    kinds = Counter(e.kind for e in events)
    for kind in ("created", "assigned", "status_changed", "email_received", "email_sent", "call_offered",
                 "call_answered", "call_abandoned", "callback_completed", "first_response", "resolved", "closed",
                 "cancelled", "reopened", "merged", "priority_changed", "consent_given", "shipped", "sent",
                 "replied"):  # fmt: skip
        assert kinds[kind] > 0, kind
    statuses = Counter(e.attributes["status"] for e in events if e.kind == "status_changed")
    for status in ("in_progress", "waiting_for_customer", "diagnosed", "awaiting_consent", "equipment_collected",
                   "at_external_service", "on_hold", "qualified"):  # fmt: skip
        assert statuses[status] > 0, status
    directions = Counter(
        (e.kind, e.attributes.get("direction")) for e in events if e.kind.startswith(("email_", "call_a"))
    )
    assert directions[("email_sent", "outbound")] and directions[("email_received", "inbound")]
    assert directions[("call_answered", "outbound")] and directions[("call_answered", "inbound")]
    answered = [e for e in events if e.kind == "call_answered" and e.attributes["direction"] == "inbound"]
    assert all(e.attributes["wait_seconds"].isdigit() and e.attributes["handle_seconds"].isdigit() for e in answered)
    merged = [e for e in events if e.kind == "merged"]
    assert merged and all(e.attributes["merged_into"].startswith("C-") for e in merged)
    children = [e for e in events if e.kind == "created" and "parent_id" in e.attributes]
    assert children and all(e.attributes["type"] == "field_service" for e in children)
    owners = {e.attributes["owner"] for e in events if e.kind == "assigned"}
    assert any(owner.startswith("sv-") for owner in owners) and any(owner.startswith("ag-") for owner in owners)
    entities = Counter(e.entity_type for e in events if e.kind in ("created", "call_offered"))
    assert {"case", "phone_call", "lead", "order", "invoice", "email"} <= set(entities)


def test_agents_act_only_in_the_working_hours_of_the_case_calendar(
    week: tuple[Simulation, list[str], list[RecordEvent]],
) -> None:
    """Standard cases (office calendar, 09:00-17:00 on weekdays): answers, assignments and resolutions in hours."""
    _, _, events = week
    agent_kinds = {"assigned", "email_sent", "first_response", "resolved", "priority_changed"}
    checked = 0
    for event in events:
        attrs = event.attributes
        if event.entity_type != "case" or attrs.get("tier") != "Standard" or event.kind not in agent_kinds:
            continue
        if attrs["priority"] == "high" or attrs["category"] == "new_purchase" or "type" in attrs:
            continue  # another policy, another calendar
        when = local(event)
        assert when.weekday() < 5 and time(9) <= when.time() <= time(17, 0, 1), event
        checked += 1
    assert checked > 5000
    standard_calls = [e for e in events if e.kind == "call_offered" and e.attributes["tier"] == "Standard"]
    assert standard_calls and all(local(e).weekday() < 5 and 9 <= local(e).hour < 17 for e in standard_calls)


# -- statistics -----------------------------------------------------------------------------------------------------


def test_tier_mix_is_within_tolerance(week: tuple[Simulation, list[str], list[RecordEvent]]) -> None:
    _, _, events = week
    tiers = Counter(e.attributes["tier"] for e in arrivals(events))
    total = sum(tiers.values())
    assert total > 8000
    for tier, share in {"VIP": 0.1, "Premium": 0.3, "Standard": 0.6}.items():
        assert abs(tiers[tier] / total - share) < 0.02, (tier, tiers[tier] / total)


def test_a_custom_tier_mix_is_followed() -> None:
    sim = simulate(seed=2, cases_per_day=1500, tier_mix={"VIP": 0.5, "Standard": 0.5})
    tiers = Counter(e.attributes["tier"] for e in arrivals(list(sim.events())))
    assert set(tiers) == {"VIP", "Standard"}
    assert abs(tiers["VIP"] / sum(tiers.values()) - 0.5) < 0.04


def test_arrivals_follow_the_day_and_the_week(week: tuple[Simulation, list[str], list[RecordEvent]]) -> None:
    _, _, events = week
    cases = arrivals(events)
    weekday_hours = Counter(local(e).hour for e in cases if local(e).weekday() < 5)
    assert weekday_hours[10] + weekday_hours[11] > 8 * (weekday_hours[2] + weekday_hours[3])
    assert weekday_hours[11] > weekday_hours[8] and weekday_hours[14] > weekday_hours[17]
    days = Counter(local(e).weekday() for e in cases)
    weekday_mean = sum(days[d] for d in range(5)) / 5
    assert days[5] < 0.5 * weekday_mean and days[6] < 0.5 * weekday_mean


@pytest.mark.parametrize(("breach_share", "seed"), [(0.15, 5), (0.15, 8), (0.4, 3)])
def test_first_responses_breach_at_the_configured_share(breach_share: float, seed: int) -> None:
    # Settled (the records go on for three days after the last arrival), so that no first response is left open
    # by the end of the simulation, which would favour the ones answered early (met).
    sim = simulate(seed=seed, days=4, settle_days=3, cases_per_day=1500, breach_share=breach_share)
    sim.run()
    outcomes = Counter(v for (_, kpi), v in sim.truth.items() if kpi == "first_response")
    decided = outcomes["met"] + outcomes["breached"]
    assert decided > 4000 and outcomes["open"] < 0.02 * decided
    assert abs(outcomes["breached"] / decided - breach_share) < 0.025


def test_other_entities_come_at_their_share(week: tuple[Simulation, list[str], list[RecordEvent]]) -> None:
    sim, _, events = week
    created = Counter(e.entity_type for e in events if e.kind == "created" and "parent_id" not in e.attributes)
    others = sum(created[entity] for entity in ("lead", "order", "invoice", "email"))
    contacts = sim.stats.arrivals
    assert abs(others / contacts - 0.2) < 0.02
    field = sum(1 for e in arrivals(events) if e.attributes.get("type") == "field_service")
    assert 0.05 < field / len(arrivals(events)) < 0.11


# -- faults ---------------------------------------------------------------------------------------------------------


def test_late_events_and_duplicates_come_at_their_share_and_leave_the_traffic_unchanged() -> None:
    clean = simulate(seed=6, days=2, cases_per_day=1500)
    faulty = simulate(seed=6, days=2, cases_per_day=1500, late_share=0.05, late_mean_ms=10 * 60_000,
                      duplicate_share=0.03)  # fmt: skip
    clean_events = list(clean.events())
    events = list(faulty.events())
    stats = faulty.stats
    assert len(events) == stats.events == len(clean_events) + stats.duplicates
    assert abs(stats.duplicates / len(clean_events) - 0.03) < 0.004
    assert abs(stats.late / len(clean_events) - 0.05) < 0.005
    seen: set[str] = set()
    repeats = 0
    out_of_order = 0
    latest = 0
    for event in events:
        if event.event_id in seen:
            repeats += 1
            continue
        seen.add(event.event_id)
        if event.occurred_at_ms < latest:
            out_of_order += 1
        latest = max(latest, event.occurred_at_ms)
    assert repeats == stats.duplicates
    assert 0.8 * stats.late <= out_of_order <= stats.late  # most late events are overtaken by later ones
    assert {e.event_id: e for e in events} == {e.event_id: e for e in clean_events}  # the same traffic
    assert faulty.truth_instances == clean.truth_instances


def test_malformed_lines_come_at_their_share_in_three_kinds() -> None:
    sim = simulate(seed=9, days=2, cases_per_day=1500, malformed_share=0.02)
    reasons: Counter[str] = Counter()
    lines = list(sim.lines())
    for line in lines:
        try:
            parse_event(json.loads(line))
        except json.JSONDecodeError:
            reasons["bad_json"] += 1
        except EventError as exc:
            reasons[exc.reason] += 1
    assert set(reasons) == {"bad_json", "missing_field", "bad_timestamp"}
    assert sum(reasons.values()) == sim.stats.malformed
    assert abs(sim.stats.malformed / len(lines) - 0.02) < 0.003
    assert sim.stats.events == len(lines) - sim.stats.malformed == len(list(sim.events()))


def test_clock_skew_shifts_the_instants_of_one_source() -> None:
    """The telephony clock is 2.5 s behind: calls, call-backs and the cases opened by phone are stamped earlier."""
    clean = {e.event_id: e for e in simulate(seed=3, cases_per_day=500).events()}
    skewed = {e.event_id: e for e in simulate(seed=3, cases_per_day=500, skew_ms={"phone": -2500}).events()}
    assert clean.keys() == skewed.keys()
    phone = 0
    for event_id, event in clean.items():
        by_phone = event.kind.startswith(("call_", "callback")) or (
            event.kind == "created" and event.entity_type == "case" and event.attributes["channel"] == "phone"
        )
        phone += by_phone
        assert skewed[event_id].occurred_at_ms - event.occurred_at_ms == (-2500 if by_phone else 0), event
        assert skewed[event_id].attributes == event.attributes
    assert phone > 500


# -- pacing ---------------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def event(at_ms: int, n: int) -> RecordEvent:
    return RecordEvent(f"e{n}", "C-1", "case", "status_changed", at_ms)


def test_paced_releases_each_event_at_its_simulated_time_divided_by_the_speed() -> None:
    clock = FakeClock(100.0)
    base = DEFAULT_START_MS
    events = [event(base, 1), event(base + 60_000, 2), event(base + 180_000, 3), event(base + 120_000, 4),
              event(base + 240_000, 5)]  # fmt: skip
    released = []
    for item in paced(events, 60.0, 100.0, clock=clock, sleep=clock.sleep):
        released.append((item.event_id, clock.now))
    # 60 simulated seconds per wall second; the late event 4 goes out at once, right after event 3.
    assert released == [("e1", 100.0), ("e2", 101.0), ("e3", 103.0), ("e4", 103.0), ("e5", 104.0)]
    assert clock.sleeps == [1.0, 2.0, 1.0]


def test_paced_in_real_time_with_an_origin_and_no_pacing_at_speed_zero() -> None:
    clock = FakeClock(10.0)
    base = DEFAULT_START_MS
    out = list(paced([event(base + 500, 1)], 1.0, 10.0, clock=clock, sleep=clock.sleep, origin_ms=base))
    assert [e.event_id for e in out] == ["e1"] and clock.sleeps == [0.5]
    clock = FakeClock(10.0)
    assert len(list(paced([event(base, 1), event(base + DAY, 2)], 0, 10.0, clock=clock, sleep=clock.sleep))) == 2
    assert clock.sleeps == []


def test_paced_does_not_sleep_when_behind() -> None:
    clock = FakeClock(50.0)  # started at 0: far behind schedule
    base = DEFAULT_START_MS
    assert len(list(paced([event(base, 1), event(base + 1000, 2)], 1.0, 0.0, clock=clock, sleep=clock.sleep))) == 2
    assert clock.sleeps == []


# -- calendars, configuration, command line ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["always", "weekdays", "office", "field"])
def test_the_fast_calendar_answers_exactly_as_the_business_calendar(name: str) -> None:
    cal = policies().calendars[name]
    lo = 1_797_000_000_000  # December 2026: Christmas Eve's half day, holidays, New Year
    spans = _Spans(cal, lo, lo + 40 * DAY)
    rng = random.Random(name)
    for _ in range(3000):
        start = lo - DAY + rng.randrange(45 * DAY)
        business = rng.choice([0, 1, rng.randrange(HOUR), rng.randrange(40 * HOUR), 8 * HOUR, 24 * HOUR])
        end = start + rng.randrange(10 * DAY)
        assert spans.add(start, business) == cal.add(start, business), (start, business)
        assert spans.elapsed(start, end) == cal.elapsed(start, end), (start, end)
        assert spans.is_open(start) == cal.is_open(start), start
        assert spans.open_at(start) == cal.add(start, 1) - 1


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"breach_share": 1.5}, "breach_share"),
        ({"days": 0}, "days"),
        ({"tier_mix": {"VIP": -1}}, "tier_mix"),
        ({"tier_mix": {"V I P": 1}}, "tier_mix"),
        ({"channel_mix": {"fax": 1}}, "channel_mix"),
        ({"skew_ms": {"fax": 10}}, "skew"),
        ({"timezone": "Mars/Olympus"}, "time zone"),
    ],
)
def test_bad_knobs_are_refused_by_name(knobs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        simulate(**knobs)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="slaflow")
    commands = parser.add_subparsers(dest="command", required=True)
    add_command(commands)
    bench = commands.add_parser("bench")
    add_bench_command(bench.add_subparsers(dest="benchmark", required=True))
    return parser.parse_args(argv)


def test_the_command_line_knobs_reach_the_configuration() -> None:
    args = parse(["simulate", "--seed", "3", "--days", "2", "--start", "2026-03-09T00:00:00+01:00",
                  "--tier-mix", "VIP=0.2,Premium=0.3,Standard=0.5", "--cases-per-day", "100",
                  "--breach-share", "0.3", "--other-entities-share", "0.1", "--late-share", "0.01",
                  "--late-mean", "30s", "--duplicate-share", "0.02", "--malformed-share", "0.03",
                  "--skew", "phone=-2000,email=1500"])  # fmt: skip
    config = config_from_args(args)
    assert (config.seed, config.days, config.cases_per_day, config.breach_share) == (3, 2, 100, 0.3)
    assert config.start_ms == DEFAULT_START_MS + 7 * DAY
    assert dict(config.tier_mix) == {"VIP": 0.2, "Premium": 0.3, "Standard": 0.5}
    assert (config.late_share, config.late_mean_ms, config.duplicate_share, config.malformed_share) == (
        0.01, 30_000, 0.02, 0.03)  # fmt: skip
    assert dict(config.skew_ms) == {"phone": -2000, "email": 1500} and set(config.skew_ms) <= set(SKEW_SOURCES)
    for bad in (["--tier-mix", "VIP"], ["--skew", "fax=1"], ["--breach-share", "2"], ["--start", "monday"]):
        with pytest.raises(SystemExit):
            parse(["simulate", *bad])


def test_slaflow_simulate_writes_the_events_and_the_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    args = parse(["simulate", "--seed", "2", "--cases-per-day", "300", "--out", str(out), "--truth", str(truth)])
    assert args.func(args) == 0
    expected = simulate(seed=2, cases_per_day=300)
    assert out.read_text() == text_of(expected)
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert {(r["record_id"], r["kpi"], r["instance"]): r["expected"] for r in rows} == expected.truth_instances
    assert {"record_id", "kpi", "expected"} <= set(rows[0])
    summary = capsys.readouterr().err
    assert "slaflow simulate:" in summary and "truth first_response" in summary
    quiet = parse(["simulate", "--cases-per-day", "50", "--quiet", "--out", str(out)])
    assert quiet.func(quiet) == 0 and capsys.readouterr().err == ""


def test_slaflow_simulate_writes_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse(["simulate", "--cases-per-day", "50", "--quiet"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(parse_event(json.loads(line)) for line in lines)


def test_bench_simulate_reports_events_per_second_against_its_goal(capsys: pytest.CaptureFixture[str]) -> None:
    report = bench_simulate(days=1, cases_per_day=1000)
    assert {"events_per_second", "events", "seconds", "goal", "goal_met"} <= set(report)
    assert report["events"] > 5000 and report["goal"] == 200_000
    assert report["goal_met"] == (report["events_per_second"] >= 200_000)
    args = parse(["bench", "simulate", "--days", "0.2", "--cases-per-day", "500"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["benchmark"] == "simulate"
