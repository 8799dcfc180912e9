"""Fixtures of the integration tests: a real Prometheus server, and promtool.

Both come from Debian's ``prometheus`` package (``make setup`` installs it). A
test that needs them fails, never skips, when they are missing. Each server
runs on 127.0.0.1 on a free port with its own configuration and storage in the
test's temporary directory, so a system Prometheus service (which the Debian
package may start) is never touched.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

MISSING = "{name} not found on PATH: run `make setup`, which installs Debian's prometheus package"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(MISSING.format(name=name), pytrace=False)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class PrometheusServer:
    """A running Prometheus: its base ``url`` and helpers over the HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: Any = field(repr=False)

    def api(self, path: str, **params: str) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (fails the test on an error status)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as exc:
            with exc:
                body = json.load(exc)
        if body.get("status") != "success":
            pytest.fail(f"Prometheus API {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate the instant query ``expr`` now; the result vector (``[{"metric": {...}, "value": [t, "v"]}]``)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"] if data["resultType"] == "vector" else [data]
        return result

    def wait_for(
        self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Query ``expr`` until ``predicate(result)`` holds and return that result; fail after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        result = self.query(expr)
        while not predicate(result):
            if time.monotonic() > deadline:
                pytest.fail(f"after {timeout_s} s, {expr!r} is still {result} (Prometheus log: {self.log_path})")
            time.sleep(0.2)
            result = self.query(expr)
        return result

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class StartPrometheus(Protocol):
    def __call__(
        self, targets: Sequence[str] = (), rule_files: Sequence[Path] = (), scrape_interval_s: float = 1.0
    ) -> PrometheusServer: ...


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[StartPrometheus]:
    """Start real Prometheus servers: ``prometheus(targets=["127.0.0.1:8000"], rule_files=[...])``.

    Targets are scraped as job ``slaflow`` every ``scrape_interval_s`` (rules are
    evaluated as often). The call returns once ``/-/ready`` answers; every server
    is stopped at the end of the test.
    """
    binary = _binary("prometheus")
    servers: list[PrometheusServer] = []

    def start(
        targets: Sequence[str] = (), rule_files: Sequence[Path] = (), scrape_interval_s: float = 1.0
    ) -> PrometheusServer:
        home = tmp_path / f"prometheus-{len(servers)}"
        home.mkdir()
        interval = f"{int(scrape_interval_s * 1000)}ms"
        config: dict[str, Any] = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(Path(path).resolve()) for path in rule_files],
            "scrape_configs": [{"job_name": "slaflow", "static_configs": [{"targets": list(targets)}]}]
            if targets
            else [],
        }
        (home / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log_path = home / "prometheus.log"
        log = log_path.open("wb")
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={home / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=home,
        )
        server = PrometheusServer(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, _log=log)
        servers.append(server)
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return server
            except urllib.error.HTTPError as exc:  # 503 while starting
                exc.close()
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready after 30 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of the promtool binary (fails the test when it is missing)."""
    return _binary("promtool")
