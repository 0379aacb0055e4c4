"""Benchmark of the pace (issue 18): share of the limit and 429s against each kind of server.

    uv run python tests/benchmarks/bench_pace.py [--minutes 60] [--seed 1] [--only steady|storm]

Simulates reroute's limiter (concurrency 4, as ``reroute run``) against the sandbox's rate
limiter in bucket, strict and window mode, with arrivals on time and up to 5% of an interval
late, at 60/min and at 10/s, in trio's virtual time (deterministic up to trio's scheduling
order; a simulated hour takes a second or two). Answers take 20% of an interval after arrival;
the limiter is told each answer's latency. See ``tests/pace_sim.py``.

Goals: strict server with up to 5% jitter: >= 97% of the limit, <= 1% of requests answered 429;
bucket and window servers: >= 99%, no 429.

The storm table: the server's limit halves mid-run (after 20 minutes at 60/min, 5 at 10/s; 20
and 15 minutes follow). Time to converge is counted from the server's first 429 after the storm
(a bucket server first spends its burst: the client cannot know before), to the first moment
from which each minute of the next ten admits at least 90% of the new limit and from which at
most 1% of requests are answered 429 (``Tally.storm`` in ``tests/pace_sim.py``). Its 429s: from
the storm to a minute after that moment. Goal: within a minute, a handful (<= 8) of 429s.
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
    parser.add_argument("--only", choices=("steady", "storm"), help="one of the two tables")
    parser.add_argument(
        "--restart",
        action="store_true",
        help="the storm restarts the server's limiter (its counts forgotten), not retunes it",
    )
    args = parser.parse_args()
    if args.only != "storm":
        steady(args)
    if args.only != "steady":
        storm(args)


def steady(args: argparse.Namespace) -> None:
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


STORMS = ((Rate(60, 60.0), 1200.0, 2400.0), (Rate(10, 1.0), 300.0, 1200.0))  # limit, at, length


def storm(args: argparse.Namespace) -> None:
    print()
    how = "a restart that forgets its counts" if args.restart else "reconfigured, counts kept"
    print(f"The limit halves mid-run ({how}), concurrency 4, seed {args.seed}")
    print(
        "| limit | server | jitter | first 429 after the storm | converged after the first 429 "
        "| 429s until then (+1 min) | 429s after, to the run's end | goal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for limit, at, seconds in STORMS:
        for mode in RateLimitMode:
            for jitter in (0.0, 0.05):
                scenario = Scenario(
                    mode,
                    limit=limit,
                    jitter=jitter,
                    seconds=seconds,
                    seed=args.seed,
                    storm_at=at,
                    storm_restarts=args.restart,
                    pass_latency=not args.no_latency,
                )
                tally = run(scenario)
                result = tally.storm(at, limit.per_second / 2)
                took = result.seconds
                end = result.converged + 60 if result.converged is not None else seconds
                after = sum(1 for r in tally.refused if r >= end)
                first = (
                    "-" if result.first_refused is None else f"{result.first_refused - at:.1f} s"
                )
                met = took is not None and took <= 60 and result.refused <= 8
                print(
                    f"| {limit} | {mode} | {jitter:.0%} | {first} | "
                    f"{'never' if took is None else f'{took:.0f} s'} | {result.refused} | "
                    f"{'-' if took is None else f'{after} in {(seconds - end) / 60:.0f} min'} | "
                    f"<= 60 s, <= 8 429s: {'met' if met else 'NOT met'} |"
                )


if __name__ == "__main__":
    main()
