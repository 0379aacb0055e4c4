"""`reroute validate` and `reroute plan`: summaries, files written, exit statuses, clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.sheets.results import read_results

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
GOOD = SAMPLES / "routing-changes.csv"
BAD = SAMPLES / "routing-changes-with-errors.csv"
HEADER = "routing_id,for_inbound_call,for_outbound_call,status"

runner = CliRunner()


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("sample", [GOOD, SAMPLES / "routing-changes.parquet"])
def test_valid_samples_exit_0(sample: Path) -> None:
    """Every row of the sample sheets is valid: exit 0, a one-line summary, no stderr."""
    code, out, err = invoke("validate", sample)
    assert code == 0
    assert f"{sample}: 40 rows read, 40 valid, 0 invalid" in out
    assert err == ""


def test_sample_with_errors_exits_1_and_shows_every_code() -> None:
    """The error sample exits 1, counts rows per code and lists the problems by row."""
    code, out, err = invoke("validate", BAD)
    assert code == 1
    assert "40 rows read, 30 valid, 10 invalid" in out
    for name in (
        "MISSING_FIELD 1",
        "NOT_AN_INTEGER 1",
        "OUT_OF_RANGE 1",
        "UNKNOWN_MODE 1",
        "MISSING_TARGET 1",
        "UNUSED_TARGET 1",
        "BAD_UUID 1",
        "CONFLICTING_CONNECTION_ID 1",
        "DUPLICATE_ROUTING_ID 2",
    ):
        assert name in out
    assert "  row 3 (line 4), field status: the cell is empty" in out
    assert err == ""


def test_only_the_first_ten_problems_are_listed(tmp_path: Path) -> None:
    """Many invalid rows: the summary lists ten and says how many more and where to see them."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "\n" + "".join(f"{n},9,4,1\n" for n in range(1, 26)))
    code, out, _ = invoke("validate", path)
    assert code == 1
    assert "first 10 invalid rows:" in out
    assert "row 10 (line 11), field for_inbound_call" in out
    assert "row 11," not in out
    assert "... and 15 more (write them all with --results PATH)" in out


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_results_file_holds_every_row(tmp_path: Path, suffix: str) -> None:
    """--results writes invalid rows with codes and valid rows as not_attempted with requests."""
    out_path = tmp_path / f"check{suffix}"
    code, out, _ = invoke("validate", BAD, "--results", out_path)
    assert code == 1
    assert f"results written to {out_path}" in out
    frame = read_results(out_path)
    assert frame.height == 40
    assert frame["row"].to_list() == list(range(1, 41))
    assert frame["outcome"].value_counts().sort("outcome").rows() == [
        ("invalid", 10),
        ("not_attempted", 30),
    ]
    first = frame.row(0, named=True)
    assert json.loads(first["request"])["for_inbound_call"] == 1
    assert first["attempts"] == 0
    assert (first["ticket"], first["did_number"]) == ("OPS-2310", "+44207186305")
    third = frame.row(2, named=True)
    assert (third["outcome"], third["error_code"], third["request"]) == (
        "invalid",
        "MISSING_FIELD",
        "",
    )


def test_connection_id_default_reaches_the_requests(tmp_path: Path) -> None:
    """--connection-id fills rows without one; a bad value is one usage line and exit 2."""
    uuid = "123e4567-e89b-12d3-a456-426614174000"
    out_path = tmp_path / "r.csv"
    code, _, _ = invoke("validate", GOOD, "--results", out_path, "--connection-id", uuid)
    assert code == 0
    bodies = [json.loads(b) for b in read_results(out_path)["request"]]
    assert {b["connection_id"] for b in bodies} == {uuid, "3f2b8c1e-5a4d-4e6f-9b7a-1c2d3e4f5a6b"}
    code, out, err = invoke("validate", GOOD, "--connection-id", "main")
    assert code == 2
    assert out == ""
    assert err.strip() == (f"reroute: --connection-id 'main' is not a UUID: write it like {uuid}")


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("missing.csv", None, "no such file"),
        ("c.csv", b"\xff\xfe" + HEADER.encode("utf-16-le"), "with --separator ','"),
        ("c.csv", b"routing_id,st\xe4tus\n", "with --encoding cp1252"),
        ("c.csv", b"routing_id;for_inbound_call;for_outbound_call;status\n1;1;4;1\n", "semicolons"),
        ("c.csv", b"routing_id,status\n1,1\n", "for_inbound_call, for_outbound_call not found"),
        ("c.xlsx", b"PK", "is not an Excel workbook"),
        ("c.xlsx", b"PK\x03\x04" + bytes(60), "is not a readable Excel workbook"),
        ("c.xls", b"PK", "unknown file type"),
    ],
)
def test_unreadable_input_is_one_stderr_line_and_exit_2(
    tmp_path: Path, name: str, data: bytes | None, needle: str
) -> None:
    """A file-level problem: exit 2, nothing on stdout, one line on stderr, no traceback."""
    path = tmp_path / name
    if data is not None:
        path.write_bytes(data)
    for command in ("validate", "plan"):
        code, out, err = invoke(command, path)
        assert code == 2
        assert out == ""
        assert err.startswith(f"reroute: {path}: ")
        assert needle in err
        assert err.count("\n") == 1
        assert "Traceback" not in err


def test_header_only_is_nothing_to_do(tmp_path: Path) -> None:
    """A header and no rows: 'nothing to do', exit 0 (and an empty results file if asked)."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + ",ticket\n")
    out_path = tmp_path / "r.csv"
    code, out, _ = invoke("validate", path, "--results", out_path)
    assert code == 0
    assert "nothing to do" in out
    assert read_results(out_path).height == 0


def test_markup_in_cells_is_printed_literally(tmp_path: Path) -> None:
    """Cell text that looks like rich markup is shown as typed, not interpreted."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "\n[bold]x[/bold],1,4,1\n")
    code, out, _ = invoke("validate", path)
    assert code == 1
    assert "value '[bold]x[/bold]' is not an integer" in out


def test_plan_prints_counts_and_writes_the_plan(tmp_path: Path) -> None:
    """plan shows counts by mode and writes one line per valid row; exit as validate."""
    plan = tmp_path / "plan.jsonl"
    code, out, err = invoke("plan", BAD, "--out", plan)
    assert code == 1
    assert "would send, by mode:" in out
    assert "inbound 3 (WebSocket bot), outbound 2 (SIP), status 1 (active)" in out
    assert f"plan of 30 requests written to {plan}" in out
    lines = [json.loads(line) for line in plan.read_text().splitlines()]
    assert len(lines) == 30
    assert lines[0]["method"] == "POST"
    assert lines[0]["path"] == "/voicelink/call-routing/4101"
    assert err == ""
    code, _, _ = invoke("plan", GOOD)
    assert code == 0


def test_help_lists_validate_and_plan() -> None:
    """The app knows both commands (registration through batch.cli)."""
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "validate" in result.stdout
    assert "plan" in result.stdout


def test_writing_over_the_input_is_refused(tmp_path: Path) -> None:
    """--results or --out naming the input itself is a usage error; the sheet is untouched."""
    path = tmp_path / "c.csv"
    path.write_text(HEADER + "\n1,1,4,1\n")
    for command, flag in (("validate", "--results"), ("plan", "--out")):
        code, out, err = invoke(command, path, flag, path)
        assert code == 2
        assert out == ""
        assert f"{flag} {path} is the input file" in err
    assert path.read_text() == HEADER + "\n1,1,4,1\n"
