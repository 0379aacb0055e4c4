"""`reroute jobs check`: one line per job, its problems, and the exit status for CI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from batch.cli import app
from batch.journal.lock import RunLock

REPO = Path(__file__).resolve().parents[2]
HEADER = "routing_id,for_inbound_call,for_outbound_call,status,inbound_sip_trunk_id,ticket\n"
GOOD_ROWS = "1,1,4,1,,T-1\n2,2,4,1,77,T-2\n3,1,4,0,,T-3\n"
BAD_ROW = "4,2,4,1,,T-4\n"  # SIP inbound without its trunk id: MISSING_TARGET
KEY = "rg_live_" + "Zx81Qp0LmN4vB7tY2sK9"


def make_job(
    folder: Path, name: str, body: str = "", *, rows: str = GOOD_ROWS, complete: bool = True
) -> Path:
    """A job file named ``name`` with its own input file beside it; ``complete``: it states
    that its rows are complete records (a job for a real host says how records are replaced)."""
    data = folder / f"{Path(name).stem}.csv"
    data.write_text(HEADER + rows)
    if complete:
        statement = "rows_are_complete = true\n"
        body = (body.replace("[safety]\n", "[safety]\n" + statement) if "[safety]\n" in body
                else f"{body}[safety]\n{statement}")  # fmt: skip
    path = folder / name
    path.write_text(f'input = "{data.name}"\n{body}')
    return path


def check(*paths: Path | str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    env = {"VOCOBASE_API_KEY": None, "REROUTE_BASE_URL": None, **(env or {})}
    result = CliRunner().invoke(app, ["jobs", "check", *map(str, paths)], env=env)
    return result.exit_code, result.output


def test_good_job_is_one_ok_line_with_the_plan(tmp_path: Path) -> None:
    """A good job prints rows, what would be sent where and how fast, window and results."""
    body = '[pace]\nrate = "30/min"\nconcurrency = 2\n'
    code, out = check(make_job(tmp_path, "good.toml", body), env={"VOCOBASE_API_KEY": KEY})
    assert code == 0
    first = out.splitlines()[0]
    assert first.startswith(f"{tmp_path / 'good.toml'}: ok: 3 rows, 3 valid, 0 invalid;")
    assert "would send 3 requests to https://api.vocobase.com/api/v2 at 30/min" in first
    assert "(concurrency 2, about 4s)" in first
    assert "window none" in first
    assert f"results {tmp_path / 'good.results.csv'}" in first
    assert "problem" not in out
    assert KEY not in out


def test_missing_key_variable_is_a_note_not_a_failure(tmp_path: Path) -> None:
    """Checking in CI without the key works; the note names the variable the job uses."""
    body = 'description = "CHG-1 move trunks"\n[target]\napi_key_env = "ACME_KEY"\n'
    code, out = check(make_job(tmp_path, "j.toml", body))
    assert code == 0
    assert out.splitlines()[1] == "  about: CHG-1 move trunks"
    assert "note: ACME_KEY is not set here" in out


def test_invalid_rows_exit_1_and_are_listed(tmp_path: Path) -> None:
    """Invalid rows: exit 1, counts per code, and each row's message."""
    code, out = check(make_job(tmp_path, "bad-rows.toml", rows=GOOD_ROWS + BAD_ROW))
    assert code == 1
    assert ": invalid rows: 4 rows, 3 valid, 1 invalid;" in out
    assert "problem: 1 invalid rows (MISSING_TARGET 1): the run would send nothing" in out
    assert "problem: row 4 (line 5), field inbound_sip_trunk_id" in out


def test_skip_invalid_is_reported(tmp_path: Path) -> None:
    """With skip_invalid the problem line says the rows would be skipped."""
    body = "[safety]\nskip_invalid = true\n"
    code, out = check(make_job(tmp_path, "skip.toml", body, rows=GOOD_ROWS + BAD_ROW))
    assert code == 1
    assert "skipped by [safety].skip_invalid" in out


def test_unusable_job_exits_2_naming_the_key(tmp_path: Path) -> None:
    """An unknown key makes the job unusable: exit 2, the file and key named, no traceback."""
    code, out = check(make_job(tmp_path, "typo.toml", '[pace]\nrat = "60/min"\n'))
    assert code == 2
    assert out.splitlines()[0] == f"{tmp_path / 'typo.toml'}: unusable"
    assert "problem: key [pace].rat: unknown key (did you mean rate?)" in out
    assert "Traceback" not in out


def test_unreadable_input_is_unusable(tmp_path: Path) -> None:
    """An input file that cannot be read as a table makes the job unusable."""
    path = make_job(tmp_path, "broken.toml")
    (tmp_path / "broken.csv").write_text("nothing,useful\n1,2\n")
    code, out = check(path)
    assert code == 2
    assert "broken.csv" in out


def test_a_key_in_a_job_is_refused_and_never_printed(tmp_path: Path) -> None:
    """A job holding a key is unusable and the output does not repeat the key."""
    code, out = check(make_job(tmp_path, "leak.toml", f'[target]\napi_key_env = "{KEY}"\n'))
    assert code == 2
    assert "looks like an API key" in out
    assert KEY not in out


def test_worst_job_decides_the_exit_status(tmp_path: Path) -> None:
    """Several jobs: every one is reported, and the exit status is the worst of them."""
    good = make_job(tmp_path, "a.toml")
    invalid = make_job(tmp_path, "b.toml", rows=BAD_ROW)
    unusable = make_job(tmp_path, "c.toml", "nope = 1\n")
    code, out = check(good, invalid, unusable)
    assert code == 2
    assert [line.split(": ")[1] for line in out.splitlines() if not line.startswith(" ")] == [
        "ok",
        "invalid rows",
        "unusable",
    ]
    assert check(good, invalid)[0] == 1


def test_closed_window_and_a_window_too_short_are_noted(tmp_path: Path) -> None:
    """A one-off window already past makes the job unusable (a run would send nothing); one
    too short for the rows at the pace is said plainly."""
    past = '[window]\nnot_after = "2020-01-01T05:00:00+00:00"\n'
    code, out = check(make_job(tmp_path, "past.toml", past))
    assert code == 2
    assert "past.toml: unusable" in out
    assert "the change window ended at 2020-01-01 05:00:00 UTC (a one-off window" in out
    assert "give the next agreed window" in out
    short = (
        '[pace]\nrate = "1/h"\n[window]\nnot_before = "2030-01-01T01:00:00+00:00"\n'
        'not_after = "2030-01-01T02:00:00+00:00"\n'
    )
    code, out = check(make_job(tmp_path, "short.toml", short))
    assert code == 0
    assert "window 2030-01-01 01:00:00 UTC -> 2030-01-01 02:00:00 UTC" in out
    assert "note: 3 rows at 1/h need about 2h 00m 00s" in out
    assert "after the window closes at 2030-01-01 02:00:00 UTC" in out


def test_daily_window_shows_the_next_night(tmp_path: Path) -> None:
    """A daily window is shown as the next occurrence."""
    body = '[window]\nnot_before = "01:00:00+00:00"\nnot_after = "05:00:00+00:00"\n'
    _, out = check(make_job(tmp_path, "nightly.toml", body))
    assert "window every night, " in out
    assert "01:00:00 UTC -> 20" in out


def test_a_job_running_now_is_noted_with_its_holder(tmp_path: Path) -> None:
    """If a run of the job holds the lock, check says so and names the holder."""
    path = make_job(tmp_path, "busy.toml")
    with RunLock(tmp_path / "busy.results.csv"):
        code, out = check(path)
    assert code == 0
    assert "note: running now:" in out
    assert "pid " in out


@pytest.mark.parametrize("path", sorted((REPO / "jobs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_jobs_check_clean(path: Path) -> None:
    """Every job file in jobs/ checks with exit 0."""
    code, out = check(path)
    assert code == 0, out
    assert ": ok: " in out


def test_a_job_for_a_real_host_says_how_records_are_replaced(tmp_path: Path) -> None:
    """Issue 25: a job for a real host with neither [safety].current nor
    [safety].rows_are_complete is unusable (its run would send nothing), with the run's message;
    the same job for a loopback host needs neither."""
    code, out = check(make_job(tmp_path, "bare.toml", complete=False))
    assert code == 2
    assert "bare.toml: unusable" in out
    assert "api.vocobase.com is a real host and the update replaces the whole record" in out
    assert "[safety].rows_are_complete = true" in out
    assert f"reroute plan {tmp_path / 'bare.csv'} --current SNAPSHOT" in out
    local = '[target]\nbase_url = "http://127.0.0.1:8787/api/v2"\n'
    code, out = check(make_job(tmp_path, "local.toml", local, complete=False))
    assert code == 0, out
