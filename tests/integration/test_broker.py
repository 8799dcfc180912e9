"""The local Kafka launcher against the real broker: it starts, answers, stops, and fails clearly."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.kafka.broker import BrokerError, LocalKafka, broker_answers, kafka_version

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    return False


def test_session_broker_answers_metadata(kafka_bootstrap: str) -> None:
    assert broker_answers(kafka_bootstrap)
    assert kafka_version().startswith("4.")


def test_start_stop_restart_keeps_data_and_leaves_no_process(tmp_path: Path) -> None:
    broker = LocalKafka(data_dir=tmp_path / "k")
    broker.start()
    pid = broker.pid
    assert pid is not None and alive(pid)
    meta = (tmp_path / "k" / "kraft" / "meta.properties").read_text()
    broker.stop()
    assert not alive(pid)
    with LocalKafka(data_dir=tmp_path / "k") as again:  # formatted storage is reused, not reformatted
        assert broker_answers(again.bootstrap)
    assert (tmp_path / "k" / "kraft" / "meta.properties").read_text() == meta
    assert "Kafka version: 4." in (tmp_path / "k" / "logs" / "server.log").read_text()


def test_port_in_use_is_a_clear_error_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = LocalKafka(data_dir=tmp_path / "k", port=port)
        with pytest.raises(BrokerError, match=rf"port 127.0.0.1:{port} is already in use"):
            broker.start()
        assert broker.pid is None


def test_missing_java_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"no Java runtime.*apt-get install"):
        LocalKafka(data_dir=tmp_path, java="/nonexistent/java").start()


def test_failures_while_formatting_or_starting_quote_the_output(tmp_path: Path) -> None:
    with pytest.raises(BrokerError, match=r"Formatting the KRaft storage .* failed") as caught:
        LocalKafka(data_dir=tmp_path / "k", heap_mb=1).start()  # the JVM refuses a 1 MB heap
    assert "Too small maximum heap" in str(caught.value)
    with LocalKafka(data_dir=tmp_path / "k"):  # formats the storage, starts, stops
        pass
    broker = LocalKafka(data_dir=tmp_path / "k", heap_mb=1)
    with pytest.raises(BrokerError, match=r"exited with code 1 while starting") as caught:
        broker.start()
    assert "Too small maximum heap" in str(caught.value)
    assert broker.pid is None


def test_broker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    script = (
        "import sys, time; from deploy.kafka.broker import LocalKafka\n"
        f"k = LocalKafka(data_dir=__import__('pathlib').Path({str(tmp_path / 'k')!r})); k.start()\n"
        "print(k.pid, flush=True); time.sleep(600)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as parent:
        assert parent.stdout is not None
        jvm = int(parent.stdout.readline())
        assert alive(jvm)
        parent.send_signal(signal.SIGKILL)  # no chance to clean up
    assert wait_gone(jvm), f"broker JVM {jvm} outlived its parent"
