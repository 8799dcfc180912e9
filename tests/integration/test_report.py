"""``slaflow report`` on a simulated contact centre in the embedded ClickHouse, and its HTML in headless Chromium.

The data (one simulated day, about 9,000 KPI instances) is loaded once for the module. chDB opens one data
directory per process, so the empty-database case uses a fresh database in the same directory, not a new
directory. The bottlenecks are checked against a recomputation in Python from plain rows of the views, so
that a mistake in the report's SQL cannot hide behind the same mistake in the check.
"""

from __future__ import annotations

import argparse
import bisect
import shutil
import struct
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from agents.cli import main
from agents.report import add_command
from agents.sink_data import SinkInput, simulated
from sinks.clickhouse import ClickHouseSink, connect, migrate
from sinks.report import OPEN_LATE_SHOWN, Report, build_report, describe
from sinks.report_pages import render_html, render_text, write_report
from sinks.rows import ROWS_OF
from streams.errors import ConfigError
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration

DATABASE = "report_sim"
SCREEN = (1280, 2400)
CHROMIUM_TIMEOUT_S = 90
CLOSED_ENDS = """(
    SELECT d.* FROM (SELECT * FROM {db}.kpi_durations FINAL WHERE NOT revoked) AS d
    LEFT JOIN
    (
        SELECT instance_id, countIf(kind = 'KPI_REOPENED') AS reopens
        FROM {db}.kpi_transitions FINAL WHERE NOT revoked GROUP BY instance_id
    ) AS r ON r.instance_id = d.instance_id
    WHERE d.sequence >= r.reopens
)"""
"""The ends that count, from the tables: not revoked, and not followed by a reopen (an end's sequence is the
number of reopens before it)."""
MISSING_CHROMIUM = "chromium not found on PATH: run `make chromium` (part of `make setup`), which installs it"


@dataclass
class Loaded:
    client: Client
    url: str
    data: SinkInput


def load(client: Client, database: str, data: SinkInput) -> None:
    """Every message of every topic, as the sink writes them (offsets as on a single partition)."""
    sink = ClickHouseSink(client, database)
    for topic, values in data.topics.items():
        for offset, value in enumerate(values):
            for table, row in ROWS_OF[topic](value, 0, offset):
                sink.add(table, row)
    sink.flush()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    url = f"chdb://{tmp_path_factory.mktemp('report') / 'clickhouse'}"
    client = connect(url, DATABASE)
    try:
        migrate(client, DATABASE)
        data = simulated(days=1.0, cases_per_day=2_000, seed=1)
        load(client, DATABASE, data)
        yield Loaded(client, url, data)
    finally:
        client.close()


@pytest.fixture(scope="module")
def report(loaded: Loaded) -> Report:
    return build_report(loaded.client, DATABASE, top=5)


def rows(client: Client, sql: str) -> list[Any]:
    return list(client.query(sql).result_rows)


def expected_bottlenecks(client: Client, db: str, as_of_ms: int) -> list[tuple[str, int, int]]:
    """(label, KPIs, breaches) of the worst five, recomputed in Python from plain rows of the views (module doc
    of sinks.report: decided KPIs, attribution at the decision instant, excess over the overall rate)."""
    instances = rows(
        client,
        f"""SELECT instance_id, entity_type, record_id, policy, kpi, outcome, breached,
                   toUnixTimestamp64Milli(deadline), toUnixTimestamp64Milli(ended_at), reopened,
                   queue, owner, tier, priority, category
            FROM {db}.kpi_instances""",
    )
    segments: dict[tuple[str, str], list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
    for entity, record, start, *state in rows(
        client,
        f"""SELECT entity_type, record_id, toUnixTimestamp64Milli(started_at),
                   status, queue, owner, tier, priority, category
            FROM {db}.status_segments ORDER BY started_at""",
    ):
        segments[(entity, record)].append((start, tuple(state)))
    emails: dict[str, int] = dict(
        rows(
            client,
            f"""SELECT regarding_id, count() FROM {db}.activities FINAL
                WHERE activity_type = 'email' AND regarding_type = 'case' GROUP BY regarding_id""",
        )
    )
    groups: dict[tuple[str, str], set[str]] = defaultdict(set)
    breached_ids: set[str] = set()
    decided = 0
    for iid, entity, record, policy, kpi, outcome, breached, deadline, ended, reopened, *own in instances:
        if not (breached or outcome == "met"):
            continue
        decided += 1
        if breached:
            breached_ids.add(iid)
        at = deadline if breached and deadline is not None else ended if ended is not None else as_of_ms
        history = segments.get((entity, record), [])
        n = bisect.bisect_left([start for start, _ in history], at) - 1  # the last segment starting before `at`
        state = history[n][1] if n >= 0 else ("",) * 6
        attributes = dict(zip(("queue", "owner", "tier", "priority", "category"), own, strict=True))
        if outcome == "open":
            attributes.update({k: v for k, v in zip(attributes, state[1:], strict=True) if v})
        attributes["kpi"] = f"{policy}/{kpi}"
        attributes["status"] = f"{entity}/{state[0]}" if state[0] else ""
        attributes["reopened"] = "reopened" if reopened > 0 else "never"
        count = emails.get(record, 0)
        attributes["emails"] = ("0-1" if count <= 1 else "2-3" if count <= 3 else "4+") if entity == "case" else ""
        for dimension, value in attributes.items():
            if value:
                groups[(dimension, value)].add(iid)
    rate = len(breached_ids) / decided
    by_set: dict[frozenset[str], list[tuple[str, str]]] = defaultdict(list)
    kpi_of = {iid: f"{policy}/{kpi}" for iid, _, _, policy, kpi, *_ in instances}
    for key, ids in groups.items():
        if key[0] == "status" and len({kpi_of[i] for i in ids}) == 1:
            continue  # the stage one KPI's clock runs in by definition: no bottleneck
        by_set[frozenset(ids)].append(key)
    scored = []
    for ids, keys in by_set.items():
        breaches = len(ids & breached_ids)
        excess = breaches - len(ids) * rate
        if excess > 1e-9:
            scored.append((-excess, keys, len(ids), breaches))
    scored.sort(key=lambda s: s[0])
    return [(" / ".join(sorted(describe(*k) for k in keys)), kpis, breaches) for _, keys, kpis, breaches in scored[:5]]


def test_report_names_the_five_worst_bottlenecks_with_their_figures(loaded: Loaded, report: Report) -> None:
    client = loaded.client
    t = report.totals
    (ended,) = rows(client, f"SELECT count() FROM {CLOSED_ENDS.format(db=DATABASE)}")[0]
    assert t.ended == ended > 1000
    assert t.met + t.breached_ended + t.cancelled == t.ended
    assert 0 < t.breaches < t.decided
    assert report.as_of is not None

    assert report.headline.startswith(
        f"{t.ended:,} KPIs ended ({t.met:,} met, {t.breached_ended:,} breached, {t.cancelled:,} cancelled)"
    )
    assert "worst bottleneck: " + report.bottlenecks[0].full_label in report.headline
    text = render_text(report)
    assert text.splitlines()[0] == report.headline

    assert len(report.bottlenecks) == 5
    excess = [b.excess_breaches for b in report.bottlenecks]
    assert excess == sorted(excess, reverse=True) and excess[-1] > 0
    for b in report.bottlenecks:
        assert b.kpis > 0 and 0 < b.breaches <= b.kpis
        assert b.breach_rate > b.overall_rate == pytest.approx(t.breaches / t.decided)
        assert b.mean_hours > 0 and b.overdue_hours > 0
        assert b.full_label in text

    expected = expected_bottlenecks(client, DATABASE, int(report.as_of.timestamp() * 1000))
    got = [(" / ".join(sorted((b.label, *b.same_as))), b.kpis, b.breaches) for b in report.bottlenecks]
    assert got == expected


def test_the_top_bottleneck_agrees_with_a_direct_count(loaded: Loaded, report: Report) -> None:
    top = report.bottlenecks[0]
    # In this simulation the worst is KPI standard/first_response (1-business-day first responses): a KPI's own
    # policy and name need no attribution, so one plain count over the view must give the same figures.
    assert (top.dimension, top.value) == ("kpi", "standard/first_response"), top
    policy, _, kpi = top.value.partition("/")
    # From the tables, not the views: the met or breached ends, and the KPIs with a breach alert and no end.
    closed = CLOSED_ENDS.format(db=DATABASE)
    ended_kpis, ended_breaches = rows(
        loaded.client,
        f"SELECT countIf(outcome = 'met' OR breached), countIf(breached) FROM {closed} "
        f"WHERE policy = '{policy}' AND kpi = '{kpi}'",
    )[0]
    (open_breaches,) = rows(
        loaded.client,
        f"""SELECT uniqExact(instance_id) FROM {DATABASE}.sla_alerts FINAL
            WHERE NOT revoked AND kind = 'BREACH' AND policy = '{policy}' AND kpi = '{kpi}'
              AND instance_id NOT IN (SELECT instance_id FROM {closed})""",
    )[0]
    assert (top.kpis, top.breaches) == (ended_kpis + open_breaches, ended_breaches + open_breaches)


def test_sections_add_up(report: Report) -> None:
    t = report.totals
    assert sum(g.decided for g in report.tiers) == t.decided == sum(g.decided for g in report.queues)
    assert sum(g.breaches for g in report.tiers) == t.breaches
    *queues, total = report.calls
    assert total.queue == "all" and total.offered == sum(q.offered for q in queues) > 0
    for q in report.calls:
        assert q.service_level is not None and 0 <= q.service_level <= 1
        assert q.answered + q.abandoned <= q.offered
    assert report.statuses and all(s.hours >= 0 for s in report.statuses)
    assert report.agents and all(a.agent not in ("", "unassigned") for a in report.agents)
    assert set(report.trend.shares) >= {"all"} and report.trend.bucket == "hour"
    assert all(len(series) == len(report.trend.starts) for series in report.trend.shares.values())


def test_a_replayed_topic_changes_nothing(loaded: Loaded, report: Report) -> None:
    load(loaded.client, DATABASE, loaded.data)  # every message a second time, as after a replay
    again = build_report(loaded.client, DATABASE, top=5)
    assert again.totals == report.totals
    assert render_text(again) == render_text(report)


def test_an_empty_database_gives_a_report_that_says_so(loaded: Loaded) -> None:
    empty = "report_empty"
    loaded.client.command(f"CREATE DATABASE IF NOT EXISTS {empty}")  # as connect() does for its own database
    migrate(loaded.client, empty)
    report = build_report(loaded.client, empty)
    assert report.headline.startswith("No KPI has ended yet")
    assert report.bottlenecks == () and report.as_of is None
    assert report.totals.met_share is None and report.totals.breach_rate is None
    assert render_text(report).splitlines()[0] == report.headline
    html = render_html(report)
    assert html.count("<svg") >= 4 and "no data yet" in html


def test_cli_prints_the_report_and_writes_the_html(
    loaded: Loaded, report: Report, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="slaflow")
    add_command(parser.add_subparsers(dest="command", required=True))
    html = tmp_path / "out" / "r.html"
    args = parser.parse_args(
        ["report", "--clickhouse-url", loaded.url, "--clickhouse-database", DATABASE, "--html", str(html), "--top", "3"]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == report.headline
    assert out.rstrip().endswith(f"HTML report: {html.resolve()}")
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    # A database nobody wrote is a mistake (a wrong --data-dir or database name), not an empty report.
    args = parser.parse_args(
        ["report", "--data-dir", str(tmp_path / "d"), "--clickhouse-url", loaded.url, "--clickhouse-database", "fresh"]
    )
    with pytest.raises(ConfigError, match="holds no slaflow database 'fresh'"):
        args.func(args)
    assert not (tmp_path / "d" / "report.html").exists()


def test_cli_says_so_in_one_line_when_clickhouse_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://user:s3cret@127.0.0.1:{free_port()}"
    assert main(["report", "--clickhouse-url", url, "--html", str(tmp_path / "r.html")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("slaflow report: error: cannot reach ClickHouse at http://user:***@127.0.0.1:")
    assert "s3cret" not in line
    assert not (tmp_path / "r.html").exists()


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def screenshot(chromium: str, page: Path, out: Path, profile: Path) -> Path:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={SCREEN[0]},{SCREEN[1]}",
        f"--screenshot={out}",
        page.resolve().as_uri(),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"chromium took more than {CHROMIUM_TIMEOUT_S} s to screenshot {page}")
    assert done.returncode == 0 and out.is_file(), f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return out


def test_html_report_is_self_contained_and_renders_in_chromium(loaded: Loaded, tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail(MISSING_CHROMIUM, pytrace=False)
    page = tmp_path / "report.html"
    report = write_report(loaded.client, DATABASE, page)
    html = page.read_text(encoding="utf-8")
    assert report.headline.replace("'", "&#x27;") in html
    lowered = html.lower()
    for external in ("<script", "src=", "url(", "<link", "@import"):
        assert external not in lowered, external
    assert all(link.startswith('"#') for link in lowered.split("href=")[1:]), "links only to its own sections"
    assert html.count("<svg") >= 4

    blank = tmp_path / "blank.html"
    blank.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body></body></html>\n')
    shot = screenshot(chromium, page, tmp_path / "report.png", tmp_path / "profile-report")
    empty = screenshot(chromium, blank, tmp_path / "blank.png", tmp_path / "profile-blank")
    assert png_size(shot) == SCREEN == png_size(empty)
    report_bytes, blank_bytes = shot.stat().st_size, empty.stat().st_size
    print(f"screenshots: report {report_bytes:,} bytes, blank {blank_bytes:,} bytes")
    assert report_bytes > 3 * blank_bytes, (report_bytes, blank_bytes)


def test_the_report_speaks_plainly_and_lists_what_is_open_past_its_deadline(report: Report) -> None:
    """Regression: jargon ("decided", "excess") without a word of explanation, a tautology as the worst
    bottleneck (a call's answer KPI "in status queued"), and a count of late open KPIs with no list behind it."""
    text = render_text(report)
    assert "How to read this" in text
    assert "decided" not in text and "excess" not in text
    assert not any("status 'queued' (phone_call)" in b.full_label for b in report.bottlenecks)
    t = report.totals
    assert t.open_breached > 0 and len(report.open_late) == min(t.open_breached, OPEN_LATE_SHOWN)
    deadlines = [late.deadline for late in report.open_late]
    assert deadlines == sorted(deadlines) and all(late.overdue_hours > 0 for late in report.open_late)
    assert f"Open past their deadline ({t.open_breached:,})" in text
    assert all(late.record_id in text for late in report.open_late)
    html = render_html(report)
    assert html.count('href="#open-late"') == 1 and html.count('id="open-late"') == 1
