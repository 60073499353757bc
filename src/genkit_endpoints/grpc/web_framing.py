# SPDX-License-Identifier: Apache-2.0
"""gRPC-Web wire format: length-prefixed frames, the trailers frame, text mode, timeouts.

A gRPC-Web body is a run of frames — one flag byte (``0x80``: trailers, ``0x01``:
compressed), a four-byte big-endian length, the payload — exactly as on HTTP/2, except
that the status travels in a last frame of ``name: value`` lines instead of HTTP
trailers, which browsers cannot read. Text mode (``application/grpc-web-text``) is the
same bytes in base64, because some browser transports can only stream text; a sender
may encode each frame on its own, so a text body can be several padded base64 runs in a
row. Nothing here knows about ASGI or the servicer.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from collections.abc import Iterable

__all__ = [
    "COMPRESSED",
    "TRAILERS",
    "FramingError",
    "decode_text",
    "frame",
    "parse_timeout",
    "split_frames",
    "trailers_frame",
]

TRAILERS = 0x80
COMPRESSED = 0x01
_HEADER = struct.Struct(">BI")
# A padded base64 run ends at its "=" padding; the next run starts right after it.
_RUN_END = re.compile(rb"(?<==)(?=[^=])")
_TIMEOUT = re.compile(r"([0-9]{1,8})([HMSmun])")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


class FramingError(ValueError):
    """The body is not a well-formed run of gRPC-Web frames (a protocol error)."""


def decode_text(body: bytes) -> bytes:
    """The bytes a text-mode body carries: one or more base64 runs, each padded."""
    runs = _RUN_END.split(b"".join(body.split()))  # line breaks are not part of the data
    try:
        return b"".join(base64.b64decode(run, validate=True) for run in runs if run)
    except binascii.Error as exc:
        raise FramingError("The request body is not valid base64.") from exc


def split_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The ``(flags, payload)`` of every frame; a cut-short frame is a ``FramingError``."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < _HEADER.size:
            raise FramingError("The request body ends inside a frame header.")
        flags, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        if len(data) - offset < length:
            raise FramingError("The request body ends inside a message.")
        frames.append((flags, data[offset : offset + length]))
        offset += length
    return frames


def frame(payload: bytes, flags: int = 0) -> bytes:
    return _HEADER.pack(flags, len(payload)) + payload


def trailers_frame(trailers: Iterable[tuple[str, str]]) -> bytes:
    block = "".join(f"{name}: {value}\r\n" for name, value in trailers)
    return frame(block.encode("latin-1", "replace"), TRAILERS)


def parse_timeout(value: str) -> float:
    """Seconds in a ``grpc-timeout`` value (``1S``, ``250m``: at most 8 digits and a unit)."""
    match = _TIMEOUT.fullmatch(value.strip())
    if match is None:
        raise FramingError(f"The grpc-timeout header {value[:20]!r} is malformed.")
    return int(match.group(1)) * _UNITS[match.group(2)]
