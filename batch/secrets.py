"""Secrets that must not be written down: an API key, or anything that looks like one.

Job files are reviewed and committed, so a key pasted into one (or a long random token that may
be one) is refused before the file is used; the value itself is never echoed.
"""

from __future__ import annotations

import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, Final

KEY_PREFIX: Final = re.compile(r"rg_(?:live|test)_", re.IGNORECASE)
# What the API documents as a key: ``rg_live_<random>`` (the sandbox's ``rg_test_<random>``),
# the random part in the characters a bearer token may hold (RFC 6750 b64token). Anything else
# in the key variable (a CI token, a password) is not sent as the bearer of every request.
API_KEY_SHAPE: Final = re.compile(r"rg_(?:live|test)_[A-Za-z0-9\-._~+/]+=*")
_TOKEN: Final = re.compile(r"^[A-Za-z0-9_\-]{20,}$")

KEY_REFUSED: Final = (
    "this looks like an API key, and job files are reviewed and committed, so they must never "
    "hold one: remove it (and rotate the key if it was committed), put the key in an "
    "environment variable and write that variable's NAME as [target].api_key_env"
)


def looks_like_api_key(text: str) -> bool:
    """True for anything a reviewer should not see in a job file: a key or a long random token.

    Keys have the ``rg_live_``/``rg_test_`` prefix; a token is 20+ characters of
    ``[A-Za-z0-9_-]`` with a long unbroken run mixing letters and digits and high entropy.
    UUIDs (connection ids) and variable names like ``VOCOBASE_API_KEY`` are not tokens.
    """
    text = text.strip()
    if KEY_PREFIX.search(text) or text.lower().startswith("bearer "):
        return True
    if not _TOKEN.match(text) or is_uuid(text):
        return False
    longest = max(re.split(r"[_\-]", text), key=len)
    if len(longest) < 16 or not (re.search(r"\d", longest) and re.search(r"[A-Za-z]", longest)):
        return False
    return _entropy(text) >= 3.0  # repeated patterns (a1a1a1...) are not secrets


def is_api_key(text: str) -> bool:
    """True when ``text`` has the shape of an API key (``rg_live_...`` or ``rg_test_...``)."""
    return API_KEY_SHAPE.fullmatch(text) is not None


def not_a_key(source: str) -> str:
    """Why the value in ``source`` (a variable's name, or ``--api-key-file PATH``) is not sent;
    never the value itself."""
    return (
        f"{source} does not hold an API key (keys look like rg_live_..., the sandbox's "
        "rg_test_...), so nothing was sent and the value is not shown: put the key there, or "
        "name the variable that holds it ([target].api_key_env) or its file (--api-key-file)"
    )


def strings_of(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a parsed document (and inside its arrays), with its key as users write it."""
    for key, value in doc.items():
        name = f"[{key}]" if not prefix and isinstance(value, dict) else key
        full = f"{prefix}.{name}" if prefix else name
        yield from _values(full, value)


def _values(key: str, value: object) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield key, value
    elif isinstance(value, dict):
        yield from strings_of(value, key)
    elif isinstance(value, list):
        for item in value:
            yield from _values(key, item)


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower()
    except ValueError:
        return False


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())
