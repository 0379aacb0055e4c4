"""Rows named as the operator finds them (batch.sheets.rownames): the numbers and how a
journal keeps them."""

from __future__ import annotations

from batch.sheets import rownames
from batch.sheets.rownames import BY_NUMBER, RowNames


def test_a_text_files_row_is_named_by_the_line_it_starts_on() -> None:
    """Under a one-line header, row n starts on line n + 1."""
    names = rownames.of_text(1)
    assert names.name(3) == "row 3 (line 4)"
    assert names.name(3, "routing_id 1003") == "row 3 (line 4, routing_id 1003)"


def test_cells_spanning_lines_move_the_rows_below_them_down() -> None:
    """Row 2 takes two lines more, row 4 one: rows 3-4 move down 2, rows 5 on 3; row 2
    itself still starts where it did."""
    names = rownames.of_text(1, [(2, 2), (4, 1)])
    assert [names.number(row) for row in range(1, 7)] == [2, 3, 6, 7, 9, 10]


def test_a_workbooks_rows_count_the_rows_above_the_header() -> None:
    """A header on sheet row 3 puts data row 1 on sheet row 4."""
    assert rownames.of_sheet(3).name(1) == "row 1 (sheet row 4)"


def test_parquet_and_json_lines_rows_are_named_by_number_alone() -> None:
    """No header line, no sheet: the row number says it all."""
    assert BY_NUMBER.name(3) == "row 3"
    assert BY_NUMBER.name(3, "routing_id 1003") == "row 3 (routing_id 1003)"


def test_past_the_kept_shifts_a_row_is_named_by_number_only() -> None:
    """More spanning rows than the journal keeps: rows after the last kept one get no line
    (a wrong line would be worse than none)."""
    spanning = [(row, 1) for row in range(1, rownames.MAX_SHIFTS + 5)]
    names = rownames.of_text(1, spanning)
    last = rownames.MAX_SHIFTS + 1
    assert names.known_until == last
    assert names.number(last) == 2 * last  # each row above it added one line
    assert names.name(last + 1) == f"row {last + 1}"


def test_a_journal_keeps_them_and_an_older_one_names_rows_by_number() -> None:
    """to_text / from_text round trip; a journal without the key (or with junk) gives plain
    row numbers, never an error."""
    names = rownames.of_text(2, [(5, 3)])
    assert RowNames.from_text(names.to_text()) == names
    assert RowNames.from_text(None) == BY_NUMBER
    assert RowNames.from_text("{not json") == BY_NUMBER
