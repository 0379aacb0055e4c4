"""The run's HTTP client and how hard to try one row: the values the sender is built from.

How requests leave the machine (proxies, extra trusted CAs) arrives as a :class:`Network` value:
the CLI reads the environment, httpx does not (``trust_env=False``), so a proxy set for the
outside world never carries loopback traffic (the sandbox, a local stand-in).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import ssl
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import truststore

from batch import __version__
from batch.errors import UsageError
from batch.send.outage import outage_limit
from batch.settings import RunSettings, is_loopback_host

USER_AGENT: Final = f"reroute/{__version__}"


@dataclass(frozen=True, slots=True)
class SendPolicy:
    """How hard to try one row. Flows down from the run settings."""

    max_attempts: int = 5  # requests per row, first one included (--max-attempts)
    timeout: float = 30.0  # seconds for one whole request, connect to last byte (--timeout)
    max_retry_after: float = 300.0  # a 429 asking for longer fails the row (--max-retry-after)
    backoff_initial: float = 1.0  # wait after the first failed attempt, before jitter
    backoff_max: float = 60.0  # the exponential backoff never waits longer than this
    jitter: float = 0.5  # up to this share of each backoff is taken off at random
    # The run may be throttled (every answer a 429) this long before it stops (--max-outage).
    max_throttled: float = 900.0

    @classmethod
    def of(cls, settings: RunSettings) -> SendPolicy:
        """The policy a run's settings ask for (--max-attempts, --timeout, --max-retry-after,
        --max-outage)."""
        return cls(settings.max_attempts, settings.timeout, settings.max_retry_after,
                   max_throttled=outage_limit(settings))  # fmt: skip

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise UsageError(f"max attempts is {self.max_attempts}: use 1 or more")
        for name in ("timeout", "max_retry_after", "backoff_initial", "backoff_max",
                     "max_throttled"):  # fmt: skip
            value = getattr(self, name)
            if (
                not math.isfinite(value)
                or value < 0
                or (name in ("timeout", "max_throttled") and value == 0)
            ):
                raise UsageError(f"{name.replace('_', ' ')} is {value}: use a positive number")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter is {self.jitter}: use a share between 0 and 1")


@dataclass(frozen=True, slots=True)
class Network:
    """Proxies and extra trusted CAs, as the environment gave them (read by the CLI only):
    ``HTTPS_PROXY``/``HTTP_PROXY`` (``ALL_PROXY``), ``NO_PROXY``, ``SSL_CERT_FILE``,
    ``SSL_CERT_DIR``."""

    https_proxy: str | None = None
    http_proxy: str | None = None
    no_proxy: str = ""
    ca_file: str | None = None  # a PEM file of CAs to trust besides the system's
    ca_dir: str | None = None  # a folder of them (OpenSSL's hashed layout)

    def proxy_for(self, url: str) -> str | None:
        """The proxy requests to ``url`` go through; None: straight (loopback always is, and
        any host ``NO_PROXY`` names)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if is_loopback_host(host) or _bypassed(host, self.no_proxy):
            return None
        proxy = self.https_proxy if parts.scheme == "https" else self.http_proxy
        return proxy or None

    def via(self, url: str) -> str:
        """``through the proxy http://proxy:3128`` (credentials left out), or ""."""
        proxy = self.proxy_for(url)
        return f"through the proxy {shown_proxy(proxy)}" if proxy else ""

    def ssl_context(self) -> ssl.SSLContext:
        """Verification on, always: what the operating system trusts (truststore, as pip and
        uv do), plus ``ca_file``/``ca_dir`` (a private CA, a TLS-inspecting proxy)."""
        context = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self.ca_file or self.ca_dir:
            try:
                context.load_verify_locations(cafile=self.ca_file, capath=self.ca_dir)
            except (OSError, ssl.SSLError) as exc:
                where = " / ".join(
                    f"{name} {value}"
                    for name, value in (("SSL_CERT_FILE", self.ca_file),
                                        ("SSL_CERT_DIR", self.ca_dir))
                    if value
                )  # fmt: skip
                raise UsageError(
                    f"{where}: cannot load the CA certificates there ({exc}): point it at a "
                    "PEM file (or a folder) of CA certificates"
                ) from None
        return context


def shown_proxy(proxy: str) -> str:
    """A proxy URL without its user and password (they may be secrets)."""
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _bypassed(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` as curl reads it: ``*``, host names (``example.com`` covers its
    subdomains, a leading dot or ``*.`` too), IP addresses and networks (``10.0.0.0/8``)."""
    host = host.lower().rstrip(".")
    for raw in no_proxy.replace(" ", ",").split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        entry = entry.removeprefix("*").lstrip(".").rstrip(".")
        if ":" in entry and "/" not in entry and entry.count(":") == 1:
            entry = entry.split(":", 1)[0]  # host:port: the port is not ours to match
        try:
            if ipaddress.ip_address(host.strip("[]")) in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            pass
        if host == entry or host.endswith("." + entry):
            return True
    return False


def build_client(
    base_url: str,
    api_key: str | None,
    *,
    timeout: float,
    concurrency: int,
    transport: httpx.AsyncBaseTransport | None = None,
    network: Network | None = None,
) -> httpx.AsyncClient:
    """The HTTP client of a run: the only place the key goes into a header.

    TLS verification is always on (``network``'s trust: the system's, plus SSL_CERT_FILE or
    SSL_CERT_DIR); requests go through ``network``'s proxy unless the host is loopback or
    NO_PROXY names it; the environment is never read here. The pool holds as many
    connections as requests in flight; redirects are not followed (a redirected POST is an
    answer to report, not to chase). ``api_key=None`` sends no Authorization header (the
    embedded sandbox needs none).
    """
    network = network or Network()
    if concurrency < 1:
        raise UsageError(f"concurrency is {concurrency}: use 1 or more requests in flight")
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"timeout is {timeout}: use a positive number of seconds")
    # Content-Type here, not per request: httpx merges per-request headers at a cost that
    # showed in the overhead benchmark, and every request this client sends is JSON.
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    if api_key is not None:
        key = api_key.strip()
        # Checked here, without echoing it: httpx's own error for a bad header value would
        # print the value, and with it the key.
        if not key or not key.isascii() or not key.isprintable() or " " in key:
            raise UsageError(
                "the API key is empty or holds spaces, control or non-ASCII characters: "
                "check VOCOBASE_API_KEY or the --api-key-file contents"
            )
        headers["Authorization"] = f"Bearer {key}"
    return _CookielessClient(
        base_url=base_url,
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        verify=_context(network) if base_url.startswith("https:") else _NO_TLS,
        follow_redirects=False,
        transport=transport,
        proxy=None if transport is not None else network.proxy_for(base_url),
        trust_env=False,
    )


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing: always empty, so no request carries a Cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None


_NO_COOKIES: Final = _NoCookies()


class _CookielessClient(httpx.AsyncClient):
    """A client that neither keeps nor sends cookies.

    The API authenticates each request by its key; a cookie a server or a load balancer sets
    has no part in it, and one request of a run must not carry state another left behind.
    Also a speed unit: httpx reads every answer's headers for cookies through urllib's
    cookie machinery (~60 us an answer, ~3% of a request against the sandbox;
    docs/dev/benchmarks.md), and this store skips that.
    """

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None


def _no_tls() -> ssl.SSLContext:
    """For a plain-http client (loopback only, settings.check_base_url): verification on and
    no certificate trusted, so TLS, if it ever came up, fails closed; and no trust store loaded
    for a client that uses none (~0.2 s of every sandbox run's start, measured)."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostname checked


_NO_TLS: Final = _no_tls()


@functools.cache
def _context(network: Network) -> ssl.SSLContext:
    """The network's context, built once per process and network: loading the system's trust
    store costs milliseconds, and a process (the tests above all) builds many clients."""
    return network.ssl_context()
