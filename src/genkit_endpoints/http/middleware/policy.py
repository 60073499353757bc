# SPDX-License-Identifier: Apache-2.0
"""What the HTTP middleware stack enforces: one plain, light config object.

Kept free of heavy imports so the app's settings can build it without importing the
middleware (``--help`` must stay fast). Defaults are the locked-down zero-config service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genkit_endpoints.security.addresses import parse_networks

__all__ = ["HttpPolicy"]


@dataclass(frozen=True)
class HttpPolicy:
    """What the HTTP stack enforces. Defaults are the locked-down zero-config service."""

    request_timeout: float = 120.0
    debug: bool = False
    max_body_size: int = 1_048_576
    # A request body's pace: each part within this many seconds, and on average at least
    # body_min_rate bytes per second (0: no rate rule); slower → 408.
    body_read_timeout: float = 10.0
    body_min_rate: int = 500
    max_concurrent_requests: int = 1000
    cors_allowed_origins: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    hsts_max_age: int = 31_536_000
    gzip_min_size: int = 1024
    json_max_depth: int = 32  # nesting of JSON request bodies; deeper → 422
    # Paths that need no key and never count against the concurrency limit.
    exempt_paths: frozenset[str] = field(default_factory=lambda: frozenset({"/health", "/ready"}))

    def __post_init__(self) -> None:
        # Fail at start-up, not on the first request.
        parse_networks(self.trusted_proxies)  # ValueError names the entry
        if "*" in (o.strip() for o in self.cors_allowed_origins) and not self.debug:
            raise ValueError("CORS_ALLOWED_ORIGINS='*' is only allowed with DEBUG")
        if self.max_body_size < 1 or self.max_concurrent_requests < 1:
            raise ValueError("body and concurrency limits must be at least 1")
        if self.json_max_depth < 2:
            raise ValueError("the JSON depth limit must be at least 2")
        if self.request_timeout <= 0:
            raise ValueError("the request timeout must be positive")
        if not self.body_read_timeout > 0 or self.body_min_rate < 0:
            raise ValueError("the body read timeout must be positive, its minimum rate >= 0")
