"""Who issued a certificate that did not verify: the name an operator needs to ask IT for.

Python's verification error carries only OpenSSL's reason ("unable to get local issuer
certificate"), not the certificate. After a rejection, one more TLS handshake with verification
off reads the certificate the server presents (nothing is sent over that connection), and its
issuer's name (CN, O) is read from the DER by a minimal walk: no dependency for one message.
"""

from __future__ import annotations

import ssl
from typing import Final

import anyio
from anyio.streams.tls import TLSAttribute

_CN: Final = bytes([0x55, 0x04, 0x03])  # OID 2.5.4.3, commonName
_O: Final = bytes([0x55, 0x04, 0x0A])  # OID 2.5.4.10, organizationName


async def presented_issuer(host: str, port: int, *, timeout: float = 5.0) -> str | None:
    """The issuer named in the certificate ``host:port`` presents; None when it cannot be read
    (no answer, no certificate, not a certificate this walk understands)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to read what is presented; nothing is sent
    try:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, port, ssl_context=context, tls_hostname=host)
            async with stream:
                der = stream.extra(TLSAttribute.peer_certificate_binary, None)
    except (OSError, TimeoutError, ssl.SSLError, anyio.BrokenResourceError):
        return None
    return issuer_name(der) if der else None


def issuer_name(der: bytes) -> str | None:
    """``CN, O`` of a DER certificate's issuer (whichever it has), or None."""
    try:
        _, cert, _ = _item(der, 0)  # Certificate ::= SEQUENCE
        _, tbs, tbs_end = _item(der, cert)  # TBSCertificate ::= SEQUENCE
        tag, start, end = _item(der, tbs)
        if tag == 0xA0:  # [0] version, optional
            tag, start, end = _item(der, end)
        _, start, end = _item(der, end)  # after the serial number: the signature algorithm
        _, start, end = _item(der, end)  # issuer ::= Name (a SEQUENCE of SETs)
        names: dict[bytes, str] = {}
        at = start
        while at < end:
            _, rdn, rdn_end = _item(der, at)  # SET
            _, pair, _ = _item(der, rdn)  # SEQUENCE { OID, value }
            _, oid, oid_end = _item(der, pair)
            _, value, value_end = _item(der, oid_end)
            names[der[oid:oid_end]] = der[value:value_end].decode("utf-8", "replace")
            at = rdn_end
        if end > tbs_end:
            return None
    except (IndexError, ValueError):
        return None
    parts = [names[key] for key in (_CN, _O) if names.get(key)]
    return ", ".join(dict.fromkeys(parts)) or None


def _item(der: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER item at ``at``."""
    tag, length = der[at], der[at + 1]
    at += 2
    if length & 0x80:
        size = length & 0x7F
        if not 0 < size <= 4:
            raise ValueError("a length this walk does not read")
        length = int.from_bytes(der[at : at + size], "big")
        at += size
    if at + length > len(der):
        raise ValueError("an item longer than the certificate")
    return tag, at, at + length
