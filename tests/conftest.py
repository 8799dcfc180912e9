"""Fixtures shared by every test: the real Kafka broker, embedded ClickHouse, fresh names.

The broker is started once per test session (or taken from KAFKA_BOOTSTRAP) and
stopped at the end; integration tests never skip for want of one. Every test
gets its own topic prefix and consumer group, so tests never see each other's
messages.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from agents.settings import Settings
from deploy.kafka.broker import LocalKafka, kafka_version
from sinks.clickhouse import connect


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a compiled core that is older than its sources (run `make setup` to recompile)."""
    root = Path(__file__).resolve().parent.parent
    for compiled in (root / "streams").glob("*.so"):
        source = compiled.with_name(compiled.name.split(".")[0] + ".py")
        if source.exists() and source.stat().st_mtime > compiled.stat().st_mtime:
            raise pytest.UsageError(
                f"{compiled.name} is older than {source.name}: run `make setup` to recompile the core, "
                "or `make uncompile` to test the pure-Python one"
            )


def pytest_report_header(config: pytest.Config) -> list[str]:
    import streams.core  # noqa: PLC0415 - which build of the core is tested

    core = "compiled (mypyc)" if streams.core.__file__.endswith(".so") else "pure Python"
    where = os.environ.get("KAFKA_BOOTSTRAP")
    if where:
        return [f"kafka: the broker at KAFKA_BOOTSTRAP={where} (not started by the tests)", f"SLA core: {core}"]
    return [f"kafka: Apache Kafka {kafka_version()} (KRaft, single node on 127.0.0.1), started by the fixtures",
            f"SLA core: {core}"]  # fmt: skip


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real Kafka broker for the whole session."""
    external = os.environ.get("KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalKafka(data_dir=tmp_path_factory.mktemp("kafka"))
    bootstrap = broker.start()
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nstarted Apache Kafka {broker.version} on {bootstrap} (pid {broker.pid}, log {broker.log_path})")
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture
def unique() -> str:
    """A short name no other test uses: topic prefixes, group ids, database names."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own topics, consumer groups, data directory and embedded ClickHouse."""
    return Settings().replace(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=unique,
        app_id=unique,
        data_dir=tmp_path / "data",
        clickhouse_url=f"chdb://{tmp_path / 'clickhouse'}",
        clickhouse_database=unique,
        web_port=0,
        tick_interval_s=0.2,
        sink_flush_s=0.2,
        sink_metrics_port=0,
    )


@pytest.fixture
def clickhouse(tmp_path: Path, unique: str) -> Iterator[tuple[Client, str]]:
    """A client of the embedded ClickHouse engine in a fresh directory, and a fresh database name."""
    client = connect(f"chdb://{tmp_path / 'clickhouse'}", unique)
    try:
        yield client, unique
    finally:
        client.close()
