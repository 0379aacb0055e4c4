"""Benchmark: a 100,000-row workbook against the same data as CSV, read and written.

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_excel.py [--rows 100000] [--repeat 3]

It writes the sheet of ``bench_validate.generate`` as CSV and as .xlsx (numbers as number
cells, as Excel saves them) to tests/benchmarks/data/ (gitignored), then measures, each step in
a fresh child process (peak memory is the step's own), the CSV and the workbook interleaved:
- ``load_table`` + ``validate`` of each: the ratio .xlsx / .csv (goal, issue 16: within 3x);
- ``write_results`` of every row's verdict (valid rows with their request body) to .csv, to
  .xlsx (``batch.sheets.xlsxfast``), and to .xlsx through the writer it replaced (xlsxwriter in
  constant-memory mode, kept below as ``legacy_write_workbook``): seconds and peak RSS (goal:
  a few seconds, memory bounded by the chunk).
The machine is noisy, so the formats are always measured side by side, best of --repeat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DATA = HERE / "data"
sys.path.insert(0, str(ROOT))  # the working tree's batch/ for the children
sys.path.insert(0, str(HERE))

from batch import excel  # noqa: E402  (the working tree's, after the path is set)
from batch.model import Outcome, RowResult  # noqa: E402


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


# The two results files written: a validation's verdicts, and a finished run's records.
WRITES = {"preview": "every verdict (validate --results)", "sent": "a run's records (all filled)"}


def legacy_write_workbook(path: Path, file: BinaryIO, frames: Iterable[pl.DataFrame]) -> None:
    """batch.sheets.excel.write_workbook before batch.sheets.xlsxfast (xlsxwriter, constant-memory
    mode), kept to measure the new writer against in the same run."""
    import xlsxwriter
    from xlsxwriter.utility import xl_col_to_name

    options = {
        "constant_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
        "nan_inf_to_errors": True,
    }
    workbook = xlsxwriter.Workbook(file, options)
    sheet = workbook.add_worksheet("results")
    row, columns = 0, []
    for frame in frames:
        if not columns:
            columns = frame.columns
            header = workbook.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1})
            sheet.write_row(0, 0, columns, header)
            sheet.freeze_panes(1, 0)
            for index, width in enumerate(excel._widths(frame)):
                sheet.set_column(index, index, width)
        for values in frame.iter_rows():
            row += 1
            sheet.write_row(row, 0, values)
    last = max(len(columns) - 1, 0)
    sheet.autofilter(0, 0, max(row, 1), last)
    outcome = f"${xl_col_to_name(columns.index('outcome'))}2"
    for rule, look in ((f'={outcome}="skipped"', {"bg_color": "#E9ECEF"}),
                       (f'={outcome}<>"succeeded"', {"bg_color": "#F8D7DA"})):  # fmt: skip
        shade = {"type": "formula", "criteria": rule, "format": workbook.add_format(look)}
        sheet.conditional_format(1, 0, row, last, {**shade, "stop_if_true": True})
    workbook.close()


def sent(results: Iterable[RowResult]) -> Iterator[RowResult]:
    """The verdicts as a finished run records them: every valid row sent once and answered,
    so all 15 columns are filled (a preview leaves six of them empty)."""
    moment = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    for r in results:
        if r.outcome is Outcome.INVALID:
            yield r
            continue
        answer = f'{{"data":{{"routing_id":{r.routing_id},"updated_at":"2026-11-30T12:00:00Z"}}}}'
        yield r._replace(outcome=Outcome.SUCCEEDED, http_status=200, attempts=1,
                         response=answer, started_at=moment, duration_ms=250,
                         finished_at=moment + timedelta(milliseconds=250))  # fmt: skip


def child(mode: str, path: Path, repeat: int) -> None:
    """One measurement in this (fresh) process; prints JSON with seconds and peak RSS."""
    from batch.prepare.validate import validate
    from batch.sheets.load import load_table
    from batch.sheets.results import write_results

    best, detail = float("inf"), ""
    if mode.endswith("-legacy"):
        excel.write_workbook = legacy_write_workbook  # what write_results calls for .xlsx
    if mode != "load":
        table = load_table(path.with_name(path.stem.split("-", 1)[1] + ".csv"))
        v = validate(table)
        passthrough = table.passthrough_frame()
    for _ in range(repeat):
        start = time.perf_counter()
        if mode == "load":
            v = validate(load_table(path))
            detail = f"{v.total} rows, {v.invalid} invalid"
            del v
        else:
            results = v.preview_results()
            write_results(path, sent(results) if "sent" in mode else results, passthrough)
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
    parser.add_argument(
        "--child", choices=["load", *(f"{w}{x}" for w in WRITES for x in ("", "-legacy"))]
    )
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
    for what, title in WRITES.items():
        print(f"write_results, {title}:")
        writes = {}
        for label, mode, suffix in (
            (".csv", what, ".csv"),
            (".xlsx", what, ".xlsx"),
            (".xlsx, xlsxwriter (before)", f"{what}-legacy", ".xlsx"),
        ):
            out = DATA / f"{what}-{csv_path.stem}{suffix}"
            writes[label] = r = run_child(mode, out, args.repeat)
            print(f"  {label:26}: {float(r['seconds']):6.2f} s, "
                  f"peak {float(r['peak_bytes']) / mib:5.0f} MiB  ({r['detail']})")  # fmt: skip
        new = float(writes[".xlsx"]["seconds"])
        print(f"  xlsx / csv: {new / float(writes['.csv']['seconds']):.2f}x; xlsxwriter / new: "
              f"{float(writes['.xlsx, xlsxwriter (before)']['seconds']) / new:.1f}x")  # fmt: skip


if __name__ == "__main__":
    main()
