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
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
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
    """What an invocation sends, built once, in row order.

    ``calls``: the requests. ``rows``: every row as it stands before sending: its result
    (invalid, skipped, or an earlier result a retry read), or, for a row to send that has none
    yet, its call, which :meth:`base` reads as ``not_attempted``. A plan lives as long as the
    run, so a row to send holds one value, not two. ``read_as``: routing ids as the input wrote
    them, where that is not the call's number (``093``, ``4.0``).
    """

    calls: tuple[Call, ...]
    rows: tuple[RowResult | Call, ...]
    read_as: Mapping[int, str] = field(default_factory=dict)

    def base(self) -> Iterator[RowResult]:
        """Every row as it stands before sending (what the results file says of a row the run
        does not reach), in row order."""
        for row in self.rows:
            yield row if isinstance(row, RowResult) else self.unsent(row)

    def known(self) -> Iterator[RowResult]:
        """The rows with a result of their own before sending (invalid, skipped, an earlier
        result), in row order: every other row is one to send, not attempted, no request sent
        (a count over these needs no result built per row)."""
        return (row for row in self.rows if isinstance(row, RowResult))

    def unsent(self, call: Call) -> RowResult:
        """``call``'s row before it is sent: not attempted, with the body it will send."""
        return RowResult(call.row, self.routing_text(call), Outcome.NOT_ATTEMPTED,
                         request=call.body)  # fmt: skip

    def routing_text(self, call: Call) -> str:
        """The routing id of ``call``'s row as the input wrote it."""
        return self.read_as.get(call.row) or str(call.routing_id)

    def without(self, rows: Collection[int]) -> tuple[Call, ...]:
        """The calls, less those of ``rows``."""
        return tuple(call for call in self.calls if call.row not in rows)


def plan_of(v: Validation, skipped: Collection[int] = (), note: str = "") -> Plan:
    """The plan of a validated table: a call per valid row, unless ``skipped`` (left out on
    purpose, its result ``skipped`` with ``note``); invalid rows as their verdicts.

    One pass over the verdicts, a chunk at a time. The plan lives as long as the run, so it is
    kept small: a row to send is its call alone, and rows with the same body share one string
    (200,000 rows of two bodies: 26 MiB held, where a call and a result per row held 81).
    """
    calls: list[Call] = []
    rows: list[RowResult | Call] = []
    read_as: dict[int, str] = {}
    # Many rows send the same body (one routing for many records): one string per distinct body.
    bodies: dict[str, str] = {}
    verdicts = v.verdicts.select("row", "routing_id", "error_code", "error_message", "request",
                                 "id")  # fmt: skip
    for offset in range(0, verdicts.height, _CHUNK):
        for row, routing_id, code, message, body, number in verdicts.slice(
            offset, _CHUNK
        ).iter_rows():
            if code:
                rows.append(RowResult(row, routing_id, Outcome.INVALID, error_code=code,
                                      error_message=message))  # fmt: skip
                continue
            body = bodies.setdefault(body, body)
            if row in skipped:
                rows.append(RowResult(row, routing_id, Outcome.SKIPPED, error_message=note,
                                      request=body))  # fmt: skip
                continue
            call = Call(row, number, body)
            calls.append(call)
            rows.append(call)
            if routing_id != str(number):
                read_as[row] = routing_id
    return Plan(tuple(calls), tuple(rows), read_as)


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
