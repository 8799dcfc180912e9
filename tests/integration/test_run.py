"""`slaflow run` (what `make run` calls): its own broker, worker and feed; alerts printed; nothing left behind."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def run_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLAFLOW_"))}
    env.update(SLAFLOW_DATA_DIR=str(tmp_path / "run"), SLAFLOW_WEB_PORT="0", SLAFLOW_SINK_METRICS_PORT="0")
    env.update(SLAFLOW_DISPLAY_TZ="Europe/Berlin")
    return env


def pids(output: str) -> list[int]:
    """The broker's, the worker's and the sink's process ids, as the demo prints them."""
    found = [int(p) for p in re.findall(r"\(pid (\d+)", output)]
    assert len(found) == 3, output
    return found


def gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


def test_run_prints_warnings_and_breaches_and_records_them_in_clickhouse(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "agents.cli", "run", "--duration", "45"],
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"Apache Kafka 4\.\d+\.\d+ on 127\.0\.0\.1:\d+", out)
    # Alert lines carry the simulated time (the demo's contact centre starts on Monday 2026-03-02), in the
    # display time zone; an escalation at its breach's instant is folded into the breach's line.
    printed = [line for line in out.splitlines() if re.match(r"Mon 2026-03-02 \d\d:\d\d CET  (WARNING|BREACH)", line)]
    assert any("  WARNING " in line for line in printed) and any("  BREACH" in line for line in printed), out
    assert not any(line.split("  ", 1)[1].startswith("ESCALATION#1") for line in printed), "folded into the breach"
    assert re.search(r"^stopped after \d+ s: \d+ events fed, simulated Mon 2026-03-02 09:00 CET to", out, re.M), out
    assert re.search(r"^  queue +met +breached +of them open +longest wait past a deadline$", out, re.MULTILINE), out
    assert re.search(r"^  (billing|account|delivery|technical) +\d+ +\d+ +\d+  ", out, re.MULTILINE), out
    assert not re.search(r"1\d{12}", out), "no bare epoch milliseconds for people"
    assert re.search(r"^report: [\d,]+ KPIs ended \([\d,]+ met, [\d,]+ breached, [\d,]+ cancelled\)", out, re.M), out
    html = Path(re.search(r"^HTML report: (\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert html.is_file() and html.read_text().count("<svg") >= 4
    assert all(gone(pid) for pid in pids(out))


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "run"],
        env=run_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as demo:
        assert demo.stdout is not None
        lines = []
        for line in demo.stdout:
            lines.append(line)
            if " WARNING " in line:
                break
        os.killpg(demo.pid, signal.SIGINT)  # what a terminal's Ctrl-C does to the foreground group
        rest, _ = demo.communicate(timeout=120)
    out = "".join(lines) + rest
    assert demo.returncode == 130, out  # an interrupt, as in every command; everything is stopped all the same
    assert "stopped after" in out
    assert all(gone(pid) for pid in pids(out)), out
