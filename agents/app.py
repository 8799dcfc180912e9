"""The Faust application: topics, the SLA table, the SLA agent, the ticker and the ClickHouse sink.

:func:`create_app` builds a fresh app from :class:`agents.settings.Settings`
(no module-level app), so the CLI, the demo and the tests each get their own.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import faust
from faust.types import StreamT

from agents.settings import Settings
from agents.sink import ClickHouseSinkService
from agents.sla import SlaProcessor, consume
from agents.topics import TopicNames
from schemas.codec import encode_tick
from streams.core import SlaCore
from streams.errors import ConfigError
from streams.policy import PolicySet, load_policies

log = logging.getLogger(__name__)


def load_policy_versions(settings: Settings) -> tuple[PolicySet, list[PolicySet]]:
    """The current policy file and every earlier version this worker's data directory has seen.

    Each version is archived as ``DATA_DIR/policies/<version>.yaml`` the first time a worker loads it, so that
    KPIs pinned to an older version keep their definition across restarts. A file whose version was already
    archived with other content is refused: an edited file needs a new version.
    """
    current = load_policies(settings.policies)
    archive = Path(settings.data_dir) / "policies"
    archive.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", current.version)
    target = archive / f"{name}.yaml"
    text = Path(settings.policies).read_text(encoding="utf-8")
    if not target.exists():
        target.write_text(text, encoding="utf-8")
    elif target.read_text(encoding="utf-8") != text:
        raise ConfigError(
            f"{settings.policies}: version {current.version!r} was already used with other content ({target}); "
            "running KPIs stay pinned to what that version said, so give the edited file a new version"
        )
    previous = [load_policies(path) for path in sorted(archive.glob("*.yaml")) if path != target]
    return current, previous


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired for ``settings``; run it with ``faust.Worker(app).execute_from_commandline()``."""
    current, previous = load_policy_versions(settings)
    core = SlaCore(current, previous=previous)
    names = TopicNames(settings.topic_prefix)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(Path(settings.data_dir) / "worker"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_in_thread=False,
        table_cleanup_interval=3600.0,
    )

    def topic(name: str) -> faust.TopicT:
        return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")

    events = topic(names.case_events)
    alerts = topic(names.alerts)
    dead_letters = topic(names.dead_letters)
    table = app.Table(f"{settings.app_id}-records", default=None, partitions=settings.partitions)
    processor = SlaProcessor(core, table, alerts, dead_letters)

    @app.agent(events, name="sla")
    async def sla_agent(stream: StreamT) -> None:
        await consume(processor, stream)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust's stub wants a keyword `signal`
    async def _on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        processor.invalidate_indexes()

    if settings.tick_interval_s > 0:
        ticker_id = f"{settings.app_id}-ticker"

        @app.timer(settings.tick_interval_s, on_leader=True)
        async def ticker() -> None:
            """Write the wall-clock time into every partition of the input topic."""
            value = encode_tick(int(time.time() * 1000), ticker_id)
            for partition in range(settings.partitions):
                await events.send(value=value, partition=partition)

    app.service(ClickHouseSinkService(settings))  # type: ignore[arg-type]  # instances are accepted too
    app.slaflow_processor = processor  # type: ignore[attr-defined]  # for the web views and tests
    return app
