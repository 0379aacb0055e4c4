"""What an entry of the table of settings says, and how the table is read from its dataclass.

The table is ``batch.settings.RunSettings`` itself: each field is declared with
``field(default=..., metadata=about(...))``, and :func:`table_of` reads the entries back as
:class:`Setting` values. The layers derive what they need from them (batch.config.jobs: the
job-file schema; batch.config.coerce: the converters, by :class:`Kind`; batch.journal.record:
what a run's record keeps, by :class:`Memory`; batch.cli.options: the flags' help).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class Kind(StrEnum):
    """What a setting's value is: it picks the converter that reads the value from a flag, a job
    key, a variable or a journal (batch.config.coerce), the TOML types its job key takes
    (batch.config.jobs), and how the help shows its default."""

    PATH = "path"
    URL = "url"  # https://, or http:// to loopback (check_base_url)
    VARIABLE = "variable"  # the NAME of an environment variable
    UUID = "uuid"
    RATE = "rate"  # 60/min
    COUNT = "count"  # a whole number >= 1
    ROWS = "rows"  # a count, also as digits in text (--canary)
    SECONDS = "seconds"  # a number > 0
    DURATION = "duration"  # seconds, or 90s, 15m, 1h
    SWITCH = "switch"  # true or false
    MOMENT = "moment"  # a window bound: ISO-8601 with its offset, or a time of day
    BUDGET = "budget"  # 5% or 10
    SHEET = "sheet"
    SEPARATOR = "separator"
    ENCODING = "encoding"
    SHA256 = "sha256"  # 64 hex digits (a plan's hash, as `reroute plan` prints it)


class Memory(StrEnum):
    """What the journal's record of a run (batch.journal.record.RunRecord) does with a setting."""

    RECORD = "record"  # kept, for the record (how the input was read, the snapshot's path)
    REUSE = "reuse"  # kept; a resume or retry takes it unless a flag or the job gives one
    KEEP = "keep"  # kept; a resume with another value is refused (the bodies would change)


_ABOUT: Final = "batch.setting"  # the key of a field's entry in its metadata


def about(
    kind: Kind,
    *,
    job: str | None = None,
    flag: str | None = "",
    help: str = "",
    env: str | None = None,
    memory: Memory | None = None,
) -> Mapping[str, object]:
    """A field's entry in the table of settings, as ``field(metadata=...)`` holds it.

    ``job``: the job file's table that holds the key (``"pace"`` for ``[pace]``), ``""`` for a
    top-level key, None for none. ``flag``: ``""`` spells the field's name (``--keep-runs``),
    None says there is none. ``help``: the flag's help; ``{default}`` and ``{env}`` are filled
    in (write a literal brace twice). ``memory``: None when the run's record does not keep it.
    """
    return {_ABOUT: Setting("", kind, None, job, flag, help, env, memory)}  # named by table_of


@dataclass(frozen=True, slots=True)
class Setting:
    """One entry of the table of settings (``SETTINGS``)."""

    name: str
    kind: Kind
    default: Any  # None where the field has none (input, results)
    job: str | None
    flag: str | None
    help: str
    env: str | None
    memory: Memory | None

    @property
    def job_key(self) -> str:
        """The job-file key as messages name it: ``[pace].rate``, ``sheet``."""
        return f"[{self.job}].{self.name}" if self.job else self.name

    @property
    def help_text(self) -> str:
        return self.help.format(default=self.shown_default, env=self.env)

    @property
    def shown_default(self) -> str:
        """The default as a user would write it: ``60/min``, ``15m``, ``30``."""
        if self.kind is Kind.DURATION:
            return _short_duration(float(self.default))
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


def _short_duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def table_of(cls: type[DataclassInstance]) -> dict[str, Setting]:
    """The table of settings of ``cls`` (RunSettings, or a test's wider one), in field order."""
    table: dict[str, Setting] = {}
    for item in fields(cls):
        if _ABOUT not in item.metadata:
            raise TypeError(f"{cls.__name__}.{item.name} is not in the table of settings: "
                            "declare it with field(metadata=about(...))")  # fmt: skip
        entry: Setting = item.metadata[_ABOUT]
        flag = "--" + item.name.replace("_", "-") if entry.flag == "" else entry.flag
        default = None if item.default is MISSING else item.default
        table[item.name] = Setting(
            item.name, entry.kind, default, entry.job, flag, entry.help, entry.env, entry.memory
        )
    return table
