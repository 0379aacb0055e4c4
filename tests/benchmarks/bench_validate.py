"""Benchmark: `reroute validate` on a 1,000,000-row CSV against a bare `polars.read_csv`.

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_validate.py [--rows 1000000] [--repeat 3]

It writes the sheet to tests/benchmarks/data/ (gitignored), then measures, each in a fresh
child process so peak memory is the step's own:
- in process: ``polars.read_csv`` of the file vs ``load_table`` + ``validate`` (+ the counts
  the summary prints), best of ``--repeat``;
- end to end: ``python -m batch validate FILE`` vs ``python -c "polars.read_csv(FILE)"``.
Goal (issue 2): validation at most 3x the bare read, peak memory under 1 GiB. The machine is
noisy, so the two are always measured side by side in one run and compared as a ratio.
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

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
# Run as a script, this file's directory is on sys.path, not the project's: add it so the
# children import the working tree's batch/.
sys.path.insert(0, str(ROOT))
CONNECTION = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"


def generate(path: Path, rows: int) -> None:
    """A realistic sheet: every mode pair, ids where the modes need them, ~1% mistakes."""
    n = pl.int_range(0, rows, eager=True)
    frame = pl.DataFrame({"i": n}).with_columns(
        inbound=(pl.col("i") % 3 + 1),
        outbound=((pl.col("i") // 3) % 3 + 2),
        status=(pl.col("i") % 11 != 10).cast(pl.Int64),
    )
    text = pl.col("i").cast(pl.String)
    frame = frame.select(
        routing_id=pl.col("i") + 100_000,
        did_number=pl.concat_str(pl.lit("+44207"), (pl.col("i") % 1_000_000).cast(pl.String)),
        for_inbound_call=pl.when(pl.col("i") % 97 == 5)
        .then(pl.lit("3.5"))
        .otherwise(pl.col("inbound").cast(pl.String)),
        for_outbound_call=pl.col("outbound").cast(pl.String),
        status=pl.col("status").cast(pl.String),
        connection_id=pl.when(pl.col("i") % 4 == 0).then(pl.lit(CONNECTION)),
        inbound_websocket_bot_id=pl.when(pl.col("inbound") == 3).then(pl.lit("210")),
        inbound_sip_trunk_id=pl.when(pl.col("inbound") == 2).then(pl.lit("31")),
        outbound_websocket_bot_id=pl.when(pl.col("outbound") == 3).then(pl.lit("220")),
        outbound_sip_trunk_id=pl.when((pl.col("outbound") == 2) | (pl.col("i") % 211 == 7)).then(
            pl.lit("41")
        ),
        ticket=pl.concat_str(pl.lit("OPS-"), text),
        note=pl.lit("moved to the new trunk, see the change ticket"),
    )
    DATA.mkdir(parents=True, exist_ok=True)
    frame.write_csv(path)


def child(mode: str, path: Path, repeat: int) -> None:
    """One measurement in this (fresh) process; prints JSON with seconds and peak RSS."""
    best = cpu = float("inf")
    detail = ""
    # Imported before the clock starts: the bare read does not pay for importing polars either.
    from batch.prepare.validate import validate
    from batch.sheets.load import load_table

    for _ in range(repeat):
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_start = usage.ru_utime + usage.ru_stime
        start = time.perf_counter()
        if mode == "read":
            frame = pl.read_csv(path)
            detail = f"{frame.height} rows"
            del frame
        else:
            v = validate(load_table(path))
            counts = v.code_counts()
            v.invalid_results(10)
            detail = f"{v.total} rows, {v.invalid} invalid, {counts}"
            del v  # before the next round, so peak memory is one round's
        best = min(best, time.perf_counter() - start)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = min(cpu, usage.ru_utime + usage.ru_stime - cpu_start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    print(json.dumps({"seconds": best, "cpu": cpu, "peak_bytes": peak, "detail": detail}))


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


# Runs a command-line entry point and reports its own peak RSS on the last stderr line.
_PEAK_WRAPPER = """
import resource, runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit:
    pass
finally:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, file=sys.stderr)
"""


def wall(command: list[str]) -> tuple[float, float]:
    """Wall seconds of a command run in a fresh interpreter, and its peak RSS in bytes."""
    start = time.perf_counter()
    done = subprocess.run(command, check=False, capture_output=True, cwd=ROOT, text=True)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    return seconds, float(lines[-1]) if lines and lines[-1].isdigit() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=["read", "validate"])
    parser.add_argument("--file", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.repeat)
        return

    path = DATA / f"routing-changes-{args.rows}.csv"
    if not path.exists():
        generate(path, args.rows)
    size = path.stat().st_size
    print(f"file: {path} ({args.rows:,} rows, {size / 2**20:.1f} MiB)")

    # Interleaved, best of each: both sides see the same background load.
    reads, checks = [], []
    for _ in range(args.repeat):
        reads.append(run_child("read", path, 2))
        checks.append(run_child("validate", path, 2))
    read = min(reads, key=lambda r: float(r["seconds"]))
    checked = min(checks, key=lambda r: float(r["seconds"]))
    read["peak_bytes"] = max(float(r["peak_bytes"]) for r in reads)
    checked["peak_bytes"] = max(float(r["peak_bytes"]) for r in checks)
    ratio = float(checked["seconds"]) / float(read["seconds"])
    read_cpu = min(float(r["cpu"]) for r in reads)
    check_cpu = min(float(r["cpu"]) for r in checks)
    print(
        f"polars.read_csv:        {float(read['seconds']):.3f} s, peak RSS "
        f"{float(read['peak_bytes']) / 2**20:.0f} MiB"
    )
    print(
        f"load_table + validate:  {float(checked['seconds']):.3f} s, peak RSS "
        f"{float(checked['peak_bytes']) / 2**20:.0f} MiB  ({checked['detail']})"
    )
    print(f"ratio (in process):     {ratio:.2f}x  (goal <= 3x; peak goal < 1024 MiB)")
    print(
        f"CPU time (user+sys):    read {read_cpu:.3f} s, validate {check_cpu:.3f} s, "
        f"ratio {check_cpu / read_cpu:.2f}x  (steadier than wall time on a busy machine)"
    )

    read_cmd = [
        sys.executable,
        "-c",
        f"import polars as pl; pl.read_csv({str(path)!r})",
    ]
    cli_cmd = [sys.executable, "-c", _PEAK_WRAPPER, "batch", "validate", str(path)]
    bares, clis = [], []
    for _ in range(args.repeat):
        bares.append(wall(read_cmd))
        clis.append(wall(cli_cmd))
    bare, cli = min(b[0] for b in bares), min(c[0] for c in clis)
    cli_peak = max(c[1] for c in clis)
    print(
        f"end to end: python -c read_csv {bare:.3f} s, reroute validate {cli:.3f} s "
        f"(peak RSS {cli_peak / 2**20:.0f} MiB), ratio {cli / bare:.2f}x"
    )


if __name__ == "__main__":
    main()
