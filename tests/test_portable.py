"""Windows and macOS: every command starts without POSIX-only modules; none is used unguarded."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BATCH = ROOT / "batch"

# Modules Windows does not have (msvcrt and winreg are the other way round).
POSIX_ONLY = {"fcntl", "termios", "tty", "pty", "pwd", "grp", "resource", "syslog", "posix"}
WINDOWS_ONLY = {"msvcrt", "winreg", "winsound", "_winapi"}
# Attributes that exist on one family only: reading one unguarded is an AttributeError there.
ONE_PLATFORM_ATTRS = {
    "os": {
        "fork",
        "forkpty",
        "getuid",
        "geteuid",
        "getgid",
        "getegid",
        "setsid",
        "setpgrp",
        "getpgid",
        "killpg",
        "pread",
        "pwrite",
        "sync",
        "statvfs",
        "mkfifo",
        "chown",
        "lchown",
        "getloadavg",
        "O_CLOEXEC",
        "O_NOFOLLOW",
        "O_BINARY",
        "startfile",
        "WNOHANG",
        "sched_getaffinity",
        "posix_fadvise",
        "getpriority",
        "nice",
    },
    "signal": {
        "SIGKILL",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGPIPE",
        "SIGBREAK",
        "CTRL_C_EVENT",
        "CTRL_BREAK_EVENT",
        "alarm",
        "pause",
        "setitimer",
        "siginterrupt",
        "pthread_kill",
        "pthread_sigmask",
        "sigwait",
    },
}

# A CSV of two valid rows for the commands below.
ROWS = (
    "routing_id,for_inbound_call,for_outbound_call,status,inbound_websocket_bot_id\n"
    "1,3,4,1,7\n2,1,4,0,\n"
)

# Run one reroute command with POSIX-only modules unavailable, as on Windows. ``run`` takes the
# lock: filelock is imported first so it keeps this machine's primitive (on Windows it uses
# LockFileEx, no fcntl); nothing imported after it can have fcntl.
CHILD = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "run":
        import filelock
    for name in {blocked!r}:
        sys.modules[name] = None  # "import fcntl" now raises ImportError
    from batch.cli import main
    sys.argv = ["reroute", *sys.argv[1:]]
    try:
        main()
    except SystemExit as stop:
        print("exit", stop.code or 0)
    print("filelock loaded:", "filelock" in sys.modules)
    """
).format(blocked=sorted(POSIX_ONLY - {"posix"}))  # the stdlib picks posix/nt itself


def _guarded(test: ast.expr) -> bool:
    source = ast.unparse(test)
    return "sys.platform" in source or "hasattr(" in source or "os.name" in source


def unguarded_uses(source: str) -> list[str]:
    """POSIX- or Windows-only imports and attributes outside a platform guard, as text."""
    found: list[str] = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.If | ast.IfExp) and _guarded(node.test):
            guarded = True
        if not guarded:
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
                if node.module in ONE_PLATFORM_ATTRS:
                    wanted = {alias.name for alias in node.names}
                    found.extend(sorted(wanted & ONE_PLATFORM_ATTRS[node.module]))
            found.extend(n for n in names if n in POSIX_ONLY | WINDOWS_ONLY)
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.attr in ONE_PLATFORM_ATTRS.get(node.value.id, set())
            ):
                found.append(f"{node.value.id}.{node.attr}")
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(source), False)
    return found


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["validate"], ["plan"], ["run", "--sandbox", "--rate", "20/s"]], ids=lambda c: c[0]
)
def test_commands_work_without_fcntl(tmp_path: Path, command: list[str]) -> None:
    """validate, plan and run --sandbox succeed with fcntl, termios, pwd... unimportable."""
    source = tmp_path / "changes.csv"
    source.write_text(ROWS)
    argv = [command[0], str(source), *command[1:], "--results", str(tmp_path / "out.csv")]
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert "exit 0" in done.stdout, done.stderr
    # Only the command that takes the run lock loads the lock library.
    assert f"filelock loaded: {command[0] == 'run'}" in done.stdout
    if command[0] == "run":
        assert "succeeded" in done.stdout
        assert (tmp_path / "out.csv").read_text().count("succeeded") == 2


@pytest.mark.parametrize(
    "path", sorted(BATCH.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_no_one_platform_call_outside_a_guard(path: Path) -> None:
    """No module of batch/ imports fcntl (and the like) or calls os.fork (...) unguarded."""
    assert unguarded_uses(path.read_text(encoding="utf-8")) == []


def test_the_scan_sees_what_it_should() -> None:
    """The scanner flags a bare import fcntl and os.getuid(), and passes guarded ones."""
    bare = "import fcntl\nimport os\nos.getuid()\nfrom signal import SIGKILL\n"
    assert unguarded_uses(bare) == ["fcntl", "os.getuid", "SIGKILL"]
    guarded = (
        "import sys, os, signal\n"
        "if sys.platform != 'win32':\n    import fcntl\n    os.getuid()\n"
        "kill = signal.SIGKILL if hasattr(signal, 'SIGKILL') else signal.SIGTERM\n"
    )
    assert unguarded_uses(guarded) == []


def test_the_lock_is_the_library_lock(tmp_path: Path) -> None:
    """While a run holds its lock, filelock's own FileLock on the same file cannot take it."""
    import filelock

    from batch.journal.lock import RunLock

    with RunLock(tmp_path / "r.csv") as lock:
        assert lock.path.read_bytes()[:1] == b" "  # byte 0: Windows' lock byte, kept blank
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(lock.path).acquire(blocking=False)


@pytest.mark.slow
def test_output_in_a_code_page_that_cannot_spell_a_cell(tmp_path: Path) -> None:
    """Output redirected in a narrow code page (Windows' cp1252, a C locale) prints "?" for a
    character it lacks instead of ending with UnicodeEncodeError."""
    source = tmp_path / "in.csv"
    source.write_text("routing_id,for_inbound_call,for_outbound_call,status\n中,1,4,1\n", "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "batch", "validate", str(source)],
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        check=False,
        timeout=60,
    )
    assert b"Traceback" not in done.stderr
    assert done.returncode == 1  # some rows invalid: the command ran to its end
    assert b"routing_id: value '?' is not an integer" in done.stdout
