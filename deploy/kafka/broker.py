"""A real, single-node Apache Kafka broker (KRaft) on 127.0.0.1, for the demo and the tests.

The broker's jars are resolved by Maven from ``deploy/kafka/pom.xml`` into
``deploy/kafka/lib/<kafka version>/`` (``make setup`` does it). This module
formats the KRaft storage (``kafka.tools.StorageTool format --standalone``),
starts ``kafka.Kafka`` as one process acting as broker and controller, waits
until the broker answers a metadata request, and stops it cleanly: SIGTERM,
a bounded wait, then SIGKILL.

The single node is configured so that everything a real cluster offers works
on it: the offsets, transaction-state and share-group state topics have
replication factor 1 and min ISR 1, so consumer groups and transactions
(exactly-once) work with one broker.

The broker process dies with the Python process that started it (Linux
``PR_SET_PDEATHSIG``), so an interrupted ``make run`` or a killed test run
leaves no JVM behind.

Command line (used by the Makefile and by hand)::

    python -m deploy.kafka.broker [--data-dir DIR] [--port N]

starts a broker, prints its bootstrap address, and runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from aiokafka.client import AIOKafkaClient

from streams.errors import ConfigError, SlaflowError

KAFKA_HOME = Path(__file__).resolve().parent
"""The folder holding ``pom.xml``, ``log4j2.properties`` and ``lib/``."""

LOG_TAIL_LINES = 25
"""How many lines of the broker log an error message quotes."""


class BrokerError(SlaflowError):
    """The local broker could not be set up, started or reached.

    The message is a paragraph meant for a person: what happened, what to do,
    and the tail of the broker log when there is one. Not retriable as such:
    the launcher already waited as long as it was told to.
    """


def kafka_version(pom: Path = KAFKA_HOME / "pom.xml") -> str:
    """The Apache Kafka version pinned in ``deploy/kafka/pom.xml``."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not (node.text or "").strip():
        raise BrokerError(f"{pom}: no <properties><kafka.version> element; the launcher cannot tell which jars to run.")
    return (node.text or "").strip()


def jar_dir(version: str | None = None) -> Path:
    """Where Maven put the broker jars for ``version`` (default: the pinned one)."""
    return KAFKA_HOME / "lib" / (version or kafka_version())


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class PortInUse(BrokerError, ConfigError):
    """The port asked for is taken: a configuration matter (exit code 2), like every setting that cannot be used."""


def _check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port left in TIME_WAIT is free to listen on
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUse(
                f"Cannot start the local Kafka broker: {what} port {host}:{port} is already in use "
                "(another broker, or a process left from an earlier run?). Stop whatever listens there "
                f"(`ss -ltnp 'sport = :{port}'` shows it), or choose another port, or leave the port unset "
                "so that a free one is picked."
            ) from exc


def kraft_cluster_id() -> str:
    """A random KRaft cluster id: 16 bytes, URL-safe base64 without padding, as Kafka's Uuid prints.

    Like Kafka's own ``Uuid.randomUuid()``, it never begins with ``-`` (one id in 64 would), which a command
    line could read as an option (``kafka-storage format`` failed so: "argument --cluster-id/-t: expected one
    argument").
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not text.startswith("-"):
            return text


def die_with_parent() -> None:
    """Run in the child before exec: SIGTERM it when the parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no broker log was written)"
    return "\n".join(text[-lines:]) if text else "(the broker log is empty)"


async def _probe_metadata(bootstrap: str, timeout_s: float) -> list[int]:
    """Ask the broker for cluster metadata; the broker ids it reports."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        metadata = await asyncio.wait_for(client.fetch_all_metadata(), timeout_s)
        return sorted(b.nodeId for b in metadata.brokers())
    finally:
        await client.close()


def broker_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """Whether a broker at ``bootstrap`` answers a metadata request within ``timeout_s`` seconds."""
    host, _, port = bootstrap.rpartition(":")
    try:  # a plain connect first: aiokafka logs every refused connection as an error
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
        return bool(asyncio.run(_probe_metadata(bootstrap, timeout_s)))
    except Exception:  # any failure to answer means "not (yet) up"
        return False


@dataclass
class LocalKafka:
    """One local Kafka broker+controller process.

    ``port`` and ``controller_port`` of 0 pick free ports. ``data_dir`` holds
    the KRaft log directory (``kraft/``), the generated ``server.properties``
    and the logs (``logs/server.log``, ``logs/stdout.log``); ``None`` uses a
    temporary folder removed on :meth:`stop`. A data directory that was
    formatted before is reused as it is, so a broker can be restarted with
    its topics, offsets and transactions intact.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    data_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 0
    controller_port: int = 0
    heap_mb: int = 512
    partitions: int = 4
    startup_timeout_s: float = 90.0
    stop_timeout_s: float = 20.0
    java: str = field(default_factory=lambda: os.environ.get("JAVA", "java"))
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, init=False, repr=False)

    @property
    def version(self) -> str:
        """The Apache Kafka version this broker runs."""
        return kafka_version()

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener (valid once started)."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's own log file (log4j2)."""
        return self._dir / "logs" / "server.log"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._process.pid if self._process else None

    @property
    def _dir(self) -> Path:
        if self.data_dir is None:
            raise BrokerError("LocalKafka has no data directory until start() is called.")
        return self.data_dir

    def __enter__(self) -> LocalKafka:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Format storage if needed, start the broker, wait until it answers; return the bootstrap address."""
        if self._process is not None:
            return self.bootstrap
        if shutil.which(self.java) is None:
            raise BrokerError(
                f"Cannot start the local Kafka broker: no Java runtime ('{self.java}' is not on PATH). "
                "Install Java 17 or newer (Debian: `apt-get install -y openjdk-17-jre-headless`), "
                "or set KAFKA_BOOTSTRAP to use a broker you already run."
            )
        jars = jar_dir()
        if not any(jars.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Cannot start the local Kafka broker: its jars are not in {jars}. Run `make setup` "
                "(it resolves them with Maven from deploy/kafka/pom.xml), or set KAFKA_BOOTSTRAP to use "
                "a broker you already run."
            )
        if self.data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="slaflow-kafka-")
            self.data_dir = Path(self._tmp.name)
        (self._dir / "logs").mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port(self.host)
        self.controller_port = self.controller_port or free_port(self.host)
        _check_port_free(self.host, self.port, "the broker")
        _check_port_free(self.host, self.controller_port, "the controller")
        config = self._write_config()
        if not (self._dir / "kraft" / "meta.properties").exists():
            self._format(jars, config)
        self._launch(jars, config)
        try:
            self._wait_until_up()
        except BaseException:
            self.stop()
            raise
        return self.bootstrap

    def stop(self) -> None:
        """Stop the broker: SIGTERM, wait up to ``stop_timeout_s``, then SIGKILL. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self.data_dir = None

    def _write_config(self) -> Path:
        listeners = f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{self.host}:{self.controller_port}",
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self._dir / "kraft"),
            "num.partitions": str(self.partitions),
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        path = self._dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        return path

    def _java_command(self, jars: Path, main: str, *args: str) -> list[str]:
        return [
            self.java,
            f"-Xmx{self.heap_mb}m",
            f"-Xms{min(self.heap_mb, 128)}m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self._dir / 'logs'}",
            f"-Dlog4j2.configurationFile={KAFKA_HOME / 'log4j2.properties'}",
            "-cp",
            f"{jars}/*",
            main,
            *args,
        ]

    def _format(self, jars: Path, config: Path) -> None:
        command = self._java_command(
            jars,
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={kraft_cluster_id()}",
            "-c",
            str(config),
            "--standalone",
        )
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()[-LOG_TAIL_LINES:]
            raise BrokerError(
                f"Formatting the KRaft storage in {self._dir / 'kraft'} failed (exit {result.returncode}). "
                "If that folder holds data of another cluster, remove it or choose another data directory. "
                "Tool output:\n" + "\n".join(output)
            )

    def _launch(self, jars: Path, config: Path) -> None:
        stdout = open(self._dir / "logs" / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                self._java_command(jars, "kafka.Kafka", str(config)),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,  # a terminal's Ctrl-C reaches the broker through us, in order
                preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        finally:
            stdout.close()

    def _wait_until_up(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise BrokerError(
                    f"The local Kafka broker exited with code {code} while starting. "
                    f"Its log is {self.log_path} (and {self._dir / 'logs' / 'stdout.log'}); last lines:\n"
                    + _tail(self.log_path)
                    + "\n"
                    + _tail(self._dir / "logs" / "stdout.log", 10)
                )
            if broker_answers(self.bootstrap, timeout_s=2.0):
                return
            time.sleep(0.25)
        raise BrokerError(
            f"The local Kafka broker did not answer a metadata request on {self.bootstrap} within "
            f"{self.startup_timeout_s:.0f} s and was stopped. The machine may be overloaded, or the JVM "
            f"short of memory (heap {self.heap_mb} MB). Its log is {self.log_path}; last lines:\n"
            + _tail(self.log_path)
        )


def serve(data_dir: Path | None = None, port: int = 0) -> int:
    """Start a broker and keep it running until SIGINT (exit code 130) or SIGTERM (0); raises :class:`BrokerError`
    when it cannot start."""
    received: list[int] = []

    def _on_signal(signum: int, frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    kafka = LocalKafka(data_dir=data_dir, port=port)
    bootstrap = kafka.start()
    print(f"Apache Kafka {kafka.version} listening on {bootstrap} (log: {kafka.log_path})", flush=True)
    try:
        while not received and kafka._process is not None and kafka._process.poll() is None:
            time.sleep(0.5)
    finally:
        kafka.stop()
    return 130 if signal.SIGINT in received else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m deploy.kafka.broker``: :func:`serve` with the command line's data directory and port."""
    parser = argparse.ArgumentParser(prog="python -m deploy.kafka.broker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="data directory (default: a temporary one)")
    parser.add_argument("--port", type=int, default=0, help="broker port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args(argv)
    try:
        return serve(args.data_dir, args.port)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
