"""gRPC transport of the kit: handlers from the route table, interceptors, server.

Importing this package does not import gRPC; the names below load their modules on first
use, so an app that only imports ``genkit_endpoints.grpc.encoding`` (for a route's
``grpc_encode``) never pays for the gRPC stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genkit_endpoints.grpc.encoding import json_field
    from genkit_endpoints.grpc.server import GrpcServer, create_grpc_server

__all__ = ["GrpcServer", "create_grpc_server", "json_field"]

_HOMES = {
    "GrpcServer": "genkit_endpoints.grpc.server",
    "create_grpc_server": "genkit_endpoints.grpc.server",
    "json_field": "genkit_endpoints.grpc.encoding",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
