"""The verdict first, and what to run next: in words and as commands that run as printed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from batch.report import data, flags, render, write_report
from batch.report.verdict import NOTHING_TO_DO, Tone, verdict
from tests.report_fixtures import make_run

UV = ("uv", "run", "reroute")


def _stop_last_segment(journal: Path, reason: str) -> None:
    db = sqlite3.connect(journal)
    db.execute(
        "UPDATE segments SET exit_status = 3, stop_reason = ? "
        "WHERE segment = (SELECT max(segment) FROM segments)",
        (reason,),
    )
    db.commit()
    db.close()


def _set_record(journal: Path, **values: object) -> None:
    db = sqlite3.connect(journal)
    (text,) = db.execute("SELECT value FROM meta WHERE key = 'settings'").fetchone()
    db.execute(
        "UPDATE meta SET value = ? WHERE key = 'settings'", (json.dumps(json.loads(text) | values),)
    )
    db.commit()
    db.close()


def test_every_row_succeeded_and_nothing_to_do(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", failed=frozenset(), invalid=frozenset())
    v = verdict(data.read(made.results), UV)
    assert (v.tone, v.line, v.resume) == (Tone.GOOD, "40 of 40 succeeded", None)
    assert [(s.text, s.command) for s in v.next] == [(NOTHING_TO_DO, None)]


def test_a_run_that_had_nothing_to_send_says_so(tmp_path: Path) -> None:
    """Every row left out (already applied, or unchanged): not "0 of 40 succeeded"."""
    made = make_run(tmp_path / "out.csv", failed=frozenset(), invalid=frozenset())
    db = sqlite3.connect(made.journal)
    db.execute("UPDATE rows SET outcome = 'skipped'")
    db.commit()
    db.close()
    made.results.unlink()  # the outcomes from the journal
    v = verdict(data.read(made.results), UV)
    assert (v.tone, v.line) == (
        Tone.GOOD,
        "nothing to send: all 40 rows were already as wanted (skipped)",
    )


def test_the_approved_plan_is_in_the_provenance(tmp_path: Path) -> None:
    """A run given --approved-plan (its record holds the hash): the report names it."""
    made = make_run(tmp_path / "out.csv")
    _set_record(made.journal, approved_plan="ef" * 32)
    assert f"- **Approved plan:** {'ef' * 32}" in render(made.results, "md")


def test_failures_give_the_retry_command_and_invalid_rows_a_fix(tmp_path: Path) -> None:
    """ "37 of 40 succeeded, 2 failed, 1 invalid": retry the failed rows (started as this
    process was: uv run), fix the invalid one in the input."""
    made = make_run(tmp_path / "out dir; x.csv")
    v = verdict(data.read(made.results), UV)
    assert (v.tone, v.line) == (Tone.BAD, "37 of 40 succeeded, 2 failed, 1 invalid")
    retry, fix = v.next
    assert retry.command == f"uv run reroute retry '{made.results}'"
    assert fix.command is None
    assert fix.text.startswith("Fix the 1 invalid rows in changes.csv and run it again")


def test_a_run_stopped_early_says_why_how_many_are_left_and_how_to_resume(
    tmp_path: Path,
) -> None:
    """ "stopped early: window closed, 10 rows left — resume with …", the same command with
    what the run must send again (its snapshot and switches), in the page and the Markdown."""
    made = make_run(tmp_path / "out.csv", not_attempted=frozenset(range(31, 41)))
    _stop_last_segment(made.journal, "window_closed: the change window closed at 05:00")
    _set_record(made.journal, current="now.csv", fill_from_current=True)
    v = verdict(data.read(made.results), UV)
    assert (v.tone, v.line) == (Tone.STOPPED, "stopped early: window closed, 10 rows left")
    resume = (
        f"uv run reroute run changes.csv --results {made.results} --current now.csv "
        "--fill-from-current"
    )
    assert v.resume == resume
    assert [s.command for s in v.next] == [resume]
    text = render(made.results, "md", started=UV)
    assert text.startswith(
        f"**stopped early: window closed, 10 rows left** — resume with `{resume}`\n"
    )
    page = write_report(made.results, started=UV).read_text()
    assert f'<div class="resume">resume with <code>{resume}</code></div>' in page


def test_a_job_resumes_by_its_job_file(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", not_attempted=frozenset({40}))
    _stop_last_segment(made.journal, "error_budget: too many rows failed")
    _set_record(made.journal, job="jobs/night.toml")
    v = verdict(data.read(made.results), ("reroute",))
    assert v.line == "stopped early: error budget, 1 rows left"
    assert v.resume == "reroute run jobs/night.toml"


def test_a_run_not_finished_may_still_be_going(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", finished=False, write_results_file=False)
    v = verdict(data.read(made.results), ("reroute",))
    assert v.tone is Tone.RUNNING
    assert v.line.startswith("not finished: 37 of 39 succeeded")
    assert v.next[0].text == "If it is no longer running, resume it:"
    assert v.next[0].command == f"reroute run changes.csv --results {made.results}"


def test_settings_are_shown_as_flags_in_their_forms_chosen_ones_first() -> None:
    """`--max-outage 15m`, yes/no, the budget as written; defaults after the chosen ones."""
    shown = flags.shown(
        {
            "max_outage": 900.0,
            "rate": "20/s",
            "timeout": 30.0,
            "fill_from_current": True,
            "allow_wipe": False,
            "error_budget": "5% of the last 100 finished rows",
            "account_check": None,
            "kind": "run",
        }
    )
    assert [(s.flag, s.value, s.default) for s in shown] == [
        ("--rate", "20/s", False),
        ("--fill-from-current", "yes", False),
        ("--error-budget", "5%", False),
        ("--timeout", "30", True),
        ("--max-outage", "15m", True),
        ("--allow-wipe", "no", True),
        ("--account-check", "auto (a real host only)", True),
    ]
    assert shown[0].job_key == "[pace] rate"


def test_the_page_shows_settings_as_flags_not_python(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    page = write_report(made.results).read_text()
    settings = page[page.index('<section id="settings">') : page.index('<section id="provenance">')]
    assert "<td>--rate</td><td>20/s</td><td>[pace] rate</td>" in settings
    assert "False" not in settings
    assert "900.0" not in settings
    assert "**Settings chosen:** --base-url http://127.0.0.1:9/api/v2, --rate 20/s" in render(
        made.results, "md"
    )
