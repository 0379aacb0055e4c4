"""Where a run's requests go, and what must hold of its results path before the first one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from batch.errors import UsageError
from batch.settings import RunSettings, is_loopback_host

SANDBOX_IDENTITY: Final = "embedded-sandbox"  # its port changes each time; the run does not


@dataclass(frozen=True)
class Target:
    base_url: str
    key: str | None
    host: str
    sandbox: bool

    @property
    def needs_confirmation(self) -> bool:
        return not self.sandbox and not is_loopback_host(self.host)


def check_results_path(results: Path) -> None:
    """Refuse, before anything is sent, a results path that can never be written."""
    if results.is_dir():
        raise UsageError(f"--results {results} is a directory: give a file path")
    parent = results.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"--results {results}: the folder {parent} does not exist")


@contextmanager
def target(
    settings: RunSettings, key: str | None, *, sandbox: bool, note: Callable[[str], None]
) -> Iterator[Target]:
    """Where requests go: the real host, or the embedded sandbox on a free loopback port
    (limited to the run's own pace; its address is told through ``note``)."""
    if not sandbox:
        url = settings.base_url
        yield Target(url, key, urlsplit(url).hostname or url, False)
        return
    from batch.sandbox.config import SandboxConfig, generate_api_key
    from batch.sandbox.server import serve_in_thread

    config = SandboxConfig(
        api_key=generate_api_key(),
        rate_limit=settings.rate,
        max_concurrent=max(5, settings.concurrency),
    )
    with serve_in_thread(config) as running:
        note(f"sandbox: embedded stand-in API at {running.base_url}")
        yield Target(running.base_url, running.api_key, "127.0.0.1", True)
