"""Where `reroute run`'s overhead goes: the bare loop against ever more of reroute, side by side.

    uv run python tests/benchmarks/bench_breakdown.py [--rows 3000] [--repeat 3] [--what-if]
                                                      [--only STAGE ...]

Each stage is a process that sends the same rows as the bare anyio + httpx loop of
bench_run.py, with one more layer of reroute each time:

  client     reroute's httpx client (its headers, pool, timeouts) and the JSON answer parsed
  sender     + batch.send.sender.Sender: the shared limiter, the per-request deadline, the answer
             classified, tenacity for rows that retry, the row's RowResult
  run_calls  + batch.engine.rowloop.run_calls: the workers, the observers' hooks, the journal (its
  log
             and SQLite), every row's record written before the next request goes out

--what-if adds two stages that are not reroute as shipped, to price a part by its absence:

  no_journal   run_calls with a journal whose writes do nothing
  no_deadline  run_calls without the per-request deadline (its cancel scope made a no-op)

A stage and the bare loop run at the same time, both on one CPU with the sandbox on another
(as `bench_run.py overhead` does), and each rate is taken over the span where both were
sending; the figure is the stage's rate over the bare loop's. The bare loop against itself
reads 1.00x this way (0.997-1.008x measured). What `reroute run` adds on top of run_calls
(loading, validating, the results file) is a fixed cost, shown by `bench_run.py overhead`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Iterator
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: tests.fakes
from bench_run import KEY, ROOT, _cpus, _env, _on, bare_loop, start_sandbox, stop

STAGES = ("client", "sender", "run_calls")
WHAT_IF = ("no_journal", "no_deadline")


async def stage(name: str, base_url: str, rows: int, concurrency: int) -> list[float]:
    """Send ``rows`` rows through ``name``'s layers; when each answer came (time.time)."""
    from batch.engine.rowloop import run_calls
    from batch.engine.stop import Observer
    from batch.journal.journal import Journal
    from batch.journal.record import RunIdentity
    from batch.model import Call, RowResult
    from batch.send.client import SendPolicy, build_client
    from batch.send.limiter import Limiter
    from batch.send.sender import Sender
    from batch.settings import Rate
    from tests.fakes import sender_hooks

    answered: list[float] = []
    client = build_client(base_url, KEY, timeout=30, concurrency=concurrency)
    rate, policy = Rate.parse("1000000/s"), SendPolicy(timeout=30)

    def calls() -> Iterator[Call]:
        for row in range(1, rows + 1):
            body = f'{{"for_inbound_call":1,"for_outbound_call":4,"status":{row % 2}}}'
            yield Call(row=row, routing_id=row, body=body)

    source = calls()
    if name == "no_deadline":
        import batch.send.sender

        class NoDeadline:  # stands in for anyio's CancelScope in batch.send.sender's request
            cancelled_caught = False

            def __init__(self, deadline: float = 0.0) -> None:
                pass

            def __enter__(self) -> NoDeadline:
                return self

            def __exit__(self, *exc: object) -> None:
                return None

        # anyio as batch.send.sender sees it, but for the request's cancel scope.
        without_deadline = types.SimpleNamespace(**vars(anyio))
        without_deadline.CancelScope = NoDeadline
        batch.send.sender.anyio = without_deadline  # type: ignore[assignment]
    async with client:
        if name in ("run_calls", "no_journal", "no_deadline"):

            class Answered(Observer):
                def row_finished(self, result: RowResult) -> None:
                    answered.append(time.time())

            with tempfile.TemporaryDirectory() as tmp:
                identity = RunIdentity("benchmark", base_url, str(Path(tmp) / "out.csv"))
                with Journal.open(Path(tmp) / "out.csv.journal", identity) as journal:
                    if name == "no_journal":  # neither in-flight marks nor final records
                        journal.attempt = lambda *args, **kwargs: None  # type: ignore[method-assign]
                        journal._write = lambda *args, **kwargs: None  # type: ignore[method-assign]
                    observer = Answered()
                    on_attempt, on_retry = sender_hooks(journal, observer)
                    run_sender = Sender(
                        client, Limiter(rate), policy, on_attempt=on_attempt,
                        on_retry=on_retry,
                    )  # fmt: skip
                    await run_calls(
                        source, sender=run_sender, concurrency=concurrency, journal=journal,
                        observer=observer,
                    )  # fmt: skip
            return answered
        sender = Sender(client, Limiter(rate), policy)

        async def worker() -> None:
            for call in source:
                if name == "client":
                    response = await client.post(call.path, content=call.body.encode())
                    json.loads(response.content)
                else:
                    await sender.send(call)
                answered.append(time.time())

        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
    return answered


def _process(which: str, base_url: str, rows: int, concurrency: int, out: Path) -> list[str]:
    args = [which, base_url, str(rows), str(concurrency), str(out)]
    return [sys.executable, __file__, "_one", *args]


def pair(which: str, base_url: str, rows: int, concurrency: int, cpu: int | None) -> float:
    """One simultaneous run of the bare loop and ``which``: the rates' ratio over the overlap."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / "bare.json", Path(tmp) / "stage.json"]
        procs = []
        for name, out in zip(("bare", which), outs, strict=True):
            command = _process(name, base_url, rows, concurrency, out)
            procs.append(subprocess.Popen(command, cwd=ROOT, env=_env(), preexec_fn=_on(cpu)))
        if [p.wait() for p in procs] != [0, 0]:
            raise SystemExit(f"a side of the {which} pair failed")
        bare_done, stage_done = (sorted(json.loads(out.read_text())) for out in outs)
    begin = max(bare_done[0], stage_done[0])
    end = min(bare_done[-1], stage_done[-1])
    bare_n = sum(begin < t <= end for t in bare_done)
    return sum(begin < t <= end for t in stage_done) / bare_n


def main() -> None:
    if sys.argv[1:2] == ["_one"]:  # one side's own process (see pair())
        which, base_url, rows, concurrency, out = sys.argv[2:7]
        if which == "bare":
            answered: list[float] = []
            anyio.run(bare_loop, base_url, int(rows), int(concurrency), answered)
        else:
            answered = anyio.run(stage, which, base_url, int(rows), int(concurrency))
        Path(out).write_text(json.dumps(answered))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--what-if", action="store_true", help="also no_journal, no_deadline")
    parser.add_argument("--only", nargs="+", choices=STAGES + WHAT_IF, help="just these stages")
    args = parser.parse_args()
    stages = args.only or (STAGES + WHAT_IF if args.what_if else STAGES)
    server_cpu, clients_cpu = _cpus()
    server, base_url = start_sandbox(
        "--rate-limit", "off", "--max-concurrent", "off", cpu=server_cpu
    )
    try:
        pair("client", base_url, 300, args.concurrency, clients_cpu)  # untimed warm-up
        figures = {
            which: [
                pair(which, base_url, args.rows, args.concurrency, clients_cpu)
                for _ in range(args.repeat)
            ]
            for which in stages
        }
    finally:
        stop(server)
    print(f"breakdown: {args.rows} rows, concurrency {args.concurrency}, each stage side by "
          f"side with the bare loop, {args.repeat} times (rate / bare loop's rate)")  # fmt: skip
    for which in stages:
        ratios = figures[which]
        print(f"  {which:10s} median {statistics.median(ratios):.3f}x  "
              f"(range {min(ratios):.3f}x to {max(ratios):.3f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
