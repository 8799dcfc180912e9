"""`slaflow simulate` then `slaflow replay`, as a user runs them: breach and success counts match the truth."""

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from agents.settings import DEFAULT_POLICIES


def slaflow(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result


def test_replaying_a_simulated_day_gives_the_simulators_breach_and_success_counts(tmp_path: Path) -> None:
    events, truth, outputs = tmp_path / "day.jsonl", tmp_path / "truth.jsonl", tmp_path / "outputs.jsonl"
    made = slaflow("simulate", "--seed", "5", "--days", "1", "--cases-per-day", "3000", "--out", str(events),
                   "--truth", str(truth))  # fmt: skip
    until = re.search(r"--until (\d+)", made.stderr)
    assert until is not None, made.stderr
    slaflow("replay", "--policies", str(DEFAULT_POLICIES), "--events", str(events), "--until", until.group(1),
            "--out", str(outputs), "--quiet")  # fmt: skip

    expected = {}
    for line in truth.read_text().splitlines():
        row = json.loads(line)
        expected[(row["record_id"], row["kpi"], row["instance"])] = row["expected"]
    latest: dict[str, dict] = {}
    for line in outputs.read_text().splitlines():  # per output id, the highest revision
        output = json.loads(line)
        known = latest.get(output["output_id"])
        if known is None or output["revision"] >= known["revision"]:
            latest[output["output_id"]] = output
    breached: set[tuple[str, str, int]] = set()
    last_transition: dict[tuple[str, str, int], dict] = {}
    for output in sorted(latest.values(), key=lambda o: o["at_ms"]):
        key = (output["record_id"], output["kpi"], output["kpi_instance"])
        if output["revoked"]:
            continue
        if output["kind"] == "BREACH":
            breached.add(key)
        elif output["kind"].startswith("KPI_"):
            last_transition[key] = output
    found = {}
    for key, transition in last_transition.items():
        if transition["kind"] == "KPI_CANCELLED":
            found[key] = "cancelled"
        elif transition["kind"] == "KPI_SUCCEEDED":
            found[key] = "breached" if key in breached else "met"
        else:
            found[key] = "breached" if key in breached else "open"
    assert found == expected
    outcomes = Counter(expected.values())
    assert outcomes["breached"] > 50 and outcomes["met"] > 500
