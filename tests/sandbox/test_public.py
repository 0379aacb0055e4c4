"""Other test suites drive the sandbox through ``batch.sandbox`` alone (issue 27)."""

from __future__ import annotations

import batch.sandbox
from batch.sandbox.lists import SandboxBot as InnerBot
from batch.sandbox.server import Tls as InnerTls


def test_the_package_exports_what_a_suite_needs_to_start_a_sandbox() -> None:
    needed = {"SandboxConfig", "Faults", "serve_in_thread", "create_app", "Tls", "SandboxBot"}
    assert needed <= set(batch.sandbox.__all__)
    # The same objects as the inner modules define, not copies that could drift.
    assert batch.sandbox.Tls is InnerTls
    assert batch.sandbox.SandboxBot is InnerBot
    assert sorted(batch.sandbox.__all__) == batch.sandbox.__all__
