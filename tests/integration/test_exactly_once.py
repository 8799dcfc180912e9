"""Exactly once on the output topics: workers SIGKILLed at random moments of a stream of 20,000+ events, and a
rebalance when one of two workers dies and comes back. A read_committed reader must then see every output of
an uninterrupted run once, and nothing else."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from agents.demo import start_worker, stop_process
from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics, group_progress
from schemas.codec import DEAD_LETTER, KPI_DURATION, KPI_TRANSITION, SLA_ALERT
from tests.integration.pipeline import (
    Message,
    Source,
    expected_outputs_with_sources,
    produce,
    read_all,
    simulated_stream,
    wait_caught_up,
)

pytestmark = pytest.mark.integration

MIN_EVENTS = 20_000


def stream(settings: Settings, seed: int) -> list[Message]:
    """Three simulated days of at least MIN_EVENTS events, with clock ticks in simulated time."""
    messages = simulated_stream(settings, seed, days=3.0, cases_per_day=3_000)
    assert sum(key is not None for _, key, _, _ in messages) >= MIN_EVENTS
    return messages


async def paced(settings: Settings, messages: list[Message], seconds: float) -> None:
    """Produce ``messages`` evenly over about ``seconds``."""
    chunks = 40
    size = -(-len(messages) // chunks)
    for start in range(0, len(messages), size):
        began = time.monotonic()
        await produce(settings.kafka_bootstrap, messages[start : start + size])
        await asyncio.sleep(max(0.0, seconds / chunks - (time.monotonic() - began)))


def crash_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(
        tick_interval_s=0, processing_guarantee="exactly_once", web_port=0, commit_interval_s=0.2, batch_size=2000
    )


async def committed(settings: Settings) -> int:
    """Input offsets the worker group has committed, over all partitions."""
    done, _ = await group_progress(settings.kafka_bootstrap, settings.app_id, list(TopicNames.of(settings).inputs))
    return done


CODECS = {"alerts": SLA_ALERT, "transitions": KPI_TRANSITION, "durations": KPI_DURATION}
SHOWN = 20
"""Missing or unexpected outputs listed in a failure message, per topic."""


def describe(kind: str, value: bytes, where: str) -> str:
    """One output, decoded, for a failure message: what it is, when it fired, and where it came from."""
    m = CODECS[kind].decode(value)
    time_field = {"alerts": "fired_at_ms", "transitions": "emitted_at_ms", "durations": "ended_at_ms"}[kind]
    extra = f" level={m['level']}" if kind == "alerts" else f" seq={m['sequence']}"
    return (
        f"{m['record_id']}/{m['kpi']}/{m['kpi_instance']}/{m.get('kind', m.get('outcome'))}{extra} "
        f"rev={m['revision']} revoked={m['revoked']} {time_field}={m[time_field]} started_at={m['started_at_ms']} "
        f"[{where}]"
    )


def differences(
    kind: str,
    missing: Counter[tuple[str, bytes]],
    extra: Counter[tuple[str, bytes]],
    sources: dict[tuple[str, bytes], list[Source]],
    written: dict[tuple[str, bytes], list[tuple[int, int]]],
) -> str:
    """The missing outputs (with the input partition/offset that emits them) and the unexpected ones (with where
    they were written), decoded."""
    lines = [f"{kind}: {sum(missing.values())} missing, {sum(extra.values())} unexpected"]
    for key, _ in sorted(missing.items(), key=lambda item: sources[item[0]])[:SHOWN]:
        inputs = ", ".join(f"input p{p}@{o}" for p, o in sources[key])
        lines.append(f"  missing    {describe(kind, key[1], inputs)}")
    for key, _ in sorted(extra.items(), key=lambda item: written[item[0]])[:SHOWN]:
        outputs = ", ".join(f"output p{p}@{o}" for p, o in written[key])
        lines.append(f"  unexpected {describe(kind, key[1], outputs)}")
    return "\n".join(lines)


def check_exactly_once(settings: Settings) -> dict[str, int]:
    """Compare what a read_committed reader sees on every output topic with an uninterrupted run."""
    names = TopicNames.of(settings)
    inputs = asyncio.run(read_all(settings.kafka_bootstrap, [names.case_events]))
    expected = expected_outputs_with_sources(settings, inputs)
    counts = {}
    failures = []
    for kind, topic in (("alerts", names.alerts), ("transitions", names.transitions),
                        ("durations", names.durations)):  # fmt: skip
        records = asyncio.run(read_all(settings.kafka_bootstrap, [topic]))
        got = Counter((r.key.decode(), r.value) for r in records)
        written: dict[tuple[str, bytes], list[tuple[int, int]]] = {}
        for r in records:
            written.setdefault((r.key.decode(), r.value), []).append((r.partition, r.offset))
        sources: dict[tuple[str, bytes], list[Source]] = {}
        for key, value, source in expected[kind]:
            sources.setdefault((key, value), []).append(source)
        want = Counter((key, value) for key, value, _ in expected[kind])
        repeated = {k: n for k, n in got.items() if n > 1}
        assert not repeated, f"{kind}: {len(repeated)} outputs repeated, e.g. {next(iter(repeated))}"
        missing, extra = want - got, got - want
        if missing or extra:
            failures.append(differences(kind, missing, extra, sources, written))
        counts[kind] = sum(got.values())
    assert not failures, "\n".join(failures)
    letters = asyncio.run(read_all(settings.kafka_bootstrap, [names.dead_letters]))
    decoded = Counter((DEAD_LETTER.decode(r.value)["source_partition"], DEAD_LETTER.decode(r.value)["value"])
                      for r in letters)  # fmt: skip
    assert all(n == 1 for n in decoded.values()), "a dead letter was written twice"
    assert sum(decoded.values()) == len(expected["dead_letters"])
    counts["dead_letters"] = len(letters)
    assert counts["alerts"] > 1000, counts  # the stream must exercise the alerts
    alert_ids = Counter(
        (a["alert_id"], a["revision"])
        for a in (SLA_ALERT.decode(r.value) for r in asyncio.run(read_all(settings.kafka_bootstrap, [names.alerts])))
    )
    assert max(alert_ids.values()) == 1, "an alert id (with its revision) appears twice"
    return counts


def seed(variable: str) -> int:
    """A seed from the environment variable ``variable``, or a fresh random one (printed, to rerun a failure)."""
    value = os.environ.get(variable)
    return int(value) if value else random.SystemRandom().randrange(10_000)


def test_sigkill_at_random_moments_loses_and_repeats_nothing(settings: Settings, tmp_path: Path) -> None:
    settings = crash_settings(settings, tmp_path)
    asyncio.run(ensure_topics(settings))
    kill_seed, stream_seed = seed("SLAFLOW_KILL_SEED"), seed("SLAFLOW_STREAM_SEED")
    print(f"\nSLAFLOW_KILL_SEED={kill_seed} SLAFLOW_STREAM_SEED={stream_seed} (log: {tmp_path / 'worker.log'})")
    messages = list(stream(settings, seed=stream_seed))
    rng = random.Random(kill_seed)
    log = tmp_path / "worker.log"

    async def scenario() -> list[float]:
        feeding = asyncio.create_task(paced(settings, messages, seconds=110))
        kills: list[float] = []
        worker = start_worker(settings, log)
        try:
            for _ in range(3):
                before = await committed(settings)
                while await committed(settings) <= before:  # the (restarted) worker is at work: it commits
                    assert worker.poll() is None, log.read_text()[-3000:]
                    assert not feeding.done(), "the stream ended before the kills: make it longer"
                    await asyncio.sleep(0.2)
                delay = rng.uniform(0.0, 3.0)
                await asyncio.sleep(delay)
                worker.kill()
                worker.wait()
                kills.append(delay)
                print(f"SIGKILL worker pid {worker.pid} at {datetime.now():%H:%M:%S.%f}, {delay:.2f} s after a commit")
                worker = start_worker(settings, log)
            await feeding
            await wait_caught_up(settings, lambda: worker.poll() is None, log=log)
        finally:
            await asyncio.to_thread(stop_process, worker)
        return kills

    kills = asyncio.run(scenario())
    assert len(kills) == 3
    counts = check_exactly_once(settings)
    print(f"3 SIGKILLs ({', '.join(f'{k:.2f} s' for k in kills)} after a commit); outputs: {counts}")


def test_rebalance_when_one_of_two_workers_dies_and_returns(settings: Settings, tmp_path: Path) -> None:
    settings = crash_settings(settings, tmp_path)
    asyncio.run(ensure_topics(settings))
    messages = list(stream(settings, seed=12))
    other = settings.replace(data_dir=tmp_path / "data-b", clickhouse_url=f"chdb://{tmp_path / 'clickhouse-b'}")

    async def scenario() -> None:
        feeding = asyncio.create_task(paced(settings, messages, seconds=50))
        first = start_worker(settings, tmp_path / "a.log")
        second = start_worker(other, tmp_path / "b.log")
        workers: list[subprocess.Popen[bytes]] = [first, second]
        try:
            await asyncio.sleep(15)  # both in the group, both working
            second.kill()  # its partitions move to the first after the session timeout
            second.wait()
            await asyncio.sleep(15)
            second = start_worker(other, tmp_path / "b.log")  # and some move back
            workers.append(second)
            await feeding
            await wait_caught_up(
                settings, lambda: first.poll() is None and second.poll() is None, log=tmp_path / "a.log"
            )
        finally:
            for worker in workers:
                await asyncio.to_thread(stop_process, worker)

    asyncio.run(scenario())
    counts = check_exactly_once(settings)
    print(f"two workers, one killed and restarted; outputs: {counts}")
