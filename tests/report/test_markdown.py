"""The Markdown fits a ticket comment: the verdict first, the page's order, under 10 KB."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import polars as pl

from batch.journal.db import journal_path
from batch.model import RESULT_COLUMNS
from batch.report import _text, render, write_report
from batch.report.data import ATTEMPT_SCHEMA, FROM_JOURNAL, Facts
from batch.report.markdown import LIMIT
from tests.report_fixtures import HOSTILE, START, make_run

ORDER = ("verdict", "outcomes", "causes", "failed-rows", "changes", "undo", "next", "charts",
         "settings", "provenance")  # fmt: skip
MD_ORDER = ("### Rows by outcome", "### Top causes", "### Rows that did not succeed",
            "### What changed", "### How to undo", "### What to run next",
            "**Settings chosen:**", "- **How it ended:**")  # fmt: skip


def test_the_page_and_the_markdown_keep_the_same_order(tmp_path: Path) -> None:
    """Verdict, counts, causes, failed rows, what changed, undo, next; then charts, settings,
    provenance: in the page and in the ticket alike."""
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({9}), rollback=True)
    page = write_report(made.results).read_text()
    at = [page.index(f'id="{key}"') for key in ORDER]
    assert at == sorted(at)
    text = render(made.results, "md")
    at = [text.index(heading) for heading in MD_ORDER]
    assert at == sorted(at)
    assert text.startswith("**37 of 40 succeeded, 2 failed, 1 invalid**\n")


def _worst_run(folder: Path, rows: int) -> Facts:
    """A 200,000-row run made to be long to tell: a quarter failed under 40 causes with long
    messages full of markup, ten passthrough columns of long text, a quarter of the records changed,
    long paths and many settings chosen."""
    n = pl.int_range(1, rows + 1, eager=True)
    failed = n % 4 == 0
    long = "x|<b>" * 60
    frame = pl.DataFrame({"row": n}).with_columns(
        pl.format("{}", pl.col("row") + 100_000).alias("routing_id"),
        pl.when(failed).then(pl.lit("failed")).otherwise(pl.lit("succeeded")).alias("outcome"),
        pl.when(failed).then(422).otherwise(200).cast(pl.Int64).alias("http_status"),
        pl.lit(3, pl.Int64).alias("attempts"),
        pl.when(failed).then(pl.format("CODE_{}", pl.col("row") % 40)).otherwise(pl.lit(""))
        .alias("error_code"),
        pl.when(failed).then(pl.format(f"row {{}}: {HOSTILE} {long}", "row")).otherwise(pl.lit(""))
        .alias("error_message"),
        pl.lit('{"for_inbound_call":1,"for_outbound_call":4,"status":1}').alias("request"),
        pl.lit('{"success":true}').alias("response"),
        pl.lit(START, pl.Int64).alias("started_at"),
        pl.lit(START + 1_000, pl.Int64).alias("finished_at"),
        pl.lit(1, pl.Int64).alias("duration_ms"),
        *(pl.format(f"{long[:60]}{{}}", "row").alias(f"sheet column {i} {long[:20]}")
          for i in range(10)),
    )  # fmt: skip
    snapshot = folder / "big.csv.snapshot.csv"
    frame.select(
        (pl.col("row") + 100_000).alias("routing_id"),
        pl.lit(1).alias("for_inbound_call"),
        pl.lit(4).alias("for_outbound_call"),
        (pl.col("row") % 2).alias("status"),
    ).write_csv(snapshot)
    results = folder / ("deep " * 30) / "big.csv"
    results.parent.mkdir()
    (results.parent / snapshot.name).write_bytes(snapshot.read_bytes())
    settings = {
        "rate": "90/min", "current": str(folder / ("snap " * 40)),
        "rollback": str(folder / ("rollback " * 40)), "fill_from_current": True, "canary": 50,
        "error_budget": "5% of the last 100 finished rows", "max_outage": 3600.0,
    }  # fmt: skip
    segment = {
        "segment": 1, "kind": "run", "version": "0.1.0", "operator": "ops@jump-1",
        "started_at": START, "finished_at": START + 10**10, "stop_reason": "finished",
        "exit_status": 1, "input_sha256": "ab" * 32, "plan_sha256": "cd" * 32,
        "target_host": "api.example.net", "key_variable": "VOCOBASE_API_KEY",
        "settings": settings,
    }  # fmt: skip
    sha = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    return Facts(
        results=results,
        journal=journal_path(results),
        source=FROM_JOURNAL,
        meta={"snapshot": sha, "input_sha256": "ab" * 32},
        record={"kind": "run", "input": str(folder / ("input " * 40)), **settings},
        segments=[segment],
        events=[],
        rows=frame.select(*RESULT_COLUMNS, pl.exclude(RESULT_COLUMNS)),
        attempts=pl.DataFrame(schema=ATTEMPT_SCHEMA),
        history={},
        pauses=[],
    )


def test_a_200000_row_run_fits_a_ticket_comment(tmp_path: Path) -> None:
    """However long the run's story, the Markdown stays under 10 KB and still opens with the
    verdict, lists some failed rows with their ids, the changes and both commands."""
    facts = _worst_run(tmp_path, 200_000)
    text = _text(facts, "md", ("uv", "run", "reroute"))
    assert len(text.encode()) < LIMIT
    assert text.startswith("**150,000 of 200,000 succeeded, 50,000 failed**\n")
    assert "| 4 | 100004 | x\\|&lt;b&gt;x" in text
    assert re.search(r"The first \d+ of 50,000; every row is in `", text)
    assert "50,000 records changed" in text
    assert "uv run reroute retry " in text
    assert "uv run reroute run " in text  # the rollback
    assert HOSTILE not in text


def test_the_markdown_of_a_small_run_is_small(tmp_path: Path) -> None:
    made = make_run(tmp_path / "out.csv", snapshot=frozenset({9}), rollback=True)
    assert len(render(made.results, "md").encode()) < 5_000
    assert json.loads(json.dumps(render(made.results, "md")))  # plain text, nothing binary
