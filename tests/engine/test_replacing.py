"""Safe by default against a real host (batch.engine.replacing): the refusal without a replace
choice, the choice kept for the run's resumes and retries, and the words of the question."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.config.resolve import record_of
from batch.engine.replacing import Confirmation, chosen, refusal
from batch.engine.target import Target
from batch.errors import UsageError
from batch.journal.journal import Journal
from batch.journal.record import RunIdentity, RunRecord
from batch.prepare.effects import Tally
from batch.settings import Rate, RunSettings

REAL = Target("https://api.example.com/api/v2", "k", "api.example.com", sandbox=False)
LOOPBACK = Target("http://127.0.0.1:8787/api/v2", "k", "127.0.0.1", sandbox=False)
SANDBOX = Target("http://127.0.0.1:40000/api/v2", None, "127.0.0.1", sandbox=True)


def record(kind: str = "run", **settings: object) -> RunRecord:
    return RunRecord(kind=kind, input="changes.csv", settings=settings)


# -- the choice --------------------------------------------------------------------------------


def test_a_real_host_without_a_choice_is_refused_with_both_ways() -> None:
    """Neither --current nor --rows-are-complete: a UsageError (exit 2) naming both ways, the
    job keys and the plan command for this input."""
    with pytest.raises(UsageError) as refused:
        chosen(record(), None, REAL)
    message = str(refused.value)
    assert message.startswith("api.example.com is a real host and the update replaces the whole")
    assert "--current SNAPSHOT" in message
    assert "--fill-from-current" in message
    assert "--rows-are-complete if every row is the complete record you want" in message
    assert "[safety].current or [safety].rows_are_complete = true" in message
    assert message.endswith("To see what would change: reroute plan changes.csv --current SNAPSHOT")


def test_the_plan_command_quotes_the_input_for_the_shell() -> None:
    """An input path with a space is quoted, so the printed command runs as printed."""
    message = refusal("api.example.com", RunRecord(kind="run", input="my changes.csv"))
    assert "reroute plan 'my changes.csv' --current SNAPSHOT" in message


def test_a_retry_without_a_choice_says_the_run_did_not_say() -> None:
    """A retry whose run left no choice (no journal, or a sandbox run retried against a real
    host): the statement, or the input run again with a snapshot."""
    with pytest.raises(UsageError) as refused:
        chosen(record("retry"), None, REAL)
    message = str(refused.value)
    assert "the run that wrote changes.csv did not say" in message
    assert "pass --rows-are-complete" in message
    assert "run the input again with --current SNAPSHOT" in message


@pytest.mark.parametrize("target", [LOOPBACK, SANDBOX], ids=["loopback", "sandbox"])
def test_loopback_and_the_sandbox_need_no_choice(target: Target) -> None:
    """Today's behaviour there: no choice needed, the record unchanged."""
    assert chosen(record(), None, target) == record()


@pytest.mark.parametrize(
    ("given", "choice"),
    [({"current": "now.csv"}, "--current"), ({"rows_are_complete": True}, "--rows-are-complete")],
)
def test_either_way_is_a_choice(given: dict[str, object], choice: str) -> None:
    """A snapshot or the statement lets the run go on, and the record says which."""
    assert chosen(record(**given), None, REAL).replace_choice == choice


def journal_of(tmp_path: Path, kept: RunRecord) -> Journal:
    journal = Journal.open(tmp_path / "out.csv.journal", RunIdentity("x", "u", "r"))
    journal.set_meta("settings", kept.to_json())
    return journal


def test_a_resume_takes_the_choice_its_run_made(tmp_path: Path) -> None:
    """The run's own journal said --rows-are-complete: the resume, without the flag, goes on,
    and its record keeps the choice (the next resume finds it again)."""
    with journal_of(tmp_path, record(rows_are_complete=True)) as journal:
        resumed = chosen(record(), journal, REAL)
    assert resumed.replace_choice == "--rows-are-complete"
    assert resumed.settings["current"] is None


def test_a_retry_record_keeps_the_runs_snapshot_choice(tmp_path: Path) -> None:
    """record_of for a retry carries the run's choice (its snapshot), and a retry of that retry
    carries it on; a run's record never takes another's."""
    settings = RunSettings(input=tmp_path / "out.csv", results=tmp_path / "second.csv")
    run = record(current="now.csv")
    retry = record_of(settings, kind="retry", sandbox=False, earlier=run)
    assert (retry.replace_choice, retry.settings["current"]) == ("--current", "now.csv")
    again = record_of(settings, kind="retry", sandbox=False, earlier=retry)
    assert again.replace_choice == "--current"
    assert record_of(settings, kind="run", sandbox=False, earlier=run).replace_choice is None


# -- the words of the question -----------------------------------------------------------------


def confirmation(**facts: object) -> Confirmation:
    given: dict[str, object] = {"rows": 40, "host": "api.example.com", "rate": Rate(60, 60.0),
                                "concurrency": 4}  # fmt: skip
    return Confirmation(**(given | facts))  # type: ignore[arg-type]


def test_with_a_snapshot_the_question_counts_changes_and_clears_and_names_the_rollback() -> None:
    """Snapshot known: N records replaced, M of them changing against it, K values cleared,
    and where the rollback file is."""
    sending = confirmation(
        tally=Tally(changing=9, unknown=0, cleared=0), snapshot=Path("current.csv"),
        rollback=Path("rollback.csv"),
    )  # fmt: skip
    assert sending.describe() == (
        "40 records to replace on api.example.com at 60/min (concurrency 4), about 40s: 9 of "
        "them change against current.csv, 0 values cleared; rollback file: rollback.csv "
        "(written before the first request)"
    )


def test_with_a_snapshot_unknown_records_and_no_rollback_file_are_said() -> None:
    """A wipe sent with --allow-wipe, records not in the snapshot, and no --rollback: said."""
    sending = confirmation(
        rows=1, applied=2, tally=Tally(changing=1, unknown=1, cleared=1),
        snapshot=Path("current.csv"),
    )  # fmt: skip
    assert sending.describe() == (
        "1 record to replace on api.example.com (2 already applied, not sent) at 60/min "
        "(concurrency 4), about 1s: 1 of them change against current.csv, 1 value cleared, 1 "
        "not in the snapshot; no rollback file (--rollback PATH writes one)"
    )


def test_without_a_snapshot_the_question_says_what_is_not_known() -> None:
    """--rows-are-complete: which records change is not known; the rows sending no connection id
    are counted; a rollback file needs a snapshot."""
    sending = confirmation(tally=Tally(changing=None, unknown=0, cleared=3))
    assert sending.describe() == (
        "40 records to replace on api.example.com at 60/min (concurrency 4), about 40s: no "
        "snapshot, so how many of them change is not known; 3 of them send no connection_id "
        "(any the record holds is cleared); no rollback file (it needs --current)"
    )


def test_a_retry_resends_what_the_results_file_recorded() -> None:
    """A retry: the requests as recorded, no rollback file."""
    assert confirmation(rows=2, retry=True).describe() == (
        "2 records to replace on api.example.com at 60/min (concurrency 4), about 2s: each with "
        "the request the results file recorded; no rollback file"
    )
