"""How an invocation ends: the results file merged by row number and written, the audit files
beside it, the segment closed, and the :class:`Status` that says what happened (each with its
exit status)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from batch.engine import runtrail
from batch.engine.guards import BudgetUse, BudgetWatch
from batch.engine.merge import Summary, merge_results
from batch.engine.rowloop import RunReport
from batch.engine.stop import StopRequest
from batch.errors import RerouteError
from batch.journal.journal import Journal
from batch.model import Exit, RowResult
from batch.prepare.batch import Batch
from batch.settings import RunSettings
from batch.sheets.rownames import BY_NUMBER, RowNames

if TYPE_CHECKING:
    import polars as pl


class Status(StrEnum):
    """How an invocation ended (the command line maps each to an exit status)."""

    SUCCEEDED = "succeeded"  # every row succeeded (or was skipped on purpose)
    SOME_FAILED = "some_failed"  # finished; some rows did not succeed, none left to send
    STOPPED = "stopped"  # stopped early with rows left to send: the same command resumes
    NOT_CONFIRMED = "not_confirmed"  # the operator said no: nothing sent, nothing forgotten
    REFUSED = "refused"  # the account check rejected rows (no --skip-invalid): nothing sent
    RESULTS_NOT_WRITTEN = "results_not_written"  # sent, but the results file failed to write

    @property
    def exit_status(self) -> int:
        """The contract's exit status for this ending."""
        return int(_EXIT_STATUS[self])


_EXIT_STATUS = {
    Status.SUCCEEDED: Exit.OK,
    Status.SOME_FAILED: Exit.SOME_FAILED,
    Status.NOT_CONFIRMED: Exit.NOTHING_SENT,
    Status.REFUSED: Exit.NOTHING_SENT,
    Status.STOPPED: Exit.STOPPED,
    Status.RESULTS_NOT_WRITTEN: Exit.RESULTS_NOT_WRITTEN,
}


@dataclass(frozen=True)
class Result:
    """What happened, for the summary and the exit status."""

    status: Status
    summary: Summary
    report: RunReport | None  # None: nothing was sent this time
    requests: int  # requests sent by this invocation
    results: Path
    host: str
    error_budget: str = "error budget: off"
    message: str = ""  # why nothing was sent, or why the results file is missing
    journaled: bool = True  # a journal holds the run (its report can be made); False: none yet
    budget: BudgetUse | None = None  # the error budget as values (None: nothing was sent)
    row_names: RowNames = BY_NUMBER  # the rows as an editor shows them (sheets.rownames)


def finish(
    settings: RunSettings,
    batch: Batch,
    journal: Journal,
    report: RunReport,
    requests: int,
    budget: BudgetWatch,
    host: str,
    note: Callable[[str], None],
) -> Result:
    """Merge, write the results file, tally, and say how the invocation ended."""
    message = ""
    summary, reason = _written(
        settings.results, lambda: merge_results(batch.plan.base(), journal), batch.passthrough
    )
    if reason:
        message = (
            f"the results file {settings.results} could not be written ({reason}); every "
            f"outcome is kept in {journal.path.name}: fix that, then run the same command "
            "again to write it (nothing already decided is sent again)"
        )
        status = Status.RESULTS_NOT_WRITTEN
    else:
        status = _status(summary, report)
        # Finished: a new input at this results path may start a new run (issue 17).
        journal.set_meta("finished", None if summary.left else "1")
    stopped = report.stopped
    journal.end_segment(f"{stopped.reason}: {stopped.message}" if stopped else "finished",
                        status.exit_status)  # fmt: skip
    if status is not Status.RESULTS_NOT_WRITTEN:
        _write_trail(settings.results, journal, summary, status, note)
    journal.remember_applied()
    return Result(
        status, summary, report, requests, settings.results, host, budget.describe(), message,
        budget=budget.use(), row_names=batch.row_names,
    )  # fmt: skip


def stopped_before_sending(
    settings: RunSettings,
    batch: Batch,
    journal: Journal | None,
    stop: StopRequest,
    host: str,
    *,
    previous: bool,
) -> Result:
    """The run stopped before its first update (in the account check): exit 3 when rows are
    left to send, as a stop while sending is. The results file says where every row stands (the rows
    this run would send ``not_attempted``; a continued run's journal merged in), unless it still
    holds a previous run's results (``previous``: a new input, or --fresh, not yet confirmed): those
    are destroyed by nobody before the run goes on. No journal is made: nothing was sent, so the
    same command, or a corrected one, starts cleanly."""

    def rows() -> Iterator[RowResult]:
        base = batch.plan.base()
        return base if journal is None else merge_results(base, journal)

    message = ""
    if previous:
        summary = _tallied(rows())
        message = (
            f"{settings.results} still holds the previous run's results (kept: this run sent "
            "nothing)"
        )
    else:
        summary, reason = _written(settings.results, rows, batch.passthrough)
        if reason:
            message = f"the results file {settings.results} could not be written ({reason})"
    report = RunReport(0, {}, stop, 0.0)
    # Stopped only with rows left to send: a run with none left says how it ended (0 or 1).
    return Result(_status(summary, report), summary, report, 0, settings.results, host,
                  message=message, journaled=journal is not None,
                  row_names=batch.row_names)  # fmt: skip


def _written(
    results: Path, rows: Callable[[], Iterable[RowResult]], passthrough: pl.DataFrame
) -> tuple[Summary, str]:
    """Write the results file from ``rows()``: the summary of every row, and "" or why the
    file could not be written (the summary is then tallied from a second pass)."""
    from batch.sheets.results import write_results

    summary = Summary()
    try:
        write_results(results, summary.tally(rows()), passthrough)
    except (OSError, RerouteError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _tallied(rows()), reason
    return summary, ""


def _tallied(rows: Iterable[RowResult]) -> Summary:
    summary = Summary()
    for _ in summary.tally(rows):
        pass
    return summary


def _write_trail(
    results: Path, journal: Journal, summary: Summary, status: Status, note: Callable[[str], None]
) -> None:
    """The attempts file and run.json beside the results file. Should either fail, the run's
    outcome stands (the results file is written): the journal keeps the whole trail."""
    try:
        runtrail.write_attempts(results, journal.attempt_records())
        runtrail.write_run_json(
            results, journal, outcomes={str(k): v for k, v in summary.counts.items()},
            status=str(status), exit_status=status.exit_status,
        )  # fmt: skip
    except (OSError, RerouteError) as exc:
        note(
            f"the audit files beside {results.name} could not be written ({exc}); the journal "
            f"{journal.path.name} keeps every request (reroute report reads it)"
        )


def _status(summary: Summary, report: RunReport) -> Status:
    """All succeeded; else stopped with rows left to send (resumable); else some failed. A run
    with nothing left to send is never "stopped", whatever stopped it."""
    if summary.all_succeeded:
        return Status.SUCCEEDED
    if report.stopped is not None and summary.left:
        return Status.STOPPED
    return Status.SOME_FAILED
