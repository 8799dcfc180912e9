"""Helpers of the tests that talk to a worker's web server: GET a view, wait until the worker is ready, read a
metric from ``/metrics``. A fixture module: tests import it, never each other."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agents.settings import Settings
from agents.topics import ensure_topics
from tests.integration.conftest import free_port

__all__ = ["free_port", "get", "metric", "on_policy", "wait_for", "wait_ready"]


def on_policy(settings: Settings, policy_file: Path, policy: str) -> tuple[Settings, int]:
    """The settings of a worker on the policy text ``policy`` (written to ``policy_file``), its ticker off (the
    test writes the clock ticks) and its web server on a free port; the topics are created. Returns the settings
    and that port."""
    policy_file.write_text(policy)
    port = free_port()
    settings = settings.replace(policies=policy_file, tick_interval_s=0, web_port=port)
    asyncio.run(ensure_topics(settings))
    return settings, port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """``(status, body)`` of ``GET http://127.0.0.1:PORT/PATH``; a JSON object body is decoded."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read(), exc.code
    text = body.decode()
    return status, json.loads(text) if text.startswith("{") else text


def wait_ready(port: int, timeout_s: float = 90.0) -> None:
    """Wait until the worker's ``/ready`` answers 200."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if get(port, "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the worker on port {port} never became ready")


def metric(port: int, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` on the worker's ``/metrics`` whose labels include ``labels``."""
    status, text = get(port, "/metrics")
    assert status == 200, text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def wait_for(what: str, probe: Callable[[], Any], expected: Any, timeout_s: float = 20.0) -> None:
    """Wait until ``probe()`` returns ``expected`` (the worker updates gauges every few seconds)."""
    deadline = time.monotonic() + timeout_s
    got = probe()
    while got != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {got!r} after {timeout_s} s, expected {expected!r}")
        time.sleep(0.5)
        got = probe()
