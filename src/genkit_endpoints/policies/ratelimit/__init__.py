"""Request rate limits per caller: ``RateLimiter`` over a ``LimitStore`` (memory, redis)."""

from genkit_endpoints.policies.ratelimit.base import (
    Decision,
    LimitStore,
    RateLimitConfig,
    RateLimitUnavailable,
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
