"""The inline SVG charts: well-formed XML, escaped text, empty and degenerate input, proportional bars."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from sinks.charts import bar_chart, line_chart, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "a <b> & 'c' \"d\""


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def viewbox(root: ET.Element) -> tuple[float, float]:
    x, y, width, height = (float(part) for part in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0) and width > 0 and height > 0
    return width, height


def texts(root: ET.Element) -> list[str]:
    return ["".join(element.itertext()) for element in root.iter(f"{SVG}text")]


def bars(root: ET.Element) -> list[ET.Element]:
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def widths(root: ET.Element) -> list[float]:
    return [float(rect.attrib["width"]) for rect in bars(root)]


def every_chart(label: str, title: str) -> list[str]:
    return [
        bar_chart([(label, 3.0), ("x", 1.0)], title=title),
        stacked_bar_chart([(label, [1.0, 2.0])], [label, "other"], title=title),
        line_chart([label, "b"], {label: [0.5, 0.7]}, title=title),
    ]


def test_every_chart_is_well_formed_svg_sized_by_its_viewbox() -> None:
    for svg in every_chart("queue", "Title"):
        root = parse(svg)
        width, height = viewbox(root)
        assert root.attrib["width"] == f"{width:g}" and root.attrib["height"] == f"{height:g}"
        assert "<script" not in svg and "href" not in svg


def test_text_is_escaped_in_labels_titles_and_series_names() -> None:
    for svg in every_chart(NASTY, f"title {NASTY}"):
        assert "<b>" not in svg
        root = parse(svg)
        assert f"title {NASTY}" in texts(root)
        assert any(NASTY in text for text in texts(root)), texts(root)
        assert root.attrib["aria-label"] == f"title {NASTY}"


@pytest.mark.parametrize(
    "svg",
    [
        bar_chart([], title="empty"),
        stacked_bar_chart([], ["a"], title="empty"),
        stacked_bar_chart([("x", [1.0])], [], title="empty"),
        line_chart([], {}, title="empty"),
        line_chart(["a", "b"], {"s": [None, None]}, title="empty"),
    ],
)
def test_empty_input_gives_a_no_data_chart(svg: str) -> None:
    root = parse(svg)
    viewbox(root)
    assert "no data yet" in texts(root)
    assert bars(root) == []


def test_bar_lengths_are_proportional_to_values() -> None:
    root = parse(bar_chart([("a", 10.0), ("b", 5.0), ("c", 2.5), ("d", 0.0)], title="t"))
    a, b, c, d = widths(root)
    assert a > 0
    assert b == pytest.approx(a / 2, abs=0.01)
    assert c == pytest.approx(a / 4, abs=0.01)
    assert d == 0
    assert [float(rect.attrib["data-value"]) for rect in bars(root)] == [10.0, 5.0, 2.5, 0.0]


def test_max_value_fixes_the_scale() -> None:
    full = widths(parse(bar_chart([("a", 1.0)], title="t", max_value=1.0)))[0]
    half = widths(parse(bar_chart([("a", 0.5)], title="t", max_value=1.0)))[0]
    assert half == pytest.approx(full / 2, abs=0.01)


def test_zero_negative_and_all_equal_values() -> None:
    zeros = parse(bar_chart([("a", 0.0), ("b", 0.0)], title="t"))
    assert widths(zeros) == [0.0, 0.0]
    equal = widths(parse(bar_chart([("a", 7.0), ("b", 7.0), ("c", 7.0)], title="t")))
    assert len(set(equal)) == 1 and equal[0] > 0
    negative = parse(bar_chart([("a", -3.0), ("b", 6.0)], title="t"))
    assert widths(negative)[0] == 0 and widths(negative)[1] > 0
    assert "-3" in "".join(texts(negative))
    nan = parse(bar_chart([("a", float("nan")), ("b", 1.0)], title="t"))
    assert widths(nan)[0] == 0
    stacked = parse(stacked_bar_chart([("a", [0.0, 0.0])], ["x", "y"], title="t"))
    assert widths(stacked) == [0.0, 0.0]
    flat = parse(line_chart(["a", "b", "c"], {"s": [0.0, 0.0, 0.0]}, title="t"))
    assert len(list(flat.iter(f"{SVG}polyline"))) == 1


def test_reference_line_sits_at_its_value() -> None:
    root = parse(bar_chart([("a", 1.0)], title="t", max_value=1.0, reference=0.8, reference_label="80 % target"))
    (line,) = [element for element in root.iter(f"{SVG}line") if element.get("class") == "reference"]
    bar = bars(root)[0]
    start = float(bar.attrib["x"])
    assert float(line.attrib["x1"]) - start == pytest.approx(0.8 * float(bar.attrib["width"]), abs=0.01)
    assert "80 % target" in texts(root)


def test_stacked_rows_share_one_scale() -> None:
    root = parse(stacked_bar_chart([("a", [2.0, 2.0]), ("b", [1.0, 1.0])], ["x", "y"], title="t"))
    a1, a2, b1, b2 = widths(root)
    assert a1 == pytest.approx(a2) and b1 == pytest.approx(b2)
    assert a1 + a2 == pytest.approx(2 * (b1 + b2), abs=0.01)


def test_line_chart_gaps_split_the_line_and_lone_points_are_dots() -> None:
    root = parse(line_chart(["1", "2", "3", "4", "5"], {"s": [0.2, 0.4, None, 0.5, None]}, title="t", y_max=1.0))
    (polyline,) = root.iter(f"{SVG}polyline")
    assert len(polyline.attrib["points"].split()) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == 1


def test_long_labels_wrap_onto_two_lines_and_stay_whole() -> None:
    """Regression: the report's top bottleneck was shown as "KPI 'inbound_call/answer' =..." (cut at 28)."""
    label = "KPI 'inbound_call/answer' = status 'queued' (phone_call)"
    for svg in (bar_chart([(label, 1.0)], title="t"), stacked_bar_chart([(label, [1.0])], ["a"], title="t")):
        root = parse(svg)
        spans = ["".join(span.itertext()) for span in root.iter(f"{SVG}tspan")]
        assert len(spans) == 2 and " ".join(spans) == label
        width, _ = viewbox(root)
        bar = bars(root)[0]
        assert float(bar.attrib["x"]) + float(bar.attrib["width"]) < width  # the figure after the bar fits too


def test_a_label_longer_than_two_lines_is_cut_with_the_full_text_in_the_tooltip() -> None:
    label = "x" * 80
    root = parse(bar_chart([(label, 1.0)], title="t"))
    assert label not in texts(root)
    assert any(text.endswith("…") for text in texts(root))
    assert any(label in "".join(title.itertext()) for title in root.iter(f"{SVG}title"))


def test_line_chart_axis_labels_stay_inside_the_chart() -> None:
    """Regression: the last hour's label was centred on the right edge and clipped."""
    root = parse(line_chart([f"02 Mar {h:02d}:00" for h in range(6)], {"s": [0.5] * 6}, title="t"))
    axis = [element for element in root.iter(f"{SVG}text") if element.get("text-anchor") in ("start", "end")]
    assert [element.get("text-anchor") for element in axis[-2:]] == ["start", "end"]
