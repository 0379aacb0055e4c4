"""`python -m batch` does what the `reroute` console script does."""

from __future__ import annotations

from batch.cli import main

main()
