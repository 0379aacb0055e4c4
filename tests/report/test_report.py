"""The report's content: what it reads, what it says, what it embeds (no browser here)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from batch.errors import JournalError, UsageError
from batch.journal import audit, loglines, rowrecords
from batch.model import Outcome
from batch.report import data, default_path, render, series, write_report
from batch.report.data import FROM_JOURNAL, FROM_RESULTS
from tests.report_fixtures import HOSTILE, make_run


def test_default_path_is_beside_the_results_file() -> None:
    """`out.results.csv` gets `out.results.report.html` (or `.report.md`) beside it."""
    results = Path("/x/out.results.csv")
    assert default_path(results) == Path("/x/out.results.report.html")
    assert default_path(results, "md") == Path("/x/out.results.report.md")


def test_html_embeds_failed_rows_escaped_with_body_response_and_history(tmp_path: Path) -> None:
    """Each row that did not succeed is in the page with its request body, response and every
    request; what the server sent is escaped, never markup."""
    made = make_run(tmp_path / "out.csv", failed=frozenset({5, 17}), unknown=frozenset({9}))
    page = write_report(made.results).read_text()
    assert "<script>alert(" not in page
    assert "the API said &lt;script&gt;alert('x')&lt;/script&gt;&amp;&lt;b&gt;" in page
    rows = re.findall(r'<tr data-outcome="(\w+)">\s*<td class="num" data-sort="(\d+)">', page)
    assert rows == [("failed", "5"), ("failed", "17"), ("unknown", "9"), ("invalid", "3")]
    assert "<summary>3 requests</summary>" in page
    assert '<pre>{"for_inbound_call":1,"for_outbound_call":4,"status":1}</pre>' in page
    assert "HTTP_503" in page
    assert "(backoff)" in page
    assert "Top causes" in page
    assert "row 5 (routing_id 1005)" in page
    # The sheet's own columns name the row too.
    assert "<td>+44200000005</td><td>T-5</td>" in page


def test_html_loads_nothing_from_the_network(tmp_path: Path) -> None:
    """One self-contained file: no external script, style, font or image; a CSP forbids any,
    and eval too (no charting library: the charts are SVG already). Small for a small run."""
    made = make_run(tmp_path / "out.csv")
    page = write_report(made.results).read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page
    assert "default-src 'none'" in page
    assert "unsafe-eval" not in page
    assert page.count("<svg ") == 6
    assert len(page.encode()) < 80_000


def test_the_journal_of_a_run_still_going_gives_a_report(tmp_path: Path) -> None:
    """No results file yet, the last segment unfinished: outcomes come from the journal, the
    page says so and that the run has not finished."""
    made = make_run(
        tmp_path / "out.csv", write_results_file=False, finished=False, unknown=frozenset({12})
    )
    facts = data.read(made.results)
    assert facts.source == FROM_JOURNAL
    assert not facts.finished
    assert facts.outcome_counts()["unknown"] == 1
    page = write_report(made.results).read_text()
    assert "not finished: still running" in page
    assert "the journal (no results file yet" in page


def test_outcomes_come_from_the_results_file_when_it_exists(tmp_path: Path) -> None:
    """Rows never sent (invalid, not_attempted) are only in the results file: counted from it."""
    made = make_run(tmp_path / "out.csv", invalid=frozenset({3, 4}), not_attempted=frozenset({40}))
    facts = data.read(made.results)
    assert facts.source == FROM_RESULTS
    counts = facts.outcome_counts()
    assert (counts["invalid"], counts["not_attempted"], sum(counts.values())) == (2, 1, 40)


def test_a_journal_without_the_audit_trail_is_one_clear_error(tmp_path: Path) -> None:
    """A journal of an older reroute (no attempts/segments/events): a message, not a traceback."""
    made = make_run(tmp_path / "out.csv", trail=False)
    with pytest.raises(JournalError, match="older reroute, without the audit trail"):
        write_report(made.results)


def test_no_journal_names_the_file_it_looked_for(tmp_path: Path) -> None:
    """A results path with no journal beside it: the error names both."""
    with pytest.raises(JournalError, match=r"nope\.csv: no such results file, and no run journal"):
        write_report(tmp_path / "nope.csv")
    (tmp_path / "x.csv.journal").write_text("not sqlite at all, just text " * 100)
    with pytest.raises(JournalError, match=r"x\.csv\.journal"):
        write_report(tmp_path / "x.csv")


def test_an_empty_trail_still_makes_a_report(tmp_path: Path) -> None:
    """A run that stopped before its first request (a segment, no attempts) has a report."""
    made = make_run(tmp_path / "out.csv", failed=frozenset())
    db = sqlite3.connect(made.journal)
    db.execute("DELETE FROM attempts")
    db.commit()
    db.close()
    assert "Rows by outcome" in write_report(made.results).read_text()
    assert "Rows by outcome" in render(made.results, "md")


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    with pytest.raises(UsageError, match="use html or md"):
        write_report(made.results, fmt="pdf")


def test_markdown_has_the_headline_and_a_failure_table(tmp_path: Path) -> None:
    """`--format md`: the verdict, the figures and the failures (with the sheet's own ids) as
    tables a ticket renders; pipes and markup in messages cannot break them."""
    made = make_run(tmp_path / "out.csv", segments=3)
    text = write_report(made.results, fmt="md").read_text()
    assert text.startswith("**37 of 40 succeeded, 2 failed, 1 invalid**\n")
    assert "- **How it ended:** exit 1: finished; some rows did not succeed" in text
    assert "| succeeded | 37 |" in text
    assert "| 3 | resume | ops@jump-1 | 2025-12-02 17:00:00 UTC | " in text
    assert (
        "| 5 | 1005 | +44200000005 | T-5 | failed | 422 | 3 | VALIDATION_ERROR | row 5: the API "
        "said &lt;script&gt;alert('x')&lt;/script&gt;&&lt;b&gt; |"
    ) in text
    assert HOSTILE not in text


def test_markdown_escapes_pipes(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", write_results_file=False)
    db = sqlite3.connect(made.journal)
    db.execute("UPDATE rows SET error_message = 'a | b' WHERE row = 5")
    db.commit()
    db.close()
    assert "| a \\| b |" in render(made.results, "md")


def test_failed_rows_are_capped_and_the_page_points_to_the_results_file(tmp_path: Path) -> None:
    """At most 1,000 rows that did not succeed are embedded; the page says where the rest are."""
    made = make_run(
        tmp_path / "big.csv", rows=1_100, failed=frozenset(range(1, 1_051)), invalid=frozenset()
    )
    page = write_report(made.results).read_text()
    assert page.count('<tr data-outcome="') == 1_000
    assert f"The first 1,000 of 1,050 are here; every row is in {made.results}" in page
    text = render(made.results, "md")
    assert text.count("| failed |") == 20 + 2  # the table, the outcomes and the causes
    assert f"The first 20 of 1,050; every row is in `{made.results}`" in text


def test_series_are_aggregated_not_one_point_per_request(tmp_path: Path) -> None:
    """Many requests make a few hundred points at most; segments a night apart share one
    timeline of the time running, the nights left out."""
    made = make_run(tmp_path / "out.csv", rows=2_000, segments=3, failed=frozenset({9}))
    s = series.build(data.read(made.results))
    assert len(s.rate) <= 2 * series.BUCKETS
    assert s.timeline is not None
    assert max(p["x"] for p in s.rate) < 3 * 2_000 / 20 * 1.5  # seconds running, not days
    assert [m["kind"] for m in s.marks].count("resume started") == 2
    assert sum(p["rows"] for p in s.attempts) == 2_000
    assert {p["quantile"] for p in s.latency} == {"p50", "p95", "p99"}
    assert [limit["rps"] for limit in s.limits] == [20.0, 20.0, 20.0]
    assert s.pauses
    assert all(p["end"] > p["start"] and p["x2"] >= p["x"] for p in s.pauses)


def test_one_segment_uses_the_clock(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv")
    assert series.build(data.read(made.results)).timeline is None


def test_reading_a_quiet_journal_leaves_no_files_behind(tmp_path: Path) -> None:
    """A finished run's journal is read without creating -wal/-shm files beside it."""
    made = make_run(tmp_path / "out.csv")
    for name in (f"{made.journal}-wal", f"{made.journal}-shm"):
        Path(name).unlink(missing_ok=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    page = write_report(made.results)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*before, page.name])


def test_records_still_in_the_journals_log_are_counted(tmp_path: Path) -> None:
    """A run still going (or killed) holds its latest records in the journal's log before they
    reach SQLite: the report reads them too (a row's newer record wins)."""
    made = make_run(
        tmp_path / "out.csv", write_results_file=False, finished=False, unknown=frozenset({12})
    )
    db = sqlite3.connect(made.journal)
    row = rowrecords.decode(
        db.execute(f"SELECT {rowrecords.COLUMNS} FROM rows WHERE row = 12").fetchone()
    )
    (before,) = db.execute("SELECT count(*) FROM attempts").fetchone()
    db.close()
    row = row._replace(outcome=Outcome.SUCCEEDED, http_status=200)
    sent = rowrecords.stamp(row.started_at)
    assert sent is not None
    attempt = audit.Attempt(12, "1012", 2, 1, sent + 60_000, sent + 90_000, 200, wait_cause="pace")
    log = Path(f"{made.journal}-log")
    log.write_bytes(loglines.line(rowrecords.encode(row)) + loglines.answer(attempt) + b"\0" * 64)
    facts = data.read(made.results)
    assert facts.outcome_counts()["unknown"] == 0
    assert facts.attempts.height == before + 1


def test_a_journal_with_nothing_sent_yet(tmp_path: Path) -> None:
    """A journal created, nothing recorded yet (no segment, no row): a report that says so."""
    made = make_run(tmp_path / "out.csv", write_results_file=False)
    db = sqlite3.connect(made.journal)
    for table in ("segments", "events", "attempts", "rows"):
        db.execute(f"DELETE FROM {table}")
    db.commit()
    db.close()
    text = render(made.results, "md")
    assert text.startswith("**nothing sent yet: ")
    assert "; nothing sent yet; " in text
    assert "- **How it ended:** no segment recorded" in text
    assert "Rows by outcome" in write_report(made.results).read_text()


def test_a_value_of_the_wrong_type_in_the_journal_is_one_clear_error(tmp_path: Path) -> None:
    """SQLite keeps text in an integer column: the report says so in a line, no traceback."""
    made = make_run(tmp_path / "out.csv")
    db = sqlite3.connect(made.journal)
    db.execute("UPDATE attempts SET sent_at = 'yesterday' WHERE row = 1")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match="holds a value reroute cannot read"):
        write_report(made.results)
