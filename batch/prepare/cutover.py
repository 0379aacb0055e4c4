"""What `plan --current` and `run --current` share: the rows as checked against a snapshot.

Both commands read the input (with ``--fill-from-current``, filled from the snapshot first:
whole columns may then be absent), validate it, and refuse output paths that would overwrite
the sheet or the snapshot they read. One function each, so the two commands cannot drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from batch import voicelink as vl
from batch.errors import UsageError
from batch.prepare.current import Current, load_current
from batch.prepare.fill import fill_from_current
from batch.prepare.validate import Validation, validate
from batch.sheets.dialect import Reading
from batch.sheets.load import Table, load_table


@dataclass(frozen=True)
class Checked:
    """The input as loaded (filled when asked), its validation, and the snapshot if given."""

    table: Table
    validation: Validation
    current: Current | None


def require_current(current: Path | None, given: Mapping[str, object]) -> None:
    """Flags that only make sense with a snapshot: a UsageError naming the first one given."""
    if current is None:
        for flag, value in given.items():
            if value:
                raise UsageError(f"{flag} needs --current SNAPSHOT (the current records)")


def refuse_overwrites(
    input_path: Path, current: Path | None, outputs: Iterable[tuple[Path | None, str]]
) -> None:
    """Refuse an output path that is the input sheet or the snapshot: a typo there would
    destroy the very file being checked (or the only copy of the records to roll back to)."""
    for output, flag in outputs:
        if output is None:
            continue
        for source, what in ((input_path, "the input file"), (current, "the snapshot")):
            if source is not None and output.resolve() == source.resolve():
                raise UsageError(f"{flag} {output} is {what}; write to another path")


def read_checked(
    input_path: Path,
    *,
    current: Path | None,
    fill: bool,
    connection_id: str | None,
    reading: Reading | None = None,
) -> Checked:
    """Load the snapshot (if any) and the input, fill it from the snapshot when ``fill``, and
    validate it (``UNKNOWN_RECORD`` for a filled row whose record is not in the snapshot)."""
    require_current(current, {"--fill-from-current": fill})
    snapshot = load_current(current) if current is not None else None
    if snapshot is not None and fill:
        only_id = (vl.ROUTING_ID,)
        filled = fill_from_current(
            load_table(input_path, required=only_id, reading=reading), snapshot
        )
        table, extra = filled.table, filled.errors
    else:
        table, extra = load_table(input_path, reading=reading), None
    v = validate(table, connection_id=connection_id, extra_errors=extra)
    return Checked(table=table, validation=v, current=snapshot)


__all__ = ["Checked", "read_checked", "refuse_overwrites", "require_current"]
