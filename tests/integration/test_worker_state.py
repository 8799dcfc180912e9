"""What a running worker holds and shows, on the real broker: record views never create state, the gauge of
open KPIs counts every open KPI the worker holds (after a restart too, before any message arrives), and a
worker started with another policy file keeps running, setting aside the records it cannot restore."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames
from schemas.codec import DEAD_LETTER
from streams.events import RecordEvent
from tests.integration.pipeline import events_and_ticks, produce, read_all, wait_caught_up
from tests.integration.web import get, metric, on_policy, wait_for, wait_ready
from tests.policies import VIP_FIRST_RESPONSE

pytestmark = pytest.mark.integration

T0 = 1_777_878_000_000  # 2026-05-04T07:00:00Z
MIN = 60_000


def created(n: int) -> RecordEvent:
    return RecordEvent(f"c{n}", f"R-{n}", "case", "created", T0 + n * 1000, {"tier": "VIP", "owner": "ana"})


def running(port: int) -> float:
    return metric(port, "slaflow_open_kpis", state="running")


def test_views_create_no_state_and_the_gauge_counts_what_the_worker_holds(settings: Settings, tmp_path: Path) -> None:
    """Regression for two bugs: a view cached a stale copy of the record in a partition that does not own it
    (R-1..R-7 stayed in_progress, the gauge counted them twice); after a restart the gauge read 0."""
    settings, port = on_policy(settings, tmp_path / "policy.yaml", VIP_FIRST_RESPONSE)
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)
    try:
        wait_ready(port)
        asyncio.run(produce(settings.kafka_bootstrap, events_and_ticks(settings, *map(created, range(1, 9)), T0 + MIN)))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))
        for n in range(1, 9):
            status, view = get(port, f"/sla/records/R-{n}")
            assert status == 200 and view["kpis"][0]["state"] == "in_progress", view
        wait_for("open KPIs running", lambda: running(port), 8)
        met = [RecordEvent(f"m{n}", f"R-{n}", "case", "first_response", T0 + 2 * MIN, {"channel": "email"})
               for n in range(1, 5)]  # fmt: skip
        asyncio.run(produce(settings.kafka_bootstrap, events_and_ticks(settings, *met, T0 + 3 * MIN)))
        asyncio.run(wait_caught_up(settings, lambda: worker.poll() is None, log=log))
        for n in range(1, 9):
            view = get(port, f"/sla/records/R-{n}")[1]
            state = view["kpis"][0]["state"]
            assert (state, view["attributes"].get("channel")) == (
                ("succeeded", "email") if n <= 4 else ("in_progress", None)
            ), view
        wait_for("open KPIs running", lambda: running(port), 4)
        assert metric(port, "slaflow_open_kpis") == 4
    finally:
        stop_process(worker)

    restarted = start_worker(settings, log)  # the ticker is off: no message arrives after the restart
    try:
        wait_ready(port)
        wait_for("open KPIs running after a restart", lambda: running(port), 4)
        status, view = get(port, "/sla/records/R-8")
        assert (status, view["kpis"][0]["state"]) == (200, "in_progress")
        urgent = get(port, "/sla/urgent")[1]["kpis"]
        assert sorted(k["record_id"] for k in urgent) == [f"R-{n}" for n in range(5, 9)]
    finally:
        stop_process(restarted)


def test_a_worker_with_another_policy_file_sets_records_aside_and_keeps_running(
    settings: Settings, tmp_path: Path
) -> None:
    """Regression: a stored record pinned to a version the worker does not have (another policy file, a fresh
    data directory) crashed the agent with SnapshotError, and the worker crash-looped."""
    first, port = on_policy(settings, tmp_path / "old.yaml", VIP_FIRST_RESPONSE)
    new = tmp_path / "new.yaml"
    new.write_text(VIP_FIRST_RESPONSE.replace('version: "t1"', 'version: "t2"').replace("name: vip", "name: gold"))
    log = tmp_path / "worker.log"
    worker = start_worker(first, log)
    try:
        wait_ready(port)
        asyncio.run(produce(first.kafka_bootstrap, events_and_ticks(first, *map(created, range(1, 4)), T0 + MIN)))
        asyncio.run(wait_caught_up(first, lambda: worker.poll() is None, log=log))
    finally:
        stop_process(worker)

    second = first.replace(policies=new, data_dir=tmp_path / "fresh")  # the archived v1 is not on this disk
    worker = start_worker(second, log)
    try:
        wait_ready(port)
        later = [RecordEvent("f1", "R-1", "case", "first_response", T0 + 2 * MIN, {}), created(9)]
        # The tick passes R-2's and R-3's warning points: their deadlines find them unrestorable too.
        asyncio.run(produce(second.kafka_bootstrap, events_and_ticks(second, *later, T0 + 40 * MIN)))
        asyncio.run(wait_caught_up(second, lambda: worker.poll() is None, log=log))
        letters = [DEAD_LETTER.decode(r.value) for r in
                   asyncio.run(read_all(second.kafka_bootstrap, [TopicNames.of(second).dead_letters]))]  # fmt: skip
        assert [(d["reason"], d["key"]) for d in letters] == [("unknown_policy_version", b"R-1")]
        assert "t1" in letters[0]["detail"]
        wait_for("records set aside", lambda: metric(port, "slaflow_records_set_aside"), 3)
        assert get(port, "/sla/records/R-2")[0] == 409
        assert get(port, "/sla/records/R-9")[1]["kpis"][0]["policy"] == "gold"  # new records go on
        assert worker.poll() is None, "the worker must keep running"
    finally:
        stop_process(worker)
    text = log.read_text()
    assert "set aside" in text and "SnapshotError" not in text.split("fresh")[-1]
