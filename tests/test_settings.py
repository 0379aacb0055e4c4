"""Rates and base URLs: the values every command parses first."""

from __future__ import annotations

import pytest

from batch.errors import UsageError
from batch.settings import Rate, check_base_url, is_loopback_host


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("60/min", 1.0), ("20/s", 20.0), ("3600/h", 1.0), (" 1.5 / s ", 1.5), ("30/MIN", 0.5)],
)
def test_rate_forms(text: str, per_second: float) -> None:
    """Every documented rate form parses to the right requests per second."""
    assert Rate.parse(text).per_second == pytest.approx(per_second)


@pytest.mark.parametrize("text", ["60", "0/s", "-1/min", "ten/s", "5/day", ""])
def test_rate_rejects_nonsense_with_the_forms(text: str) -> None:
    """A bad rate is a UsageError that shows the accepted forms."""
    with pytest.raises(UsageError, match="N/s, N/min or N/h"):
        Rate.parse(text)


def test_rate_round_trips_through_str() -> None:
    """A rate prints the way a user writes it."""
    assert str(Rate.parse("60/min")) == "60/min"
    assert Rate.parse("60/min").interval == 1.0


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "127.8.0.3", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    """Loopback names and addresses are recognised."""
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "api.vocobase.com", "192.168.1.1", "localhost.evil"])
def test_non_loopback_hosts(host: str) -> None:
    """Anything else is not loopback."""
    assert not is_loopback_host(host)


def test_plain_http_only_to_loopback() -> None:
    """http:// is refused for a remote host (the key would travel in clear) and allowed locally."""
    assert check_base_url("http://127.0.0.1:8787/api/v2/") == "http://127.0.0.1:8787/api/v2"
    with pytest.raises(UsageError, match="unencrypted"):
        check_base_url("http://api.vocobase.com/api/v2")
    with pytest.raises(UsageError, match="not an http"):
        check_base_url("ftp://x/y")
