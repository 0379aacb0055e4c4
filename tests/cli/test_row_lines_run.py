"""A run, its status, its report and its retry name a failed row by the line the operator finds
it on (issue 25, part 6), also after a quoted cell spanning lines above it: the run keeps how
in its journal, so none of them reads the input again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_run import invoke, run_args
from tests.conftest import StartSandbox

SHEET = (
    "routing_id,for_inbound_call,for_outbound_call,status,outbound_sip_trunk_id,note\n"
    '1001,1,2,1,501,"moved,\nsee the ticket"\n'  # row 1: lines 2-3
    "1002,1,2,1,502,\n"  # row 2: line 4
    "1003,1,2,1,503,\n"  # row 3: line 5, answered 404
)


@pytest.mark.slow
def test_a_failed_row_is_named_by_its_line_everywhere(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Row 3 starts on line 5: the run's summary, status, the report (Markdown) and a retry
    written to another results file all say so."""
    sandbox = start_sandbox(script={1003: ("404", "404")})
    source = tmp_path / "changes.csv"
    source.write_text(SHEET)
    assert source.read_text().splitlines()[4].startswith("1003,")  # line 5, as an editor shows
    out = tmp_path / "out.csv"
    ran = invoke(*run_args(sandbox, source, out), key=sandbox.api_key)
    assert ran.exit_code == 1, ran.output
    assert "e.g. row 3 (line 5, routing_id 1003): " in ran.stdout

    status = invoke("status", str(out))
    assert "    row 3 (line 5, routing id 1003): HTTP 404 " in status.stdout, status.output

    report = invoke("report", str(out), "--format", "md", "--out", "-")
    assert "row 3 (line 5, routing_id 1003): " in report.stdout  # the top causes
    assert "| 3 (line 5) | 1003 |" in report.stdout  # the failure table

    again = invoke("retry", str(out), "--results", str(tmp_path / "again.csv"), key=sandbox.api_key)
    assert again.exit_code == 1, again.output
    assert "e.g. row 3 (line 5, routing_id 1003): " in again.stdout
