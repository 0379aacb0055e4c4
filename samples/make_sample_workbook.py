"""Write samples/routing-changes.xlsx: samples/routing-changes.csv as Excel saves it.

Kept out of the package: run it again after changing the CSV sample
(`uv run python samples/make_sample_workbook.py`). Cells are typed as Excel types them: whole
numbers as numbers, everything else (ids with a leading +, UUIDs, notes) as text; the header
is bold and frozen, and the workbook's creation time is fixed so the file is reproducible.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import xlsxwriter

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def main() -> None:
    with (SAMPLES / "routing-changes.csv").open(newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    book = xlsxwriter.Workbook(SAMPLES / "routing-changes.xlsx", {"strings_to_numbers": False})
    book.set_properties({"created": datetime(2026, 12, 1, tzinfo=UTC), "author": "reroute"})
    sheet = book.add_worksheet("Changes")
    sheet.write_row(0, 0, header, book.add_format({"bold": True}))
    sheet.freeze_panes(1, 0)
    for r, row in enumerate(rows, start=1):
        for c, cell in enumerate(row):
            if re.fullmatch(r"[1-9][0-9]{0,14}|0", cell):
                sheet.write_number(r, c, int(cell))
            elif cell:
                sheet.write_string(r, c, cell)
    sheet.autofit()
    book.close()


if __name__ == "__main__":
    main()
