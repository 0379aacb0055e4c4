"""What each row's request does to its record (batch.prepare.effects), counted over the rows an
invocation sends: the facts the question before a real run states."""

from __future__ import annotations

from pathlib import Path

from batch.prepare.batch import batch_for_run
from batch.prepare.effects import Tally
from batch.settings import RunSettings

HEADER = "routing_id,for_inbound_call,for_outbound_call,status,connection_id,outbound_sip_trunk_id"
CONNECTION = "3f2b8c1e-0000-4000-8000-000000000001"
# The records now: 11 and 12 have a connection id, 13 has none.
CURRENT = f"{HEADER}\n11,1,2,1,{CONNECTION},5\n12,1,2,1,{CONNECTION},5\n13,1,2,1,,5\n"
# 11 as it is; 12 leaves the connection id out (a wipe); 13 moves to trunk 7; 14 is unknown.
ROWS = f"{HEADER}\n11,1,2,1,{CONNECTION},5\n12,1,2,1,,5\n13,1,2,1,,7\n14,1,2,1,,5\n"


def settings(tmp_path: Path, **given: object) -> RunSettings:
    source, current = tmp_path / "in.csv", tmp_path / "current.csv"
    source.write_text(ROWS)
    current.write_text(CURRENT)
    paths = {"current": current} if given.pop("snapshot", True) else {}
    return RunSettings(input=source, results=tmp_path / "out.csv", **paths, **given)


def test_against_a_snapshot_the_facts_are_the_verdicts_of_the_rows_sent(tmp_path: Path) -> None:
    """With --allow-wipe every row is sent: 2 change (the wipe and the trunk move), 1 value is
    cleared, 1 record is not in the snapshot; over rows 1 and 2 only, the facts of those two."""
    batch, _ = batch_for_run(settings(tmp_path, allow_wipe=True))
    assert batch.effects is not None
    effects = batch.effects()
    assert effects.snapshot == tmp_path / "current.csv"
    assert effects.tally([1, 2, 3, 4]) == Tally(changing=2, unknown=1, cleared=1)
    assert effects.tally([1, 2]) == Tally(changing=1, unknown=0, cleared=1)
    assert effects.tally([]) == Tally(changing=0, unknown=0, cleared=0)


def test_filled_from_the_snapshot_nothing_is_cleared(tmp_path: Path) -> None:
    """--fill-from-current: the empty connection id takes the record's, so row 2 no longer
    changes or clears anything."""
    batch, _ = batch_for_run(settings(tmp_path, fill_from_current=True))
    assert batch.effects is not None
    sent = [call.row for call in batch.plan.calls]
    assert batch.effects().tally(sent) == Tally(changing=1, unknown=0, cleared=0)


def test_without_a_snapshot_the_rows_that_send_no_connection_id(tmp_path: Path) -> None:
    """No snapshot: what changes is not known (None); the rows with no connection id are
    counted, a --connection-id filling them counts none."""
    batch, _ = batch_for_run(settings(tmp_path, snapshot=False))
    assert batch.effects is not None
    assert batch.effects().tally([1, 2, 3, 4]) == Tally(changing=None, unknown=0, cleared=3)
    filled, _ = batch_for_run(settings(tmp_path, snapshot=False, connection_id=CONNECTION))
    assert filled.effects is not None
    assert filled.effects().tally([1, 2, 3, 4]) == Tally(changing=None, unknown=0, cleared=0)
