"""Benchmark: a 100,000-row workbook against the same data as CSV, read and written.

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_excel.py [--rows 100000] [--repeat 3]

It writes the sheet of ``bench_validate.generate`` as CSV and as .xlsx (numbers as number
cells, as Excel saves them) to tests/benchmarks/data/ (gitignored), then measures, each step in
a fresh child process (peak memory is the step's own), the CSV and the workbook interleaved:
- ``load_table`` + ``validate`` of each: the ratio .xlsx / .csv (goal, issue 16: within 3x);
- ``write_results`` of every row's verdict (valid rows with their request body) to .csv and
  to .xlsx: seconds and peak RSS (goal: a few seconds, memory bounded by the chunk).
The machine is noisy, so the two formats are always measured side by side, best of --repeat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = HERE / "data"
sys.path.insert(0, str(ROOT))  # the working tree's batch/ for the children
sys.path.insert(0, str(HERE))


def generate(rows: int) -> tuple[Path, Path]:
    """The same sheet as CSV and as a workbook (whole numbers as number cells)."""
    import xlsxwriter
    from bench_validate import generate as generate_csv

    csv_path, xlsx_path = DATA / f"sheet-{rows}.csv", DATA / f"sheet-{rows}.xlsx"
    if not csv_path.exists():
        generate_csv(csv_path, rows)
    if not xlsx_path.exists():
        frame = pl.read_csv(csv_path, infer_schema=False)
        book = xlsxwriter.Workbook(xlsx_path, {"constant_memory": True})
        sheet = book.add_worksheet("Changes")
        sheet.write_row(0, 0, frame.columns)
        for r, row in enumerate(frame.iter_rows(), start=1):
            for c, cell in enumerate(row):
                if cell is None:
                    continue
                if cell.isdigit() and not cell.startswith("0"):
                    sheet.write_number(r, c, int(cell))
                else:
                    sheet.write_string(r, c, cell)
        book.close()
    return csv_path, xlsx_path


def child(mode: str, path: Path, repeat: int) -> None:
    """One measurement in this (fresh) process; prints JSON with seconds and peak RSS."""
    from batch.load import load_table
    from batch.results import write_results
    from batch.validate import validate

    best, detail = float("inf"), ""
    if mode == "write":
        table = load_table(path.with_name(path.stem.removeprefix("out-") + ".csv"))
        v = validate(table)
        passthrough = table.passthrough_frame()
    for _ in range(repeat):
        start = time.perf_counter()
        if mode == "load":
            v = validate(load_table(path))
            detail = f"{v.total} rows, {v.invalid} invalid"
            del v
        else:
            write_results(path, v.preview_results(), passthrough)
            detail = f"{path.stat().st_size / 2**20:.1f} MiB"
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": best, "peak_bytes": peak, "detail": detail}))


def run_child(mode: str, path: Path, repeat: int) -> dict[str, float | str]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--file", str(path), "--repeat", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float | str] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["load", "write"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.repeat)
        return
    DATA.mkdir(parents=True, exist_ok=True)
    csv_path, xlsx_path = generate(args.rows)
    mib = 2**20
    print(f"{args.rows:,} rows: CSV {csv_path.stat().st_size / mib:.1f} MiB, "
          f"xlsx {xlsx_path.stat().st_size / mib:.1f} MiB")  # fmt: skip
    loads = {p.suffix: run_child("load", p, args.repeat) for p in (csv_path, xlsx_path)}
    for suffix, r in loads.items():
        print(f"load + validate {suffix:5}: {float(r['seconds']):6.2f} s, "
              f"peak {float(r['peak_bytes']) / mib:5.0f} MiB  ({r['detail']})")  # fmt: skip
    ratio = float(loads[".xlsx"]["seconds"]) / float(loads[".csv"]["seconds"])
    print(f"ratio xlsx / csv: {ratio:.2f}x (goal: within 3x)")
    for suffix in (".csv", ".xlsx"):
        out = DATA / f"out-{csv_path.stem}{suffix}"
        r = run_child("write", out, args.repeat)
        print(f"write results {suffix:5}: {float(r['seconds']):6.2f} s, "
              f"peak {float(r['peak_bytes']) / mib:5.0f} MiB  ({r['detail']})")  # fmt: skip


if __name__ == "__main__":
    main()
