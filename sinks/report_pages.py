"""The bottleneck report (:class:`sinks.report.Report`) for people: a terminal page and one HTML file.

Both pages show the same sections, declared once (:func:`sections`), with the same titles and columns, in
plain words: a rate counts the KPIs whose outcome is known (met, or past their deadline), and a bottleneck is
ranked by the breaches it has beyond what the overall rate would give it; each page says so in one line.
The HTML page is self-contained (inline CSS and SVG charts from :mod:`sinks.charts`, no script, no external
resource); its only links are to its own sections (the count of KPIs open past their deadline links to the
list of them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, tzinfo
from html import escape
from pathlib import Path
from typing import Final

from clickhouse_connect.driver.client import Client

from sinks import charts
from sinks.report import (
    OPEN_LATE_SHOWN,
    SERVICE_LEVEL_TARGET,
    SERVICE_LEVEL_THRESHOLD_S,
    GroupRate,
    Report,
    build_report,
)
from streams.display import HOUR_MS, format_span, format_when
from streams.display import format_count as _n
from streams.display import format_share as _pct

HOW_TO_READ: Final = (
    "How to read this: a rate counts the KPIs whose outcome is known, those met and those past their deadline "
    "(ended or still open); KPIs still within their target, and those cancelled in time, are left out. "
    "'Beyond the average' is how many more breaches a group has than the overall breach rate would give it for "
    "its number of KPIs: the breaches that would not have happened had it done as well as the average."
)
OPEN_LATE_ID: Final = "open-late"
"""The HTML id of the list of KPIs open past their deadline (the counts link to it)."""


def write_report(client: Client, database: str, html_path: Path | str, top: int = 5, *, zone: tzinfo = UTC) -> Report:
    """Build the report of ``database`` and write its HTML to ``html_path`` (parent folders made); return it.
    Instants are shown in ``zone``."""
    report = build_report(client, database, top, zone=zone)
    path = Path(html_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return report


# --- figures as text -------------------------------------------------------------------------------------------


def _beyond(value: float) -> str:
    return f"{value:+,.0f}" if abs(value) >= 10 else f"{value:+.1f}"


def _h(hours: float | None) -> str:
    if hours is None:
        return "-"
    return f"{hours:,.0f}" if hours >= 100 else f"{hours:.1f}"


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


# --- the sections, declared once -------------------------------------------------------------------------------

Rows = tuple[list[str], list[list[str]]]


@dataclass(frozen=True)
class Section:
    """One table of the report: its title, columns and rows, how many columns are names, what it says empty."""

    title: str
    rows: Callable[[Report], Rows]
    left: int
    empty: str
    anchor: str = ""
    note: Callable[[Report], str] = lambda _report: ""


def _bottleneck_rows(report: Report) -> Rows:
    headers = [
        "#",
        "where",
        "met or breached",
        "breaches",
        "rate",
        "at the avg rate",
        "beyond the avg",
        "mean h",
        "overdue h",
    ]
    rows = [
        [
            str(n),
            b.full_label,
            _n(b.kpis),
            _n(b.breaches),
            _pct(b.breach_rate),
            _n(b.expected_breaches),
            _beyond(b.excess_breaches),
            _h(b.mean_hours),
            _h(b.overdue_hours),
        ]
        for n, b in enumerate(report.bottlenecks, 1)
    ]
    return headers, rows


def _bottleneck_note(report: Report) -> str:
    return (
        f"'at the avg rate' = the group's KPIs x the overall breach rate ({_pct(report.totals.breach_rate)}); "
        "'beyond the avg' = its breaches minus that. Hours are wall clock: mean from start to end (to now while "
        "open); overdue = past the deadline, summed over the breaches."
    )


def _group_rows(groups: Sequence[GroupRate]) -> Rows:
    headers = [
        "",
        "met or breached",
        "breaches",
        "breach rate",
        "ended",
        "met of ended",
        "open, late",
        "mean business h",
    ]
    groups = [g for g in groups if g.decided or g.ended or g.open_breached]  # a row of zeros says nothing
    rows = [
        [
            g.name,
            _n(g.decided),
            _n(g.breaches),
            _pct(g.breach_rate),
            _n(g.ended),
            _pct(g.met_share),
            _n(g.open_breached),
            _h(g.mean_business_hours),
        ]
        for g in groups
    ]
    return headers, rows


def _status_rows(report: Report) -> Rows:
    headers = ["status", "record", "hours", "stays", "mean h", "in it now"]
    rows = [
        [s.status, s.entity_type, _h(s.hours), _n(s.stays), _h(s.mean_hours), _n(s.open_now)] for s in report.statuses
    ]
    return headers, rows


def _call_rows(report: Report) -> Rows:
    headers = ["queue", "offered", "answered", f"in {SERVICE_LEVEL_THRESHOLD_S} s", "ASA s", "abandoned", "AHT min"]
    rows = [
        [
            q.queue,
            _n(q.offered),
            _n(q.answered),
            _pct(q.service_level),
            _f1(q.asa_s),
            _pct(q.abandon_rate),
            _f1(q.aht_min),
        ]
        for q in report.calls
    ]
    return headers, rows


def _agent_rows(report: Report) -> Rows:
    headers = ["agent", "met or breached", "met", "breaches", "breach rate", "calls", "talk h", "e-mails sent"]
    rows = [
        [
            a.agent,
            _n(a.kpis),
            _n(a.met),
            _n(a.breaches),
            _pct(a.breach_rate),
            _n(a.calls),
            _h(a.handle_hours),
            _n(a.emails_sent),
        ]
        for a in report.agents
    ]
    return headers, rows


def _open_late_rows(report: Report) -> Rows:
    headers = ["record", "type", "KPI", "queue", "owner", "tier", "deadline", "overdue by"]
    rows = [
        [
            o.record_id,
            o.entity_type,
            o.kpi,
            o.queue or "-",
            o.owner or "-",
            o.tier or "-",
            format_when(int(o.deadline.timestamp() * 1000), report.zone),
            format_span(round(o.overdue_hours * HOUR_MS)),
        ]
        for o in report.open_late
    ]
    return headers, rows


def _open_late_note(report: Report) -> str:
    total = report.totals.open_breached
    if total <= len(report.open_late):
        return ""
    return (
        f"The {OPEN_LATE_SHOWN} longest overdue of {_n(total)}; all of them: SELECT * FROM "
        f"{report.database}.kpi_instances WHERE outcome = 'open' AND breached ORDER BY deadline"
    )


def sections(report: Report) -> list[Section]:
    """The report's tables after the bottlenecks, in order: the same for the terminal and the HTML page."""
    return [
        Section(
            f"Open past their deadline ({_n(report.totals.open_breached)}), the longest overdue first",
            _open_late_rows,
            7,
            "none: every open KPI is within its target.",
            anchor=OPEN_LATE_ID,
            note=_open_late_note,
        ),
        Section("Breach rate per tier", lambda r: _group_rows(r.tiers), 1, "no KPI yet."),
        Section("Breach rate per queue", lambda r: _group_rows(r.queues), 1, "no KPI yet."),
        Section("Where records wait (finished stays per status)", _status_rows, 2, "no record event yet."),
        Section(
            f"Telephony service level per queue (answered within {SERVICE_LEVEL_THRESHOLD_S} s of offered calls)",
            _call_rows,
            1,
            "no inbound call yet.",
        ),
        Section(
            "Agent workload (KPIs owned whose outcome is known, calls answered, e-mails sent)",
            _agent_rows,
            1,
            "no agent yet.",
        ),
    ]


def _meta(report: Report) -> str:
    if report.as_of is None:
        return f"ClickHouse database {report.database}: no data yet"
    as_of = format_when(int(report.as_of.timestamp() * 1000), report.zone)
    return f"ClickHouse database {report.database}, as of {as_of} (the stream's time)"


def _counts(report: Report) -> str:
    t = report.totals
    if not t.ended + t.open_breached + t.open_running:
        return "KPIs: none yet."
    return (
        f"KPIs: {_n(t.ended)} ended ({_n(t.met)} met, {_n(t.breached_ended)} breached, {_n(t.cancelled)} cancelled), "
        f"{_n(t.open_breached + t.open_running)} open ({_n(t.open_breached)} past their deadline); "
        f"{_pct(t.breach_rate)} of the {_n(t.decided)} KPIs whose outcome is known were breached."
    )


# --- the terminal page -----------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> list[str]:
    """Aligned columns: the first ``left`` columns left-aligned (names), the others right-aligned (figures)."""
    widths = [max(len(h), *(len(r[n]) for r in rows)) if rows else len(h) for n, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return (
            "  "
            + "  ".join(
                cell.ljust(w) if n < left else cell.rjust(w)
                for n, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ).rstrip()
        )

    return [line(headers), *(line(r) for r in rows)]


def _no_bottleneck(report: Report) -> str:
    if not report.totals.decided:
        return "none yet: no KPI has been met or breached."
    return "none: no group breaches more often than the average."


def render_text(report: Report) -> str:
    """The report for a terminal: the headline first, then the bottlenecks, then one short section each."""
    lines = [report.headline, "", _meta(report), "", _counts(report), "", HOW_TO_READ]
    lines += ["", f"The {report.top} worst bottlenecks (the most breaches beyond the average)"]
    if report.bottlenecks:
        lines += _table(*_bottleneck_rows(report), left=2)
        lines.append(f"  {_bottleneck_note(report)}")
    else:
        lines.append(f"  {_no_bottleneck(report)}")
    for section in sections(report):
        headers, rows = section.rows(report)
        lines += ["", section.title]
        lines += _table(headers, rows, section.left) if rows else [f"  {section.empty}"]
        if rows and section.note(report):
            lines.append(f"  {section.note(report)}")
    return "\n".join(lines) + "\n"


# --- the HTML page ---------------------------------------------------------------------------------------------

_CSS: Final = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; margin: 24px auto; max-width: 1200px;
       padding: 0 16px; color: #1b1b1b; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #666; margin: 0 0 12px; }
.headline { font-size: 18px; font-weight: 600; background: #f3f6fc; border-left: 4px solid #3366cc;
            padding: 10px 14px; }
.note { color: #555; font-size: 13px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #fafafa; }
td.name, th.name { text-align: left; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 20px 32px; }
svg.chart { max-width: 100%; height: auto; }
"""


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    def cls(n: int) -> str:
        return ' class="name"' if n < left else ""

    head = "".join(f"<th{cls(n)}>{escape(h)}</th>" for n, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{cls(n)}>{escape(cell)}</td>" for n, cell in enumerate(row)) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _linked_counts(report: Report) -> str:
    """:func:`_counts` as HTML, the count of KPIs past their deadline linking to their list."""
    text = escape(_counts(report))
    late = f"{_n(report.totals.open_breached)} past their deadline"
    if not report.totals.open_breached:
        return text
    return text.replace(escape(late), f'<a href="#{OPEN_LATE_ID}">{escape(late)}</a>', 1)


def _charts(report: Report) -> list[str]:
    rate = report.totals.breach_rate
    queues = [(g.name, g.breach_rate) for g in report.queues]
    calls = [(q.queue, q.service_level) for q in report.calls if q.queue != "all"]
    tiers = [(g.name, [g.met, g.breached_ended, g.cancelled, g.open_breached, g.open_running]) for g in report.tiers]
    labels = [f"{s:%d %b %H:00}" if report.trend.bucket == "hour" else f"{s:%d %b %Y}" for s in report.trend.starts]
    # Records without a tier (calls, orders, ...) are in "all"; their own line is noise next to the tiers'.
    trend = {name: shares for name, shares in report.trend.shares.items() if name != "(none)"}
    return [
        charts.bar_chart(
            [(b.full_label, b.excess_breaches) for b in report.bottlenecks],
            title="Bottlenecks: breaches beyond the average",
            value_format=_beyond,
            color=charts.PALETTE[1],
        ),
        charts.bar_chart(
            [(name, share) for name, share in queues if share is not None],
            title="Breach rate per queue (KPIs whose outcome is known)",
            value_format=_pct,
            reference=rate,
            reference_label=f"overall {_pct(rate)}",
        ),
        charts.stacked_bar_chart(
            tiers,
            ["met", "breached", "cancelled", "open, past deadline", "open"],
            title="KPI outcomes per tier",
            value_format=_n,
            colors=("#2e9e48", "#d62728", "#9e9e9e", "#ff7f0e", "#8fb8e8"),
        ),
        charts.line_chart(
            labels,
            trend,
            title=f"Share met of the KPIs whose outcome is known, by {report.trend.bucket} of start",
            value_format=lambda v: f"{100 * v:.0f} %",
            y_max=1.0,
        ),
        charts.bar_chart(
            [(f"{s.status} ({s.entity_type})", s.hours) for s in report.statuses],
            title="Where records wait: hours per status (finished stays)",
            value_format=_h,
            color=charts.PALETTE[3],
        ),
        charts.bar_chart(
            [(name, share) for name, share in calls if share is not None],
            title=f"Calls answered within {SERVICE_LEVEL_THRESHOLD_S} s (service level) per queue",
            value_format=_pct,
            max_value=1.0,
            reference=SERVICE_LEVEL_TARGET,
            reference_label=f"{_pct(SERVICE_LEVEL_TARGET)} target",
            color=charts.PALETTE[5],
        ),
    ]


def render_html(report: Report) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched."""
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>slaflow report: {escape(report.database)}</title><style>{_CSS}</style></head><body>",
        "<h1>slaflow SLA report</h1>",
        f'<p class="meta">{escape(_meta(report))}</p>',
        f'<p class="headline">{escape(report.headline)}</p>',
        f"<p>{_linked_counts(report)}</p>",
        f'<p class="note">{escape(HOW_TO_READ)}</p>',
        f"<h2>The {report.top} worst bottlenecks</h2>",
    ]
    if report.bottlenecks:
        parts += [
            _html_table(*_bottleneck_rows(report), left=2),
            f'<p class="note">{escape(_bottleneck_note(report))}</p>',
        ]
    else:
        parts.append(f"<p>{escape(_no_bottleneck(report).capitalize())}</p>")
    parts.append('<div class="charts">' + "".join(f"<div>{svg}</div>" for svg in _charts(report)) + "</div>")
    for section in sections(report):
        headers, rows = section.rows(report)
        anchor = f' id="{section.anchor}"' if section.anchor else ""
        parts.append(f"<h2{anchor}>{escape(section.title)}</h2>")
        parts.append(_html_table(headers, rows, section.left) if rows else f"<p>{escape(section.empty)}</p>")
        if rows and section.note(report):
            parts.append(f'<p class="note">{escape(section.note(report))}</p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)
