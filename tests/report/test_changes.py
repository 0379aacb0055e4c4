"""What changed (old -> new against the snapshot the run kept) and how to undo it."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from batch.report import data, render, write_report
from batch.report.changes import NO_SNAPSHOT, changes_path, compare
from batch.report.undo import undo
from tests.report_fixtures import make_run


def test_records_changed_old_to_new_and_the_ones_replaced_unchanged(tmp_path: Path) -> None:
    """Rows 5, 9 and 12 found their record inactive: 9 and 12 succeeded (changed, status
    0 -> 1), 5 failed (not changed); every other row that succeeded replaced its record
    unchanged."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({5, 9, 12}))
    c = compare(data.read(made.results), cap=10)
    assert c.known
    assert (c.changed, c.unchanged, c.not_applied, c.in_doubt) == (2, 35, 1, 0)
    assert c.summary == (
        "Against the snapshot current.csv: 2 records changed, 35 replaced unchanged, "
        "1 not changed (their update failed)."
    )
    assert [(r.row, r.routing_id, r.fields) for r in c.records] == [
        (9, "1009", [("status", "0", "1")]),
        (12, "1012", [("status", "0", "1")]),
    ]
    assert c.records[0].ids == {"did_number": "+44200000009", "ticket": "T-9"}


def test_the_page_and_the_markdown_show_each_change_and_point_to_the_full_list(
    tmp_path: Path,
) -> None:
    """Terraform-like on the page (old struck, new bold), one line per record in the ticket;
    the full list, with each row's outcome, is written beside the results."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({5, 9, 12}))
    page = write_report(made.results).read_text()
    changes = page[page.index('<section id="changes">') : page.index('<section id="undo">')]
    assert "~ routing_id 1009" in changes
    assert '<span class="old">0</span> → <span class="new">1</span>' in changes
    full = changes_path(made.results)
    assert f"is in <code>{full}</code>" in changes
    listed = pl.read_csv(full)
    assert listed.select("row", "outcome", "changes").rows() == [
        (5, "failed", "status: 0 -> 1"),
        (9, "succeeded", "status: 0 -> 1"),
        (12, "succeeded", "status: 0 -> 1"),
    ]
    assert listed.columns[-2:] == ["did_number", "ticket"]
    text = render(made.results, "md")
    assert "- `1009` (row 9, did_number +44200000009, ticket T-9): status: 0 → 1" in text


def test_a_big_change_list_is_capped_on_the_page_and_in_the_ticket(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", rows=300, snapshot=frozenset(range(100, 300)))
    """200 records changed: ten in the ticket, 200 on the page, all of them in the file."""
    assert compare(data.read(made.results), cap=10).changed == 200
    text = render(made.results, "md")
    assert text.count("): status: 0 → 1") == 10
    assert "The first 10 of 200; every row sent that differs from its record is in `" in text
    page = write_report(made.results).read_text()
    assert page.count('<div class="record">') == 200
    assert pl.read_csv(changes_path(made.results)).height == 200


def test_without_a_snapshot_one_line_says_the_old_values_are_not_known(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    c = compare(data.read(made.results), cap=10)
    assert (c.known, c.summary) == (False, NO_SNAPSHOT)
    assert not changes_path(made.results).exists()
    assert NO_SNAPSHOT in render(made.results, "md")


def test_a_snapshot_gone_or_edited_since_the_run_is_said_not_guessed(tmp_path: Path) -> None:
    """The kept copy is matched by the sha256 the journal holds: an edited copy is not the
    snapshot the run was judged against."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({9}))
    kept = made.results.with_name("out.csv.snapshot.csv")
    kept.write_text(kept.read_text().replace(",0\n", ",1\n"))
    c = compare(data.read(made.results), cap=10)
    assert not c.known
    assert "is no longer beside the results (out.csv.snapshot.csv) or at current.csv" in c.summary


def test_undo_names_the_rollback_file_its_records_and_the_command(tmp_path: Path) -> None:
    """The rollback file, how many records it restores, and a run of it to the same target."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({5, 9, 12}), rollback=True)
    rollback = (tmp_path / "rollback.csv").resolve()
    u = undo(data.read(made.results), ("uv", "run", "reroute"))
    assert (u.path, u.records) == (str(rollback), 3)
    assert u.command == f"uv run reroute run {rollback} --base-url http://127.0.0.1:9/api/v2"
    page = write_report(made.results).read_text()
    section = page[page.index('<section id="undo">') : page.index('<section id="next">')]
    assert f"The rollback file {rollback} holds the 3 records" in section
    assert f"<code>reroute run {rollback} --base-url" in section
    rollback.unlink()
    assert "is no longer there" in undo(data.read(made.results), ("reroute",)).text


def test_without_a_rollback_file_undo_says_what_is_known(tmp_path: Path) -> None:
    with_snapshot = make_run(tmp_path / "a.csv", snapshot=frozenset({9}))
    assert undo(data.read(with_snapshot.results), ("reroute",)).text.startswith(
        "No rollback file was written (--rollback PATH"
    )
    without = make_run(tmp_path / "b.csv")
    found = undo(data.read(without.results), ("reroute",))
    assert found.command is None
    assert "without a snapshot of the records (--current)" in found.text
