"""Benchmarks of `reroute run` (issue 4): overhead, pacing, memory.

    uv run python tests/benchmarks/bench_run.py overhead [--rows 10000] [--repeat 15]
      [--concurrency 8] [--in-turns]
    uv run python tests/benchmarks/bench_run.py pacing   [--rows 300]
    uv run python tests/benchmarks/bench_run.py memory   [--sizes 50000 200000]

overhead: the same N rows against `reroute sandbox` (own process, limits and faults off), sent
  by `reroute run` (load, validate, journal, limiter, retries, results file: everything from
  reading the input to writing the results) and by a bare anyio + httpx loop (same concurrency,
  no validation, no journal). Goal: reroute >= 0.9x the bare loop's rows per second.
  By default both sides run at the same time, pinned to one shared CPU (see side_by_side);
  --in-turns runs them one after the other and compares whole wall times instead.
  Both sides run as fresh processes started the same way: each imports its top-level modules
  (anyio and httpx; reroute's CLI) before its clock starts, and everything after that, lazy
  imports included, is timed. Bytecode caching is left on (PYTHONDONTWRITEBYTECODE, set on some
  machines, would make every process compile every module it imports, as no installed copy
  does), and one untimed run of each side comes first.
pacing: `reroute run --rate 20/s` against a sandbox limited to 20/s. Goal: no 429, effective
  rate (requests / time from first to last request) >= 97% of the limit.
memory: peak RSS of whole `reroute run` processes at two sizes. Goal: < 400 MiB at 200,000
  rows and no growth with the row count.

Each figure comes from one run on this machine; the goals are side-by-side ratios so a noisy
machine shifts both sides alike.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import httpx

ROOT = Path(__file__).resolve().parents[2]
KEY = "rg_test_benchmark_run"
HEADER = "routing_id,for_inbound_call,for_outbound_call,status,ticket\n"


def write_input(path: Path, rows: int) -> Path:
    with path.open("w") as handle:
        handle.write(HEADER)
        for row in range(1, rows + 1):
            handle.write(f"{row},1,4,{row % 2},T-{row}\n")
    return path


def start_sandbox(*extra: str, cpu: int | None = None) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "batch", "sandbox", "--port", "0", "--api-key", KEY, *extra]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=_env(), preexec_fn=_on(cpu)
    )
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip().startswith("base URL"):
            return process, line.split()[2]
    raise SystemExit("the sandbox did not start")


def _on(cpu: int | None) -> Callable[[], None] | None:
    """A preexec_fn that keeps a child process (and the threads it starts) on one CPU."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def _cpus() -> tuple[int | None, int | None]:
    """(server CPU, clients' CPU) for the side-by-side mode: the first two this process may
    use, or (None, None) where there are fewer or affinity cannot be set (not Linux)."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    usable = sorted(os.sched_getaffinity(0))
    return (usable[0], usable[1]) if len(usable) >= 2 else (None, None)


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=15)


def _env() -> dict[str, str]:
    env = {**os.environ, "VOCOBASE_API_KEY": KEY, "PYTHONPATH": str(ROOT)}
    env.pop("REROUTE_BASE_URL", None)
    # A normal install has cached bytecode; without it every process compiles what it imports.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def stats(base_url: str) -> dict[str, object]:
    root = base_url.removesuffix("/api/v2")
    return dict(httpx.get(f"{root}/sandbox/stats").json())


def reroute_command(source: Path, out: Path, base_url: str, *extra: str) -> list[str]:
    """`reroute run` in a wrapper that times the command function (imports left out) and
    prints, on stderr's last line, its wall seconds and the clock time it began and ended."""
    code = (
        "import sys, time, json\n"
        "from batch.cli import app\n"
        "t, began = time.perf_counter(), time.time()\n"
        "try:\n"
        "    app(args=sys.argv[1:], prog_name='reroute', standalone_mode=False)\n"
        "finally:\n"
        "    times = {'wall': time.perf_counter() - t, 'began': began, 'ended': time.time()}\n"
        "    print(json.dumps(times), file=sys.stderr)\n"
    )
    # --no-report: the report written after the last answer is bench_report.py's to measure.
    args = ["run", str(source), "--base-url", base_url, "--results", str(out), "--fresh",
            "--no-report"]  # fmt: skip
    return [sys.executable, "-c", code, *args, "--log-format", "json", *extra]


def reroute(source: Path, out: Path, base_url: str, *extra: str) -> tuple[float, dict[str, object]]:
    """Run `reroute run` as its own process; wall seconds inside it and its JSON summary.

    The wall time is measured by a wrapper around the command function so the interpreter's
    start-up (imports) is left out of both sides of the comparison.
    """
    done = subprocess.run(
        reroute_command(source, out, base_url, *extra),
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"reroute run failed ({done.returncode}): {done.stderr[-2000:]}")
    wall = json.loads(done.stderr.strip().splitlines()[-1])["wall"]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return wall, summary


async def bare_loop(
    base_url: str, rows: int, concurrency: int, answered: list[float] | None = None
) -> float:
    """The floor: a plain anyio + httpx loop posting the same bodies, nothing else.

    ``answered``: gets the clock time (time.time) of each answer, for the side-by-side mode.
    """
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    next_row = iter(range(1, rows + 1))
    ok = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        for row in next_row:
            body = f'{{"for_inbound_call":1,"for_outbound_call":4,"status":{row % 2}}}'
            response = await client.post(f"/voicelink/call-routing/{row}", content=body)
            ok += response.status_code == 200
            if answered is not None:
                answered.append(time.time())

    began = time.perf_counter()
    async with (
        httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(concurrency):
            tg.start_soon(worker, client)
    elapsed = time.perf_counter() - began
    assert ok == rows, f"bare loop: only {ok} of {rows} answers were 200"
    return elapsed


def bare(base_url: str, rows: int, concurrency: int) -> float:
    """The bare loop as its own process (this file, `_bare`), started like `reroute run`."""
    done = subprocess.run(
        [sys.executable, __file__, "_bare", base_url, str(rows), str(concurrency)],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def overhead(rows: int, concurrency: int, repeat: int) -> None:
    """Bare loop and `reroute run` in turns, ``repeat`` times, against one sandbox.

    Taking turns puts both sides of each pair under the same load from the rest of the
    machine; the spread of the pairs' ratios shows how much that load moved them.
    """
    server, base_url = start_sandbox("--rate-limit", "off", "--max-concurrent", "off")
    pairs: list[tuple[float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = write_input(Path(tmp) / "in.csv", rows)
            warm = write_input(Path(tmp) / "warm.csv", min(rows, 500))
            flags = ("--rate", "1000000/s", "--concurrency", str(concurrency))
            # Untimed: warms the server, and writes the bytecode caches of both sides.
            bare(base_url, min(rows, 500), concurrency)
            reroute(warm, Path(tmp) / "warm-out.csv", base_url, *flags)
            for _ in range(repeat):
                bare_wall = bare(base_url, rows, concurrency)
                wall, summary = reroute(source, Path(tmp) / "out.csv", base_url, *flags)
                outcomes = summary["outcomes"]
                assert isinstance(outcomes, dict), summary
                assert outcomes["succeeded"] == rows, summary
                pairs.append((bare_wall, wall))
    finally:
        stop(server)
    print(f"overhead: {rows} rows, concurrency {concurrency}, {repeat} pairs taken in turns")
    ratios = []
    for n, (bare_wall, wall) in enumerate(pairs, start=1):
        bare_rate, reroute_rate = rows / bare_wall, rows / wall
        ratios.append(reroute_rate / bare_rate)
        print(f"  pair {n}: bare anyio+httpx loop {bare_wall:6.2f} s {bare_rate:6.0f} rows/s | "
              f"reroute run (all in) {wall:6.2f} s {reroute_rate:6.0f} rows/s | "
              f"ratio {ratios[-1]:.2f}x")  # fmt: skip
    print(f"  ratio reroute / bare  : median {statistics.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}x to {max(ratios):.2f}x  (goal >= 0.90x)")  # fmt: skip


def side_by_side(rows: int, concurrency: int, repeat: int) -> None:
    """Bare loop and `reroute run` at the same time, ``repeat`` times, against one sandbox.

    This machine's speed drifts by tens of percent from one run to the next (the same bare
    loop: 11 s, then 19 s), more than the difference being measured. Run at the same moment,
    both sides meet the same conditions, so a drift slows both alike. Both client processes
    share one CPU and the sandbox has another (Linux, two CPUs or more): on one CPU the
    scheduler gives the two clients equal time, so their rates compare their CPU cost per
    row; left free, one client may share a CPU with the server and the other not, and the
    ratio then measures where they landed. Each side's rate is taken over the span where both
    were sending (from the later first answer to the earlier last one), so neither gains
    from having the CPU to itself while the other starts up or finishes. Reroute's fixed
    costs (from the command's start to its first request, and from its last answer to its
    exit: loading, validating, the journal, the results file) are shown beside the ratio.
    """
    server_cpu, clients_cpu = _cpus()
    server, base_url = start_sandbox(
        "--rate-limit", "off", "--max-concurrent", "off", cpu=server_cpu
    )
    figures: list[tuple[float, float, float, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            source = write_input(tmp / "in.csv", rows)
            flags = ("--rate", "1000000/s", "--concurrency", str(concurrency))
            # Untimed: warms the server, and writes the bytecode caches of both sides.
            bare(base_url, min(rows, 500), concurrency)
            reroute(write_input(tmp / "warm.csv", 500), tmp / "warm-out.csv", base_url, *flags)
            for _ in range(repeat):
                figures.append(
                    _one_side_by_side(tmp, source, rows, base_url, concurrency, flags, clients_cpu)
                )
    finally:
        stop(server)
    where = (
        f"both clients on CPU {clients_cpu}, the sandbox on CPU {server_cpu}"
        if clients_cpu is not None
        else "CPUs not pinned"
    )
    print(f"overhead, side by side: {rows} rows each, concurrency {concurrency}, "
          f"{repeat} runs with both sides sending at the same time ({where})")  # fmt: skip
    ratios = []
    for n, (bare_rate, reroute_rate, span, fixed) in enumerate(figures, start=1):
        ratios.append(reroute_rate / bare_rate)
        print(f"  run {n}: over {span:5.1f} s both sending: bare anyio+httpx loop "
              f"{bare_rate:5.0f} rows/s | reroute run {reroute_rate:5.0f} rows/s | ratio "
              f"{ratios[-1]:.3f}x | reroute fixed costs {fixed:.2f} s")  # fmt: skip
    print(_ratio_summary(ratios, goal=0.9))


def _ratio_summary(ratios: list[float], *, goal: float) -> str:
    """Median, mean, range, how many runs met the goal, and a 95% interval of the median
    (bootstrap: 10,000 resamples of the runs, seeded, so the same runs give the same interval).

    One run is one pair of rates taken at the same moment; runs land a few points either side
    of their median, so the interval says how far the median itself could be off.
    """
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(10_000))
    low, high = medians[250], medians[9_749]
    met = sum(r >= goal for r in ratios)
    return (
        f"  ratio reroute / bare  : median {statistics.median(ratios):.3f}x, mean "
        f"{statistics.fmean(ratios):.3f}x, range {min(ratios):.3f}x to {max(ratios):.3f}x; "
        f"{met} of {len(ratios)} runs >= {goal:.2f}x; 95% interval of the median "
        f"{low:.3f}x to {high:.3f}x  (goal >= {goal:.2f}x)"
    )


def _one_side_by_side(
    tmp: Path,
    source: Path,
    rows: int,
    base_url: str,
    concurrency: int,
    flags: tuple[str, ...],
    cpu: int | None,
) -> tuple[float, float, float, float]:
    """One simultaneous run: both rates over the overlap, its length, reroute's fixed costs."""
    out, answers = tmp / "out.csv", tmp / "bare-answers.json"
    bare_command = [sys.executable, __file__, "_bare", base_url, str(rows), str(concurrency)]
    run = subprocess.Popen(
        reroute_command(source, out, base_url, *flags),
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_on(cpu),
    )  # fmt: skip
    loop = subprocess.Popen(
        [*bare_command, str(answers)],
        cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, preexec_fn=_on(cpu),
    )  # fmt: skip
    stdout, stderr = run.communicate()
    if loop.wait() != 0 or run.returncode != 0:
        raise SystemExit(f"a side failed: reroute {run.returncode}: {stderr[-2000:]}")
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["outcomes"]["succeeded"] == rows, summary
    times = json.loads(stderr.strip().splitlines()[-1])
    bare_done = sorted(json.loads(answers.read_text()))
    import polars as pl

    frame = pl.read_csv(out, infer_schema=False)
    stamps = pl.col("started_at", "finished_at").str.to_datetime(time_zone="UTC")
    epochs = frame.select(stamps.dt.epoch("us") / 1e6)
    reroute_done = sorted(epochs["finished_at"].to_list())
    first_request = min(epochs["started_at"].to_list())
    begin = max(bare_done[0], reroute_done[0])
    end = min(bare_done[-1], reroute_done[-1])
    span = end - begin

    def rate(done: list[float]) -> float:
        return sum(begin < t <= end for t in done) / span

    fixed = (first_request - times["began"]) + (times["ended"] - reroute_done[-1])
    return rate(bare_done), rate(reroute_done), span, fixed


def pacing(rows: int) -> None:
    server, base_url = start_sandbox("--rate-limit", "20/s", "--max-concurrent", "5")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = write_input(Path(tmp) / "in.csv", rows)
            out = Path(tmp) / "out.csv"
            _, summary = reroute(source, out, base_url, "--rate", "20/s", "--concurrency", "4")
            first_last = _first_last_request(out)
        by_status = stats(base_url)["by_status"]
    finally:
        stop(server)
    assert isinstance(by_status, dict)
    limited = int(by_status.get("429", 0))
    requests = int(str(summary["requests"]))
    rate = (requests - 1) / first_last
    print(f"pacing: {rows} rows at --rate 20/s against a sandbox limited to 20/s")
    print(f"  429 answers           : {limited}  (goal 0)")
    print(f"  effective rate        : {rate:.2f}/s = {rate / 20:.1%} of the limit (goal >= 97%)")


def _first_last_request(out: Path) -> float:
    import polars as pl

    frame = pl.read_csv(out, infer_schema=False)
    starts = frame["started_at"].str.to_datetime(time_zone="UTC")
    return float((starts.max() - starts.min()).total_seconds())  # type: ignore[operator, union-attr]


def memory(sizes: list[int]) -> None:
    server, base_url = start_sandbox("--rate-limit", "off", "--max-concurrent", "off")
    figures = []
    try:
        for rows in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                source = write_input(Path(tmp) / "in.csv", rows)
                out = Path(tmp) / "out.csv"
                began = time.perf_counter()
                peak = _peak_rss_mib(
                    ["run", str(source), "--base-url", base_url, "--results", str(out),
                     "--rate", "1000000/s", "--concurrency", "8", "--log-format", "json"]
                )  # fmt: skip
                figures.append((rows, peak, time.perf_counter() - began))
    finally:
        stop(server)
    print("memory: peak RSS of a whole `reroute run` process")
    for rows, peak, seconds in figures:
        print(f"  {rows:>8} rows : {peak:7.1f} MiB  ({seconds:.0f} s)")
    if len(figures) >= 2:
        growth = figures[-1][1] / figures[0][1]
        print(f"  growth {figures[0][0]} -> {figures[-1][0]} rows: {growth:.2f}x "
              "(goal < 400 MiB and roughly flat)")  # fmt: skip


def _peak_rss_mib(args: list[str]) -> float:
    """Peak RSS of one reroute process, measured by a wrapper process that only waits."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=False, stdout=subprocess.DEVNULL,"
        " stderr=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "batch", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.strip()) / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    if sys.argv[1:2] == ["_bare"]:  # the bare loop's own process (see bare())
        base_url, rows, concurrency = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        answered: list[float] = []
        wall = anyio.run(bare_loop, base_url, rows, concurrency, answered)
        if len(sys.argv) > 5:  # side by side: when each answer came, for the overlap
            Path(sys.argv[5]).write_text(json.dumps(answered))
        print(wall)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="which", required=True)
    o = sub.add_parser("overhead")
    o.add_argument("--rows", type=int, default=10_000)
    o.add_argument("--concurrency", type=int, default=8)
    o.add_argument("--repeat", type=int, default=15, help="runs (pairs of runs with --in-turns)")
    o.add_argument(
        "--in-turns",
        action="store_true",
        help="one side after the other, whole wall times (start-up and results included)",
    )
    p = sub.add_parser("pacing")
    p.add_argument("--rows", type=int, default=300)
    m = sub.add_parser("memory")
    m.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000])
    args = parser.parse_args()
    assert resource  # Linux/macOS only: ru_maxrss
    if args.which == "overhead" and args.in_turns:
        overhead(args.rows, args.concurrency, args.repeat)
    elif args.which == "overhead":
        side_by_side(args.rows, args.concurrency, args.repeat)
    elif args.which == "pacing":
        pacing(args.rows)
    else:
        memory(args.sizes)


if __name__ == "__main__":
    main()
