"""The versioned ClickHouse schema on the embedded engine: an old database is upgraded with ALTER, keeping its
rows; migrating twice changes nothing; a database newer than this slaflow is refused; the CLI says what it did."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from sinks.clickhouse import MIGRATIONS, SCHEMA_TABLE, SinkError, connect, migrate, schema_version, statements
from streams.errors import ConfigError

pytestmark = pytest.mark.integration

T0 = 1_772_445_600_000  # 2026-03-02 10:00 UTC


def tables(client: Client, database: str) -> set[str]:
    return {name for (name,) in client.query(f"SHOW TABLES FROM {database}").result_rows}


def test_a_version_1_database_is_upgraded_in_place(clickhouse: tuple[Client, str]) -> None:
    client, db = clickhouse
    # What slaflow 0.5's sink left behind: sla_alerts as created by migration 1, no schema table, one alert.
    for statement in statements(MIGRATIONS[0].sql, db):
        client.command(statement)
    client.command(
        f"INSERT INTO {db}.sla_alerts (alert_id, kind, record_id, kpi, kpi_instance, started_at, threshold_at, "
        f"deadline, fired_at) VALUES ('C-1/resolution/0/BREACH', 'BREACH', 'C-1', 'resolution', 0, "
        f"fromUnixTimestamp64Milli({T0}), fromUnixTimestamp64Milli({T0}), fromUnixTimestamp64Milli({T0}), "
        f"fromUnixTimestamp64Milli({T0}))"
    )

    report = migrate(client, db)

    assert (report.found, report.version) == (0, len(MIGRATIONS))
    assert report.applied == tuple(f"{m.version:04d}_{m.name}" for m in MIGRATIONS)
    assert {"sla_alerts", "kpi_transitions", "kpi_durations", "record_events", "activities", "call_events",
            "kpi_instances", "status_segments", "telephony_calls", SCHEMA_TABLE} <= tables(client, db)  # fmt: skip
    assert client.query(
        f"SELECT alert_id, instance_id, source_partition, source_offset FROM {db}.sla_alerts FINAL"
    ).result_rows == [("C-1/resolution/0/BREACH", "C-1/resolution/0", -1, -1)]
    assert schema_version(client, db) == len(MIGRATIONS)


def test_migrating_again_applies_nothing_and_keeps_rows(clickhouse: tuple[Client, str]) -> None:
    client, db = clickhouse
    migrate(client, db)
    client.command(f"INSERT INTO {db}.record_events (event_id, record_id, occurred_at) VALUES ('e', 'C-1', now64(3))")
    again = migrate(client, db)
    assert (again.found, again.applied, again.version) == (len(MIGRATIONS), (), len(MIGRATIONS))
    assert client.command(f"SELECT count() FROM {db}.record_events") == 1
    assert client.command(f"SELECT count() FROM {db}.{SCHEMA_TABLE} FINAL") == len(MIGRATIONS)


def test_a_database_from_a_newer_slaflow_is_refused(clickhouse: tuple[Client, str]) -> None:
    client, db = clickhouse
    migrate(client, db)
    client.command(f"INSERT INTO {db}.{SCHEMA_TABLE} (version, name, checksum) VALUES (99, 'future', '')")
    with pytest.raises(ConfigError, match=r"schema version 99, newer than this slaflow's \d+: upgrade slaflow"):
        migrate(client, db)


def test_the_cli_migrates_and_says_so(tmp_path: Path) -> None:
    url = f"chdb://{tmp_path / 'ch'}"
    command = [sys.executable, "-m", "agents.cli", "clickhouse", "migrate", "--clickhouse-url", url,
               "--clickhouse-database", "analytics"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stderr
    assert f"ClickHouse {url} database analytics: schema version 0 -> {len(MIGRATIONS)} (0001_" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert f"schema version {len(MIGRATIONS)} -> {len(MIGRATIONS)} (nothing to apply)" in second.stdout

    wrong = subprocess.run([*command[:-1], "bad-name"], capture_output=True, text=True, timeout=60, check=False)
    assert wrong.returncode == 2
    assert "ClickHouse database 'bad-name': expected letters, digits and _" in wrong.stderr


def test_a_closed_port_is_a_retriable_error_without_the_password() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    with pytest.raises(SinkError) as caught:
        connect(f"http://slaflow:s3cret@127.0.0.1:{port}/", "slaflow")
    assert caught.value.retriable
    assert f"cannot reach ClickHouse at http://slaflow:***@127.0.0.1:{port}/" in str(caught.value)
    assert "s3cret" not in str(caught.value)
