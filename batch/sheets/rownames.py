"""Rows named as the operator finds them: ``row 3 (line 4)``, ``row 3 (sheet row 4)``.

A row's number (``row``, the results file's column) counts the data rows: 1 is the first row
under the header. An editor numbers a text file's lines, a spreadsheet its rows, both with the
header as 1, so wherever a message or a report names a row it also names it their way:

    .csv .tsv .txt     row 3 (line 4)         the line the row starts on: a quoted cell that
                                              spans lines moves the rows below it down
    .xlsx              row 3 (sheet row 4)    a title or blank rows above the header count
    .parquet .jsonl    row 3                  no header line: row 3 is the third record

The reader of the input works the numbers out (``batch.sheets``); a run keeps them in its
journal (:data:`META_KEY`), so its status and report name rows the same way without the input.
A root module: the stages from the sheets to the command line all name rows.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

META_KEY: Final = "row_names"  # the journal's meta key holding :meth:`RowNames.to_text`
LINE: Final = "line"
SHEET_ROW: Final = "sheet row"
# A text file whose cells span lines in more rows than this keeps the lines of the rows above
# the next one only (the rest are named by their row alone): the journal keeps the list.
MAX_SHIFTS: Final = 10_000


@dataclass(frozen=True, slots=True)
class RowNames:
    """How the rows of one input are found in an editor or a spreadsheet.

    ``unit``: ``line``, ``sheet row``, or "" (the row number says it all). ``first``: what data
    row 1 is in that unit (2 under a one-line header). ``shifts``: where cells spanning lines
    move rows down, as (first row moved, lines added above it in all), sorted by row.
    ``known_until``: the last row whose line is known, None when all are.
    """

    unit: str = ""
    first: int = 2
    shifts: tuple[tuple[int, int], ...] = ()
    known_until: int | None = None

    def number(self, row: int) -> int | None:
        """Data row ``row`` in the operator's unit; None when there is nothing more to say."""
        if not self.unit or (self.known_until is not None and row > self.known_until):
            return None
        at = bisect.bisect_right(self.shifts, row, key=_first)
        return self.first + row - 1 + (self.shifts[at - 1][1] if at else 0)

    def detail(self, row: int) -> str | None:
        """``line 4`` / ``sheet row 4`` for data row ``row``, None when there is none."""
        number = self.number(row)
        return None if number is None else f"{self.unit} {number}"

    def where(self, row: int, *more: str) -> str:
        """``3 (line 4)``, for a text that says ``row`` before it; ``more`` goes in the
        brackets too (``3 (line 4, routing_id 1003)``)."""
        inside = [d for d in (self.detail(row), *more) if d]
        return f"{row} ({', '.join(inside)})" if inside else str(row)

    def name(self, row: int, *more: str) -> str:
        """``row 3 (line 4)``; ``more`` goes in the brackets too."""
        return f"row {self.where(row, *more)}"

    def to_text(self) -> str:
        """As the journal keeps it (JSON)."""
        return json.dumps(
            {
                "unit": self.unit,
                "first": self.first,
                "shifts": [list(s) for s in self.shifts],
                "known_until": self.known_until,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_text(cls, text: str | None) -> RowNames:
        """What :meth:`to_text` wrote; plain row numbers for a journal without it (an older
        reroute) or one that cannot be read."""
        try:
            found = json.loads(text) if text else {}
            return cls(
                unit=str(found.get("unit", "")),
                first=int(found.get("first", 2)),
                shifts=tuple((int(row), int(extra)) for row, extra in found.get("shifts", [])),
                known_until=None if found.get("known_until") is None else int(found["known_until"]),
            )
        except (ValueError, TypeError, AttributeError):
            return cls()


# Rows named by their number alone (Parquet, JSON lines, a journal of an older reroute).
BY_NUMBER: Final = RowNames()


def _first(shift: tuple[int, int]) -> int:
    return shift[0]


def of_sheet(header_row: int) -> RowNames:
    """A workbook's rows: the header is sheet row ``header_row``."""
    return RowNames(SHEET_ROW, header_row + 1)


def of_text(header_lines: int, spanning: Iterable[tuple[int, int]] = ()) -> RowNames:
    """A text file's rows: the header takes ``header_lines`` lines; ``spanning``: the rows
    with a cell that spans lines, in order, each with the lines it takes beyond its first."""
    first, extra = header_lines + 1, 0
    shifts: list[tuple[int, int]] = []
    for row, more in spanning:
        if len(shifts) == MAX_SHIFTS:  # the rows below this one are named by number only
            return RowNames(LINE, first, tuple(shifts), known_until=row)
        extra += more
        shifts.append((row + 1, extra))
    return RowNames(LINE, first, tuple(shifts))
