# SPDX-License-Identifier: Apache-2.0
"""How the REST server listens; free of server imports so settings stay cheap to load."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """How the REST server listens, keeps connections and bounds a request's head.

    ``max_header_bytes`` bounds the request line plus headers, ``max_header_count`` the
    number of header fields (both answered 431), and ``header_read_timeout`` the seconds
    from a new connection, or from the first byte of a later request, to the end of its
    headers (slow clients are closed). Which server enforces what exactly is stated in
    ``genkit_endpoints.serving.runners``.
    """

    host: str = "0.0.0.0"  # noqa: S104 - a container service listens on all interfaces
    port: int = 8080
    keep_alive: float = 75.0  # above typical load-balancer idle timeouts (60 s)
    shutdown_grace: float = 25.0
    log_level: str = "info"
    workers: int = 1
    max_header_bytes: int = 16 * 1024
    max_header_count: int = 100
    header_read_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in ("keep_alive", "header_read_timeout"):
            if not getattr(self, name) > 0:  # also rejects NaN
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_header_bytes < 1024:
            raise ValueError(f"max_header_bytes must be >= 1024, got {self.max_header_bytes!r}")
        if self.max_header_count < 1:
            raise ValueError(f"max_header_count must be >= 1, got {self.max_header_count!r}")
