"""The charts: SVG drawn when the report is made, well formed, with marks where there is data."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from xml.etree import ElementTree

import pytest

from batch.report import charts, data, series, svg
from tests.report_fixtures import make_run

SVG = "{http://www.w3.org/2000/svg}"
PAGE_JS = Path(__file__).resolve().parents[2] / "batch" / "report" / "static" / "page.js"


def _marks(drawing: str) -> list[ElementTree.Element]:
    root = ElementTree.fromstring(drawing)
    assert root.tag == f"{SVG}svg"
    return [el for el in root.iter() if el.get("class") == "mark"]


@pytest.mark.parametrize("segments", [1, 3])
def test_every_chart_is_well_formed_svg_with_marks(tmp_path: Path, segments: int) -> None:
    """Each chart parses as SVG and draws marks inside its box, one segment (the clock on the
    x axis) or several (time running); no coordinate is NaN or infinite."""
    made = make_run(tmp_path / "out.csv", segments=segments, unknown=frozenset({8}))
    made_charts = charts.charts(series.build(data.read(made.results)))
    assert [c.key for c in made_charts] == [
        "rate", "outcomes", "latency", "latency-bins", "attempts", "codes",
    ]  # fmt: skip
    for chart in made_charts:
        assert chart.svg, chart.key
        assert not re.search(r"nan|inf", chart.svg.split(">", 1)[1].lower().replace("info", ""))
        marks = _marks(chart.svg)
        assert marks, chart.key
        width = float(ElementTree.fromstring(chart.svg).get("viewBox", "").split()[2])
        for rect in (m for m in marks if m.tag == f"{SVG}rect"):
            assert -0.5 <= float(rect.get("x", "")) <= width, chart.key
            assert float(rect.get("width", "")) > 0, chart.key


def test_bars_say_what_they_show(tmp_path: Path) -> None:
    """A bar's tooltip names its time and rate; an outcome band its outcome and rows."""
    made = make_run(tmp_path / "out.csv")
    found = {c.key: c.svg for c in charts.charts(series.build(data.read(made.results)))}
    assert re.search(r"<title>2025-11-30 17:00:\d\d UTC: [\d.]+ requests/s</title>", found["rate"])
    assert "<title>succeeded: 37 rows by the end</title>" in found["outcomes"]
    assert "<title>VALIDATION_ERROR (failed): 2 rows</title>" in found["codes"]


def test_a_run_with_no_requests_says_so_in_words(tmp_path: Path) -> None:
    """A journal with no request: the charts over requests are a sentence, not an empty frame."""
    made = make_run(tmp_path / "out.csv")
    db = sqlite3.connect(made.journal)
    db.execute("DELETE FROM attempts")
    db.commit()
    db.close()
    made_charts = {c.key: c for c in charts.charts(series.build(data.read(made.results)))}
    assert made_charts["latency"].svg == ""
    assert made_charts["latency"].note == "no answer yet"
    assert made_charts["codes"].svg  # the rows' own codes still count


def test_a_short_run_is_binned_by_its_length(tmp_path: Path) -> None:
    """A run of a few seconds is drawn in whole-second bars holding several requests each, not
    half-second steps of one or two."""
    made = make_run(tmp_path / "out.csv", rows=100, failed=frozenset(), invalid=frozenset())
    s = series.build(data.read(made.results))
    assert s.bucket_seconds == 1
    assert 5 <= len(s.rate) <= 10
    slow = make_run(tmp_path / "slow.csv", rows=30, rate="1/s", failed=frozenset())
    assert series.build(data.read(slow.results)).bucket_seconds >= 1


def test_nice_ticks_are_round() -> None:
    assert svg.nice_ticks(0, 43) == [0, 10, 20, 30, 40]
    assert svg.nice_ticks(0, 0.9) == [0, 0.2, 0.4, 0.6, 0.8]
    assert svg.nice_ticks(0, 0) == [0]


def test_time_ticks_fall_on_round_clock_times() -> None:
    """Ticks on whole seconds (or minutes, hours) of UTC, labelled as a clock."""
    start = 1_764_522_000_000  # 2025-11-30T17:00:00Z
    ticks = svg.time_ticks(start + 300, start + 9_000)
    assert [label for _, label in ticks] == ["17:00:02", "17:00:04", "17:00:06", "17:00:08"]
    hours = svg.time_ticks(start, start + 5 * 3_600_000)
    assert [label for _, label in hours][:2] == ["17:00", "18:00"]


def test_the_page_script_cannot_end_its_script_element() -> None:
    """The page inlines its script in a <script> element: it may not hold the two sequences
    that would end one early."""
    text = PAGE_JS.read_text(encoding="utf-8").lower()
    assert "</script" not in text
    assert "<!--" not in text
