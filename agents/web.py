"""The worker's web views: one record's KPIs, the most urgent KPIs, health, readiness and ``/metrics``.

=================================================  ==============================================
``GET /sla/records/{id}``                          each KPI of the record: state, deadline, time
                                                   remaining, business time used, paused time
                                                   (any worker answers: the request goes to the
                                                   worker that holds the record's partition)
``GET /sla/urgent?queue=&owner=&tier=&limit=``     open KPIs across all partitions and workers,
                                                   earliest deadline (least time remaining) first
``GET /health``                                    200 while the process runs
``GET /ready``                                     200 once the worker holds partitions and has
                                                   restored its table, else 503
``GET /metrics``                                   Prometheus text format (``docs/metrics.md``)
=================================================  ==============================================

Times are UTC epoch milliseconds; durations are milliseconds. "Now" is the stream's time: the partition's
watermark (the wall clock when the ticker runs; the simulated time of a replay through Kafka).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final, cast

import aiohttp
import faust
from faust.web import Request, Response, View

from agents.sla import SlaProcessor
from streams.core import SnapshotError
from streams.urgency import UrgentKpi

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 10_000
PEER_TIMEOUT_S: Final = 5.0


def urgent_json(entry: UrgentKpi, now_ms: int) -> dict[str, Any]:
    """One row of ``/sla/urgent``."""
    return {
        "record_id": entry.record_id,
        "kpi": entry.kpi,
        "instance": entry.kpi_instance,
        "deadline_ms": entry.deadline_ms,
        "remaining_ms": entry.remaining_ms(now_ms),
        "state": entry.state,
        "owner": entry.owner,
        "queue": entry.queue,
        "tier": entry.tier,
        "entity_type": entry.entity_type,
        "policy": entry.policy,
    }


def add_views(app: faust.App, table: faust.types.TableT[bytes, bytes], processor: SlaProcessor) -> None:
    """Register the views on ``app``'s web server."""

    @app.page("/sla/records/{record_id}")
    @app.table_route(table=table, match_info="record_id")
    async def record(web: View, request: Request, record_id: str) -> Response:
        try:
            view = processor.record_view(record_id, int(time.time() * 1000))
        except SnapshotError as exc:  # set aside: pinned to a policy version this worker does not have
            return web.json({"error": f"record {record_id!r} cannot be shown: {exc}"}, status=409)
        if view is None:
            return web.json({"error": f"no SLA state for record {record_id!r}"}, status=404)
        return web.json(view)

    @app.page("/sla/urgent")
    async def urgent(web: View, request: Request) -> Response:
        query = request.query
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            return web.json({"error": f"limit must be an integer, got {query.get('limit')!r}"}, status=400)
        if not 0 < limit <= MAX_LIMIT:
            return web.json({"error": f"limit must be in 1..{MAX_LIMIT}, got {limit}"}, status=400)
        filters = {name: query.get(name) for name in ("owner", "queue", "tier")}
        now_ms = processor.stream_now_ms(int(time.time() * 1000))
        rows = [urgent_json(e, now_ms) for e in processor.urgent(limit, **filters)]
        if query.get("local") != "1":
            rows = await _with_peers(app, request, rows)
            rows.sort(key=lambda r: (r["deadline_ms"], r["record_id"], r["kpi"], r["instance"]))
        return web.json({"now_ms": now_ms, "kpis": rows[:limit]})

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        assigned = bool(app.consumer.assignment()) if app.consumer else False
        recovered = cast(Any, app.tables).recovery.completed.is_set()  # TableManager's, not in its stub
        is_ready = assigned and recovered and not app.rebalancing
        body = {"ready": is_ready, "assigned": assigned, "recovered": recovered, "rebalancing": app.rebalancing}
        return web.json(body, status=200 if is_ready else 503)

    @app.page("/metrics")
    async def metrics(web: View, request: Request) -> Response:
        # aiohttp takes the charset apart from the content type; the exposition is UTF-8
        content_type = processor.metrics.CONTENT_TYPE.split("; charset=")[0]
        return web.text(processor.metrics.exposition().decode(), content_type=content_type)


async def _with_peers(app: faust.App, request: Request, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` plus the local answers of every other worker of the group (``?local=1`` on each)."""
    own = str(app.conf.canonical_url).rstrip("/")
    peers = [str(url).rstrip("/") for url in app.router.tables_metadata() if str(url).rstrip("/") != own]
    if not peers:
        return rows
    query = {**request.query, "local": "1"}
    timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def ask(peer: str) -> list[dict[str, Any]]:
            async with session.get(f"{peer}/sla/urgent", params=query) as response:
                response.raise_for_status()
                return list((await response.json())["kpis"])

        answers = await asyncio.gather(*(ask(peer) for peer in peers), return_exceptions=True)
    for peer, answer in zip(peers, answers, strict=True):
        if isinstance(answer, BaseException):
            raise faust.web.exceptions.ServiceUnavailable(f"worker {peer} did not answer: {answer}")
        rows.extend(answer)
    return rows
