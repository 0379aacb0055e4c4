"""The journal's log: an append-only file mapped into memory (a speed unit, fenced here).

What it buys: a record copied into a shared mapping is in the operating system's page cache the
moment the copy ends, as with ``os.write``, so it survives ``kill -9`` (not a power cut), with no
system call per record; the one ``write`` a row cost ~10 us in a real run (docs/dev/benchmarks.md).
The journal copies the records into SQLite in batches and then empties the log; opening a
journal first copies in what a process that died left here (:func:`read_records`).
"""

from __future__ import annotations

import json
import mmap
import os
from pathlib import Path
from typing import Any, Final

from batch.errors import JournalError

# The log's size on disk while a run writes it (zeros after the last record): room for many
# batches of ordinary records; it grows for a record that does not fit.
LOG_SIZE: Final = 1 << 20


def read_records(log: Path, *widths: int) -> tuple[list[tuple[Any, ...]], int]:
    """The records a log holds, and how many bytes they take (0: none, or no log).

    The records end at the first zero byte (no record holds one: JSON escapes it). Every line
    is one record: as many values as one of ``widths``. A last line cut short (the process
    killed while copying it in) is skipped: lines are copied in one after another, so only the
    last can be incomplete. Any other bad line is a JournalError.
    """
    try:
        text = log.read_bytes()
    except FileNotFoundError:
        return [], 0
    text = text.split(b"\0", 1)[0]
    records = []
    lines = text.split(b"\n")
    for n, line in enumerate(lines):
        if not line:
            continue
        try:
            values = json.loads(line)
        except ValueError:
            values = None
        if not isinstance(values, list) or len(values) not in widths:
            if n >= len(lines) - 2:  # the last line: written only in part
                break
            raise JournalError(f"{log}: line {n + 1} is not a journal record")
        records.append(tuple(values))
    return records, len(text)


def zero_records(log: Path, used: int) -> None:
    """Zeros over the first ``used`` bytes: a mapped file must never shrink under a mapping."""
    if used:
        with log.open("r+b") as handle:
            handle.write(bytes(used))


class MappedLog:
    """The log file mapped into memory (shared with the file, as ``write`` is).

    The file is written with zeros first, its space allocated: a full disk is an error here, at
    open, never a fault halfway through a run. It only ever grows, and only while unmapped
    (:meth:`grow` closes the mapping first); it is never truncated, and removed only after
    :meth:`close`: Windows refuses to shrink or remove a file that is mapped.
    """

    def __init__(self, path: Path) -> None:
        self.used = 0  # bytes of records since the log was last emptied
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        try:
            self._map = self._mapped(max(os.fstat(self._fd).st_size, LOG_SIZE))
        except (OSError, ValueError):
            os.close(self._fd)
            raise

    def _mapped(self, size: int) -> mmap.mmap:
        have = os.fstat(self._fd).st_size
        if have < size:
            zeros = bytes(size - have)
            os.lseek(self._fd, have, os.SEEK_SET)  # no os.pwrite on Windows
            while zeros:  # a regular file takes it whole; a short write is a full disk
                zeros = zeros[os.write(self._fd, zeros) :]
        return mmap.mmap(self._fd, size)

    def append(self, data: bytes) -> bool:
        """Copy ``data`` in after the records; False when it does not fit (nothing copied)."""
        end = self.used + len(data)
        if end > len(self._map):
            return False
        self._map[self.used : end] = data
        self.used = end
        return True

    def grow(self, room: int) -> None:
        """Make room for ``room`` more bytes (a record larger than the log)."""
        size = max(2 * len(self._map), self.used + room)
        self._map.close()
        self._map = self._mapped(size)

    def empty(self) -> None:
        """Zeros over the records (all copied into SQLite)."""
        self._map[: self.used] = bytes(self.used)
        self.used = 0

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
