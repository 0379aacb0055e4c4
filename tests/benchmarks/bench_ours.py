"""reroute's own per-row cost, with the HTTP exchange replaced by a ready answer.

    uv run python tests/benchmarks/bench_ours.py [--rows 2500] [--callgrind]

Three loops send the same rows through a stand-in client whose ``post`` yields once to the
event loop and returns a prepared 200 answer (the API's success envelope):

  bare       the loop alone: 8 workers, one ``post`` per row
  sender     each row through batch.send.sender.Sender (limiter, deadline, answer classified,
  result) run_calls  each row through batch.engine.rowloop.run_calls (+ workers, hooks, the journal)

What a stage adds over ``bare`` is reroute's own code per row, without httpx's (which costs
~3.2M instructions a row against the sandbox, far more than ours). Time per row is the median
of five interleaved runs; ``--callgrind`` counts instructions instead (valgrind, Linux): the
count of a run of ``--rows`` rows minus that of a run of 500, per row. Instruction counts
repeat to within a few hundred per row from run to run, where times on a shared VM drift by
tens of percent, so they show what a change to our code saves.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import anyio.lowlevel
import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from batch.engine.rowloop import run_calls  # noqa: E402
from batch.engine.stop import Observer  # noqa: E402
from batch.journal.journal import Journal, RunIdentity  # noqa: E402
from batch.model import Call  # noqa: E402
from batch.send.client import SendPolicy  # noqa: E402
from batch.send.limiter import Limiter  # noqa: E402
from batch.send.sender import Sender  # noqa: E402
from batch.settings import Rate  # noqa: E402

STAGES = ("bare", "sender", "run_calls")
ANSWER = (
    b'{"success":true,"data":{"routing_id":1234,"for_inbound_call":1,"for_outbound_call":4,'
    b'"status":1,"updated_at":"2026-11-30T05:00:00Z"}}'
)
RATE = Rate.parse("1000000/s")
CONCURRENCY = 8


class ReadyClient:
    """Stands in for httpx.AsyncClient: every POST is answered at once with ANSWER."""

    def __init__(self) -> None:
        self.headers = httpx.Headers({"authorization": "Bearer rg_test_benchmark"})
        self._request = httpx.Request("POST", "http://127.0.0.1/")

    async def post(self, path: str, *, content: bytes) -> httpx.Response:
        await anyio.lowlevel.checkpoint()
        return httpx.Response(200, content=ANSWER, request=self._request)


def calls(rows: int) -> Iterator[Call]:
    for row in range(1, rows + 1):
        body = f'{{"for_inbound_call":1,"for_outbound_call":4,"status":{row % 2}}}'
        yield Call(row=row, routing_id=row, body=body)


async def bare(rows: int) -> None:
    client, source = ReadyClient(), calls(rows)

    async def worker() -> None:
        for call in source:
            await client.post(call.path, content=call.body.encode())

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(worker)


async def sender(rows: int) -> None:
    client, source = ReadyClient(), calls(rows)
    send = Sender(client, Limiter(RATE), SendPolicy(timeout=30))  # type: ignore[arg-type]

    async def worker() -> None:
        for call in source:
            await send.send(call)

    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(worker)


async def run_calls_stage(rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        identity = RunIdentity("benchmark", "http://127.0.0.1", str(Path(tmp) / "out.csv"))
        with Journal.open(Path(tmp) / "out.csv.journal", identity) as journal:
            observer = Observer()
            journal.segment = 1
            # As the engine builds it: the journal is the sender's trail (batch.journal.audit).
            sender = Sender(
                ReadyClient(), Limiter(RATE), SendPolicy(timeout=30),  # type: ignore[arg-type]
                trail=journal, on_attempt=observer.attempt, on_retry=observer.retrying,
            )  # fmt: skip
            await run_calls(
                calls(rows), sender=sender, concurrency=CONCURRENCY, journal=journal,
                observer=observer,
            )  # fmt: skip


RUN = {"bare": bare, "sender": sender, "run_calls": run_calls_stage}


def timed(rows: int) -> None:
    figures: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for _ in range(5):
        for stage in STAGES:
            began = time.perf_counter()
            anyio.run(RUN[stage], rows)
            figures[stage].append((time.perf_counter() - began) / rows * 1e6)
    base = statistics.median(figures["bare"])
    print(f"our own code per row, {rows} rows, median of 5 (the HTTP exchange stubbed out)")
    for stage in STAGES:
        per_row = statistics.median(figures[stage])
        print(f"  {stage:10s} {per_row:7.1f} us/row  (+{per_row - base:6.1f} over bare)")


def instructions(stage: str, rows: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "_one", stage, str(rows)],
        capture_output=True, text=True, check=True,
    ).stderr  # fmt: skip
    return int(out.split("Collected : ")[1].split()[0])


def counted(rows: int) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind")
    per_row = {s: (instructions(s, rows) - instructions(s, 500)) / (rows - 500) for s in STAGES}
    print(f"instructions per row (callgrind: {rows} rows minus 500 rows)")
    for stage in STAGES:
        extra = per_row[stage] - per_row["bare"]
        print(f"  {stage:10s} {per_row[stage]:10,.0f}  (+{extra:,.0f} over bare)")


def main() -> None:
    if sys.argv[1:2] == ["_one"]:  # one stage in its own process, under valgrind
        anyio.run(RUN[sys.argv[2]], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    if args.rows <= 500:
        raise SystemExit("--rows: use more than 500")
    (counted if args.callgrind else timed)(args.rows)


if __name__ == "__main__":
    main()
