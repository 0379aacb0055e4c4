"""Start-up benchmarks (issue 12): what a user waits for before a command does anything.

    uv run python tests/benchmarks/bench_startup.py [--repeat 9] [--rows 3000]

Three side-by-side comparisons of whole processes, each pair run in turns (A, B, A, B, ...) so
a noisy machine shifts both alike; the figure is the ratio of the medians:

  help      `reroute --help` against `python -c "import typer"`.       Goal: <= 2x.
  validate  `reroute validate samples/routing-changes.csv` against
            `python -c "import typer, polars"`.                        Goal: <= 1.25x.
            Also against a one-command typer app that reads the sample with polars: typer
            (0.29) builds a command's parameters through pydantic, which a bare `import typer`
            never loads (~0.25 s), so this is what any typer command pays.
  run       `reroute run` of --rows rows against a fast local sandbox (limits off), whole
            process, against a bare anyio + httpx loop's whole process at the same
            concurrency (4): rows per second, reroute / bare.           Goal: >= 0.9x.

One untimed run of each command comes first (bytecode caches warm, as an installed copy has).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_run import ROOT, _env, start_sandbox, stop, write_input

REROUTE = [sys.executable, "-m", "batch"]
SAMPLE = ROOT / "samples" / "routing-changes.csv"
CONCURRENCY = 4

BARE_LOOP = textwrap.dedent(
    """
    import sys, anyio, httpx
    base, rows, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    body = b'{"for_inbound_call":1,"for_outbound_call":4,"status":1}'

    async def main():
        todo = iter(range(1, rows + 1))
        async with httpx.AsyncClient(base_url=base, headers={
            "Authorization": "Bearer rg_test_benchmark_run",
            "Content-Type": "application/json"}) as client:
            async def worker():
                for routing_id in todo:
                    r = await client.post(f"/voicelink/call-routing/{routing_id}", content=body)
                    r.json()
            async with anyio.create_task_group() as tg:
                for _ in range(concurrency):
                    tg.start_soon(worker)

    anyio.run(main)
    """
)


def timed(command: list[str], *, cwd: Path | None = None) -> float:
    """Wall seconds of one whole process, from spawn to exit (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed


def in_turns(a: list[str], b: list[str], repeat: int, *, cwd: Path | None = None) -> tuple:
    """Medians of ``a`` and ``b`` run alternately ``repeat`` times each (one warm-up each)."""
    timed(a, cwd=cwd)
    timed(b, cwd=cwd)
    times_a, times_b = [], []
    for _ in range(repeat):
        times_a.append(timed(a, cwd=cwd))
        times_b.append(timed(b, cwd=cwd))
    PAIRS[:] = [b / a for a, b in zip(times_a, times_b, strict=True)]
    return statistics.median(times_a), statistics.median(times_b)


# The last in_turns' pairs, each as b's time over a's: the machine's speed drifts over a run
# of pairs, and a pair taken back to back shares its moment.
PAIRS: list[float] = []


ONE_COMMAND = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import polars, typer
    app = typer.Typer()

    @app.command()
    def validate(path: Path) -> None:
        print(polars.read_csv(path, infer_schema=False).height)

    @app.command()
    def other() -> None:
        pass

    app(sys.argv[1:])
    """
)


def help_and_validate(repeat: int) -> None:
    typer_only = [sys.executable, "-c", "import typer"]
    reroute_help, typer_time = in_turns([*REROUTE, "--help"], typer_only, repeat)
    print(
        f"help:     reroute --help {reroute_help * 1000:.0f} ms, import typer "
        f"{typer_time * 1000:.0f} ms: {reroute_help / typer_time:.2f}x (goal <= 2x)"
    )
    typer_polars = [sys.executable, "-c", "import typer, polars"]
    reroute_validate, both = in_turns([*REROUTE, "validate", str(SAMPLE)], typer_polars, repeat)
    print(
        f"validate: reroute validate {reroute_validate * 1000:.0f} ms, import typer + polars "
        f"{both * 1000:.0f} ms: {reroute_validate / both:.2f}x (goal <= 1.25x)"
    )
    one = [sys.executable, "-c", ONE_COMMAND, "validate", str(SAMPLE)]
    reroute_validate, command = in_turns([*REROUTE, "validate", str(SAMPLE)], one, repeat)
    print(
        f"validate: reroute validate {reroute_validate * 1000:.0f} ms, a one-command typer app "
        f"reading it with polars {command * 1000:.0f} ms: {reroute_validate / command:.2f}x"
    )


def whole_run(rows: int, repeat: int) -> None:
    server, base_url = start_sandbox("--rate-limit", "off", "--max-concurrent", "off")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            source = write_input(folder / "in.csv", rows)
            run = [
                *REROUTE, "run", str(source), "--base-url", base_url, "--rate", "100000/s",
                "--concurrency", str(CONCURRENCY), "--results", str(folder / "out.csv"),
                "--fresh", "--yes", "--no-report",  # the report: bench_report.py
            ]  # fmt: skip
            bare = [sys.executable, "-c", BARE_LOOP, base_url, str(rows), str(CONCURRENCY)]
            ours, theirs = in_turns(run, bare, repeat, cwd=folder)
    finally:
        stop(server)
    print(
        f"run:      {rows} rows, whole process: reroute {ours:.2f} s ({rows / ours:.0f} rows/s), "
        f"bare loop {theirs:.2f} s ({rows / theirs:.0f} rows/s): {theirs / ours:.3f}x "
        "(goal >= 0.9x)"
    )
    pairs = sorted(PAIRS)
    print(
        f"          per pair (bare / reroute, taken back to back): median "
        f"{statistics.median(pairs):.3f}x, range {pairs[0]:.3f}x to {pairs[-1]:.3f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--only", choices=("help", "run"), default=None)
    args = parser.parse_args()
    if args.only in (None, "help"):
        help_and_validate(args.repeat)
    if args.only in (None, "run"):
        whole_run(args.rows, args.repeat)


if __name__ == "__main__":
    main()
