"""Seeding the sandbox from a file: any CSV gives records or one clear error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch.errors import InputFileError
from batch.sandbox import SandboxConfig, generate_api_key, serve_in_thread
from batch.sandbox.state import load_state

cells = st.sampled_from(["", "1", "2", "3", "4", "0", "-1", "7.0", "1.5", "x", "NaN", " 5 "])
headers = st.sampled_from(
    ["routing_id", "Routing_Id", "status", "for_inbound_call", "connectionId", "note", "status"]
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    columns=st.lists(headers, min_size=1, max_size=4),
    rows=st.lists(st.lists(cells, min_size=4, max_size=4), max_size=5),
)
def test_any_state_csv_gives_records_or_one_line(
    tmp_path: Path, columns: list[str], rows: list[list[str]]
) -> None:
    """Random state files load to integer-keyed records or raise an InputFileError naming them."""
    path = tmp_path / "state.csv"
    text = ",".join(columns) + "\n" + "".join(",".join(r[: len(columns)]) + "\n" for r in rows)
    path.write_text(text)
    problem = ""
    try:
        records = load_state(path)
    except InputFileError as exc:
        problem = str(exc)
    if problem:
        assert problem.startswith(str(path))
        assert "\n" not in problem
    else:
        assert all(isinstance(key, int) and key >= 1 for key in records)


def test_unreadable_state_fails_before_any_socket(tmp_path: Path) -> None:
    """A bad state file stops serve_in_thread before it listens (no leaked socket)."""
    path = tmp_path / "state.parquet"
    path.write_bytes(b"not parquet at all")
    config = SandboxConfig(api_key=generate_api_key(), state=path)
    with (
        pytest.raises(InputFileError, match="cannot read the sandbox state file"),
        serve_in_thread(config),
    ):
        pass  # pragma: no cover
