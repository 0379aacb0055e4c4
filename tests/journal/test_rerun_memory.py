"""The row-level memory (batch.journal.applied) vouches only for what is known: a body applied once
is not "already applied" after a later attempt with another body may have changed the record."""

from __future__ import annotations

import signal
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from batch.journal.applied import count_applied
from batch.journal.journal import Journal, journal_path
from batch.journal.record import RunIdentity
from batch.model import Call, Outcome, RowResult
from batch.sandbox.config import Faults
from tests.cli.test_run import HEADER, invoke, read, run_args
from tests.conftest import StartSandbox
from tests.engine.test_resume import command, start, wait_until

RID = 1001
ACTIVE = f"{HEADER}\n{RID},1,2,1,501,T-1\n"
INACTIVE = f"{HEADER}\n{RID},1,2,0,501,T-1\n"
BASE = "http://127.0.0.1:9/api/v2"


@pytest.mark.slow
def test_a_failed_attempt_with_another_body_makes_the_memory_forget_the_record(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Applied status 1, then status 0 stored but the row failed: putting status 1 back sends it."""
    # Request 2 (run 2) is stored but its connection drops; request 3 answers 500.
    sandbox = start_sandbox(script={RID: ("ok", "drop", "500")})
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(ACTIVE)
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 0
    source.write_text(INACTIVE)
    second = invoke(*run_args(sandbox, source, out, "--max-attempts", "2"), key=sandbox.api_key)
    assert second.exit_code == 1, second.output
    assert read(out)["outcome"].to_list() == ["failed"]
    assert sandbox.record(RID)["status"] == 0  # type: ignore[index]
    source.write_text(ACTIVE)
    third = invoke(*run_args(sandbox, source, out), key=sandbox.api_key)
    assert third.exit_code == 0, third.output
    frame = read(out)
    assert frame["outcome"].to_list() == ["succeeded"]
    assert frame["attempts"].to_list() == ["1"]
    assert sandbox.record(RID)["status"] == 1  # type: ignore[index]
    assert sandbox.stats()["total"] == 4


@pytest.mark.slow
def test_abandoning_a_run_with_an_unknown_row_makes_the_memory_forget_the_record(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    """Applied status 1; status 0 stored, in flight at kill -9; --abandon-previous with status 1
    back sends it."""
    sandbox = start_sandbox(script={RID: ("ok", "slow")}, faults=Faults(slow_seconds=60.0))
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(ACTIVE)
    assert invoke(*run_args(sandbox, source, out), key=sandbox.api_key).exit_code == 0
    source.write_text(INACTIVE)
    proc = start(command(sandbox, source, out), sandbox.api_key)
    try:
        wait_until(lambda: sandbox.record(RID)["status"] == 0)  # type: ignore[index]
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    source.write_text(ACTIVE)
    third = invoke(*run_args(sandbox, source, out, "--abandon-previous"), key=sandbox.api_key)
    assert third.exit_code == 0, third.output
    assert read(out)["outcome"].to_list() == ["succeeded"]
    assert sandbox.record(RID)["status"] == 1  # type: ignore[index]


def _journal(tmp_path: Path, body: str) -> tuple[Path, RunIdentity]:
    source = tmp_path / "in.csv"
    source.write_text(body)
    return journal_path(tmp_path / "out.csv"), RunIdentity.of(source, BASE, tmp_path / "out.csv")


def _result(outcome: Outcome, body: str, attempts: int = 1) -> RowResult:
    return RowResult(1, str(RID), outcome, 200 if outcome is Outcome.SUCCEEDED else 500,
                     attempts=attempts, request=body)  # fmt: skip


@pytest.mark.parametrize(
    ("outcome", "body", "attempts", "vouched"),
    [
        (Outcome.FAILED, '{"status":0}', 2, False),  # another body, sent: may have landed
        (Outcome.UNKNOWN, '{"status":0}', 1, False),  # another body, answer never came
        (Outcome.FAILED, '{"status":1}', 1, True),  # the same body: the record holds it anyway
        (Outcome.NOT_ATTEMPTED, '{"status":0}', 0, True),  # never sent: nothing changed
        (Outcome.SUCCEEDED, '{"status":0}', 1, False),  # another body applied: that one counts
    ],
)
def test_the_memory_vouches_only_while_no_later_attempt_could_have_changed_the_record(
    tmp_path: Path, outcome: Outcome, body: str, attempts: int, vouched: bool
) -> None:
    """Folding a run into the memory keeps a body only if no sent attempt of another body
    followed it for that routing id and target."""
    path, first = _journal(tmp_path, "a")
    applied = Call(row=1, routing_id=RID, body='{"status":1}')
    with Journal.open(path, first) as journal:
        journal.record(_result(Outcome.SUCCEEDED, applied.body))
        journal.remember_applied()
        assert journal.applied_at(applied) is not None
        _, second = _journal(tmp_path, "b")
        journal.start_run(second)
        journal.record(_result(outcome, body, attempts))
        journal.remember_applied()
        assert (journal.applied_at(applied) is not None) is vouched


def test_plan_counts_by_the_memory_as_the_next_run_would_fold_it(tmp_path: Path) -> None:
    """`plan --results` reads a journal whose last run was never folded (killed): a record that
    run sent another body for is not counted as applied."""
    path, first = _journal(tmp_path, "a")
    with Journal.open(path, first) as journal:
        journal.record(_result(Outcome.SUCCEEDED, '{"status":1}'))
        journal.remember_applied()
        _, second = _journal(tmp_path, "b")
        journal.start_run(second)
        journal.record(_result(Outcome.UNKNOWN, '{"status":0}'))
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM applied").fetchone() == (1,)  # not yet folded
    assert count_applied(tmp_path / "out.csv", [(RID, '{"status":1}')]) == (0, BASE)
