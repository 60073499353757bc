# SPDX-License-Identifier: Apache-2.0
"""Request rate limits per caller: ``RateLimiter`` over a ``LimitStore`` (memory, redis).

The names load their modules on first use (``genkit_endpoints.core.lazy``): the settings
read ``RateLimitConfig`` without importing ``limits``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genkit_endpoints.core.lazy import lazy_exports

if TYPE_CHECKING:
    from genkit_endpoints.policies.ratelimit.base import Decision, LimitStore, RateLimitUnavailable
    from genkit_endpoints.policies.ratelimit.config import (
        RateLimitConfig,
        StrategyName,
        parse_rates,
    )
    from genkit_endpoints.policies.ratelimit.limiter import RateLimiter

__all__ = [
    "Decision",
    "LimitStore",
    "RateLimitConfig",
    "RateLimitUnavailable",
    "RateLimiter",
    "StrategyName",
    "parse_rates",
]

_BASE = "genkit_endpoints.policies.ratelimit.base"
_CONFIG = "genkit_endpoints.policies.ratelimit.config"
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Decision": _BASE,
        "LimitStore": _BASE,
        "RateLimitUnavailable": _BASE,
        "RateLimitConfig": _CONFIG,
        "StrategyName": _CONFIG,
        "parse_rates": _CONFIG,
        "RateLimiter": "genkit_endpoints.policies.ratelimit.limiter",
    },
    __all__,
)
