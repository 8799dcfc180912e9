"""``slaflow bench``: benchmarks that print one JSON object each.

``slaflow bench core`` runs the pure SLA core (the same code the worker runs)
over a synthetic mixed workload on the shipped default policies: cases of
every tier across their 24/7, 24/5 and 8/5 calendars, created over a working
day, with status changes that pause and resume the clocks, first responses,
resolutions, and a clock tick every simulated minute that fires the due
thresholds. It reports events per second on one core and the memory the core
keeps per open case, measured with tracemalloc on a second, identical run.

``slaflow bench simulate``, ``bench sink`` (:mod:`agents.bench_sink`) and
``bench pipeline`` (:mod:`agents.bench_pipeline`) are the others; ``bench all``
runs every one and checks :data:`GOALS`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.options import command
from agents.runtime import tune_gc
from agents.settings import DEFAULT_POLICIES
from agents.simulate import GOAL_EVENTS_PER_SECOND as GOAL_SIMULATE_EVENTS_PER_SECOND
from agents.simulate import add_bench_command as add_simulate_bench
from agents.simulate import bench_simulate
from streams.core import RecordState, SlaCore
from streams.deadlines import DeadlineIndex
from streams.events import RecordEvent
from streams.policy import load_policies

MINUTE_MS = 60_000
START_MS = 1_777_881_600_000  # Monday 2026-05-04 08:00 UTC

GOAL_EVENTS_PER_SECOND = 150_000
GOAL_BYTES_PER_OPEN_CASE = 1024
GOAL_PIPELINE_RATIO = 0.5
"""Pipeline events per second over a bare consumer's, at least."""
GOAL_P99_LATENESS_S = 1.0
"""Alert lateness p99 under load, seconds, at most."""
GOAL_SINK_ROWS_PER_SECOND = 100_000
"""Sink rows per second into the embedded ClickHouse engine, at least."""


@dataclass(frozen=True)
class Workload:
    """The synthetic contact-centre day: ``cases`` cases opened over ``hours`` hours."""

    cases: int = 120_000
    hours: float = 10.0
    seed: int = 11


def workload(spec: Workload) -> Iterator[RecordEvent | int]:
    """Events in time order, interleaved with ticks (an ``int``: the watermark, UTC epoch ms) every minute."""
    rng = random.Random(spec.seed)
    span_ms = int(spec.hours * 3_600_000)
    events: list[tuple[int, int, RecordEvent]] = []
    tiers = (("VIP", 0.2), ("Premium", 0.3), ("Standard", 0.5))
    for n in range(spec.cases):
        record = f"CASE-{n:07d}"
        at = START_MS + rng.randrange(span_ms)
        roll = rng.random()
        tier = next(t for t, share in _cumulative(tiers) if roll < share)
        attributes = {"tier": tier, "owner": f"agent-{rng.randrange(2000)}", "queue": f"q{rng.randrange(40)}",
                      "priority": "normal", "channel": rng.choice(("email", "phone", "web"))}  # fmt: skip
        steps: list[tuple[str, int, dict[str, str]]] = [("created", at, attributes)]
        t = at
        if rng.random() < 0.6:
            t += rng.randrange(5 * MINUTE_MS, 90 * MINUTE_MS)
            steps.append(("email_sent", t, {"direction": "outbound"}))
        if rng.random() < 0.5:
            t += rng.randrange(MINUTE_MS, 60 * MINUTE_MS)
            steps.append(("status_changed", t, {"status": "waiting_for_customer"}))
            t += rng.randrange(MINUTE_MS, 120 * MINUTE_MS)
            steps.append(("status_changed", t, {"status": "in_progress"}))
        if rng.random() < 0.1:
            t += rng.randrange(MINUTE_MS, 60 * MINUTE_MS)
            steps.append(("resolved", t, {}))
        for seq, (kind, when, attrs) in enumerate(steps, 1):
            events.append((when, n, RecordEvent(f"{record}-{seq}", record, "case", kind, when, attrs)))
    events.sort(key=lambda item: (item[0], item[1]))
    next_tick = START_MS + MINUTE_MS
    for when, _, event in events:
        while next_tick <= when:
            yield next_tick
            next_tick += MINUTE_MS
        yield event
    yield next_tick


def _cumulative(shares: tuple[tuple[str, float], ...]) -> list[tuple[str, float]]:
    total, out = 0.0, []
    for name, share in shares:
        total += share
        out.append((name, total))
    out[-1] = (out[-1][0], 1.0)
    return out


def run_core(items: list[RecordEvent | int], core: SlaCore) -> tuple[dict[str, RecordState], int, int]:
    """Drive the core as the worker does; return the states, events applied and outputs."""
    states: dict[str, RecordState] = {}
    index = DeadlineIndex()
    watermark = START_MS
    applied = outputs = 0
    for item in items:
        if isinstance(item, int):
            watermark = item
            for record_id in index.pop_due(watermark):
                state = states[record_id]
                outputs += len(core.advance(state, watermark))
                index.update(record_id, core.next_due_ms(state))
            continue
        state, out = core.apply(states.get(item.record_id), item, watermark)
        states[item.record_id] = state
        index.update(item.record_id, core.next_due_ms(state))
        applied += 1
        outputs += len(out)
    return states, applied, outputs


def bench_core(spec: Workload, policies: Path = DEFAULT_POLICIES) -> dict[str, Any]:
    """The ``bench core`` figures (see the module doc)."""
    core = SlaCore(load_policies(policies))
    items = list(workload(spec))
    events = sum(1 for i in items if not isinstance(i, int))
    ticks = len(items) - events
    tune_gc()
    started = time.process_time()
    states, applied, outputs = run_core(items, core)
    cpu_s = time.process_time() - started
    open_cases = sum(1 for s in states.values() if any(c.is_open for c in s.live.clocks))
    open_kpis = sum(1 for s in states.values() for c in s.live.clocks if c.is_open)
    del states
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept, _, _ = run_core(items, core)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del kept
    two_running = _bytes_per_case_with_two_running_kpis(core, spec)
    return {
        "benchmark": "core",
        "events": events,
        "ticks": ticks,
        "outputs": outputs,
        "cpu_seconds": round(cpu_s, 3),
        "events_per_second": round(applied / cpu_s),
        "events_per_second_goal": GOAL_EVENTS_PER_SECOND,
        "open_cases": open_cases,
        "open_kpis_per_open_case": round(open_kpis / max(open_cases, 1), 2),
        "bytes_per_open_case": round(held / max(open_cases, 1)),
        "bytes_per_open_case_goal": GOAL_BYTES_PER_OPEN_CASE,
        "bytes_per_open_case_two_running_kpis": two_running,
        "goals_met": applied / cpu_s >= GOAL_EVENTS_PER_SECOND and two_running <= GOAL_BYTES_PER_OPEN_CASE,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "policies": str(policies),
    }


def _bytes_per_case_with_two_running_kpis(core: SlaCore, spec: Workload) -> int:
    """Memory per open case when every case has exactly two KPIs running (first response and resolution).

    The cases are opened and answered by nobody; the watermark then moves past the lateness window, so what is
    measured is the steady state of an open case (no history kept), as most open cases are at any time.
    """
    rng = random.Random(spec.seed)
    items: list[RecordEvent | int] = []
    for n in range(spec.cases):
        attributes = {"tier": "Standard", "owner": f"agent-{rng.randrange(2000)}", "queue": f"q{rng.randrange(40)}",
                      "priority": "normal", "channel": "email"}  # fmt: skip
        items.append(RecordEvent(f"CASE-{n:07d}-1", f"CASE-{n:07d}", "case", "created", START_MS + n, attributes))
    later = START_MS + 2 * 3_600_000
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    states, _, _ = run_core(items, core)
    for state in states.values():  # every record visited once the lateness window has passed
        core.advance(state, later)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    running = [sum(1 for c in s.live.clocks if c.is_open and not c.is_paused) for s in states.values()]
    assert all(r == 2 for r in running), "every case must have two running KPIs"
    return round(held / len(states))


GOALS: tuple[tuple[str, str, str, float, str], ...] = (
    # (benchmark, figure, description, goal, "min" or "max")
    ("core", "events_per_second", "SLA core events per second on one core", GOAL_EVENTS_PER_SECOND, "min"),
    ("core", "bytes_per_open_case_two_running_kpis", "memory per open case with two running KPIs, bytes",
     GOAL_BYTES_PER_OPEN_CASE, "max"),
    ("simulate", "events_per_second", "simulator events per second to a file on one core",
     GOAL_SIMULATE_EVENTS_PER_SECOND, "min"),
    ("pipeline", "ratio", "pipeline events per second over a bare consumer's (batch fetch + decode)",
     GOAL_PIPELINE_RATIO, "min"),
    ("pipeline", "alert_lateness_p99_s", "alert lateness p99 under load, seconds", GOAL_P99_LATENESS_S, "max"),
    ("sink", "rows_per_second", "sink rows per second into the embedded ClickHouse engine",
     GOAL_SINK_ROWS_PER_SECOND, "min"),
)  # fmt: skip
"""Every goal the report checks: which benchmark's figure, and whether it is a floor or a ceiling."""


def report(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``make bench`` report: the machine, each benchmark's figures, and each goal with whether it was met."""
    goals = []
    for benchmark, figure, description, goal, kind in GOALS:
        if benchmark not in results:
            continue
        value = results[benchmark][figure]
        met = value >= goal if kind == "min" else value <= goal
        goals.append({"benchmark": benchmark, "figure": figure, "description": description, "value": value,
                      "goal": goal, "goal_is": kind, "met": met})  # fmt: skip
    return {
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "machine": os.uname().machine,
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "goals": goals,
        "all_goals_met": all(g["met"] for g in goals),
        "benchmarks": results,
    }


def add_command(commands: Any) -> None:
    """Add ``slaflow bench`` and its benchmarks to the CLI."""
    bench = command(
        commands,
        "bench",
        "run a benchmark and print one JSON object (make bench runs them all)",
        "Measure slaflow on this machine: each benchmark prints one JSON object with its figures and goals.",
    )
    which = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    core = command(which, "core", "the SLA core on a synthetic mixed workload", "The SLA core alone, in process.")
    core.add_argument("--cases", type=int, default=Workload.cases, metavar="N", help="cases opened")
    core.add_argument("--policies", type=Path, default=DEFAULT_POLICIES, metavar="FILE", help="policy file")
    core.set_defaults(func=_cmd_core)
    add_simulate_bench(which)
    pipeline = command(
        which,
        "pipeline",
        "end to end through a real broker and one worker, and alert lateness",
        "Events through a local broker and one worker, with a bare consumer as the baseline, then alert lateness "
        "under a steady load.",
    )
    pipeline.add_argument("--cases", type=int, default=40_000, metavar="N", help="cases in the throughput run")
    pipeline.add_argument("--rate", type=int, default=1_000, metavar="N", help="new cases per second, lateness run")
    pipeline.add_argument("--seconds", type=float, default=20.0, metavar="SECONDS", help="length of the lateness run")
    pipeline.set_defaults(func=_cmd_pipeline)
    sink = command(
        which,
        "sink",
        "Kafka message values into the embedded ClickHouse engine, rows per second",
        "The ClickHouse sink's write path on simulated messages, against a plain clickhouse-connect insert.",
    )
    sink.add_argument("--days", type=float, default=5.0, metavar="DAYS", help="simulated days of messages")
    sink.add_argument("--cases-per-day", type=int, default=2_000, metavar="N", help="cases per simulated day")
    sink.add_argument("--seed", type=int, default=1, metavar="N", help="random seed")
    sink.set_defaults(func=_cmd_sink)
    every = command(
        which, "all", "every benchmark; write one JSON report (make bench)", "Run every benchmark in one go."
    )
    every.add_argument("--out", type=Path, default=Path("bench") / "results.json", metavar="FILE", help="report path")
    every.set_defaults(func=_cmd_all)


def _cmd_core(args: argparse.Namespace) -> int:
    print(json.dumps(bench_core(Workload(cases=args.cases), args.policies)))
    return 0


def _cmd_pipeline(args: argparse.Namespace) -> int:
    print(json.dumps(_pipeline(args.cases, args.rate, args.seconds)))
    return 0


def _cmd_sink(args: argparse.Namespace) -> int:
    print(json.dumps(_sink(args.days, args.cases_per_day, args.seed)))
    return 0


def _sink(*args: Any) -> dict[str, Any]:
    from agents.bench_sink import bench_sink  # noqa: PLC0415 - ClickHouse and the SLA agent: only this bench

    return bench_sink(*args)


def _pipeline(*args: Any) -> dict[str, Any]:
    from agents.bench_pipeline import bench_pipeline  # noqa: PLC0415 - it imports this module's workload

    return bench_pipeline(*args)


def _cmd_all(args: argparse.Namespace) -> int:
    results: dict[str, dict[str, Any]] = {}
    for name, run in BENCHMARKS.items():
        print(f"bench {name} ...", file=sys.stderr, flush=True)
        results[name] = run()
        print(json.dumps(results[name]), file=sys.stderr, flush=True)
    document = report(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    print(f"report written to {args.out}", file=sys.stderr)
    return 0


BENCHMARKS: dict[str, Any] = {
    "core": lambda: bench_core(Workload()),
    "simulate": bench_simulate,
    "sink": _sink,
    "pipeline": _pipeline,
}
"""What ``bench all`` runs, in order."""
