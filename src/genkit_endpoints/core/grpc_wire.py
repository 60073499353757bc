# SPDX-License-Identifier: Apache-2.0
"""gRPC protocol facts both transports need, without importing grpc.

The status numbers, the ``grpc-message`` encoding and how a gRPC-Web request is
recognised are fixed by the gRPC and gRPC-Web specifications. The gRPC server, its
gRPC-Web layer, the HTTP layer that turns HTTP refusals into gRPC-Web statuses and the
audit log all read them from here, so HTTP and gRPC stay peers that import neither.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["GRPC_STATUS_NUMBERS", "GRPC_WEB_CONTENT_TYPE", "grpc_message", "is_grpc_web"]

# The gRPC status codes by name, as the protocol numbers them (they never change).
GRPC_STATUS_NUMBERS: dict[str, int] = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}

# Every gRPC-Web content type starts so: binary (``+proto``) and text (``-text``) modes.
GRPC_WEB_CONTENT_TYPE = b"application/grpc-web"
_CONTENT_TYPE = b"content-type"


def is_grpc_web(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI request is a gRPC-Web call (a POST with a gRPC-Web content type)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    for name, value in scope["headers"]:
        if name == _CONTENT_TYPE:
            return bool(value.startswith(GRPC_WEB_CONTENT_TYPE))
    return False


def grpc_message(text: str) -> str:
    """``grpc-message`` as the gRPC spec encodes it: printable ASCII but ``%`` as is, every
    other UTF-8 byte percent-encoded."""
    raw = text.encode("utf-8", "replace")
    if all(0x20 <= b <= 0x7E and b != 0x25 for b in raw):
        return text
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in raw)
