"""Benchmark of several runs on one key (issue 29): fair shares, and the survivor's recovery.

    uv run python tests/benchmarks/bench_pace_runs.py [--seed 1] [--shared]

Two runs, each with the pace controller of ``reroute run`` (concurrency 4, ``--rate`` at the
server's limit), share one server limit in trio's virtual time (``tests/pace_runs_sim.py``):
run A starts alone, B joins once A is at its full pace, A stops later, B goes on alone. At
60/min: B joins after 5 minutes, A stops 30 minutes later, B goes on for 30 minutes; at 10/s,
the same in sixths. Measured, against each kind of server limiter (bucket, strict, window),
requests arriving on time and up to 5% of an interval late:

- fair: from B's start, until every window of 60 intervals admits each run within 20% of an
  even split (each gets 40-60%) while together they get at least half the limit, to A's stop;
- together: what both got from a minute after B joined to A's stop, as a share of the limit;
- back to 90%: from A's stop, until every window of 60 intervals admits B at least 90% of the
  limit, to the end;
- the 429s in each phase.

Runs on different machines share nothing (the default); ``--shared`` gives them one schedule
of slots as runs on one machine have (``batch.send.sharedlimiter``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from batch.sandbox.limits import RateLimitMode
from batch.settings import Rate
from tests.pace_runs_sim import Run, Runs, simulate_runs

# limit, B joins, A stops, the end (seconds)
PLANS = ((Rate(60, 60.0), 300.0, 2100.0, 3900.0), (Rate(10, 1.0), 50.0, 350.0, 650.0))


def measure(limit: Rate, mode: RateLimitMode, jitter: float, seed: int, shared: bool) -> str:
    plan = next(p for p in PLANS if p[0] == limit)
    _, join, stop, end = plan
    runs = Runs(
        (Run(stop=stop), Run(start=join)), mode=mode, limit=limit, shared=shared,
        jitter=jitter, seconds=end, seed=seed,
    )  # fmt: skip
    outcome = simulate_runs(runs)
    window = 60 * limit.interval
    fair = outcome.fair_from(join, stop, window=window)
    together = outcome.share_between(join + window, stop)
    back = outcome.alone_from(1, stop, window=window)
    shared_429 = outcome.refused_between(join, stop)
    alone_429 = outcome.refused_between(stop, end)
    sent_shared = sum(
        run.admitted(join, stop) + sum(1 for t in run.refused if join <= t < stop)
        for run in outcome.runs
    )
    return (
        f"| {limit} | {mode} | {jitter:.0%} | {_seconds(fair)} | {together:.1%} | "
        f"{shared_429} of {sent_shared} | {_seconds(back)} | {alone_429} |"
    )


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shared", action="store_true", help="one machine: a shared schedule")
    parser.add_argument("--limit", choices=("60/min", "10/s"), help="one limit only")
    args = parser.parse_args()
    where = "one machine (shared schedule)" if args.shared else "two machines (nothing shared)"
    print(f"Two runs on one key, {where}, concurrency 4 each, seed {args.seed}")
    print(
        "| limit | server | jitter | fair after B joins | together (of the limit) "
        "| 429s while both run | B back to 90% after A stops | 429s after |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for limit, *_ in PLANS:
        if args.limit and str(limit) != args.limit:
            continue
        for mode in RateLimitMode:
            for jitter in (0.0, 0.05):
                print(measure(limit, mode, jitter, args.seed, args.shared), flush=True)


if __name__ == "__main__":
    main()
