# SPDX-License-Identifier: Apache-2.0
"""gRPC transport of the kit: handlers from the route table, interceptors, server.

Importing this package does not import gRPC; the names below load their modules on first
use, so an app that only imports ``genkit_endpoints.grpc.encoding`` (for a route's
``grpc_encode``) never pays for the gRPC stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.core.lazy import lazy_exports

if TYPE_CHECKING:
    from genkit_endpoints.grpc.encoding import json_field
    from genkit_endpoints.grpc.server import GrpcServer, create_grpc_server

__all__ = ["GrpcServer", "create_grpc_server", "json_field"]

_HOMES = {
    "GrpcServer": "genkit_endpoints.grpc.server",
    "create_grpc_server": "genkit_endpoints.grpc.server",
    "json_field": "genkit_endpoints.grpc.encoding",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
