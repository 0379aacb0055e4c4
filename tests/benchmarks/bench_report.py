"""Benchmark: the report of a 200,000-row run (a quarter of a million requests, three segments).

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_report.py [--rows 200000] [--repeat 3]

It writes a synthetic run (journal with its audit trail, and the results file) to
tests/benchmarks/data/ (gitignored) with tests/report_fixtures.py, then measures:
- in process, best of ``--repeat``: reading the journal and results file, the series, the
  HTML page, the Markdown;
- end to end, in a fresh process: ``reroute report RESULTS`` (wall time, peak RSS);
- the size of the page and of what it embeds beside the inlined Vega bundle.
Goal (issue 13): built in seconds, and small (aggregated series, at most 1,000 failed rows).
"""

from __future__ import annotations

import argparse
import gzip
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
sys.path.insert(0, str(ROOT))

from batch.report import data, render, series, write_report  # noqa: E402
from tests.report_fixtures import make_run  # noqa: E402

BUNDLE = ROOT / "batch" / "report" / "vendor" / "vega.js"


def best(repeat: int, step: object) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    results = DATA / f"report-{args.rows}.results.csv"
    if not results.exists():
        start = time.perf_counter()
        for stale in DATA.glob(f"report-{args.rows}.results.csv*"):
            stale.unlink()
        rows = args.rows
        make_run(
            results,
            rows=rows,
            segments=3,
            failed=frozenset(range(11, rows, 50)),  # 2% failed after 3 requests each
            unknown=frozenset(range(13, rows, 997)),
            invalid=frozenset(range(7, rows, 499)),
            not_attempted=frozenset(range(rows - 300, rows + 1)),
            rate="20/s",
        )
        print(f"generated {results.name} in {time.perf_counter() - start:.1f} s")
    facts = data.read(results)
    print(
        f"{facts.rows.height:,} rows, {facts.attempts.height:,} requests, "
        f"{len(facts.segments)} segments; not succeeded: "
        f"{data.not_succeeded(facts.rows).height:,}"
    )
    print(f"read journal + results file: {best(args.repeat, lambda: data.read(results)):.2f} s")
    print(f"series (aggregation):        {best(args.repeat, lambda: series.build(facts)):.2f} s")
    print(f"HTML page, in process:       {best(args.repeat, lambda: render(results)):.2f} s")
    print(f"Markdown, in process:        {best(args.repeat, lambda: render(results, 'md')):.2f} s")
    page = write_report(results)
    size, bundle = page.stat().st_size, BUNDLE.stat().st_size
    packed = len(gzip.compress(page.read_bytes()))
    print(
        f"page: {size / 1e6:.2f} MB ({bundle / 1e6:.2f} MB of it the Vega bundle), "
        f"{packed / 1e6:.2f} MB gzipped"
    )
    md = write_report(results, fmt="md")
    print(f"markdown: {md.stat().st_size / 1e3:.1f} kB")
    command = [sys.executable, "-m", "batch", "report", str(results)]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"reroute report, whole command: {wall:.2f} s, peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
