"""The approved plan: an invocation sends the plan the change board approved, or nothing.

`reroute plan` hashes every request it would send (each row, routing id and body:
:func:`batch.journal.audit.plan_sha256`, the hash each segment of the run records in
``run.json``) and keeps those requests under their hash, ``.reroute-plans/<sha256>.tsv`` beside
the results path: one line per request, exactly the lines hashed, so ``sha256sum`` of the file
is its name. ``run --approved-plan SHA256`` (job key ``[safety] approved_plan``) computes its
own plan before anything is made and sends nothing unless it is the approved one:

- ``run`` (and a resume of it, which reads the same input bytes: the rows left are the plan's):
  the whole plan must have the approved hash.
- ``retry``: the rows it sends again. The hash approved may be the retry's own plan, or the run's
  approved plan: then every request the retry sends must be one of that plan's, unchanged
  (the same row, routing id and body).

When the plan differs, the refusal counts the rows that differ and names the first, from the
kept requests of the approved plan; when those cannot be found, it says the count is unknown.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from batch.errors import UsageError
from batch.journal.audit import plan_sha256
from batch.model import Call
from batch.prepare.current import Current, Diff, gate
from batch.prepare.validate import Validation
from batch.settings import RunSettings

PLANS: Final = ".reroute-plans"  # the folder beside the results that keeps plans by hash

Request = tuple[int, str, str]  # (row, routing id, body): what the hash is taken over


def planned(calls: Iterable[Call]) -> list[Request]:
    """The requests of ``calls`` as the plan's hash reads them, in row order."""
    return [(call.row, str(call.routing_id), call.body) for call in calls]


def plan_requests(
    v: Validation, snapshot: Current | None, *, allow_wipe: bool, skip_unchanged: bool
) -> tuple[list[Request], Diff | None]:
    """What `run` with the same sheet and flags sends (its plan, as hashed: the rows it
    refuses as wiping a value, unless ``allow_wipe``, and those ``skip_unchanged`` leaves out
    are not in it) and, with a snapshot, every valid row's verdict. ``run`` gates its rows the
    same way (batch.prepare.batch.batch_for_run)."""
    if snapshot is None:
        return planned(v.calls()), None
    judged = gate(v, snapshot, allow_wipe=allow_wipe, skip_unchanged=skip_unchanged)
    return planned(judged.calls()), judged.diff


def kept_path(folder: Path, sha: str) -> Path:
    """Where the plan with hash ``sha`` is kept, for results written in ``folder``."""
    return folder / PLANS / f"{sha}.tsv"


@dataclass(frozen=True, slots=True)
class Kept:
    """A plan hashed and kept: its sha256, its requests' count and the file holding them."""

    sha256: str
    requests: int
    path: Path


def keep(folder: Path, requests: Sequence[Request]) -> Kept:
    """Hash ``requests`` and keep them in ``folder/.reroute-plans/<sha256>.tsv`` (written to a
    temporary file first, then moved into place: a run never reads half a plan)."""
    sha = plan_sha256(requests)
    path = kept_path(folder, sha)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.part")
    try:
        with scratch.open("wb") as handle:
            handle.writelines(_lines(requests))
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)
    return Kept(sha, len(requests), path)


def _lines(requests: Iterable[Request]) -> Iterable[bytes]:
    # The lines plan_sha256 hashes, byte for byte (a compact JSON body holds no tab or newline).
    for row, routing_id, body in requests:
        yield f"{row}\t{routing_id}\t{body}\n".encode()


def read_kept(sha: str, folders: Iterable[Path]) -> dict[int, tuple[str, str]] | None:
    """The approved plan's requests by row, from the first folder that keeps a file with that
    hash (a file whose content no longer has it is not used); None when none does."""
    seen: set[Path] = set()
    for folder in folders:
        path = kept_path(folder, sha)
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        try:
            data = path.read_bytes()
        except OSError:
            continue
        requests: dict[int, tuple[str, str]] = {}
        try:
            for line in data.decode().splitlines():
                row, routing_id, body = line.split("\t", 2)
                requests[int(row)] = (routing_id, body)
        except ValueError:
            continue
        order = sorted(requests.items())
        if plan_sha256((row, rid, body) for row, (rid, body) in order) == sha:
            return requests
    return None


def folders_of(settings: RunSettings) -> list[Path]:
    """Where a run looks for the approved plan's requests: beside its results, beside its
    input (a retry's input is the results file it retries), and the current folder."""
    return [settings.results.parent, settings.input.parent, Path.cwd()]


def check(calls: Iterable[Call], approved: str, *, retry: bool, folders: Iterable[Path]) -> str:
    """Check the plan of ``calls`` against the ``approved`` hash; return the plan's sha256.

    Raises UsageError (exit 2, nothing made) when the plan is not the approved one, counting
    the rows that differ and naming the first (or saying the count is unknown)."""
    mine = planned(calls)
    sha = plan_sha256(mine)
    if sha == approved:
        return sha
    what = "retry" if retry else "run"
    kept = read_kept(approved, folders)
    if kept is None:
        raise UsageError(
            f"this {what}'s plan is not the approved plan, so nothing was sent: its sha256 is "
            f"{sha} ({_requests(len(mine))}), the approved one {approved}. How many rows differ "
            f"is unknown: the approved plan's requests were not found ({PLANS}/{approved}.tsv "
            "beside the results or the input, where `reroute plan` keeps them); run `reroute "
            "plan` with the approved sheet and flags to see them, or have this plan approved"
        )
    differ = _differing(mine, kept, whole=not retry)
    if not differ:  # a retry's requests, each one of the approved plan's
        return sha
    first = differ[0]
    mine_rows = {row: (rid, body) for row, rid, body in mine}
    how = _how(first, mine_rows.get(first), kept.get(first))
    raise UsageError(
        f"{_rows(len(differ))} from the approved plan {approved[:12]}…, so nothing was "
        f"sent; the first is row {first}: {how}. (This {what}'s plan has sha256 {sha}, "
        f"{_requests(len(mine))}; the approved one {_requests(len(kept))}.) Send the sheet "
        "that was approved, or have this plan approved (`reroute plan` prints its hash)"
    )


def _differing(mine: list[Request], kept: dict[int, tuple[str, str]], *, whole: bool) -> list[int]:
    """The rows whose request differs from the approved plan's, or is in only one of them
    (``whole``: the approved plan's rows missing here count too)."""
    found = {row for row, rid, body in mine if kept.get(row) != (rid, body)}
    if whole:
        rows = {row for row, _, _ in mine}
        found |= {row for row in kept if row not in rows}
    return sorted(found)


def _requests(count: int) -> str:
    return "1 request" if count == 1 else f"{count:,} requests"


def _rows(count: int) -> str:
    return "1 row differs" if count == 1 else f"{count:,} rows differ"


def _how(row: int, mine: tuple[str, str] | None, approved: tuple[str, str] | None) -> str:
    if mine is None and approved is not None:
        return f"the approved plan sends routing_id {approved[0]} {approved[1]}, this plan nothing"
    if approved is None and mine is not None:
        return f"this plan sends routing_id {mine[0]} {mine[1]}, the approved plan nothing"
    assert mine is not None
    assert approved is not None
    if mine[0] != approved[0]:
        return f"routing_id {mine[0]}, approved {approved[0]}"
    return f"routing_id {mine[0]}, {_fields(mine[1], approved[1])}"


def _fields(body: str, approved: str) -> str:
    """What differs between two bodies, field by field: ``status 1 (approved: 0)``."""
    try:
        now, then = json.loads(body), json.loads(approved)
    except ValueError:
        return f"body {body} (approved: {approved})"
    if not isinstance(now, dict) or not isinstance(then, dict):
        return f"body {body} (approved: {approved})"
    names = [*now, *(name for name in then if name not in now)]
    return ", ".join(
        f"{name} {_shown(now.get(name))} (approved: {_shown(then.get(name))})"
        for name in names
        if now.get(name) != then.get(name)
    )


def _shown(value: object) -> str:
    return "(not sent)" if value is None else json.dumps(value)
