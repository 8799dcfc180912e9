from pathlib import Path

import pytest

from agents.demo import DEMO_POLICIES
from agents.settings import DEFAULT_POLICIES
from streams.errors import PolicyError
from streams.policy import load_policies, parse_duration_ms, parse_policies


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", 3_600_000),
        ("30m", 1_800_000),
        ("1h30m", 5_400_000),
        ("2d", 172_800_000),
        ("250ms", 250),
        ("1.5s", 1500),
        (90, 90_000),
        ("", None),
        ("1x", None),
        ("h1", None),
        (True, None),
        (-5, None),
        ("1h 30m", 5_400_000),
    ],
)
def test_parse_duration(text: object, expected: int | None) -> None:
    assert parse_duration_ms(text) == expected


def test_shipped_policy_files_are_valid() -> None:
    default = load_policies(DEFAULT_POLICIES)
    assert [p.name for p in default.policies] == ["vip", "premium", "standard"]
    vip = default.select("case", {"tier": "VIP"})
    assert vip is not None
    first = {k.name: k for k in vip.kpis}["first_response"]
    assert (first.target_ms, first.warning_ms) == (3_600_000, 1_800_000)
    assert default.select("case", {"tier": "Gold"}) is default.policies[2]  # the catch-all standard tier
    assert default.select("lead", {"tier": "VIP"}) is None
    assert load_policies(DEMO_POLICIES).version == "demo-1"


def test_every_problem_is_reported_with_file_and_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        """
version: "1"
colour: blue
policies:
  - name: vip
    applies_when: {tier: [VIP]}
    kpis:
      - name: first_response
        target: soon
        warning: 150%
        start_on: []
        stop_on: [first_response]
  - name: vip
    kpis:
      - {name: resolution, target: 1d, warning: 2d, start_on: created, stop_on: [resolved], extra: 1}
"""
    )
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    problems = {p.path: p.message for p in caught.value.problems}
    assert set(problems) == {
        "colour",
        "policies[0].applies_when.tier",
        "policies[0].kpis[0].target",
        "policies[0].kpis[0].warning",
        "policies[0].kpis[0].start_on",
        "policies[1].kpis[0].warning",
        "policies[1].kpis[0].extra",
    }
    assert "expected a positive duration" in problems["policies[0].kpis[0].target"]
    assert "'soon'" in problems["policies[0].kpis[0].target"]
    assert str(path) in str(caught.value)
    assert "7 problem(s)" in str(caught.value)


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policies(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: [unclosed")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policies(bad)
    with pytest.raises(PolicyError, match=r"\(top\): expected a mapping"):
        parse_policies(["a list"], "inline")
