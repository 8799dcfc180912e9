"""``slaflow alerts`` on the real broker: readable lines in the chosen time zone, every message type, filters,
JSON for machines, following new alerts, and Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from agents.cli import main
from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames
from streams.events import RecordEvent
from tests.integration.pipeline import events_and_ticks, produce, wait_caught_up
from tests.integration.web import on_policy, wait_ready
from tests.policies import VIP_FIRST_RESPONSE

pytestmark = pytest.mark.integration

T0 = 1_777_878_000_000  # Monday 2026-05-04 07:00 UTC, 09:00 in Berlin
MIN = 60_000


def alerts(settings: Settings, *flags: str) -> subprocess.CompletedProcess[str]:
    """``slaflow alerts FLAGS --exit`` against the test's topics."""
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", "alerts", "--exit", "--tz", "Europe/Berlin", *flags],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class ClosedPipe(io.StringIO):
    """Standard output whose reader has gone (``| head``): every write fails as on a closed pipe."""

    def __init__(self) -> None:
        super().__init__()
        self.fd = os.open(os.devnull, os.O_WRONLY)

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self) -> int:
        return self.fd


def output_closed_early(settings: Settings) -> int:
    """The exit code of ``slaflow alerts --from-beginning --exit`` whose standard output is closed."""
    closed = ClosedPipe()
    saved = sys.stdout
    sys.stdout = closed
    try:
        with mock.patch.dict(os.environ, settings.to_env()):
            return main(["alerts", "--from-beginning", "--exit"])
    finally:
        sys.stdout = saved
        os.close(closed.fd)


def case(n: int, queue: str, at_ms: int = T0) -> RecordEvent:
    attributes = {"tier": "VIP", "owner": "ana", "queue": queue}
    return RecordEvent(f"c{n}", f"R-{n}", "case", "created", at_ms + n * 1000, attributes)


def test_alerts_prints_what_the_worker_emits_for_people_and_machines(settings: Settings, tmp_path: Path) -> None:
    settings, port = on_policy(settings, tmp_path / "policy.yaml", VIP_FIRST_RESPONSE)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        wait_ready(port)
        answered = RecordEvent("a1", "R-1", "case", "first_response", T0 + 40 * MIN, {})
        messages = events_and_ticks(
            settings, case(1, "billing"), case(2, "sales"), T0 + 31 * MIN, answered, T0 + 61 * MIN
        )
        messages.append((TopicNames.of(settings).case_events, b"R-9", b"\x00\x1b[2Jnot avro", None))
        asyncio.run(produce(settings.kafka_bootstrap, messages))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))

        shown = alerts(settings, "--from-beginning")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert lines == [
            "Mon 2026-05-04 09:30 CEST  WARNING        case R-1 first_response (vip): 30 min of 1 h used (50 %), "
            "deadline 10:00 CEST; tier=VIP owner=ana queue=billing",
            "Mon 2026-05-04 09:30 CEST  WARNING        case R-2 first_response (vip): 30 min of 1 h used (50 %), "
            "deadline 10:00 CEST; tier=VIP owner=ana queue=sales",
            "Mon 2026-05-04 10:00 CEST  BREACH         case R-2 first_response (vip): 1 h of 1 h used (100 %), "
            "deadline 10:00 CEST; tier=VIP owner=ana queue=sales",
        ], shown.stdout

        everything = alerts(settings, "--from-beginning", "--all").stdout
        assert "KPI_STARTED    case R-1 first_response (vip): target 1 h, deadline 10:00 CEST" in everything
        assert "KPI_SUCCEEDED  case R-1 first_response (vip): met after 39 min 59 s of 1 h" in everything
        assert "DURATION       case R-1 first_response (vip): met; 39 min 59 s business time of 1 h" in everything
        letter = next(line for line in everything.splitlines() if "DEAD_LETTER" in line)
        assert "undecodable: " in letter and "key R-9" in letter and "\\x1b[2J" in letter and "\x1b" not in letter

        assert [line.split()[6] for line in alerts(settings, "--from-beginning", "--queue", "sales").stdout.splitlines()
                ] == ["R-2", "R-2"]  # fmt: skip
        assert len(alerts(settings, "--from-beginning", "--kind", "BREACH").stdout.splitlines()) == 1
        assert (
            alerts(settings, "--from-beginning", "--record", "R-1", "--kind", "KPI_SUCCEEDED").stdout.count("\n") == 1
        )
        assert alerts(settings).stdout == ""  # from the end: nothing new
        assert output_closed_early(settings) == 1  # `slaflow alerts | head -1`: exit 1, no traceback

        as_json = [
            json.loads(line) for line in alerts(settings, "--from-beginning", "--all", "--json").stdout.splitlines()
        ]
        types = {row["type"] for row in as_json}
        assert types == {"alert", "transition", "duration", "dead_letter"}
        breach = next(row for row in as_json if row.get("kind") == "BREACH")
        assert breach["threshold_at_ms"] == T0 + 60 * MIN + 2000 and breach["record_id"] == "R-2"

        # Following: a new alert shows up while it runs; Ctrl-C ends it with 130 and a count.
        with subprocess.Popen(
            [sys.executable, "-m", "agents.cli", "alerts", "--tz", "UTC"],
            env={**os.environ, **settings.to_env()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as follower:
            try:
                assert follower.stderr is not None
                assert "following" in follower.stderr.readline()  # it has started, from the end
                later = case(3, "billing", T0 + 70 * MIN)  # after the watermark: not late
                asyncio.run(produce(settings.kafka_bootstrap, events_and_ticks(settings, later, T0 + 140 * MIN)))
                assert follower.stdout is not None
                first = follower.stdout.readline()  # blocks until the line comes (the test's timeout guards it)
                assert "WARNING        case R-3 first_response (vip)" in first and "UTC" in first, first
                follower.send_signal(signal.SIGINT)
                out, err = follower.communicate(timeout=30)
            finally:
                follower.kill()  # a failed check must not leave the test waiting for it
        assert follower.returncode == 130, err
        assert "BREACH         case R-3" in out and err.strip().endswith("stopped (Ctrl-C) after 2 messages")
    finally:
        stop_process(worker)
