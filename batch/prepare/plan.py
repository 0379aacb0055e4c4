"""The plan stage: every request an invocation sends, each built once, as a value.

:class:`Plan` is what validation (and a snapshot's gate, a retry's results file, the account
check) leaves to send: the calls, and every row as it stands before sending. The engine reads
it several times (count, memory, the segment's sha256, sending, the results) and builds nothing
again.

The dry run writes the same requests to a plan file, and sends nothing. The plan file has one
JSON object per line, one per valid row, in input order:
``{"row", "routing_id", "method", "path", "body"}`` where ``body`` is the JSON object the
request carries, byte for byte what ``run`` will send. Planned against a snapshot of the
current records (``--current``), each line also has ``verdict`` (``change``, ``no_change``,
``wipes``, ``unknown_record``), ``changes`` (``["status: 0 -> 1", ...]``) and ``wipes`` (the
fields the update would erase).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from batch import voicelink as vl
from batch.model import Call, Outcome, RowResult
from batch.prepare.current import Diff
from batch.prepare.validate import Validation
from batch.sheets.results import atomic_file

_CHUNK: Final = 10_000  # rows turned into Python values at a time


@dataclass(frozen=True)
class Plan:
    """What an invocation sends, built once: ``calls``, the requests in row order, and
    ``base``, every row as it stands before sending (invalid, skipped, not_attempted, or an
    earlier result), in row order."""

    calls: tuple[Call, ...]
    base: tuple[RowResult, ...]

    def without(self, rows: Collection[int]) -> tuple[Call, ...]:
        """The calls, less those of ``rows``."""
        return tuple(call for call in self.calls if call.row not in rows)


def plan_of(v: Validation, skipped: Collection[int] = (), note: str = "") -> Plan:
    """The plan of a validated table: a call per valid row, unless ``skipped`` (left out on
    purpose, its result ``skipped`` with ``note``); invalid rows as their verdicts.

    One pass over the verdicts, a chunk at a time. The plan lives as long as the run, so it is
    kept small: a row's call and result share its body, and rows with the same body share one
    string (200,000 rows of two bodies: 61 MiB held instead of 81).
    """
    calls: list[Call] = []
    base: list[RowResult] = []
    # Many rows send the same body (one routing for many records): one string per distinct body.
    bodies: dict[str, str] = {}
    verdicts = v.verdicts.select("row", "routing_id", "error_code", "error_message", "request",
                                 "id")  # fmt: skip
    for offset in range(0, verdicts.height, _CHUNK):
        for row, routing_id, code, message, body, number in verdicts.slice(
            offset, _CHUNK
        ).iter_rows():
            if code:
                base.append(RowResult(row, routing_id, Outcome.INVALID, error_code=code,
                                      error_message=message))  # fmt: skip
                continue
            body = bodies.setdefault(body, body)
            if row in skipped:
                base.append(RowResult(row, routing_id, Outcome.SKIPPED, error_message=note,
                                      request=body))  # fmt: skip
            else:
                calls.append(Call(row, number, body))
                base.append(RowResult(row, routing_id, Outcome.NOT_ATTEMPTED, request=body))
    return Plan(tuple(calls), tuple(base))


def plan_counts(v: Validation) -> list[tuple[int, int, int, int]]:
    """Valid rows counted by ``(inbound mode, outbound mode, status)``, sorted by those."""
    keys = [vl.FOR_INBOUND_CALL, vl.FOR_OUTBOUND_CALL, vl.STATUS]
    counts = v.numbers.select(keys).filter(v.valid_mask()).group_by(keys).len().sort(keys)
    return [(int(a), int(b), int(c), int(n)) for a, b, c, n in counts.iter_rows()]


def plan_line(row: int, routing_id: int, method: str, path: str, body: str) -> str:
    """One line of the plan file (``body`` is already compact JSON: embedded as an object)."""
    return (
        f'{{"row":{row},"routing_id":{routing_id},"method":{json.dumps(method)},'
        f'"path":{json.dumps(path)},"body":{body}}}'
    )


def write_plan(path: Path, v: Validation, diff: Diff | None = None) -> None:
    """Write the plan file of ``v``'s valid rows, atomically (temp file, then replace).

    With ``diff`` (``v`` judged against the current records) each line gains its verdict.
    """
    judged = diff.judged_rows() if diff is not None else None
    with atomic_file(Path(path)) as file:
        for call in v.calls():
            line = plan_line(call.row, call.routing_id, call.method, call.path, call.body)
            if judged is not None:
                row = next(judged)
                assert row.row == call.row, "the diff must be of this validation"
                extra = {
                    "verdict": str(row.verdict),
                    "changes": list(row.changes),
                    "wipes": list(row.wipes),
                }
                line = line[:-1] + "," + json.dumps(extra, separators=(",", ":"))[1:]
            file.write(line.encode() + b"\n")


def already_applied(results: Path, v: Validation) -> tuple[int, str]:
    """How many of the planned requests an earlier run at ``results`` already applied (same
    routing id, same body), and on which target: what `run` will leave out (read-only)."""
    from batch.journal.applied import count_applied

    return count_applied(results, ((call.routing_id, call.body) for call in v.calls()))
