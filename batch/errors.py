"""Every exception reroute raises on purpose, and when.

A bad *row* is never an exception: it is a value (an ``invalid`` or ``failed`` outcome), because
an exception escaping a worker cancels the whole task group. Exceptions are for problems that stop
a command. Foreign exceptions (polars, httpx, sqlite3, tomllib) are translated once, at the
boundary where they happen, with ``raise X(...) from exc``.

    RerouteError                  base; ``str(exc)`` is one line a user can act on
    ├── UsageError                a flag or setting value is wrong (bad --rate, http:// to a
    │                             non-loopback host, both a key file and no key...)  -> exit 2
    ├── InputFileError            an input/snapshot/results file cannot be used as a whole:
    │                             missing, unreadable, not UTF-8, corrupt, a required column
    │                             absent, duplicate columns                          -> exit 2
    ├── JobFileError              a job file is unreadable or wrong (unknown key, bad type,
    │                             a literal API key)                                 -> exit 2
    ├── JournalError              the run's journal is unusable, or belongs to a different run
    │                                                                                -> exit 2
    ├── LockedError               another live process holds this run                -> exit 2
    ├── AccountUnreadable         the preflight could not read the account's bots or
    │                             connections (a shape not documented, a 4xx): nothing is
    │                             sent, never half-checked                           -> exit 2;
    │                             ``stops`` set (the key refused, the server failing after
    │                             every retry): not the sheet's fault, the run stops -> exit 3
    ├── RunStopped                the run stopped mid-way for a fault of its own (its journal
    │                             could not be written); the same command resumes   -> exit 3
    └── TransportError            one request got no usable HTTP answer (raised per attempt by
        │                         the sender; the retry layer turns it into an outcome)
        ├── RequestTimeout        no answer within --timeout (code TIMEOUT)
        ├── ConnectionFailed      connect refused/reset/dropped (code CONNECTION_ERROR)
        │   └── NotConnected      no connection was made at all: nothing reached the host
        │       └── NameNotResolved   the host name does not resolve (DNS)
        ├── CertificateRejected   the server's TLS certificate failed verification (code
        │                         CONNECTION_ERROR; final: retrying cannot fix it)
        ├── ProxyAuthRequired     the proxy answered 407: it lets nothing through without
        │                         credentials (code CONNECTION_ERROR; final, as above)
        └── HostUnreachable       not sent again: the run gave up on the host (an outage past
                                  --max-outage, a host that can never answer); code
                                  HOST_UNREACHABLE, and a resumed run sends the row again
"""

from __future__ import annotations

from pathlib import Path


class RerouteError(Exception):
    """Base of every error reroute raises on purpose. Its text is one actionable line."""


class UsageError(RerouteError):
    """A command-line flag, environment value or setting is wrong. Raised before any I/O."""


class InputFileError(RerouteError):
    """A whole file cannot be used (as opposed to a bad row, which is a value)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class JobFileError(RerouteError):
    """A job file cannot be used; the message names the file and the key."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class JournalError(RerouteError):
    """The journal cannot be opened, or it records a different run than this one."""


class LockedError(RerouteError):
    """Another live process is running the same run (same input, target and results)."""


class AccountUnreadable(RerouteError):
    """A list of the account (bots, connections) could not be read whole: the preflight stops
    before any update rather than judge rows against half a list.

    ``stops``: the stop reason (``batch.engine.stop.StopReason``) when the cause is not the sheet's
    nor the command's but the key's or the server's (a 401/403, transient failures after every
    retry): the run then stops as the sending would (exit 3, results written, resumable)
    instead of refusing (exit 2)."""

    def __init__(self, message: str, *, stops: str = "") -> None:
        self.stops = stops
        super().__init__(message)


class RunStopped(RerouteError):
    """The run had to stop after it may have sent requests (a journal that cannot be written):
    never "nothing sent"; what the journal holds stands, and the same command resumes."""


class TransportError(RerouteError):
    """A request got no usable HTTP answer. ``code`` is the results file's error_code."""

    code = "CONNECTION_ERROR"


class RequestTimeout(TransportError):
    """No answer arrived within the per-request timeout."""

    code = "TIMEOUT"


class ConnectionFailed(TransportError):
    """The connection could not be made, or was dropped before an answer."""

    code = "CONNECTION_ERROR"


class CertificateRejected(TransportError):
    """The server's TLS certificate did not verify. Not retried: every attempt would fail alike."""

    code = "CONNECTION_ERROR"


class ProxyAuthRequired(TransportError):
    """The proxy the requests go through asked for credentials (407 to the tunnel): none
    reached the API, and none will until the proxy settings are fixed. Not retried."""

    code = "CONNECTION_ERROR"


class NotConnected(ConnectionFailed):
    """No connection could be made (refused, no route, TLS handshake broken off): the request
    never reached the server."""


class NameNotResolved(NotConnected):
    """The host name does not resolve (``EAI_NONAME``): no request can reach it until the name
    or the DNS is fixed."""


class HostUnreachable(TransportError):
    """A row's request was not sent again because the run gave up on the host: the row is not
    judged on its merits, and a resumed run sends it again (``batch.model.RESEND_CODES``)."""

    code = "HOST_UNREACHABLE"
