"""The files reroute keeps beside a results file, by name: what every stage that writes,
archives or refuses to overwrite them agrees on (the report's names here; the journal's, the
lock's and the audit files' beside the code that writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

FORMATS: Final = {"html": ".report.html", "md": ".report.md"}


def default_path(results: Path, fmt: str = "html") -> Path:
    """``<results stem>.report.html`` (or ``.report.md``) beside a ``.csv`` results file;
    beside any other, ``<results name>.report.html`` (``out.xlsx.report.html``), as the
    attempts file and run.json are named: out.csv, out.xlsx and out.parquet in one folder each
    get their own report, and archiving one run never moves another's."""
    base = results.stem if results.suffix.lower() == ".csv" else results.name
    return results.with_name(base + FORMATS[fmt])
