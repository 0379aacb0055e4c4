"""Prepare: the engine's input, built from an input sheet (`run`) or a results file (`retry`).

A :class:`Batch` is what one invocation sends, whatever the rows came from: its plan (the
requests, each built once, and every row as it stands before sending: ``batch.prepare.plan``)
and what the results file and the run's identity need besides. ``run``, ``retry`` and a job
file are three ways to build one; the engine (``batch.engine.invocation``) does the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from batch.errors import UsageError
from batch.invoked import INSTALLED, command
from batch.journal.record import sha256_file
from batch.model import RESULT_COLUMNS, RETRYABLE_OUTCOMES, Call, Outcome, RowResult
from batch.prepare.current import gate
from batch.prepare.cutover import read_checked, refuse_overwrites, require_current
from batch.prepare.effects import Effects, judged, unjudged
from batch.prepare.plan import Plan, plan_of
from batch.prepare.validate import Validation
from batch.settings import RunSettings
from batch.sheets.rownames import BY_NUMBER, META_KEY, RowNames


@dataclass(frozen=True)
class Batch:
    """What one invocation sends: ``plan`` (its calls and every row before sending, in row
    order), and what the results file (``passthrough``) and the run's identity need."""

    plan: Plan
    passthrough: pl.DataFrame
    kind: str = "run"  # "run" or "retry"
    # retry: attempts and first send per row, read from the results file (Journal.carry)
    carried: dict[int, tuple[int, datetime | None]] = field(default_factory=dict)
    # what the snapshot adds to the run's identity (its content), "" without --current
    snapshot: str = ""
    # what each row's request does to its record (batch.prepare.effects), for the question
    # before a real run; made only when asked (None: a retry, whose requests are as recorded)
    effects: Callable[[], Effects] | None = None
    # the rollback file, written just before the first request; returns the note to show
    before_sending: Callable[[], str] | None = None
    notes: tuple[str, ...] = ()  # what preparing found worth telling (the snapshot's verdicts)
    # the input's rows as an editor or a spreadsheet shows them (batch.sheets.rownames)
    row_names: RowNames = BY_NUMBER

    @property
    def candidates(self) -> int:
        """The requests this invocation may send (before a resume leaves some out)."""
        return len(self.plan.calls)


def batch_for_run(
    settings: RunSettings, *, started: Sequence[str] = INSTALLED
) -> tuple[Batch, Validation]:
    """Read and check the input (against the snapshot with --current): the batch to send and
    its validation (wipes refused unless --allow-wipe). ``started``: how the rollback file's
    command starts (batch.invoked)."""
    refuse_overwrites(
        settings.input,
        settings.current,
        ((settings.rollback, "--rollback"), (settings.results, "--results")),
    )
    if settings.rollback is not None and settings.rollback.resolve() == settings.results.resolve():
        raise UsageError(f"--rollback {settings.rollback} is the results file; use another path")
    require_current(
        settings.current,
        {
            "--allow-wipe": settings.allow_wipe,
            "--skip-unchanged": settings.skip_unchanged,
            "--rollback": settings.rollback,
        },
    )
    checked = read_checked(
        settings.input,
        current=settings.current,
        fill=settings.fill_from_current,
        connection_id=settings.connection_id,
        reading=settings.reading,
    )
    v, passthrough = checked.validation, checked.table.passthrough_frame()
    read_notes = checked.table.notes  # which sheet of a workbook was read
    names = checked.table.row_names
    if checked.current is None:
        return Batch(
            plan_of(v), passthrough, notes=read_notes, effects=lambda: unjudged(v),
            row_names=names,
        ), v  # fmt: skip
    g = gate(
        v, checked.current, allow_wipe=settings.allow_wipe, skip_unchanged=settings.skip_unchanged
    )
    counts = ", ".join(f"{verdict.value} {n}" for verdict, n in g.diff.counts().items() if n)
    rollback_path, snapshot = settings.rollback, checked.current.path

    def write_rollback() -> str:
        from batch.prepare.rollback import write_rollback

        assert rollback_path is not None
        restored = write_rollback(rollback_path, g.diff, include=g.send_mask())
        return (
            f"rollback of {restored} records written to {rollback_path} before sending: "
            f"`{command(started, 'run', rollback_path)}` puts them back as {snapshot} has them"
        )

    batch = Batch(
        plan=plan_of(g.validation, set(g.skipped_rows()), g.note),
        passthrough=passthrough,
        snapshot=sha256_file(checked.current.path),
        effects=lambda: judged(g.diff),
        before_sending=write_rollback if rollback_path is not None else None,
        notes=(*read_notes, f"against {checked.current.path}: {counts or 'no valid rows'}"),
        row_names=names,
    )
    return batch, g.validation


def batch_for_retry(results_file: Path) -> Batch:
    """The rows of a results file to send again (failed, unknown, not_attempted, with a
    recorded request), matched by ``row``: a file sorted or filtered in a spreadsheet is put
    back in row order first; a row number found twice is refused. Its rows are named as the
    run that wrote the file named them (its journal keeps how)."""
    from batch.journal.db import journal_path
    from batch.journal.record import meta_value
    from batch.sheets.results import read_results

    frame = read_results(results_file).sort("row", maintain_order=True)
    rows = frame.get_column("row")
    if rows.is_duplicated().any():
        twice = int(rows.filter(rows.is_duplicated())[0])
        raise UsageError(
            f"{results_file}: row {twice} appears more than once; a results file has one line "
            "per input row (was it edited by hand?)"
        )
    base = tuple(results_rows(frame))
    calls: list[Call] = []
    carried: dict[int, tuple[int, datetime | None]] = {}
    for result in base:
        call = _retry_call(result)
        if call is not None:
            calls.append(call)
            carried[call.row] = (result.attempts, result.started_at)  # what was sent before
    passthrough = [c for c in frame.columns if c not in RESULT_COLUMNS]
    return Batch(
        plan=Plan(tuple(calls), base),
        passthrough=frame.select(passthrough),
        kind="retry",
        carried=carried,
        row_names=RowNames.from_text(meta_value(journal_path(results_file), META_KEY)),
    )


def results_rows(frame: pl.DataFrame) -> Iterator[RowResult]:
    """The rows of a results frame (``read_results``: typed as RowResult's fields) as
    RowResults, in frame order."""
    for chunk in frame.select(RESULT_COLUMNS).iter_slices(10_000):
        for record in chunk.iter_rows(named=True):
            row = int(record["row"])
            outcome = _outcome(record["outcome"], row)
            attempts = record["attempts"] or 0
            yield RowResult(**{**record, "row": row, "outcome": outcome, "attempts": attempts})


def _retry_call(result: RowResult) -> Call | None:
    """The request to send again for a row of the file (None: not one to retry): the one it
    recorded, the same string."""
    routing_id = _routing_id(result.routing_id)
    if result.outcome in RETRYABLE_OUTCOMES and result.request and routing_id is not None:
        return Call(row=result.row, routing_id=routing_id, body=result.request)
    return None


def _outcome(value: object, row: int) -> Outcome:
    try:
        return Outcome(str(value))
    except ValueError:
        known = ", ".join(o.value for o in Outcome)
        raise UsageError(
            f"row {row}: outcome {value!r} is not one of {known} (was the file edited by hand?)"
        ) from None


def _routing_id(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if number.is_integer() and number >= 1 else None
