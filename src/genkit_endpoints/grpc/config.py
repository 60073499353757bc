# SPDX-License-Identifier: Apache-2.0
"""How the gRPC server listens; free of grpc imports so settings stay cheap to load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GrpcConfig:
    """How the gRPC server listens, what it accepts and how it keeps connections alive.

    Keep-alive values are set explicitly rather than left to gRPC core defaults: the
    server pings idle clients to find dead peers, tolerates client pings down to
    ``min_ping_interval_ms`` (stricter values make core answer GOAWAY ``too_many_pings``
    to well-behaved clients), and closes a connection only after it has been idle longer
    than typical load-balancer idle timeouts (75 s), so a balancer never reuses a
    connection we already closed. ``so_reuseport`` lets several worker processes bind
    the same port.

    TLS: ``tls_cert`` + ``tls_key`` serve TLS; adding ``tls_client_ca`` makes it mutual
    (every client must present a certificate that CA issued). Neither: plaintext, for a mesh
    or a proxy that terminates TLS. The files are read when the server is built. Concurrency
    and metadata size are capped explicitly: RPCs beyond ``max_concurrent_rpcs`` are refused
    with RESOURCE_EXHAUSTED instead of queueing without bound, and request metadata (where
    API keys travel) is bounded in bytes.
    """

    host: str = "0.0.0.0"  # noqa: S104 - a server; the app's settings choose the address
    port: int = 50051
    max_receive_bytes: int = 1024 * 1024  # MAX_BODY_SIZE, like the REST body limit
    max_concurrent_rpcs: int | None = 1000  # per process; None: only the event loop limits
    max_metadata_size: int = 16 * 1024
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    debug: bool = False  # server reflection only in DEBUG
    keepalive_time_ms: int = 60_000
    keepalive_timeout_ms: int = 20_000
    keepalive_permit_without_calls: bool = True
    min_ping_interval_ms: int = 10_000
    max_connection_idle_ms: int = 300_000
    max_connection_age_ms: int | None = None  # set to rebalance long-lived clients
    max_connection_age_grace_ms: int | None = None
    so_reuseport: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"gRPC port must be 0..65535, got {self.port!r}")
        if self.max_receive_bytes < 1:
            raise ValueError(f"max_receive_bytes must be >= 1, got {self.max_receive_bytes!r}")
        if self.max_concurrent_rpcs is not None and self.max_concurrent_rpcs < 1:
            raise ValueError(
                f"max_concurrent_rpcs must be >= 1 or None, got {self.max_concurrent_rpcs!r}"
            )
        if self.max_metadata_size < 1024:
            raise ValueError(f"max_metadata_size must be >= 1024, got {self.max_metadata_size!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("gRPC TLS needs both a certificate and its key, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError(
                "a gRPC TLS client CA (mutual TLS) needs a server certificate and key too"
            )

    @property
    def transport(self) -> str:
        """``mtls``, ``tls`` or ``plaintext``: what the server will speak."""
        if self.tls_cert is None:
            return "plaintext"
        return "mtls" if self.tls_client_ca is not None else "tls"

    def channel_options(self) -> list[tuple[str, int]]:
        """The ``grpc.aio.server(options=...)`` list."""
        options = [
            ("grpc.max_receive_message_length", self.max_receive_bytes),
            ("grpc.keepalive_time_ms", self.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", self.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", int(self.keepalive_permit_without_calls)),
            ("grpc.http2.min_ping_interval_without_data_ms", self.min_ping_interval_ms),
            ("grpc.http2.max_pings_without_data", 0),  # 0: pings never need data between
            ("grpc.max_connection_idle_ms", self.max_connection_idle_ms),
            ("grpc.so_reuseport", int(self.so_reuseport)),
            # Soft and hard limit alike: between the two, core rejects only some calls.
            ("grpc.max_metadata_size", self.max_metadata_size),
            ("grpc.absolute_max_metadata_size", self.max_metadata_size),
        ]
        if self.max_connection_age_ms is not None:
            options.append(("grpc.max_connection_age_ms", self.max_connection_age_ms))
        if self.max_connection_age_grace_ms is not None:
            options.append(("grpc.max_connection_age_grace_ms", self.max_connection_age_grace_ms))
        return options
