"""Every chart spec compiles with Vega-Lite's own compiler (vl-convert), whatever the run."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from batch.report import charts, data, series
from tests.report_fixtures import make_run

vl_convert = pytest.importorskip("vl_convert")
BUNDLE = Path(__file__).resolve().parents[2] / "batch" / "report" / "vendor" / "vega.js"


@pytest.mark.parametrize("segments", [1, 3])
def test_specs_compile_to_vega(tmp_path: Path, segments: int) -> None:
    """Each spec is valid Vega-Lite for the version the inlined bundle carries, one segment
    (the clock on the x axis) or several (time running)."""
    made = make_run(tmp_path / "out.csv", segments=segments, unknown=frozenset({8}))
    for chart in charts.charts(series.build(data.read(made.results))):
        compiled = vl_convert.vegalite_to_vega(chart.spec, vl_version=charts.VEGA_LITE)
        assert compiled["marks"], chart.key


def test_specs_compile_for_a_run_with_no_requests(tmp_path: Path) -> None:
    """A run whose journal holds no request still gets charts, each valid Vega-Lite."""
    made = make_run(tmp_path / "out.csv")
    db = sqlite3.connect(made.journal)
    db.execute("DELETE FROM attempts")
    db.commit()
    db.close()
    made_charts = charts.charts(series.build(data.read(made.results)))
    assert made_charts
    for chart in made_charts:
        compiled = vl_convert.vegalite_to_vega(chart.spec, vl_version=charts.VEGA_LITE)
        assert compiled["$schema"].startswith("https://vega.github.io/schema/vega/"), chart.key


def test_the_inlined_bundle_is_the_vega_lite_the_specs_are_written_for() -> None:
    """tools/vega_bundle.py wrote it for charts.VEGA_LITE (regenerate both together)."""
    header = BUNDLE.read_text(encoding="utf-8").splitlines()[0]
    assert re.search(rf"Vega-Lite {re.escape(charts.VEGA_LITE)},", header), header
    assert charts.SCHEMA.endswith(f"/v{charts.VEGA_LITE.split('.')[0]}.json")


def test_the_inlined_scripts_cannot_end_their_script_element() -> None:
    """The page inlines the bundle and its own script in <script> elements: neither may hold
    the two sequences that would end one early (a regenerated bundle is checked here)."""
    for path in (BUNDLE, BUNDLE.parents[1] / "static" / "page.js"):
        text = path.read_text(encoding="utf-8").lower()
        assert "</script" not in text, path
        assert "<!--" not in text, path
