"""Inline SVG charts for the HTML report: pure functions from numbers to an ``<svg>`` string.

No charting library and no script: the report must be one self-contained file that any browser (or a mail
client, or a headless screenshot) shows as it is. Every chart is sized by its ``viewBox`` in abstract units
(about CSS pixels at the natural width; the page scales it down with ``max-width: 100%``), every piece of text
is XML-escaped, and every function accepts empty input (a "no data" chart) and zero or all-equal values
(bars of length 0, or all of the same length) without dividing by zero.

Bars carry ``class="bar"`` and ``data-value`` so that tests (and people reading the source) can check that a
bar's length is proportional to its value: ``width = value / scale_max * plot_width``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

PALETTE: Final = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00")
"""Series colours, in order (distinguishable, and legible on white)."""

FONT: Final = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
WIDTH: Final = 720
"""Natural width of every chart, viewBox units."""
LABEL_CHARS: Final = 32
"""Category labels longer than this wrap onto a second line (at a space); only a label longer than two lines is
cut, with an ellipsis, and the full text is in the bar's tooltip either way."""
CHAR_W: Final = 6.8
"""About the width of one character of 12-unit text, to size the label and value columns to their text."""

Format = Callable[[float], str]


def _text(value: object) -> str:
    """``value`` as XML text or attribute content (``<``, ``>``, ``&`` and both quotes escaped)."""
    return escape(str(value), quote=True)


def _num(value: float) -> str:
    """A coordinate with at most two decimals (shorter SVG, no ``1e-05`` notation)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _short(label: str, limit: int = LABEL_CHARS) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _lines(label: str) -> list[str]:
    """A category label on one line, or on two split at the last space that fits (see :data:`LABEL_CHARS`)."""
    if len(label) <= LABEL_CHARS:
        return [label]
    cut = label.rfind(" ", 0, LABEL_CHARS + 1)
    if cut <= 0:
        cut = LABEL_CHARS
    return [label[:cut].rstrip(), _short(label[cut:].lstrip())]


class _Rows:
    """The layout of a chart's category rows: label column sized to the longest line, two-line rows if needed."""

    def __init__(self, labels: Sequence[str], values: Sequence[str], width: float) -> None:
        self.lines = [_lines(label) for label in labels]
        longest = max((len(line) for lines in self.lines for line in lines), default=0)
        self.label_w = min(max(CHAR_W * longest + 16, 60.0), 0.45 * width)
        self.value_w = max(CHAR_W * max((len(v) for v in values), default=0) + 14, 40.0)
        self.row_h = 36.0 if any(len(lines) > 1 for lines in self.lines) else 24.0
        self.plot_w = width - self.label_w - self.value_w

    def label(self, n: int, y: float) -> str:
        """Row ``n``'s label, right-aligned before the plot, centred on the row that starts at ``y``."""
        lines = self.lines[n]
        first = y + self.row_h / 2 + 4 - 7 * (len(lines) - 1)
        spans = "".join(
            f'<tspan x="{_num(self.label_w - 8)}" y="{_num(first + 14 * k)}">{_text(line)}</tspan>'
            for k, line in enumerate(lines)
        )
        return f'<text font-size="12" text-anchor="end" style="{FONT}">{spans}</text>'


def _plain(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def _finite(value: float) -> float:
    """NaN and infinities drawn as 0 (they can only come from a caller's bug; a chart must still render)."""
    return value if math.isfinite(value) else 0.0


def _svg(width: float, height: float, title: str, body: list[str]) -> str:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} {_num(height)}" '
        f'width="{_num(width)}" height="{_num(height)}" role="img" aria-label="{_text(title)}" class="chart">'
    )
    heading = f'<text x="0" y="18" font-size="15" font-weight="600" style="{FONT}">{_text(title)}</text>'
    return "".join([head, f"<title>{_text(title)}</title>", heading, *body, "</svg>"])


def _no_data(title: str, width: float) -> str:
    return _svg(
        width,
        70,
        title,
        [f'<text x="0" y="50" font-size="13" fill="#777" style="{FONT}" class="no-data">no data yet</text>'],
    )


def bar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    value_format: Format = _plain,
    max_value: float | None = None,
    reference: float | None = None,
    reference_label: str = "",
    color: str = PALETTE[0],
    width: float = WIDTH,
) -> str:
    """A horizontal bar chart: one row per ``(label, value)``, in the order given.

    Bars start at 0 and are proportional to ``value / max_value`` (default: the largest value; a negative
    value draws no bar but keeps its printed figure). ``reference`` draws a dashed vertical line at that value,
    e.g. the overall breach rate, labelled ``reference_label``.
    """
    if not items:
        return _no_data(title, width)
    values = [_finite(value) for _label, value in items]
    scale = max([max_value or 0.0, *values, reference or 0.0])
    layout = _Rows([label for label, _ in items], [value_format(v) for v in values], width)
    label_w, row_h, top = layout.label_w, layout.row_h, 34.0
    plot_w = layout.plot_w
    height = top + row_h * len(items) + (22 if reference is not None else 8)
    body: list[str] = []
    bar_h = min(row_h - 8, 16.0)
    for n, ((label, _raw), value) in enumerate(zip(items, values, strict=True)):
        y = top + n * row_h
        length = plot_w * max(value, 0.0) / scale if scale > 0 else 0.0
        middle = y + row_h / 2
        body.append(
            layout.label(n, y)
            + f'<rect class="bar" x="{_num(label_w)}" y="{_num(middle - bar_h / 2)}" width="{_num(length)}" '
            f'height="{_num(bar_h)}" fill="{_text(color)}" data-value="{_text(repr(value))}"><title>{_text(label)}: '
            f"{_text(value_format(value))}</title></rect>"
            f'<text x="{_num(label_w + length + 6)}" y="{_num(middle + 4)}" font-size="12" style="{FONT}">'
            f"{_text(value_format(value))}</text>"
        )
    body.append(
        f'<line x1="{_num(label_w)}" y1="{_num(top)}" x2="{_num(label_w)}" y2="{_num(top + row_h * len(items))}" '
        'stroke="#444" stroke-width="1"/>'
    )
    if reference is not None and scale > 0:
        x = label_w + plot_w * max(_finite(reference), 0.0) / scale
        bottom = top + row_h * len(items)
        body.append(
            f'<line class="reference" x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(bottom)}" '
            'stroke="#222" stroke-width="1.5" stroke-dasharray="5,3"/>'
            f'<text x="{_num(x)}" y="{_num(bottom + 16)}" font-size="11" text-anchor="middle" fill="#222" '
            f'style="{FONT}">{_text(reference_label or value_format(reference))}</text>'
        )
    return _svg(width, height, title, body)


def stacked_bar_chart(
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[str],
    *,
    title: str,
    value_format: Format = _plain,
    colors: Sequence[str] = PALETTE,
    width: float = WIDTH,
) -> str:
    """Horizontal stacked bars: one row per ``(label, values)``, one segment per ``series`` name, with a legend.

    Rows are scaled to the largest row total, so lengths compare across rows; each row's total is printed.
    Negative values count as 0. ``colors`` gives each series its colour, in order (cycled).
    """
    if not rows or not series:
        return _no_data(title, width)
    colors = colors or PALETTE
    cleaned = [(label, [max(_finite(v), 0.0) for v in values][: len(series)]) for label, values in rows]
    layout = _Rows([label for label, _ in cleaned], [value_format(sum(values)) for _, values in cleaned], width)
    label_w, row_h, top, plot_w = layout.label_w, layout.row_h, 56.0, layout.plot_w
    scale = max(sum(values) for _label, values in cleaned)
    bar_h = min(row_h - 8, 16.0)
    body: list[str] = []
    x = 0.0
    for n, name in enumerate(series):
        color = _text(colors[n % len(colors)])
        body.append(
            f'<rect x="{_num(x)}" y="30" width="12" height="12" fill="{color}"/>'
            f'<text x="{_num(x + 16)}" y="40" font-size="12" style="{FONT}">{_text(name)}</text>'
        )
        x += 24 + 7.5 * len(name)
    for r, (label, values) in enumerate(cleaned):
        y = top + r * row_h
        middle = y + row_h / 2
        body.append(layout.label(r, y))
        offset = label_w
        for n, value in enumerate(values):
            length = plot_w * value / scale if scale > 0 else 0.0
            body.append(
                f'<rect class="bar" x="{_num(offset)}" y="{_num(middle - bar_h / 2)}" width="{_num(length)}" '
                f'height="{_num(bar_h)}" fill="{_text(colors[n % len(colors)])}" data-value="{_text(repr(value))}">'
                f"<title>{_text(label)}, {_text(series[n])}: {_text(value_format(value))}</title></rect>"
            )
            offset += length
        body.append(
            f'<text x="{_num(offset + 6)}" y="{_num(middle + 4)}" font-size="12" style="{FONT}">'
            f"{_text(value_format(sum(values)))}</text>"
        )
    return _svg(width, top + row_h * len(rows) + 8, title, body)


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    value_format: Format = _plain,
    y_max: float | None = None,
    width: float = WIDTH,
) -> str:
    """Lines over evenly spaced ``labels`` (hours, days, weeks), one per ``series`` entry, from y = 0.

    ``None`` is a gap (no KPI in that bucket); a lone point is drawn as a dot. The y axis runs from 0 to
    ``y_max`` (default: the largest value, or 1 when every value is 0). X labels are printed about 90 units
    apart (every n-th label), so that they never overlap.
    """
    present = [v for values in series.values() for v in values if v is not None]
    if not labels or not present:
        return _no_data(title, width)
    left, right, top, bottom = 56.0, 16.0, 56.0, 40.0
    plot_h = 220.0
    plot_w = width - left - right
    top_value = max([y_max or 0.0, *(_finite(v) for v in present)])
    top_value = top_value if top_value > 0 else 1.0
    step = plot_w / (len(labels) - 1) if len(labels) > 1 else 0.0

    def at(n: int, value: float) -> tuple[float, float]:
        x = left + (n * step if len(labels) > 1 else plot_w / 2)
        return x, top + plot_h - plot_h * max(_finite(value), 0.0) / top_value

    body: list[str] = []
    for tick in range(5):
        value = top_value * tick / 4
        y = top + plot_h - plot_h * tick / 4
        body.append(
            f'<line x1="{_num(left)}" y1="{_num(y)}" x2="{_num(left + plot_w)}" y2="{_num(y)}" stroke="#ddd"/>'
            f'<text x="{_num(left - 6)}" y="{_num(y + 4)}" font-size="11" text-anchor="end" style="{FONT}">'
            f"{_text(value_format(value))}</text>"
        )
    every = max(1, math.ceil(len(labels) / max(2, int(plot_w // 90))))  # labels about 90 units apart
    last = len(labels) - 1
    for n, label in enumerate(labels):
        if n % every == 0 or n == last:
            x, _y = at(n, 0.0)
            if n == last and n % every and (x - at(n - n % every, 0.0)[0]) < 90:
                continue  # the last label would overlap the one before it
            # The first and last labels are anchored inside the plot, so that the axis text is never clipped.
            anchor = "start" if n == 0 and last else "end" if n == last and last else "middle"
            body.append(
                f'<text x="{_num(x)}" y="{_num(top + plot_h + 18)}" font-size="11" text-anchor="{anchor}" '
                f'style="{FONT}">{_text(_short(label, 12))}</text>'
            )
    x_legend = 0.0
    for s, (name, values) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        body.append(
            f'<rect x="{_num(x_legend)}" y="30" width="12" height="12" fill="{color}"/>'
            f'<text x="{_num(x_legend + 16)}" y="40" font-size="12" style="{FONT}">{_text(name)}</text>'
        )
        x_legend += 24 + 7.5 * len(name)
        runs: list[list[tuple[float, float]]] = [[]]
        for n, point in enumerate(values[: len(labels)]):
            if point is None:
                runs.append([])
            else:
                runs[-1].append(at(n, point))
        for run in runs:
            if len(run) == 1:
                body.append(f'<circle cx="{_num(run[0][0])}" cy="{_num(run[0][1])}" r="3" fill="{color}"/>')
            elif run:
                points = " ".join(f"{_num(x)},{_num(y)}" for x, y in run)
                body.append(f'<polyline class="line" points="{points}" fill="none" stroke="{color}" stroke-width="2"/>')
    body.append(
        f'<line x1="{_num(left)}" y1="{_num(top + plot_h)}" x2="{_num(left + plot_w)}" y2="{_num(top + plot_h)}" '
        'stroke="#444"/>'
    )
    return _svg(width, top + plot_h + bottom, title, body)
