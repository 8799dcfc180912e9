"""The Faust application: topics, the SLA table, the SLA agent, the ticker and the web views.

The ClickHouse sink is a process of its own (``slaflow sink``, :mod:`agents.sink`).

:func:`create_app` builds a fresh app from :class:`agents.settings.Settings`
(no module-level app), so the CLI, the demo and the tests each get their own.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Final, cast

import faust
from faust.types import StreamT

from agents import faust_fixes
from agents.settings import Settings
from agents.sla import SlaProcessor
from agents.ticker import Ticker
from agents.topics import TopicNames
from agents.web import add_views
from sinks.metrics import SlaMetrics
from streams.core import SlaCore
from streams.errors import ConfigError
from streams.policy import PolicySet, load_policies

log = logging.getLogger(__name__)

COMMIT_NEVER_S: Final = 365 * 86400.0
COMMIT_NEVER_MESSAGES: Final = 2**62
GAUGE_INTERVAL_S: Final = 5.0
SESSION_TIMEOUT_S: Final = 10.0


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


class InterruptibleWorker(faust.Worker):
    """Faust's worker, remembering whether it was stopped by SIGINT (Ctrl-C): the command then exits with 130, as
    every slaflow command does when interrupted (SIGTERM, a supervisor's stop, still exits with 0)."""

    interrupted = False

    def _on_sigint(self) -> None:
        self.interrupted = True
        super()._on_sigint()


def create_app(settings: Settings) -> faust.App:
    """A Faust app wired for ``settings``; run it with ``faust.Worker(app).execute_from_commandline()``."""
    faust_fixes.apply()
    current, previous = load_policy_versions(settings)
    core = SlaCore(current, previous=previous)
    names = TopicNames.of(settings)
    exactly_once = settings.processing_guarantee == "exactly_once"
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://" if settings.store == "memory" else "rocksdb://",
        datadir=str(Path(settings.data_dir) / "worker"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # The agent commits itself, between batches (agents.sla, agents.faust_fixes): Faust's own timed and
        # counted commits could land in the middle of a batch and commit its outputs without its offsets.
        broker_commit_interval=COMMIT_NEVER_S,
        broker_commit_every=COMMIT_NEVER_MESSAGES,
        # A SIGKILLed worker's partitions move after this many seconds without a heartbeat (Faust's default
        # is 60 s: a minute without alerts for those partitions).
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=SESSION_TIMEOUT_S / 5,
        # No standby replicas: with exactly-once, Faust's standby recovery misreads the changelog's end (the last
        # stable offset) after a partition returns to a worker, and crashes with a ConsistencyError. A partition
        # that moves is restored from its changelog instead.
        table_standby_replicas=0,
        # With exactly-once the agent commits at a revocation itself; Faust need not wait for acknowledgements.
        stream_wait_empty=not exactly_once,
        stream_buffer_maxsize=max(4096, 2 * settings.batch_size),
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind=settings.web_bind,
        web_host=settings.web_host,
        web_in_thread=False,
        table_cleanup_interval=3600.0,
    )

    if exactly_once:
        faust_fixes.commits_itself(app)
    inputs = app.topic(*names.inputs, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    table = app.Table(
        f"{settings.app_id}-records",
        default=None,
        partitions=settings.partitions,
        key_type=bytes,  # bytes keys and values: stored and sent as they are ("raw")
        value_type=bytes,
    )
    metrics = SlaMetrics()
    processor = SlaProcessor(
        app,
        core,
        table,
        names,
        metrics,
        exactly_once=exactly_once,
        commit_interval_s=settings.commit_interval_s,
        max_cached_records=settings.max_cached_records,
    )

    @app.agent(inputs, name="sla", concurrency=1)
    async def sla_agent(stream: StreamT) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events(settings.batch_size, within=settings.batch_window_s)
        try:
            async for events in batches:
                await processor.process(stream, events)
        except Exception as exc:
            # Not retriable in place: the batch's state and outputs are half done. Stop the worker (restarted by
            # its supervisor, it resumes from the last commit) rather than let Faust restart the agent alone.
            log.exception("the SLA agent failed; stopping the worker")
            await app.crash(exc)
            raise

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # faust's stub wants a keyword `signal`
    async def _on_revoked(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await processor.on_partitions_revoked()

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust's stub wants a keyword `signal`
    async def _on_shutdown(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await processor.on_shutdown()

    @app.timer(settings.commit_interval_s)
    async def commit_when_idle() -> None:
        """The last batch before a pause in the input is committed too."""
        await processor.commit_if_idle()

    @app.timer(GAUGE_INTERVAL_S)
    async def gauges() -> None:
        """Open KPIs by state and consumer lag, for /metrics."""
        processor.update_gauges()

    if settings.tick_interval_s > 0:
        app.service(
            Ticker(  # type: ignore[arg-type]  # instances are accepted too
                settings.kafka_bootstrap,
                names.case_events,
                settings.tick_interval_s,
                f"{settings.app_id}-ticker",
                app.is_leader,
            )
        )
    add_views(app, table, processor)
    return app
