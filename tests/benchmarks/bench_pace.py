"""Benchmark of the pace (issue 18): share of the limit and 429s against each kind of server.

    uv run python tests/benchmarks/bench_pace.py [--minutes 60] [--seed 1]

Simulates reroute's limiter (concurrency 4, as ``reroute run``) against the sandbox's rate
limiter in bucket, strict and window mode, with arrivals on time and up to 5% of an interval
late, at 60/min and at 10/s, in trio's virtual time (deterministic up to trio's scheduling
order; a simulated hour takes a second or two). Answers take 20% of an interval after arrival;
the limiter is told each answer's latency. See ``tests/pace_sim.py``.

Goals: strict server with up to 5% jitter: >= 97% of the limit, <= 1% of requests answered 429;
bucket and window servers: >= 99%, no 429.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from batch.sandbox.limits import RateLimitMode
from batch.settings import Rate
from tests.pace_sim import Scenario, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="simulated run length")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-latency", action="store_true", help="do not tell the limiter answer latencies"
    )
    args = parser.parse_args()
    seconds = args.minutes * 60
    print(f"{args.minutes:g} simulated minutes per run, concurrency 4, seed {args.seed}")
    print("| limit | server | jitter | share of the limit | 429s | goal |")
    print("|---|---|---|---|---|---|")
    for limit in (Rate(60, 60.0), Rate(10, 1.0)):
        for mode in RateLimitMode:
            for jitter in (0.0, 0.05):
                scenario = Scenario(
                    mode,
                    limit=limit,
                    jitter=jitter,
                    seconds=seconds,
                    seed=args.seed,
                    pass_latency=not args.no_latency,
                )
                tally = run(scenario)
                strict = mode is RateLimitMode.STRICT and jitter
                met = (
                    tally.share >= 0.97 and tally.refused_share <= 0.01
                    if strict
                    else tally.share >= 0.99 and not tally.refused
                )
                goal = (">= 97%, <= 1% 429" if strict else ">= 99%, no 429") + (
                    ": met" if met else ": NOT met"
                )
                print(
                    f"| {limit} | {mode} | {jitter:.0%} | {tally.share:.1%} | "
                    f"{len(tally.refused)} of {tally.sent} ({tally.refused_share:.2%}) | {goal} |"
                )


if __name__ == "__main__":
    main()
