"""An outage costs no row, whatever --max-attempts: a request that failed on the host just before
the run declared it down met the outage too (virtual time; the live run is in
tests/send/test_network_live.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from trio.testing import MockClock

from batch.model import Outcome
from batch.sandbox import generate_api_key, serve_in_thread
from batch.send.outage import Breaker
from tests.cli.test_run import write_input
from tests.send.test_network_live import free_port, outcomes, sandbox_config, start_run, wait_for
from tests.send.test_outage import Host, make, refused, send_all


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": MockClock(autojump_threshold=0)})


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_the_refusals_that_showed_the_host_down_cost_no_row(concurrency: int) -> None:
    """--max-attempts 1, a 4 s outage: the rows whose only request met the first refusals
    (before the host was declared down) are sent again once it is back; every row succeeds and
    `attempts` counts every request."""
    host = Host(refused, down_from=0.5, down_until=4.5)
    sender = make(host, Breaker(max_outage=900), max_attempts=1)
    results = await send_all(sender, 30, concurrency=concurrency)
    assert [r.outcome if r else None for r in results] == [Outcome.SUCCEEDED] * 30
    assert sum(r.attempts for r in results if r) == len(host.requests)
    assert host.during_outage() >= 3  # the outage was met, and declared


async def test_gateway_answers_before_the_outage_was_declared_cost_no_row() -> None:
    """The same with 503s: the answers that made the host down are not a row's failure."""
    gateway = Host(lambda: httpx.Response(503, text="<html>down</html>"), 0.5, 4.5)
    results = await send_all(make(gateway, Breaker(max_outage=900), max_attempts=1), 30)
    assert [r.outcome if r else None for r in results] == [Outcome.SUCCEEDED] * 30


@pytest.mark.slow
def test_a_real_outage_with_one_attempt_per_row_costs_no_row(tmp_path: Path) -> None:
    """A real run with --max-attempts 1 whose server goes away for 4 s and comes back on the
    same port: all 30 rows succeed, exit 0, `attempts` adding up to the requests served."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env.pop("REROUTE_BASE_URL", None)
    key, port = generate_api_key(), free_port()
    source, out = write_input(tmp_path / "in.csv", 30), tmp_path / "out.csv"
    args = ["run", str(source), "--base-url", f"http://127.0.0.1:{port}/api/v2", "--results",
            str(out), "--rate", "10/s", "--max-attempts", "1"]  # fmt: skip
    with serve_in_thread(sandbox_config(key), port=port) as first:
        proc = start_run(args, {**env, "VOCOBASE_API_KEY": key}, tmp_path)
        wait_for(lambda: first.stats()["total"] >= 8, 30)
        before = first.stats()["total"]
    time.sleep(4)  # the outage itself, not a tolerance: the run must wait it out
    with serve_in_thread(sandbox_config(key), port=port) as second:
        _stdout, stderr = proc.communicate(timeout=60)
        after = second.stats()["total"]
    assert proc.returncode == 0, stderr
    assert outcomes(out) == {"succeeded": 30}
    attempts = pl.read_csv(out, infer_schema=False)["attempts"].cast(int)
    assert before + after <= attempts.sum()  # refused requests count too, never served
