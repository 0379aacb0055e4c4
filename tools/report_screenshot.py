"""Make docs/report.png: the report of a sandbox run with faults, in headless Chromium.

    uv run python tools/report_screenshot.py

The same run and browser as tests/report/test_browser.py (network blocked); the page and its
screenshot are written to a temporary folder, the screenshot copied to docs/.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from batch.sandbox import RunningSandbox, SandboxConfig, generate_api_key, serve_in_thread  # noqa: E402
from tests.report_browser import open_report, sandbox_run_with_faults  # noqa: E402

TARGET = ROOT / "docs" / "report.png"


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, ExitStack() as stack:

        def start(**fields: Any) -> RunningSandbox:
            fields.setdefault("api_key", generate_api_key())
            fields.setdefault("max_concurrent", None)
            return stack.enter_context(serve_in_thread(SandboxConfig(**fields)))

        results, _ = sandbox_run_with_faults(start, Path(folder))
        shot = Path(folder) / "report.png"
        seen = open_report(results.with_name(results.stem + ".report.html"), screenshot=shot)
        if seen.errors:
            raise SystemExit(f"the page logged errors: {seen.errors}")
        TARGET.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, TARGET)
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes")  # noqa: T201


if __name__ == "__main__":
    main()
