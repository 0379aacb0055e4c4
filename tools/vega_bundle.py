"""Write batch/report/vendor/vega.js: Vega, Vega-Lite and Vega-Embed in one script, no imports.

The report inlines it, so it opens with no network (a jump host, an email attachment). It is
generated once and committed, because bundling takes seconds (vl-convert starts a JavaScript
bundler) and every `run` writes a report. Run again after upgrading vl-convert-python:

    uv run python tools/vega_bundle.py
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import vl_convert

from batch.report.charts import VEGA_LITE  # the Vega-Lite the specs are written for

TARGET = Path(__file__).resolve().parents[1] / "batch" / "report" / "vendor" / "vega.js"


def main() -> None:
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    header = (
        f"/* Vega {vl_convert.get_vega_version()}, Vega-Lite {VEGA_LITE}, Vega-Embed "
        f"{vl_convert.get_vega_embed_version()}: bundled by vl-convert-python "
        f"{version('vl-convert-python')} (tools/vega_bundle.py). BSD-3-Clause, (c) the Vega "
        "authors. */\n"
    )
    TARGET.write_text(header + bundle + "\n", encoding="utf-8")
    print(f"{TARGET}: {TARGET.stat().st_size:,} bytes")  # noqa: T201


if __name__ == "__main__":
    main()
