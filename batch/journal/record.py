"""What defines a run: its identity, and the settings it remembers for resume and retry.

Both live in the journal's meta table (``batch.journal.journal``). The identity decides whether an
invocation continues a run (contract: the input's content, the target base URL, the results
path; with ``--current``, the snapshot's content). The input is its bytes as they are read:
another sheet of the same workbook, or the same bytes read with another ``--separator`` or
``--encoding``, is other rows, so a new input (``reading``), not a resume that sends something
else. The record remembers how the run was made:
target, key variable NAME or key file path (never the key), pace, and the settings that change
what is sent. ``retry`` and a resume reuse the target and pace unless a flag overrides them; a
resume that would send different bodies (another ``--connection-id``, a cutover switch) is
refused, naming the setting, rather than mixing two kinds of request in one results file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from batch.errors import JournalError
from batch.settings import SETTINGS
from batch.settingtable import Memory, Setting

if TYPE_CHECKING:
    from batch.settings import RunSettings
    from batch.sheets.dialect import Reading

RECORD_KEY: Final = "settings"  # the meta key holding the record, as JSON

# Settings that change the bodies a run sends (or which rows it sends): a resume must keep them.
CONTENT_SETTINGS: Final = {
    name: setting.flag or setting.job_key
    for name, setting in SETTINGS.items()
    if setting.memory is Memory.KEEP
}
# How the input's bytes are read into rows: part of the input, so of the run's identity.
READING: Final = {
    "sheet": "the sheet read (--sheet)",
    "separator": "the separator (--separator)",
    "encoding": "the encoding (--encoding)",
}
# How a run said the update's replace semantics are handled (issue 25): a snapshot of the
# current records, or the statement that every row is the complete record. Either one, kept by
# the record, holds for the run's resumes and retries (batch.engine.replacing).
REPLACE_CHOICE: Final = ("current", "rows_are_complete")
# Settings a resume or retry takes from the record when no flag (or job key) gives them.
REUSED_SETTINGS: Final = tuple(
    name for name, setting in SETTINGS.items() if setting.memory is Memory.REUSE
)


def as_kept(value: object) -> object:
    """A setting's value as a record keeps it: JSON's own types as they are, others (a rate, a
    path) as text."""
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def kept(table: Mapping[str, Setting]) -> dict[str, object]:
    """The settings a record keeps (the table says which), with their defaults as it keeps them;
    ``base_url``'s is None, as for a run on the embedded sandbox."""
    found = {name: as_kept(s.default) for name, s in table.items() if s.memory is not None}
    return found | ({"base_url": None} if "base_url" in found else {})


_KEPT: Final = kept(SETTINGS)


def kept_of(
    settings: RunSettings, *, sandbox: bool, table: Mapping[str, Setting] = SETTINGS
) -> dict[str, object]:
    """What a record keeps of ``settings``; the embedded sandbox's URL is not kept (None)."""
    values = {name: as_kept(getattr(settings, name)) for name in kept(table)}
    return values | ({"base_url": None} if sandbox else {})


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (inputs can be large)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def reading_text(sheet: str | None, separator: str | None, encoding: str | None) -> str:
    """How the input is read, as the identity holds it: the flags given ("" when none). A sheet
    is matched ignoring case, so its name is kept casefolded; the dialect flags come checked
    (``tab`` is a tab, ``windows-1252`` is cp1252)."""
    values = {
        "sheet": sheet.casefold() if sheet is not None else None,
        "separator": separator,
        "encoding": encoding,
    }
    given = {name: value for name, value in values.items() if value is not None}
    return json.dumps(given, sort_keys=True) if given else ""


def _reading_of(meta: Mapping[str, str]) -> str:
    """The reading a journal's run was started with. A journal of an older reroute has no
    ``reading`` key: its record's flags say it."""
    if "reading" in meta:
        return meta["reading"]
    record = RunRecord.from_json(meta.get(RECORD_KEY, ""))
    if record is None:
        return ""
    return reading_text(*(record.settings[name] for name in READING))


def _flags(text: str) -> dict[str, Any]:
    try:
        found = json.loads(text) if text else {}
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass(frozen=True, slots=True)
class RunIdentity:
    """What makes two invocations "the same run" (contract: input content, target, results):
    the input is its content as read (the sheet, the CSV dialect)."""

    input_sha256: str
    base_url: str
    results: str  # resolved absolute path of the results file
    # With --current the bodies depend on the snapshot's content too.
    snapshot: str = ""
    reading: str = ""  # reading_text(): --sheet, --separator, --encoding as given

    @classmethod
    def of(
        cls,
        input_path: Path,
        base_url: str,
        results: Path,
        snapshot: str = "",
        reading: Reading | None = None,
    ) -> RunIdentity:
        how = "" if reading is None else (
            reading_text(reading.sheet, reading.separator, reading.encoding)
        )  # fmt: skip
        return cls(
            sha256_file(input_path), base_url.rstrip("/"), str(results.resolve()), snapshot, how
        )

    def as_meta(self) -> dict[str, str]:
        return {
            "input_sha256": self.input_sha256,
            "base_url": self.base_url,
            "results": self.results,
            "snapshot": self.snapshot,
            "reading": self.reading,
        }

    def differences(self, meta: Mapping[str, str]) -> list[str]:
        """What differs between this identity and a journal's ``meta``, in words."""
        found = [
            label
            for key, label in (
                ("input_sha256", "the input file's content"),
                ("base_url", "the base URL"),
                ("results", "the results path"),
                ("snapshot", "the snapshot (--current) file's content"),
            )
            if meta.get(key, "") != self.as_meta()[key]
        ]
        before, now = _flags(_reading_of(meta)), _flags(self.reading)
        found += [label for name, label in READING.items() if before.get(name) != now.get(name)]
        return found

    def check(self, path: Path, meta: Mapping[str, str]) -> None:
        """Raise JournalError when the journal at ``path`` (its ``meta``) is another run's."""
        differs = self.differences(meta)
        if differs:
            raise JournalError(
                f"{path} belongs to a different run ({' and '.join(differs)} changed since it "
                "started): use --fresh to start over (asked before anything is forgotten), or "
                "choose another --results"
            )


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The settings a run remembers (JSON in the journal). Never the key itself.

    The invocation's own facts are fields; the settings it keeps (the table of settings says
    which, batch.settings) are in ``settings``, every one, as the record keeps them (a rate as
    text). The JSON is one flat object of both.
    """

    kind: str = "run"  # "run" or "retry": which command made the journal
    input: str = ""  # the input (run) or results file (retry) as given
    job: str | None = None  # the job file, if the run came from one
    sandbox: bool = False  # the embedded sandbox (base_url None)
    api_key_file: str | None = None  # the path of the key file, or None: api_key_env names it
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "settings", {**_KEPT, **self.settings})  # defaults filled in

    @property
    def key_source(self) -> str:
        """Where the key was read, for messages: the key file, else the variable's name."""
        if self.api_key_file:
            return f"--api-key-file {self.api_key_file}"
        return str(self.settings["api_key_env"])

    def as_dict(self) -> dict[str, Any]:
        """The record as its JSON holds it: the facts and the settings, side by side."""
        facts = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "settings"}
        return facts | dict(self.settings)

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, table: Mapping[str, Setting] = SETTINGS) -> RunRecord | None:
        """The record back; None for text that is not one (a journal of an older reroute).
        Keys it does not know are left out (a journal of a newer reroute)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        facts, known = {f.name for f in fields(cls)} - {"settings"}, kept(table)
        settings = {k: v for k, v in data.items() if k in known}
        return cls(**{k: v for k, v in data.items() if k in facts}, settings=settings)

    def reused(self) -> dict[str, Any]:
        """The settings a resume or retry takes from here unless a flag gives them."""
        values: dict[str, Any] = {name: self.settings[name] for name in REUSED_SETTINGS}
        if self.sandbox:
            values.pop("base_url")
        return {k: v for k, v in values.items() if v is not None}

    def retargeted(self, now: RunRecord) -> RunRecord:
        """This record with ``now``'s target, key and pace: a retry continuing this run's journal
        updates those only (the run's own settings stay, for its resume)."""
        pace = {name: now.settings[name] for name in REUSED_SETTINGS}
        return replace(self, sandbox=now.sandbox, api_key_file=now.api_key_file,
                       settings={**self.settings, **pace})  # fmt: skip

    @property
    def replace_choice(self) -> str | None:
        """How this run handles the replace semantics: ``--current`` (a snapshot),
        ``--rows-are-complete`` (the statement), or None when it has not said."""
        if self.settings["current"] is not None:
            return "--current"
        return "--rows-are-complete" if self.settings["rows_are_complete"] else None

    def keeping_choice(self, earlier: RunRecord | None) -> RunRecord:
        """This record, with ``earlier``'s replace choice when it says none of its own (a
        resume of the run, or a retry of it)."""
        if self.replace_choice is not None or earlier is None or earlier.replace_choice is None:
            return self
        carried = {name: earlier.settings[name] for name in REPLACE_CHOICE}
        return replace(self, settings={**self.settings, **carried})

    def changed_content(self, now: RunRecord) -> list[str]:
        """The flags whose values differ between this record and ``now`` (what a resume
        with ``now`` would send differently)."""
        return [
            flag
            for name, flag in CONTENT_SETTINGS.items()
            if self.settings[name] != now.settings[name]
        ]


def remembered(journal: Path) -> RunRecord | None:
    """The record of the journal at ``journal``, read without writing; None when there is no
    journal or it holds no record (a journal of an older reroute)."""
    text = meta_value(journal, RECORD_KEY)
    return None if text is None else RunRecord.from_json(text)


def meta_value(journal: Path, key: str) -> str | None:
    """The ``key`` of the journal at ``journal``'s meta, read without writing; None when there
    is no journal or no such key."""
    if not journal.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return None if row is None else str(row[0])
