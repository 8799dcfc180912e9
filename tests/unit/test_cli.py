"""The command line for people: help, one name per option, and a user's mistake as one paragraph with the same
exit code in every command (2 configuration, 130 interrupt), never a traceback."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents import cli
from agents.cli import build_parser, main, slaflow_version
from tests.policies import VIP_FIRST_RESPONSE


def commands(parser: argparse.ArgumentParser, path: str = "slaflow") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every (sub)command parser with its name, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub
                yield from commands(sub, f"{path} {name}")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"slaflow {slaflow_version()}"


def test_every_command_has_a_summary_a_description_and_named_values() -> None:
    parser = build_parser()
    summaries = {
        name: action.help
        for a in parser._actions
        if isinstance(a, argparse._SubParsersAction)
        for action in a._choices_actions
        for name in [action.dest]
    }
    assert summaries and all(summaries.values()), summaries
    for name, sub in commands(parser):
        assert sub.description, name
        for action in sub._actions:
            if not action.option_strings or action.nargs == 0 or isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.option_strings)
            shown = action.metavar or (action.choices and "{...}")
            assert shown, f"{name} {action.option_strings[0]} needs a metavariable naming its value"
            assert not str(action.metavar or "").startswith(("SLAFLOW_", "KAFKA_")), (name, action.metavar)


def test_the_same_option_has_the_same_meaning_everywhere() -> None:
    meaning: dict[str, set[str]] = {}
    for _name, sub in commands(build_parser()):
        for action in sub._actions:
            for flag in action.option_strings:
                meaning.setdefault(flag, set()).add(action.dest)
    assert {flag: dests for flag, dests in meaning.items() if len(dests) > 1} == {}


@pytest.mark.parametrize(
    ("command", "present", "absent"),
    [
        ("worker", ("--bootstrap", "--policies", "--web-port", "--tick-interval"), ("--clickhouse-url", "--tz")),
        ("clickhouse migrate", ("--clickhouse-url", "--data-dir"), ("--bootstrap", "--store", "--policies")),
        ("report", ("--clickhouse-url", "--tz", "--top"), ("--bootstrap", "--store")),
        ("alerts", ("--bootstrap", "--tz", "--kind", "--from-beginning", "--json"), ("--clickhouse-url",)),
        ("produce", ("--events", "--create-topics", "--bootstrap"), ("--clickhouse-url", "--web-port")),
    ],
)
def test_a_command_shows_only_the_options_it_uses(
    command: str, present: tuple[str, ...], absent: tuple[str, ...]
) -> None:
    sub = dict(commands(build_parser()))[f"slaflow {command}"]
    flags = {flag for action in sub._actions for flag in action.option_strings}
    assert set(present) <= flags and not set(absent) & flags, sorted(flags)
    assert "[SLAFLOW_" in sub.format_help() or "KAFKA_BOOTSTRAP" in sub.format_help()  # the variable is named


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The exit code and stderr of ``slaflow ARGV`` (argparse's own usage errors included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


def test_a_bad_value_is_named_as_the_user_typed_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, err = run(["worker", "--partitions", "many"], capsys)
    assert code == 2 and "argument --partitions: invalid int value: 'many'" in err
    code, err = run(["worker", "--partitions", "0", "--bootstrap", "127.0.0.1:1"], capsys)
    assert (code, err) == (2, "slaflow worker: error: --partitions must be at least 1, got 0\n")
    monkeypatch.setenv("SLAFLOW_PARTITIONS", "0")
    code, err = run(["worker", "--bootstrap", "127.0.0.1:1"], capsys)
    assert (code, err) == (2, "slaflow worker: error: SLAFLOW_PARTITIONS must be at least 1, got 0\n")
    monkeypatch.delenv("SLAFLOW_PARTITIONS")
    code, err = run(["report", "--clickhouse-url", "clickhouse:8123"], capsys)
    assert code == 2 and err.startswith("slaflow report: error: --clickhouse-url must start with chdb://")
    assert run(["alerts", "--tz", "Mars/Olympus", "--bootstrap", "127.0.0.1:1"], capsys)[0] == 2
    assert "unknown; expected one of" in run(["alerts", "--kind", "LOUD", "--bootstrap", "127.0.0.1:1"], capsys)[1]


def test_an_impossible_holiday_date_is_a_policy_error_in_replay_and_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regression: PyYAML's traceback and exit 1 for ``holidays: [2026-13-01]``."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        VIP_FIRST_RESPONSE.replace(
            'always: {preset: "24/7", timezone: UTC}',
            'always: {preset: "24/7", timezone: UTC, holidays: [2026-13-01, 2026-02-30]}',
        )
    )
    events = tmp_path / "events.jsonl"
    events.write_text("")
    for argv in (
        ["replay", "--policies", str(bad), "--events", str(events)],
        ["worker", "--policies", str(bad), "--bootstrap", "127.0.0.1:1"],
    ):
        code, err = run(argv, capsys)
        assert code == 2, err
        assert f"{bad}: calendars.always.holidays[0]: expected a date (YYYY-MM-DD) that exists, got '2026-13-01'" in err
        assert "calendars.always.holidays[1]" in err and "'2026-02-30'" in err


def test_report_on_a_directory_without_a_slaflow_database_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["report", "--data-dir", str(tmp_path / "nothing-here")], capsys)
    assert code == 2 and "no slaflow database in" in err and "check --data-dir" in err
    assert not (tmp_path / "nothing-here").exists(), "a report must not create an empty database"


def test_an_interrupt_is_exit_130_in_every_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_migrate", interrupted)
    assert run(["clickhouse", "migrate"], capsys) == (130, "slaflow clickhouse migrate: interrupted\n")
