"""The policy file loader: the shipped files, selection order, durations, and every problem reported at once."""

from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest

from streams.calendar import parse_calendar, preset
from streams.errors import PolicyError
from streams.policy import (
    Action,
    PolicySet,
    business_day_ms,
    load_policies,
    parse_duration_ms,
    parse_policies,
)

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "deploy" / "policies" / "default.yaml"
S, M, H = 1000, 60_000, 3_600_000


def kpi(**overrides: Any) -> dict[str, Any]:
    """A valid KPI, changed by ``overrides`` (a value of ``None`` removes the key)."""
    raw: dict[str, Any] = {
        "name": "first_response",
        "target": "1h",
        "start": {"kind": "created"},
        "stop": {"kind": "resolved"},
    }
    raw.update(overrides)
    return {k: v for k, v in raw.items() if v is not None}


def doc(*kpis: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A valid policy file with one policy holding ``kpis``; ``top`` adds or replaces top-level keys."""
    data: dict[str, Any] = {
        "version": "v1",
        "policies": [{"name": "p", "applies_when": {"entity_type": "case"}, "kpis": list(kpis) or [kpi()]}],
    }
    data.update(top)
    return data


def problems_of(data: object) -> dict[str, str]:
    with pytest.raises(PolicyError) as caught:
        parse_policies(data, "test.yaml")
    return {p.path: p.message for p in caught.value.problems}


def only_kpi(policies: PolicySet) -> Any:
    return policies.policies[0].kpis[0]


# -- durations ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", 250),
        ("45s", 45_000),
        ("30m", 30 * M),
        ("1h", H),
        ("1h30m", 90 * M),
        ("1h 30m", 90 * M),
        ("2d", 48 * H),
        ("1.5s", 1500),
        ("0s", 0),
        (90, 90_000),
        (0.25, 250),
        ("1bd", None),
        ("5 business days", None),
        ("", None),
        ("1x", None),
        ("h1", None),
        ("-1h", None),
        (True, None),
        (-5, None),
        (float("inf"), None),
        (None, None),
    ],
)
def test_parse_duration_ms(text: object, expected: int | None) -> None:
    assert parse_duration_ms(text) == expected


def test_business_day_is_the_calendar_week_over_its_working_days() -> None:
    assert business_day_ms(preset("8/5")) == 8 * H
    assert business_day_ms(preset("24/5")) == 24 * H
    assert business_day_ms(preset("24/7")) == 24 * H
    problems: list[Any] = []
    six_days = parse_calendar(
        "shop", {"timezone": "UTC", "hours": {"mon-fri": ["09:00-17:00"], "sat": ["09:00-13:00"]}}, "c", problems
    )
    assert six_days is not None and not problems
    assert business_day_ms(six_days) == (40 + 4) * H // 6


@pytest.mark.parametrize(
    ("calendar", "target", "expected"),
    [
        ("8/5", "1bd", 8 * H),
        ("8/5", "5bd", 40 * H),
        ("8/5", "5 business days", 40 * H),
        ("8/5", "1 business day", 8 * H),
        ("8/5", "1bd4h", 12 * H),
        ("8/5", "0.5bd", 4 * H),
        ("8/5", "1d", 24 * H),  # d is always 24 h of business time: three office days
        ("24/7", "1bd", 24 * H),
        ("24/5", "3bd", 72 * H),
        ("24/7", "2h", 2 * H),
    ],
)
def test_business_days_resolve_on_the_kpi_calendar(calendar: str, target: str, expected: int) -> None:
    spec = only_kpi(parse_policies(doc(kpi(target=target, calendar=calendar))))
    assert spec.target_ms == expected
    assert spec.calendar.name == calendar and spec.calendar.timezone == "UTC"


def test_business_days_in_warnings_and_escalations_use_the_kpi_calendar() -> None:
    data = doc(
        kpi(
            target="5bd",
            warning="4bd",
            calendar="office",
            escalations=[
                {"after": "0s", "actions": [{"notify": "supervisor"}]},
                {"after": "1bd", "actions": [{"notify": "director"}]},
            ],
        ),
        calendars={"office": {"preset": "8/5", "timezone": "Europe/Berlin"}},
    )
    spec = only_kpi(parse_policies(data))
    assert (spec.target_ms, spec.warning_ms) == (40 * H, 32 * H)
    assert [(e.level, e.after_ms) for e in spec.escalations] == [(1, 0), (2, 8 * H)]
    assert spec.calendar.timezone == "Europe/Berlin"


def test_warning_as_a_share_and_as_a_duration() -> None:
    assert only_kpi(parse_policies(doc(kpi(warning="50%")))).warning_ms == 30 * M
    assert only_kpi(parse_policies(doc(kpi(warning="75 %")))).warning_ms == 45 * M
    assert only_kpi(parse_policies(doc(kpi(warning="45m")))).warning_ms == 45 * M
    assert only_kpi(parse_policies(doc(kpi(warning=600)))).warning_ms == 10 * M
    assert only_kpi(parse_policies(doc(kpi()))).warning_ms is None
    problems = problems_of(
        doc(
            kpi(name="a", warning="100%"),
            kpi(name="b", warning="0%"),
            kpi(name="c", warning="1h"),
            kpi(name="d", warning="2h"),
            kpi(name="e", warning="soon"),
            kpi(name="f", warning="0s"),
        )
    )
    base = "policies[0].kpis"
    assert set(problems) == {f"{base}[{i}].warning" for i in range(6)}
    assert "between 0% and 100%" in problems[f"{base}[0].warning"]
    assert "before the target (1h)" in problems[f"{base}[2].warning"]
    assert "'soon'" in problems[f"{base}[4].warning"]


# -- the shipped files ----------------------------------------------------------------------------------------------


def test_shipped_files_load() -> None:
    default = load_policies(DEFAULT)
    assert default.version == "2026-12-08"
    assert (default.allowed_lateness_ms, default.max_lateness_ms, default.unmatched) == (0, H, "ignore")
    assert {"always", "weekdays", "office", "field"} <= set(default.calendars)
    names = [p.name for p in default.policies]
    assert names.index("high_priority") < names.index("vip") < names.index("premium") < names.index("standard")
    assert names.index("new_purchase") < names.index("premium")
    entity_types = {"case", "email", "phone_call", "appointment", "lead", "account", "contact", "opportunity"}
    entity_types |= {"quote", "order", "invoice"}
    for entity_type in entity_types:
        assert default.select(entity_type, {"direction": "inbound"}) is not None, entity_type


def test_default_tiers_match_the_product_brief() -> None:
    default = load_policies(DEFAULT)
    expected = {
        "VIP": ("vip", "24/7", H, 24 * H),
        "Premium": ("premium", "24/5", 2 * H, 72 * H),
        "Standard": ("standard", "8/5", 8 * H, 40 * H),  # 1 business day; 5 business days
    }
    for tier, (name, hours, first_response, resolution) in expected.items():
        policy = default.select("case", {"tier": tier})
        assert policy is not None and policy.name == name
        first, resolve = policy.kpi("first_response"), policy.kpi("resolution")
        assert first is not None and resolve is not None
        assert (first.target_ms, resolve.target_ms) == (first_response, resolution)
        assert first.calendar.hours == preset(hours).hours
        assert first.calendar.timezone == "Europe/Berlin"
        assert first.on_start == (Action("notify", ("owner",), template="case_created"),)
        assert resolve.on_reopen == "resume" and resolve.reopen.holds("reopened", "case", {})
    assert default.select("case", {}) is default.policy("standard")  # no tier: the catch-all of cases


def test_vip_escalation_chain() -> None:
    vip = load_policies(DEFAULT).policy("vip")
    assert vip is not None
    first = vip.kpi("first_response")
    assert first is not None
    assert first.warning_ms == 30 * M
    assert first.on_warning == (Action("notify", ("owner",), template="first_response_reminder"),)
    levels = {e.level: e for e in first.escalations}
    assert levels[1].after_ms == 0
    assert levels[1].actions == (
        Action("notify", ("supervisor",), template="first_response_escalated"),
        Action("reassign", value="supervisor_queue"),
    )
    notified = {target for action in levels[2].actions for target in action.targets}
    assert notified == {"owner", "supervisor", "customer", "director"}
    assert Action("notify", ("customer",), template="apology_in_progress") in levels[2].actions
    assert levels[3].actions == (Action("raise_priority", value="+1"),)
    # an answered outbound call is a first response; an inbound one is not
    assert first.stop.holds("call_answered", "case", {"direction": "outbound"})
    assert not first.stop.holds("call_answered", "case", {"direction": "inbound"})


def test_selection_order() -> None:
    default = load_policies(DEFAULT)

    def chosen(entity_type: str, **attributes: str) -> str | None:
        policy = default.select(entity_type, attributes)
        return None if policy is None else policy.name

    # high priority wins over every tier
    assert chosen("case", tier="VIP", priority="high") == "high_priority"
    assert chosen("case", tier="Standard", priority="high") == "high_priority"
    assert chosen("case", tier="VIP", priority="low") == "vip"
    # a question about a new purchase: after vip, before premium and standard
    assert chosen("case", tier="Premium", category="new_purchase") == "new_purchase"
    assert chosen("case", category="new_purchase") == "new_purchase"
    assert chosen("case", tier="VIP", category="new_purchase") == "vip"
    # the coffee machine: field service first, whatever the tier or priority
    assert chosen("case", type="field_service", tier="VIP", priority="high") == "field_service"
    # e-mails of customers billed over 5,000 USD a month
    assert chosen("email", direction="inbound", monthly_revenue="5000.01") == "key_account_email"
    assert chosen("email", direction="inbound", monthly_revenue="12000") == "key_account_email"
    assert chosen("email", direction="inbound", monthly_revenue="5000") == "email"
    assert chosen("email", direction="inbound", monthly_revenue="n/a") == "email"
    assert chosen("email", direction="inbound") == "email"
    assert chosen("email", direction="outbound") is None
    key_account = default.policy("key_account_email")
    assert key_account is not None and key_account.kpis[0].target_ms == 2 * H
    new_purchase = default.policy("new_purchase")
    assert new_purchase is not None
    resolution = new_purchase.kpi("resolution")
    assert resolution is not None and resolution.target_ms == 24 * H
    high = default.policy("high_priority")
    assert high is not None
    assert [(k.name, k.target_ms) for k in high.kpis] == [("first_response", H), ("resolution", 24 * H)]


def test_coffee_machine_field_service() -> None:
    policy = load_policies(DEFAULT).select("case", {"type": "field_service"})
    assert policy is not None and policy.name == "field_service"
    arrive, repair = policy.kpi("arrive_and_diagnose"), policy.kpi("repair")
    assert arrive is not None and repair is not None
    assert arrive.target_ms == 4 * H
    assert repair.target_ms == 3 * business_day_ms(repair.calendar) == 30 * H
    for spec in (arrive, repair):
        assert spec.cancel.holds("cancelled", "case", {"status": "cancelled"})
        assert spec.stop.holds("resolved", "case", {}) and spec.stop.holds("closed", "case", {})
        assert spec.on_start == ()  # cancelled after 15 minutes: the technician is never notified
    assert repair.pause.holds("status_changed", "case", {"status": "at_external_service"})
    assert not repair.pause.holds("status_changed", "case", {"status": "repair_in_progress"})
    assert repair.resume.holds("status_changed", "case", {"status": "back_in_warehouse"})
    assert repair.resume.holds("status_changed", "case", {"status": "repair_in_progress"})
    assert not repair.resume.holds("status_changed", "case", {"status": "at_external_service"})
    assert repair.pause_reason == "status"
    assert repair.on_breach and repair.on_warning
    for name in ("customer_consent", "equipment_handover", "equipment_return"):
        assert policy.kpi(name) is not None, name
    handover = policy.kpi("equipment_handover")
    assert handover is not None
    assert handover.on_success == (Action("notify", ("owner",), template="handed_over"),)
    repair = policy.kpi("repair")
    assert repair is not None  # the customer is told when the clock pauses at the external service
    assert repair.on_pause == (Action("notify", ("customer",), template="at_external_service"),)


def test_recurring_next_reply() -> None:
    default = load_policies(DEFAULT)
    for name, target in (("vip", H), ("premium", 2 * H), ("standard", 4 * H)):
        policy = default.policy(name)
        assert policy is not None
        reply = policy.kpi("next_reply")
        assert reply is not None and reply.recurring and reply.target_ms == target
        assert reply.calendar is policy.kpis[0].calendar
        assert reply.start.holds("email_received", "case", {"direction": "inbound"})
        assert reply.stop.holds("email_sent", "case", {"direction": "outbound"})


# -- defaults -------------------------------------------------------------------------------------------------------


def test_defaults() -> None:
    policies = parse_policies({"version": 7, "policies": [{"name": "any", "kpis": [kpi()]}]})
    assert policies.version == "7"
    assert (policies.allowed_lateness_ms, policies.max_lateness_ms, policies.unmatched) == (0, H, "ignore")
    assert policies.select("lead", {}) is policies.policies[0]  # no applies_when: every record
    spec = only_kpi(policies)
    assert spec.calendar.name == "24/7" and spec.calendar.timezone == "UTC"
    assert spec.reopen.holds("reopened", "case", {}) and spec.on_reopen == "resume"
    assert (spec.recurring, spec.start_from, spec.pause_reason, spec.escalations) == (False, None, "status", ())
    assert not spec.pause.conditions and not spec.cancel.conditions
    assert policies.source == "<memory>"


def test_calendars_policy_default_and_kpi_override() -> None:
    data = doc(
        kpi(name="a"),
        kpi(name="b", calendar="weekdays"),
        kpi(name="c", calendar="8/5"),
        calendars={
            "weekdays": {"preset": "24/5", "timezone": "Europe/Berlin"},
            "24/7": {"preset": "24/7", "timezone": "Asia/Tokyo"},
        },
    )
    data["policies"][0]["calendar"] = "24/7"
    a, b, c = parse_policies(data).policies[0].kpis
    assert a.calendar.timezone == "Asia/Tokyo"  # a defined calendar wins over the preset of the same name
    assert b.calendar.name == "weekdays"
    assert c.calendar.name == "8/5" and c.calendar.timezone == "UTC"


def test_every_key_is_read() -> None:
    spec = only_kpi(
        parse_policies(
            doc(
                kpi(
                    pause={"kind": "status_changed", "status": ["waiting_for_customer"]},
                    resume={"kind": "status_changed", "status": {"not": ["waiting_for_customer"]}},
                    cancel={"kind": "cancelled"},
                    reopen={"kind": ["reopened", "escalated_again"]},
                    on_reopen="restart",
                    recurring=True,
                    start_from="reported_at",
                    pause_reason="sub_status",
                    on_start=[{"notify": "user:42", "template": "hello"}],
                    on_warning=[{"set": {"flag": 1}}],
                    on_breach=[{"reassign": "user:7"}, {"raise_priority": "high"}],
                    on_success=[{"notify": ["customer", "team"]}],
                    on_cancel=[],
                ),
                lateness={"allowed": "30s", "max": "2h"},
                unmatched="reject",
            )
        )
    )
    assert spec.pause.holds("status_changed", "case", {"status": "waiting_for_customer"})
    assert spec.resume.holds("status_changed", "case", {"status": "open"})
    assert spec.reopen.holds("escalated_again", "case", {})
    assert (spec.on_reopen, spec.recurring, spec.start_from, spec.pause_reason) == (
        "restart",
        True,
        "reported_at",
        "sub_status",
    )
    assert spec.on_start == (Action("notify", ("user:42",), template="hello"),)
    assert spec.on_warning == (Action("set", ("flag",), value="1"),)
    assert spec.on_breach == (Action("reassign", value="user:7"), Action("raise_priority", value="high"))
    assert spec.on_success == (Action("notify", ("customer", "team")),)
    assert spec.on_cancel == ()
    policies = parse_policies(doc(lateness={"allowed": "30s", "max": "2h"}, unmatched="reject"))
    assert (policies.allowed_lateness_ms, policies.max_lateness_ms, policies.unmatched) == (30 * S, 2 * H, "reject")


# -- problems -------------------------------------------------------------------------------------------------------


BROKEN = """
version: "2026-11-22"
colour: blue
lateness: {allowed: 2h, max: 1h}
unmatched: maybe
calendars:
  office: {preset: "8/5", timezone: Mars/Olympus}
  weekdays: {preset: "24/5", timezone: Europe/Berlin}
policies:
  - name: vip
    applies_when: {entity_type: case, kind: created}
    calendar: nowhere
    kpis:
      - name: first_response
        target: soon
        warning: 150%
        start: {kind: created}
        stop: []
        pause: {kind: status_changed, status: waiting}
        escalations:
          - {after: 2h, actions: [{notify: boss}]}
          - {after: 1h, actions: [{notify: owner, reassign: queue_b}]}
  - name: premium
    applies_when: {tier: Premium}
    calendar: office
    kpis:
      - name: resolution
        target: 1bd
        start: {kind: created}
        stop: {kind: resolved}
        extra: 1
      - name: resolution
        target: 0s
        calendar: weekdays
        start: {kind: created}
        stop: {kind: resolved}
        on_breach: [{raise_priority: +1}]
        on_reopen: again
  - name: vip
    applies_when: [{tier: VIP}, {kind: created}]
    kpis: []
"""


def test_a_broken_file_reports_every_problem_at_once(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {
        "colour",
        "lateness.max",
        "unmatched",
        "calendars.office.timezone",
        "policies[0].applies_when.kind",
        "policies[0].calendar",
        "policies[0].kpis[0].target",
        "policies[0].kpis[0].warning",
        "policies[0].kpis[0].stop",
        "policies[0].kpis[0].resume",
        "policies[0].kpis[0].escalations[0].actions[0].notify",
        "policies[0].kpis[0].escalations[1].after",
        "policies[0].kpis[0].escalations[1].actions[0]",
        "policies[1].kpis[0].extra",
        "policies[1].kpis[1].name",
        "policies[1].kpis[1].target",
        "policies[1].kpis[1].on_breach[0].raise_priority",
        "policies[1].kpis[1].on_reopen",
        "policies[2].name",
        "policies[2].applies_when[1].kind",
        "policies[2].kpis",
    }
    assert len(caught.value.problems) == len(problems)  # one problem per path here
    assert problems["lateness.max"].startswith("expected at least lateness.allowed (2h)")
    assert "got 'maybe'" in problems["unmatched"]
    assert "'nowhere'" in problems["policies[0].calendar"] and "'weekdays'" in problems["policies[0].calendar"]
    assert "expected a positive duration" in problems["policies[0].kpis[0].target"]
    assert "'soon'" in problems["policies[0].kpis[0].target"]
    assert "expected at least 2h (escalations[0].after)" in problems["policies[0].kpis[0].escalations[1].after"]
    assert "got notify and reassign" in problems["policies[0].kpis[0].escalations[1].actions[0]"]
    assert "'boss'" in problems["policies[0].kpis[0].escalations[0].actions[0].notify"]
    assert "duplicate KPI name 'resolution'" in problems["policies[1].kpis[1].name"]
    assert "duplicate policy name 'vip' (first at policies[0])" in problems["policies[2].name"]
    assert "quoted" in problems["policies[1].kpis[1].on_breach[0].raise_priority"]
    message = str(caught.value)
    assert str(path) in message and f"{len(problems)} problem{'' if len(problems) == 1 else 's'}:" in message
    assert f"{path}: policies[0].kpis[0].target: expected a positive duration" in message


def test_unknown_keys_everywhere() -> None:
    data = doc(
        kpi(targett="1h", escalations=[{"after": "0s", "actions": [{"notify": "owner", "templat": "x"}], "when": 1}]),
        lateness={"allowed": "0s", "maximum": "1h"},
        extra=True,
    )
    data["policies"][0]["applies"] = {"tier": "VIP"}
    problems = problems_of(data)
    assert set(problems) == {
        "extra",
        "lateness.maximum",
        "policies[0].applies",
        "policies[0].kpis[0].targett",
        "policies[0].kpis[0].escalations[0].when",
        "policies[0].kpis[0].escalations[0].actions[0].templat",
    }
    assert "did you mean 'target'?" in problems["policies[0].kpis[0].targett"]
    assert "did you mean 'max'?" in problems["lateness.maximum"]
    assert "expected one of:" in problems["extra"]


def test_bad_calendar_references() -> None:
    data = doc(
        kpi(name="a", calendar="offfice"),
        kpi(name="b", calendar="broken"),
        kpi(name="c", calendar=5),
        kpi(name="d", calendar="office", target="1bd"),
        calendars={"office": {"preset": "8/5"}, "broken": {"preset": "9/9"}},
    )
    problems = problems_of(data)
    # the broken calendar is reported once, where it is defined, not again where it is used
    assert set(problems) == {
        "calendars.broken.preset",
        "policies[0].kpis[0].calendar",
        "policies[0].kpis[2].calendar",
    }
    assert (
        "'offfice'" in problems["policies[0].kpis[0].calendar"]
        and "'office'" in problems["policies[0].kpis[0].calendar"]
    )
    assert "'24/7'" in problems["policies[0].kpis[0].calendar"]


def test_a_bad_policy_calendar_is_reported_once() -> None:
    data = doc(kpi(name="a", target="1bd"), kpi(name="b"))
    data["policies"][0]["calendar"] = "nowhere"
    assert set(problems_of(data)) == {"policies[0].calendar"}


def test_pause_and_resume_go_together() -> None:
    problems = problems_of(
        doc(
            kpi(name="a", pause={"kind": "status_changed", "status": "waiting"}),
            kpi(name="b", resume={"kind": "status_changed"}),
        )
    )
    assert set(problems) == {"policies[0].kpis[0].resume", "policies[0].kpis[1].resume"}
    assert problems["policies[0].kpis[0].resume"].startswith("required when pause is given")
    assert "without pause" in problems["policies[0].kpis[1].resume"]


def test_kind_is_not_allowed_in_applies_when() -> None:
    data = doc()
    data["policies"][0]["applies_when"] = {"entity_type": "case", "kind": "created"}
    problems = problems_of(data)
    assert set(problems) == {"policies[0].applies_when.kind"}
    assert "kind is not allowed in applies_when" in problems["policies[0].applies_when.kind"]
    data["policies"][0]["applies_when"] = [{"tier": "VIP"}, {"tier": "Gold", "kind": ["created"]}]
    assert set(problems_of(data)) == {"policies[0].applies_when[1].kind"}


def test_bad_actions() -> None:
    problems = problems_of(
        doc(
            kpi(
                on_start=[
                    {"notify": "boss"},
                    {"notify": ["owner", "user:", "everyone"]},
                    {"notify": []},
                    {"template": "only_a_template"},
                    {"notify": "owner", "reassign": "q"},
                    {"raise_priority": 1},
                    {"reassign": "user:"},
                    {"set": {"a": 1, "b": 2}},
                    {"set": {"a": [1]}},
                    {"notify": "owner", "template": ""},
                    "notify owner",
                ],
                on_breach={"notify": "owner"},
            )
        )
    )
    base = "policies[0].kpis[0]"
    assert set(problems) == {
        f"{base}.on_start[0].notify",
        f"{base}.on_start[1].notify[1]",
        f"{base}.on_start[1].notify[2]",
        f"{base}.on_start[2].notify",
        f"{base}.on_start[3]",
        f"{base}.on_start[4]",
        f"{base}.on_start[5].raise_priority",
        f"{base}.on_start[6].reassign",
        f"{base}.on_start[7].set",
        f"{base}.on_start[8].set.a",
        f"{base}.on_start[9].template",
        f"{base}.on_start[10]",
        f"{base}.on_breach",
    }
    assert "owner, supervisor, director, customer, team or user:<id>" in problems[f"{base}.on_start[0].notify"]
    assert "got none" in problems[f"{base}.on_start[3]"]


def test_escalation_offsets_must_not_decrease() -> None:
    def escalations(*afters: object) -> list[dict[str, Any]]:
        return [{"after": after, "actions": [{"notify": "supervisor"}]} for after in afters]

    ok = only_kpi(parse_policies(doc(kpi(calendar="8/5", escalations=escalations("0s", "0s", "1bd", "9h")))))
    assert [(e.level, e.after_ms) for e in ok.escalations] == [(1, 0), (2, 0), (3, 8 * H), (4, 9 * H)]
    problems = problems_of(
        doc(
            kpi(name="a", calendar="8/5", escalations=escalations("1bd", "4h")),  # 8 h, then 4 h
            kpi(name="b", calendar="24/7", escalations=escalations("2h", "1h", "30m", "3h")),
            kpi(name="c", escalations=[{"after": "-1h", "actions": []}, {"actions": [{"notify": "owner"}]}]),
            kpi(name="d", escalations={"after": "1h"}),
        )
    )
    base = "policies[0].kpis"
    assert set(problems) == {
        f"{base}[0].escalations[1].after",
        f"{base}[1].escalations[1].after",
        f"{base}[1].escalations[2].after",
        f"{base}[2].escalations[0].after",
        f"{base}[2].escalations[0].actions",
        f"{base}[2].escalations[1].after",
        f"{base}[3].escalations",
    }
    assert "expected at least 8h (escalations[0].after)" in problems[f"{base}[0].escalations[1].after"]
    assert "expected at least 1h (escalations[1].after)" in problems[f"{base}[1].escalations[2].after"]


def test_lateness() -> None:
    problems = problems_of(doc(lateness={"allowed": "2h", "max": "1h"}))
    assert set(problems) == {"lateness.max"}
    assert "expected at least lateness.allowed (2h)" in problems["lateness.max"]
    assert "got 1h" in problems["lateness.max"]
    problems = problems_of(doc(lateness={"allowed": "3h"}))
    assert set(problems) == {"lateness.max"} and "(the default)" in problems["lateness.max"]
    problems = problems_of(doc(lateness={"allowed": "1bd", "max": "later"}))
    assert set(problems) == {"lateness.allowed", "lateness.max"}
    assert set(problems_of(doc(lateness="1h"))) == {"lateness"}
    equal = parse_policies(doc(lateness={"allowed": "1h", "max": "1h"}))
    assert (equal.allowed_lateness_ms, equal.max_lateness_ms) == (H, H)


def test_structure_problems() -> None:
    assert set(problems_of({"policies": []})) == {"version", "policies"}
    assert set(problems_of(["a list"])) == {"(top)"}
    assert set(problems_of(None)) == {"(top)"}
    data = doc(kpi(name="first response"), kpi(name="ok", start=None, stop="resolved", recurring="yes", start_from=""))
    data["policies"].append("not a policy")
    data["policies"].append({"name": "p2", "applies_when": {"tier": {"gt": "high"}}, "kpis": ["not a kpi"]})
    problems = problems_of(data)
    assert set(problems) == {
        "policies[0].kpis[0].name",
        "policies[0].kpis[1].start",
        "policies[0].kpis[1].stop",
        "policies[0].kpis[1].recurring",
        "policies[0].kpis[1].start_from",
        "policies[1]",
        "policies[2].applies_when.tier.gt",
        "policies[2].kpis[0]",
    }


def test_a_catch_all_policy_hides_the_policies_after_it() -> None:
    data = doc()
    data["policies"] = [
        {"name": "tiered", "applies_when": {"tier": "VIP"}, "kpis": [kpi()]},
        {"name": "everything", "kpis": [kpi()]},
        {"name": "never", "applies_when": {"entity_type": "lead"}, "kpis": [kpi()]},
        {"name": "neither", "applies_when": [{"tier": "x"}, {}], "kpis": [kpi()]},
    ]
    problems = problems_of(data)
    assert set(problems) == {"policies[2]", "policies[3]"}
    assert "policies[1] ('everything') applies to every record" in problems["policies[2]"]


def test_version_forms() -> None:
    assert parse_policies(doc(version=2026.1)).version == "2026.1"
    data = doc()
    data["version"] = __import__("datetime").date(2026, 11, 22)
    assert parse_policies(data).version == "2026-11-22"
    assert set(problems_of(doc(version=True))) == {"version"}
    assert set(problems_of(doc(version=""))) == {"version"}


def test_parse_policies_does_not_change_its_input() -> None:
    data = doc(kpi(on_start=[{"notify": ["owner"]}]))
    before = deepcopy(data)
    parse_policies(data)
    assert data == before


# -- files ----------------------------------------------------------------------------------------------------------


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path / "missing.yaml")
    assert [p.path for p in caught.value.problems] == ["(file)"]
    assert "cannot be read" in caught.value.problems[0].message
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed\n")
    with pytest.raises(PolicyError) as caught:
        load_policies(bad)
    assert [p.path for p in caught.value.problems] == ["(file)"]
    assert "is not valid YAML" in caught.value.problems[0].message and "line 2" in caught.value.problems[0].message
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00version")
    with pytest.raises(PolicyError, match=r"\(file\)"):
        load_policies(binary)
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    with pytest.raises(PolicyError, match=r"\(top\): expected a mapping"):
        load_policies(empty)


def test_duplicate_keys_are_problems(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(
        """
version: "1"
defaults: &defaults {start: {kind: created}, stop: {kind: resolved}}
policies:
  - name: p
    kpis:
      - name: a
        target: 1h
        target: 2h
        start: {kind: created}
        stop: {kind: resolved}
      - {<<: *defaults, name: b, target: 1h, stop: {kind: closed}}
"""
    )
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    problems = {p.path: p.message for p in caught.value.problems}
    # a key given by a merge (<<) and again explicitly is an override, not a duplicate
    assert set(problems) == {"defaults", "policies[0].kpis[0].target"}
    assert "duplicate key on line 9 (first on line 8)" in problems["policies[0].kpis[0].target"]


def test_yaml_anchors_and_merge_keys_are_supported(tmp_path: Path) -> None:
    path = tmp_path / "anchors.yaml"
    path.write_text(
        """
version: "1"
policies:
  - name: p
    applies_when: {entity_type: case}
    calendar: "8/5"
    kpis:
      - &reply {name: reply, target: 1h, start: {kind: email_received}, stop: {kind: email_sent}, recurring: true}
  - name: q
    applies_when: {entity_type: lead}
    kpis:
      - {<<: *reply, target: 1bd}
"""
    )
    policies = load_policies(path)
    assert policies.source == str(path)
    p, q = policies.policies
    assert (p.kpis[0].target_ms, q.kpis[0].target_ms) == (H, 24 * H)
    assert q.kpis[0].recurring and q.kpis[0].calendar.name == "24/7"
