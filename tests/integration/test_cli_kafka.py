"""The Kafka commands for people, on the real broker: a wrong address is one paragraph and exit 2 in every
command; a typo in the topic prefix creates nothing; produce says where its events went, and how many before a
Ctrl-C (exit 130)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from agents.settings import Settings
from agents.topics import TopicNames, ensure_topics
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def slaflow(*argv: str, env: dict[str, str] | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLAFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *argv],
        env={**base, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def topics(bootstrap: str) -> set[str]:
    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def event_line(n: int) -> str:
    return json.dumps({"event_id": f"e{n}", "record_id": f"C-{n}", "entity_type": "case", "kind": "created",
                       "occurred_at": "2026-05-04T08:00:00Z", "attributes": {"tier": "VIP"}})  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        ["produce", "--events", "-"],
        ["sink", "--metrics-port", "0"],
        ["simulate", "--kafka", "--days", "0.01"],
        ["alerts"],
        ["worker", "--web-port", "0"],
    ],
)
def test_a_wrong_bootstrap_address_is_one_paragraph_and_exit_2(argv: list[str], tmp_path: Path) -> None:
    closed = f"127.0.0.1:{free_port()}"  # nothing listens there
    done = slaflow(*argv, "--bootstrap", closed, env={"SLAFLOW_DATA_DIR": str(tmp_path)}, stdin=event_line(1))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [lines[-1]], f"expected one line, got:\n{done.stderr}"
    assert lines[0] == (
        f"slaflow {argv[0]}: error: cannot reach Kafka at {closed} (no broker answered). Is the broker running, and "
        "is KAFKA_BOOTSTRAP (or --bootstrap) right? `slaflow kafka` starts a local broker."
    )


def test_a_prefix_typo_creates_no_topics_and_produce_says_where_events_went(settings: Settings, unique: str) -> None:
    asyncio.run(ensure_topics(settings))
    names = TopicNames.of(settings)
    before = topics(settings.kafka_bootstrap)
    env = {"KAFKA_BOOTSTRAP": settings.kafka_bootstrap}
    typo = slaflow("produce", "--events", "-", "--topic-prefix", f"{unique}x", env=env, stdin=event_line(1))
    assert typo.returncode == 2
    assert f"topics {unique}x.case-events, {unique}x.calls do not exist" in typo.stderr
    assert "--create-topics" in typo.stderr and topics(settings.kafka_bootstrap) == before

    call = json.dumps({"type": "call", "event_id": "k1", "call_id": "K-1", "kind": "offered", "direction": "inbound",
                       "occurred_at": "2026-05-04T08:00:00Z", "queue": "q"})  # fmt: skip
    lines = "\n".join([event_line(1), event_line(2), call, "{broken"]) + "\n"
    done = slaflow("produce", "--events", "-", "--topic-prefix", unique, env=env, stdin=lines)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].startswith(
        f"slaflow produce: sent 3 events (2 to {names.case_events}, 1 to {names.calls}), 1 line rejected (reported "
        "above) in "
    ), done.stderr
    assert "-:4: bad_json" in done.stderr

    created = slaflow(
        "produce", "--events", "-", "--topic-prefix", f"{unique}new", "--create-topics", env=env, stdin=event_line(3)
    )
    assert created.returncode == 0, created.stderr
    assert f"{unique}new.case-events" in topics(settings.kafka_bootstrap)


def test_ctrl_c_during_produce_says_how_many_events_were_sent(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SLAFLOW_"))}
    env.update(KAFKA_BOOTSTRAP=settings.kafka_bootstrap, SLAFLOW_TOPIC_PREFIX=settings.topic_prefix)
    with subprocess.Popen(
        [sys.executable, "-m", "agents.cli", "produce", "--events", "-"],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as producer:
        assert producer.stdin is not None
        for n in range(5):  # a feed that goes on: the events are sent as they come, not at the end
            producer.stdin.write(event_line(n) + "\n")
            producer.stdin.flush()
        time.sleep(5)
        producer.send_signal(signal.SIGINT)
        _, err = producer.communicate(timeout=30)
    assert producer.returncode == 130, err
    assert err.strip().splitlines()[-1] == (
        f"slaflow produce: interrupted: sent 5 events (5 to {settings.topic_prefix}.case-events) before the "
        "interruption"
    ), err
