# SPDX-License-Identifier: Apache-2.0
"""What a complete HTTP/1.x request head must satisfy before the app sees it.

Shared by the hardened uvicorn and hypercorn protocols; granian's parser (hyper) applies
its own rules. Each rule closes a gap one of the parsers leaves open, measured by
``tests/adversarial``:

* too many header fields, or too many bytes, → 431 (neither httptools nor h11 counts
  fields; httptools has no size limit, h11's applies only to an incomplete head);
* a missing Host on HTTP/1.1, or more than one Host → 400 (RFC 9112 section 3.2; httptools
  accepts both, and a trusted-host check that reads one Host while something else reads
  the other is a bypass);
* Transfer-Encoding with Content-Length, or on HTTP/1.0 → 400 (RFC 9112 section 6.1: the
  framing is ambiguous; h11 lets Transfer-Encoding win and keeps the connection, so a
  request hidden in the body is served next: request smuggling);
* a Transfer-Encoding other than exactly ``chunked`` → 501 (the only coding we decode;
  ``identity, chunked`` or a repeated ``chunked`` means the sender and a proxy in front
  may disagree about where the body ends);
* an HTTP version other than 1.0/1.1 → 505 (h11 accepts any ``digit.digit``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class HeadSettings(Protocol):
    """Where the limits come from (``ServerConfig``); a Protocol keeps this layer free of
    the serving package."""

    @property
    def max_header_bytes(self) -> int: ...
    @property
    def max_header_count(self) -> int: ...
    @property
    def header_read_timeout(self) -> float: ...


@dataclass(frozen=True)
class HeadLimits:
    """The request-head limits a server protocol enforces (from ``ServerConfig``)."""

    max_bytes: int = 16 * 1024
    max_count: int = 100
    read_timeout: float = 10.0

    @classmethod
    def of(cls, cfg: HeadSettings) -> HeadLimits:
        return cls(cfg.max_header_bytes, cfg.max_header_count, cfg.header_read_timeout)


def head_status(
    http_version: str,
    line_bytes: int,
    headers: Iterable[tuple[bytes, bytes]],
    limits: HeadLimits,
) -> int | None:
    """The status refusing a complete request head, or None when the head is acceptable.

    ``line_bytes`` is the size of the request line; ``headers`` are (lower-case name,
    value) pairs as the parser delivered them. One pass, no allocation: it runs for
    every request.
    """
    if http_version not in ("1.0", "1.1"):
        return 505
    size = line_bytes
    count = hosts = lengths = codings = 0
    coding = b""
    for name, value in headers:
        count += 1
        size += len(name) + len(value) + 4  # ": " and CRLF
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
        elif name == b"transfer-encoding":
            codings += 1
            coding = value
    if count > limits.max_count or size > limits.max_bytes:
        return 431
    if hosts > 1 or (hosts == 0 and http_version == "1.1"):
        return 400
    if codings and (lengths or http_version == "1.0"):
        return 400
    if codings > 1 or (codings and coding.strip().lower() != b"chunked"):
        return 501
    return None
