"""The approved plan's check (batch.prepare.approval): what passes, what is refused, and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch.errors import UsageError
from batch.journal.audit import plan_sha256
from batch.model import Call
from batch.prepare.approval import check, keep, planned, read_kept

BODY = '{"for_inbound_call":1,"for_outbound_call":4,"status":1}'
OFF = '{"for_inbound_call":1,"for_outbound_call":4,"status":0}'


def calls(*rows: tuple[int, int, str]) -> list[Call]:
    return [Call(row, routing_id, body) for row, routing_id, body in rows]


APPROVED = calls((1, 101, BODY), (2, 102, BODY), (3, 103, BODY))


def test_kept_plan_is_named_by_its_hash_and_read_back(tmp_path: Path) -> None:
    """keep() writes the hashed lines (sha256sum = the name); read_kept() gives them back."""
    kept = keep(tmp_path, planned(APPROVED))
    assert kept.sha256 == plan_sha256(planned(APPROVED))
    assert kept.path == tmp_path / ".reroute-plans" / f"{kept.sha256}.tsv"
    assert read_kept(kept.sha256, [tmp_path]) == {1: ("101", BODY), 2: ("102", BODY),
                                                  3: ("103", BODY)}  # fmt: skip


def test_the_same_plan_passes(tmp_path: Path) -> None:
    """The approved plan, found or not: the check returns its hash."""
    sha = plan_sha256(planned(APPROVED))
    assert check(APPROVED, sha, retry=False, folders=[tmp_path]) == sha


def test_a_changed_row_is_counted_and_named(tmp_path: Path) -> None:
    """Row 2's status edited, row 3 dropped: 2 rows differ, the first is row 2, field by field."""
    sha = keep(tmp_path, planned(APPROVED)).sha256
    edited = calls((1, 101, BODY), (2, 102, OFF))
    with pytest.raises(UsageError) as refused:
        check(edited, sha, retry=False, folders=[tmp_path / "elsewhere", tmp_path])
    text = str(refused.value)
    assert text.startswith(f"2 rows differ from the approved plan {sha[:12]}…, so nothing was sent")
    assert "the first is row 2: routing_id 102, status 0 (approved: 1)" in text


def test_a_retry_of_approved_rows_passes_and_an_edited_one_does_not(tmp_path: Path) -> None:
    """A retry sends some of the approved plan's requests, unchanged: it passes under the
    run's hash; a request changed by hand in the results file is refused."""
    sha = keep(tmp_path, planned(APPROVED)).sha256
    some = calls((3, 103, BODY))
    assert check(some, sha, retry=True, folders=[tmp_path]) == plan_sha256(planned(some))
    with pytest.raises(UsageError, match=r"1 row differs.*row 3: routing_id 103, status 0"):
        check(calls((3, 103, OFF)), sha, retry=True, folders=[tmp_path])
    with pytest.raises(UsageError, match="2 rows differ"):  # a run is the whole plan
        check(some, sha, retry=False, folders=[tmp_path])


def test_without_the_kept_plan_the_count_is_unknown(tmp_path: Path) -> None:
    """Not found, or a kept file whose content no longer has its hash: refused, count unknown."""
    sha = keep(tmp_path, planned(APPROVED)).sha256
    edited = calls((1, 101, OFF))
    with pytest.raises(UsageError, match="How many rows differ is unknown"):
        check(edited, sha, retry=False, folders=[tmp_path / "elsewhere"])
    kept = tmp_path / ".reroute-plans" / f"{sha}.tsv"
    kept.write_text(kept.read_text().replace('"status":1', '"status":0', 1))
    assert read_kept(sha, [tmp_path]) is None
    with pytest.raises(UsageError, match="How many rows differ is unknown"):
        check(edited, sha, retry=False, folders=[tmp_path])
