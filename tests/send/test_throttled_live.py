"""A 429 never costs a row, with real processes (issue 29; virtual time in test_throttled.py): a
run the server holds at 429 longer than --max-outage stops with exit 3, its rows not_attempted,
and the same command sends them once the server takes requests again, attempts accumulating."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from batch.sandbox import SandboxConfig, generate_api_key, serve_in_thread
from tests.cli.test_run import write_input
from tests.send.test_network_live import free_port, outcomes, process_env

__all__ = ["process_env"]  # a fixture, used by name

ROWS = 20


@pytest.mark.slow
def test_a_run_held_at_429_stops_resumably_and_fails_no_row(
    tmp_path: Path, process_env: dict[str, str]
) -> None:
    """Every answer a 429 (Retry-After 1) for longer than --max-outage 3s, --max-attempts 1:
    the row is sent again and again, then exit 3 within seconds, no row failed, every request
    counted; then, the server taking requests again, the
    same command succeeds every row, `attempts` adding the 429s to the request that landed."""
    key, port = generate_api_key(), free_port()
    source, out = write_input(tmp_path / "in.csv", ROWS), tmp_path / "out.csv"
    args = [sys.executable, "-m", "batch", "run", str(source), "--base-url",
            f"http://127.0.0.1:{port}/api/v2", "--results", str(out), "--rate", "10/s",
            "--max-outage", "3s", "--max-attempts", "1", "--concurrency", "1"]  # fmt: skip
    env = {**process_env, "VOCOBASE_API_KEY": key, "REROUTE_RUNTIME_DIR": str(tmp_path / "rt")}
    held = {1000 + row: ("429",) * 100 for row in range(1, ROWS + 1)}
    config = SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None, script=held)
    with serve_in_thread(config, port=port) as sandbox:
        first = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)  # fmt: skip
        refused = sandbox.stats()["total"]
    assert first.returncode == 3, first.stderr
    assert "answered only 429" in first.stdout + first.stderr
    assert outcomes(out) == {"not_attempted": ROWS}
    frame = pl.read_csv(out, infer_schema=False)
    attempts = {int(r): int(a) for r, a in zip(frame["routing_id"], frame["attempts"], strict=True)}
    # One row at a time, each 429 pausing the run for its Retry-After: the first row sent about
    # once a second, every request counted, although --max-attempts is 1.
    assert sum(attempts.values()) == refused == attempts[1001] >= 3
    assert set(frame.filter(pl.col("attempts") != "0")["error_code"]) == {"RATE_LIMITED"}

    with serve_in_thread(SandboxConfig(api_key=key, rate_limit=None, max_concurrent=None),
                         port=port) as sandbox:  # fmt: skip
        again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=60)  # fmt: skip
        served = sandbox.stats()["total"]
    assert again.returncode == 0, again.stderr
    assert outcomes(out) == {"succeeded": ROWS}
    assert served == ROWS
    frame = pl.read_csv(out, infer_schema=False)
    for routing_id, n in zip(frame["routing_id"], frame["attempts"], strict=True):
        assert int(n) == attempts[int(routing_id)] + 1
