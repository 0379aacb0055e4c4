"""Benchmark: the report of a 200,000-row run (a quarter of a million requests, three segments,
judged against a snapshot), and of a 40-row one.

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_report.py [--rows 200000] [--repeat 3]

It writes synthetic runs (journal with its audit trail, the results file, the snapshot kept
beside it, a rollback file) to tests/benchmarks/data/ (gitignored) with
tests/report_fixtures.py, then measures:
- in process, best of ``--repeat``: reading the journal and results file, the series, what
  changed (against the snapshot), the HTML page, the Markdown;
- end to end, in a fresh process: ``reroute report RESULTS`` (wall time, peak RSS);
- the size of the page (raw and gzipped) and of the Markdown, for both runs.
Goals: built in seconds; a small run's page small (issue 26: the charts are SVG drawn when
the report is made, no charting library inlined); the Markdown under 10 KB for any run.
"""

from __future__ import annotations

import argparse
import gzip
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(ROOT))

from batch.report import changes, data, render, series, write_report  # noqa: E402
from tests.report_fixtures import make_run  # noqa: E402


def best(repeat: int, step: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def made(rows: int) -> Path:
    """The synthetic run of ``rows`` rows (written once, then reused)."""
    results = DATA / f"report-{rows}.results.csv"
    if results.exists():
        return results
    start = time.perf_counter()
    for stale in DATA.glob(f"report-{rows}.results.*"):
        stale.unlink()
    make_run(
        results,
        rows=rows,
        segments=3 if rows > 1_000 else 1,
        failed=frozenset(range(11, rows, 50)),  # 2% failed after 3 requests each
        unknown=frozenset(range(13, rows, 997)),
        invalid=frozenset(range(7, rows, 499)),
        not_attempted=frozenset(range(rows - 300, rows + 1)) if rows > 1_000 else frozenset(),
        rate="20/s",
        snapshot=frozenset(range(1, rows, 10)),  # a tenth of the records change
        rollback=True,
    )
    print(f"generated {results.name} in {time.perf_counter() - start:.1f} s")
    return results


def sizes(results: Path) -> str:
    page = write_report(results)
    text = write_report(results, fmt="md")
    raw = page.read_bytes()
    return (
        f"page {len(raw) / 1e3:,.1f} kB ({len(gzip.compress(raw)) / 1e3:,.1f} kB gzipped), "
        f"markdown {text.stat().st_size / 1e3:.1f} kB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    small = made(40)
    print(f"40 rows: {sizes(small)}")
    results = made(args.rows)
    facts = data.read(results)
    print(
        f"{facts.rows.height:,} rows, {facts.attempts.height:,} requests, "
        f"{len(facts.segments)} segments; not succeeded: "
        f"{data.not_succeeded(facts.rows).height:,}"
    )
    print(f"read journal + results file: {best(args.repeat, lambda: data.read(results)):.2f} s")
    print(f"series (aggregation):        {best(args.repeat, lambda: series.build(facts)):.2f} s")
    print(
        "what changed (snapshot):     "
        f"{best(args.repeat, lambda: changes.compare(facts, cap=200)):.2f} s"
    )
    print(f"HTML page, in process:       {best(args.repeat, lambda: render(results)):.2f} s")
    print(f"Markdown, in process:        {best(args.repeat, lambda: render(results, 'md')):.2f} s")
    print(f"{args.rows:,} rows: {sizes(results)}")
    command = [sys.executable, "-m", "batch", "report", str(results)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"reroute report, whole command: {wall:.2f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
