"""Replay: the Replayer drives the core with the events' own time; ``slaflow replay`` runs it over files."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import pytest

from agents.replay import MAX_PRINTED_REJECTS, Progress, add_command, format_progress
from streams.core import EventRejected, SlaCore
from streams.events import RecordEvent, event_to_json
from streams.kpi import KpiState
from streams.outputs import OutputKind
from streams.policy import load_policies
from streams.replay import Replayer
from tests.policies import VIP_FIRST_RESPONSE

T = 1_772_442_900_000  # 2026-03-02T09:15:00Z
MIN = 60_000
HOUR = 60 * MIN


BAD_POLICY = """\
version: "t1"
policies:
  - name: vip
    applies_when: {entity_type: case, tier: VIP}
    kpis:
      - name: first_response
        target: soon
        warning: 30m
        start: {kind: created}
        stopp: {kind: first_response}
"""


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "policies.yaml"
    path.write_text(VIP_FIRST_RESPONSE)
    return path


def ev(event_id: str, record_id: str, kind: str, at_ms: int, **attributes: str) -> RecordEvent:
    return RecordEvent(event_id, record_id, "case", kind, at_ms, attributes)


def replayer(policy_file: Path) -> Replayer:
    return Replayer(SlaCore(load_policies(policy_file)))


def brief(outputs: list[Any]) -> list[tuple[str, str, int, int | None]]:
    """(kind, record, at, deadline) relative to T."""
    return [
        (o.kind.value, o.record_id, o.at_ms - T, None if o.deadline_ms is None else o.deadline_ms - T) for o in outputs
    ]


# -- the Replayer ---------------------------------------------------------------------------------------------------


def test_vip_case_with_no_response_warns_then_breaches(policy_file: Path) -> None:
    r = replayer(policy_file)
    assert brief(r.feed(ev("e1", "c1", "created", T, tier="VIP"))) == [("KPI_STARTED", "c1", 0, HOUR)]
    # Another record's event moves the watermark past c1's warning point: the warning fires then.
    assert brief(r.feed(ev("e2", "c2", "created", T + 45 * MIN, tier="Standard"))) == [
        ("WARNING", "c1", 30 * MIN, HOUR)
    ]
    final = r.finish(T + 2 * HOUR)
    assert brief(final) == [("BREACH", "c1", HOUR, HOUR)]
    breach = final[0]
    assert (breach.business_elapsed_ms, breach.wall_elapsed_ms, breach.policy, breach.kpi) == (
        HOUR,
        HOUR,
        "vip",
        "first_response",
    )
    assert r.outcomes() == {("c1", "first_response", 0): KpiState.BREACHED}
    assert (r.events_fed, r.applied, dict(r.outputs)) == (2, 2, {"KPI_STARTED": 1, "WARNING": 1, "BREACH": 1})


def test_a_response_in_time_succeeds_without_alerts(policy_file: Path) -> None:
    r = replayer(policy_file)
    r.feed(ev("e1", "c1", "created", T, tier="VIP"))
    assert brief(r.feed(ev("e2", "c1", "first_response", T + 10 * MIN))) == [("KPI_SUCCEEDED", "c1", 10 * MIN, HOUR)]
    assert r.finish(T + 5 * HOUR) == []
    assert r.outcomes() == {("c1", "first_response", 0): KpiState.SUCCEEDED}


def test_time_only_advances_with_events_or_until(policy_file: Path) -> None:
    r = replayer(policy_file)
    r.feed(ev("e1", "c1", "created", T, tier="VIP"))
    assert r.finish() == []
    assert r.finish(T - HOUR) == []  # earlier than the watermark: nothing
    assert r.watermark_ms == T
    assert r.outcomes(T + 40 * MIN) == {("c1", "first_response", 0): KpiState.WARNING}
    assert brief(r.finish(T + 40 * MIN)) == [("WARNING", "c1", 30 * MIN, HOUR)]
    assert brief(r.finish(T + HOUR)) == [("BREACH", "c1", HOUR, HOUR)]


def test_deadlines_of_many_records_fire_in_order(policy_file: Path) -> None:
    r = replayer(policy_file)
    r.feed(ev("a", "c1", "created", T, tier="VIP"))
    r.feed(ev("b", "c2", "created", T + 10 * MIN, tier="VIP"))
    fired = r.finish(T + 3 * HOUR)
    assert brief(fired) == [
        ("WARNING", "c1", 30 * MIN, HOUR),
        ("BREACH", "c1", HOUR, HOUR),
        ("WARNING", "c2", 40 * MIN, 70 * MIN),
        ("BREACH", "c2", 70 * MIN, 70 * MIN),
    ]


def test_a_late_event_is_counted_and_raised(policy_file: Path) -> None:
    r = replayer(policy_file)
    r.feed(ev("e1", "c1", "created", T, tier="VIP"))
    r.feed(ev("e2", "c2", "created", T + 3 * HOUR, tier="VIP"))
    with pytest.raises(EventRejected) as caught:
        r.feed(ev("e3", "c1", "first_response", T + 5 * MIN))
    assert caught.value.reason == "late"
    assert (r.events_fed, r.applied, dict(r.rejected)) == (3, 2, {"late": 1})


def test_a_rejected_event_does_not_move_the_watermark(tmp_path: Path) -> None:
    path = tmp_path / "reject.yaml"
    path.write_text(VIP_FIRST_RESPONSE.replace('version: "t1"', 'version: "t1"\nunmatched: reject'))
    r = replayer(path)
    r.feed(ev("e1", "c1", "created", T, tier="VIP"))
    with pytest.raises(EventRejected) as caught:
        r.feed(ev("e2", "c9", "created", T + 10 * HOUR, tier="Standard"))
    assert caught.value.reason == "no_policy"
    assert r.watermark_ms == T
    assert dict(r.rejected) == {"no_policy": 1}
    assert "c9" not in r.states


# -- slaflow replay ---------------------------------------------------------------------------------------------------


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="slaflow")
    add_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["replay", *map(str, argv)])
    code: int = args.func(args)
    return code


def line(event_id: str, record_id: str, kind: str, at: str, **extra: Any) -> str:
    obj = {"event_id": event_id, "record_id": record_id, "entity_type": "case", "kind": kind, "occurred_at": at}
    obj.update(extra)
    return json.dumps(obj)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(text) for text in path.read_text().splitlines()]


def test_cli_reports_and_skips_bad_lines(tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        line("e1", "c1", "created", "2026-03-02T09:15:00Z", attributes={"tier": "VIP"}),
        "{not json",
        "",
        line("e2", "c2", "created", "2026-03-02T10:30:00Z", attributes={"tier": "VIP"}, extra=1),
        line("e3", "c3", "created", "2026-03-02T11:30:00Z", attributes={"tier": "VIP"}),
        line("e4", "c1", "first_response", "2026-03-02T09:20:00Z"),
    ]
    events.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"

    assert run("--policies", policy_file, "--events", events, "--out", out) == 0

    rejects = read_jsonl(tmp_path / "events.jsonl.rejects.jsonl")
    assert [(r["line"], r["reason"]) for r in rejects] == [(2, "bad_json"), (4, "unknown_field"), (6, "late")]
    assert [r["text"] for r in rejects] == [lines[1], lines[3], lines[5]]
    assert "'extra'" in rejects[1]["detail"]
    outputs = read_jsonl(out)
    assert [(o["kind"], o["record_id"]) for o in outputs] == [
        ("KPI_STARTED", "c1"),
        ("KPI_STARTED", "c3"),
        ("WARNING", "c1"),
        ("BREACH", "c1"),
    ]
    assert outputs[3]["at_ms"] == T + HOUR and outputs[3]["deadline_ms"] == T + HOUR
    err = capsys.readouterr().err
    assert f"{events}:2: bad_json: " in err
    assert f"{events}:4: unknown_field: " in err
    assert f"{events}:6: late: " in err
    assert "5 events read" in err and "2 applied" in err and "3 rejected" in err
    assert "KPI_STARTED 2" in err and "BREACH 1" in err and "events/s" in err


def test_cli_until_fires_deadlines_after_the_last_event(
    tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(line("e1", "c1", "created", "2026-03-02T09:15:00Z", attributes={"tier": "VIP"}) + "\n")
    without, with_until = tmp_path / "a.jsonl", tmp_path / "b.jsonl"

    assert run("--policies", policy_file, "--events", events, "--out", without, "--quiet") == 0
    assert [o["kind"] for o in read_jsonl(without)] == ["KPI_STARTED"]

    assert run("--policies", policy_file, "--events", events, "--out", with_until, "--until", "2026-03-02T12:00Z") == 0
    outputs = read_jsonl(with_until)
    assert [(o["kind"], o["at_ms"], o["deadline_ms"]) for o in outputs] == [
        ("KPI_STARTED", T, T + HOUR),
        ("WARNING", T + 30 * MIN, T + HOUR),
        ("BREACH", T + HOUR, T + HOUR),
    ]
    assert outputs[2] == json.loads(json.dumps(outputs[2]))  # plain JSON
    assert (tmp_path / "events.jsonl.rejects.jsonl").read_text() == ""

    epoch = tmp_path / "c.jsonl"
    assert run("--policies", policy_file, "--events", events, "--out", epoch, "--until", str(T + 40 * MIN)) == 0
    assert [o["kind"] for o in read_jsonl(epoch)] == ["KPI_STARTED", "WARNING"]
    assert capsys.readouterr().err.count("0 rejected") == 2  # --quiet printed no summary


def test_cli_bad_policy_file_lists_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = tmp_path / "bad.yaml"
    policies.write_text(BAD_POLICY)
    events = tmp_path / "events.jsonl"
    events.write_text("")
    assert run("--policies", policies, "--events", events, "--out", tmp_path / "out.jsonl") == 2
    err = capsys.readouterr().err
    assert "3 problems:" in err
    for where in ("policies[0].kpis[0].stopp", "policies[0].kpis[0].target", "policies[0].kpis[0].stop:"):
        assert where in err
    assert not (tmp_path / "out.jsonl").exists()


def test_cli_missing_files_exit_2_naming_the_file(
    tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.jsonl"
    assert run("--policies", policy_file, "--events", missing) == 2
    assert f"cannot read the events file {missing}" in capsys.readouterr().err
    assert run("--policies", tmp_path / "nope.yaml", "--events", missing) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_cli_bad_until_is_a_usage_error(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        run("--policies", policy_file, "--events", "x.jsonl", "--until", "2026-03-02T12:00")  # no offset
    assert caught.value.code == 2
    assert "--until" in capsys.readouterr().err


def test_cli_caps_printed_rejects(tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("[]\n" * (MAX_PRINTED_REJECTS + 5))
    rejects = tmp_path / "r.jsonl"
    assert run("--policies", policy_file, "--events", events, "--out", tmp_path / "o", "--rejects", rejects) == 0
    err = capsys.readouterr().err
    assert err.count(": not_an_object: ") == MAX_PRINTED_REJECTS
    assert "5 more rejected lines" in err
    assert len(read_jsonl(rejects)) == MAX_PRINTED_REJECTS + 5


def test_cli_reads_stdin_and_writes_stdout(
    tmp_path: Path, policy_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    created = event_to_json(RecordEvent("e1", "c1", "case", "created", T, {"tier": "VIP"}))
    data = (json.dumps(created) + "\n" + "oops\n").encode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    monkeypatch.chdir(tmp_path)
    assert run("--policies", policy_file, "--events", "-") == 0
    captured = capsys.readouterr()
    assert [json.loads(t)["kind"] for t in captured.out.splitlines()] == ["KPI_STARTED"]
    assert "<stdin>:2: bad_json: " in captured.err
    assert [r["line"] for r in read_jsonl(tmp_path / "replay.rejects.jsonl")] == [2]


def test_output_lines_are_output_to_json(tmp_path: Path, policy_file: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(line("e1", "c1", "created", "2026-03-02T09:15:00Z", attributes={"tier": "VIP"}) + "\n")
    out = tmp_path / "out.jsonl"
    assert run("--policies", policy_file, "--events", events, "--out", out, "--quiet") == 0
    r = replayer(policy_file)
    expected = r.feed(ev("e1", "c1", "created", T, tier="VIP"))
    assert read_jsonl(out) == [o.to_json() for o in expected]
    assert read_jsonl(out)[0]["kind"] == OutputKind.KPI_STARTED.value


# -- progress bar -----------------------------------------------------------------------------------------------------


def test_progress_with_a_known_size() -> None:
    assert format_progress(50_000, 2.0, 500, 1000) == (
        "[############------------]  50.0%  50,000 events  25,000 events/s  0:02 left"
    )
    assert format_progress(1_000_000, 100.0, 1, 4) == (
        "[######------------------]  25.0%  1,000,000 events  10,000 events/s  5:00 left"
    )
    assert format_progress(9, 3600.0, 1, 3).endswith("2:00:00 left")
    assert format_progress(10, 1.0, 1000, 1000).startswith("[########################] 100.0%")


def test_progress_at_the_start_and_without_a_size() -> None:
    assert format_progress(0, 0.0, 0, 1000) == "[------------------------]   0.0%  0 events  0 events/s  ? left"
    assert format_progress(1234, 2.0, 5000, None) == "1,234 events  617 events/s"


def test_progress_redraws_in_place_and_clears() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress.update(10, 5, 10)
    drawn = stream.getvalue()
    assert drawn.startswith("\r[") and "10 events" in drawn and "\n" not in drawn
    progress.clear()
    assert stream.getvalue().endswith("\r" + " " * (len(drawn) - 1) + "\r")


def test_cli_refuses_to_overwrite_the_events_file(
    tmp_path: Path, policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = tmp_path / "events.jsonl"
    text = line("e1", "c1", "created", "2026-03-02T09:15:00Z", attributes={"tier": "VIP"}) + "\n"
    events.write_text(text)
    assert run("--policies", policy_file, "--events", events, "--out", events) == 2
    assert run("--policies", policy_file, "--events", events, "--rejects", events) == 2
    assert events.read_text() == text
    assert "it would be overwritten" in capsys.readouterr().err
