"""Benchmark: the preflight's judgement of a 200,000-row sheet naming 5,000 distinct bots.

Run by hand (not part of the test suite):

    uv run python tests/benchmarks/bench_preflight.py [--rows 200000] [--bots 5000] [--repeat 5]

It builds the sheet in memory (every mode pair; ~2% of bot ids deleted, ~2% inactive, a
connection id on a quarter of the rows, one of them unknown), validates it once, then times,
best of ``--repeat``: ``validate`` alone, and ``judge(targets_of_validation(v))`` +
``add_errors`` (what ``validate --account`` adds once the lists are read), and
``targets_of_calls`` (what ``run`` judges from the request bodies). Goal (issue 14): the
judgement is a join, a fraction of validating the same sheet.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from batch.prepare.preflight import judge, targets_of_calls, targets_of_validation
from batch.prepare.validate import add_errors, validate
from batch.send.account import Account, Bot, Connection
from batch.sheets.load import Table

MAIN = "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"


def sheet(rows: int, bots: int, rnd: random.Random) -> pl.DataFrame:
    modes = [(1, 2), (1, 3), (1, 4), (2, 2), (2, 3), (2, 4), (3, 2), (3, 3), (3, 4)]
    records = []
    for n in range(1, rows + 1):
        inbound, outbound = modes[n % len(modes)]
        bot = str(1000 + rnd.randrange(int(bots * 1.02)))  # ~2% of ids the account lacks
        records.append(
            {
                "routing_id": str(n),
                "for_inbound_call": str(inbound),
                "for_outbound_call": str(outbound),
                "status": "1",
                "connection_id": MAIN if n % 4 == 0 else None,
                "connectionId": None,
                "inbound_websocket_bot_id": bot if inbound == 3 else None,
                "inbound_sip_trunk_id": "31" if inbound == 2 else None,
                "outbound_websocket_bot_id": bot if outbound == 3 else None,
                "outbound_sip_trunk_id": "41" if outbound == 2 else None,
            }
        )
    return pl.DataFrame(records, schema=dict.fromkeys(records[0], pl.String))


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
    parser.add_argument("--bots", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rnd = random.Random(14)
    table = Table(Path("bench.csv"), sheet(args.rows, args.bots, rnd), ())
    account = Account(
        tuple(Bot(1000 + i, f"bot {i}", 0 if i % 50 == 0 else 1) for i in range(args.bots)),
        (Connection(MAIN, "Main", "ACTIVE"),),
        datetime.now(UTC),
    )
    v = validate(table)
    verdict = judge(targets_of_validation(v), account)
    print(f"{args.rows} rows, {args.bots} bots: {v.valid} valid, {verdict.rejected} rejected")
    print(f"validate                        {best(args.repeat, lambda: validate(table)):.3f} s")
    judged = best(
        args.repeat,
        lambda: add_errors(v, judge(targets_of_validation(v), account).errors),
    )
    print(f"judge + add_errors (columns)    {judged:.3f} s")
    calls = list(v.calls())
    from_bodies = best(args.repeat, lambda: judge(targets_of_calls(calls), account))
    print(f"judge from request bodies (run) {from_bodies:.3f} s")


if __name__ == "__main__":
    main()
